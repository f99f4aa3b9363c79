// The AVX2 pieces of the CPU noise kernel (compiled with -mavx2 -mfma): Philox on eight 32-bit
// lanes and rng.cuh's Box-Muller eight groups at a time. See cpu_noise.cpp.
#include "host/backend/cpu_noise_batch.hpp"

#include <immintrin.h>

namespace almc {
namespace cpu_noise {
namespace {

struct Lanes8 {
  static constexpr int kWidth = 8;
  __m256i v;
  static Lanes8 iota(unsigned int g) {
    return {_mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(g)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))};
  }
  static Lanes8 splat(unsigned int x) { return {_mm256_set1_epi32(static_cast<int>(x))}; }
  void store(unsigned int* p) const { _mm256_store_si256(reinterpret_cast<__m256i*>(p), v); }
};
inline Lanes8 xor3(Lanes8 a, Lanes8 b, unsigned int k) {
  return {_mm256_xor_si256(_mm256_xor_si256(a.v, b.v), _mm256_set1_epi32(static_cast<int>(k)))};
}
// 32 x 32 -> 64-bit products of the even lanes and of the odd lanes, split into halves: the odd
// lanes moved down by a shuffle, the halves put back in place by a shuffle and a blend each.
inline Lanes8 mulhilo(Lanes8 a, unsigned int m, Lanes8* hi) {
  const __m256i mm = _mm256_set1_epi32(static_cast<int>(m));
  const __m256i even = _mm256_mul_epu32(a.v, mm), odd = _mm256_mul_epu32(_mm256_shuffle_epi32(a.v, 0xF5), mm);
  hi->v = _mm256_blend_epi32(_mm256_shuffle_epi32(even, 0xF5), odd, 0xAA);
  return {_mm256_blend_epi32(even, _mm256_shuffle_epi32(odd, 0xA0), 0xAA)};
}

}  // namespace

// flatten: every shared function is inlined here, so no out-of-line copy compiled for AVX2 can
// stand in for the baseline one at link time (which matters without optimisation).
__attribute__((flatten)) void raw_avx2(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw) {
  philox_batch<Lanes8>(key, first, n, raw);
}
__attribute__((flatten)) void normals_avx2(const PhiloxKey& key, unsigned int first, int n, float* out) {
  normals_batch<Lanes8>(key, first, n, out);
}

}  // namespace cpu_noise
}  // namespace almc
