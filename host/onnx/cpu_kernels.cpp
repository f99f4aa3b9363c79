// CPU kernels of the ONNX executor: OpenMP loops and OpenBLAS GEMMs over bound plan steps.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "host/onnx/plan.hpp"

namespace almc::onnx {
namespace {

constexpr int64_t kChunk = 256;          // elementwise block (registers live in L1)
constexpr int64_t kParallelMin = 65536;  // below this, loops stay on one thread (a parallel region costs ~10 us, far more on a loaded machine)

// Offset of linear index i in a strided [shape] walk.
inline int64_t strided_offset(int64_t i, int ndim, const int64_t* shape, const int64_t* stride) {
  int64_t off = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    const int64_t q = i / shape[d];
    off += (i - q * shape[d]) * stride[d];
    i = q;
  }
  return off;
}

// C[M,N] = alpha op(A) op(B) + beta C, row-major, split into one single-threaded BLAS call per
// OpenMP thread along the larger of M and N (BLAS threading is switched off during a run, see
// BlasThreadsGuard: one thread pool, no OpenMP spinners competing with BLAS workers).
void par_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
               int64_t ldb, float beta, float* C, int64_t ldc) {
  const int T = omp_get_max_threads();
  const bool big = double(M) * double(N) * double(K) > 4.0e6 && T > 1;
  const bool split_m = M >= N;
  const int64_t len = split_m ? M : N;
  const int parts = big ? int(std::min<int64_t>(T, std::max<int64_t>(1, len / 8))) : 1;
  const auto tA = ta ? CblasTrans : CblasNoTrans, tB = tb ? CblasTrans : CblasNoTrans;
#pragma omp parallel for num_threads(parts) if (parts > 1) schedule(static, 1)
  for (int q = 0; q < parts; ++q) {
    const int64_t b = len * q / parts, e = len * (q + 1) / parts;
    if (e <= b) continue;
    if (split_m) {
      const float* a = ta ? A + b : A + b * lda;
      cblas_sgemm(CblasRowMajor, tA, tB, int(e - b), int(N), int(K), alpha, a, int(lda), B, int(ldb), beta, C + b * ldc, int(ldc));
    } else {
      const float* bb = tb ? B + b * ldb : B + b;
      cblas_sgemm(CblasRowMajor, tA, tB, int(M), int(e - b), int(K), alpha, A, int(lda), bb, int(ldb), beta, C + b, int(ldc));
    }
  }
}

#define ALMC_EW_UNARY(OP, EXPR) \
  case OP:                      \
    for (int64_t t = 0; t < len; ++t) { const float a = A[t]; D[t] = (EXPR); } \
    break;
#define ALMC_EW_BINARY(OP, EXPR) \
  case OP:                       \
    for (int64_t t = 0; t < len; ++t) { const float a = A[t], b = B[t]; D[t] = (EXPR); } \
    break;

void run_ew(const EwParams& p) {
  const int64_t nblocks = (p.total + kChunk - 1) / kChunk;
#pragma omp parallel for if (p.total > kParallelMin) schedule(static)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    alignas(64) float regs[kMaxEwRegs][kChunk];
    const float* r[kMaxEwRegs];
    const int64_t start = blk * kChunk, len = std::min(kChunk, p.total - start);
    for (int k = 0; k < p.n_in; ++k) {
      if (p.contiguous[k]) {
        r[k] = p.in[k] + start;
      } else if (p.scalar[k]) {
        std::fill(regs[k], regs[k] + len, p.in[k][0]);
        r[k] = regs[k];
      } else {
        // Walk the broadcast index like an odometer: one division per block, not per element.
        int64_t idx[kMaxDims];
        int64_t rem = start, off = 0;
        for (int d = p.ndim - 1; d >= 0; --d) {
          idx[d] = rem % p.shape[d];
          rem /= p.shape[d];
          off += idx[d] * p.stride[k][d];
        }
        const int last = p.ndim - 1;
        const int64_t inner = p.shape[last], st = p.stride[k][last];
        for (int64_t t = 0; t < len;) {
          const int64_t run = std::min(len - t, inner - idx[last]);
          const float* src = p.in[k] + off;
          for (int64_t u = 0; u < run; ++u) regs[k][t + u] = src[u * st];
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
        r[k] = regs[k];
      }
    }
    for (int q = 0; q < p.n_instr; ++q) {
      const EwInstr& in = p.instr[q];
      const float* A = r[in.a];
      const float* B = r[in.b];
      const float* Cc = r[in.c];
      float* D = (q == p.n_instr - 1 && in.dst == p.out_reg) ? p.out + start : regs[in.dst];
      const float alpha = in.alpha, beta = in.beta;
      switch (in.op) {
        ALMC_EW_UNARY(EW_COPY, a)
        ALMC_EW_UNARY(EW_NEG, -a)
        ALMC_EW_UNARY(EW_SQRT, std::sqrt(a))
        ALMC_EW_UNARY(EW_RECIP, 1.f / a)
        ALMC_EW_UNARY(EW_EXP, std::exp(a))
        ALMC_EW_UNARY(EW_SIGMOID, 1.f / (1.f + std::exp(-a)))
        ALMC_EW_UNARY(EW_SILU, a / (1.f + std::exp(-a)))
        ALMC_EW_UNARY(EW_RELU, a > 0.f ? a : 0.f)
        ALMC_EW_UNARY(EW_AFFINE, alpha * a + beta)
        ALMC_EW_BINARY(EW_ADD, a + b)
        ALMC_EW_BINARY(EW_SUB, a - b)
        ALMC_EW_BINARY(EW_MUL, a * b)
        ALMC_EW_BINARY(EW_DIV, a / b)
        case EW_WHERE:
          for (int64_t t = 0; t < len; ++t) D[t] = Cc[t] != 0.f ? A[t] : B[t];
          break;
        default:
          for (int64_t t = 0; t < len; ++t) D[t] = ew_apply<float>(in.op, A[t], B[t], 0.f, alpha, beta);
          break;
      }
      r[in.dst] = D;
    }
    if (r[p.out_reg] != p.out + start) std::memcpy(p.out + start, r[p.out_reg], size_t(len) * sizeof(float));
  }
}

