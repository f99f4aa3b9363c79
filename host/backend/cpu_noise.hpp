// Vectorised noise for the CPU backend: cuda/rng.cuh's philox_normal4 for many coordinate groups
// at once, so the compiler can use SIMD (SSE/AVX2 clones chosen at run time).
#pragma once

#include <cstdint>

namespace almc {

// out[4 i + e] = normal e of group g0 + i, keyed (seed, stream, step), for i < n_groups.
void philox_normals_block(uint64_t seed, uint64_t stream, uint64_t step, uint64_t g0, int64_t n_groups, float* out);

}  // namespace almc
