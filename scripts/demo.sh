#!/usr/bin/env bash
# The main job: set-up, build the almc command, and run the demo: ALMC inpainting and 2x
# super-resolution of held-out 8x8 digits (upsampled to 16x16) with a score network trained on
# scikit-learn's digits (demo/digits_score.onnx). Writes PNG grids and PSNR figures to out/demo.
# Runs on the CPU when there is no GPU. Extra arguments go to `almc demo` (e.g. --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH
build=${ALMC_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DALMC_CUDA=${ALMC_CUDA:-AUTO} >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j"${ALMC_JOBS:-$(nproc)}" --target almc_cli
mkdir -p out/demo
"$build/host/cli/almc" demo --demo-dir demo --out-dir out/demo "$@"
echo "demo: figures and PSNR in out/demo/"
