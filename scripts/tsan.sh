#!/usr/bin/env bash
# The thread tests under ThreadSanitizer (issue 13): several contexts used from several threads at
# once (analytic and ONNX priors), the CPU backend's OpenMP passes with more than one thread, and
# the ONNX executor's per-thread blocks. Any data race TSan sees fails the run.
#
# Why clang + LLVM's OpenMP (libomp) + Archer: the CPU backend parallelises with OpenMP. TSan does
# not see libgomp's barriers (futexes and atomics in an uninstrumented library), so every parallel
# loop would be reported as a race with its neighbour. LLVM's runtime loads its Archer tool
# (libarcher.so, shipped with libomp-dev) when the program is built with -fsanitize=thread; Archer
# reports every fork, join, barrier, lock and task dependence to TSan through OMPT, so OpenMP's
# ordering is understood and no suppression is needed. ignore_noninstrumented_modules=1 (Archer's
# recommended setting) keeps TSan from checking the runtime's own internals, which it cannot see
# whole.
#
# Builds only what the tests need (library + almc_tests, CPU backend, no CLI) in build-tsan.
# Environment: ALMC_TSAN_BUILD_DIR (default build-tsan), ALMC_JOBS (build parallelism),
# ALMC_TSAN_FILTER (a gtest filter replacing the default list of thread tests).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${ALMC_TSAN_BUILD_DIR:-build-tsan}
llvm_lib=$(dirname "$(readlink -f "$(command -v clang++-14)")")/../lib

if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -DALMC_SANITIZE_THREAD=ON -DALMC_CUDA=OFF \
    -DALMC_BUILD_CLI=OFF -DALMC_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.log" 2>&1 ||
    { cat "$build.log"; exit 1; }
fi
cmake --build "$build" -j"${ALMC_JOBS:-$(nproc)}" --target almc_tests

# The tests that run code on several threads at once; each is a few seconds at most under TSan.
filter=${ALMC_TSAN_FILTER:-"Reliability.IndependentHandlesOnThreadsMatchSequentialRunsBitwise:\
Reliability.OnnxScoresOnThreadsMatchSequentialEvaluations:\
Engine.ThreadCountDoesNotChangeResults:\
Onnx.CpuRowsBitwiseIndependentOfBatchAndThreads:\
OnnxCApi.ChainRowsBitwiseIndependentOfChainCount:\
OnnxCApi.ConcurrentContextsMatchSequentialRuns"}

# Archer must be loaded, or every OpenMP loop reads as a race: name it explicitly (libomp otherwise
# looks for it only on the loader's path) and check below that it announced itself.
archer="$llvm_lib/libarcher.so"
[ -f "$archer" ] || { echo "tsan: $archer not found (install libomp-dev for clang-14)"; exit 1; }
export OMP_TOOL_LIBRARIES=$archer
export ARCHER_OPTIONS=${ARCHER_OPTIONS:-verbose=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:ignore_noninstrumented_modules=1:second_deadlock_stack=1}
export ALMC_TEST_DATA="$root/tests/data"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
log="$build/tsan.log"
status=0
"$build/tests/almc_tests" --gtest_filter="$filter" >"$log" 2>&1 || status=$?
if ! grep -q "Archer detected OpenMP application with TSan" "$log"; then
  tail -n 40 "$log"
  echo "tsan: Archer did not load, so OpenMP synchronisation was invisible to TSan"
  exit 1
fi
if [ $status -ne 0 ] || grep -q "WARNING: ThreadSanitizer" "$log"; then
  grep -A 40 -m 1 "WARNING: ThreadSanitizer" "$log" || tail -n 60 "$log"
  echo "tsan: FAILED (full log: $log)"
  exit 1
fi
echo "thread tests under ThreadSanitizer: $(grep -c '^\[       OK \]' "$log") passed"
