// The ONNX executor's operators, one source for both backends: each function computes a range of
// output elements of one "row" (a run of consecutive outputs that share their index arithmetic).
// The CPU backend calls them for whole rows inside one chain block (host/onnx/cpu_kernels.cpp),
// the CUDA backend for one element per thread (cuda/onnx/kernels.cu). GEMMs are BLAS calls on
// each side; only the data movement and the pointwise math around them live here.
//
// Reductions (Softmax, the normalisations, ReduceSum/Mean) accumulate in float on both backends
// and in one fixed order: kLanes partial sums, lane l taking elements l, l + kLanes, ... in
// increasing order, then a butterfly over the lanes (lane_tree_* below on the CPU, warp shuffles
// with the same pairing on CUDA). Float because it is the GPU's native width (double would cost
// 2-64x there) and because one type and one order make both backends round alike; the lanes keep
// the summation error of a row of length L near that of L / 32 terms.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cuda/onnx/params.hpp"

namespace almc::onnx {

constexpr int kLanes = 32;  // reduction lanes: one CUDA warp
constexpr int kEwRun = 256;  // the longest run of elements an instruction runner (Apply) is given

// Offset of linear index i in a strided [shape] walk.
ALMC_OHD int64_t strided_offset(int64_t i, int ndim, const int64_t* shape, const int64_t* stride) {
  int64_t off = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    const int64_t q = i / shape[d];
    off += (i - q * shape[d]) * stride[d];
    i = q;
  }
  return off;
}

// The CPU's butterfly over kLanes partial values: the same pairing as CUDA's xor shuffles
// (step s adds lane l + s to lane l), so both backends round identically.
ALMC_OHD float lane_tree_sum(float* v) {
  for (int s = kLanes / 2; s > 0; s >>= 1)
    for (int l = 0; l < s; ++l) v[l] = v[l] + v[l + s];
  return v[0];
}
ALMC_OHD float lane_tree_max(float* v) {
  for (int s = kLanes / 2; s > 0; s >>= 1)
    for (int l = 0; l < s; ++l) v[l] = v[l] > v[l + s] ? v[l] : v[l + s];
  return v[0];
}

// ---------------------------------------------------------------- elementwise programs

// D[t] = op(A[t], B[t], C[t]) for t < len; the common ops get their own loop (vectorised on the
// CPU; on CUDA len is 1 and this is a plain dispatch).
ALMC_OHD void ew_apply_n(int op, int len, const float* A, const float* B, const float* C, float* D, float alpha,
                         float beta) {
  using std::exp; using std::sqrt;
  switch (op) {
    case EW_COPY: for (int t = 0; t < len; ++t) D[t] = A[t]; break;
    case EW_NEG: for (int t = 0; t < len; ++t) D[t] = -A[t]; break;
    case EW_SQRT: for (int t = 0; t < len; ++t) D[t] = sqrt(A[t]); break;
    case EW_RECIP: for (int t = 0; t < len; ++t) D[t] = 1.f / A[t]; break;
    case EW_EXP: for (int t = 0; t < len; ++t) D[t] = exp(A[t]); break;
    case EW_SIGMOID: for (int t = 0; t < len; ++t) D[t] = 1.f / (1.f + exp(-A[t])); break;
    case EW_SILU: for (int t = 0; t < len; ++t) D[t] = A[t] / (1.f + exp(-A[t])); break;
    case EW_RELU: for (int t = 0; t < len; ++t) D[t] = A[t] > 0.f ? A[t] : 0.f; break;
    case EW_AFFINE: for (int t = 0; t < len; ++t) D[t] = alpha * A[t] + beta; break;
    case EW_ADD: for (int t = 0; t < len; ++t) D[t] = A[t] + B[t]; break;
    case EW_SUB: for (int t = 0; t < len; ++t) D[t] = A[t] - B[t]; break;
    case EW_MUL: for (int t = 0; t < len; ++t) D[t] = A[t] * B[t]; break;
    case EW_DIV: for (int t = 0; t < len; ++t) D[t] = A[t] / B[t]; break;
    case EW_WHERE: for (int t = 0; t < len; ++t) D[t] = C[t] != 0.f ? A[t] : B[t]; break;
    default: for (int t = 0; t < len; ++t) D[t] = ew_apply<float>(op, A[t], B[t], C[t], alpha, beta); break;
  }
}

// ew_apply_n as a function object: the default instruction runner of ew_range.
struct EwApplyN {
  ALMC_OHD void operator()(int op, int len, const float* A, const float* B, const float* C, float* D, float alpha,
                           float beta) const {
    ew_apply_n(op, len, A, B, C, D, alpha, beta);
  }
};

