// CUDA kernels of the ONNX executor; they mirror host/onnx/cpu_kernels.cpp one for one.
// GEMMs (and convolutions as im2col + GEMM) go through cuBLAS; everything is enqueued on the
// caller's stream and nothing allocates, so a run can be captured into a CUDA graph.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "cuda/onnx/kernels.hpp"

namespace almc::onnx::cuda {
namespace {

constexpr int kBlock = 256;
constexpr size_t kBlasWorkspace = size_t(32) << 20;

struct Blas {
  cublasHandle_t h = nullptr;
  void* ws = nullptr;
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(ALMC_ERR_CUDA, std::string(what) + ": " + cudaGetErrorString(e));
}
void check_blas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(ALMC_ERR_CUDA, std::string(what) + ": cuBLAS status " + std::to_string(int(s)));
}
void check_launch(const char* what) { check(cudaGetLastError(), what); }

inline int grid_for(int64_t n) {
  int64_t g = (n + kBlock - 1) / kBlock;
  return int(g < 1 ? 1 : (g > 65535 * 8 ? 65535 * 8 : g));
}

__device__ __forceinline__ int64_t strided_offset(int64_t i, int ndim, const int64_t* shape, const int64_t* stride) {
  int64_t off = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    const int64_t q = i / shape[d];
    off += (i - q * shape[d]) * stride[d];
    i = q;
  }
  return off;
}

__global__ void ew_kernel(const EwParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.total; i += int64_t(gridDim.x) * blockDim.x) {
    float r[kMaxEwRegs];
#pragma unroll 1
    for (int k = 0; k < p.n_in; ++k) {
      const int64_t o = p.contiguous[k] ? i : p.scalar[k] ? 0 : strided_offset(i, p.ndim, p.shape, p.stride[k]);
      r[k] = p.in[k][o];
    }
#pragma unroll 1
    for (int q = 0; q < p.n_instr; ++q) {
      const EwInstr in = p.instr[q];
      r[in.dst] = ew_apply<float>(in.op, r[in.a], r[in.b], r[in.c], in.alpha, in.beta);
    }
    p.out[i] = r[p.out_reg];
  }
}

__global__ void copy_kernel(const CopyParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.total; i += int64_t(gridDim.x) * blockDim.x)
    p.out[strided_offset(i, p.ndim, p.shape, p.out_stride)] = p.in[strided_offset(i, p.ndim, p.shape, p.in_stride)];
}

__global__ void gather_kernel(const GatherParams p) {
  const int64_t total = p.outer * p.n_idx * p.inner;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t in = i % p.inner, j = (i / p.inner) % p.n_idx, o = i / (p.inner * p.n_idx);
    int64_t k = int64_t(p.idx[j]);
    if (k < 0) k += p.axis_len;
    k = k < 0 ? 0 : (k >= p.axis_len ? p.axis_len - 1 : k);
    p.out[i] = p.data[(o * p.axis_len + k) * p.inner + in];
  }
}

// bias fill before a GEMM that accumulates (beta = 1)
__global__ void bias_fill_kernel(float* C, int64_t M, int64_t N, int64_t ldc, const float* bias, int kind, int64_t bias_ld,
                                 float beta) {
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = i / N, n = i % N;
    const float v = kind == BIAS_ROW ? bias[n] : kind == BIAS_COL ? bias[m] : bias[m * bias_ld + n];
    C[m * ldc + n] = beta * v;
  }
}

__global__ void act_kernel(float* y, int64_t M, int64_t N, int64_t ld, int act, float alpha) {
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    float* v = y + (i / N) * ld + i % N;
    *v = ew_apply<float>(act, *v, 0.f, 0.f, alpha, 0.f);
  }
}

