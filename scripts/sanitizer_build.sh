#!/usr/bin/env bash
# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: configures the one sanitizer build both use
# (default build-asan): clang-14, ASan + UBSan (+ LeakSanitizer), the libFuzzer targets and the
# test suite in the same tree, CPU backend only, no MPI (Open MPI's own start-up allocations are
# not leak-clean; the MPI tests run in the main suite). One build serves both stages: the library
# is compiled once with the fuzzers' coverage instrumentation (the tests link it without libFuzzer;
# the instrumentation's hooks are the sanitizer runtime's no-ops there). clang's UBSan also checks
# what GCC's does not (enum loads, arithmetic on null pointers): it found two such bugs.
#
# -O1 (what the sanitizers' documentation suggests; GCC's UBSan at -O2 took 86 s for cpu_backend.cpp
# alone, 35 s at -O1). Environment: ALMC_SAN_BUILD_DIR (default build-asan), SAN_CC / SAN_CXX (default
# clang-14 / clang++-14).
san_build=${ALMC_SAN_BUILD_DIR:-build-asan}
san_configure() {
  if [ ! -f "$san_build/CMakeCache.txt" ]; then
    CC=${SAN_CC:-clang-14} CXX=${SAN_CXX:-clang++-14} cmake -S . -B "$san_build" -DALMC_SANITIZE=ON \
      -DALMC_BUILD_FUZZ=ON -DALMC_CUDA=OFF -DALMC_MPI=OFF -DALMC_BUILD_BENCH=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" \
      -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" >"$san_build.log" 2>&1 || { cat "$san_build.log"; exit 1; }
  fi
}
