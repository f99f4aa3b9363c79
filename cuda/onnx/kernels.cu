// CUDA launchers of the ONNX executor: the operators of cuda/onnx/ops.cuh (the CPU backend's too)
// one element or one warp per row per thread, and cuBLAS GEMMs.
// GEMMs (and convolutions as im2col + GEMM) go through the CUDA backend's cuBLAS handle and
// workspace; everything is enqueued on the backend's stream and nothing allocates, so a run can be
// captured into a CUDA graph. Failures are almc errors with the engine's status codes (check.cuh).
#include <cublas_v2.h>

#include "cuda/cublas_loader.hpp"
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>

#include "cuda/check.cuh"
#include "cuda/onnx/kernels.hpp"
#include "cuda/onnx/ops.cuh"

namespace almc::onnx::cuda {
namespace {

constexpr int kBlock = 256;

void check_blas(cublasStatus_t s, const char* what) { cublas_check(s, what); }

inline int grid_for(int64_t n) {
  int64_t g = (n + kBlock - 1) / kBlock;
  return int(g < 1 ? 1 : (g > 65535 * 8 ? 65535 * 8 : g));
}

// ---------------------------------------------------------------- launchers
// Every op is a functor from cuda/onnx/ops.cuh (shared with the CPU backend); these launch it
// one output element per thread (for_each_row) or one warp per reduced row (the reductions).

// f(row, i, i + 1) for every element i of every row of `len` elements.
template <class F>
__global__ void for_each_row_kernel(int64_t rows, int64_t len, const F f) {
  const int64_t total = rows * len;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = e / len, i = e - row * len;
    f(row, i, i + 1);
  }
}

template <class F>
void for_each_row(int64_t rows, int64_t len, const F& f, cudaStream_t st) {
  if (rows <= 0 || len <= 0) return;
  for_each_row_kernel<<<grid_for(rows * len), kBlock, 0, st>>>(rows, len, f);
  check_launch("kernel launch");
}

// The butterfly of ops.cuh's lane_tree_*: step s adds lane l ^ s, the CPU's pairing.
__device__ __forceinline__ float warp_sum(float v) {
  for (int s = kLanes / 2; s > 0; s >>= 1) v = v + __shfl_xor_sync(0xffffffffu, v, s);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int s = kLanes / 2; s > 0; s >>= 1) {
    const float o = __shfl_xor_sync(0xffffffffu, v, s);
    v = v > o ? v : o;
  }
  return v;
}

// Rows handled one per warp, lanes as in ops.cuh.
#define ALMC_WARP_ROWS(rows)                                                                                   \
  for (int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / kLanes; row < (rows);                 \
       row += (int64_t(gridDim.x) * blockDim.x) / kLanes)

__global__ void softmax_kernel(const SoftmaxParams p) {
  const int lane = int(threadIdx.x % kLanes);
  ALMC_WARP_ROWS(p.outer * p.inner) {
    const float mx = warp_max(softmax_lane_max(p, row, lane));
    const float sum = warp_sum(softmax_lane_sum(p, row, lane, mx));
    softmax_lane_write(p, row, lane, kLanes, mx, sum);
  }
}

__global__ void norm_kernel(const NormParams p) {
  const int lane = int(threadIdx.x % kLanes);
  ALMC_WARP_ROWS(p.rows) {
    const float mean = norm_mean(p, warp_sum(norm_lane_sum(p, row, lane)));
    const float rstd = norm_rstd(p, warp_sum(norm_lane_sq(p, row, lane, mean)));
    norm_write(p, row, lane, kLanes, mean, rstd);
  }
}

__global__ void reduce_kernel(const ReduceParams p) {
  const int lane = int(threadIdx.x % kLanes);
  ALMC_WARP_ROWS(p.out_total) {
    const float s = p.extreme ? warp_max(reduce_lane_max(p, row, lane)) : warp_sum(reduce_lane_sum(p, row, lane));
    if (lane == 0) p.y[row] = reduce_finish(p, s);
  }
}

// ---------------------------------------------------------------- element functors

