// The CPU backend's launcher for the shared noise code (cuda/rng.cuh): many coordinate groups at
// once, in batches. Philox runs several groups per call of rng.cuh's philox4x32_10 on a SIMD lane
// type (only the lane arithmetic is defined here and in the per-ISA files; the rounds are the
// shared ones), so raw draws stay bit-identical to cuRAND's. Box-Muller runs in passes the
// compiler vectorises; these files are compiled with -ffast-math (inputs are finite by
// construction) so that logf/sinf/cosf vectorise through glibc's libmvec, and normals agree with
// the scalar path to a few ulps (as device normals do). The widest Philox the CPU runs is picked
// once (AVX-512, AVX2, else SSE2). The radii are computed by the AVX2 code wherever the CPU has
// AVX2 (built for AVX-512 they differ in the last bit on ~38% of the 2^32 inputs: libmvec's
// AVX-512 logf or the fast-math vector sqrt, not told apart); angles, sines and cosines run at
// the widest width (glibc 2.36's AVX-512 and AVX2 sinf/cosf agree bit for bit on all 2^32 angles
// the noise can take, checked once), so the normals on an AVX-512 CPU are those of its AVX2 path.
#include "host/backend/cpu_noise.hpp"

#include "host/backend/cpu_noise_batch.hpp"

#include <immintrin.h>

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
  static Lanes4 splat(unsigned int x) { return {_mm_set1_epi32(static_cast<int>(x))}; }
  void store(unsigned int* p) const { _mm_store_si128(reinterpret_cast<__m128i*>(p), v); }
};
inline Lanes4 operator^(Lanes4 a, Lanes4 b) { return {_mm_xor_si128(a.v, b.v)}; }
inline Lanes4 operator^(Lanes4 a, unsigned int k) { return {_mm_xor_si128(a.v, _mm_set1_epi32(static_cast<int>(k)))}; }
// 32 x 32 -> 64-bit products of the even lanes and of the odd lanes, split into halves.
inline Lanes4 mulhilo(Lanes4 a, unsigned int m, Lanes4* hi) {
  const __m128i mm = _mm_set1_epi32(static_cast<int>(m));
  const __m128i even = _mm_mul_epu32(a.v, mm), odd = _mm_mul_epu32(_mm_srli_epi64(a.v, 32), mm);
  const __m128i high = _mm_set1_epi64x(static_cast<long long>(0xffffffff00000000ull));
  hi->v = _mm_or_si128(_mm_srli_epi64(even, 32), _mm_and_si128(odd, high));
  return {_mm_or_si128(_mm_andnot_si128(high, even), _mm_slli_epi64(odd, 32))};
}

struct Kernels {
  RawFn raw;
  RadiiFn radii;
  FinishFn finish;
};

Kernels pick() {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f");
  return {avx512 ? raw_avx512 : avx2 ? raw_avx2 : raw_sse, avx2 ? radii_avx2 : radii_sse,
          avx512 ? finish_avx512 : avx2 ? finish_avx2 : finish_sse};
}

}  // namespace

void raw_sse(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw) { philox_batch<Lanes4>(key, first, n, raw); }
void radii_sse(int n, const RawBatch& raw, Radii& radii) { box_muller_radii(n, raw, radii); }
void finish_sse(int n, const RawBatch& raw, const Radii& radii, float* out) { box_muller_finish(n, raw, radii, out); }

}  // namespace cpu_noise

void philox_normals_block(uint64_t seed, uint64_t stream, uint64_t step, uint64_t g0, int64_t n_groups, float* out) {
  static const cpu_noise::Kernels k = cpu_noise::pick();
  const PhiloxKey key = philox_key(seed, stream, step);
  cpu_noise::RawBatch raw;
  cpu_noise::Radii radii;
  for (int64_t base = 0; base < n_groups; base += cpu_noise::kBatch) {
    const int n = static_cast<int>(n_groups - base < cpu_noise::kBatch ? n_groups - base : cpu_noise::kBatch);
    k.raw(key, static_cast<unsigned int>(g0 + static_cast<uint64_t>(base)), n, raw);
    k.radii(n, raw, radii);
    k.finish(n, raw, radii, out + 4 * base);
  }
}

}  // namespace almc
