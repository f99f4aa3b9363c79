// The CPU GEMM (cpu_gemm.hpp) with AVX2 and FMA, compiled with -mavx2 -mfma and called only when
// the CPU has them. Only intrinsics and cpu_gemm_tile.hpp's templates (internal linkage through
// Vec) are used here: no shared inline code the linker could take from this file for another.
#include <immintrin.h>

#include "host/onnx/cpu_gemm_tile.hpp"

namespace almc::onnx::gemm_isa {
namespace {

struct Vec {
  using V = __m256;
  using Mask = __m256i;
  static constexpr int kW = 8, kRows = 6, kFewRows = 2;  // 6 x 16 tiles: 12 of 16 registers
  static Mask mask(int64_t left) {
    const int n = left >= kW ? kW : left <= 0 ? 0 : int(left);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  // set1, not broadcast_ss: a constant (exp's and erf's coefficients) then becomes a 32-byte
  // operand of the multiply-add itself instead of a broadcast instruction per use (vexp 0.86 ->
  // 0.6 ns and verf 2.2 -> 1.6 ns per element, one thread on the 2-core AVX2 EPYC).
  static V bcast(const float* p) { return _mm256_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, V v, Mask m) { _mm256_maskstore_ps(p, m, v); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // a * 2^k for integral k in [-126, 128]: two exact power-of-two factors, each a normal float.
  static V scale2(V a, V k) {
    const __m256i ki = _mm256_cvtps_epi32(k), k1 = _mm256_srai_epi32(ki, 1), k2 = _mm256_sub_epi32(ki, k1);
    const __m256i bias = _mm256_set1_epi32(127);
    const V p1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    const V p2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(a, p1), p2);
  }
  static V select_gt(V a, V b, V x, V y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
  // x where x is NaN, else r.
  static V select_nan(V x, V r) { return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q)); }
  // A positive normal x as m 2^e: the significand m in [1, 2) and the exponent e (both exact).
  static V mant(V x) {
    const __m256i b = _mm256_castps_si256(x);
    return _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f800000)));
  }
  static V expo(V x) {
    const __m256i b = _mm256_castps_si256(x);
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(b, 23), _mm256_set1_epi32(127)));
  }
};

}  // namespace

void tile_avx2(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) { tiles::tile<Vec>(g, i0, i1, j0, j1); }
void exp_avx2(const float* x, float* y, int64_t n) { tiles::exp_n<Vec>(x, y, n); }
void erf_avx2(const float* x, float* y, int64_t n) { tiles::erf_n<Vec>(x, y, n); }
void silu_avx2(const float* x, float* y, int64_t n) { tiles::silu_n<Vec>(x, y, n); }
void tanh_avx2(const float* x, float* y, int64_t n) { tiles::tanh_n<Vec>(x, y, n); }
void log_avx2(const float* x, float* y, int64_t n) { tiles::log_n<Vec>(x, y, n); }
void log1p_avx2(const float* x, float* y, int64_t n) { tiles::log1p_n<Vec>(x, y, n); }
int64_t padded_cols_avx2(int64_t rows, int64_t cols) { return tiles::padded_cols<Vec>(rows, cols); }
int64_t vector_cols_avx2() { return Vec::kW; }

}  // namespace almc::onnx::gemm_isa
