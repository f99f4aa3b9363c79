// The AVX-512 pieces of the CPU noise kernel (compiled with -mavx512f): Philox on sixteen 32-bit
// lanes, and Box-Muller's angles, sines and cosines; the radii stay with the AVX2 code. See
// cpu_noise.cpp.
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
inline Lanes16 operator^(Lanes16 a, Lanes16 b) { return {_mm512_xor_si512(a.v, b.v)}; }
inline Lanes16 operator^(Lanes16 a, unsigned int k) {
  return {_mm512_xor_si512(a.v, _mm512_set1_epi32(static_cast<int>(k)))};
}
// 32 x 32 -> 64-bit products of the even lanes and of the odd lanes, split into halves.
inline Lanes16 mulhilo(Lanes16 a, unsigned int m, Lanes16* hi) {
  const __m512i mm = _mm512_set1_epi32(static_cast<int>(m));
  const __m512i even = _mm512_mul_epu32(a.v, mm), odd = _mm512_mul_epu32(_mm512_srli_epi64(a.v, 32), mm);
  constexpr __mmask16 kOdd = 0xAAAA;
  hi->v = _mm512_mask_blend_epi32(kOdd, _mm512_srli_epi64(even, 32), odd);
  return {_mm512_mask_blend_epi32(kOdd, even, _mm512_slli_epi64(odd, 32))};
}

}  // namespace

// flatten: see cpu_noise_avx2.cpp.
__attribute__((flatten)) void raw_avx512(const PhiloxKey& key, unsigned int first, int n, RawBatch& raw) {
  philox_batch<Lanes16>(key, first, n, raw);
}
__attribute__((flatten)) void finish_avx512(int n, const RawBatch& raw, const Radii& radii, float* out) {
  box_muller_finish(n, raw, radii, out);
}

}  // namespace cpu_noise
}  // namespace almc

#pragma GCC diagnostic pop
