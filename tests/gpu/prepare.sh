#!/usr/bin/env bash
# Prepares the GPU checks for a machine that has a GPU and CUDA 13 but no Bazel, gRPC
# or Debian packages (the device machine some sessions are lent): builds the CUDA test
# binaries and the compute bench here (no GPU needed), and copies them into .device/
# (git-ignored) with the libraries such a machine lacks (OpenBLAS and its Fortran
# runtime, for the bench's CPU side). cuBLAS and the driver come from that machine.
#
#   tests/gpu/prepare.sh          then, there, with .device carried:
#   tests/gpu/check.sh            (writes its logs and JSON to $OUT, or to a temp dir)
set -euo pipefail
cd "$(dirname "$0")/../.."

targets=(//worker/cuda:device_test //worker/cuda:cuda_equivalence_test //worker/cuda:compute_bench)
bazel build -c opt "${targets[@]}"
bin=$(bazel info -c opt bazel-bin)
rm -rf .device
mkdir -p .device/lib
for t in "${targets[@]}"; do cp "$bin/worker/cuda/${t##*:}" .device/; done
# What the binaries link beyond CUDA's libraries and the C/C++ runtime.
for b in .device/*_test .device/compute_bench; do
  ldd "$b" | awk '/=> \// {print $3}'
done | sort -u | grep -E '/lib(openblas|blas|lapack|gfortran|quadmath)' | while read -r lib; do
  cp -L "$lib" .device/lib/
done
du -sh .device
ls -l .device .device/lib
