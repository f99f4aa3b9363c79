#!/usr/bin/env bash
# One-shot check on a GPU machine (H100/H200, CUDA 13): every test, compute-sanitizer memcheck and
# racecheck on a short sampling run, `almc bench` on CUDA with JSON, and the PyTorch comparison
# when torch with CUDA is importable, then the networks' evaluations per second (almc eager and
# CUDA-graph replay at fp32/tf32/bf16 against PyTorch eager and CUDA-graph replay; skipped when
# the rest ran long). Under 9 minutes; per-step time limits keep it there.
# GPU_CHECK_ONLY=tests|sanitizer|bench|torch|networks runs that section only (after `info`).
#
#   bench/gpu_check.sh --bundle .gpu/bundle.tar.xz OUT_DIR     (made here by bench/make_gpu_bundle.sh)
#   bench/gpu_check.sh --build BUILD_DIR OUT_DIR               (executables built on the GPU machine)
#
# Run from the repository root (tests/data, demo/ and bench/ come from the working tree). Writes
# OUT_DIR/gpu_check.log (everything), OUT_DIR/summary.json (each step's status and seconds), the
# tests' JSON reports, bench_cuda.json, compare_torch.json, onnx_evals.txt, nvidia_smi.txt. Exit status: 0 when
# every step that ran passed, 1 when one failed, 3 (one line on stderr) when there is no GPU.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
usage() { sed -n '2,16p' "$0" >&2; exit 2; }
MODE="" SRC=""
while [ $# -gt 1 ]; do
  case $1 in
    --bundle) MODE=bundle; SRC=$2; shift 2;;
    --build) MODE=build; SRC=$2; shift 2;;
    *) break;;
  esac
done
[ -n "$MODE" ] && [ $# -eq 1 ] || usage
OUT=$1
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/gpu_check.log"
: >"$LOG"
T0=$(date +%s)
say() { echo "$*" | tee -a "$LOG"; }

# ---------------------------------------------------------------- a GPU, or a clear failure
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu_check: no GPU: nvidia-smi not found" | tee -a "$LOG" >&2; exit 3
fi
if ! nvidia-smi -L >"$OUT/nvidia_smi.txt" 2>&1 || ! grep -q '^GPU ' "$OUT/nvidia_smi.txt"; then
  echo "gpu_check: no GPU: nvidia-smi lists no device ($(head -c 200 "$OUT/nvidia_smi.txt" | tr '\n' ' '))" | tee -a "$LOG" >&2; exit 3
fi
nvidia-smi >>"$OUT/nvidia_smi.txt" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv >>"$OUT/nvidia_smi.txt" 2>&1

# ---------------------------------------------------------------- executables
if [ "$MODE" = bundle ]; then
  if [ -f "$SRC" ]; then
    B="$(mktemp -d /tmp/almc_bundle.XXXXXX)"
    tar -xJf "$SRC" -C "$B" || { echo "gpu_check: cannot unpack $SRC" >&2; exit 1; }
  else
    B="$(cd "$SRC" && pwd)"
  fi
  RUN=("$B/run.sh")
  exe() { echo "bin/$1"; }
  # A bundled program named as an argument of another (compute-sanitizer's target): run.sh resolves
  # only its first word, so the path must be absolute.
  abs_exe() { echo "$B/bin/$1"; }
  ALMC="$B/bin/almc"
else
  BD="$(cd "$SRC" && pwd)"
  RUN=(env)
  exe() { find "$BD" -type f -name "$1" | head -n 1; }
  abs_exe() { exe "$1"; }
  ALMC="$BD/host/cli/almc"
fi
export ALMC_TEST_DATA="$ROOT/tests/data" ALMC_DEMO_DIR="$ROOT/demo" ALMC_EXE="$ALMC"
cd "$ROOT"

declare -A STATUS SECS
step() {  # step NAME TIMEOUT_S CMD...: runs with a time limit, logs, records status
  local name=$1 limit=$2; shift 2
  local t=$(date +%s) rc
  say "=== $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  SECS[$name]=$(( $(date +%s) - t ))
  case $rc in
    0) STATUS[$name]=pass;;
    124|137) STATUS[$name]="timeout";;
    *) STATUS[$name]="fail (exit $rc)";;
  esac
  say "--- $name: ${STATUS[$name]} in ${SECS[$name]}s"
}
skip() { STATUS[$1]="skipped: $2"; SECS[$1]=0; say "--- $1: skipped: $2"; }
ONLY=${GPU_CHECK_ONLY:-}
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

step info 30 "${RUN[@]}" "$(exe almc)" info --json

# ---------------------------------------------------------------- tests
if want tests; then
step gpu_tests 180 "${RUN[@]}" "$(exe almc_gpu_tests)" --gtest_output="json:$OUT/gpu_tests.json"
step cpu_tests 150 "${RUN[@]}" "$(exe almc_tests)" --gtest_output="json:$OUT/cpu_tests.json"
if [ -n "$(exe almc_cli_tests)" ]; then
  step cli_tests 90 "${RUN[@]}" "$(exe almc_cli_tests)" --gtest_output="json:$OUT/cli_tests.json"
