#!/usr/bin/env bash
# Fuzz every vitc reader for a fixed time, one target after the other, and summarise.
#
#   tools/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s; all four targets)
#
# Work files go to ${FUZZ_DIR:-/tmp/vitc-fuzz}: seeds/ (from seeds.py: valid files and the hostile cases
# of tests/hostile_cases.py; rewritten when either script changes), corpus/<target>/ (grows across
# runs), artifacts/<target>/ (crash-*, timeout-*, oom-* inputs), logs/<target>.log, and summary.tsv
# (target, seconds, executions, findings, exit status; read by tools/hardening.sh). Exit status 1 if
# any target reported a finding. Reproduce one with: python tools/fuzz/fuzz.py TARGET ARTIFACT; keep it
# as tests/data/fuzz/<target>-<what it does>.<ext> (tests/test_hostile_files.py replays that folder).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors torch_bin sharded vitc)
out="${FUZZ_DIR:-/tmp/vitc-fuzz}"
mkdir -p "$out"/{seeds,corpus,artifacts,logs}

declare -A max_len=([safetensors]=8192 [torch_bin]=16384 [sharded]=8192 [vitc]=16384)

stamp="$out/seeds/.written"
if [ ! -f "$stamp" ] || [ "$here/seeds.py" -nt "$stamp" ] || [ "$here/../../tests/hostile_cases.py" -nt "$stamp" ]; then
  rm -rf "$out/seeds" && mkdir -p "$out/seeds"
  python "$here/seeds.py" "$out/seeds" >"$out/logs/seeds.log" 2>&1 || { cat "$out/logs/seeds.log"; exit 2; }
  touch "$stamp"
fi

status=0
summary="$out/summary.tsv"
: >"$summary"
printf '%-12s %8s %10s %8s %s\n' target seconds execs exec/s findings
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  cp -n "$out/seeds/$t"/* "$out/corpus/$t/" 2>/dev/null
  log="$out/logs/$t.log"
  start=$(date +%s)
  # -timeout: seconds per input (a hang); -rss_limit_mb: inputs are at most 16 kB, and the interpreter
  # with numpy and vitc is ~150 MB, so 512 MB leaves room for a small multiple of any input, not a bomb.
  # -fork/-jobs are not used: the machine is shared, one process at a time.
  timeout $((secs + 60)) python "$here/fuzz.py" "$t" "$out/corpus/$t" \
    -max_total_time="$secs" -max_len="${max_len[$t]}" -rss_limit_mb=512 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  findings=$(ls "$out/artifacts/$t" | wc -l)
  printf '%-12s %8s %10s %8s %s\n' "$t" "$took" "${execs:-?}" "${rate:-?}" "$findings (rc=$rc)"
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$took" "${execs:-?}" "$findings" "$rc" >>"$summary"
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
    status=1
    grep -m1 -A25 -E 'Uncaught Python exception|ERROR: libFuzzer|==ERROR' "$log" | head -40
  fi
done
exit $status
