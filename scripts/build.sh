#!/usr/bin/env bash
# Configures and builds almc into ${ALMC_BUILD_DIR:-build} (CUDA backend when nvcc is found; MPI
# on: setup.sh installs Open MPI; ALMC_MPI=OFF or AUTO to change that).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH
build=${ALMC_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DALMC_CUDA=${ALMC_CUDA:-AUTO} \
  -DALMC_MPI=${ALMC_MPI:-ON} ${ALMC_CMAKE_ARGS:-} >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
grep -E "almc: (CUDA backend|MPI)" "$build.configure.log" || true
cmake --build "$build" -j"${ALMC_JOBS:-$(nproc)}"
