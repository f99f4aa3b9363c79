// The register tiles of the CPU GEMM (cpu_gemm.hpp), written once for every vector instruction
// set: each cpu_gemm_<isa>.cpp defines, in an unnamed namespace, a vector type `Vec` (its width,
// load/store with and without a lane mask, broadcast, fused multiply-add, multiply, add) and calls
// tile<Vec>. Vec's internal linkage gives every template below internal linkage in that file, so
// no instruction-set-specific copy can be picked by the linker for another file.
//
// An element's computation is the same in every tile shape and at every edge: zero, one fused
// multiply-add (Mac: Fma, or a BF16 pair's two products) per k in increasing k (masked lanes only
// ever compute lanes that are not stored), then alpha * acc and + beta * bias. Only the grouping
// of elements differs.
#pragma once
#include <cstdint>

#include "host/onnx/cpu_gemm.hpp"

namespace almc::onnx::gemm_isa::tiles {

// Rows i .. i+MR-1, columns j .. j+cols-1 (cols <= NV * width; FULL: cols == NV * width).
template <class Vec, class Mac, int MR, int NV, bool FULL, bool KOFF, bool SEG>
void micro(const GemmView& g, int64_t i, int64_t j, int64_t cols) {
  using V = typename Vec::V;
  constexpr int W = Vec::kW;
  V acc[MR][NV];
  typename Vec::Mask mask[NV];
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) mask[v] = Vec::mask(cols - v * W);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[r][v] = Vec::zero();
  const bool c_in = g.c_in;
  // Each vector's column offset in B and C: j + v * W, or in a segmented view (SEG) that of its
  // segment (tile() keeps every vector within one). Plain views keep the constant offsets, which
  // the loads and stores take as displacements (index registers cost 6% on the 2-core EPYC).
  int64_t bo[NV], co[NV];
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) {
    const int64_t jv = j + v * W, s = SEG ? jv / g.seg : 0;
    bo[v] = SEG ? jv + s * (g.b_seg - g.seg) : jv;
    co[v] = SEG ? jv + s * (g.c_seg - g.seg) : jv;
  }
  if (c_in)  // the sums so far (GemmView::c_in)
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        const float* cv = g.C + (i + r) * g.ldc + (SEG ? co[v] : j + v * W);
        acc[r][v] = FULL ? Vec::load(cv) : Vec::load(cv, mask[v]);
      }
  // With K == 0 the operands may be empty (null data): no pointer arithmetic on them then.
  const float* a = g.K > 0 ? g.A + i * g.a_rs : nullptr;
  const float* b = g.K > 0 ? g.B + (SEG ? 0 : j) : nullptr;
  const int64_t* koff = g.b_koff;
  const int64_t ars = g.a_rs, aks = g.a_ks, ldb = g.ldb;
  for (int64_t k = 0; k < g.K; ++k, a += aks, b += KOFF ? 0 : ldb) {
    const float* bk = KOFF ? b + koff[k] : b;
    V bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      const float* p = bk + (SEG ? bo[v] : v * W);
      bv[v] = FULL ? Vec::load(p) : Vec::load(p, mask[v]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const V av = Vec::bcast(a + r * ars);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = Mac::mac(av, bv[v], acc[r][v]);
    }
  }
  if (g.c_raw) {  // the sums themselves (GemmView::c_raw)
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        float* cv = g.C + (i + r) * g.ldc + (SEG ? co[v] : j + v * W);
        if (FULL) Vec::store(cv, acc[r][v]);
        else Vec::store(cv, acc[r][v], mask[v]);
      }
    return;
  }
  const V alpha = Vec::bcast(&g.alpha), beta = Vec::bcast(&g.beta);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    float* c = g.C + (i + r) * g.ldc + (SEG ? 0 : j);
    const float* bias = g.bias ? g.bias + (i + r) * g.bias_rs + j * g.bias_cs : nullptr;
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      V y = Vec::mul(acc[r][v], alpha);
      if (bias) {
        const V bb = g.bias_cs == 0 ? Vec::bcast(bias) : FULL ? Vec::load(bias + v * W) : Vec::load(bias + v * W, mask[v]);
        y = Vec::add(y, Vec::mul(beta, bb));
      }
      float* cv = c + (SEG ? co[v] : v * W);
      if (FULL) Vec::store(cv, y);
      else Vec::store(cv, y, mask[v]);
    }
  }
}