struct EwOne {
  EwParams p;
  __device__ void operator()(int64_t, int64_t i, int64_t) const {
    float regs[kMaxEwRegs][1];
    ew_range<1>(p, i, 1, regs);
  }
};
struct CopyRows {
  CopyParams p;
  __device__ void operator()(int64_t r, int64_t i0, int64_t i1) const { copy_range<float>(p, p.in, p.out, r, i0, i1); }
};
struct GatherRows {
  GatherParams p;
  __device__ void operator()(int64_t r, int64_t i0, int64_t i1) const { gather_range<float>(p, p.data, p.idx, p.out, r, i0, i1); }
};
struct GemmBias {
  GemmParams p;
  float* C;
  __device__ void operator()(int64_t m, int64_t n0, int64_t n1) const { gemm_bias_range(p, C, m, n0, n1); }
};
struct Act {
  int act;
  float alpha;
  float* y;
  int64_t ld;
  __device__ void operator()(int64_t r, int64_t i0, int64_t i1) const { act_range(act, alpha, y + r * ld, i0, i1); }
};
struct ConvStage {  // one of the convolution's data passes for images n0 .. n0+B-1 of group g
  enum Kind { Im2col, Out, Regroup, Col2im } kind;
  ConvParams p;
  float* buf;
  int64_t n0, B, g;
  __device__ void operator()(int64_t r, int64_t i0, int64_t i1) const {
    switch (kind) {
      case Im2col: im2col_range(p, buf, n0, B, g, r, i0, i1); break;
      case Out: conv_out_range(p, buf, n0, B, g, r, i0, i1); break;
      case Regroup: regroup_range(p, buf, n0, B, g, r, i0, i1); break;
      case Col2im: col2im_range(p, buf, n0, B, g, r, i0, i1); break;
    }
  }
};
struct PoolRows {
  PoolParams p;
  __device__ void operator()(int64_t r, int64_t i0, int64_t i1) const { pool_range(p, r, i0, i1); }
};
struct ResizeRows {
  ResizeParams p;
  __device__ void operator()(int64_t r, int64_t i0, int64_t i1) const { resize_range(p, r, i0, i1); }
};
struct PadOne {
  PadParams p;
  __device__ void operator()(int64_t, int64_t o, int64_t) const { p.y[o] = pad_at(p, o); }
};
struct FillOne {
  float* y;
  float v;
  __device__ void operator()(int64_t, int64_t i, int64_t) const { y[i] = v; }
};

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

// ---------------------------------------------------------------- GEMMs
// Every GEMM of a plan is issued below, on the CUDA backend's one cuBLAS handle (bound to its
// stream, with its fixed workspace). The seam for cuBLASLt: run_gemm's separate bias pass
// (GemmBias) and activation pass (Act), and run_conv's output pass, are what bias/activation
// epilogues of a cublasLtMatmul would absorb; a cublasLt handle would then join the cuBLAS handle
// in CudaBackend and be passed in with it.

// Row-major C[M,N] = alpha op(A) op(B) (+ beta C) through column-major cuBLAS: C^T = op(B)^T op(A)^T.
void sgemm_rm(cublasHandle_t h, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_blas(cublas().sgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K), &alpha, B,
                         int(ldb), A, int(lda), &beta, C, int(ldc)),
             "cublasSgemm");
}

void run_gemm(const GemmParams& p, cublasHandle_t h, cudaStream_t st) {
  float beta = 0.f;
  if (p.bias_kind != BIAS_NONE) beta = 1.f;
  const int64_t sa = gemm_uniform_batch_stride(p, p.batch_stride_a), sb = gemm_uniform_batch_stride(p, p.batch_stride_b),
                sc = gemm_uniform_batch_stride(p, p.batch_stride_c);
  if (p.batch > 1 && p.bias_kind == BIAS_NONE && sa >= 0 && sb >= 0 && sc > 0 && p.batch <= INT32_MAX) {
    // One strided-batched call covers the whole batch (one call per item was 8192 calls per
    // attention MatMul at 1024 chains x 8 heads).
    const float one = p.alpha, zero = 0.f;
    check_blas(cublas().sgemm_strided_batched(h, p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                              int(p.N), int(p.M), int(p.K), &one, p.B, int(p.ldb), sb, p.A, int(p.lda), sa,
                                              &zero, p.C, int(p.ldc), sc, int(p.batch)),
               "cublasSgemmStridedBatched");
    if (p.act != EW_COPY) for_each_row(p.batch * p.M, p.N, Act{p.act, p.act_alpha, p.C, p.ldc}, st);
    return;
  }
  for (int64_t b = 0; b < p.batch; ++b) {
    int64_t oa, ob, oc;
    gemm_batch_offsets(p, b, oa, ob, oc);
    if (p.bias_kind != BIAS_NONE) for_each_row(p.M, p.N, GemmBias{p, p.C + oc}, st);
    sgemm_rm(h, p.trans_a, p.trans_b, p.M, p.N, p.K, p.alpha, p.A + oa, p.lda, p.B + ob, p.ldb, beta, p.C + oc, p.ldc);
  }
  if (p.act != EW_COPY) for_each_row(p.batch * p.M, p.N, Act{p.act, p.act_alpha, p.C, p.ldc}, st);
}

