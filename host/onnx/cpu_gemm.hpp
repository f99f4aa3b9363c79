// The CPU executor's GEMM: C = epilogue(A B) with a per-element summation order that does not
// depend on how the product is tiled or split.
//
// Every output element is c = sum over k = 0, 1, ..., K-1 of a(i,k) b(k,j), accumulated in float
// from 0 in increasing k, one multiply-add at a time (a fused multiply-add where the CPU has one),
// then  c = alpha * c  and, with a bias,  c = c + beta * bias(i,j). Rows, columns and register
// tiles only decide which elements are computed together, never how one element is computed, so
// a sample's result is the same bits whatever the batch size, the block of samples it was
// computed in and the thread count. (OpenBLAS gives no such promise: its kernels pick different
// code paths by matrix size, so equal rows of differently shaped products may round differently.)
//
// The kernel is chosen once per process from the CPU's features (AVX-512F, else AVX2 + FMA, else
// portable C++ with separate multiply and add); results are reproducible on one machine, not
// across machines with different features. ALMC_CPU_GEMM=avx512|avx2|generic caps the choice (a
// value the CPU cannot run falls back to the best one it can).
#pragma once
#include <cstdint>

namespace almc::onnx {

struct GemmView {
  int64_t M = 0, N = 0, K = 0;
  const float* A = nullptr;  // a(i,k) = A[i * a_rs + k * a_ks]
  int64_t a_rs = 0, a_ks = 1;
  const float* B = nullptr;  // b(k,j) = B[k * ldb + j]  (unit column stride)
  int64_t ldb = 0;
  const int64_t* b_koff = nullptr;  // when set, b(k,j) = B[b_koff[k] + j] instead (a convolution
                                    // reading shifted views of one padded image)
  float* C = nullptr;  // c(i,j) = C[i * ldc + j]
  int64_t ldc = 0;
  float alpha = 1.f;
  const float* bias = nullptr;  // bias(i,j) = bias[i * bias_rs + j * bias_cs], or none
  int64_t bias_rs = 0, bias_cs = 0;
  float beta = 1.f;
};

// Rows i0 .. i1-1 and columns j0 .. j1-1 of C (any sub-rectangle: the bits do not depend on it).
void gemm_tile(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
inline void gemm_all(const GemmView& g) { gemm_tile(g, 0, g.M, 0, g.N); }

// The kernel in use: "avx512", "avx2" or "generic".
const char* gemm_kernel_name();

// y[i] = e^x[i] for i < n, with the same instruction set as the GEMM: every element through the
// same vector code (the last partial vector masked, never a scalar tail), so an element's value
// does not depend on its position. Within 2 ulp of e^x on normal results; +inf above 88.72, NaN
// for NaN, 0 below -87.33 (where e^x is subnormal). The generic kernel calls std::exp.
void vexp(const float* x, float* y, int64_t n);

namespace gemm_isa {
// One implementation per instruction set (cpu_gemm_*.cpp); same contracts as gemm_tile and vexp.
void tile_generic(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
void tile_avx2(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
void tile_avx512(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
void exp_generic(const float* x, float* y, int64_t n);
void exp_avx2(const float* x, float* y, int64_t n);
void exp_avx512(const float* x, float* y, int64_t n);
}  // namespace gemm_isa

}  // namespace almc::onnx
