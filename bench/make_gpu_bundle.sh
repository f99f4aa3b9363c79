#!/usr/bin/env bash
# Builds almc for an H100/H200 (sm_90) on this machine and packs the executables for
# bench/gpu_check.sh, which runs on the GPU machine (no package registry, maybe no compiler there).
#
#   bench/make_gpu_bundle.sh [BUILD_DIR]      (default build-gpu; the bundle goes to .gpu/bundle)
#
# Then, on the device machine (the working tree travels; name .gpu in the call's carry):
#   bench/gpu_check.sh --bundle .gpu/bundle.tar.xz OUT_DIR
# Env: JOBS (parallel build jobs, default nproc), CUDA_ARCHS (default 90).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build-gpu}"
JOBS="${JOBS:-$(nproc)}"
ARCHS="${CUDA_ARCHS:-90}"
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "make_gpu_bundle: no nvcc here" >&2; exit 1; }
export PATH="/usr/local/cuda/bin:$PATH"
cmake -S "$ROOT" -B "$BUILD" -DALMC_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" -DCMAKE_BUILD_TYPE=Release >/dev/null
targets=(almc_cli almc_tests almc_gpu_tests almc_cli_tests)
# Optional benchmark programs, when their folders exist in this build.
for t in almc_bench_engine almc_bench_onnx; do
  if cmake --build "$BUILD" --target help | grep -q "^\.\.\. $t\$"; then targets+=("$t"); fi
done
cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"
exes=()
for t in "${targets[@]}"; do
  case $t in
    almc_cli) exes+=("$(find "$BUILD/host/cli" -maxdepth 1 -type f -name almc)");;
    *) exes+=("$(find "$BUILD" -type f -name "$t" | head -n 1)");;
  esac
done
rm -rf "$ROOT/.gpu/bundle" "$ROOT/.gpu/bundle.tar.xz"
mkdir -p "$ROOT/.gpu"
BUNDLER="$ROOT/../shared/tools/gpu-bundle.sh"
[ -x "$BUNDLER" ] || BUNDLER=/work/shared/tools/gpu-bundle.sh
"$BUNDLER" "$ROOT/.gpu/bundle" "${exes[@]}"
rm -rf "$ROOT/.gpu/bundle"
# The unpacked folder is not carried (the archive is): keep only the archive next to .gpu/.
echo "built: ${targets[*]}"
echo "carry .gpu (archive $(du -h "$ROOT/.gpu/bundle.tar.xz" | cut -f1)); run: bench/gpu_check.sh --bundle .gpu/bundle.tar.xz OUT_DIR"