void run_conv(const ConvParams& p, cublasHandle_t h, cudaStream_t st) {
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, OHW = p.OH * p.OW;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = p.chunk < p.N - n0 ? p.chunk : p.N - n0, cols = B * OHW;
    float* tmp = p.col + Cg * KK * cols;
    for (int64_t g = 0; g < G; ++g) {
      for_each_row(Cg * KK * B * p.OH, p.OW, ConvStage{ConvStage::Im2col, p, p.col, n0, B, g}, st);
      sgemm_rm(h, false, false, Mg, cols, Cg * KK, 1.f, p.w + g * Mg * Cg * KK, Cg * KK, p.col, cols, 0.f, tmp, cols);
      for_each_row(Mg * B, OHW, ConvStage{ConvStage::Out, p, tmp, n0, B, g}, st);
    }
  }
}

void run_conv_transpose(const ConvParams& p, cublasHandle_t h, cudaStream_t st) {
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, HW = p.H * p.W;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = p.chunk < p.N - n0 ? p.chunk : p.N - n0, cols = B * HW;
    float* xt = p.col;
    float* col = p.col + Cg * cols;
    for (int64_t g = 0; g < G; ++g) {
      for_each_row(Cg * B, HW, ConvStage{ConvStage::Regroup, p, xt, n0, B, g}, st);
      sgemm_rm(h, true, false, Mg * KK, cols, Cg, 1.f, p.w + g * Cg * Mg * KK, Mg * KK, xt, cols, 0.f, col, cols);
      for_each_row(B * Mg * p.OH, p.OW, ConvStage{ConvStage::Col2im, p, col, n0, B, g}, st);
    }
  }
}

// ---------------------------------------------------------------- BF16 precision (use_bf16)
// GEMM operands in bfloat16, products summed in fp32 by cuBLAS (tensor cores), fp32 results:
// weights converted once at plan time (Step::w16), runtime operands converted here into the
// plan's scratch region (Step::scratch16). Unmeasured and not yet run on a device.

struct ToBf16 {
  const float* x;
  __nv_bfloat16* y;
  __device__ void operator()(int64_t, int64_t i, int64_t) const { y[i] = __float2bfloat16_rn(x[i]); }
};
void to_bf16(const float* x, __nv_bfloat16* y, int64_t n, cudaStream_t st) { for_each_row(1, n, ToBf16{x, y}, st); }

const __nv_bfloat16* as_bf16(const float* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }

// sgemm_rm with BF16 A and B.
void gemm_rm_bf16(cublasHandle_t h, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
                  int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_blas(cublas().gemm_ex(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K), &alpha, B,
                          CUDA_R_16BF, int(ldb), A, CUDA_R_16BF, int(lda), &beta, C, CUDA_R_32F, int(ldc), CUBLAS_COMPUTE_32F,
                          CUBLAS_GEMM_DEFAULT),
             "cublasGemmEx (BF16)");
}

// The scratch's second region (after the first's `first` elements, rounded as use_bf16 rounds).
__nv_bfloat16* second_region(__nv_bfloat16* scratch, int64_t first) { return scratch + (first + 127) / 128 * 128; }