// col[ck, b*OHW + ohw] for images n0..n0+B of group g
__global__ void im2col_kernel(const ConvParams p, int64_t n0, int64_t B, int64_t g) {
  const int64_t Cg = p.C / p.group, KK = p.KH * p.KW, OHW = p.OH * p.OW, cols = B * OHW, total = Cg * KK * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ck = i / cols, col = i % cols, b = col / OHW, ohw = col % OHW;
    const int64_t c = ck / KK, kh = (ck % KK) / p.KW, kw = ck % p.KW, oh = ohw / p.OW, ow = ohw % p.OW;
    const int64_t ih = oh * p.sh - p.ph + kh * p.dh, iw = ow * p.sw - p.pw + kw * p.dw;
    const float* x = p.x + ((n0 + b) * p.C + g * Cg + c) * p.H * p.W;
    p.col[i] = (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W) ? x[ih * p.W + iw] : 0.f;
  }
}

// y[n0+b, g*Mg+m, ohw] = act(tmp[m, b*OHW+ohw] + bias)
__global__ void conv_scatter_kernel(const ConvParams p, const float* tmp, int64_t n0, int64_t B, int64_t g) {
  const int64_t Mg = p.M / p.group, OHW = p.OH * p.OW, cols = B * OHW, total = Mg * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = i / cols, col = i % cols, b = col / OHW, ohw = col % OHW;
    const float bias = p.bias ? p.bias[g * Mg + m] : 0.f;
    p.y[((n0 + b) * p.M + g * Mg + m) * OHW + ohw] = ew_apply<float>(p.act, tmp[i] + bias, 0.f, 0.f, p.act_alpha, 0.f);
  }
}

// xt[c, b*HW + hw] = x[n0+b, g*Cg+c, hw]
__global__ void regroup_kernel(const ConvParams p, float* xt, int64_t n0, int64_t B, int64_t g) {
  const int64_t Cg = p.C / p.group, HW = p.H * p.W, cols = B * HW, total = Cg * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / cols, col = i % cols, b = col / HW, hw = col % HW;
    xt[i] = p.x[((n0 + b) * p.C + g * Cg + c) * HW + hw];
  }
}

// ConvTranspose output by gathering the columns that land on it (no atomics).
__global__ void col2im_kernel(const ConvParams p, const float* col, int64_t n0, int64_t B, int64_t g) {
  const int64_t Mg = p.M / p.group, HW = p.H * p.W, cols = B * HW, OHW = p.OH * p.OW, total = B * Mg * OHW;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / (Mg * OHW), m = (i / OHW) % Mg, oh = (i % OHW) / p.OW, ow = i % p.OW;
    float acc = p.bias ? p.bias[g * Mg + m] : 0.f;
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
    p.y[((n0 + b) * p.M + g * Mg + m) * OHW + oh * p.OW + ow] = ew_apply<float>(p.act, acc, 0.f, 0.f, p.act_alpha, 0.f);
  }
}

// One warp per (outer, inner) row.
__global__ void softmax_kernel(const SoftmaxParams p) {
  const int64_t rows = p.outer * p.inner;
  const int lane = threadIdx.x & 31;
  for (int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; row < rows;
       row += (int64_t(gridDim.x) * blockDim.x) >> 5) {
    const int64_t o = row / p.inner, in = row % p.inner;
    const float* x = p.x + o * p.len * p.inner + in;
    float* y = p.y + o * p.len * p.inner + in;
    float mx = -INFINITY;
    for (int64_t k = lane; k < p.len; k += 32) mx = fmaxf(mx, x[k * p.inner]);
    for (int s = 16; s > 0; s >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, s));
    float sum = 0.f;
    for (int64_t k = lane; k < p.len; k += 32) sum += expf(x[k * p.inner] - mx);
    for (int s = 16; s > 0; s >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, s);
    if (p.log) {
      const float ls = logf(sum);
      for (int64_t k = lane; k < p.len; k += 32) y[k * p.inner] = x[k * p.inner] - mx - ls;
    } else {
      const float inv = 1.f / sum;
      for (int64_t k = lane; k < p.len; k += 32) y[k * p.inner] = expf(x[k * p.inner] - mx) * inv;
    }
  }
}

__device__ float block_sum(float v, float* sh) {
  for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float r = 0.f;
  for (int w = 0; w < int(blockDim.x >> 5); ++w) r += sh[w];
  return r;
}

