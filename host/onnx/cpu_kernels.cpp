// CPU launchers of the ONNX executor: the shared operators (cuda/onnx/ops.cuh) called row by row,
// and GEMMs whose elements round the same way however they are tiled (cpu_gemm.hpp). A step runs
// on the calling thread only: the executor parallelises over blocks of chains (executor.cpp), and
// no result depends on the block size or the thread count.
#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "host/onnx/convt_phases.hpp"
#include "host/onnx/cpu_gemm.hpp"

#include "cuda/onnx/ops.cuh"
#include "host/onnx/plan.hpp"

namespace almc::onnx {
namespace {

constexpr int kChunk = kEwRun;  // elementwise block: the program's registers stay in L1

// ew_apply_n with the exponentials vectorised (vexp): Exp, Sigmoid, SiLU and GELU's tanh form keep
// their formulas, e^x is computed in vector registers instead of by the scalar libm call. Erf and
// GELU likewise (verf; the scalar erff was most of a GELU MLP's time), Tanh and Log (vtanh, vlog),
// and Elu, Softplus and Mish by params.hpp's formulas around vexp, vlog1p and vtanh.
struct CpuEwApply {
  void operator()(int op, int len, const float* A, const float* B, const float* C, float* D, float alpha,
                  float beta) const {
    if (op == EW_ERF) return verf(A, D, len);
    if (op == EW_SILU) return vsilu(A, D, len);
    if (op == EW_TANH) return vtanh(A, D, len);
    if (op == EW_LOG) return vlog(A, D, len);
    if (op != EW_EXP && op != EW_SIGMOID && op != EW_GELU && op != EW_GELU_TANH && op != EW_ELU && op != EW_SOFTPLUS &&
        op != EW_MISH)
      return ew_apply_n(op, len, A, B, C, D, alpha, beta);
    // By blocks of at most kChunk, so that the buffer holds the block and every element vexp reads
    // was written first, whatever len (the runners give at most kEwRun; nothing checked it).
    float e[kChunk];
    for (int s = 0; s < len; s += kChunk) {
      const int n = std::min(kChunk, len - s);
      const float* a = A + s;
      float* d = D + s;
      if (op == EW_GELU) {  // ew_apply's formula with erf vectorised
        for (int t = 0; t < n; ++t) e[t] = gelu_erf_arg(a[t]);
        verf(e, e, n);
        for (int t = 0; t < n; ++t) d[t] = gelu_from_erf(a[t], e[t]);
        continue;
      }
      // One loop per operation (a test inside the loop kept the compiler from vectorising it).
      if (op == EW_EXP) {
        vexp(a, d, n);
        continue;
      }
      if (op == EW_ELU) {
        vexp(a, e, n);
        for (int t = 0; t < n; ++t) d[t] = elu_from_exp(a[t], e[t], alpha);
        continue;
      }
      if (op == EW_SOFTPLUS || op == EW_MISH) {
        vexp(a, e, n);
        vlog1p(e, e, n);
        for (int t = 0; t < n; ++t) e[t] = softplus_from_log1p(a[t], e[t]);
        if (op == EW_SOFTPLUS) {
          for (int t = 0; t < n; ++t) d[t] = e[t];
          continue;
        }
        vtanh(e, e, n);
        for (int t = 0; t < n; ++t) d[t] = a[t] * e[t];
        continue;
      }
      if (op == EW_GELU_TANH)
        for (int t = 0; t < n; ++t) e[t] = gelu_tanh_m2z(a[t]);
      else
        for (int t = 0; t < n; ++t) e[t] = -a[t];
      vexp(e, e, n);
      if (op == EW_SIGMOID)
        for (int t = 0; t < n; ++t) d[t] = 1.f / (1.f + e[t]);
      else  // GELU's tanh form
        for (int t = 0; t < n; ++t) d[t] = a[t] / (1.f + e[t]);
    }
  }
};

// y[i] = act(y[i]) for i < n (a GEMM or convolution epilogue).
void cpu_act(int act, float alpha, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += kChunk)
    CpuEwApply()(act, int(std::min<int64_t>(kChunk, n - i)), y + i, y + i, y + i, y + i, alpha, 0.f);
}

// dst[i * ds_i + j * ds_j] = src[i * ss_i + j * ss_j] for i < ni, j < nj (a transpose: src runs
// along i, dst along j) by tiles of 8 i x 64 j, i innermost: a tile keeps 8 lines of dst and a
// few of src in L1 even when both strides are multiples of 4 KiB, which map every line of a plain
// or a square-tiled loop to the same cache set (measured on a 1024 x 1024 transpose: 8.7x faster
// than the plain loop, 36x faster than 32 x 32 tiles).
template <class T>
void copy_tiled(const T* src, int64_t ss_i, int64_t ss_j, T* dst, int64_t ds_i, int64_t ds_j, int64_t ni, int64_t nj) {
  constexpr int64_t TI = 8, TJ = 64;
  for (int64_t i0 = 0; i0 < ni; i0 += TI)
    for (int64_t j0 = 0; j0 < nj; j0 += TJ) {
      const int64_t i1 = std::min(ni, i0 + TI), j1 = std::min(nj, j0 + TJ);
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = i0; i < i1; ++i) dst[i * ds_i + j * ds_j] = src[i * ss_i + j * ss_j];
    }
}

void run_ew(const EwParams& p) {
  alignas(64) float regs[kMaxEwRegs][kChunk];
  for (int64_t start = 0; start < p.total; start += kChunk)
    ew_range<kChunk>(p, start, int(std::min<int64_t>(kChunk, p.total - start)), regs, CpuEwApply());
}