// Outputs start .. start+len-1 (len <= W) of a fused elementwise program; regs is scratch of
// kMaxEwRegs x W floats. Broadcast inputs are walked like an odometer from `start`: one division
// per dimension per call, not per element. `apply` runs one instruction over the range (a backend
// may pass one with its own vectorised exp; the ops' formulas stay those of ew_apply_n).
template <int W, class Apply = EwApplyN>
ALMC_OHD void ew_range(const EwParams& p, int64_t start, int len, float (*regs)[W], Apply apply = Apply()) {
  const float* r[kMaxEwRegs];
  for (int k = 0; k < p.n_in; ++k) {
    if (p.contiguous[k]) {
      r[k] = p.in[k] + start;
      continue;
    }
    float* dst = regs[k];
    r[k] = dst;
    if (p.scalar[k]) {
      for (int t = 0; t < len; ++t) dst[t] = p.in[k][0];
      continue;
    }
    int64_t idx[kMaxDims];
    int64_t rem = start, off = 0;
    for (int d = p.ndim - 1; d >= 0; --d) {
      idx[d] = rem % p.shape[d];
      rem /= p.shape[d];
      off += idx[d] * p.stride[k][d];
    }
    const int last = p.ndim - 1;
    const int64_t inner = p.shape[last], st = p.stride[k][last];
    for (int t = 0; t < len;) {
      const int64_t left = inner - idx[last];
      const int run = left < len - t ? int(left) : len - t;
      const float* src = p.in[k] + off;
      if (st == 0) {  // broadcast along the inner dimension: one value (a loop the compiler vectorises)
        const float v = src[0];
        for (int u = 0; u < run; ++u) dst[t + u] = v;
      } else if (st == 1) {
        for (int u = 0; u < run; ++u) dst[t + u] = src[u];
      } else {
        for (int u = 0; u < run; ++u) dst[t + u] = src[u * st];
      }
      t += run;
      off += run * st;
      idx[last] += run;
      for (int d = last; d > 0 && idx[d] == p.shape[d]; --d) {
        off -= idx[d] * p.stride[k][d];
        idx[d] = 0;
        ++idx[d - 1];
        off += p.stride[k][d - 1];
      }
    }
  }
  float* out = p.out + start;
  for (int q = 0; q < p.n_instr; ++q) {
    const EwInstr& in = p.instr[q];
    float* D = (q == p.n_instr - 1 && in.dst == p.out_reg) ? out : regs[in.dst];
    apply(in.op, len, r[in.a], r[in.b], r[in.c], D, in.alpha, in.beta);
    r[in.dst] = D;
  }
  if (r[p.out_reg] != out)
    for (int t = 0; t < len; ++t) out[t] = r[p.out_reg][t];
}

// ---------------------------------------------------------------- data movement

ALMC_OHD int64_t copy_inner(const CopyParams& p) { return p.ndim ? p.shape[p.ndim - 1] : 1; }

// Elements i0 .. i1-1 of innermost row `row` of a strided copy (rows = total / copy_inner).
template <class T>
ALMC_OHD void copy_range(const CopyParams& p, const T* in, T* out, int64_t row, int64_t i0, int64_t i1) {
  const int nd = p.ndim;
  const T* src = in + (nd > 1 ? strided_offset(row, nd - 1, p.shape, p.in_stride) : 0);
  T* dst = out + (nd > 1 ? strided_offset(row, nd - 1, p.shape, p.out_stride) : 0);
  const int64_t is = nd ? p.in_stride[nd - 1] : 0, os = nd ? p.out_stride[nd - 1] : 0;
  if (is == 1 && os == 1) {
    for (int64_t i = i0; i < i1; ++i) dst[i] = src[i];
  } else {
    for (int64_t i = i0; i < i1; ++i) dst[i * os] = src[i * is];
  }
}

// Row (o, j) of a Gather (rows = outer * n_idx, each `inner` long).
template <class T>
ALMC_OHD void gather_range(const GatherParams& p, const T* data, const T* idx, T* out, int64_t row, int64_t i0, int64_t i1) {
  const int64_t o = row / p.n_idx, j = row - o * p.n_idx;
  // A negative index counts from the end; out of range (or NaN: a computed index) clamps. The
  // comparisons come before the conversion, which is undefined for values beyond int64 (fuzz_onnx).
  const T v = idx[j], len = T(p.axis_len);
  int64_t k = !(v > -len) ? 0 : (v >= len ? p.axis_len - 1 : int64_t(v));
  if (k < 0) k += p.axis_len;
  k = k < 0 ? 0 : (k >= p.axis_len ? p.axis_len - 1 : k);
  const T* src = data + (o * p.axis_len + k) * p.inner;
  T* dst = out + row * p.inner;
  for (int64_t i = i0; i < i1; ++i) dst[i] = src[i];
}

