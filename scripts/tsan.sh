#!/usr/bin/env bash
# The thread tests under ThreadSanitizer (issue 13): configures build-tsan with -DALMC_TSAN=ON
# -DALMC_CUDA=OFF (gcc), builds the CPU test binary and runs the tests that use handles from
# several threads at once (ALMC_TSAN_FILTER, a gtest filter). Any data race report fails the run.
#
# GNU OpenMP (libgomp) is not built with ThreadSanitizer: its barriers and team hand-offs are
# invisible to TSan, which then reports the ordinary OpenMP hand-off of data between threads of
# one team as races. fuzz/tsan.supp suppresses reports whose stack runs through libgomp only;
# races between application threads (the contexts the tests drive) are still reported.
#
# Environment: ALMC_TSAN_BUILD_DIR (default build-tsan), ALMC_JOBS (build parallelism).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${ALMC_TSAN_BUILD_DIR:-build-tsan}
jobs=${ALMC_JOBS:-$(nproc)}
filter=${ALMC_TSAN_FILTER:-*OnThreads*}

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DALMC_TSAN=ON -DALMC_CUDA=OFF -DALMC_BUILD_BENCH=OFF -DALMC_BUILD_CLI=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.log" 2>&1 || { cat "$build.log"; exit 1; }
fi
cmake --build "$build" -j"$jobs" --target almc_tests

export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/fuzz/tsan.supp}
export OMP_WAIT_POLICY=passive
ALMC_TEST_DATA="$root/tests/data" "$build/tests/almc_tests" --gtest_filter="$filter"
echo "thread tests under ThreadSanitizer: passed"