template <class Vec, class Mac, int MR, int NV, bool KOFF, bool SEG>
void micro_any(const GemmView& g, int64_t i, int64_t j, int64_t cols) {
  if (cols == NV * Vec::kW) micro<Vec, Mac, MR, NV, true, KOFF, SEG>(g, i, j, cols);
  else micro<Vec, Mac, MR, NV, false, KOFF, SEG>(g, i, j, cols);
}

// Fewer than Vec::kRows rows of one panel of NV vectors.
template <class Vec, class Mac, int NV, bool KOFF, bool SEG>
void rows_tail(const GemmView& g, int64_t i, int64_t rows, int64_t j, int64_t cols) {
  static_assert(Vec::kRows <= 8, "tails up to 7 rows");
  switch (rows) {
    case 1: return micro_any<Vec, Mac, 1, NV, KOFF, SEG>(g, i, j, cols);
    case 2: return micro_any<Vec, Mac, 2, NV, KOFF, SEG>(g, i, j, cols);
    case 3: return micro_any<Vec, Mac, 3, NV, KOFF, SEG>(g, i, j, cols);
    case 4: return micro_any<Vec, Mac, 4, NV, KOFF, SEG>(g, i, j, cols);
    case 5: return micro_any<Vec, Mac, 5, NV, KOFF, SEG>(g, i, j, cols);
    case 6: return micro_any<Vec, Mac, 6 < Vec::kRows ? 6 : 1, NV, KOFF, SEG>(g, i, j, cols);
    default: return micro_any<Vec, Mac, 7 < Vec::kRows ? 7 : 1, NV, KOFF, SEG>(g, i, j, cols);
  }
}

// All rows of one panel of NV vectors, in the fewest blocks of at most Vec::kRows rows, of equal
// heights to within one (16 rows by 6: 6, 5, 5, not 6, 6, 4): no block is left with too few
// accumulators to hide the multiply-add latency.
template <class Vec, class Mac, int NV, bool KOFF, bool SEG>
void panel(const GemmView& g, int64_t i0, int64_t i1, int64_t j, int64_t cols) {
  const int64_t rows = i1 - i0, blocks = (rows + Vec::kRows - 1) / Vec::kRows;
  for (int64_t b = 0, i = i0; b < blocks; ++b) {
    const int64_t h = rows / blocks + (b < rows % blocks ? 1 : 0);
    if (h == Vec::kRows) micro_any<Vec, Mac, Vec::kRows, NV, KOFF, SEG>(g, i, j, cols);
    else rows_tail<Vec, Mac, NV, KOFF, SEG>(g, i, h, j, cols);
    i += h;
  }
}

// Rows i0 .. i1-1, columns j0 .. j1-1: panels of 2 vectors (1 for a narrow last one) by blocks of
// Vec::kRows rows; up to Vec::kFewRows rows (one sample, a small block) use panels of 4 vectors
// instead, which keeps enough independent accumulators in flight. padded_cols: the
// fewest columns >= cols that make whole panels only (no masked loads and stores).
template <class Vec>
int64_t padded_cols(int64_t rows, int64_t cols) {
  const int64_t q = (rows <= Vec::kFewRows ? 4 : 1) * Vec::kW;  // a narrow last panel of one whole vector is full
  return (cols + q - 1) / q * q;
}

template <class Vec, class Mac, bool KOFF, bool SEG = false>
void tile_rows(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  constexpr int W = Vec::kW;
  if (i1 - i0 <= Vec::kFewRows) {
    for (int64_t j = j0; j < j1; j += 4 * W) {
      const int64_t cols = j1 - j < 4 * W ? j1 - j : 4 * W;
      if (i1 - i0 == 1) micro_any<Vec, Mac, 1, 4, KOFF, SEG>(g, i0, j, cols);
      else if (i1 - i0 == 2 || Vec::kFewRows < 3) micro_any<Vec, Mac, 2, 4, KOFF, SEG>(g, i0, j, cols);
      else micro_any<Vec, Mac, 3, 4, KOFF, SEG>(g, i0, j, cols);
    }
    return;
  }
  for (int64_t j = j0; j < j1; j += 2 * W) {
    const int64_t cols = j1 - j < 2 * W ? j1 - j : 2 * W;
    if (cols <= W) panel<Vec, Mac, 1, KOFF, SEG>(g, i0, i1, j, cols);  // a narrow last panel: no idle vector
    else panel<Vec, Mac, 2, KOFF, SEG>(g, i0, i1, j, cols);
  }
}

// The fp32 multiply-add: one fused multiply-add per k.
template <class Vec>
struct Fma {
  static typename Vec::V mac(typename Vec::V a, typename Vec::V b, typename Vec::V c) { return Vec::fma(a, b, c); }
};

