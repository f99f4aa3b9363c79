#!/usr/bin/env bash
# almc vs the PyTorch reference, side by side: see bench/compare_torch.py (Debian python3 has torch 1.13 CPU).
#   bench/compare_torch.sh [--quick] [--device cpu|cuda] [--json out.json] ...
set -euo pipefail
PY="${PYTHON:-/usr/bin/python3}"
[ -x "$PY" ] || PY=python3
exec "$PY" "$(dirname "$0")/compare_torch.py" --python "$PY" "$@"