else
  skip cli_tests "almc_cli_tests not built"
fi
fi

# ---------------------------------------------------------------- compute-sanitizer
if want sanitizer; then
SAN=""
for c in /usr/local/cuda/bin/compute-sanitizer "$(command -v compute-sanitizer 2>/dev/null)"; do
  [ -n "$c" ] && [ -x "$c" ] && { SAN=$c; break; }
done
# A short sampling run: GMM prior (K = 8), pixel mask, 64 chains, ~150 steps. The problem files come
# from bench/reference/make_problem.py when numpy is there; otherwise `almc bench` makes the same
# kind of problem in memory.
PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c "import numpy" 2>/dev/null; then PY=$p; break; fi
done
SAN_CMD=()
if [ -n "$PY" ] && "$PY" "$ROOT/bench/reference/make_problem.py" --d 256 --out "$OUT/san_problem" >>"$LOG" 2>&1; then
  SAN_CMD=("$(abs_exe almc)" sample --backend cuda --prior "$OUT/san_problem/gmm.json" --operator "mask:$OUT/san_problem/mask.npy"
           --y "$OUT/san_problem/y_mask.npy" --noise-std 0.1 --chains 64 --kappa 0.1 --delta 0.004 --warm-steps 20 --quiet)
else
  SAN_CMD=("$(abs_exe almc)" bench --backend cuda --case sweep/gmm8/mask/d64/c256 --no-stages --target 0.01 --repeats 1)
fi
if [ -z "$SAN" ]; then
  skip memcheck "compute-sanitizer not found (looked in /usr/local/cuda/bin and PATH)"
  skip racecheck "compute-sanitizer not found"
  skip memcheck_gmm_resp "compute-sanitizer not found"
  skip racecheck_gmm_resp "compute-sanitizer not found"
else
  say "compute-sanitizer: $SAN ($("$SAN" --version 2>/dev/null | tail -n 1))"
  step memcheck 90 "${RUN[@]}" "$SAN" --tool memcheck --error-exitcode 1 --leak-check full "${SAN_CMD[@]}"
  step racecheck 90 "${RUN[@]}" "$SAN" --tool racecheck --error-exitcode 1 "${SAN_CMD[@]}"
  # The GMM responsibilities of long rows, both decompositions (the run above has d 256: one slice).
  RESP_TEST=("$(abs_exe almc_gpu_tests)" --gtest_filter='GpuGmmResp.FewChains*:GpuGmmResp.ManyComponents*')
  step memcheck_gmm_resp 60 "${RUN[@]}" "$SAN" --tool memcheck --error-exitcode 1 "${RESP_TEST[@]}"
  step racecheck_gmm_resp 60 "${RUN[@]}" "$SAN" --tool racecheck --error-exitcode 1 "${RESP_TEST[@]}"
fi
fi

# ---------------------------------------------------------------- benchmarks
if want bench; then
step bench_cuda 170 "${RUN[@]}" "$(exe almc)" bench --backend cuda --target 0.1 --repeats 3 --json "$OUT/bench_cuda.json"
BE=$(exe almc_bench_engine)
if [ -n "$BE" ]; then
  step bench_engine_cpu 40 "${RUN[@]}" "$BE" --benchmark_min_time=0.05 --benchmark_out="$OUT/bench_engine_cpu.json" \
    --benchmark_out_format=json --benchmark_filter='(Triad|FusedStep/gauss/identity|FusedStep/gmm8)/1024/'
fi

# The GMM responsibilities' two decompositions side by side (ALMC_GPU_GMM_RESP, README "On a GPU
# machine"; cuda/launch_policy.hpp): block = one block per chain, split = rows cut into slices of
# 2048 coordinates (K = 8) and a second kernel summing them. Few chains of d 65536 are the case the
# split is for; 4096 chains of d 4096 check it costs nothing with many. Compare steps/s and
# score_us (GMM responsibilities + the GMM part of the update) between the two JSON files.
RESP_CASES=(--case sweep/gmm8/identity/d65536/c1 --case sweep/gmm8/identity/d65536/c16
            --case sweep/gmm8/identity/d65536/c256 --case bandwidth/gmm8/identity/d4096/c4096)
for mode in block split; do
  step gmm_resp_$mode 60 env ALMC_GPU_GMM_RESP=$mode "${RUN[@]}" "$(exe almc)" bench --backend cuda "${RESP_CASES[@]}" \
    --target 0.1 --repeats 3 --json "$OUT/bench_gmm_resp_$mode.json"
done

fi

# ---------------------------------------------------------------- PyTorch comparison
TPY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c "import torch, numpy, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    TPY=$p; break
  fi
done
if want torch; then
ELAPSED=$(( $(date +%s) - T0 ))
if [ -z "$TPY" ]; then
  skip compare_torch "no python with torch (CUDA) and numpy importable here"
elif [ $ELAPSED -gt 360 ]; then
  skip compare_torch "out of time (${ELAPSED}s elapsed of 480)"
