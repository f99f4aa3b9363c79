// Pieces of the CPU noise kernel (cpu_noise.cpp) that are compiled once per instruction set, each
// in its own translation unit (cpu_noise.cpp for SSE2, cpu_noise_avx2.cpp, cpu_noise_avx512.cpp):
// a batch of coordinate groups gets its raw Philox draws from rng.cuh's philox4x32_10 on a SIMD
// lane type, then its normals from rng.cuh's box_muller in a loop the compiler vectorises. Every
// operation there is exactly rounded (see rng.cuh), so all widths give the same bits as the
// scalar code and the GPU. Internal to the CPU backend.
#pragma once

#include "cuda/rng.cuh"

#include <cstdint>

namespace almc {
namespace cpu_noise {

constexpr int kBatch = 64;  // coordinate groups per batch (a multiple of every lane width)

// Raw draws of groups first .. first + n - 1: word e of group first + i in u[e][i].
struct RawBatch {
  alignas(64) unsigned int u[4][kBatch];
};

using RawFn = void (*)(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw);
// out[4 i + e] = normal e of group first + i, i < n (any n >= 0; the group counter wraps at 2^32).
using NormalsFn = void (*)(const PhiloxKey& key, unsigned int first, int n, float* out);

void raw_sse(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw);
void raw_avx2(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw);
void raw_avx512(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw);
void normals_sse(const PhiloxKey& key, unsigned int first, int n, float* out);
void normals_avx2(const PhiloxKey& key, unsigned int first, int n, float* out);
void normals_avx512(const PhiloxKey& key, unsigned int first, int n, float* out);
// out[4 i + e] = normal e of group `group` of stream i, i < n <= kBatch, whose counter words 1 and
// 3 (philox_key's c1, c3) are c1[i], c3[i]: many chains at one coordinate group (key.c1 and key.c3
// are not read). c1 and c3 hold kBatch entries (those past n are read and ignored).
using StreamsFn = void (*)(const PhiloxKey& key, unsigned int group, const unsigned int* c1, const unsigned int* c3,
                           int n, float* out);
void streams_sse(const PhiloxKey& key, unsigned int group, const unsigned int* c1, const unsigned int* c3, int n,
                 float* out);
void streams_avx2(const PhiloxKey& key, unsigned int group, const unsigned int* c1, const unsigned int* c3, int n,
                  float* out);
void streams_avx512(const PhiloxKey& key, unsigned int group, const unsigned int* c1, const unsigned int* c3, int n,
                    float* out);

// The kernel the CPU backend uses ("avx512", "avx2" or "sse2"): the widest the CPU has, capped by
// the environment variable ALMC_CPU_NOISE=avx512|avx2|sse2 (read once; another value is ignored
// with a warning). Every choice gives the same bits; the cap is for tests and comparisons.
const char* kernel_name();

namespace {  // each file compiles its own copy for its instruction set

// Philox for a batch, L::kWidth groups per call of the shared rounds. L provides kWidth,
// iota(g) (lanes g, g + 1, ...), splat(v), store(p), ^, xor3 and mulhilo (see rng.cuh).
template <class L>
inline void philox_batch(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw) {
  static_assert(kBatch % L::kWidth == 0, "a partial last call must still fit in the batch");
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

// Box-Muller for a batch: rng.cuh's box_muller on words (0, 1) and (2, 3) of each group, one lane
// per group, then interleaved as out[4 i + e]. The radii first, in a loop of their own: each is a
// long chain of dependent multiply-adds and a square root, and a short loop body lets the core
// overlap many of them (6% faster per batch than one loop doing everything, Zen 5 AVX-512).
inline void box_muller_batch(int n, const RawBatch& raw, float* out) {
  alignas(64) float ra[kBatch], rb[kBatch];
#pragma omp simd
  for (int i = 0; i < n; ++i) {
    ra[i] = box_muller_radius(raw.u[0][i]);
    rb[i] = box_muller_radius(raw.u[2][i]);
  }
#pragma omp simd
  for (int i = 0; i < n; ++i) {
    const float2 a = box_muller_scale(ra[i], box_muller_sincos(raw.u[1][i]));
    const float2 b = box_muller_scale(rb[i], box_muller_sincos(raw.u[3][i]));
    out[4 * i + 0] = a.x;
    out[4 * i + 1] = a.y;
    out[4 * i + 2] = b.x;
    out[4 * i + 3] = b.y;
  }
}

// Normals of n groups (any count), kBatch groups at a time, software-pipelined: the Philox rounds
// of the next batch come before the Box-Muller of the current one, so the two overlap in the
// processor. Philox is integer multiplies, shuffles and xors, Box-Muller floating-point
// multiply-adds and square roots: run one after the other, each batch had a Philox phase that
// left the floating-point units idle and a Box-Muller phase that left the integer ones idle
// (AVX-512, 1 thread, per 64 groups: 82 -> 71 ns with -fschedule-insns, see CMakeLists.txt).
// The order of the arithmetic within each number is unchanged, so are the bits.
template <class L>
inline void normals_batch(const PhiloxKey& key, unsigned int first, int n, float* out) {
  RawBatch raw[2];
  philox_batch<L>(key, first, n < kBatch ? n : kBatch, raw[0]);
  for (int base = 0, cur = 0; base < n; base += kBatch, cur ^= 1) {
    const int next = base + kBatch;
    if (next < n) philox_batch<L>(key, first + static_cast<unsigned int>(next), n - next < kBatch ? n - next : kBatch, raw[cur ^ 1]);
    if (n - base >= kBatch)
      box_muller_batch(kBatch, raw[cur], out + 4 * base);  // a whole batch: constant trip counts
    else
      box_muller_batch(n - base, raw[cur], out + 4 * base);
  }
}

// Philox for one group of many streams (StreamsFn), L::kWidth streams per call of the shared
// rounds; L also provides load(p) (lanes p[0], p[1], ...).
template <class L>
inline void normals_streams_batch(const PhiloxKey& key, unsigned int group, const unsigned int* c1,
                                  const unsigned int* c3, int n, float* out) {
  RawBatch raw;
  for (int i = 0; i < n; i += L::kWidth) {
    L w0 = L::splat(group), w1 = L::load(c1 + i), w2 = L::splat(key.c2), w3 = L::load(c3 + i);
    philox4x32_10(w0, w1, w2, w3, key.k0, key.k1);
    w0.store(raw.u[0] + i);
    w1.store(raw.u[1] + i);
    w2.store(raw.u[2] + i);
    w3.store(raw.u[3] + i);
  }
  box_muller_batch(n, raw, out);
}

}  // namespace
}  // namespace cpu_noise
}  // namespace almc
