#!/usr/bin/env bash
# Installs the Debian packages the build, tests and demo need, when missing.
# Non-interactive; uses sudo when not root. Safe to run again.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap
  g++
  python3
  python3-numpy
  protobuf-compiler
  protobuf-compiler-grpc
  libprotobuf-dev
  libgrpc++-dev
  libabsl-dev
  librocksdb-dev
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  prometheus-cpp-dev
  libgoogle-perftools-dev
  libopenblas-dev
  zlib1g-dev
  dataset-fashion-mnist
  clang
  libclang-rt-14-dev
  openssl
  python3-yaml
  procps
  psmisc
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >&2
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