// Pad (constant 0, reflect 1, edge 2) at output element o.
ALMC_OHD float pad_at(const PadParams& p, int64_t o) {
  int64_t rem = o, off = 0, istride = 1;
  for (int d = p.ndim - 1; d >= 0; --d) {
    int64_t i = rem % p.oshape[d] - p.begin[d];
    rem /= p.oshape[d];
    const int64_t n = p.ishape[d];
    if (i < 0 || i >= n) {
      if (p.mode == 0) return p.value;
      if (p.mode == 2) {
        i = i < 0 ? 0 : n - 1;
      } else if (p.mode == 3) {  // wrap
        i = ((i % n) + n) % n;
      } else {
        const int64_t period = 2 * (n - 1);
        i = period > 0 ? ((i % period) + period) % period : 0;
        if (i >= n) i = period - i;
      }
    }
    off += i * istride;
    istride *= n;
  }
  return p.x[off];
}

// ---------------------------------------------------------------- GEMM and convolution epilogues

// Element offsets of batch item b's A, B and C in a batched GEMM.
ALMC_OHD void gemm_batch_offsets(const GemmParams& p, int64_t b, int64_t& oa, int64_t& ob, int64_t& oc) {
  oa = ob = oc = 0;
  for (int d = p.batch_ndim - 1; d >= 0; --d) {
    const int64_t i = b % p.batch_shape[d];
    b /= p.batch_shape[d];
    oa += i * p.batch_stride_a[d];
    ob += i * p.batch_stride_b[d];
    oc += i * p.batch_stride_c[d];
  }
}

// One operand's batch offsets as a single stride when they are that stride times the flat batch
// index (contiguous batch dimensions, or every one broadcast: stride 0), else -1: then the batch
// is one strided-batched GEMM however many batch dimensions it has (attention's [n, heads]).
// Dimensions of extent 1 are ignored.
ALMC_OHD int64_t gemm_uniform_batch_stride(const GemmParams& p, const int64_t* stride) {
  int64_t unit = -1, span = 1;
  for (int d = p.batch_ndim - 1; d >= 0; --d) {
    if (p.batch_shape[d] == 1) continue;
    if (unit < 0) {
      unit = stride[d];
    } else if (stride[d] != unit * span) {
      return -1;
    }
    span *= p.batch_shape[d];
  }
  return unit < 0 ? 0 : unit;
}

// Row m of C before a GEMM that accumulates (beta = 1): the scaled bias.
ALMC_OHD void gemm_bias_range(const GemmParams& p, float* C, int64_t m, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    const float v = p.bias_kind == BIAS_ROW ? p.bias[n] : p.bias_kind == BIAS_COL ? p.bias[m] : p.bias[m * p.bias_ld + n];
    C[m * p.ldc + n] = p.beta * v;
  }
}

ALMC_OHD void act_range(int act, float alpha, float* y, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) y[i] = ew_apply<float>(act, y[i], 0.f, 0.f, alpha, 0.f);
}

// im2col for images n0 .. n0+B-1 of group g: row (c, kh, kw, b, oh) of [Cg*KK, B*OH*OW], columns
// ow0 .. ow1-1 (the CPU walks c, kh, kw, b, oh in nested loops: no division per row).
ALMC_OHD void im2col_row(const ConvParams& p, float* col, int64_t n0, int64_t B, int64_t g, int64_t c, int64_t kh,
                         int64_t kw, int64_t b, int64_t oh, int64_t ow0, int64_t ow1) {
  const int64_t Cg = p.C / p.group, ck = (c * p.KH + kh) * p.KW + kw;
  const int64_t ih = oh * p.sh - p.ph + kh * p.dh;
  float* dst = col + ck * B * p.OH * p.OW + (b * p.OH + oh) * p.OW;
  if (ih < 0 || ih >= p.H) {
    for (int64_t ow = ow0; ow < ow1; ++ow) dst[ow] = 0.f;
    return;
  }
  const float* x = p.x + ((n0 + b) * p.C + g * Cg + c) * p.H * p.W + ih * p.W;
  if (p.sw == 1) {
    // Unit stride: x[ow + shift] on the columns whose window is inside the image, zeros around.
    const int64_t shift = kw * p.dw - p.pw;
    int64_t lo = -shift, hi = p.W - shift;
    lo = lo < ow0 ? ow0 : (lo > ow1 ? ow1 : lo);
    hi = hi > ow1 ? ow1 : (hi < lo ? lo : hi);
    for (int64_t ow = ow0; ow < lo; ++ow) dst[ow] = 0.f;
    for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = x[ow + shift];
    for (int64_t ow = hi; ow < ow1; ++ow) dst[ow] = 0.f;
    return;
  }
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    const int64_t iw = ow * p.sw - p.pw + kw * p.dw;
    dst[ow] = (iw >= 0 && iw < p.W) ? x[iw] : 0.f;
  }
}
// The same with the row given as one index (rows = Cg * KH * KW * B * OH).
ALMC_OHD void im2col_range(const ConvParams& p, float* col, int64_t n0, int64_t B, int64_t g, int64_t row, int64_t ow0,
                           int64_t ow1) {
  const int64_t oh = row % p.OH, b = (row / p.OH) % B, ck = row / (p.OH * B);
  const int64_t KK = p.KH * p.KW;
  im2col_row(p, col, n0, B, g, ck / KK, (ck % KK) / p.KW, ck % p.KW, b, oh, ow0, ow1);
}