else
  LIMIT=$(( 470 - ELAPSED ))
  step compare_torch "$LIMIT" "$TPY" "$ROOT/bench/compare_torch.py" --python "$TPY" --device cuda --repeats 1 \
    --almc "$ALMC" --almc-prefix "${RUN[0]/#env/}" --threads 8 --json "$OUT/compare_torch.json"
fi
fi

# ---------------------------------------------------------------- networks (issue 11)
# Evaluations per second at batch 1 and 1024 of the fixtures and the demo's digits MLP: almc eager
# and as a replayed CUDA graph (fp32, tf32, bf16), PyTorch eager and replayed (fp32). Each line:
# "<engine> <network> <batch> <evals/s> <samples/s> [precision]", gathered in onnx_evals.txt.
if want networks; then
NET_STEPS="onnx_almc_eager onnx_almc_graph onnx_torch_eager onnx_torch_graph"
ELAPSED=$(( $(date +%s) - T0 ))
if [ $ELAPSED -gt 440 ]; then
  for k in $NET_STEPS; do skip $k "out of time (${ELAPSED}s elapsed)"; done
else
  NET_ARGS=(--batches 1,1024 --min-seconds 0.3)
  if [ -e "$(abs_exe almc_bench_onnx)" ]; then
    step onnx_almc_eager 35 "${RUN[@]}" "$(exe almc_bench_onnx)" --backend cuda "${NET_ARGS[@]}" --precisions fp32,tf32,bf16 \
      --model digits_mlp=demo/digits_score.onnx mlp_embed resmlp unet
    step onnx_almc_graph 35 "${RUN[@]}" "$(exe almc_bench_onnx)" --backend cuda --graph "${NET_ARGS[@]}" \
      --precisions fp32,tf32,bf16 --model digits_mlp=demo/digits_score.onnx mlp_embed resmlp unet
  else
    skip onnx_almc_eager "almc_bench_onnx not built"
    skip onnx_almc_graph "almc_bench_onnx not built"
  fi
  if [ -n "$TPY" ]; then
    step onnx_torch_eager 35 "$TPY" "$ROOT/bench/onnx/bench_py.py" torch --device cuda "${NET_ARGS[@]}" \
      --fixtures digits_mlp,mlp_embed,resmlp,unet
    step onnx_torch_graph 35 "$TPY" "$ROOT/bench/onnx/bench_py.py" torch --device cuda --graph "${NET_ARGS[@]}" \
      --fixtures digits_mlp,mlp_embed,resmlp,unet
  else
    skip onnx_torch_eager "no python with torch (CUDA) and numpy importable here"
    skip onnx_torch_graph "no python with torch (CUDA) and numpy importable here"
  fi
fi
grep -E '^(almc|almc-graph|torch-cuda|torch-graph) [a-z_]+ [0-9]+ ' "$LOG" >"$OUT/onnx_evals.txt" || true
fi

# ---------------------------------------------------------------- summary
STEPS="info gpu_tests cpu_tests cli_tests memcheck racecheck memcheck_gmm_resp racecheck_gmm_resp bench_cuda bench_engine_cpu gmm_resp_block gmm_resp_split compare_torch onnx_almc_eager onnx_almc_graph onnx_torch_eager onnx_torch_graph"
TOTAL=$(( $(date +%s) - T0 ))
FAILED=0
{
  echo "{"
  echo "  \"gpu\": \"$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)\","
  echo "  \"total_seconds\": $TOTAL,"
  echo "  \"steps\": {"
  first=1
  for k in $STEPS; do
    [ -n "${STATUS[$k]+x}" ] || continue
    [ $first = 1 ] || echo ","
    first=0
    printf '    "%s": {"status": "%s", "seconds": %s}' "$k" "${STATUS[$k]}" "${SECS[$k]}"
  done
  echo
  echo "  }"
  echo "}"
} >"$OUT/summary.json"
say "=== summary (${TOTAL}s total)"
for k in $STEPS; do
  [ -n "${STATUS[$k]+x}" ] || continue
  say "$(printf '%-18s %-40s %5ss' "$k" "${STATUS[$k]}" "${SECS[$k]}")"
  case ${STATUS[$k]} in pass|skipped*) ;; *) FAILED=1;; esac
done
# The benchmark and comparison tables last, so the end of the output carries them.
sed -n '/^=== bench_cuda/,/^--- bench_cuda/p' "$LOG" | grep -E '^(case |sweep/|downsample/|matrix/|bandwidth/|onnx/|# roofline)' | tail -n 60
for mode in block split; do
  echo "# ALMC_GPU_GMM_RESP=$mode"
  sed -n "/^=== gmm_resp_$mode/,/^--- gmm_resp_$mode/p" "$LOG" | grep -E '^(case |sweep/|bandwidth/)'
done
grep -E '^\|' "$LOG" | tail -n 12
[ -s "$OUT/onnx_evals.txt" ] && { echo "# networks: engine network batch evals/s samples/s [precision]"; cat "$OUT/onnx_evals.txt"; }
exit $FAILED
