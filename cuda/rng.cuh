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
constexpr uint64_t kRngXgpKeyBase = kRngAuxStep + 16;  // + stage index

// The stream of global chain c when each measurement has cpm chains: q << 32 | j with
// c = q cpm + j. One division per chain (never per coordinate).
ALMC_HD uint64_t noise_stream(int64_t c, int64_t cpm) {
  const int64_t q = c / cpm;
  return (static_cast<uint64_t>(q) << 32) | static_cast<uint64_t>(c - q * cpm);
}

// Four raw 32-bit draws for coordinates 4*group .. 4*group+3 of a stream.
ALMC_HD uint4 philox_raw4(uint64_t seed, uint64_t stream, uint64_t step, uint64_t group) {
  uint4 ctr;
  ctr.x = static_cast<unsigned int>(group);
  ctr.y = static_cast<unsigned int>(stream >> 32);
  ctr.z = static_cast<unsigned int>(step);
  ctr.w = static_cast<unsigned int>(stream);
  uint2 key;
  key.x = static_cast<unsigned int>(seed);
  key.y = static_cast<unsigned int>(seed >> 32);
  return curand_Philox4x32_10(ctr, key);
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