void run_gemm(const GemmParams& p) {
  for (int64_t b = 0; b < p.batch; ++b) {
    int64_t oa = 0, ob = 0, oc = 0, rem = b;
    for (int d = p.batch_ndim - 1; d >= 0; --d) {
      const int64_t i = rem % p.batch_shape[d];
      rem /= p.batch_shape[d];
      oa += i * p.batch_stride_a[d];
      ob += i * p.batch_stride_b[d];
      oc += i * p.batch_stride_c[d];
    }
    float* C = p.C + oc;
    float beta = 0.f;
    if (p.bias_kind != BIAS_NONE) {
      beta = 1.f;
#pragma omp parallel for if (p.M * p.N > kParallelMin)
      for (int64_t m = 0; m < p.M; ++m)
        for (int64_t n = 0; n < p.N; ++n) {
          const float v = p.bias_kind == BIAS_ROW ? p.bias[n] : p.bias_kind == BIAS_COL ? p.bias[m] : p.bias[m * p.bias_ld + n];
          C[m * p.ldc + n] = p.beta * v;
        }
    }
    par_sgemm(p.trans_a, p.trans_b, p.M, p.N, p.K, p.alpha, p.A + oa, p.lda, p.B + ob, p.ldb, beta, C, p.ldc);
    if (p.act != EW_COPY) {
#pragma omp parallel for if (p.M * p.N > kParallelMin)
      for (int64_t m = 0; m < p.M; ++m)
        for (int64_t n = 0; n < p.N; ++n) C[m * p.ldc + n] = ew_apply<float>(p.act, C[m * p.ldc + n], 0.f, 0.f, p.act_alpha, 0.f);
    }
  }
}

void run_conv(const ConvParams& p) {
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, OHW = p.OH * p.OW;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = std::min(p.chunk, p.N - n0), cols = B * OHW;
    float* col = p.col;                   // [Cg*KK, B*OHW]
    float* tmp = p.col + Cg * KK * cols;  // [Mg, B*OHW]
    for (int64_t g = 0; g < G; ++g) {
#pragma omp parallel for collapse(2) if (Cg * KK * cols > kParallelMin)
      for (int64_t ck = 0; ck < Cg * KK; ++ck)
        for (int64_t b = 0; b < B; ++b) {
          const int64_t c = ck / KK, kh = (ck % KK) / p.KW, kw = ck % p.KW;
          const float* x = p.x + ((n0 + b) * p.C + g * Cg + c) * p.H * p.W;
          float* dst = col + ck * cols + b * OHW;
          for (int64_t oh = 0; oh < p.OH; ++oh) {
            const int64_t ih = oh * p.sh - p.ph + kh * p.dh;
            for (int64_t ow = 0; ow < p.OW; ++ow) {
              const int64_t iw = ow * p.sw - p.pw + kw * p.dw;
              dst[oh * p.OW + ow] = (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W) ? x[ih * p.W + iw] : 0.f;
            }
          }
        }
      par_sgemm(false, false, Mg, cols, Cg * KK, 1.f, p.w + g * Mg * Cg * KK, Cg * KK, col, cols, 0.f, tmp, cols);
#pragma omp parallel for collapse(2) if (Mg * cols > kParallelMin)
      for (int64_t m = 0; m < Mg; ++m)
        for (int64_t b = 0; b < B; ++b) {
          const float bias = p.bias ? p.bias[g * Mg + m] : 0.f;
          const float* src = tmp + m * cols + b * OHW;
          float* y = p.y + ((n0 + b) * p.M + g * Mg + m) * OHW;
          for (int64_t i = 0; i < OHW; ++i) y[i] = ew_apply<float>(p.act, src[i] + bias, 0.f, 0.f, p.act_alpha, 0.f);
        }
    }
  }
}