// y[n0+b, g*Mg+m, :] = act(tmp[m, b*OHW + :] + bias): row (m, b), elements i of OH*OW.
ALMC_OHD void conv_out_range(const ConvParams& p, const float* tmp, int64_t n0, int64_t B, int64_t g, int64_t row,
                             int64_t i0, int64_t i1) {
  const int64_t Mg = p.M / p.group, OHW = p.OH * p.OW;
  const int64_t m = row / B, b = row % B;
  const float bias = p.bias ? p.bias[g * Mg + m] : 0.f;
  const float* src = tmp + m * B * OHW + b * OHW;
  float* y = p.y + ((n0 + b) * p.M + g * Mg + m) * OHW;
  if (p.act == EW_COPY) {  // the bias alone: a loop the compiler vectorises, no call per element
    for (int64_t i = i0; i < i1; ++i) y[i] = src[i] + bias;
    return;
  }
  for (int64_t i = i0; i < i1; ++i) y[i] = ew_apply<float>(p.act, src[i] + bias, 0.f, 0.f, p.act_alpha, 0.f);
}

// ConvTranspose input regrouped: xt[c, b*HW + :] = x[n0+b, g*Cg+c, :], row (c, b).
ALMC_OHD void regroup_range(const ConvParams& p, float* xt, int64_t n0, int64_t B, int64_t g, int64_t row, int64_t i0,
                            int64_t i1) {
  const int64_t Cg = p.C / p.group, HW = p.H * p.W;
  const int64_t c = row / B, b = row % B;
  const float* src = p.x + ((n0 + b) * p.C + g * Cg + c) * HW;
  float* dst = xt + c * B * HW + b * HW;
  for (int64_t i = i0; i < i1; ++i) dst[i] = src[i];
}

// ConvTranspose output by gathering the columns that land on it (no atomics, no scatter):
// row (b, m, oh) of the group's output, columns ow.
ALMC_OHD void col2im_range(const ConvParams& p, const float* col, int64_t n0, int64_t B, int64_t g, int64_t row,
                           int64_t ow0, int64_t ow1) {
  const int64_t Mg = p.M / p.group, HW = p.H * p.W, cols = B * HW;
  const int64_t oh = row % p.OH, m = (row / p.OH) % Mg, b = row / (p.OH * Mg);
  const float bias = p.bias ? p.bias[g * Mg + m] : 0.f;
  float* y = p.y + ((n0 + b) * p.M + g * Mg + m) * p.OH * p.OW + oh * p.OW;
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    float acc = bias;
    for (int64_t kh = 0; kh < p.KH; ++kh) {
      const int64_t th = oh + p.ph - kh * p.dh;
      if (th < 0 || th % p.sh) continue;
      const int64_t ih = th / p.sh;
      if (ih >= p.H) continue;
      for (int64_t kw = 0; kw < p.KW; ++kw) {
        const int64_t tw = ow + p.pw - kw * p.dw;
        if (tw < 0 || tw % p.sw) continue;
        const int64_t iw = tw / p.sw;
        if (iw >= p.W) continue;
        acc += col[((m * p.KH + kh) * p.KW + kw) * cols + b * HW + ih * p.W + iw];
      }
    }
    y[ow] = ew_apply<float>(p.act, acc, 0.f, 0.f, p.act_alpha, 0.f);
  }
}

// ---------------------------------------------------------------- pooling and resizing

