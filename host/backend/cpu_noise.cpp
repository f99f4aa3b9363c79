// The CPU backend's launcher for the shared noise code (cuda/rng.cuh): many coordinate groups at
// once, in passes the compiler vectorises. Compiled with -ffast-math (inputs are finite by
// construction) so that logf/sinf/cosf vectorise through glibc's libmvec; the Philox rounds are
// integer arithmetic, so raw draws stay bit-identical to cuRAND's, and normals agree with the
// scalar path to a few ulps (as device normals do).
#include "host/backend/cpu_noise.hpp"

#include "cuda/rng.cuh"

#include <cmath>

namespace almc {
namespace {
constexpr int kBatch = 64;  // groups per SIMD batch
}  // namespace

__attribute__((target_clones("avx2", "default")))
void philox_normals_block(uint64_t seed, uint64_t stream, uint64_t step, uint64_t g0, int64_t n_groups, float* out) {
  for (int64_t base = 0; base < n_groups; base += kBatch) {
    const int n = static_cast<int>(n_groups - base < kBatch ? n_groups - base : kBatch);
    // Radii and angles first; sines and cosines in separate passes, or GCC fuses each pair into
    // sincosf, which has no SIMD variant.
    float s1[kBatch], s2[kBatch], v1[kBatch], v2[kBatch], n0[kBatch], n1[kBatch], n2[kBatch], n3[kBatch];
#pragma omp simd
    for (int i = 0; i < n; ++i) {
      const uint4 r = philox_raw4(seed, stream, step, g0 + static_cast<uint64_t>(base + i));
      s1[i] = box_muller_radius(r.x);
      v1[i] = box_muller_angle(r.y);
      s2[i] = box_muller_radius(r.z);
      v2[i] = box_muller_angle(r.w);
    }
#pragma omp simd
    for (int i = 0; i < n; ++i) {
      n0[i] = s1[i] * sinf(v1[i]);
      n2[i] = s2[i] * sinf(v2[i]);
    }
#pragma omp simd
    for (int i = 0; i < n; ++i) {
      n1[i] = s1[i] * cosf(v1[i]);
      n3[i] = s2[i] * cosf(v2[i]);
    }
    float* o = out + 4 * base;
    for (int i = 0; i < n; ++i) {
      o[4 * i + 0] = n0[i];
      o[4 * i + 1] = n1[i];
      o[4 * i + 2] = n2[i];
      o[4 * i + 3] = n3[i];
    }
  }
}

}  // namespace almc
