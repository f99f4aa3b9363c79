#!/usr/bin/env bash
# CPU throughput of the ONNX fixtures: almc's built-in executor, onnxruntime (pip CPU wheel, in
# the PATH python3) and torch (Debian's /usr/bin/python3), same machine, same thread count.
#
#   bench/onnx/compare_cpu.sh [build-dir]      (default build-dir: build)
#
# Environment: THREADS (default nproc), REPEATS (default 3: the three engines run in turn that many
# times and the table shows medians, which a shared, noisy machine needs), BATCHES (default
# 1,64,1024), FIXTURES (default mlp_embed,resmlp,unet), MIN_SECONDS per measurement (default 1).
#
# Needs almc_bench_onnx built in build-dir. Installs onnxruntime with pip when it is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
THREADS="${THREADS:-$(nproc)}"
REPEATS="${REPEATS:-3}"
BATCHES="${BATCHES:-1,64,1024}"
FIXTURES="${FIXTURES:-mlp_embed,resmlp,unet}"
MIN_SECONDS="${MIN_SECONDS:-1}"
BIN="$BUILD/bench/onnx/almc_bench_onnx"
[[ -x "$BIN" ]] || { echo "build $BIN first (cmake --build $BUILD --target almc_bench_onnx)" >&2; exit 1; }
python3 -c "import onnxruntime" 2>/dev/null || python3 -m pip install --quiet onnxruntime
# Passive OpenMP waiting (almc and torch): spinning workers starve everyone on a shared machine.
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
echo "# $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $THREADS threads, $REPEATS rounds" >&2
PYOPTS=(--threads "$THREADS" --batches "$BATCHES" --fixtures "$FIXTURES" --min-seconds "$MIN_SECONDS")
for ((r = 0; r < REPEATS; ++r)); do
  "$BIN" --data "$ROOT/tests/data" --min-seconds "$MIN_SECONDS" --batches "$BATCHES" ${FIXTURES//,/ } | tee -a "$OUT" >&2
  python3 "$ROOT/bench/onnx/bench_py.py" ort "${PYOPTS[@]}" | tee -a "$OUT" >&2
  /usr/bin/python3 "$ROOT/bench/onnx/bench_py.py" torch "${PYOPTS[@]}" 2>/dev/null | tee -a "$OUT" >&2
done
python3 - "$OUT" <<'PY'
import sys, collections, statistics
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    eng, name, n, eps, sps = line.split()
    rows.setdefault((name, int(n)), collections.defaultdict(list))[eng].append(float(eps))
med = lambda v: statistics.median(v) if v else float("nan")
print("| fixture | batch | almc evals/s | onnxruntime evals/s | torch evals/s | almc / torch | almc / ort |")
print("|---|---:|---:|---:|---:|---:|---:|")
for (name, n), r in rows.items():
    a, o, t = med(r["almc"]), med(r["onnxruntime"]), med(r["torch"])
    print(f"| {name} | {n} | {a:.1f} | {o:.1f} | {t:.1f} | {a / t:.2f} | {a / o:.2f} |")
PY