void run_conv_transpose(const ConvParams& p) {
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, HW = p.H * p.W, OHW = p.OH * p.OW;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = std::min(p.chunk, p.N - n0), cols = B * HW;
    float* xt = p.col;              // [Cg, B*HW]
    float* col = p.col + Cg * cols; // [Mg*KK, B*HW]
    for (int64_t g = 0; g < G; ++g) {
#pragma omp parallel for collapse(2) if (Cg * cols > kParallelMin)
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t b = 0; b < B; ++b)
          std::memcpy(xt + c * cols + b * HW, p.x + ((n0 + b) * p.C + g * Cg + c) * HW, size_t(HW) * sizeof(float));
      // weight [C, Mg, KH, KW]: the group's block is [Cg, Mg*KK]; col = block^T xt.
      par_sgemm(true, false, Mg * KK, cols, Cg, 1.f, p.w + g * Cg * Mg * KK, Mg * KK, xt, cols, 0.f, col, cols);
#pragma omp parallel for collapse(2) if (Mg * B * OHW > kParallelMin)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t m = 0; m < Mg; ++m) {
          float* y = p.y + ((n0 + b) * p.M + g * Mg + m) * OHW;
          const float bias = p.bias ? p.bias[g * Mg + m] : 0.f;
          for (int64_t i = 0; i < OHW; ++i) y[i] = bias;
          for (int64_t kh = 0; kh < p.KH; ++kh)
            for (int64_t kw = 0; kw < p.KW; ++kw) {
              const float* src = col + ((m * p.KH + kh) * p.KW + kw) * cols + b * HW;
              for (int64_t ih = 0; ih < p.H; ++ih) {
                const int64_t oh = ih * p.sh - p.ph + kh * p.dh;
                if (oh < 0 || oh >= p.OH) continue;
                for (int64_t iw = 0; iw < p.W; ++iw) {
                  const int64_t ow = iw * p.sw - p.pw + kw * p.dw;
                  if (ow >= 0 && ow < p.OW) y[oh * p.OW + ow] += src[ih * p.W + iw];
                }
              }
            }
          if (p.act != EW_COPY)
            for (int64_t i = 0; i < OHW; ++i) y[i] = ew_apply<float>(p.act, y[i], 0.f, 0.f, p.act_alpha, 0.f);
        }
    }
  }
}

void run_softmax(const SoftmaxParams& p) {
#pragma omp parallel for collapse(2) if (p.outer * p.inner * p.len > kParallelMin)
  for (int64_t o = 0; o < p.outer; ++o)
    for (int64_t i = 0; i < p.inner; ++i) {
      const float* x = p.x + o * p.len * p.inner + i;
      float* y = p.y + o * p.len * p.inner + i;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t k = 0; k < p.len; ++k) mx = std::max(mx, x[k * p.inner]);
      double sum = 0;
      for (int64_t k = 0; k < p.len; ++k) sum += std::exp(double(x[k * p.inner] - mx));
      if (p.log) {
        const float ls = float(std::log(sum));
        for (int64_t k = 0; k < p.len; ++k) y[k * p.inner] = x[k * p.inner] - mx - ls;
      } else {
        const float inv = float(1.0 / sum);
        for (int64_t k = 0; k < p.len; ++k) y[k * p.inner] = std::exp(x[k * p.inner] - mx) * inv;
      }
    }
}

