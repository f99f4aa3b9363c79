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
//
// BF16 (GemmView::bf16, the opt-in network precision): a and b are rounded to bfloat16 (8-bit
// significand; to_bf16 below) and the products of pairs are accumulated in float, the way the
// AVX512_BF16 instruction VDPBF16PS does. With Kp = ceil(K / 2) pairs (an odd K padded with a zero
// pair member), every output element is
//   c = 0;  for p = 0 .. Kp-1:  c = c (+) a(2p+1) b(2p+1);  c = c (+) a(2p) b(2p)
// where each product is exact (two 8-bit significands) and (+) rounds the exact sum to 24 bits,
// to nearest even, as if the exponent range were unbounded, a result below 2^-126 in magnitude
// becoming a zero of its sign (flush to zero, tininess after rounding); then the same alpha and
// bias epilogue as fp32. The order within a pair (odd member first) and the flush rule are those
// of the instruction on the machine this was written on (an AMD EPYC with AVX512_BF16, checked on
// millions of random pairs including sums near 2^-126; tests/cpu/test_bf16.cpp checks the
// instruction against the portable kernel bit for bit wherever it runs). Two kernels: "avx512bf16"
// (the instruction) and "generic" (portable C++ computing the same bits, slower); ALMC_CPU_GEMM=avx2
// or generic selects the portable one. As in fp32, the tiling never changes an element's bits.
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
  // Segmented columns (seg > 0): column j = s * seg + t is column t of segment s, whose B and C
  // start b_seg and c_seg floats after segment s - 1's: b(k,j) = B[row k + s * b_seg + t] and
  // c(i,j) = C[i * ldc + s * c_seg + t] (a convolution's output rows, each read from its own
  // shifted view of the image and written to its own row). The bias still takes the column j.
  // Not combined with B16.
  int64_t seg = 0, b_seg = 0, c_seg = 0;
  // A product split along k (fp32 kernels only): with c_in the sums start from C's values (an
  // earlier part's sums over k before this view's, stored with c_raw) instead of 0; with c_raw C
  // gets the sums themselves (no alpha, no bias). Float sums stored and reloaded are exact, so
  // the parts k0 < k1 < ... give the bits of the whole product.
  bool c_in = false, c_raw = false;
  float alpha = 1.f;
  const float* bias = nullptr;  // bias(i,j) = bias[i * bias_rs + j * bias_cs], or none
  int64_t bias_rs = 0, bias_cs = 0;
  float beta = 1.f;
  // BF16 products (see above). The operands are converted from A and B as a tile needs them,
  // unless packed in advance (pack_rows_bf16 / pack_cols_bf16, e.g. a network's weights once):
  bool bf16 = false;
  const float* A16 = nullptr;  // pair p of row i: A16[i * a16_rs + p]  (words, see pack_rows_bf16)
  int64_t a16_rs = 0;
  const float* B16 = nullptr;  // pair p of column j: B16[p * b16_ld + j]
  int64_t b16_ld = 0;
};

// Columns j0 .. j1-1 of a segmented view g (g.seg > 0) piece by piece: f(v, t0, t1) for each
// segment s that they meet, v being segment s as a plain view (its column t is g's s * seg + t).
template <class F>
inline void for_each_segment(const GemmView& g, int64_t j0, int64_t j1, F&& f) {
  for (int64_t j = j0; j < j1;) {
    const int64_t s = j / g.seg, t0 = j - s * g.seg, t1 = j1 - s * g.seg < g.seg ? j1 - s * g.seg : g.seg;
    GemmView v = g;
    v.seg = 0;
    v.N = g.seg;
    v.B = g.B + s * g.b_seg;
    v.C = g.C + s * g.c_seg;
    if (g.bias) v.bias = g.bias + s * g.seg * g.bias_cs;
    f(v, t0, t1);
    j = s * g.seg + t1;
  }
}