// op(A)[i, k] as the GEMM's strides.
void set_a(GemmView& g, const float* A, bool trans, int64_t lda) {
  g.A = A;
  g.a_rs = trans ? 1 : lda;
  g.a_ks = trans ? lda : 1;
}

// A step's BF16 setting on its GEMM view (v.K set): BF16 products, and rows row0.. of the weight
// packed by use_bf16 as the view's A when there is one.
void set_bf16_a(GemmView& v, const Step& s, int64_t row0) {
  v.bf16 = s.bf16;
  if (!s.w16) return;
  v.a16_rs = (v.K + 1) / 2;
  v.A16 = s.w16 + row0 * v.a16_rs;
}

// A wide B (a wide Linear layer's weight) is read in parts of at most kKc along k (GemmView::c_in
// / c_raw), each part's columns as contiguous [kc, P] panels: a kernel panel then reads one stream
// instead of one page per k, and the part of A the panels share stays in L2. The panels of part
// k0 are stored one after the other, panel j (P columns, fewer for the last) at k0 * N + j * kc.
// A constant B is packed so once per plan (cpu_pack_weights); any other is copied panel by panel
// as the product runs, when enough rows share each panel. A 2048-wide Linear layer, one thread of
// the 2-core AVX2 EPYC, batch 64 in blocks of 64: 61 evaluations/s with B in place, 89 with its
// panels copied as it ran (P = 32; 16: 72, 64: 99, 128: 91), 103 also in parts of 256 along k
// (128: 93, 512: 91), 108-130 packed once in the plan (onnxruntime 127-146 in the same runs);
// batch 1: 480 -> 1910. The panels change no value and the parts no order: the bits are those of
// gemm_all(g).
constexpr int64_t kKc = 256;
int64_t panel_width() { return std::max<int64_t>(32, 4 * gemm_vector_cols()); }  // AVX2: 32, AVX-512: 64

// B's rows at least min_ld floats apart (1024 to copy as the product runs; 256 to pack once: the
// demo's 384-wide digits MLP at batch 1, one thread, 13.8k -> 16.5k evaluations/s, at batch 64
// unchanged), and enough of it.
bool wide_b(const GemmView& g, int64_t min_ld) {
  return !g.bf16 && !g.B16 && !g.b_koff && !g.seg && !g.c_in && !g.c_raw && g.ldb >= min_ld && g.K >= 64 && g.N > 64;
}

// f(k0, kn, j, w, at) for every panel of a K x N operand in that layout: rows k0 .. k0+kn-1,
// columns j .. j+w-1, stored from offset `at`.
template <class F>
void for_each_panel(int64_t K, int64_t N, F f) {
  const int64_t P = panel_width();
  for (int64_t k0 = 0; k0 < K; k0 += kKc) {
    const int64_t kn = std::min(kKc, K - k0);
    for (int64_t j = 0; j < N; j += P) f(k0, kn, j, std::min(P, N - j), k0 * N + j * kn);
  }
}

// Rows k0 .. k0+kn-1, columns j .. j+w-1 of B, contiguous.
void copy_panel(const GemmView& g, int64_t k0, int64_t kn, int64_t j, int64_t w, float* out) {
  for (int64_t k = 0; k < kn; ++k) std::memcpy(out + k * w, g.B + (k0 + k) * g.ldb + j, size_t(w) * sizeof(float));
}

// gemm_all(g), reading B from `packed` (the layout above) or copying its panels when it is wide.
void gemm_packed_b(const GemmView& g, const float* packed) {
  if (!packed && (!wide_b(g, 1024) || g.M < 16)) return gemm_all(g);
  thread_local std::vector<float> panel;  // per thread, grown once
  if (!packed) panel.resize(size_t(std::min(kKc, g.K) * panel_width()));
  for_each_panel(g.K, g.N, [&](int64_t k0, int64_t kn, int64_t j, int64_t w, int64_t at) {
    GemmView v = g;
    if (packed) {
      v.B = packed + at;
    } else {
      copy_panel(g, k0, kn, j, w, panel.data());
      v.B = panel.data();
    }
    v.K = kn;
    v.A = g.A + k0 * g.a_ks;
    v.N = w;
    v.ldb = w;
    v.C = g.C + j;
    if (g.bias) v.bias = g.bias + j * g.bias_cs;
    v.c_in = k0 > 0;
    v.c_raw = k0 + kn < g.K;
    gemm_all(v);
  });
}

void run_gemm(const Step& s) {
  const GemmParams& p = s.gemm;
  // A transposed runtime B (constant ones are stored untransposed by the planner) is copied to
  // [K, N] rows first: the kernel reads B by rows. Per thread, grown once.
  thread_local std::vector<float> bt;
  for (int64_t b = 0; b < p.batch; ++b) {
    int64_t oa, ob, oc;
    gemm_batch_offsets(p, b, oa, ob, oc);
    GemmView g;
    g.M = p.M;
    g.N = p.N;
    g.K = p.K;
    set_a(g, p.A + oa, p.trans_a, p.lda);
    g.B = p.B + ob;
    g.ldb = p.ldb;
    if (p.trans_b) {
      bt.resize(size_t(p.K * p.N));
      copy_tiled(g.B, 1, p.ldb, bt.data(), p.N, 1, p.K, p.N);  // bt[k, n] = B[n, k]
      g.B = bt.data();
      g.ldb = p.N;
    }
    g.bf16 = s.bf16;
    if (s.w16 && s.w16_side == 1) {
      g.B16 = s.w16;  // the shared constant B (use_bf16)
      g.b16_ld = p.N;
    } else if (s.w16) {
      set_bf16_a(g, s, 0);  // the shared constant op(A)
    }
    g.C = p.C + oc;
    g.ldc = p.ldc;
    g.alpha = p.alpha;
    if (p.bias_kind != BIAS_NONE) {
      g.bias = p.bias;
      g.beta = p.beta;
      g.bias_rs = p.bias_kind == BIAS_ROW ? 0 : p.bias_kind == BIAS_COL ? 1 : p.bias_ld;
      g.bias_cs = p.bias_kind == BIAS_COL ? 0 : 1;
    }
    gemm_packed_b(g, p.batch == 1 ? s.bp : nullptr);
    if (p.act != EW_COPY)
      for (int64_t m = 0; m < p.M; ++m) cpu_act(p.act, p.act_alpha, g.C + m * p.ldc, p.N);
  }
}

