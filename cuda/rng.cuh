// Counter-based noise: every normal is a pure function of (seed, chain, step, coordinate).
//
// Key = seed. Counter = (coordinate / 4, 0, step, chain) in cuRAND's layout: curand_init(seed,
// subsequence, offset) puts the subsequence in counter words 2-3 and the offset (in units of 4
// draws) in words 0-1, so subsequence = chain << 32 | step and offset = coordinate. One Philox
// call then yields the four raw draws, and so four normals, of coordinates 4g .. 4g+3; chain and
// step are 32-bit here. Nothing
// depends on how many chains run, how they are batched or how threads are laid out, and the CPU
// backend compiles this same code, so raw draws agree bit for bit across backends.
#pragma once

#include "cuda/common.cuh"

#include <curand_kernel.h>

namespace almc {

// Steps at or above this key are reserved for draws outside the step loop (initial state,
// auxiliary measurements, output-iterate choice), keyed by kind in the low bits.
constexpr uint64_t kRngAuxStep = 0x80000000ull;
constexpr uint64_t kRngInitKey = kRngAuxStep + 1;
constexpr uint64_t kRngPickKey = kRngAuxStep + 2;
constexpr uint64_t kRngXgpKeyBase = kRngAuxStep + 16;  // + stage index

// Four raw 32-bit draws for coordinates 4*group .. 4*group+3: the Philox output that
// curand_init(seed, (chain << 32) | step, 4 * group) followed by curand4 would return.
ALMC_HD uint4 philox_raw4(uint64_t seed, uint64_t chain, uint64_t step, uint64_t group) {
  uint4 ctr;
  ctr.x = static_cast<unsigned int>(group);
  ctr.y = static_cast<unsigned int>(group >> 32);
  ctr.z = static_cast<unsigned int>(step);
  ctr.w = static_cast<unsigned int>(chain);
  uint2 key;
  key.x = static_cast<unsigned int>(seed);
  key.y = static_cast<unsigned int>(seed >> 32);
  return curand_Philox4x32_10(ctr, key);
}

// Four standard normals: Box-Muller on the pairs (x, y) and (z, w), as curand_normal4 does.
ALMC_HD float4 philox_normal4(uint64_t seed, uint64_t chain, uint64_t step, uint64_t group) {
  const uint4 r = philox_raw4(seed, chain, step, group);
  const float2 a = _curand_box_muller(r.x, r.y);
  const float2 b = _curand_box_muller(r.z, r.w);
  return make_float4(a.x, a.y, b.x, b.y);
}

// Four uniforms in (0, 1].
ALMC_HD float4 philox_uniform4(uint64_t seed, uint64_t chain, uint64_t step, uint64_t group) {
  return _curand_uniform4(philox_raw4(seed, chain, step, group));
}

ALMC_HD float component(const float4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

}  // namespace almc
