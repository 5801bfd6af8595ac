# shellcheck shell=bash
# Shared by the manual-procedure scripts: `mark NAME` appends "NAME <epoch seconds>" to $MARKS,
# so the benchmark can time each step of the guide (docs: bench/README.md).
set -euo pipefail
mark() { echo "$1 $(date +%s.%N)" >> "$MARKS"; }