// Convolutions of one image run in bands of output rows whose working set (the band's input,
// im2col'd or padded, and its GEMM result) stays within kBandFloats: the GEMM then reads its
// columns from L2 rather than memory however large the image. Bands never change a result: every
// output element is the same GEMM sum over the same values in the same order.
constexpr int64_t kBandFloats = int64_t(1) << 15;  // 128 KiB

// One image without im2col, any stride and dilation: the band's input rows of group g are copied
// into zero-padded phase images, phase (rh, rw) holding the padded image's rows rh, rh + sh, ...
// and columns rw, rw + sw, ... (stride 1: one phase, the padded image itself). Tap (kh, kw) of an
// output (oh, ow) reads padded row oh*sh + kh*dh = (oh + qh)*sh + rh and likewise for the column,
// so row (c, kh, kw) of the column matrix is phase (rh, rw) of channel c shifted by qh rows and qw
// columns, output (oh, ow) of the band being column oh*Wq + ow (the Wq - OW columns between two
// output rows are computed and dropped). Only the phases some tap reads are built. The GEMM sees
// the same values in the same order as through im2col, so both paths give the same bits; it reads
// about Cg*rows*sh*Wq*sw floats instead of writing and reading Cg*KH*KW*rows*OW.
struct Shifted {
  int64_t qh, qw;      // largest row and column shift (in phase rows and columns)
  int64_t nph, npw;    // phases used along rows and columns
  int64_t rh_of[8] = {}, rw_of[8] = {};  // compact phase index of each used remainder (stride <= 8)
  int64_t Wq, rows;    // phase width, output rows per band
  bool by_rows, fits;
  int64_t phase_rows(int64_t r) const { return r + qh; }
  int64_t phase_floats(const ConvParams& p, int64_t r) const { return (p.C / p.group) * nph * npw * phase_rows(r) * Wq; }
  // Columns of one band's GEMM: by_rows (OW whole vectors), R segments of OW columns, each output
  // row read from its own shift of the phases and written in place (nothing computed twice, no
  // copy); else the wide span rounded up to whole panels (the extra columns read the zeroed slack
  // after the phases and land in tmp's padding).
  int64_t wide(const ConvParams& p, int64_t r) const { return gemm_padded_cols(p.M / p.group, (r - 1) * Wq + p.OW); }
  int64_t slack() const { return 128; }  // more than any padding of gemm_padded_cols
  int64_t floats(const ConvParams& p, int64_t r) const {
    return phase_floats(p, r) + slack() + (by_rows ? 0 : (p.M / p.group) * wide(p, r));
  }
  // unit: a 1x1 unit-stride unpadded kernel, which reads the image itself instead.
  Shifted(const ConvParams& p, bool unit) {
    rows = p.OH;
    fits = p.sh <= 8 && p.sw <= 8 && !unit;
    if (!fits) return;
    qh = (p.KH - 1) * p.dh / p.sh;
    qw = (p.KW - 1) * p.dw / p.sw;
    bool used_h[8] = {}, used_w[8] = {};
    for (int64_t kh = 0; kh < p.KH; ++kh) used_h[kh * p.dh % p.sh] = true;
    for (int64_t kw = 0; kw < p.KW; ++kw) used_w[kw * p.dw % p.sw] = true;
    nph = npw = 0;
    for (int64_t r = 0; r < p.sh; ++r) rh_of[r] = used_h[r] ? nph++ : -1;
    for (int64_t r = 0; r < p.sw; ++r) rw_of[r] = used_w[r] ? npw++ : -1;
    Wq = p.OW + qw;
    by_rows = p.OW % gemm_vector_cols() == 0;
    const int64_t budget = std::min(p.col_elems, kBandFloats);
    while (rows > 1 && floats(p, rows) > budget) rows = std::max<int64_t>(1, std::min(rows - 1, rows * budget / floats(p, rows)));
    fits = floats(p, rows) <= p.col_elems;
  }
};

// Group g's weights [Mg, Cg*KK] as the GEMM's A, with the bias added as C is stored (an output
// written in place) or not.
GemmView conv_gemm(const Step& st, int64_t g, bool bias) {
  const ConvParams& p = st.conv;
  const int64_t Cg = p.C / p.group, Mg = p.M / p.group, KK = p.KH * p.KW;
  GemmView v;
  v.M = Mg;
  v.K = Cg * KK;
  set_a(v, p.w + g * Mg * Cg * KK, false, Cg * KK);
  set_bf16_a(v, st, g * Mg);
  if (bias && p.bias) {
    v.bias = p.bias + g * Mg;
    v.bias_rs = 1;
    v.bias_cs = 0;
  }
  return v;
}

