// Pieces of the CPU noise kernel (cpu_noise.cpp) that are compiled once per instruction set, each
// in its own translation unit (cpu_noise_avx2.cpp, cpu_noise_avx512.cpp): a batch of coordinate
// groups gets its raw Philox draws from rng.cuh's philox4x32_10 on a SIMD lane type, then
// Box-Muller from rng.cuh's box_muller_radius / box_muller_angle and the vector libm. Internal to
// the CPU backend.
#pragma once

#include "cuda/rng.cuh"

#include <cmath>
#include <cstdint>

namespace almc {
namespace cpu_noise {

constexpr int kBatch = 64;  // coordinate groups per batch (a multiple of every lane width)

// Raw draws of groups first .. first + n - 1: word e of group first + i in u[e][i].
struct RawBatch {
  alignas(64) unsigned int u[4][kBatch];
};

// Box-Muller radii of a batch: sqrt(-2 log u) of words 0 and 2.
struct Radii {
  alignas(64) float r0[kBatch], r2[kBatch];
};

using RawFn = void (*)(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw);
using RadiiFn = void (*)(int n, const RawBatch& raw, Radii& radii);
using FinishFn = void (*)(int n, const RawBatch& raw, const Radii& radii, float* out);

void raw_sse(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw);
void raw_avx2(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw);
void raw_avx512(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw);
void radii_sse(int n, const RawBatch& raw, Radii& radii);
void radii_avx2(int n, const RawBatch& raw, Radii& radii);
void finish_sse(int n, const RawBatch& raw, const Radii& radii, float* out);
void finish_avx2(int n, const RawBatch& raw, const Radii& radii, float* out);
void finish_avx512(int n, const RawBatch& raw, const Radii& radii, float* out);

namespace {  // each file compiles its own copy for its instruction set

// Philox for a batch, L::kWidth groups per call of the shared rounds. L provides kWidth,
// iota(g) (lanes g, g + 1, ...), splat(v), store(p), ^ and mulhilo (see rng.cuh).
template <class L>
inline void philox_batch(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw) {
  for (int i = 0; i < n; i += L::kWidth) {
    L c0 = L::iota(first + static_cast<unsigned int>(i)), c1 = L::splat(key.c1), c2 = L::splat(key.c2),
      c3 = L::splat(key.c3);
    philox4x32_10(c0, c1, c2, c3, key.k0, key.k1);
    c0.store(raw.u[0] + i);
    c1.store(raw.u[1] + i);
    c2.store(raw.u[2] + i);
    c3.store(raw.u[3] + i);
  }
}

// Box-Muller for a batch, out[4 i + e] = normal e of group i, in two parts: the radii, then the
// angles, sines and cosines (separate passes, or GCC fuses each pair into sincosf, which has no
// SIMD variant) and the interleaved output.
inline void box_muller_radii(int n, const RawBatch& raw, Radii& radii) {
#pragma omp simd
  for (int i = 0; i < n; ++i) {
    radii.r0[i] = box_muller_radius(raw.u[0][i]);
    radii.r2[i] = box_muller_radius(raw.u[2][i]);
  }
}

inline void box_muller_finish(int n, const RawBatch& raw, const Radii& radii, float* out) {
  float v1[kBatch], v3[kBatch], n0[kBatch], n1[kBatch], n2[kBatch], n3[kBatch];
#pragma omp simd
  for (int i = 0; i < n; ++i) {
    v1[i] = box_muller_angle(raw.u[1][i]);
    v3[i] = box_muller_angle(raw.u[3][i]);
  }
#pragma omp simd
  for (int i = 0; i < n; ++i) {
    n0[i] = radii.r0[i] * sinf(v1[i]);
    n2[i] = radii.r2[i] * sinf(v3[i]);
  }
#pragma omp simd
  for (int i = 0; i < n; ++i) {
    n1[i] = radii.r0[i] * cosf(v1[i]);
    n3[i] = radii.r2[i] * cosf(v3[i]);
  }
  for (int i = 0; i < n; ++i) {
    out[4 * i + 0] = n0[i];
    out[4 * i + 1] = n1[i];
    out[4 * i + 2] = n2[i];
    out[4 * i + 3] = n3[i];
  }
}

}  // namespace
}  // namespace cpu_noise
}  // namespace almc
