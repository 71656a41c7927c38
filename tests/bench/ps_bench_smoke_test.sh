#!/bin/bash
# Runs every mode of ps_bench in its reduced size and checks the JSON it prints: every
# mode and key present, every figure and ratio positive. No timing assertions.
set -euo pipefail
bench="$1"
check="$2"
out="${TEST_TMPDIR:-/tmp}/ps_bench.json"
"$bench" --quick --all --json > "$out"
python3 "$check" "$out"