template <class Vec>
void tile(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  // Segments of whole vectors over shifted views (a convolution's output rows) run in one pass;
  // others as one plain view per segment.
  if (g.seg && g.b_koff && g.seg % Vec::kW == 0 && j0 % Vec::kW == 0) return tile_rows<Vec, Fma<Vec>, true, true>(g, i0, i1, j0, j1);
  if (g.seg)
    return for_each_segment(g, j0, j1, [&](const GemmView& v, int64_t t0, int64_t t1) { tile<Vec>(v, i0, i1, t0, t1); });
  if (g.b_koff) tile_rows<Vec, Fma<Vec>, true>(g, i0, i1, j0, j1);
  else tile_rows<Vec, Fma<Vec>, false>(g, i0, i1, j0, j1);
}

// The same tiles over BF16 pairs (cpu_gemm.hpp): a "float" of A or B is a packed pair, k counts
// pairs, and Mac adds a pair's two products to each lane (Mac::mac(a pair broadcast, B's pairs,
// acc)). The caller passes a view whose A, B, K are the packed operands.
template <class Vec, class Mac>
void tile_pairs(const GemmView& w, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  tile_rows<Vec, Mac, false>(w, i0, i1, j0, j1);
}

// e^x in one vector (cpu_gemm.hpp's vexp): x = k ln2 + r with |r| <= ln2/2 (ln2 in two parts, the
// first exact in k ln2), e^r by its Taylor polynomial to degree 7 (truncation below 6e-9
// relative), times 2^k.
// Always inlined (the compiler had left it a call per vector).
template <class Vec>
inline __attribute__((always_inline)) typename Vec::V exp_v(typename Vec::V xv) {
  using V = typename Vec::V;
  const float hi = 88.7228391116729f, lo = -87.3365447505531f, inf = __builtin_inff(), zero = 0.f;
  const float log2e = 1.44269504088896341f, neg_ln2_hi = -0.693359375f, neg_ln2_lo = 2.12194440e-4f;
  const float c[8] = {1.f, 1.f, 1.f / 2, 1.f / 6, 1.f / 24, 1.f / 120, 1.f / 720, 1.f / 5040};
  // Clamped with x as the second operand, so a NaN stays NaN (min/max return their second).
  const V xc = Vec::max(Vec::bcast(&lo), Vec::min(Vec::bcast(&hi), xv));
  const V k = Vec::round(Vec::mul(xc, Vec::bcast(&log2e)));
  V r = Vec::fma(k, Vec::bcast(&neg_ln2_hi), xc);
  r = Vec::fma(k, Vec::bcast(&neg_ln2_lo), r);
  V poly = Vec::bcast(&c[7]);
  for (int d = 6; d >= 0; --d) poly = Vec::fma(poly, r, Vec::bcast(&c[d]));
  V e = Vec::scale2(poly, k);
  e = Vec::select_gt(xv, Vec::bcast(&hi), Vec::bcast(&inf), e);
  return Vec::select_gt(Vec::bcast(&lo), xv, Vec::bcast(&zero), e);
}

// y[i] = f(x[i]) over n floats, f on whole vectors: plain loads and stores, a mask only for the
// last partial vector (AVX2's masked loads and stores are slow on AMD's Zen cores). Every element
// still goes through the same f, so its value does not depend on its position.
template <class Vec, class F>
inline void map_n(const float* x, float* y, int64_t n, F f) {
  constexpr int W = Vec::kW;
  int64_t i = 0;
  for (; i + W <= n; i += W) Vec::store(y + i, f(Vec::load(x + i)));
  if (i < n) {
    const typename Vec::Mask m = Vec::mask(n - i);
    Vec::store(y + i, f(Vec::load(x + i, m)), m);
  }
}

template <class Vec>
void exp_n(const float* x, float* y, int64_t n) {
  map_n<Vec>(x, y, n, [](typename Vec::V v) { return exp_v<Vec>(v); });
}

// y = x / (1 + e^-x) over n floats (cpu_gemm.hpp's vsilu): exp_v of -x (exact negation), then
// an IEEE add and divide, the formula ew_apply uses for SiLU with e^-x vectorised.
template <class Vec>
void silu_n(const float* x, float* y, int64_t n) {
  using V = typename Vec::V;
  const float one = 1.f, minus_one = -1.f;
  map_n<Vec>(x, y, n, [&](V v) {
    return Vec::div(v, Vec::add(Vec::bcast(&one), exp_v<Vec>(Vec::mul(v, Vec::bcast(&minus_one)))));
  });
}