void conv_shifted(const Step& st, const Shifted& s, int64_t n, int64_t g) {
  const ConvParams& p = st.conv;
  thread_local std::vector<int64_t> koff;  // per thread, grown once
  const int64_t Cg = p.C / p.group, Mg = p.M / p.group, KK = p.KH * p.KW, OHW = p.OH * p.OW;
  koff.resize(size_t(Cg * KK));
  const float* x = p.x + (n * p.C + g * Cg) * p.H * p.W;
  float* y = p.y + (n * p.M + g * Mg) * OHW;
  for (int64_t oh0 = 0; oh0 < p.OH; oh0 += s.rows) {
    const int64_t R = std::min(s.rows, p.OH - oh0), Hq = s.phase_rows(R), plane = Hq * s.Wq;
    float* xq = p.col;
    float* tmp = xq + s.phase_floats(p, R) + s.slack();
    std::fill(xq, tmp, 0.f);
    // Phase row i of the band is padded row (oh0 + i)*sh + rh, input row that minus ph; phase
    // column j is input column j*sw + rw - pw.
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t rh = 0; rh < p.sh; ++rh) {
        if (s.rh_of[rh] < 0) continue;
        for (int64_t rw = 0; rw < p.sw; ++rw) {
          if (s.rw_of[rw] < 0) continue;
          float* q = xq + ((c * s.nph + s.rh_of[rh]) * s.npw + s.rw_of[rw]) * plane;
          // Columns j with 0 <= j*sw + rw - pw < W.
          const int64_t off = rw - p.pw;
          const int64_t j0 = off >= 0 ? 0 : (-off + p.sw - 1) / p.sw;
          const int64_t j1 = std::min(s.Wq, p.W - off <= 0 ? 0 : (p.W - off + p.sw - 1) / p.sw);
          for (int64_t i = 0; i < Hq; ++i) {
            const int64_t ih = (oh0 + i) * p.sh + rh - p.ph;
            if (ih < 0 || ih >= p.H || j0 >= j1) continue;
            const float* src = x + (c * p.H + ih) * p.W + off;
            float* dst = q + i * s.Wq;
            if (p.sw == 1) std::memcpy(dst + j0, src + j0, size_t(j1 - j0) * sizeof(float));
            else
              for (int64_t j = j0; j < j1; ++j) dst[j] = src[j * p.sw];
          }
        }
      }
    // The taps of channel 0, then the same shifted by whole channels (no division per tap).
    for (int64_t kh = 0; kh < p.KH; ++kh)
      for (int64_t kw = 0; kw < p.KW; ++kw) {
        const int64_t th = kh * p.dh, tw = kw * p.dw;
        const int64_t phase = s.rh_of[th % p.sh] * s.npw + s.rw_of[tw % p.sw];
        koff[size_t(kh * p.KW + kw)] = phase * plane + th / p.sh * s.Wq + tw / p.sw;
      }
    for (int64_t c = 1; c < Cg; ++c)
      for (int64_t t = 0; t < KK; ++t) koff[size_t(c * KK + t)] = koff[size_t(t)] + c * s.nph * s.npw * plane;
    GemmView v = conv_gemm(st, g, true);
    v.b_koff = koff.data();
    if (s.by_rows) {
      v.N = R * p.OW;
      v.seg = p.OW;
      v.B = xq;
      v.b_seg = s.Wq;
      v.C = y + oh0 * p.OW;
      v.c_seg = p.OW;
      v.ldc = OHW;
      gemm_all(v);
    } else {
      const int64_t wide = s.wide(p, R);
      v.N = wide;
      v.B = xq;
      v.C = tmp;
      v.ldc = wide;
      gemm_all(v);
      for (int64_t m = 0; m < Mg; ++m)
        for (int64_t oh = 0; oh < R; ++oh)
          std::memcpy(y + m * OHW + (oh0 + oh) * p.OW, tmp + m * wide + oh * s.Wq, size_t(p.OW) * sizeof(float));
    }
    if (p.act != EW_COPY)
      for (int64_t m = 0; m < Mg; ++m) cpu_act(p.act, p.act_alpha, y + m * OHW + oh0 * p.OW, R * p.OW);
  }
}

// Output rows of one image per im2col band (the band's columns [Cg*KK, rows*OW] and result).
int64_t im2col_band_rows(const ConvParams& p) {
  const int64_t per_row = ((p.C / p.group) * p.KH * p.KW + p.M / p.group) * p.OW;
  return std::max<int64_t>(1, std::min(p.OH, std::min(p.col_elems, kBandFloats) / std::max<int64_t>(1, per_row)));
}

// One image n, group g: the shifted views of its phase images, else bands of
// im2col'd output rows (`direct`: a 1x1 unit-stride unpadded kernel reads the image itself), the
// GEMM writing the output in place with the bias, the activation after.
void conv_one_image(const Step& st, const Shifted& shifted, bool direct, int64_t band, int64_t n, int64_t g) {
  const ConvParams& p = st.conv;
  if (shifted.fits) return conv_shifted(st, shifted, n, g);
  const int64_t Cg = p.C / p.group, Mg = p.M / p.group, OHW = p.OH * p.OW;
  GemmView v = conv_gemm(st, g, true);
  // The band's im2col is that of a convolution of `rows` output rows whose padding is shifted by
  // the band's first row.
  for (int64_t oh0 = 0; oh0 < p.OH; oh0 += band) {
    const int64_t R = std::min(band, p.OH - oh0);
    const float* col = p.x + (n * p.C + g * Cg) * p.H * p.W + oh0 * p.OW;  // direct: rows of the image
    if (!direct) {
      ConvParams b = p;
      b.OH = R;
      b.ph = p.ph - oh0 * p.sh;
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t kh = 0; kh < p.KH; ++kh)
          for (int64_t kw = 0; kw < p.KW; ++kw)
            for (int64_t oh = 0; oh < R; ++oh) im2col_row(b, p.col, n, 1, g, c, kh, kw, 0, oh, 0, p.OW);
      col = p.col;
    }
    v.N = R * p.OW;
    v.B = col;
    v.ldb = direct ? OHW : R * p.OW;
    v.C = p.y + (n * p.M + g * Mg) * OHW + oh0 * p.OW;
    v.ldc = OHW;
    gemm_all(v);
    if (p.act != EW_COPY)
      for (int64_t m = 0; m < Mg; ++m) cpu_act(p.act, p.act_alpha, v.C + m * OHW, R * p.OW);
  }
}

