#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and fuzzes each for a bounded
# time, starting from its seed corpus in tests/fuzz/corpus/<target>/.
#
#   tests/fuzz/run_fuzzers.sh                 every target, PS_FUZZ_SECONDS (30) each
#   tests/fuzz/run_fuzzers.sh csv_reader ...  only these
#
# The clang build lives in an output base of its own (PS_FUZZ_OUTPUT_BASE, default
# ~/.cache/ps-fuzz-bazel), so the workspace's gcc builds are untouched. Inputs found
# along the way and crash reproducers go to a temporary directory; after a crash it is
# kept and named. One line per target: "fuzz <target>: PASSED|FAILED ...". Exits 1 when
# any target crashed or did not build, 0 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."

ALL=(packing job_spec request wire idx_reader csv_reader libsvm_reader)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
seconds=${PS_FUZZ_SECONDS:-30}
rss_mb=${PS_FUZZ_RSS_MB:-2048}
output_base=${PS_FUZZ_OUTPUT_BASE:-$HOME/.cache/ps-fuzz-bazel}

if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz: clang or its libFuzzer runtime (libclang-rt-14-dev) is missing; tests/deps.sh installs them" >&2
  for t in "${targets[@]}"; do echo "fuzz $t: SKIPPED (no clang)"; done
  exit 0
fi

bazel_fuzz() {
  # The server goes away after 5 idle minutes instead of the usual 3 hours.
  CC=clang bazel --output_base="$output_base" --max_idle_secs=300 "$@"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/ps-fuzz.XXXXXX")
labels=()
for t in "${targets[@]}"; do labels+=("//tests/fuzz:${t}_fuzzer"); done
start=$(date +%s)
# --symlink_prefix=/: no bazel-* links, which would point the workspace's at this build.
# The output (gold's warnings about ASan's local symbols, mostly) goes to a log.
if ! bazel_fuzz build --config=fuzz --symlink_prefix=/ "${labels[@]}" >"$work/build.log" 2>&1; then
  grep -E 'ERROR|error:' "$work/build.log" | head -20 >&2
  echo "fuzz: the clang build failed; log in $work/build.log" >&2
  for t in "${targets[@]}"; do echo "fuzz $t: FAILED (build)"; done
  exit 1
fi
echo "fuzz: clang build took $(( $(date +%s) - start )) s"
bin=$(bazel_fuzz info --config=fuzz bazel-bin 2>/dev/null | tail -1)

status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  log="$work/$t/fuzz.log"
  # New inputs go to the first (scratch) corpus; the seeds are only read.
  "$bin/tests/fuzz/${t}_fuzzer" "$work/$t/corpus" "tests/fuzz/corpus/$t" \
    -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout=25 \
    -artifact_prefix="$work/$t/artifacts/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ $rc -eq 0 ] && [ -z "$(ls -A "$work/$t/artifacts")" ]; then
    echo "fuzz $t: PASSED (${runs:-?} runs in ${seconds} s, ${cov:-cov: ?}, $(ls "$work/$t/corpus" | wc -l) new inputs)"
  else
    status=1
    echo "fuzz $t: FAILED (exit $rc; reproducers in $work/$t/artifacts, log $log)"
    grep -m5 -E 'ERROR|check failed|SUMMARY' "$log" | sed 's/^/    /'
  fi
done
if [ $status -eq 0 ]; then rm -rf "$work"; fi
exit $status