// y = erf(x) over n floats (cpu_gemm.hpp's verf). a = |x|: below 1, erf = a P(a^2); from 1 to 4,
// erf = 1 - e^{Q(a)} with Q a fit of log erfc (smooth there, unlike erfc's polynomial); from 4
// on erf rounds to 1 in float. P (degree 6 in a^2) and Q (degree 10) were fitted for almc by
// weighted least squares on Chebyshev nodes against double-precision erf. Measured over every
// 6e-6 step of [-6, 6]: within 2.4 ulp, 1.5e-7 absolute. NaN stays NaN; erf(-x) = -erf(x).
template <class Vec>
void erf_n(const float* x, float* y, int64_t n) {
  using V = typename Vec::V;
  static constexpr float P[7] = {1.1283791065216064f,    -0.3761262595653534f,   0.11283600330352783f,
                                 -0.026854462921619415f, 0.005189565941691399f, -0.0008021088433451951f,
                                 7.889883272582665e-05f};
  static constexpr float Q[11] = {0.0002550100034568459f,  -1.129876971244812f,     -0.6326804757118225f,
                                  -0.10890060663223267f,   0.025383537635207176f,   -0.00415192823857069f,
                                  0.00035681031295098364f, 1.7102571291616186e-05f, -8.974257980298717e-06f,
                                  1.0290098089171806e-06f, -4.379746343374791e-08f};
  const float one = 1.f, minus_one = -1.f, four = 4.f, zero = 0.f;
  map_n<Vec>(x, y, n, [&](V xv) {
    const V neg = Vec::mul(xv, Vec::bcast(&minus_one));
    const V a = Vec::min(Vec::bcast(&four), Vec::max(xv, neg));  // |x| capped; NaN stays NaN
    const V a2 = Vec::mul(a, a);
    V p = Vec::bcast(&P[6]);
    for (int k = 5; k >= 0; --k) p = Vec::fma(p, a2, Vec::bcast(&P[k]));
    V q = Vec::bcast(&Q[10]);
    for (int k = 9; k >= 0; --k) q = Vec::fma(q, a, Vec::bcast(&Q[k]));
    const V large = Vec::fma(exp_v<Vec>(q), Vec::bcast(&minus_one), Vec::bcast(&one));
    const V r = Vec::select_gt(Vec::bcast(&one), a, Vec::mul(a, p), large);
    return Vec::select_gt(Vec::bcast(&zero), xv, Vec::mul(r, Vec::bcast(&minus_one)), r);
  });
}

// tanh x in one vector (cpu_gemm.hpp's vtanh), a = |x|: below 0.625, x + x^3 Q(x^2) (Q of degree
// 4, fitted for almc by weighted least squares on Chebyshev nodes against double tanh: 0.17 ulp
// before rounding); from 0.625, 1 - 2 / (e^{2a} + 1) with exp_v's e^x and x's sign (e^{2a} is
// +inf from a = 44.4, which gives exactly 1). Measured on [-10, 10] in steps of 2e-5 (AVX2):
// within 1.32 ulp (glibc's tanhf: 1.99). Odd (tanh(-0) = -0); NaN stays NaN.
template <class Vec>
inline __attribute__((always_inline)) typename Vec::V tanh_v(typename Vec::V xv) {
  using V = typename Vec::V;
  static constexpr float Q[5] = {-0.3333328664302826f, 0.13331513106822968f, -0.053744662553071976f,
                                 0.020653141662478447f, -0.005718979053199291f};
  const float one = 1.f, minus_one = -1.f, two = 2.f, split = 0.625f;
  const V neg = Vec::mul(xv, Vec::bcast(&minus_one));
  const V a = Vec::max(xv, neg);  // NaN stays NaN
  const V a2 = Vec::mul(a, a);
  V q = Vec::bcast(&Q[4]);
  for (int k = 3; k >= 0; --k) q = Vec::fma(q, a2, Vec::bcast(&Q[k]));
  const V small = Vec::fma(Vec::mul(a2, xv), q, xv);
  const V e = exp_v<Vec>(Vec::add(a, a));
  const V large = Vec::fma(Vec::div(Vec::bcast(&two), Vec::add(e, Vec::bcast(&one))), Vec::bcast(&minus_one), Vec::bcast(&one));
  const V large_x = Vec::select_gt(neg, xv, Vec::mul(large, Vec::bcast(&minus_one)), large);
  const V r = Vec::select_gt(Vec::bcast(&split), a, small, large_x);
  return Vec::select_gt(a, Vec::zero(), r, xv);  // +-0 as given (x^3 q + x would make -0 +0)
}