void run_gemm_bf16(const Step& s, cublasHandle_t h, cudaStream_t st) {
  const GemmParams& p = s.gemm;
  auto* scratch = reinterpret_cast<__nv_bfloat16*>(s.scratch16);
  const int64_t ra = p.trans_a ? p.K : p.M, ca = p.trans_a ? p.M : p.K, rb = p.trans_b ? p.N : p.K, cb = p.trans_b ? p.K : p.N;
  const int64_t ea = ra > 0 ? (ra - 1) * p.lda + ca : 0, eb = rb > 0 ? (rb - 1) * p.ldb + cb : 0;
  const bool a_packed = s.w16 && s.w16_side == 0, b_packed = s.w16 && s.w16_side == 1;
  for (int64_t b = 0; b < p.batch; ++b) {
    int64_t oa, ob, oc;
    gemm_batch_offsets(p, b, oa, ob, oc);
    const __nv_bfloat16* A = a_packed ? as_bf16(s.w16) + oa : scratch;
    const __nv_bfloat16* B = b_packed ? as_bf16(s.w16) + ob : second_region(scratch, a_packed ? 0 : ea);
    if (!a_packed) to_bf16(p.A + oa, scratch, ea, st);
    if (!b_packed) to_bf16(p.B + ob, const_cast<__nv_bfloat16*>(B), eb, st);
    float beta = 0.f;
    if (p.bias_kind != BIAS_NONE) {
      for_each_row(p.M, p.N, GemmBias{p, p.C + oc}, st);
      beta = 1.f;
    }
    gemm_rm_bf16(h, p.trans_a, p.trans_b, p.M, p.N, p.K, p.alpha, A, p.lda, B, p.ldb, beta, p.C + oc, p.ldc);
  }
  if (p.act != EW_COPY) for_each_row(p.batch * p.M, p.N, Act{p.act, p.act_alpha, p.C, p.ldc}, st);
}

// run_conv / run_conv_transpose with the GEMM in BF16: the columns (or the regrouped input)
// converted into the scratch, the weight converted at plan time (or here, after them).
void run_conv_bf16(const Step& s, cublasHandle_t h, cudaStream_t st) {
  const ConvParams& p = s.conv;
  const bool tr = s.kind == StepKind::ConvT;
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, OHW = p.OH * p.OW, HW = p.H * p.W;
  auto* scratch = reinterpret_cast<__nv_bfloat16*>(s.scratch16);
  const int64_t first = tr ? Cg * p.chunk * HW : Cg * KK * p.chunk * OHW;
  const __nv_bfloat16* w = s.w16 ? as_bf16(s.w16) : second_region(scratch, first);
  if (!s.w16) to_bf16(p.w, second_region(scratch, first), tr ? p.C * Mg * KK : p.M * Cg * KK, st);
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = p.chunk < p.N - n0 ? p.chunk : p.N - n0;
    for (int64_t g = 0; g < G; ++g) {
      if (!tr) {
        const int64_t cols = B * OHW;
        float* tmp = p.col + Cg * KK * cols;
        for_each_row(Cg * KK * B * p.OH, p.OW, ConvStage{ConvStage::Im2col, p, p.col, n0, B, g}, st);
        to_bf16(p.col, scratch, Cg * KK * cols, st);
        gemm_rm_bf16(h, false, false, Mg, cols, Cg * KK, 1.f, w + g * Mg * Cg * KK, Cg * KK, scratch, cols, 0.f, tmp, cols);
        for_each_row(Mg * B, OHW, ConvStage{ConvStage::Out, p, tmp, n0, B, g}, st);
      } else {
        const int64_t cols = B * HW;
        float* xt = p.col;
        float* col = p.col + Cg * cols;
        for_each_row(Cg * B, HW, ConvStage{ConvStage::Regroup, p, xt, n0, B, g}, st);
        to_bf16(xt, scratch, Cg * cols, st);
        gemm_rm_bf16(h, true, false, Mg * KK, cols, Cg, 1.f, w + g * Cg * Mg * KK, Mg * KK, scratch, cols, 0.f, col, cols);
        for_each_row(B * Mg * p.OH, p.OW, ConvStage{ConvStage::Col2im, p, col, n0, B, g}, st);
      }
    }
  }
}

}  // namespace

