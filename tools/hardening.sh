#!/usr/bin/env bash
# Every hardening check of vitc in one run, with one summary at the end (issue 8):
#
#   tools/hardening.sh [SECONDS_PER_FUZZ_TARGET]      (default 60; 12-20 min in all on 2 cores)
#
#   1. tools/fuzz/run.sh SECONDS        atheris/libFuzzer on the four checkpoint readers
#   2. tools/sanitize.sh                ASan + UBSan build; kernel, model, low-precision, thread and
#                                       hostile-file tests
#   3. tools/valgrind.sh                memcheck of every ufunc and a small forward in each weight mode
#   4. pytest tests/test_hostile_files.py tests/test_leaks.py tests/test_threads_and_extremes.py
#   5. tools/fault_inject.py            signals and kills at random points of predict/eval/convert,
#                                       concurrent writers, damaged outputs and images (FAULT_ROUNDS,
#                                       default 36; FAULT_SEED for a fixed seed)
#
# Logs go to ${HARDENING_DIR:-/tmp/vitc-hardening}/ (fuzz work files to its fuzz/ folder). Exit status
# 0 only if there is no fuzz finding, no sanitizer or valgrind report and no failing test. Needs the
# test and fuzz extras (pip install -e '.[test,fuzz]'), gcc's libasan/libubsan and valgrind.
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-60}"
out="${HARDENING_DIR:-/tmp/vitc-hardening}"
mkdir -p "$out"
cd "$repo"
step() { echo "== $(date +%H:%M:%S) $*"; }
run() {  # run NAME CMD...: output to $out/NAME.log, exit status to $out/NAME.rc
  local name="$1"
  shift
  "$@" >"$out/$name.log" 2>&1
  echo $? >"$out/$name.rc"
}

# HARDENING_SUMMARY_ONLY=1 re-prints the summary of the last run from its logs.
if [ -n "${HARDENING_SUMMARY_ONLY:-}" ] && ! ls "$out"/*.rc >/dev/null 2>&1; then
  echo "hardening: no previous run in $out (HARDENING_DIR) to summarize" >&2
  exit 2
fi
if [ -z "${HARDENING_SUMMARY_ONLY:-}" ]; then
  # Every step needs the same Python: fail once, clearly, instead of four confusing failures.
  if ! python -c "import vitc, torch, transformers, atheris" 2>/dev/null; then
    echo "hardening: run it in an environment with vitc and its test and fuzz extras:" \
      "pip install -e '.[test,fuzz]' (python: $(command -v python))" >&2
    exit 2
  fi
  rm -f "$out"/*.rc "$out/fuzz/summary.tsv"
  step "fuzzing each reader for ${secs} s (log: $out/fuzz.log)"
  FUZZ_DIR="$out/fuzz" run fuzz tools/fuzz/run.sh "$secs"
  step "AddressSanitizer + UndefinedBehaviorSanitizer (log: $out/sanitize.log)"
  SANITIZE_DIR="$out/sanitize" run sanitize tools/sanitize.sh
  step "valgrind memcheck (log: $out/valgrind.log)"
  VALGRIND_LOG="$out/valgrind-memcheck.log" run valgrind tools/valgrind.sh
  step "hostile-file, leak and thread tests (log: $out/pytest.log)"
  run pytest python -m pytest -q -p no:cacheprovider tests/test_hostile_files.py tests/test_leaks.py \
    tests/test_threads_and_extremes.py
  step "fault injection, ${FAULT_ROUNDS:-36} rounds (log: $out/faults.log)"
  run faults python tools/fault_inject.py --rounds "${FAULT_ROUNDS:-36}" ${FAULT_SEED:+--seed "$FAULT_SEED"}
fi
rc() { cat "$out/$1.rc" 2>/dev/null || echo missing; }
fuzz_rc=$(rc fuzz) san_rc=$(rc sanitize) vg_rc=$(rc valgrind) py_rc=$(rc pytest) fi_rc=$(rc faults)

# ---- one summary
pytest_counts() {  # "N passed, M failed" from pytest's last line
  tail -5 "$1" | grep -oE '[0-9]+ (passed|failed|errors?|skipped)' | paste -sd, - | sed 's/,/, /g'
}
echo
echo "================ vitc hardening summary ================"
printf '%-12s %8s %12s %9s\n' "fuzz target" seconds executions findings
if [ -s "$out/fuzz/summary.tsv" ]; then
  total_execs=0
  while IFS=$'\t' read -r t took execs findings status; do
    printf '%-12s %8s %12s %9s%s\n' "$t" "$took" "$execs" "$findings" "$([ "$status" != 0 ] && echo " (exit $status)")"
    [[ "$execs" =~ ^[0-9]+$ ]] && total_execs=$((total_execs + execs))
  done <"$out/fuzz/summary.tsv"
  echo "fuzzing: $total_execs executions in all; exit $fuzz_rc (artifacts: $out/fuzz/artifacts/)"
else
  echo "fuzzing: did not run (exit $fuzz_rc; see $out/fuzz.log)"
fi
san_line=$(grep -E '^sanitize: ' "$out/sanitize.log" | tail -1)
echo "sanitizers: ${san_line:-no verdict (build failed? see $out/sanitize.log)}; tests: $(pytest_counts "$out/sanitize/pytest.log" 2>/dev/null)"
vg_errors=$(grep -E '^error records: ' "$out/valgrind.log" | tail -1)
vg_verdict=$(grep -E '^valgrind: ' "$out/valgrind.log" | tail -1)
echo "valgrind: ${vg_verdict:-no verdict (see $out/valgrind.log)}${vg_errors:+; $vg_errors}"
echo "hostile/leak/thread tests: $(pytest_counts "$out/pytest.log") (exit $py_rc)"
fi_head=$(grep -E '^fault injection: seed' "$out/faults.log" 2>/dev/null | head -1)
fi_count=$(grep -E '^findings: ' "$out/faults.log" 2>/dev/null | tail -1)
echo "fault injection: ${fi_count:-no verdict (see $out/faults.log)}${fi_head:+ (${fi_head#fault injection: })} (exit $fi_rc)"
if [ "$fuzz_rc$san_rc$vg_rc$py_rc$fi_rc" != "00000" ]; then
  echo "RESULT: FINDINGS (fuzz exit $fuzz_rc, sanitize exit $san_rc, valgrind exit $vg_rc, pytest exit $py_rc," \
    "fault injection exit $fi_rc)"
  exit 1
fi
echo "RESULT: clean"