// log x in one vector (cpu_gemm.hpp's vlog): x = m 2^e with m in [sqrt(1/2), sqrt(2)) (a
// subnormal x scaled by 2^24 first), f = m - 1 (exact), log(1 + f) = f - f^2/2 + f^3 P(f) with P
// of degree 7 (fitted as tanh's Q: 0.12 ulp before rounding), plus e ln 2 in two parts (the
// first exact in e ln2_hi). Measured from 2^-140 to 3e38 in steps of 1e-4 relative and on the
// 4000 floats around 1 (AVX2): within 0.80 ulp. -inf for +-0, NaN below 0 and for NaN, +inf
// for +inf.
template <class Vec>
inline __attribute__((always_inline)) typename Vec::V log_v(typename Vec::V xv) {
  using V = typename Vec::V;
  static constexpr float P[8] = {0.3333335518836975f,   -0.2500085234642029f, 0.19999825954437256f, -0.16621370613574982f,
                                 0.14227114617824554f,  -0.13202103972434998f, 0.1262032687664032f, -0.07362867891788483f};
  const float min_normal = 1.17549435e-38f, two24 = 16777216.f, minus24 = -24.f, zero = 0.f, one = 1.f, minus_one = -1.f,
              half = 0.5f, minus_half = -0.5f, sqrt2 = 1.41421356f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f,
              inf = __builtin_inff(), minus_inf = -__builtin_inff(), nan = __builtin_nanf(""), max = 3.40282347e38f;
  const V sub = Vec::bcast(&min_normal);
  const V xs = Vec::select_gt(sub, xv, Vec::mul(xv, Vec::bcast(&two24)), xv);
  V e = Vec::add(Vec::expo(xs), Vec::select_gt(sub, xv, Vec::bcast(&minus24), Vec::bcast(&zero)));
  V m = Vec::mant(xs);
  e = Vec::add(e, Vec::select_gt(m, Vec::bcast(&sqrt2), Vec::bcast(&one), Vec::bcast(&zero)));
  m = Vec::select_gt(m, Vec::bcast(&sqrt2), Vec::mul(m, Vec::bcast(&half)), m);
  const V f = Vec::add(m, Vec::bcast(&minus_one));
  const V f2 = Vec::mul(f, f);
  V p = Vec::bcast(&P[7]);
  for (int k = 6; k >= 0; --k) p = Vec::fma(p, f, Vec::bcast(&P[k]));
  V y = Vec::mul(Vec::mul(f2, f), p);
  y = Vec::fma(f2, Vec::bcast(&minus_half), y);
  y = Vec::fma(e, Vec::bcast(&ln2_lo), y);
  V r = Vec::fma(e, Vec::bcast(&ln2_hi), Vec::add(f, y));
  r = Vec::select_gt(xv, Vec::bcast(&zero), r, Vec::bcast(&minus_inf));  // x <= 0
  r = Vec::select_gt(Vec::bcast(&zero), xv, Vec::bcast(&nan), r);        // x < 0
  r = Vec::select_gt(xv, Vec::bcast(&max), Vec::bcast(&inf), r);         // x = +inf
  return Vec::select_nan(xv, r);
}

template <class Vec>
void tanh_n(const float* x, float* y, int64_t n) {
  map_n<Vec>(x, y, n, [](typename Vec::V v) { return tanh_v<Vec>(v); });
}

template <class Vec>
void log_n(const float* x, float* y, int64_t n) {
  map_n<Vec>(x, y, n, [](typename Vec::V v) { return log_v<Vec>(v); });
}

// log(1 + x) over n floats (cpu_gemm.hpp's vlog1p): with w = 1 + x rounded, log(w) x / (w - 1),
// which cancels the rounding of w (w - 1 is exact): within 2.25 ulp on [-0.9999, 1e6] (AVX2); x
// where w is 1 (and for NaN), +inf for +inf.
template <class Vec>
void log1p_n(const float* x, float* y, int64_t n) {
  using V = typename Vec::V;
  const float one = 1.f, minus_one = -1.f, max = 3.40282347e38f;
  map_n<Vec>(x, y, n, [&](V v) {
    const V w = Vec::add(v, Vec::bcast(&one));
    const V r = Vec::mul(log_v<Vec>(w), Vec::div(v, Vec::add(w, Vec::bcast(&minus_one))));
    V out = Vec::select_gt(w, Vec::bcast(&one), r, v);
    out = Vec::select_gt(Vec::bcast(&one), w, r, out);
    return Vec::select_gt(v, Vec::bcast(&max), v, out);
  });
}

}  // namespace almc::onnx::gemm_isa::tiles
