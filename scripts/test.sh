#!/usr/bin/env bash
# The test command: set-up, build (CUDA backend compiled when nvcc is present), every test
# under ctest (GPU tests skip, saying why, without a device), then the installed-package check:
# the C example built outside the tree with find_package(almc) and run, then the Python package
# (pip, against that installed library) and its pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# ctest runs test programs side by side on few cores: OpenMP threads that spin-wait at barriers
# then starve each other (GNU OpenMP's default), so let idle threads sleep.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
bash scripts/build.sh
build=${ALMC_BUILD_DIR:-build}
(cd "$build" && ctest --output-on-failure -j"${ALMC_JOBS:-$(nproc)}" --timeout 900)
prefix=$(mktemp -d)
cmake --install "$build" --prefix "$prefix" >/dev/null
# A C-only project on almc::almc and a C++-only project on almc::almc_cpu, built outside the tree.
rm -rf "$build/example" "$build/example_cxx"
cmake -S examples/c_gmm -B "$build/example" -DCMAKE_PREFIX_PATH="$prefix" >"$build/example.log" 2>&1 ||
  { cat "$build/example.log"; exit 1; }
cmake --build "$build/example" >>"$build/example.log" 2>&1 || { cat "$build/example.log"; exit 1; }
"$build/example/c_gmm"
cmake -S examples/cxx_gauss -B "$build/example_cxx" -DCMAKE_PREFIX_PATH="$prefix" >"$build/example_cxx.log" 2>&1 ||
  { cat "$build/example_cxx.log"; exit 1; }
cmake --build "$build/example_cxx" --verbose >>"$build/example_cxx.log" 2>&1 || { cat "$build/example_cxx.log"; exit 1; }
if grep -E -- "-o cxx_gauss .*(cublas|cudart|blas)" "$build/example_cxx.log"; then
  echo "the CPU-only consumer (almc::almc_cpu) links a CUDA or BLAS library (it needs neither)"; exit 1
fi
"$build/example_cxx/cxx_gauss"
echo "installed-package examples (C-only on almc::almc, C++-only on almc::almc_cpu): passed"
bash python/test_package.sh "$build" "$prefix"
echo "python package: passed"