// Row (c, oh) of a 2-D pooling, columns ow.
ALMC_OHD void pool_range(const PoolParams& p, int64_t row, int64_t ow0, int64_t ow1) {
  const int64_t c = row / p.OH, oh = row % p.OH;
  const float* x = p.x + c * p.H * p.W;
  float* y = p.y + row * p.OW;
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    float acc = p.max ? -INFINITY : 0.f;
    int64_t cnt = 0, cnt_pad = 0;
    for (int64_t kh = 0; kh < p.KH; ++kh) {
      const int64_t ih = oh * p.sh - p.ph + kh * p.dh;
      for (int64_t kw = 0; kw < p.KW; ++kw) {
        const int64_t iw = ow * p.sw - p.pw + kw * p.dw;
        // count_include_pad counts the window inside the padded input, not past its end.
        if (ih < p.H + p.ph && iw < p.W + p.pw) ++cnt_pad;
        if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
        const float v = x[ih * p.W + iw];
        acc = p.max ? (v > acc ? v : acc) : acc + v;
        ++cnt;
      }
    }
    if (!p.max) {
      const int64_t d = p.count_include_pad ? cnt_pad : cnt;
      acc /= float(d > 0 ? d : 1);
    }
    y[ow] = acc;
  }
}

ALMC_OHD int64_t nearest_index(double src, int mode, int64_t len) {
  using std::floor; using std::ceil; using std::round;
  double r;
  switch (mode) {
    case NEAREST_FLOOR: r = floor(src); break;
    case NEAREST_CEIL: r = ceil(src); break;
    case NEAREST_ROUND_PREFER_CEIL: r = floor(src + 0.5); break;
    default: r = (src - floor(src) == 0.5) ? floor(src) : round(src); break;
  }
  const int64_t k = int64_t(r);
  return k < 0 ? 0 : (k >= len ? len - 1 : k);
}

// The source coordinate of output index o on an axis of `len` inputs and `out_len` outputs at
// scale s, by the ONNX formula of the coordinate transformation mode, in float32 as onnxruntime
// and torch compute it: a coordinate that is an integer in exact arithmetic can land just below
// it, and where it lands decides a nearest or floor pick (scale 0.6: 3 / 0.6f is 5.0f, while
// 3 * (1 / double(0.6f)) is 4.9999998, which floors to 4).
ALMC_OHD float resize_source(int coord, float s, int64_t o, int64_t len, int64_t out_len) {
  const float x = float(o), in_l = float(len), out_l = float(out_len);
  switch (coord) {
    case COORD_ASYMMETRIC: return x / s;
    case COORD_TF_HALF_PIXEL_FOR_NN: return (x + 0.5f) / s;
    case COORD_ALIGN_CORNERS: return out_len == 1 ? 0.f : x * (in_l - 1.f) / (out_l - 1.f);
    case COORD_PYTORCH_HALF_PIXEL: return out_len > 1 ? (x + 0.5f) / s - 0.5f : 0.f;
    case COORD_HALF_PIXEL_SYMMETRIC: {  // opset 19: half_pixel, re-centred for the rounded size
      const float adjustment = out_l / (s * in_l);
      const float offset = in_l / 2.f * (1.f - adjustment);
      return offset + (x + 0.5f) / s - 0.5f;
    }
    default: return (x + 0.5f) / s - 0.5f;  // half_pixel
  }
}

// Where output index o of a resized axis of `len` inputs reads: nearest, input i0; linear,
// x[i0] (1 - f) + x[i1] f, the source coordinate clamped to the input.
struct ResizeTap {
  int64_t i0, i1;
  float f;
};
ALMC_OHD ResizeTap resize_tap(const ResizeParams& p, float s, int64_t o, int64_t len, int64_t out_len) {
  const float src = resize_source(p.coord, s, o, len, out_len);
  ResizeTap t;
  if (!p.linear) {
    t.i0 = t.i1 = nearest_index(double(src), p.nearest_mode, len);
    t.f = 0.f;
    return t;
  }
  const float c = src < 0.f ? 0.f : (src > float(len - 1) ? float(len - 1) : src);
  t.i0 = int64_t(c);
  t.i1 = t.i0 + 1 < len ? t.i0 + 1 : len - 1;
  t.f = c - float(t.i0);
  return t;
}
ALMC_OHD ResizeTap resize_tap_h(const ResizeParams& p, int64_t oh) { return resize_tap(p, p.scale_h, oh, p.H, p.OH); }
ALMC_OHD ResizeTap resize_tap_w(const ResizeParams& p, int64_t ow) { return resize_tap(p, p.scale_w, ow, p.W, p.OW); }

// Linear resize in two steps, between the two input rows first, then between the two columns:
// v = x0[i] (1 - fh) + x1[i] fh at the columns i0 and i1 of the tap, y = v0 (1 - fw) + v1 fw.
ALMC_OHD float resize_vmix(const float* x0, const float* x1, int64_t i, float fh) { return x0[i] * (1.f - fh) + x1[i] * fh; }
ALMC_OHD float resize_hmix(float v0, float v1, float fw) { return v0 * (1.f - fw) + v1 * fw; }

