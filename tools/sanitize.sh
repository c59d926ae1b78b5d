#!/usr/bin/env bash
# Build vitc with AddressSanitizer + UndefinedBehaviorSanitizer in a copy of the repo and run the kernel
# and model tests against it. The main (editable) install is not touched.
#
#   tools/sanitize.sh [pytest args]      (default: the kernel, model, reduced-precision, thread/extreme-input
#                                         and hostile-file tests; no kakaobrain download)
#
# ASan must be the first DSO loaded, hence LD_PRELOAD; CPython's own allocations are reported as leaks
# at exit, so leak detection is off (tools/valgrind.sh and tests/test_leaks.py cover leaks).
# Output ends with one verdict line: "sanitize: pytest exit N, M sanitizer reports". Exit status is 1 if
# any report was found, else pytest's (a failing test is not hidden; the summary still prints).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${SANITIZE_DIR:-/tmp/vitc-sanitize}"
rm -rf "$work"
mkdir -p "$work"
# The working tree as it is (uncommitted changes included), without build products or git metadata.
(cd "$repo" && tar --exclude=.git --exclude=build --exclude='*.so' --exclude=__pycache__ \
  --exclude='*.egg-info' -cf - .) | (cd "$work" && tar -xf -)
cd "$work"
echo "== building with VITC_SANITIZE=1 in $work"
VITC_SANITIZE=1 python setup.py -q build_ext --inplace >build.log 2>&1 || { tail -40 build.log; exit 2; }

asan="$(gcc -print-file-name=libasan.so)"
ubsan="$(gcc -print-file-name=libubsan.so)"
export LD_PRELOAD="$asan:$ubsan"
# allocator_may_return_null: the MemoryError tests ask malloc for petabytes and expect NULL, not an abort.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$work"
# The sanitized extension must be the one imported, not the editable install's.
python -c "import vitc._core as c, sys; assert c.__file__.startswith('$work'), c.__file__; print('using', c.__file__)"
if [ $# -eq 0 ]; then
  set -- tests/test_kernels.py tests/test_model.py tests/test_model_core.py tests/test_lowp_kernels.py \
    tests/test_lowp_attention.py \
    tests/test_lowp_model.py tests/test_convert_lowp.py tests/test_threads_and_extremes.py \
    tests/test_hostile_files.py -k "not kakaobrain"
fi
echo "== pytest $*"
# pytest failing must not end the script (set -e) before the sanitizer summary below.
set +e
python -m pytest -q -p no:cacheprovider "$@" >pytest.log 2>&1
status=$?
set -e
tail -20 pytest.log
reports=$(grep -cE "ERROR: AddressSanitizer|runtime error:" pytest.log || true)
if [ "$reports" -ne 0 ]; then
  echo "== sanitizer reports:"; grep -E -A15 "ERROR: AddressSanitizer|runtime error:" pytest.log | head -80
fi
echo "sanitize: pytest exit $status, $reports sanitizer reports (log: $work/pytest.log)"
if [ "$reports" -ne 0 ]; then
  exit 1
fi
exit "$status"
