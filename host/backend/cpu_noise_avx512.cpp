// The AVX-512 pieces of the CPU noise kernel (compiled with -mavx512f -mfma): Philox on sixteen
// 32-bit lanes and rng.cuh's Box-Muller sixteen groups at a time. See cpu_noise.cpp.
#include "host/backend/cpu_noise_batch.hpp"

// GCC 12 warns inside its own avx512fintrin.h (the undefined first operand of the shifts).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace almc {
namespace cpu_noise {
namespace {

struct Lanes16 {
  static constexpr int kWidth = 16;
  __m512i v;
  static Lanes16 iota(unsigned int g) {
    return {_mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(g)),
                             _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))};
  }
  static Lanes16 splat(unsigned int x) { return {_mm512_set1_epi32(static_cast<int>(x))}; }
  void store(unsigned int* p) const { _mm512_store_si512(p, v); }
};
// a ^ b ^ k in one ternary-logic instruction (truth table 0x96: odd parity).
inline Lanes16 xor3(Lanes16 a, Lanes16 b, unsigned int k) {
  return {_mm512_ternarylogic_epi32(a.v, b.v, _mm512_set1_epi32(static_cast<int>(k)), 0x96)};
}
// 32 x 32 -> 64-bit products of the even lanes and of the odd lanes (moved down by a shuffle),
// split into halves by one masked shuffle each: the high words of the even products move down
// into the even lanes of the odd products, the low words of the odd products up into the odd
// lanes of the even products.
inline Lanes16 mulhilo(Lanes16 a, unsigned int m, Lanes16* hi) {
  const __m512i mm = _mm512_set1_epi32(static_cast<int>(m));
  const __m512i even = _mm512_mul_epu32(a.v, mm);
  const __m512i odd = _mm512_mul_epu32(_mm512_shuffle_epi32(a.v, _MM_PERM_DDBB), mm);
  constexpr __mmask16 kEven = 0x5555, kOdd = 0xAAAA;
  hi->v = _mm512_mask_shuffle_epi32(odd, kEven, even, _MM_PERM_DDBB);
  return {_mm512_mask_shuffle_epi32(even, kOdd, odd, _MM_PERM_CCAA)};
}

}  // namespace

// flatten: see cpu_noise_avx2.cpp.
__attribute__((flatten)) void raw_avx512(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw) {
  philox_batch<Lanes16>(key, first, n, raw);
}
__attribute__((flatten)) void normals_avx512(const PhiloxKey& key, unsigned int first, int n, float* out) {
  normals_batch<Lanes16>(key, first, n, out);
}

}  // namespace cpu_noise
}  // namespace almc

#pragma GCC diagnostic pop
