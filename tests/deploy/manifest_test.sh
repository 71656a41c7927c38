#!/bin/sh
# Runs manifest_test.py with Debian's python3 (Bazel 4's py_test stub wants a `python`
# that Debian 12 does not have).
set -eu
exec python3 "$TEST_SRCDIR/ps/tests/deploy/manifest_test.py" "$@"