void run_norm(const NormParams& p) {
#pragma omp parallel for if (p.rows * p.len > kParallelMin)
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* x = p.x + r * p.len;
    float* y = p.y + r * p.len;
    double s = 0;
    for (int64_t i = 0; i < p.len; ++i) s += x[i];
    const double mean = s / double(p.len);
    double v = 0;
    for (int64_t i = 0; i < p.len; ++i) v += (x[i] - mean) * (x[i] - mean);
    const float rstd = float(1.0 / std::sqrt(v / double(p.len) + double(p.eps)));
    const float m = float(mean);
    if (p.affine == AFFINE_COLUMN) {
      for (int64_t i = 0; i < p.len; ++i) y[i] = (x[i] - m) * rstd * p.scale[i] + (p.bias ? p.bias[i] : 0.f);
    } else {
      const int64_t c = r % p.channels;
      const float a = p.scale ? p.scale[c] * rstd : rstd, b = p.bias ? p.bias[c] : 0.f;
      for (int64_t i = 0; i < p.len; ++i) y[i] = (x[i] - m) * a + b;
    }
    if (p.act != EW_COPY)
      for (int64_t i = 0; i < p.len; ++i) y[i] = ew_apply<float>(p.act, y[i], 0.f, 0.f, 0.f, 0.f);
  }
}

void run_reduce(const ReduceParams& p) {
#pragma omp parallel for if (p.out_total * p.red_total > kParallelMin)
  for (int64_t o = 0; o < p.out_total; ++o) {
    const float* x = p.x + strided_offset(o, p.ondim, p.oshape, p.ostride);
    double s = 0;
    for (int64_t k = 0; k < p.red_total; ++k) s += x[strided_offset(k, p.rndim, p.rshape, p.rstride)];
    p.y[o] = float(p.mean ? s / double(p.red_total) : s);
  }
}

void run_pool(const PoolParams& p) {
#pragma omp parallel for collapse(2) if (p.NC * p.OH * p.OW > kParallelMin)
  for (int64_t c = 0; c < p.NC; ++c)
    for (int64_t oh = 0; oh < p.OH; ++oh) {
      const float* x = p.x + c * p.H * p.W;
      for (int64_t ow = 0; ow < p.OW; ++ow) {
        float acc = p.max ? -std::numeric_limits<float>::infinity() : 0.f;
        int64_t cnt = 0, cnt_pad = 0;
        for (int64_t kh = 0; kh < p.KH; ++kh) {
          const int64_t ih = oh * p.sh - p.ph + kh * p.dh;
          for (int64_t kw = 0; kw < p.KW; ++kw) {
            const int64_t iw = ow * p.sw - p.pw + kw * p.dw;
            // count_include_pad counts the window inside the padded input, not past its end.
            if (ih < p.H + p.ph && iw < p.W + p.pw) ++cnt_pad;
            if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
            const float v = x[ih * p.W + iw];
            acc = p.max ? std::max(acc, v) : acc + v;
            ++cnt;
          }
        }
        if (!p.max) acc /= float(std::max<int64_t>(1, p.count_include_pad ? cnt_pad : cnt));
        p.y[(c * p.OH + oh) * p.OW + ow] = acc;
      }
    }
}

inline int64_t nearest_index(double src, int mode, int64_t len) {
  double r;
  switch (mode) {
    case NEAREST_FLOOR: r = std::floor(src); break;
    case NEAREST_CEIL: r = std::ceil(src); break;
    case NEAREST_ROUND_PREFER_CEIL: r = std::floor(src + 0.5); break;
    default: r = (src - std::floor(src) == 0.5) ? std::floor(src) : std::round(src); break;
  }
  return std::clamp<int64_t>(int64_t(r), 0, len - 1);
}

void run_resize(const ResizeParams& p) {
#pragma omp parallel for collapse(2) if (p.NC * p.OH * p.OW > kParallelMin)
  for (int64_t c = 0; c < p.NC; ++c)
    for (int64_t oh = 0; oh < p.OH; ++oh) {
      const float* x = p.x + c * p.H * p.W;
      float* y = p.y + (c * p.OH + oh) * p.OW;
      const double sh = p.ah * double(oh) + p.bh;
      if (!p.linear) {
        const int64_t ih = nearest_index(sh, p.nearest_mode, p.H);
        for (int64_t ow = 0; ow < p.OW; ++ow) y[ow] = x[ih * p.W + nearest_index(p.aw * double(ow) + p.bw, p.nearest_mode, p.W)];
      } else {
        const double ch = std::clamp(sh, 0.0, double(p.H - 1));
        const int64_t h0 = int64_t(ch), h1 = std::min(h0 + 1, p.H - 1);
        const float fh = float(ch - double(h0));
        for (int64_t ow = 0; ow < p.OW; ++ow) {
          const double cw = std::clamp(p.aw * double(ow) + p.bw, 0.0, double(p.W - 1));
          const int64_t w0 = int64_t(cw), w1 = std::min(w0 + 1, p.W - 1);
          const float fw = float(cw - double(w0));
          const float top = x[h0 * p.W + w0] * (1.f - fw) + x[h0 * p.W + w1] * fw;
          const float bot = x[h1 * p.W + w0] * (1.f - fw) + x[h1 * p.W + w1] * fw;
          y[ow] = top * (1.f - fh) + bot * fh;
        }
      }
    }
}

