// The CPU GEMM (cpu_gemm.hpp) with AVX-512F, compiled with -mavx512f -mfma and called only when
// the CPU has them. Only intrinsics and cpu_gemm_tile.hpp's templates (internal linkage through
// Vec) are used here: no shared inline code the linker could take from this file for another.
#include <immintrin.h>

#include "host/onnx/cpu_gemm_tile.hpp"

namespace almc::onnx::gemm_isa {
namespace {

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
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V scale2(V a, V k) { return _mm512_scalef_ps(a, k); }  // a * 2^k, k integral
  static V select_gt(V a, V b, V x, V y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x); }
};

}  // namespace

void tile_avx512(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) { tiles::tile<Vec>(g, i0, i1, j0, j1); }
void exp_avx512(const float* x, float* y, int64_t n) { tiles::exp_n<Vec>(x, y, n); }

}  // namespace almc::onnx::gemm_isa