// One block per row: mean, then the variance about it (two passes, as on the CPU).
__global__ void norm_kernel(const NormParams p) {
  __shared__ float sh[32];
  for (int64_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const float* x = p.x + r * p.len;
    float* y = p.y + r * p.len;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < p.len; i += blockDim.x) s += x[i];
    const float mean = block_sum(s, sh) / float(p.len);
    float v = 0.f;
    for (int64_t i = threadIdx.x; i < p.len; i += blockDim.x) v += (x[i] - mean) * (x[i] - mean);
    const float rstd = rsqrtf(block_sum(v, sh) / float(p.len) + p.eps);
    if (p.affine == AFFINE_COLUMN) {
      for (int64_t i = threadIdx.x; i < p.len; i += blockDim.x)
        y[i] = ew_apply<float>(p.act, (x[i] - mean) * rstd * p.scale[i] + (p.bias ? p.bias[i] : 0.f), 0.f, 0.f, 0.f, 0.f);
    } else {
      const int64_t c = r % p.channels;
      const float a = p.scale ? p.scale[c] * rstd : rstd, b = p.bias ? p.bias[c] : 0.f;
      for (int64_t i = threadIdx.x; i < p.len; i += blockDim.x)
        y[i] = ew_apply<float>(p.act, (x[i] - mean) * a + b, 0.f, 0.f, 0.f, 0.f);
    }
  }
}

__global__ void reduce_kernel(const ReduceParams p) {
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < p.out_total; o += int64_t(gridDim.x) * blockDim.x) {
    const float* x = p.x + strided_offset(o, p.ondim, p.oshape, p.ostride);
    float s = 0.f;
    for (int64_t k = 0; k < p.red_total; ++k) s += x[strided_offset(k, p.rndim, p.rshape, p.rstride)];
    p.y[o] = p.mean ? s / float(p.red_total) : s;
  }
}

__global__ void pool_kernel(const PoolParams p) {
  const int64_t total = p.NC * p.OH * p.OW;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / (p.OH * p.OW), oh = (i / p.OW) % p.OH, ow = i % p.OW;
    const float* x = p.x + c * p.H * p.W;
    float acc = p.max ? -INFINITY : 0.f;
    int64_t cnt = 0, cnt_pad = 0;
    for (int64_t kh = 0; kh < p.KH; ++kh) {
      const int64_t ih = oh * p.sh - p.ph + kh * p.dh;
      for (int64_t kw = 0; kw < p.KW; ++kw) {
        const int64_t iw = ow * p.sw - p.pw + kw * p.dw;
        if (ih < p.H + p.ph && iw < p.W + p.pw) ++cnt_pad;
        if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
        const float v = x[ih * p.W + iw];
        acc = p.max ? fmaxf(acc, v) : acc + v;
        ++cnt;
      }
    }
    if (!p.max) {
      const int64_t d = p.count_include_pad ? cnt_pad : cnt;
      acc /= float(d > 0 ? d : 1);
    }
    p.y[i] = acc;
  }
}

__device__ int64_t nearest_index(double src, int mode, int64_t len) {
  double r;
  switch (mode) {
    case NEAREST_FLOOR: r = floor(src); break;
    case NEAREST_CEIL: r = ceil(src); break;
    case NEAREST_ROUND_PREFER_CEIL: r = floor(src + 0.5); break;
    default: r = (src - floor(src) == 0.5) ? floor(src) : round(src); break;
  }
  int64_t k = int64_t(r);
  return k < 0 ? 0 : (k >= len ? len - 1 : k);
}

__global__ void resize_kernel(const ResizeParams p) {
  const int64_t total = p.NC * p.OH * p.OW;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / (p.OH * p.OW), oh = (i / p.OW) % p.OH, ow = i % p.OW;
    const float* x = p.x + c * p.H * p.W;
    const double sh = p.ah * double(oh) + p.bh, sw = p.aw * double(ow) + p.bw;
    if (!p.linear) {
      p.y[i] = x[nearest_index(sh, p.nearest_mode, p.H) * p.W + nearest_index(sw, p.nearest_mode, p.W)];
    } else {
      const double ch = fmin(fmax(sh, 0.0), double(p.H - 1)), cw = fmin(fmax(sw, 0.0), double(p.W - 1));
      const int64_t h0 = int64_t(ch), w0 = int64_t(cw);
      const int64_t h1 = h0 + 1 < p.H ? h0 + 1 : p.H - 1, w1 = w0 + 1 < p.W ? w0 + 1 : p.W - 1;
      const float fh = float(ch - double(h0)), fw = float(cw - double(w0));
      const float top = x[h0 * p.W + w0] * (1.f - fw) + x[h0 * p.W + w1] * fw;
      const float bot = x[h1 * p.W + w0] * (1.f - fw) + x[h1 * p.W + w1] * fw;
      p.y[i] = top * (1.f - fh) + bot * fh;
    }
  }
}