void run_conv(const Step& st) {
  const ConvParams& p = st.conv;
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, OHW = p.OH * p.OW;
  const bool unit = KK == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0;
  const Shifted shifted(p, unit);
  const int64_t band = im2col_band_rows(p);
  // Image by image where no im2col is needed (a shifted view, or a 1x1 kernel reading the image
  // itself): the GEMM then writes the output in place, where several images at once need their
  // columns gathered and the result scattered back to [n, M, OH, OW]. Blocks of several images
  // are small networks' (executor.cpp's block_size); one thread of the 2-core AVX2 EPYC, batch
  // 64, a 4-16-16-4 channel 3x3/3x3/1x1 convolution network on 16x16 images: 274 -> 540
  // evaluations/s; GroupNorm, SiLU and a 48-channel 1x1 convolution: 330 -> 398.
  const bool per_image = shifted.fits || unit;
  ConvParams no_act = p;  // the several-image epilogue: bias there, the activation by cpu_act
  no_act.act = EW_COPY;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = std::min(p.chunk, p.N - n0), cols = B * OHW;
    if (B == 1 || per_image) {
      for (int64_t n = n0; n < n0 + B; ++n)
        for (int64_t g = 0; g < G; ++g) conv_one_image(st, shifted, unit, band, n, g);
      continue;
    }
    for (int64_t g = 0; g < G; ++g) {
      GemmView v = conv_gemm(st, g, false);
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t kh = 0; kh < p.KH; ++kh)
          for (int64_t kw = 0; kw < p.KW; ++kw)
            for (int64_t b = 0; b < B; ++b)
              for (int64_t oh = 0; oh < p.OH; ++oh) im2col_row(p, p.col, n0, B, g, c, kh, kw, b, oh, 0, p.OW);
      v.N = cols;
      v.B = p.col;
      v.ldb = cols;
      v.C = p.col + Cg * KK * cols;
      v.ldc = cols;
      gemm_all(v);
      for (int64_t r = 0; r < Mg * B; ++r) conv_out_range(no_act, v.C, n0, B, g, r, 0, OHW);
      if (p.act != EW_COPY)
        for (int64_t b = 0; b < B; ++b) cpu_act(p.act, p.act_alpha, p.y + ((n0 + b) * p.M + g * Mg) * OHW, Mg * OHW);
    }
  }
}