// Cubic resize: the four inputs i - 1 .. i + 2 around the source coordinate s (i = floor s, not
// clamped), read at indices clamped to the axis (edge values), weighted by Keys' kernel
// with coefficient A; with exclude_outside the taps outside the axis weigh 0 and the others are
// renormalised. y = sum_k ww[k] (sum_j wh[j] x[ih_j, iw_k]): rows first, as for linear.
struct CubicTap {
  int64_t i[4];
  float w[4];
};
ALMC_OHD CubicTap resize_cubic_tap(const ResizeParams& p, float scale, int64_t o, int64_t len, int64_t out_len) {
  const double s = resize_source(p.coord, scale, o, len, out_len);
  const double fl = floor(s), t = s - fl, A = p.cubic_a;
  const double dist[4] = {t + 1.0, t, 1.0 - t, 2.0 - t};
  double w[4], sum = 0.0;
  CubicTap c;
  for (int k = 0; k < 4; ++k) {
    const double x = dist[k];
    w[k] = x <= 1.0 ? ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0 : ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    const int64_t idx = int64_t(fl) - 1 + k;
    if (p.exclude_outside && (idx < 0 || idx >= len)) w[k] = 0.0;
    sum += w[k];
    c.i[k] = idx < 0 ? 0 : (idx >= len ? len - 1 : idx);
  }
  for (int k = 0; k < 4; ++k) c.w[k] = float(p.exclude_outside && sum != 0.0 ? w[k] / sum : w[k]);
  return c;
}
ALMC_OHD float resize_cubic_vmix(const float* const* xr, const float* w, int64_t i) {
  return ((xr[0][i] * w[0] + xr[1][i] * w[1]) + xr[2][i] * w[2]) + xr[3][i] * w[3];
}
ALMC_OHD float resize_cubic_hmix(const float* v, const float* w) { return ((v[0] * w[0] + v[1] * w[1]) + v[2] * w[2]) + v[3] * w[3]; }
// Row (c, oh) of a cubic Resize, columns ow0 .. ow1-1; vrow (CPU) as for linear.
ALMC_OHD void resize_cubic_range(const ResizeParams& p, int64_t row, int64_t ow0, int64_t ow1, float* vrow) {
  const int64_t c = row / p.OH, oh = row % p.OH;
  const CubicTap th = resize_cubic_tap(p, p.scale_h, oh, p.H, p.OH);
  const float* xr[4];
  for (int j = 0; j < 4; ++j) xr[j] = p.x + (c * p.H + th.i[j]) * p.W;
  float* y = p.y + row * p.OW;
  if (vrow)
    for (int64_t i = 0; i < p.W; ++i) vrow[i] = resize_cubic_vmix(xr, th.w, i);
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    const CubicTap tw = resize_cubic_tap(p, p.scale_w, ow, p.W, p.OW);
    float v[4];
    for (int k = 0; k < 4; ++k) v[k] = vrow ? vrow[tw.i[k]] : resize_cubic_vmix(xr, th.w, tw.i[k]);
    y[ow] = resize_cubic_hmix(v, tw.w);
  }
}

// Row (c, oh) of a linear or nearest Resize, whose row tap is th, columns ow0 .. ow1-1. The CPU
// passes wt, the columns' taps (resize_tap_w, computed once per step, as are the rows' taps), and
// vrow, scratch of W floats where a linear resize mixes the two input rows once for every column;
// CUDA (one element a thread) passes neither.
ALMC_OHD void resize_row(const ResizeParams& p, int64_t c, int64_t oh, const ResizeTap& th, int64_t ow0, int64_t ow1,
                         const ResizeTap* wt, float* vrow) {
  const float* x0 = p.x + (c * p.H + th.i0) * p.W;
  const float* x1 = p.x + (c * p.H + th.i1) * p.W;
  float* y = p.y + (c * p.OH + oh) * p.OW;
  if (!p.linear) {
    for (int64_t ow = ow0; ow < ow1; ++ow) y[ow] = x0[wt ? wt[ow].i0 : resize_tap_w(p, ow).i0];
    return;
  }
  if (vrow) {
    for (int64_t i = 0; i < p.W; ++i) vrow[i] = resize_vmix(x0, x1, i, th.f);
    for (int64_t ow = ow0; ow < ow1; ++ow) {
      const ResizeTap tw = wt ? wt[ow] : resize_tap_w(p, ow);
      y[ow] = resize_hmix(vrow[tw.i0], vrow[tw.i1], tw.f);
    }
    return;
  }
  for (int64_t ow = ow0; ow < ow1; ++ow) {
    const ResizeTap tw = wt ? wt[ow] : resize_tap_w(p, ow);
    y[ow] = resize_hmix(resize_vmix(x0, x1, tw.i0, th.f), resize_vmix(x0, x1, tw.i1, th.f), tw.f);
  }
}