__global__ void pad_kernel(const PadParams p) {
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < p.total; o += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = o, off = 0, istride = 1;
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
        if (p.mode == 2) {
          i = i < 0 ? 0 : n - 1;
        } else {
          const int64_t period = 2 * (n - 1);
          i = period > 0 ? ((i % period) + period) % period : 0;
          if (i >= n) i = period - i;
        }
      }
      off += i * istride;
      istride *= n;
    }
    p.y[o] = inside ? p.x[off] : p.value;
  }
}

__global__ void fill_kernel(float* p, int64_t n, float v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) p[i] = v;
}

// The level's coefficients are recomputed by every thread from level_dev: no host value is baked
// into a captured graph.
__global__ void adapter_in_kernel(const AdapterParams a, const float* x, float* x_net, int64_t count, float* level,
                                  int64_t level_count, const almc_level_device* ld) {
  const float t = ld ? ld->t : 0.f;
  const AdapterCoef k = a.raw ? AdapterCoef{1.f, 1.f, 0.f} : adapter_coef(a.output, a.convention, t);
  const int64_t total = count > level_count ? count : level_count;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    if (i < count) x_net[i] = k.cx * x[i];
    if (level && i < level_count) {
      if (a.raw_levels) level[i] = a.raw_levels[i];
      else level[i] = ld ? adapter_level_value(a, ld->t, ld->sigma, ld->log_sigma, ld->alpha_bar)
                         : adapter_level_value(a, 0.f, 0.f, 0.f, 0.f);
    }
  }
}

__global__ void adapter_out_kernel(const AdapterParams a, const float* net, const float* x, float* out, int64_t count,
                                   const almc_level_device* ld) {
  const float t = ld ? ld->t : 0.f;
  const AdapterCoef k = a.raw ? AdapterCoef{1.f, 1.f, 0.f} : adapter_coef(a.output, a.convention, t);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = k.c1 * net[i] + k.c2 * x[i];
}

// Row-major C[M,N] = alpha op(A) op(B) (+ beta C) through column-major cuBLAS: C^T = op(B)^T op(A)^T.
void sgemm_rm(cublasHandle_t h, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_blas(cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K), &alpha, B,
                         int(ldb), A, int(lda), &beta, C, int(ldc)),
             "cublasSgemm");
}

void run_gemm(const GemmParams& p, cublasHandle_t h, cudaStream_t st) {
  float beta = 0.f;
  if (p.bias_kind != BIAS_NONE) beta = 1.f;
  for (int64_t b = 0; b < p.batch; ++b) {
    int64_t oa = 0, ob = 0, oc = 0, rem = b;
    for (int d = p.batch_ndim - 1; d >= 0; --d) {
      const int64_t i = rem % p.batch_shape[d];
      rem /= p.batch_shape[d];
      oa += i * p.batch_stride_a[d];
      ob += i * p.batch_stride_b[d];
      oc += i * p.batch_stride_c[d];
    }
    if (p.batch_ndim == 1 && p.bias_kind == BIAS_NONE) {
      // One strided-batched call covers the whole batch.
      const float one = p.alpha, zero = 0.f;
      check_blas(cublasSgemmStridedBatched(h, p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           int(p.N), int(p.M), int(p.K), &one, p.B, int(p.ldb), p.batch_stride_b[0], p.A,
                                           int(p.lda), p.batch_stride_a[0], &zero, p.C, int(p.ldc), p.batch_stride_c[0],
                                           int(p.batch)),
                 "cublasSgemmStridedBatched");
      break;
    }
    if (p.bias_kind != BIAS_NONE) {
      bias_fill_kernel<<<grid_for(p.M * p.N), kBlock, 0, st>>>(p.C + oc, p.M, p.N, p.ldc, p.bias, p.bias_kind, p.bias_ld, p.beta);
      check_launch("bias fill");
    }
    sgemm_rm(h, p.trans_a, p.trans_b, p.M, p.N, p.K, p.alpha, p.A + oa, p.lda, p.B + ob, p.ldb, beta, p.C + oc, p.ldc);
  }
  if (p.act != EW_COPY) {
    act_kernel<<<grid_for(p.batch * p.M * p.N), kBlock, 0, st>>>(p.C, p.batch * p.M, p.N, p.ldc, p.act, p.act_alpha);
    check_launch("activation");
  }
}