void run_pad(const PadParams& p) {
  int64_t istride[kMaxDims];
  int64_t s = 1;
  for (int d = p.ndim - 1; d >= 0; --d) {
    istride[d] = s;
    s *= p.ishape[d];
  }
#pragma omp parallel for if (p.total > kParallelMin)
  for (int64_t o = 0; o < p.total; ++o) {
    int64_t rem = o, off = 0;
    bool inside = true;
    for (int d = p.ndim - 1; d >= 0; --d) {
      int64_t i = rem % p.oshape[d] - p.begin[d];
      rem /= p.oshape[d];
      const int64_t n = p.ishape[d];
      if (i < 0 || i >= n) {
        if (p.mode == 0) {
          inside = false;
          break;
        }
        if (p.mode == 2) i = i < 0 ? 0 : n - 1;
        else {
          const int64_t period = 2 * (n - 1);
          i = period > 0 ? ((i % period) + period) % period : 0;
          if (i >= n) i = period - i;
        }
      }
      off += i * istride[d];
    }
    p.y[o] = inside ? p.x[off] : p.value;
  }
}

}  // namespace

template <class T>
void cpu_copy(const CopyParams& p, const T* in, T* out) {
  if (p.total <= 0) return;
  // Walk the innermost dimension in a tight loop.
  const int nd = p.ndim;
  const int64_t inner = nd ? p.shape[nd - 1] : 1;
  const int64_t is = nd ? p.in_stride[nd - 1] : 0, os = nd ? p.out_stride[nd - 1] : 0;
  const int64_t rows = p.total / inner;
#pragma omp parallel for if (p.total > kParallelMin && sizeof(T) == 4)
  for (int64_t r = 0; r < rows; ++r) {
    const T* src = in + (nd > 1 ? strided_offset(r, nd - 1, p.shape, p.in_stride) : 0);
    T* dst = out + (nd > 1 ? strided_offset(r, nd - 1, p.shape, p.out_stride) : 0);
    if (is == 1 && os == 1) std::memcpy(dst, src, size_t(inner) * sizeof(T));
    else
      for (int64_t i = 0; i < inner; ++i) dst[i * os] = src[i * is];
  }
}

template <class T>
void cpu_gather(const GatherParams& p, const T* data, const T* idx, T* out) {
  for (int64_t o = 0; o < p.outer; ++o)
    for (int64_t j = 0; j < p.n_idx; ++j) {
      int64_t k = int64_t(idx[j]);
      if (k < 0) k += p.axis_len;
      k = std::clamp<int64_t>(k, 0, p.axis_len - 1);
      std::memcpy(out + (o * p.n_idx + j) * p.inner, data + (o * p.axis_len + k) * p.inner, size_t(p.inner) * sizeof(T));
    }
}

template void cpu_copy<float>(const CopyParams&, const float*, float*);
template void cpu_copy<double>(const CopyParams&, const double*, double*);
template void cpu_gather<float>(const GatherParams&, const float*, const float*, float*);
template void cpu_gather<double>(const GatherParams&, const double*, const double*, double*);

BlasThreadsGuard::BlasThreadsGuard() : saved_(openblas_get_num_threads()) {
  if (saved_ != 1) openblas_set_num_threads(1);
}
BlasThreadsGuard::~BlasThreadsGuard() {
  if (saved_ != 1) openblas_set_num_threads(saved_);
}

void cpu_run_step(const Step& s) {
  switch (s.kind) {
    case StepKind::Ew: return run_ew(s.ew);
    case StepKind::Gemm: return run_gemm(s.gemm);
    case StepKind::Conv: return run_conv(s.conv);
    case StepKind::ConvT: return run_conv_transpose(s.conv);
    case StepKind::Copy: return cpu_copy<float>(s.copy, s.copy.in, s.copy.out);
    case StepKind::Gather: return cpu_gather<float>(s.gather, s.gather.data, s.gather.idx, s.gather.out);
    case StepKind::Softmax: return run_softmax(s.softmax);
    case StepKind::Norm: return run_norm(s.norm);
    case StepKind::Reduce: return run_reduce(s.reduce);
    case StepKind::Pool: return run_pool(s.pool);
    case StepKind::Resize: return run_resize(s.resize);
    case StepKind::Pad: return run_pad(s.pad);
    case StepKind::Fill: std::fill(s.fill_ptr, s.fill_ptr + s.fill_count, s.fill_value); return;
  }
}

}  // namespace almc::onnx