// Row (c, oh) = row of a Resize, columns ow0 .. ow1-1 (resize_row, or the cubic one).
ALMC_OHD void resize_range(const ResizeParams& p, int64_t row, int64_t ow0, int64_t ow1, const ResizeTap* wt = nullptr,
                           float* vrow = nullptr) {
  if (p.cubic) return resize_cubic_range(p, row, ow0, ow1, vrow);
  const int64_t c = row / p.OH, oh = row % p.OH;
  resize_row(p, c, oh, resize_tap_h(p, oh), ow0, ow1, wt, vrow);
}

// ---------------------------------------------------------------- reductions (lane partials)

// Softmax row r of [outer, len, inner] (rows = outer * inner): element k is at base + k * inner.
ALMC_OHD int64_t softmax_base(const SoftmaxParams& p, int64_t r) {
  const int64_t o = r / p.inner, i = r - o * p.inner;
  return o * p.len * p.inner + i;
}
ALMC_OHD float softmax_lane_max(const SoftmaxParams& p, int64_t r, int lane) {
  const float* x = p.x + softmax_base(p, r);
  float m = -INFINITY;
  for (int64_t k = lane; k < p.len; k += kLanes) m = x[k * p.inner] > m ? x[k * p.inner] : m;
  return m;
}
ALMC_OHD float softmax_lane_sum(const SoftmaxParams& p, int64_t r, int lane, float mx) {
  using std::exp;
  const float* x = p.x + softmax_base(p, r);
  float s = 0.f;
  for (int64_t k = lane; k < p.len; k += kLanes) s += exp(x[k * p.inner] - mx);
  return s;
}
// The output of an element x (e = e^(x - mx)) from k = softmax_factor(row's sum of exponentials).
ALMC_OHD float softmax_factor(const SoftmaxParams& p, float sum) {
  using std::log;
  return p.log ? log(sum) : 1.f / sum;
}
ALMC_OHD float softmax_value(const SoftmaxParams& p, float x, float e, float mx, float k) {
  return p.log ? x - mx - k : e * k;
}
// Elements lane, lane + stride, ... of the row, given the row's max and sum of exponentials.
ALMC_OHD void softmax_lane_write(const SoftmaxParams& p, int64_t r, int64_t lane, int64_t stride, float mx, float sum) {
  using std::exp;
  const int64_t base = softmax_base(p, r);
  const float* x = p.x + base;
  float* y = p.y + base;
  const float k = softmax_factor(p, sum);
  for (int64_t i = lane; i < p.len; i += stride) {
    const float xv = x[i * p.inner];
    y[i * p.inner] = softmax_value(p, xv, p.log ? 0.f : exp(xv - mx), mx, k);
  }
}
// The kLanes partial sums of f(0) .. f(len-1) in the lanes' order (lane l: terms l, l + kLanes,
// ... in increasing order), all lanes at once (the CPU, contiguous and vectorisable; CUDA gives
// each lane to a thread): the same sums as softmax_lane_sum / norm_lane_sum / norm_lane_sq.
template <class F>
ALMC_OHD void lane_partials(int64_t len, float* v, F f) {
  for (int l = 0; l < kLanes; ++l) v[l] = 0.f;
  int64_t k = 0;
  for (; k + kLanes <= len; k += kLanes)
    for (int l = 0; l < kLanes; ++l) v[l] = v[l] + f(k + l);
  for (int l = 0; k + l < len; ++l) v[l] = v[l] + f(k + l);
}

// The kLanes maxima of f(0) .. f(len-1), lane l taking terms l, l + kLanes, ... in increasing
// order like softmax_lane_max (the same values, NaN included), all lanes at once.
template <class F>
ALMC_OHD void lane_maxima(int64_t len, float* v, F f) {
  for (int l = 0; l < kLanes; ++l) v[l] = -INFINITY;
  int64_t k = 0;
  for (; k + kLanes <= len; k += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float t = f(k + l);
      v[l] = t > v[l] ? t : v[l];
    }
  for (int l = 0; k + l < len; ++l) {
    const float t = f(k + l);
    v[l] = t > v[l] ? t : v[l];
  }
}