void run_conv(const ConvParams& p, cublasHandle_t h, cudaStream_t st) {
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, OHW = p.OH * p.OW;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = p.chunk < p.N - n0 ? p.chunk : p.N - n0, cols = B * OHW;
    float* tmp = p.col + Cg * KK * cols;
    for (int64_t g = 0; g < G; ++g) {
      im2col_kernel<<<grid_for(Cg * KK * cols), kBlock, 0, st>>>(p, n0, B, g);
      check_launch("im2col");
      sgemm_rm(h, false, false, Mg, cols, Cg * KK, 1.f, p.w + g * Mg * Cg * KK, Cg * KK, p.col, cols, 0.f, tmp, cols);
      conv_scatter_kernel<<<grid_for(Mg * cols), kBlock, 0, st>>>(p, tmp, n0, B, g);
      check_launch("conv scatter");
    }
  }
}

void run_conv_transpose(const ConvParams& p, cublasHandle_t h, cudaStream_t st) {
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, HW = p.H * p.W, OHW = p.OH * p.OW;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = p.chunk < p.N - n0 ? p.chunk : p.N - n0, cols = B * HW;
    float* xt = p.col;
    float* col = p.col + Cg * cols;
    for (int64_t g = 0; g < G; ++g) {
      regroup_kernel<<<grid_for(Cg * cols), kBlock, 0, st>>>(p, xt, n0, B, g);
      check_launch("regroup");
      sgemm_rm(h, true, false, Mg * KK, cols, Cg, 1.f, p.w + g * Cg * Mg * KK, Mg * KK, xt, cols, 0.f, col, cols);
      col2im_kernel<<<grid_for(B * Mg * OHW), kBlock, 0, st>>>(p, col, n0, B, g);
      check_launch("col2im");
    }
  }
}

}  // namespace

void* blas_create() {
  auto* b = new Blas;
  if (cublasCreate(&b->h) != CUBLAS_STATUS_SUCCESS) {
    delete b;
    throw Error(ALMC_ERR_CUDA, "cublasCreate failed");
  }
  // A workspace of our own, so cuBLAS never allocates during a graph capture.
  if (cudaMalloc(&b->ws, kBlasWorkspace) != cudaSuccess || cublasSetWorkspace(b->h, b->ws, kBlasWorkspace) != CUBLAS_STATUS_SUCCESS) {
    cudaGetLastError();
    cudaFree(b->ws);
    cublasDestroy(b->h);
    delete b;
    throw Error(ALMC_ERR_OUT_OF_MEMORY, "cannot allocate the cuBLAS workspace");
  }
  return b;
}