// ConvTranspose by stride phases (convt_phases.hpp), image by image: the group's input copied into
// its zero-padded image, then per output phase (a, b) one GEMM of the phase's packed weights
// (Step::bp, cpu_pack_weights: [Mg, Cg*taps], k = (c, kh, kw) in increasing order) with the bias
// added as it is stored, its rows spread to the output rows a, a + sh, ... and columns b, b + sw,
// ..., the activation after. Each output is one sum over its (c, kh, kw) in that order, then the
// bias (the column path sums each tap over c first, then the taps from the bias). A 64 -> 64
// channel 4x4 stride-2 layer (16x16 -> 32x32, batch 8, one thread of the shared 2-core AVX2 EPYC,
// almc_bench_onnx --profile=nodes): 18.0-19.8 ms -> 3.4-5.4 ms, as its mirror Conv (3.6-5.5 ms);
// the column matrix [Mg*KK, B*HW] (8 MiB there) and col2im's gather over it were most of the time.
void convt_phases(const Step& st, const ConvTPhases& ph, int64_t rows) {
  const ConvParams& p = st.conv;
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, HW = p.H * p.W, OHW = p.OH * p.OW;
  const int64_t plane = ph.Hp * ph.Wp;
  thread_local std::vector<int64_t> koff;  // per thread, grown once
  float* xp = p.col;
  float* tmp = p.col + ph.image_floats(p);
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      std::fill(xp, tmp, 0.f);
      const float* x = p.x + (n * p.C + g * Cg) * HW;
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t ih = 0; ih < p.H; ++ih)
          std::memcpy(xp + c * plane + (ih + ph.padT) * ph.Wp + ph.padL, x + (c * p.H + ih) * p.W, size_t(p.W) * sizeof(float));
      float* y = p.y + (n * p.M + g * Mg) * OHW;
      const float* wk = st.bp + g * Cg * Mg * KK;
      for (int64_t a = 0; a < p.sh; ++a)
        for (int64_t b = 0; b < p.sw; ++b) {
          const auto& ta = ph.th[size_t(a)];
          const auto& tb = ph.tw[size_t(b)];
          const int64_t nt = int64_t(ta.size() * tb.size()), hq = ph.hq[size_t(a)], wq = ph.wq[size_t(b)];
          const float* wa = wk;
          wk += Mg * Cg * nt;
          if (hq == 0 || wq == 0) continue;
          if (nt == 0) {  // no tap lands here: the bias alone
            for (int64_t m = 0; m < Mg; ++m) {
              const float bias = p.bias ? p.bias[g * Mg + m] : 0.f;
              for (int64_t i = 0; i < hq; ++i)
                for (int64_t j = 0; j < wq; ++j) y[m * OHW + (a + i * p.sh) * p.OW + b + j * p.sw] = bias;
            }
            continue;
          }
          koff.resize(size_t(Cg * nt));
          for (int64_t c = 0; c < Cg; ++c)
            for (size_t u = 0; u < ta.size(); ++u)
              for (size_t v = 0; v < tb.size(); ++v)
                koff[size_t(c * nt) + u * tb.size() + v] = c * plane + (ta[u].off + ph.padT) * ph.Wp + tb[v].off + ph.padL;
          GemmView v;
          v.M = Mg;
          v.K = Cg * nt;
          set_a(v, wa, false, Cg * nt);
          if (p.bias) {
            v.bias = p.bias + g * Mg;
            v.bias_rs = 1;
            v.bias_cs = 0;
          }
          v.b_koff = koff.data();
          const bool segs = wq % gemm_vector_cols() == 0;
          for (int64_t i0 = 0; i0 < hq; i0 += rows) {
            const int64_t R = std::min(rows, hq - i0);
            int64_t ld;  // floats between two phase rows in tmp
            v.B = xp + i0 * ph.Wp;
            v.C = tmp;
            if (segs) {  // R segments of wq columns, nothing computed to be dropped
              v.N = R * wq;
              v.seg = wq;
              v.b_seg = ph.Wp;
              v.c_seg = wq;
              v.ldc = R * wq;
              ld = wq;
            } else {  // the wide span, the Wp - wq columns between two rows dropped
              v.N = gemm_padded_cols(Mg, (R - 1) * ph.Wp + wq);
              v.ldc = v.N;
              ld = ph.Wp;
            }
            gemm_all(v);
            for (int64_t m = 0; m < Mg; ++m)
              for (int64_t i = 0; i < R; ++i) {
                float* yr = y + m * OHW + (a + (i0 + i) * p.sh) * p.OW + b;
                const float* t = tmp + m * v.ldc + i * ld;
                if (p.sw == 1) std::memcpy(yr, t, size_t(wq) * sizeof(float));
                else
                  for (int64_t j = 0; j < wq; ++j) yr[j * p.sw] = t[j];
              }
          }
        }
      if (p.act != EW_COPY) cpu_act(p.act, p.act_alpha, y, Mg * OHW);
    }
}

// Phase rows per GEMM of convt_phases: its result and the input rows it reads within
// kBandFloats, within the workspace; 0 when even one row does not fit (the column path then).
int64_t convt_phase_rows(const ConvParams& p, const ConvTPhases& ph) {
  const int64_t Cg = p.C / p.group, Mg = p.M / p.group;
  int64_t hmax = 0;
  for (int64_t h : ph.hq) hmax = std::max(hmax, h);
  int64_t rows = std::max<int64_t>(1, std::min(hmax, kBandFloats / std::max<int64_t>(1, (Mg + Cg) * ph.Wp)));
  while (rows > 1 && ph.floats(p, rows) > p.col_elems) --rows;
  return ph.floats(p, rows) <= p.col_elems ? rows : 0;
}

void run_conv_transpose(const Step& st) {
  const ConvParams& p = st.conv;
  if (st.bp) {  // the phases' weights packed (fp32, a constant weight)
    const ConvTPhases ph(p);
    if (const int64_t rows = convt_phase_rows(p, ph)) return convt_phases(st, ph, rows);
  }
  // Else a GEMM into the columns [Mg*KK, B*HW] and the gather of col2im_range.
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, HW = p.H * p.W;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = std::min(p.chunk, p.N - n0), cols = B * HW;
    float* col = p.col + Cg * cols;  // [Mg*KK, B*HW]
    for (int64_t g = 0; g < G; ++g) {
      // The group's input as [Cg, B*HW]: for one image, the image itself.
      const float* xt = p.x + (n0 * p.C + g * Cg) * HW;
      if (B > 1) {
        for (int64_t r = 0; r < Cg * B; ++r) regroup_range(p, p.col, n0, B, g, r, 0, HW);
        xt = p.col;
      }
      // weight [C, Mg, KH, KW]: the group's block is [Cg, Mg*KK]; col = block^T xt.
      GemmView v;
      v.M = Mg * KK;
      v.N = cols;
      v.K = Cg;
      set_a(v, p.w + g * Cg * Mg * KK, true, Mg * KK);
      set_bf16_a(v, st, g * Mg * KK);
      v.B = xt;
      v.ldb = cols;
      v.C = col;
      v.ldc = cols;
      gemm_all(v);
      for (int64_t r = 0, rows = B * Mg * p.OH; r < rows; ++r) col2im_range(p, col, n0, B, g, r, 0, p.OW);
    }
  }
}