// Normalisation of row r of [rows, len]: the lane sums of x, then of (x - mean)^2.
ALMC_OHD float norm_lane_sum(const NormParams& p, int64_t r, int lane) {
  const float* x = p.x + r * p.len;
  float s = 0.f;
  for (int64_t i = lane; i < p.len; i += kLanes) s += x[i];
  return s;
}
ALMC_OHD float norm_sq_term(float x, float mean) { return (x - mean) * (x - mean); }
ALMC_OHD float norm_lane_sq(const NormParams& p, int64_t r, int lane, float mean) {
  const float* x = p.x + r * p.len;
  float s = 0.f;
  for (int64_t i = lane; i < p.len; i += kLanes) s += norm_sq_term(x[i], mean);
  return s;
}
ALMC_OHD float norm_mean(const NormParams& p, float sum) { return sum / float(p.len); }
ALMC_OHD float norm_rstd(const NormParams& p, float sq_sum) {
  using std::sqrt;
  return 1.f / sqrt(sq_sum / float(p.len) + p.eps);
}
// The channel of element r * len, the first of row r (see NormParams).
ALMC_OHD int64_t norm_channel0(const NormParams& p, int64_t r) {
  const int64_t per_row = p.len / p.seg;  // segments per row
  return ((r % p.nch) * (per_row % p.nch)) % p.nch;
}
// Elements i0, i0 + stride, ... of row r: y = act((x - mean) * a + b), a = scale[c] * rstd,
// b = bias[c]. With stride 1 (the CPU) the row goes by runs of one channel (seg > 1) or of
// consecutive channels (seg 1: LayerNorm's columns), then `apply` runs the activation in place
// over runs of at most kEwRun outputs with ew_apply_n's formulas (the CPU passes a runner with its
// vectorised exp); otherwise (a CUDA lane) element by element. The same values either way.
ALMC_OHD float norm_affine(const NormParams& p, float x, float mean, float rstd, int64_t c) {
  const float a = (p.scale ? p.scale[c] : 1.f) * rstd, b = p.bias ? p.bias[c] : 0.f;
  return (x - mean) * a + b;
}
template <class Apply = EwApplyN>
ALMC_OHD void norm_write(const NormParams& p, int64_t r, int64_t i0, int64_t stride, float mean, float rstd,
                         Apply apply = Apply()) {
  const float* x = p.x + r * p.len;
  float* y = p.y + r * p.len;
  const int64_t c0 = norm_channel0(p, r);
  if (stride == 1) {
    int64_t c = (c0 + i0 / p.seg) % p.nch;
    for (int64_t i = i0; i < p.len;) {
      // Elements i .. e-1: channels c, c + 1, ... (seg 1, up to the last channel) or channel c.
      const int64_t e = p.seg == 1 ? (p.len - i < p.nch - c ? p.len : i + p.nch - c) : (i / p.seg + 1) * p.seg;
      if (p.seg == 1) {
        for (int64_t t = i; t < e; ++t) y[t] = norm_affine(p, x[t], mean, rstd, c + (t - i));
        c += e - i;
      } else {
        const float a = (p.scale ? p.scale[c] : 1.f) * rstd, b = p.bias ? p.bias[c] : 0.f;
        for (int64_t t = i; t < e; ++t) y[t] = (x[t] - mean) * a + b;  // norm_affine with a, b hoisted
        ++c;
      }
      if (c == p.nch) c = 0;
      i = e;
    }
    if (p.act != EW_COPY)
      for (int64_t i = i0; i < p.len; i += kEwRun) {
        const int n = p.len - i < kEwRun ? int(p.len - i) : kEwRun;
        apply(p.act, n, y + i, y + i, y + i, y + i, p.act_alpha, p.act_beta);
      }
    return;
  }
  for (int64_t i = i0; i < p.len; i += stride) {
    float v = norm_affine(p, x[i], mean, rstd, (c0 + i / p.seg) % p.nch);
    if (p.act != EW_COPY) apply(p.act, 1, &v, &v, &v, &v, p.act_alpha, p.act_beta);
    y[i] = v;
  }
}

// ReduceSum / ReduceMean: lane partial of output o.
ALMC_OHD float reduce_lane_sum(const ReduceParams& p, int64_t o, int lane) {
  const float* x = p.x + strided_offset(o, p.ondim, p.oshape, p.ostride);
  float s = 0.f;
  for (int64_t k = lane; k < p.red_total; k += kLanes) s += x[strided_offset(k, p.rndim, p.rshape, p.rstride)];
  return s;
}
// ReduceMax / ReduceMin: lane maximum of extreme * x (a minimum is minus the maximum of -x).
ALMC_OHD float reduce_lane_max(const ReduceParams& p, int64_t o, int lane) {
  const float* x = p.x + strided_offset(o, p.ondim, p.oshape, p.ostride);
  const float sg = float(p.extreme);
  float m = -INFINITY;
  for (int64_t k = lane; k < p.red_total; k += kLanes) {
    const float v = sg * x[strided_offset(k, p.rndim, p.rshape, p.rstride)];
    m = v > m ? v : m;
  }
  return m;
}
// The output from the lanes' combined sum (or maximum, for ReduceMax / ReduceMin).
ALMC_OHD float reduce_finish(const ReduceParams& p, float v) {
  if (p.extreme) return float(p.extreme) * v;
  return p.mean ? v / float(p.red_total) : v;
}

}  // namespace almc::onnx
