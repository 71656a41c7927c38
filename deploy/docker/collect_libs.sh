#!/bin/sh
# Copies binaries and the shared libraries they load into a staging root, for a
# runtime image that holds nothing else:
#
#   collect_libs.sh DEST BINARY...
#
# Each BINARY goes to DEST/usr/local/bin/. Each library `ldd` resolves goes to DEST at
# the path it was found (a symlink is copied as the file it points to; /lib/... is
# written as /usr/lib/..., Debian 12 having merged /usr), except the C and C++ runtime
# that every Debian 12 base image already has (libc, libm, libstdc++, libgcc_s, the
# loader). The CUDA driver (libcuda) is not linked: the NVIDIA container runtime mounts
# it into the container.
set -eu

if [ $# -lt 2 ]; then
  echo "usage: collect_libs.sh DEST BINARY..." >&2
  exit 1
fi
dest=$1
shift
mkdir -p "$dest/usr/local/bin"
for bin in "$@"; do
  [ -x "$bin" ] || { echo "collect_libs.sh: $bin is not an executable" >&2; exit 1; }
  cp -L "$bin" "$dest/usr/local/bin/"
  chmod 0755 "$dest/usr/local/bin/$(basename "$bin")"
  if ldd "$bin" | grep -q 'not found'; then
    echo "collect_libs.sh: $bin has unresolved libraries:" >&2
    ldd "$bin" | grep 'not found' >&2
    exit 1
  fi
  # Lines "libX.so.N => /path/libX.so.N (0x...)"; the vdso and the loader have no "=>".
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r name path; do
    case "$name" in
      libc.so.*|libm.so.*|libdl.so.*|librt.so.*|libpthread.so.*|libstdc++.so.*|libgcc_s.so.*|ld-linux*)
        continue ;;
    esac
    case "$path" in
      /lib/*|/lib64/*) target=/usr$(dirname "$path") ;;
      *) target=$(dirname "$path") ;;
    esac
    mkdir -p "$dest$target"
    cp -L "$path" "$dest$target/$name"
  done
done