// Rows i0 .. i1-1 and columns j0 .. j1-1 of C (any sub-rectangle: the bits do not depend on it).
void gemm_tile(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
inline void gemm_all(const GemmView& g) { gemm_tile(g, 0, g.M, 0, g.N); }

// The fewest columns >= cols with which an fp32 GEMM of `rows` rows runs whole register panels
// only (no masked loads and stores); cols itself for the generic kernel.
int64_t gemm_padded_cols(int64_t rows, int64_t cols);
// Floats per vector of the fp32 kernel (1 for the generic kernel): a segmented view (GemmView::seg)
// whose segments are whole vectors runs at the speed of a plain one.
int64_t gemm_vector_cols();

// The kernel in use: "avx512", "avx2" or "generic"; for BF16 GEMMs "avx512bf16" or "generic".
const char* gemm_kernel_name();
const char* gemm_bf16_kernel_name();

// x rounded to bfloat16, to nearest even; a result below 2^-126 in magnitude becomes a zero of
// x's sign, a NaN stays a (quiet) NaN. The bits are the top half of the float it stands for.
uint16_t to_bf16(float x);
// A BF16 pair stored in one float slot: member 2p in the low 16 bits, 2p+1 in the high 16 (the
// layout VDPBF16PS reads). Only bits: such a slot is never used as a number.
float bf16_pair(uint16_t lo, uint16_t hi);
// Rows of a GEMM's A as pairs: out[r * out_rs + p] = pair(a(i0+r, 2p), a(i0+r, 2p+1)) for
// r < rows, p < ceil(K/2) (A, a_rs, a_ks, K from g).
void pack_rows_bf16(const GemmView& g, int64_t i0, int64_t rows, float* out, int64_t out_rs);
// Columns of B as pairs: out[p * out_ld + t] = pair(b(2p, j0+t), b(2p+1, j0+t)) for t < cols
// (B, ldb, b_koff, K from g).
void pack_cols_bf16(const GemmView& g, int64_t j0, int64_t cols, float* out, int64_t out_ld);

// y[i] = e^x[i] for i < n, with the same instruction set as the GEMM: every element through the
// same vector code (the last partial vector masked, never a scalar tail), so an element's value
// does not depend on its position. Within 2 ulp of e^x on normal results; +inf above 88.72, NaN
// for NaN, 0 below -87.33 (where e^x is subnormal). The generic kernel calls std::exp.
void vexp(const float* x, float* y, int64_t n);
// y[i] = erf(x[i]) for i < n, the same way (tiles::erf_n's polynomials): within 2.4 ulp, odd,
// NaN for NaN, +-1 from |x| = 4 on. The generic kernel calls std::erf.
void verf(const float* x, float* y, int64_t n);
// y[i] = x[i] / (1 + e^-x[i]) (SiLU) for i < n in one pass: e^-x as vexp computes it, then the
// IEEE sum and quotient, so the same bits as vexp of the negated x followed by that formula.
void vsilu(const float* x, float* y, int64_t n);
// y[i] = tanh(x[i]) for i < n, the same way (tiles::tanh_n): within 1.4 ulp, odd, +-1 from |x| =
// 9.1 on, NaN for NaN. The generic kernel calls std::tanh.
void vtanh(const float* x, float* y, int64_t n);
// y[i] = log(x[i]) for i < n, the same way (tiles::log_n): within 0.8 ulp on positive x (subnormals
// included), -inf for +-0, NaN below 0 and for NaN, +inf for +inf. The generic kernel calls std::log.
void vlog(const float* x, float* y, int64_t n);
// y[i] = log(1 + x[i]) for i < n, from vlog's logarithm (tiles::log1p_n): within 2.3 ulp for x > -1,
// x itself where 1 + x rounds to 1. The generic kernel calls std::log1p.
void vlog1p(const float* x, float* y, int64_t n);

namespace gemm_isa {
using TileFn = void (*)(const GemmView&, int64_t, int64_t, int64_t, int64_t);
using PackFn = void (*)(const GemmView&, int64_t, int64_t, float*, int64_t);
// One implementation per instruction set (cpu_gemm_*.cpp); same contracts as gemm_tile and vexp.
void tile_generic(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
void tile_avx2(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
void tile_avx512(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
void exp_generic(const float* x, float* y, int64_t n);
void exp_avx2(const float* x, float* y, int64_t n);
void exp_avx512(const float* x, float* y, int64_t n);
void erf_generic(const float* x, float* y, int64_t n);
void erf_avx2(const float* x, float* y, int64_t n);
void erf_avx512(const float* x, float* y, int64_t n);
void silu_generic(const float* x, float* y, int64_t n);
void tanh_generic(const float* x, float* y, int64_t n);
void tanh_avx2(const float* x, float* y, int64_t n);
void tanh_avx512(const float* x, float* y, int64_t n);
void log_generic(const float* x, float* y, int64_t n);
void log_avx2(const float* x, float* y, int64_t n);
void log_avx512(const float* x, float* y, int64_t n);
void log1p_generic(const float* x, float* y, int64_t n);
void log1p_avx2(const float* x, float* y, int64_t n);
void log1p_avx512(const float* x, float* y, int64_t n);
void silu_avx2(const float* x, float* y, int64_t n);
void silu_avx512(const float* x, float* y, int64_t n);
int64_t padded_cols_generic(int64_t rows, int64_t cols);
int64_t padded_cols_avx2(int64_t rows, int64_t cols);
int64_t padded_cols_avx512(int64_t rows, int64_t cols);
int64_t vector_cols_generic();
int64_t vector_cols_avx2();
int64_t vector_cols_avx512();
// BF16 kernels on packed operands: A, a_rs, B, ldb of g address pair words (a_ks 1, no b_koff)
// and g.K counts pairs; gemm_tile packs what was not packed in advance and calls them.
void tile_bf16_generic(const GemmView& w, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
void tile_bf16_avx512(const GemmView& w, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
// gemm_tile's BF16 path with the given kernel and packers (tests compare kernels with it).
void tile_bf16(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1, TileFn tile, PackFn pack_rows,
               PackFn pack_cols);
// pack_rows_bf16 / pack_cols_bf16, portable and with AVX-512F (the same bits).
void pack_rows_bf16_generic(const GemmView& g, int64_t i0, int64_t rows, float* out, int64_t out_rs);
void pack_cols_bf16_generic(const GemmView& g, int64_t j0, int64_t cols, float* out, int64_t out_ld);
void pack_rows_bf16_avx512(const GemmView& g, int64_t i0, int64_t rows, float* out, int64_t out_rs);
void pack_cols_bf16_avx512(const GemmView& g, int64_t j0, int64_t cols, float* out, int64_t out_ld);
}  // namespace gemm_isa

}  // namespace almc::onnx
