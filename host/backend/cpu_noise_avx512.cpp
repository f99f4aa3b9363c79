// The AVX-512 pieces of the CPU noise kernel (compiled with -mavx512f -mfma): Philox on four
// registers of sixteen 32-bit lanes and rng.cuh's Box-Muller sixteen groups at a time. See
// cpu_noise.cpp.
#include "host/backend/cpu_noise_batch.hpp"

// GCC 12 warns inside its own avx512fintrin.h (the undefined first operand of the shifts); clang
// has no such warning.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

namespace almc {
namespace cpu_noise {
namespace {

// Four registers of sixteen lanes (64 groups, a whole batch), advanced together: a Philox round
// is a chain of dependent multiplies, shuffles and xors, so one register at a time leaves most of
// the core's vector units idle; four independent ones fill them (1.34x faster per batch than one,
// Zen 5). The rounds are rng.cuh's; only the lane arithmetic is here.
constexpr int kRegs = 4;
struct Lanes16x4 {
  static constexpr int kWidth = 16 * kRegs;
  __m512i v[kRegs];
  static Lanes16x4 iota(unsigned int g) {
    Lanes16x4 l;
    for (int r = 0; r < kRegs; ++r)
      l.v[r] = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(g + 16u * r)),
                                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    return l;
  }
  static Lanes16x4 load(const unsigned int* p) {
    Lanes16x4 l;
    for (int r = 0; r < kRegs; ++r) l.v[r] = _mm512_loadu_si512(p + 16 * r);
    return l;
  }
  static Lanes16x4 splat(unsigned int x) {
    Lanes16x4 l;
    for (int r = 0; r < kRegs; ++r) l.v[r] = _mm512_set1_epi32(static_cast<int>(x));
    return l;
  }
  void store(unsigned int* p) const {
    for (int r = 0; r < kRegs; ++r) _mm512_store_si512(p + 16 * r, v[r]);
  }
};
// a ^ b ^ k in one ternary-logic instruction (truth table 0x96: odd parity).
inline Lanes16x4 xor3(Lanes16x4 a, Lanes16x4 b, unsigned int k) {
  const __m512i kk = _mm512_set1_epi32(static_cast<int>(k));
  Lanes16x4 o;
  for (int r = 0; r < kRegs; ++r) o.v[r] = _mm512_ternarylogic_epi32(a.v[r], b.v[r], kk, 0x96);
  return o;
}
// 32 x 32 -> 64-bit products of the even lanes and of the odd lanes (moved down by a shuffle),
// split into halves by one masked shuffle each: the high words of the even products move down
// into the even lanes of the odd products, the low words of the odd products up into the odd
// lanes of the even products.
inline Lanes16x4 mulhilo(Lanes16x4 a, unsigned int m, Lanes16x4* hi) {
  const __m512i mm = _mm512_set1_epi32(static_cast<int>(m));
  constexpr __mmask16 kEven = 0x5555, kOdd = 0xAAAA;
  Lanes16x4 lo;
  for (int r = 0; r < kRegs; ++r) {
    const __m512i even = _mm512_mul_epu32(a.v[r], mm);
    const __m512i odd = _mm512_mul_epu32(_mm512_shuffle_epi32(a.v[r], _MM_PERM_DDBB), mm);
    hi->v[r] = _mm512_mask_shuffle_epi32(odd, kEven, even, _MM_PERM_DDBB);
    lo.v[r] = _mm512_mask_shuffle_epi32(even, kOdd, odd, _MM_PERM_CCAA);
  }
  return lo;
}

}  // namespace

// flatten: see cpu_noise_avx2.cpp.
__attribute__((flatten)) void raw_avx512(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw) {
  philox_batch<Lanes16x4>(key, first, n, raw);
}
__attribute__((flatten)) void normals_avx512(const PhiloxKey& key, unsigned int first, int n, float* out) {
  normals_batch<Lanes16x4>(key, first, n, out);
}
__attribute__((flatten)) void streams_avx512(const PhiloxKey& key, unsigned int group, const unsigned int* c1,
                                             const unsigned int* c3, int n, float* out) {
  normals_streams_batch<Lanes16x4>(key, group, c1, c3, n, out);
}

}  // namespace cpu_noise
}  // namespace almc

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
