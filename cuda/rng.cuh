// Counter-based noise: every normal is a pure function of (seed, stream, step, coordinate), where
// the stream names one chain: chain `j` of measurement `q` (noise_stream below), so a chain's
// noise does not depend on how many chains each measurement has, how the batch is split or how
// threads are laid out.
//
// Key = seed. Counter = (coordinate / 4, q, step, j) in cuRAND's layout: curand_init(seed,
// subsequence, offset) puts the subsequence in counter words 2-3 and the offset (in units of 4
// draws) in words 0-1, so subsequence = j << 32 | step and offset = 4 (group + q 2^32). One
// Philox call yields the four raw draws, and so four normals, of coordinates 4g .. 4g+3 (g, q, j
// and step are 32-bit). Both backends compile this code, so raw draws agree bit for bit; normals
// agree to a few ulps (the device takes __sincosf, the host sinf and cosf, as cuRAND does).
#pragma once

#include "cuda/common.cuh"

#include <curand_kernel.h>

#include <math.h>

namespace almc {

// Steps at or above this key are reserved for draws outside the step loop (initial state,
// auxiliary measurements, output-iterate choice), keyed by kind in the low bits.
constexpr uint64_t kRngAuxStep = 0x80000000ull;
constexpr uint64_t kRngInitKey = kRngAuxStep + 1;
constexpr uint64_t kRngPickKey = kRngAuxStep + 2;
constexpr uint64_t kRngSmcKey = kRngAuxStep + 3;  // SMC resampling: stream = measurement, group = step
constexpr uint64_t kRngXgpKeyBase = kRngAuxStep + 16;  // + stage index

// The stream of global chain c when each measurement has cpm chains: q << 32 | j with
// c = q cpm + j. One division per chain (never per coordinate).
ALMC_HD uint64_t noise_stream(int64_t c, int64_t cpm) {
  const int64_t q = c / cpm;
  return (static_cast<uint64_t>(q) << 32) | static_cast<uint64_t>(c - q * cpm);
}

// Philox-4x32-10 (Salmon et al. 2011; cuRAND's constants and word order), written once over a
// lane type L: unsigned int here (one counter per thread or loop iteration), or a CPU SIMD vector of
// counters (host/backend/cpu_noise.cpp), which supplies its own mulhilo, ^ and a broadcast of the
// key words. Rounds, word order and key schedule are this code only, whatever the lane type.
constexpr unsigned int kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr unsigned int kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

// Low 32 bits of a * b; the high 32 bits go to *hi.
ALMC_HD unsigned int mulhilo(unsigned int a, unsigned int b, unsigned int* hi) {
#if defined(__CUDA_ARCH__)
  *hi = __umulhi(a, b);
  return a * b;
#else
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<unsigned int>(p >> 32);
  return static_cast<unsigned int>(p);
#endif
}

template <class L>
ALMC_HD void philox_round(L& c0, L& c1, L& c2, L& c3, unsigned int k0, unsigned int k1) {
  L hi0, hi1;
  const L lo0 = mulhilo(c0, kPhiloxM0, &hi0);
  const L lo1 = mulhilo(c2, kPhiloxM1, &hi1);
  c0 = hi1 ^ c1 ^ k0;
  c2 = hi0 ^ c3 ^ k1;
  c1 = lo1;
  c3 = lo0;
}

// Ten rounds on the counter (c0, c1, c2, c3) with key (k0, k1), in place.
template <class L>
ALMC_HD void philox4x32_10(L& c0, L& c1, L& c2, L& c3, unsigned int k0, unsigned int k1) {
#if defined(__CUDACC__)
#pragma unroll
#elif defined(__GNUC__)
#pragma GCC unroll 10
#endif
  for (int r = 0; r < 10; ++r) {
    philox_round(c0, c1, c2, c3, k0, k1);
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

// The counter and key words of (seed, stream, step, group) in cuRAND's layout (see the top).
struct PhiloxKey {
  unsigned int c1, c2, c3, k0, k1;  // counter word 0 is the coordinate group
};
ALMC_HD PhiloxKey philox_key(uint64_t seed, uint64_t stream, uint64_t step) {
  PhiloxKey k;
  k.c1 = static_cast<unsigned int>(stream >> 32);
  k.c2 = static_cast<unsigned int>(step);
  k.c3 = static_cast<unsigned int>(stream);
  k.k0 = static_cast<unsigned int>(seed);
  k.k1 = static_cast<unsigned int>(seed >> 32);
  return k;
}

// Four raw 32-bit draws for coordinates 4*group .. 4*group+3 of a stream.
ALMC_HD uint4 philox_raw4(uint64_t seed, uint64_t stream, uint64_t step, uint64_t group) {
  const PhiloxKey k = philox_key(seed, stream, step);
  unsigned int c0 = static_cast<unsigned int>(group), c1 = k.c1, c2 = k.c2, c3 = k.c3;
  philox4x32_10(c0, c1, c2, c3, k.k0, k.k1);
  uint4 r;
  r.x = c0;
  r.y = c1;
  r.z = c2;
  r.w = c3;
  return r;
}

// Box-Muller on a pair of raw draws, split so that a vectorising caller can evaluate each part
// for many pairs at once: radius sqrt(-2 log u) with u in (0, 1], angle in (0, 2 pi]; the normals
// are radius * sin(angle) and radius * cos(angle) (cuRAND's _curand_box_muller).
constexpr float kInv2Pow32 = 2.3283064e-10f;
constexpr float kInv2Pow32x2Pi = 2.3283064e-10f * 6.2831855f;
ALMC_HD float box_muller_radius(unsigned int a) { return sqrtf(-2.f * logf(a * kInv2Pow32 + kInv2Pow32 / 2)); }
ALMC_HD float box_muller_angle(unsigned int b) { return b * kInv2Pow32x2Pi + kInv2Pow32x2Pi / 2; }

ALMC_HD float2 box_muller(unsigned int a, unsigned int b) {
  const float r = box_muller_radius(a), v = box_muller_angle(b);
  float s, c;
#if defined(__CUDA_ARCH__)
  __sincosf(v, &s, &c);
#else
  s = sinf(v);
  c = cosf(v);
#endif
  return make_float2(r * s, r * c);
}

// Four standard normals: Box-Muller on the pairs (x, y) and (z, w), as curand_normal4 does.
ALMC_HD float4 philox_normal4(uint64_t seed, uint64_t stream, uint64_t step, uint64_t group) {
  const uint4 r = philox_raw4(seed, stream, step, group);
  const float2 a = box_muller(r.x, r.y);
  const float2 b = box_muller(r.z, r.w);
  return make_float4(a.x, a.y, b.x, b.y);
}

// Four uniforms in (0, 1].
ALMC_HD float4 philox_uniform4(uint64_t seed, uint64_t stream, uint64_t step, uint64_t group) {
  return _curand_uniform4(philox_raw4(seed, stream, step, group));
}

ALMC_HD float component(const float4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

}  // namespace almc
