#!/usr/bin/env bash
# Runs the GPU checks that tests/gpu/prepare.sh put in .device/, on a machine with a
# GPU: the device and CUDA-against-CPU equivalence tests (gtest), then the compute bench
# (GEMM GFLOP/s and model step times, CPU against GPU, JSON). Logs and results go to
# $OUT (or a temp dir). Exits non-zero when a test fails or a binary cannot start.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$(mktemp -d)}
export LD_LIBRARY_PATH="$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
for t in device_test cuda_equivalence_test; do
  echo "== $t"
  ldd ".device/$t" | grep -E 'not found' && status=1
  ".device/$t" --gtest_output="json:$out/$t.json" >"$out/$t.log" 2>&1 || status=1
  tail -n 5 "$out/$t.log"
  grep -E '^\[  (SKIPPED|FAILED) ' "$out/$t.log" && status=1
done
echo "== compute_bench"
ldd .device/compute_bench | grep -E 'not found' && status=1
.device/compute_bench >"$out/compute_bench.json" 2>"$out/compute_bench.log" || status=1
cat "$out/compute_bench.json"
echo "status $status (results in $out)"
exit $status
