// The AVX2 pieces of the CPU noise kernel (compiled with -mavx2 -mfma): Philox on four registers
// of eight 32-bit lanes and rng.cuh's Box-Muller eight groups at a time. See cpu_noise.cpp.
#include "host/backend/cpu_noise_batch.hpp"

#include <immintrin.h>

namespace almc {
namespace cpu_noise {
namespace {

// Four independent registers of eight lanes advanced together (32 groups): a Philox round is a
// chain of dependent operations, and one register at a time leaves the vector units idle (four:
// 1.6x faster per batch than one on Zen 5 at AVX2, despite some register spills).
constexpr int kRegs = 4;
struct Lanes8x4 {
  static constexpr int kWidth = 8 * kRegs;
  __m256i v[kRegs];
  static Lanes8x4 iota(unsigned int g) {
    Lanes8x4 l;
    for (int r = 0; r < kRegs; ++r)
      l.v[r] = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(g + 8u * r)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return l;
  }
  static Lanes8x4 load(const unsigned int* p) {
    Lanes8x4 l;
    for (int r = 0; r < kRegs; ++r) l.v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8 * r));
    return l;
  }
  static Lanes8x4 splat(unsigned int x) {
    Lanes8x4 l;
    for (int r = 0; r < kRegs; ++r) l.v[r] = _mm256_set1_epi32(static_cast<int>(x));
    return l;
  }
  void store(unsigned int* p) const {
    for (int r = 0; r < kRegs; ++r) _mm256_store_si256(reinterpret_cast<__m256i*>(p + 8 * r), v[r]);
  }
};
inline Lanes8x4 xor3(Lanes8x4 a, Lanes8x4 b, unsigned int k) {
  const __m256i kk = _mm256_set1_epi32(static_cast<int>(k));
  Lanes8x4 o;
  for (int r = 0; r < kRegs; ++r) o.v[r] = _mm256_xor_si256(_mm256_xor_si256(a.v[r], b.v[r]), kk);
  return o;
}
// 32 x 32 -> 64-bit products of the even lanes and of the odd lanes, split into halves: the odd
// lanes moved down by a shuffle, the halves put back in place by a shuffle and a blend each.
inline Lanes8x4 mulhilo(Lanes8x4 a, unsigned int m, Lanes8x4* hi) {
  const __m256i mm = _mm256_set1_epi32(static_cast<int>(m));
  Lanes8x4 lo;
  for (int r = 0; r < kRegs; ++r) {
    const __m256i even = _mm256_mul_epu32(a.v[r], mm), odd = _mm256_mul_epu32(_mm256_shuffle_epi32(a.v[r], 0xF5), mm);
    hi->v[r] = _mm256_blend_epi32(_mm256_shuffle_epi32(even, 0xF5), odd, 0xAA);
    lo.v[r] = _mm256_blend_epi32(even, _mm256_shuffle_epi32(odd, 0xA0), 0xAA);
  }
  return lo;
}

}  // namespace

// flatten: every shared function is inlined here, so no out-of-line copy compiled for AVX2 can
// stand in for the baseline one at link time (which matters without optimisation).
__attribute__((flatten)) void raw_avx2(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw) {
  philox_batch<Lanes8x4>(key, first, n, raw);
}
__attribute__((flatten)) void normals_avx2(const PhiloxKey& key, unsigned int first, int n, float* out) {
  normals_batch<Lanes8x4>(key, first, n, out);
}
__attribute__((flatten)) void streams_avx2(const PhiloxKey& key, unsigned int group, const unsigned int* c1,
                                           const unsigned int* c3, int n, float* out) {
  normals_streams_batch<Lanes8x4>(key, group, c1, c3, n, out);
}

}  // namespace cpu_noise
}  // namespace almc
