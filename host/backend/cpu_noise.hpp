// Vectorised noise for the CPU backend: the same Philox4x32-10 raw draws as cuda/rng.cuh (bit
// for bit) and the same Box-Muller formulas, evaluated for many coordinate groups at once so
// the compiler can use SIMD (SSE/AVX2 clones chosen at run time).
#pragma once

#include <cstdint>

namespace almc {

// out[4 i + e] = normal e of group g0 + i, keyed (seed, chain, step), for i < n_groups.
void philox_normals_block(uint64_t seed, uint64_t chain, uint64_t step, uint64_t g0, int64_t n_groups, float* out);

}  // namespace almc