// Per row: the lane maxima, e^(x - max) for the whole row at once with the
// vectorised exp, the lane partial sums of those (CUDA's order), the outputs from them.
void run_softmax(const SoftmaxParams& p) {
  thread_local std::vector<float> buf;  // per thread, grown once
  buf.resize(size_t(3 * p.len));
  float* xs = buf.data();      // the row, contiguous
  float* d = xs + p.len;       // x - max
  float* e = d + p.len;        // e^(x - max)
  float v[kLanes];
  for (int64_t r = 0; r < p.outer * p.inner; ++r) {
    const int64_t base = softmax_base(p, r);
    const float* x = p.x + base;
    float* y = p.y + base;
    if (p.inner == 1) {
      xs = const_cast<float*>(x);
    } else {
      xs = buf.data();
      for (int64_t k = 0; k < p.len; ++k) xs[k] = x[k * p.inner];
    }
    lane_maxima(p.len, v, [xs](int64_t k) { return xs[k]; });
    const float mx = lane_tree_max(v);
    for (int64_t k = 0; k < p.len; ++k) d[k] = xs[k] - mx;
    vexp(d, e, p.len);
    lane_partials(p.len, v, [e](int64_t k) { return e[k]; });
    const float f = softmax_factor(p, lane_tree_sum(v));
    for (int64_t k = 0; k < p.len; ++k) y[k * p.inner] = softmax_value(p, xs[k], e[k], mx, f);
  }
}

// Per row: the lane partial sums (CUDA's order, computed contiguously), then the affine output.
void run_norm(const NormParams& p) {
  float v[kLanes];
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* x = p.x + r * p.len;
    lane_partials(p.len, v, [x](int64_t i) { return x[i]; });
    const float mean = norm_mean(p, lane_tree_sum(v));
    lane_partials(p.len, v, [x, mean](int64_t i) { return norm_sq_term(x[i], mean); });
    norm_write(p, r, 0, 1, mean, norm_rstd(p, lane_tree_sum(v)), CpuEwApply());
  }
}

// The rows' and columns' taps once per step, then every row from them (the two input rows mixed
// once per row).
void run_resize(const ResizeParams& p) {
  thread_local std::vector<ResizeTap> wt, ht;  // per thread, grown once
  thread_local std::vector<float> vrow;
  vrow.resize(size_t(p.W));
  if (p.cubic) {
    for (int64_t r = 0; r < p.NC * p.OH; ++r) resize_range(p, r, 0, p.OW, nullptr, vrow.data());
    return;
  }
  wt.resize(size_t(p.OW));
  ht.resize(size_t(p.OH));
  for (int64_t ow = 0; ow < p.OW; ++ow) wt[size_t(ow)] = resize_tap_w(p, ow);
  for (int64_t oh = 0; oh < p.OH; ++oh) ht[size_t(oh)] = resize_tap_h(p, oh);
  for (int64_t c = 0; c < p.NC; ++c)
    for (int64_t oh = 0; oh < p.OH; ++oh) resize_row(p, c, oh, ht[size_t(oh)], 0, p.OW, wt.data(), vrow.data());
}

void run_reduce(const ReduceParams& p) {
  float v[kLanes];
  for (int64_t o = 0; o < p.out_total; ++o) {
    if (p.extreme) {
      for (int l = 0; l < kLanes; ++l) v[l] = reduce_lane_max(p, o, l);
      p.y[o] = reduce_finish(p, lane_tree_max(v));
      continue;
    }
    for (int l = 0; l < kLanes; ++l) v[l] = reduce_lane_sum(p, o, l);
    p.y[o] = reduce_finish(p, lane_tree_sum(v));
  }
}

}  // namespace

template <class T>
void cpu_copy(const CopyParams& p, const T* in, T* out) {
  if (p.total <= 0) return;
  // A transpose: the input's unit-stride dimension b is not the innermost one (a), whose input
  // stride is not 1. The (b, a) planes go by tiles, the other dimensions around them.
  const int a = p.ndim - 1;
  int b = -1;
  for (int d = 0; d < a; ++d)
    if (p.in_stride[d] == 1 && p.shape[d] >= 8) b = d;
  if (b >= 0 && p.in_stride[a] != 1 && p.shape[a] >= 8) {
    CopyParams o{};  // the other dimensions
    for (int d = 0; d < p.ndim; ++d)
      if (d != a && d != b) {
        o.shape[o.ndim] = p.shape[d];
        o.in_stride[o.ndim] = p.in_stride[d];
        o.out_stride[o.ndim++] = p.out_stride[d];
      }
    for (int64_t r = 0, planes = p.total / (p.shape[a] * p.shape[b]); r < planes; ++r)
      copy_tiled(in + strided_offset(r, o.ndim, o.shape, o.in_stride), 1, p.in_stride[a],
                 out + strided_offset(r, o.ndim, o.shape, o.out_stride), p.out_stride[b], p.out_stride[a], p.shape[b],
                 p.shape[a]);
    return;
  }
  const int64_t inner = copy_inner(p);
  for (int64_t r = 0, rows = p.total / inner; r < rows; ++r) copy_range(p, in, out, r, 0, inner);
}

template <class T>
void cpu_gather(const GatherParams& p, const T* data, const T* idx, T* out) {
  for (int64_t r = 0; r < p.outer * p.n_idx; ++r) gather_range(p, data, idx, out, r, 0, p.inner);
}

template void cpu_copy<float>(const CopyParams&, const float*, float*);
template void cpu_copy<double>(const CopyParams&, const double*, double*);
template void cpu_gather<float>(const GatherParams&, const float*, const float*, float*);
template void cpu_gather<double>(const GatherParams&, const double*, const double*, double*);