void blas_destroy(void* p) {
  auto* b = static_cast<Blas*>(p);
  if (!b) return;
  cublasDestroy(b->h);
  cudaFree(b->ws);
  delete b;
}

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
    cudaGetLastError();
    throw Error(ALMC_ERR_OUT_OF_MEMORY, "cannot allocate " + std::to_string(bytes) + " bytes of device memory for the ONNX network");
  }
  return p;
}
void device_free(void* p) {
  if (p) cudaFree(p);
}
void copy_to_device(void* dst, const void* src, size_t bytes) { check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy"); }
void copy_to_host(void* dst, const void* src, size_t bytes) { check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy"); }
void memset_device(void* dst, size_t bytes) { check(cudaMemset(dst, 0, bytes), "cudaMemset"); }
void synchronize(void* stream) { check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize"); }
bool stream_capturing(void* stream) {
  cudaStreamCaptureStatus s = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &s) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return s != cudaStreamCaptureStatusNone;
}

void* stream_create() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  return s;
}
void stream_destroy(void* s) {
  if (s) cudaStreamDestroy(static_cast<cudaStream_t>(s));
}
void capture_begin(void* s) {
  check(cudaStreamBeginCapture(static_cast<cudaStream_t>(s), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
}
void* capture_end(void* s) {
  cudaGraph_t g = nullptr;
  check(cudaStreamEndCapture(static_cast<cudaStream_t>(s), &g), "cudaStreamEndCapture");
  cudaGraphExec_t e = nullptr;
  const cudaError_t r = cudaGraphInstantiate(&e, g, 0);
  cudaGraphDestroy(g);
  check(r, "cudaGraphInstantiate");
  return e;
}
void graph_launch(void* g, void* s) {
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(g), static_cast<cudaStream_t>(s)), "cudaGraphLaunch");
}
void graph_destroy(void* g) {
  if (g) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g));
}

void run_step(const Step& s, void* blas, bool allow_tf32, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  cublasHandle_t h = static_cast<Blas*>(blas)->h;
  switch (s.kind) {
    case StepKind::Ew: ew_kernel<<<grid_for(s.ew.total), kBlock, 0, st>>>(s.ew); break;
    case StepKind::Copy: copy_kernel<<<grid_for(s.copy.total), kBlock, 0, st>>>(s.copy); break;
    case StepKind::Gather:
      gather_kernel<<<grid_for(s.gather.outer * s.gather.n_idx * s.gather.inner), kBlock, 0, st>>>(s.gather);
      break;
    case StepKind::Softmax: softmax_kernel<<<grid_for(s.softmax.outer * s.softmax.inner * 32), kBlock, 0, st>>>(s.softmax); break;
    case StepKind::Norm: norm_kernel<<<int(s.norm.rows < 65535 ? s.norm.rows : 65535), kBlock, 0, st>>>(s.norm); break;
    case StepKind::Reduce: reduce_kernel<<<grid_for(s.reduce.out_total), kBlock, 0, st>>>(s.reduce); break;
    case StepKind::Pool: pool_kernel<<<grid_for(s.pool.NC * s.pool.OH * s.pool.OW), kBlock, 0, st>>>(s.pool); break;
    case StepKind::Resize: resize_kernel<<<grid_for(s.resize.NC * s.resize.OH * s.resize.OW), kBlock, 0, st>>>(s.resize); break;
    case StepKind::Pad: pad_kernel<<<grid_for(s.pad.total), kBlock, 0, st>>>(s.pad); break;
    case StepKind::Fill: fill_kernel<<<grid_for(s.fill_count), kBlock, 0, st>>>(s.fill_ptr, s.fill_count, s.fill_value); break;
    case StepKind::Gemm:
    case StepKind::Conv:
    case StepKind::ConvT:
      check_blas(cublasSetStream(h, st), "cublasSetStream");
      check_blas(cublasSetMathMode(h, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
      if (s.kind == StepKind::Gemm) run_gemm(s.gemm, h, st);
      else if (s.kind == StepKind::Conv) run_conv(s.conv, h, st);
      else run_conv_transpose(s.conv, h, st);
      break;
  }
  check_launch(s.node.c_str());
}

void adapter_in(const AdapterParams& a, const float* x, float* x_net, int64_t count, float* level, int64_t level_count,
                const almc_level_device* level_dev, void* stream) {
  const int64_t total = count > level_count ? count : level_count;
  adapter_in_kernel<<<grid_for(total), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(a, x, x_net, count, level, level_count,
                                                                                        level_dev);
  check_launch("adapter (input)");
}

void adapter_out(const AdapterParams& a, const float* net, const float* x, float* out, int64_t count,
                 const almc_level_device* level_dev, void* stream) {
  adapter_out_kernel<<<grid_for(count), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(a, net, x, out, count, level_dev);
  check_launch("adapter (output)");
}

}  // namespace almc::onnx::cuda
