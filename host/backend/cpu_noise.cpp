// The CPU backend's launcher for the shared noise code (cuda/rng.cuh): many coordinate groups at
// once, in batches of cpu_noise::kBatch. Philox runs several groups per call of rng.cuh's
// philox4x32_10 on a SIMD lane type (only the lane arithmetic is defined here and in the per-ISA
// files; the rounds are the shared ones), so raw draws stay bit-identical to cuRAND's. Box-Muller
// is rng.cuh's box_muller in a loop the compiler vectorises: polynomials of exactly rounded
// operations (fused multiply-adds: the FMA instructions on AVX2 and AVX-512, an exact emulation in
// double on SSE2), so the normals are bitwise those of the scalar code and of the GPU on every
// path. These files are compiled without -ffast-math and with -ffp-contract=off (only the explicit
// fmaf fuse). The widest kernel the CPU runs is picked once (AVX-512, AVX2 + FMA, else SSE2);
// ALMC_CPU_NOISE caps it (cpu_noise_batch.hpp).
#include "host/backend/cpu_noise.hpp"

// Clang says so when it cannot vectorise the SSE2 kernel's loop (the multiply-adds emulated in
// double there); that loop is correct either way.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include "host/backend/cpu_noise_batch.hpp"

#include <immintrin.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace almc {
namespace cpu_noise {
namespace {

// Four 32-bit lanes in an SSE register (SSE2 only: non-release builds target baseline x86-64).
struct Lanes4 {
  static constexpr int kWidth = 4;
  __m128i v;
  static Lanes4 iota(unsigned int g) {
    return {_mm_add_epi32(_mm_set1_epi32(static_cast<int>(g)), _mm_setr_epi32(0, 1, 2, 3))};
  }
  static Lanes4 load(const unsigned int* p) { return {_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))}; }
  static Lanes4 splat(unsigned int x) { return {_mm_set1_epi32(static_cast<int>(x))}; }
  void store(unsigned int* p) const { _mm_store_si128(reinterpret_cast<__m128i*>(p), v); }
};
inline Lanes4 xor3(Lanes4 a, Lanes4 b, unsigned int k) {
  return {_mm_xor_si128(_mm_xor_si128(a.v, b.v), _mm_set1_epi32(static_cast<int>(k)))};
}
// 32 x 32 -> 64-bit products of the even lanes and of the odd lanes, split into halves.
inline Lanes4 mulhilo(Lanes4 a, unsigned int m, Lanes4* hi) {
  const __m128i mm = _mm_set1_epi32(static_cast<int>(m));
  const __m128i even = _mm_mul_epu32(a.v, mm), odd = _mm_mul_epu32(_mm_srli_epi64(a.v, 32), mm);
  const __m128i high = _mm_set1_epi64x(static_cast<long long>(0xffffffff00000000ull));
  hi->v = _mm_or_si128(_mm_srli_epi64(even, 32), _mm_and_si128(odd, high));
  return {_mm_or_si128(_mm_andnot_si128(high, even), _mm_slli_epi64(odd, 32))};
}

struct Kernel {
  NormalsFn fn;
  const char* name;
  StreamsFn streams;
};

Kernel pick() {
  __builtin_cpu_init();
  const char* cap = std::getenv("ALMC_CPU_NOISE");
  if (cap && std::strcmp(cap, "avx512") && std::strcmp(cap, "avx2") && std::strcmp(cap, "sse2")) {
    // A library must not end its host process; the choice changes speed only, never results.
    std::fprintf(stderr, "almc: ignoring ALMC_CPU_NOISE=%s (not one of avx512, avx2, sse2)\n", cap);
    cap = nullptr;
  }
  const bool allow512 = !cap || !std::strcmp(cap, "avx512");
  const bool allow2 = allow512 || !std::strcmp(cap, "avx2");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (allow512 && avx2 && __builtin_cpu_supports("avx512f")) return {normals_avx512, "avx512", streams_avx512};
  if (allow2 && avx2) return {normals_avx2, "avx2", streams_avx2};
  return {normals_sse, "sse2", streams_sse};
}

const Kernel& kernel() {
  static const Kernel k = pick();
  return k;
}

}  // namespace

void raw_sse(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw) { philox_batch<Lanes4>(key, first, n, raw); }
// flatten: the transform must be inlined into the loop for it to vectorise.
__attribute__((flatten)) void normals_sse(const PhiloxKey& key, unsigned int first, int n, float* out) {
  normals_batch<Lanes4>(key, first, n, out);
}
__attribute__((flatten)) void streams_sse(const PhiloxKey& key, unsigned int group, const unsigned int* c1,
                                          const unsigned int* c3, int n, float* out) {
  normals_streams_batch<Lanes4>(key, group, c1, c3, n, out);
}
const char* kernel_name() { return kernel().name; }

}  // namespace cpu_noise

void philox_normals_block(uint64_t seed, uint64_t stream, uint64_t step, uint64_t g0, int64_t n_groups, float* out) {
  const cpu_noise::NormalsFn fn = cpu_noise::kernel().fn;
  const PhiloxKey key = philox_key(seed, stream, step);
  constexpr int64_t kCall = int64_t{1} << 24;  // groups per call (the kernels count in int)
  for (int64_t base = 0; base < n_groups; base += kCall) {
    const int n = static_cast<int>(n_groups - base < kCall ? n_groups - base : kCall);
    fn(key, static_cast<unsigned int>(g0 + static_cast<uint64_t>(base)), n, out + 4 * base);
  }
}

void philox_normals_streams(uint64_t seed, const uint64_t* streams, uint64_t step, uint64_t group, int64_t n,
                            float* out) {
  const cpu_noise::StreamsFn fn = cpu_noise::kernel().streams;
  const PhiloxKey key = philox_key(seed, 0, step);
  alignas(64) unsigned int c1[cpu_noise::kBatch], c3[cpu_noise::kBatch];
  for (int64_t base = 0; base < n; base += cpu_noise::kBatch) {
    const int m = static_cast<int>(n - base < cpu_noise::kBatch ? n - base : cpu_noise::kBatch);
    for (int i = 0; i < cpu_noise::kBatch; ++i) {
      const PhiloxKey s = philox_key(seed, streams[base + (i < m ? i : 0)], step);  // philox_key's split
      c1[i] = s.c1;
      c3[i] = s.c3;
    }
    fn(key, static_cast<unsigned int>(group), c1, c3, m, out + 4 * base);
  }
}

void philox_normals(uint64_t seed, uint64_t stream, uint64_t step, uint64_t g0, int64_t count, float* out) {
  const int64_t full = count / 4, tail = count % 4;
  philox_normals_block(seed, stream, step, g0, full, out);
  if (tail) {
    float last[4];
    philox_normals_block(seed, stream, step, g0 + static_cast<uint64_t>(full), 1, last);
    for (int64_t e = 0; e < tail; ++e) out[4 * full + e] = last[e];
  }
}

}  // namespace almc
