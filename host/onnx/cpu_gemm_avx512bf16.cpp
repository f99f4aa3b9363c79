// The CPU GEMM's BF16 kernel (cpu_gemm.hpp) with AVX512_BF16: VDPBF16PS adds a pair's two
// products to each float lane. Compiled with -mavx512f -mavx512bf16 and called only when the CPU
// has both. Only intrinsics and the tile templates (internal linkage through Vec) are used here.
#include <immintrin.h>

#include "host/onnx/cpu_gemm_tile.hpp"

namespace almc::onnx::gemm_isa {
namespace {

#include "host/onnx/cpu_gemm_vec512.hpp"  // struct Vec, inside this unnamed namespace

struct Dp {
  static __m512 mac(__m512 a, __m512 b, __m512 c) {
    return _mm512_dpbf16_ps(c, (__m512bh)_mm512_castps_si512(a), (__m512bh)_mm512_castps_si512(b));
  }
};

// to_bf16 (cpu_gemm.cpp) on 16 lanes, in the low 16 bits of each 32-bit lane: the same integer
// steps (round to nearest even, a zero exponent kept as a signed zero, NaN made quiet).
__m512i bf16_bits(__m512 x) {
  const __m512i u = _mm512_castps_si512(x), top = _mm512_srli_epi32(u, 16);
  const __m512i bump = _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(top, _mm512_set1_epi32(1)));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bump), 16);
  r = _mm512_mask_and_epi32(r, _mm512_testn_epi32_mask(r, _mm512_set1_epi32(0x7F80)), r, _mm512_set1_epi32(0x8000));
  return _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), top, _mm512_set1_epi32(0x40));
}

}  // namespace

void tile_bf16_avx512(const GemmView& w, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  tiles::tile_pairs<Vec, Dp>(w, i0, i1, j0, j1);
}

void pack_rows_bf16_avx512(const GemmView& g, int64_t i0, int64_t rows, float* out, int64_t out_rs) {
  if (g.a_ks != 1) return pack_rows_bf16_generic(g, i0, rows, out, out_rs);
  for (int64_t r = 0; r < rows && g.K > 0; ++r) {
    const float* a = g.A + (i0 + r) * g.a_rs;
    float* o = out + r * out_rs;
    // 16 values make 8 pairs: the low halves of 16 lanes, narrowed to 16-bit, in order.
    for (int64_t k = 0; k < g.K; k += 16) {
      const __mmask16 m = Vec::mask(g.K - k);
      const __m512i bits = bf16_bits(_mm512_maskz_loadu_ps(m, a + k));  // a lane past K reads 0
      const int64_t pairs = (g.K - k) >= 16 ? 8 : (g.K - k + 1) / 2;
      _mm512_mask_cvtepi32_storeu_epi16(o + k / 2, __mmask16((1u << (2 * pairs)) - 1u), bits);
    }
  }
}

void pack_cols_bf16_avx512(const GemmView& g, int64_t j0, int64_t cols, float* out, int64_t out_ld) {
  const int64_t Kp = (g.K + 1) / 2;
  for (int64_t p = 0; p < Kp; ++p) {
    const float* lo = g.B + (g.b_koff ? g.b_koff[2 * p] : 2 * p * g.ldb) + j0;
    const bool has_hi = 2 * p + 1 < g.K;
    const float* hi = has_hi ? g.B + (g.b_koff ? g.b_koff[2 * p + 1] : (2 * p + 1) * g.ldb) + j0 : lo;
    float* o = out + p * out_ld;
    for (int64_t t = 0; t < cols; t += 16) {
      const __mmask16 m = Vec::mask(cols - t);
      const __m512i l = bf16_bits(_mm512_maskz_loadu_ps(m, lo + t));
      const __m512i h = has_hi ? _mm512_slli_epi32(bf16_bits(_mm512_maskz_loadu_ps(m, hi + t)), 16) : _mm512_setzero_si512();
      _mm512_mask_storeu_ps(o + t, m, _mm512_castsi512_ps(_mm512_or_si512(l, h)));
    }
  }
}

}  // namespace almc::onnx::gemm_isa
