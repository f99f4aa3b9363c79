// The AVX-512F vector type of the CPU GEMM's tiles (cpu_gemm_tile.hpp), shared by the files
// compiled for AVX-512 (cpu_gemm_avx512.cpp, cpu_gemm_avx512bf16.cpp). Include it only inside an
// unnamed namespace in almc::onnx::gemm_isa: each file then has its own internal-linkage copy of
// the type and of every template instantiated with it, compiled with that file's instruction set.
// No include guard on purpose (one inclusion per file, in that namespace).
struct Vec {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int kW = 16, kRows = 8, kFewRows = 3;  // 8 x 32 tiles: 16 of 32 registers
  static Mask mask(int64_t left) {
    return left >= kW ? Mask(0xFFFF) : left <= 0 ? Mask(0) : Mask((1u << left) - 1u);
  }
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V scale2(V a, V k) { return _mm512_scalef_ps(a, k); }  // a * 2^k, k integral
  static V select_gt(V a, V b, V x, V y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x); }
  // x where x is NaN, else r.
  static V select_nan(V x, V r) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), r, x); }
  // A positive normal x as m 2^e: the significand m in [1, 2) and the exponent e (both exact).
  static V mant(V x) { return _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero); }
  static V expo(V x) { return _mm512_getexp_ps(x); }
};
