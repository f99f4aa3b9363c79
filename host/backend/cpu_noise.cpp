// Compiled with -ffast-math (inputs are finite by construction) so that logf/sinf/cosf vectorise through
// glibc's libmvec; the integer Philox rounds are exact, so raw draws stay bit-identical to
// cuRAND's, and normals agree with the scalar path to a few ulps (as device normals do).
#include "host/backend/cpu_noise.hpp"

#include <cmath>

namespace almc {
namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // Philox4x32 multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments
constexpr int kTile = 64;                                 // groups per SIMD batch

// float(x) for a 32-bit unsigned x, correctly rounded like the plain conversion, in a form that
// vectorises without AVX-512 (both halves convert exactly; the one addition rounds once).
inline float u32_to_float(uint32_t x) {
  return static_cast<float>(static_cast<int32_t>(x >> 16)) * 65536.f + static_cast<float>(static_cast<int32_t>(x & 0xFFFFu));
}

}  // namespace

__attribute__((target_clones("avx2", "default")))
void philox_normals_block(uint64_t seed, uint64_t chain, uint64_t step, uint64_t g0, int64_t n_groups, float* out) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const uint32_t c2 = static_cast<uint32_t>(step), c3 = static_cast<uint32_t>(chain);
  uint32_t r0[kTile], r1[kTile], r2[kTile], r3[kTile];
  for (int64_t base = 0; base < n_groups; base += kTile) {
    const int n = static_cast<int>(n_groups - base < kTile ? n_groups - base : kTile);
#pragma omp simd
    for (int i = 0; i < n; ++i) {
      const uint64_t g = g0 + static_cast<uint64_t>(base + i);
      uint32_t x0 = static_cast<uint32_t>(g), x1 = static_cast<uint32_t>(g >> 32), x2 = c2, x3 = c3;
      uint32_t a = k0, b = k1;
      for (int round = 0; round < 10; ++round) {
        const uint64_t p0 = static_cast<uint64_t>(kM0) * x0, p1 = static_cast<uint64_t>(kM1) * x2;
        const uint32_t y0 = static_cast<uint32_t>(p1 >> 32) ^ x1 ^ a;
        const uint32_t y1 = static_cast<uint32_t>(p1);
        const uint32_t y2 = static_cast<uint32_t>(p0 >> 32) ^ x3 ^ b;
        const uint32_t y3 = static_cast<uint32_t>(p0);
        x0 = y0;
        x1 = y1;
        x2 = y2;
        x3 = y3;
        a += kW0;
        b += kW1;
      }
      r0[i] = x0;
      r1[i] = x1;
      r2[i] = x2;
      r3[i] = x3;
    }
    // Box-Muller as cuRAND's _curand_box_muller: u in (0, 1], angle in (0, 2 pi].
    constexpr float kInv32 = 2.3283064e-10f;            // 2^-32
    constexpr float kInv32_2pi = 2.3283064e-10f * 6.2831855f;
    // Radii and angles first; sines and cosines in separate loops, or GCC fuses each pair into
    // sincosf, which has no SIMD variant.
    float s1[kTile], s2[kTile], v1[kTile], v2[kTile], n0[kTile], n1[kTile], n2[kTile], n3[kTile];
#pragma omp simd
    for (int i = 0; i < n; ++i) {
      s1[i] = sqrtf(-2.f * logf(u32_to_float(r0[i]) * kInv32 + kInv32 / 2));
      s2[i] = sqrtf(-2.f * logf(u32_to_float(r2[i]) * kInv32 + kInv32 / 2));
      v1[i] = u32_to_float(r1[i]) * kInv32_2pi + kInv32_2pi / 2;
      v2[i] = u32_to_float(r3[i]) * kInv32_2pi + kInv32_2pi / 2;
    }
#pragma omp simd
    for (int i = 0; i < n; ++i) {
      n0[i] = sinf(v1[i]) * s1[i];
      n2[i] = sinf(v2[i]) * s2[i];
    }
#pragma omp simd
    for (int i = 0; i < n; ++i) {
      n1[i] = cosf(v1[i]) * s1[i];
      n3[i] = cosf(v2[i]) * s2[i];
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
