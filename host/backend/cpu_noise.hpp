// Vectorised noise for the CPU backend: cuda/rng.cuh's philox_normal4 for many coordinate groups
// at once, so the compiler can use SIMD (SSE/AVX2 clones chosen at run time).
#pragma once

#include <cstdint>

// Clones of a hot function for wider instruction sets, picked at load time:
// ALMC_CPU_CLONES("avx2", "default"). Not under ThreadSanitizer: the
// clone resolver runs during relocation, before TSan's runtime is up, and its instrumented entry
// crashes the program (scripts/tsan.sh); the baseline code is what TSan checks there.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ALMC_NO_CLONES 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(ALMC_NO_CLONES)
#define ALMC_CPU_CLONES(...)
#else
#define ALMC_CPU_CLONES(...) __attribute__((target_clones(__VA_ARGS__)))
#endif

namespace almc {

// out[4 i + e] = normal e of group g0 + i, keyed (seed, stream, step), for i < n_groups.
void philox_normals_block(uint64_t seed, uint64_t stream, uint64_t step, uint64_t g0, int64_t n_groups, float* out);

// out[j] = the normal of coordinate 4 g0 + j, j < count (any count: the last group may be cut), the
// same bits as philox_normal4. The vectorised path for any row of normals (the scalar
// philox_normal4 is exact but slow on hosts without FMA instructions in the baseline build).
void philox_normals(uint64_t seed, uint64_t stream, uint64_t step, uint64_t g0, int64_t count, float* out);

// out[4 i + e] = normal e of coordinate group `group` of stream streams[i], i < n, keyed (seed,
// step): philox_normal4's bits for many streams (chains) at once, so rows of a group or two (the
// per-chain step's tiny problems) fill the SIMD lanes.
void philox_normals_streams(uint64_t seed, const uint64_t* streams, uint64_t step, uint64_t group, int64_t n,
                            float* out);

}  // namespace almc