void cpu_pack_weights(Plan& p) {
  // fp32 ConvTranspose with a constant weight [C, Mg, KH, KW]: per group, the phases' weights
  // (convt_phases) one after the other, phase (a, b) as [Mg, Cg*taps], k = (c, kh, kw).
  for (Step& s : p.steps) {
    if (s.kind != StepKind::ConvT || s.bf16 || s.refs.size() < 2 || s.refs[1].space != BufRef::Const) continue;
    const ConvParams& c = s.conv;
    const int64_t G = c.group, Cg = c.C / G, Mg = c.M / G, KK = c.KH * c.KW;
    const ConvTPhases ph(c);
    s.bp_off = append_consts(p, c.C * Mg * KK);
    const float* w = p.consts.data() + s.refs[1].off;
    float* out = p.consts.data() + s.bp_off;
    for (int64_t g = 0; g < G; ++g)
      for (int64_t a = 0; a < c.sh; ++a)
        for (int64_t b = 0; b < c.sw; ++b) {
          const auto& ta = ph.th[size_t(a)];
          const auto& tb = ph.tw[size_t(b)];
          for (int64_t m = 0; m < Mg; ++m)
            for (int64_t ci = 0; ci < Cg; ++ci)
              for (const auto& u : ta)
                for (const auto& v : tb) *out++ = w[(((g * Cg + ci) * Mg + m) * c.KH + u.k) * c.KW + v.k];
        }
  }
  // The steps to pack: constant fp32 B, untransposed, one batch entry, wide.
  auto packable = [&](const Step& s) {
    if (s.kind != StepKind::Gemm || s.bf16 || s.refs.size() < 2 || s.refs[1].space != BufRef::Const) return false;
    const GemmParams& q = s.gemm;
    GemmView g;
    g.M = q.M, g.N = q.N, g.K = q.K, g.ldb = q.ldb;
    return !q.trans_b && q.batch == 1 && wide_b(g, 256);
  };
  // A constant is packed in place when only such steps read it, all with the same K and N and ldb
  // = N: its packed panels then replace it, written once. Any other reference into its K x N
  // values (at its start, or inside it: a copy of a part of it) keeps it as it is. For any other
  // step the panels go to space appended to the buffer, reserved at once.
  struct Use {
    int64_t K = 0, N = 0;
    bool in_place = true, done = false;
  };
  std::map<int64_t, Use> uses;  // by the constant's offset
  for (const Step& s : p.steps)
    if (packable(s)) {
      Use& u = uses[s.refs[1].off];
      if (u.K == 0) u.K = s.gemm.K, u.N = s.gemm.N;
      if (u.K != s.gemm.K || u.N != s.gemm.N || s.gemm.ldb != s.gemm.N) u.in_place = false;
    }
  if (uses.empty()) return;
  for (const Step& s : p.steps)
    for (size_t i = 0; i < s.refs.size(); ++i) {
      if (s.refs[i].space != BufRef::Const) continue;
      auto it = uses.upper_bound(s.refs[i].off);  // the last constant starting at or before the reference
      if (it == uses.begin()) continue;
      --it;
      const bool inside = s.refs[i].off < it->first + it->second.K * it->second.N;
      if (inside && (i != 1 || !packable(s) || s.refs[i].off != it->first)) it->second.in_place = false;
    }
  int64_t extra = 0;  // an upper bound of the appended floats, so that the buffer grows once
  for (const Step& s : p.steps)
    if (packable(s) && !uses.at(s.refs[1].off).in_place) extra += s.gemm.K * s.gemm.N + 15;
  p.consts.reserve(p.consts.size() + size_t(extra));
  for (Step& s : p.steps)
    if (packable(s) && !uses.at(s.refs[1].off).in_place) s.bp_off = append_consts(p, s.gemm.K * s.gemm.N);
  std::vector<float> scratch;  // an in-place constant's values while its panels are written
  for (Step& s : p.steps) {
    if (!packable(s)) continue;
    const GemmParams& q = s.gemm;
    Use& u = uses.at(s.refs[1].off);
    GemmView g;
    g.N = q.N;
    g.B = p.consts.data() + s.refs[1].off;
    g.ldb = q.ldb;
    if (u.in_place) {
      s.bp_off = s.refs[1].off;
      if (u.done) continue;  // packed for an earlier step
      u.done = true;
      scratch.assign(g.B, g.B + q.K * q.N);
      g.B = scratch.data();
    }
    float* out = p.consts.data() + s.bp_off;
    for_each_panel(q.K, q.N, [&](int64_t k0, int64_t kn, int64_t j, int64_t w, int64_t at) { copy_panel(g, k0, kn, j, w, out + at); });
  }
}

void cpu_run_step(const Step& s) {
  switch (s.kind) {
    case StepKind::Ew: return run_ew(s.ew);
    case StepKind::Gemm: return run_gemm(s);
    case StepKind::Conv: return run_conv(s);
    case StepKind::ConvT: return run_conv_transpose(s);
    case StepKind::Copy: return cpu_copy<float>(s.copy, s.copy.in, s.copy.out);
    case StepKind::Gather: return cpu_gather<float>(s.gather, s.gather.data, s.gather.idx, s.gather.out);
    case StepKind::Softmax: return run_softmax(s.softmax);
    case StepKind::Norm: return run_norm(s.norm);
    case StepKind::Reduce: return run_reduce(s.reduce);
    case StepKind::Pool:
      for (int64_t r = 0; r < s.pool.NC * s.pool.OH; ++r) pool_range(s.pool, r, 0, s.pool.OW);
      return;
    case StepKind::Resize: return run_resize(s.resize);
    case StepKind::Pad:
      for (int64_t o = 0; o < s.pad.total; ++o) s.pad.y[o] = pad_at(s.pad, o);
      return;
    case StepKind::Fill: std::fill(s.fill_ptr, s.fill_ptr + s.fill_count, s.fill_value); return;
  }
}

}  // namespace almc::onnx