class CudaOpKernels final : public OpKernels {
 public:
  // Made by the CUDA backend's constructor while the backend's device is current: that device is
  // the one the stream and handle belong to, and each entry point below makes it current for the
  // call (check.cuh's device rule), whatever thread calls and whatever device is current there.
  CudaOpKernels(cudaStream_t stream, cublasHandle_t blas) : st_(stream), h_(blas) {
    cuda_check(cudaGetDevice(&device_), "cudaGetDevice");
  }
  bool host_blocks() const override { return false; }

  void run_step(const Step& s, bool allow_tf32) override {
    const DeviceGuard dg(device_);
    const cudaStream_t st = st_;
    cublasHandle_t h = h_;
    switch (s.kind) {
      case StepKind::Ew: for_each_row(1, s.ew.total, EwOne{s.ew}, st); break;
      case StepKind::Copy:
        if (s.copy.total > 0) for_each_row(s.copy.total / copy_inner(s.copy), copy_inner(s.copy), CopyRows{s.copy}, st);
        break;
      case StepKind::Gather: for_each_row(s.gather.outer * s.gather.n_idx, s.gather.inner, GatherRows{s.gather}, st); break;
      case StepKind::Softmax: softmax_kernel<<<grid_for(s.softmax.outer * s.softmax.inner * kLanes), kBlock, 0, st>>>(s.softmax); break;
      case StepKind::Norm: norm_kernel<<<grid_for(s.norm.rows * kLanes), kBlock, 0, st>>>(s.norm); break;
      case StepKind::Reduce: reduce_kernel<<<grid_for(s.reduce.out_total * kLanes), kBlock, 0, st>>>(s.reduce); break;
      case StepKind::Pool: for_each_row(s.pool.NC * s.pool.OH, s.pool.OW, PoolRows{s.pool}, st); break;
      case StepKind::Resize: for_each_row(s.resize.NC * s.resize.OH, s.resize.OW, ResizeRows{s.resize}, st); break;
      case StepKind::Pad: for_each_row(1, s.pad.total, PadOne{s.pad}, st); break;
      case StepKind::Fill: for_each_row(1, s.fill_count, FillOne{s.fill_ptr, s.fill_value}, st); break;
      case StepKind::Gemm:
      case StepKind::Conv:
      case StepKind::ConvT:
        // The handle is shared with the backend's dense operators, which set their own mode: the
        // mode is read when a GEMM is issued (or captured), so it is set before every step.
        if (s.bf16) {  // BF16 precision (use_bf16): tensor cores with fp32 compute
          check_blas(cublas().set_math_mode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
          if (s.kind == StepKind::Gemm) run_gemm_bf16(s, h, st);
          else run_conv_bf16(s, h, st);
          break;
        }
        check_blas(cublas().set_math_mode(h, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
        if (s.kind == StepKind::Gemm) run_gemm(s.gemm, h, st);
        else if (s.kind == StepKind::Conv) run_conv(s.conv, h, st);
        else run_conv_transpose(s.conv, h, st);
        break;
    }
    check_launch(s.node.c_str());
  }

  void adapter_in(const AdapterParams& a, const float* x, float* x_net, int64_t count, float* level, int64_t level_count,
                  const almc_level_device* level_dev) override {
    const DeviceGuard dg(device_);
    const int64_t total = count > level_count ? count : level_count;
    adapter_in_kernel<<<grid_for(total), kBlock, 0, st_>>>(a, x, x_net, count, level, level_count, level_dev);
    check_launch("adapter (input)");
  }

  void adapter_out(const AdapterParams& a, const float* net, const float* x, float* out, int64_t count,
                   const almc_level_device* level_dev) override {
    const DeviceGuard dg(device_);
    adapter_out_kernel<<<grid_for(count), kBlock, 0, st_>>>(a, net, x, out, count, level_dev);
    check_launch("adapter (output)");
  }

 private:
  cudaStream_t st_;
  cublasHandle_t h_;
  int device_ = 0;
};

}  // namespace almc::onnx::cuda

namespace almc::onnx {

std::unique_ptr<OpKernels> make_cuda_op_kernels(void* stream, void* blas) {
  return std::make_unique<cuda::CudaOpKernels>(static_cast<cudaStream_t>(stream), static_cast<cublasHandle_t>(blas));
}

}  // namespace almc::onnx
