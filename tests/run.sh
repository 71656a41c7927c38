#!/usr/bin/env bash
# The project's test command: installs what is missing, then runs every Bazel test
# (unit, in-process and multi-process suites) in the default build, and the unit
# suites again under AddressSanitizer and ThreadSanitizer, then fuzzes each libFuzzer
# target for PS_FUZZ_SECONDS (30) seconds (tests/fuzz/run_fuzzers.sh, clang).
#
#   tests/run.sh                  everything
#   tests/run.sh --fast           default build only, no sanitizers, no fuzzing
#   tests/run.sh //server/...     only these targets (default build)
#
# Exits non-zero on any failure. The last line is "N passed, N failed, N skipped",
# counting individual test cases (gtest cases; a non-gtest test target counts as one;
# a fuzz target that runs clean for its time counts as one passed, a crash as one failed).
set -uo pipefail
cd "$(dirname "$0")/.."

"$(pwd)/tests/deps.sh" || { echo "0 passed, 1 failed"; exit 1; }

fast=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --fast) fast=1 ;;
    *) targets+=("$arg") ;;
  esac
done
[ ${#targets[@]} -eq 0 ] || fast=1
[ ${#targets[@]} -gt 0 ] || targets=(//...)

# Unit suites that also run under the sanitizers (multi-process suites start real
# daemons and take too long there for CI).
SANITIZED=()
for d in common server worker client; do
  [ -f "$d/BUILD" ] && SANITIZED+=("//$d/...")
done

summary_dir=$(mktemp -d)
trap 'rm -rf "$summary_dir"' EXIT
status=0

run_bazel() {  # run_bazel NAME CONFIG_FLAGS TARGETS...
  local name=$1 config=$2; shift 2
  local flags=()
  [ -z "$config" ] || flags=("$config")
  set -- "${flags[@]}" "$@"
  echo "=== bazel test $* ==="
  bazel test --keep_going "$@" 2>&1 | tee "$summary_dir/$name.log"
  local rc=${PIPESTATUS[0]}
  # 0: all passed; 3: some failed; 4: no test targets matched (not an error here).
  if [ $rc -ne 0 ] && [ $rc -ne 4 ]; then status=1; fi
  if [ $rc -ne 0 ] && [ $rc -ne 3 ] && [ $rc -ne 4 ]; then
    echo "bazel exited $rc (build failure?)" >&2
    echo "build_failure" > "$summary_dir/$name.fail"
  fi
  local testlogs
  testlogs=$(bazel info "${flags[@]}" bazel-testlogs 2>/dev/null | tail -1)
  python3 tests/count_results.py "$testlogs" "$summary_dir/$name.log" \
    > "$summary_dir/$name.counts" || status=1
}

run_bazel default "" "${targets[@]}"
if [ $fast -eq 0 ]; then
  run_bazel asan --config=asan "${SANITIZED[@]}"
  run_bazel tsan --config=tsan "${SANITIZED[@]}"
  if [ -x tests/fuzz/run_fuzzers.sh ]; then
    echo "=== tests/fuzz/run_fuzzers.sh (${PS_FUZZ_SECONDS:-30} s per target) ==="
    tests/fuzz/run_fuzzers.sh 2>&1 | tee "$summary_dir/fuzz.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    # One line per target: "fuzz NAME: PASSED|FAILED|SKIPPED ...".
    echo "$(grep -c '^fuzz [a-z_]*: PASSED' "$summary_dir/fuzz.log")" \
      "$(grep -c '^fuzz [a-z_]*: FAILED' "$summary_dir/fuzz.log")" \
      "$(grep -c '^fuzz [a-z_]*: SKIPPED' "$summary_dir/fuzz.log")" > "$summary_dir/fuzz.counts"
  fi
fi

python3 - "$summary_dir" <<'PY'
import glob, sys
p = f = s = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.counts")):
    a, b, c = (int(x) for x in open(path).read().split())
    p += a; f += b; s += c
f += len(glob.glob(sys.argv[1] + "/*.fail"))
print(f"{p} passed, {f} failed, {s} skipped")
PY
exit $status
