// The CUDA backend: the same per-unit functors as the CPU backend, launched one thread per unit,
// block reductions for the per-chain sums, cuBLAS for dense operators. Every launch goes on the
// backend's stream; nothing in the step path allocates or synchronises, so a step is capturable.
#include "host/backend/backend.hpp"

#include "cuda/langevin/chain_step.cuh"
#include "cuda/check.cuh"
#include "cuda/launch_policy.hpp"
#include "cuda/onnx/kernels.hpp"
#include "host/core/error.hpp"

#include <cublas_v2.h>

#include "cuda/cublas_loader.hpp"
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

namespace almc {

// Launch shapes come from cuda/launch_policy.hpp (unmeasured starting points). In device code
// kCompiledLaunch is the table's row for the architecture this pass compiles for, and gives the
// kernels their __launch_bounds__; host code never reads it (the host pass sees the default row):
// the backend launches with the row it selected at creation from the kernels' PTX version, which
// is the same row (checked there against the kernels' attributes).
#if defined(__CUDA_ARCH__)
constexpr ArchLaunch kCompiledLaunch = arch_launch(__CUDA_ARCH__ / 10);
#else
constexpr ArchLaunch kCompiledLaunch = arch_launch(0);
#endif
// Rows up to this many coordinates take the whole step in one thread per chain (chain_step.cuh):
// one launch after the tables instead of responsibilities + update. Not yet measured on a device.
constexpr int64_t kChainStepRow = 32;
static_assert(kChainStepRow <= kChainStepMaxD, "the per-chain step's scratch is kChainStepMaxD floats");
static_assert(kRespBlock % 32 == 0 && kRespBlock <= 1024, "the reductions work in whole warps");

namespace {

// The sum of v over a block of Block threads (thread order fixed by Block: a warp shuffle tree,
// then the warps' sums in warp order); smem holds Block / 32 values of T.
template <int Block, class T>
__device__ T block_sum(T v, T* smem) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < Block / 32 ? smem[lane] : T(0);
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  }
  return v;  // valid in thread 0
}

__global__ void begin_step_kernel(const StepScalars* table, int64_t* counter, StepScalars* cur) {
  const int64_t i = *counter;
  *cur = table[i];
  *counter = i + 1;
}

// ---------------------------------------------------------------- the analytic prior's tables

__global__ void prior_tables_kernel(GmmPrior g, int64_t kd, const StepScalars* cur, PriorTables out) {
  if (cur->kind == kStepWarm) return;
  const LevelConsts l = level_consts(*cur);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < kd;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    prior_table_entry(g, l, i, out);
}

// One block per component: logdet[k] = sum_j log S_k,j, accumulated in double like the CPU.
__global__ void prior_logdet_kernel(GmmPrior g, int64_t d, const StepScalars* cur, PriorTables out) {
  __shared__ double smem[kRespBlock];
  if (cur->kind == kStepWarm) return;
  const LevelConsts l = level_consts(*cur);
  const int64_t k = blockIdx.x;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) s += prior_logdet_term(g, l, k * d + j);
  smem[threadIdx.x] = s;
  __syncthreads();
  for (int w = kRespBlock / 2; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w) smem[threadIdx.x] += smem[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out.logdet[k] = static_cast<float>(smem[0]);
}

// The responsibilities of rows longer than kRespShortRow (launch_policy.hpp's GmmRespPlan): one
// block of kRespBlock threads per (slice, chain), blockIdx.x the slice, blockIdx.y striding over
// chains. x is read once per pass of kRespPassK components, whose quadratic forms accumulate in
// registers together: thread t sums coordinates slice_start + t, + kRespBlock, ... in order, then a
// warp shuffle tree and the warps' sums in warp order. The order of every sum is fixed by
// kRespBlock and slice_len alone. Without `partial` (one slice per row, few components) the
// block also takes the softmax (resp); with it, it writes its slice's forms to
// partial[chain, slice, K] and gmm_resp_finish_kernel takes the sum and softmax.
__global__ void __launch_bounds__(kRespBlock)
    gmm_resp_slice_kernel(PriorTables tab, const float* x, int64_t n, int64_t d, int64_t slice_len,
                          const StepScalars* cur, float* partial, float* resp) {
  extern __shared__ float q[];  // without partial: [K] quadratic forms, then responsibilities
  __shared__ float part[kRespBlock / 32][kRespPassK];
  if (cur->kind == kStepWarm) return;
  const int64_t slices = gridDim.x, s = blockIdx.x;
  const int64_t j0 = s * slice_len, j1 = j0 + slice_len < d ? j0 + slice_len : d;
  const bool finish = partial == nullptr;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t c = blockIdx.y; c < n; c += gridDim.y) {  // the same chains for every thread
    const float* xr = x + c * d;
    for (int64_t k0 = 0; k0 < tab.K; k0 += kRespPassK) {
      float acc[kRespPassK];
#pragma unroll
      for (int e = 0; e < kRespPassK; ++e) acc[e] = 0.f;
      for (int64_t j = j0 + threadIdx.x; j < j1; j += kRespBlock) {
        const float xv = xr[j];
#pragma unroll
        for (int e = 0; e < kRespPassK; ++e)
          if (k0 + e < tab.K) acc[e] += gmm_quad_term(xv, tab.amu[(k0 + e) * d + j], tab.inv_s[(k0 + e) * d + j]);
      }
#pragma unroll
      for (int e = 0; e < kRespPassK; ++e) {
        float v = acc[e];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) part[warp][e] = v;
      }
      __syncthreads();
      if (threadIdx.x < kRespPassK && k0 + threadIdx.x < tab.K) {
        float v = 0.f;
        for (int w = 0; w < kRespBlock / 32; ++w) v += part[w][threadIdx.x];
        if (finish)
          q[k0 + threadIdx.x] = v;
        else
          partial[(c * slices + s) * tab.K + k0 + threadIdx.x] = v;
      }
      __syncthreads();  // part is rewritten by the next pass
    }
    if (finish) {
      if (threadIdx.x == 0) {
        gmm_softmax(tab, q);
        for (int64_t k = 0; k < tab.K; ++k) resp[c * tab.K + k] = q[k];
      }
      __syncthreads();  // q is rewritten for the next chain
    }
  }
}

// After gmm_resp_slice_kernel with partials: one thread per chain sums its slices' forms in slice
// order into its row of resp, then the softmax in place.
__global__ void gmm_resp_finish_kernel(PriorTables tab, const float* partial, int64_t n, int64_t slices,
                                       const StepScalars* cur, float* resp) {
  if (cur->kind == kStepWarm) return;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < n;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float* pc = partial + c * slices * tab.K;
    float* r = resp + c * tab.K;
    for (int64_t k = 0; k < tab.K; ++k) {
      float v = 0.f;
      for (int64_t s = 0; s < slices; ++s) v += pc[s * tab.K + k];
      r[k] = v;
    }
    gmm_softmax(tab, r);
  }
}

// Short rows (tiny problems): one thread per chain, the K quadratic forms in order, then the
// softmax in place in resp.
__global__ void gmm_resp_thread_kernel(PriorTables tab, const float* x, int64_t n, int64_t d, const StepScalars* cur,
                                       float* resp) {
  if (cur->kind == kStepWarm) return;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < n;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {  // the grid is capped (grid_stride_blocks)
    const float* xr = x + c * d;
    float* r = resp + c * tab.K;
    for (int64_t k = 0; k < tab.K; ++k) {
      float q = 0.f;
      for (int64_t j = 0; j < d; ++j) q += gmm_quad_term(xr[j], tab.amu[k * d + j], tab.inv_s[k * d + j]);
      r[k] = q;
    }
    gmm_softmax(tab, r);
  }
}

// ---------------------------------------------------------------- the fused step, per variant

// The step for (prior, operator) fixed at compile time: the shared functions of step.cuh read
// p.prior and p.op.kind, which are constants here, so each instantiation keeps only its own
// path. Grid: x over groups of 4 coordinates of a chain (32-bit indices), y over chains.
template <int Prior, int Op>
__global__ void __launch_bounds__(kCompiledLaunch.elementwise_block, kCompiledLaunch.elementwise_min_blocks)
    fused_step_kernel(FusedStepParams p, bool flat) {
  p.prior = Prior;
  p.op.kind = Op;
  const StepScalars cur = *p.cur;
  const unsigned groups = static_cast<unsigned>((p.d + 3) / 4);
  // Rows of many groups: x over a row's groups, y over chains. Short rows (tiny problems): one
  // flat index over (chain, group), so a block is not mostly idle threads; fused_step_grid
  // (launch_policy.hpp) picks this only when n * groups fits 31 bits.
  unsigned grp;
  int64_t c, c_stride;
  if (flat) {
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= static_cast<unsigned>(p.n) * groups) return;
    c = i / groups;
    grp = i - static_cast<unsigned>(c) * groups;
    c_stride = p.n;
  } else {
    grp = blockIdx.x * blockDim.x + threadIdx.x;
    if (grp >= groups) return;
    c = blockIdx.y;
    c_stride = gridDim.y;
  }
  const bool vec = (p.d & 3) == 0;  // rows start 16-byte aligned: one float4 per group
  for (; c < p.n; c += c_stride) {
    const float4 xi = philox_normal4(p.seed, noise_stream(p.chain0 + c, p.cpm), static_cast<uint64_t>(cur.step), grp);
    const float* yrow = measurement_row(p, c);
    float* xr = p.x + c * p.d;
    const int64_t j0 = 4 * static_cast<int64_t>(grp);
    if (vec) {
      float4 v = *reinterpret_cast<const float4*>(xr + j0);
      v.x = step_element(p, cur, yrow, c, j0 + 0, v.x, prior_score(p, cur, c, j0 + 0, v.x), xi.x);
      v.y = step_element(p, cur, yrow, c, j0 + 1, v.y, prior_score(p, cur, c, j0 + 1, v.y), xi.y);
      v.z = step_element(p, cur, yrow, c, j0 + 2, v.z, prior_score(p, cur, c, j0 + 2, v.z), xi.z);
      v.w = step_element(p, cur, yrow, c, j0 + 3, v.w, prior_score(p, cur, c, j0 + 3, v.w), xi.w);
      *reinterpret_cast<float4*>(xr + j0) = v;
    } else {
      for (int e = 0; e < 4 && j0 + e < p.d; ++e) {
        const float xv = xr[j0 + e];
        xr[j0 + e] = step_element(p, cur, yrow, c, j0 + e, xv, prior_score(p, cur, c, j0 + e, xv), component(xi, e));
      }
    }
  }
}

// Tiny problems: one thread per chain runs its whole step (chain_step.cuh), scratch rows in
// registers / local memory (L1). resp_due: the GMM responsibilities too (else p.resp holds them).
// With `tables` (an annealing step whose tables are due and small), each block first computes the
// level's tables into shared memory (step.cuh's prior_table_entry, logdet[k] summed in double in
// coordinate order) and its chains read them there; block 0 also stores them in p.tab. The whole
// step is then this one launch after begin_step.
template <int Prior, int Op>
__global__ void __launch_bounds__(kCompiledLaunch.chain_block)
    chain_step_kernel(FusedStepParams p, GmmPrior g, bool tables, bool resp_due) {
  extern __shared__ float tab_smem[];  // with tables: amu [K d], inv_s [K d], logdet [K]
  const StepScalars cur = *p.cur;
  if (tables && cur.kind != kStepWarm) {
    const int64_t kd = g.K * p.d;
    const PriorTables st{tab_smem, tab_smem + kd, tab_smem + 2 * kd, p.tab.log_w, g.K};
    const LevelConsts l = level_consts(cur);
    for (int64_t i = threadIdx.x; i < kd; i += blockDim.x) prior_table_entry(g, l, i, st);
    for (int64_t k = threadIdx.x; k < g.K; k += blockDim.x) {
      double sum = 0.0;
      for (int64_t j = 0; j < p.d; ++j) sum += prior_logdet_term(g, l, k * p.d + j);
      st.logdet[k] = static_cast<float>(sum);
    }
    __syncthreads();
    if (blockIdx.x == 0) {
      for (int64_t i = threadIdx.x; i < kd; i += blockDim.x) {
        p.tab.amu[i] = st.amu[i];
        p.tab.inv_s[i] = st.inv_s[i];
      }
      for (int64_t k = threadIdx.x; k < g.K; k += blockDim.x) p.tab.logdet[k] = st.logdet[k];
    }
    p.tab = st;
  }
  float xi[kChainStepRow], s[kChainStepRow], gr[kChainStepRow];
  const ChainScratch w{xi, s, gr};
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < p.n;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x)
    chain_step<Prior, Op>(p, cur, c, resp_due, GroupNormals{}, w);
}

// Largest tables (bytes) a chain_step_kernel block computes for itself.
constexpr size_t kChainStepTableBytes = 16 << 10;

// Average-pool downsampling: one thread per pooling block.
template <int Prior>
__global__ void __launch_bounds__(kCompiledLaunch.elementwise_block, kCompiledLaunch.elementwise_min_blocks)
    fused_pool_kernel(FusedStepParams p, int blocks) {
  p.prior = Prior;
  const StepScalars cur = *p.cur;
  const int blk = blockIdx.x * blockDim.x + threadIdx.x;
  if (blk >= blocks) return;
  for (int64_t c = blockIdx.y; c < p.n; c += gridDim.y) fused_pool_block(p, cur, c, blk);
}

// Calls f(prior, op) with both as std::integral_constant: the one place where the supported
// (prior, operator) combinations of the fused step are listed. Operators that are not fused
// (blur, matrix, callbacks) all read the gradient buffer: one variant, kOpBlur, stands for them.
template <class F>
void dispatch_step_variant(int32_t prior, int32_t op, F&& f) {
  auto with_op = [&](auto pr) {
    switch (op) {
      case kOpNone: return f(pr, std::integral_constant<int, kOpNone>{});
      case kOpIdentity: return f(pr, std::integral_constant<int, kOpIdentity>{});
      case kOpMask: return f(pr, std::integral_constant<int, kOpMask>{});
      case kOpDownsample: return f(pr, std::integral_constant<int, kOpDownsample>{});
      default: return f(pr, std::integral_constant<int, kOpBlur>{});
    }
  };
  switch (prior) {
    case kPriorGaussian: return with_op(std::integral_constant<int, kPriorGaussian>{});
    case kPriorGmm: return with_op(std::integral_constant<int, kPriorGmm>{});
    default: return with_op(std::integral_constant<int, kPriorBuffer>{});
  }
}

__global__ void analytic_score_kernel(FusedStepParams p, float* out) {
  const StepScalars cur = *p.cur;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.n * p.d;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = prior_score(p, cur, i / p.d, i % p.d, p.x[i]);
}

__global__ void local_forward_kernel(LocalOp op, const float* x, float* out, int64_t n, int64_t d, int64_t m) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * m;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = local_forward(op, x + (i / m) * d, i % m);
}

__global__ void local_adjoint_kernel(LocalOp op, const float* v, float* out, int64_t n, int64_t d, int64_t m) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * d;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = local_adjoint(op, v + (i / d) * m, i % d);
}

__global__ void residual_rows_kernel(float* R, const float* y, int64_t y_div, int64_t n, int64_t m, int64_t chain0,
                                     const StepScalars* cur) {
  const float xs = cur ? cur->xs : 1.f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * m;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i / m;
    R[i] = y[((chain0 + c) / y_div) * m + i % m] - xs * R[i];
  }
}

__global__ void scale_kernel(const float* x, float* out, int64_t count, const StepScalars* cur) {
  const float xs = cur->xs;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = xs * x[i];
}

// One block of kRespBlock threads per chain. ||R_c|| as the CPU backend's row_norm takes it: the
// squares of the floats taken and summed in double (exact squares; the order of the sum fixed by
// kRespBlock, whatever m and n), the square root in double, then rounded to float once.
__global__ void row_norms_kernel(const float* R, int64_t m, const float* x, int64_t d, float* norms, int32_t* flags) {
  __shared__ double dsum[kRespBlock / 32];
  __shared__ float fsum[kRespBlock / 32];
  const int64_t c = blockIdx.x;
  double s = 0.0;
  float bad = 0.f;
  if (R)
    for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
      const double r = R[c * m + i];
      s += r * r;
    }
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) bad += isfinite(x[c * d + j]) ? 0.f : 1.f;
  s = block_sum<kRespBlock>(s, dsum);
  bad = block_sum<kRespBlock>(bad, fsum);
  if (threadIdx.x == 0) {
    if (norms) norms[c] = R ? static_cast<float>(sqrt(s)) : __int_as_float(0x7fc00000);
    if (flags) flags[c] = bad > 0.f;
  }
}

__global__ void fill_random_kernel(float* x, int64_t n, int64_t d, int64_t chain0, int64_t cpm, uint64_t seed,
                                   uint64_t key, float scale, bool uniform) {
  const int64_t groups = (d + 3) / 4;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * groups;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i / groups, g = i % groups;
    const uint64_t stream = noise_stream(chain0 + c, cpm);
    const float4 v = uniform ? philox_uniform4(seed, stream, key, g) : philox_normal4(seed, stream, key, g);
    for (int e = 0; e < 4 && g * 4 + e < d; ++e) {
      const float r = component(v, e);
      x[c * d + g * 4 + e] = uniform ? scale * (2.f * r - 1.f) : scale * r;
    }
  }
}

__global__ void tweedie_kernel(float* x, const float* s, int64_t count, float a, float b) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = a * (x[i] + b * s[i]);
}

__global__ void copy_picked_kernel(const float* x, float* out, const int64_t* pick, int64_t first_step, int64_t n,
                                   int64_t d, const StepScalars* cur) {
  const int64_t k = cur->step - first_step;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * d;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    if (pick[i / d] == k) out[i] = x[i];
}

__global__ void xgp_aux_kernel(float* ych, int64_t n, int64_t m, int64_t chain0, int64_t cpm, uint64_t seed,
                               const StepScalars* cur) {
  if (cur->aux < 0) return;
  const uint64_t key = kRngXgpKeyBase + static_cast<uint64_t>(cur->aux);
  const float sc = cur->aux_scale;
  const int64_t groups = (m + 3) / 4;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * groups;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i / groups, g = i % groups;
    const float4 v = philox_normal4(seed, noise_stream(chain0 + c, cpm), key, g);
    for (int e = 0; e < 4 && g * 4 + e < m; ++e) ych[c * m + g * 4 + e] -= sc * component(v, e);
  }
}

// One thread per chain (SMC weights, ALGORITHMS.md Sec. 9).
__global__ void log_density_kernel(PriorTables tab, const StepScalars* cur, const float* x, int64_t n, int64_t d,
                                   double sign, double* acc) {
  const StepScalars c = *cur;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    acc[i] += sign * prior_log_density(tab, c, x + i * d, d);
}

__global__ void gather_rows_kernel(const float* src, float* dst, const int64_t* idx, int64_t n, int64_t d) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * d;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = src[idx[i / d] * d + i % d];
}

__global__ void mean_std_kernel(const float* x, int64_t n_meas, int64_t cpm, int64_t d, float* mean, float* std) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n_meas * d;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    chain_mean_std(x, cpm, d, i / d, i % d, mean, std);
}

}  // namespace

struct GraphHandle {
  cudaGraphExec_t exec = nullptr;
};

namespace {

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, void* stream) : device_(device) {
    // First, before anything is created: a bad value fails here with nothing to release.
    const char* mode = std::getenv("ALMC_GPU_GMM_RESP");
    if (!parse_gmm_resp_mode(mode, &resp_mode_))
      fail(ALMC_ERR_INVALID_ARGUMENT, gmm_resp_mode_problem(mode));
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      cudaGetLastError();
      fail(ALMC_ERR_NO_DEVICE, "no CUDA device is present");
    }
    if (device < 0 || device >= count) fail(ALMC_ERR_NO_DEVICE, "CUDA device ", device, " does not exist (", count, " present)");
    // The device is current for the rest of the constructor only: the caller's is restored when
    // it returns or throws (check.cuh's device rule).
    const DeviceGuard dg(device);
    cudaDeviceProp prop{};
    ALMC_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
    read_launch_policy(prop);
    name_ = std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + "; " +
            std::to_string(policy_.sm_count) + " SMs, " + std::to_string(policy_.l2_bytes >> 20) + " MiB L2; launch row " +
            (policy_.arch.arch ? "sm_" + std::to_string(policy_.arch.arch) : std::string("default")) +
            "; GMM responsibilities " + (resp_mode_ == GmmRespMode::Block ? "block" : "split") + ")";
    // From here on resources exist: a failure releases what was made before it propagates (the
    // destructor does not run for an object whose constructor threw).
    try {
      if (stream) {
        stream_ = static_cast<cudaStream_t>(stream);
      } else {
        ALMC_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        own_stream_ = true;
      }
      ALMC_CUBLAS_TRY(cublas().create(&blas_));
      ALMC_CUBLAS_TRY(cublas().set_stream(blas_, stream_));
      // A fixed cuBLAS workspace so that GEMMs never allocate inside a captured graph.
      ALMC_CUDA_TRY(cudaMalloc(&blas_ws_, kBlasWorkspace));
      ALMC_CUBLAS_TRY(cublas().set_workspace(blas_, blas_ws_, kBlasWorkspace));
      onnx_ = onnx::make_cuda_op_kernels(stream_, blas_);
    } catch (...) {
      release();
      throw;
    }
  }
  ~CudaBackend() override {
    const DeviceGuard dg(device_, std::nothrow);
    release();
  }

  almc_backend kind() const override { return ALMC_BACKEND_CUDA; }
  std::string device_name() const override { return name_; }
  void* stream() const override { return stream_; }

  // Every method below that makes a CUDA or cuBLAS call first makes the backend's device current
  // on the calling thread, for the call only (DeviceGuard, check.cuh's device rule).
  void* alloc(size_t bytes) override {
    if (bytes == 0) return nullptr;
    const DeviceGuard dg(device_);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      fail(e == cudaErrorMemoryAllocation ? ALMC_ERR_OUT_OF_MEMORY : ALMC_ERR_CUDA, "device allocation of ", bytes,
           " bytes failed: ", cudaGetErrorString(e));
    }
    return p;
  }
  void dealloc(void* p) noexcept override {
    if (!p) return;
    const DeviceGuard dg(device_, std::nothrow);
    cudaFree(p);
  }
  void copy(void* dst, const void* src, size_t bytes, CopyKind kind) override {
    if (!bytes) return;
    const DeviceGuard dg(device_);
    const cudaMemcpyKind k = kind == CopyKind::HostToBackend   ? cudaMemcpyHostToDevice
                             : kind == CopyKind::BackendToHost ? cudaMemcpyDeviceToHost
                                                               : cudaMemcpyDeviceToDevice;
    ALMC_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, k, stream_));
    if (kind != CopyKind::BackendToBackend) ALMC_CUDA_TRY(cudaStreamSynchronize(stream_));
  }
  void zero(void* p, size_t bytes) override {
    if (!bytes) return;
    const DeviceGuard dg(device_);
    ALMC_CUDA_TRY(cudaMemsetAsync(p, 0, bytes, stream_));
  }
  void sync() override {
    const DeviceGuard dg(device_);
    ALMC_CUDA_TRY(cudaStreamSynchronize(stream_));
  }
  size_t available_memory() const override {
    const DeviceGuard dg(device_);
    size_t free_b = 0, total = 0;
    if (cudaMemGetInfo(&free_b, &total) != cudaSuccess) {
      cudaGetLastError();
      return SIZE_MAX;
    }
    return free_b;
  }
  // check.cuh's mapping, as for every other CUDA failure (an allocation failure reported by a
  // kernel launch is ALMC_ERR_OUT_OF_MEMORY there too). The last error is the calling thread's,
  // whatever device is current: no guard.
  void check(const char* what) override { cuda_check(cudaGetLastError(), what); }

  void begin_step(const StepScalars* table, int64_t* counter, StepScalars* cur) override {
    const DeviceGuard dg(device_);
    begin_step_kernel<<<1, 1, 0, stream_>>>(table, counter, cur);
    check_launch("begin_step_kernel");
  }

  void prior_tables(const GmmPrior& g, int64_t d, const StepScalars* cur, const PriorTables& out) override {
    if (g.K <= 0) return;  // no components, no tables (and an empty grid is a launch error)
    const DeviceGuard dg(device_);
    prior_tables_kernel<<<grid(g.K * d, eb_), eb_, 0, stream_>>>(g, g.K * d, cur, out);
    check_launch("prior_tables_kernel");
    prior_logdet_kernel<<<static_cast<unsigned>(g.K), kRespBlock, 0, stream_>>>(g, d, cur, out);
    check_launch("prior_logdet_kernel");
  }

  // The plan (launch_policy.hpp) depends on d, K and the process's mode only: each chain's
  // responsibilities are the same whatever n. Unmeasured on a device.
  void gmm_responsibilities(const PriorTables& tab, const float* x, int64_t n, int64_t d, const StepScalars* cur,
                            float* resp, float* work) override {
    if (n <= 0 || tab.K <= 0) return;
    const GmmRespPlan plan = gmm_resp_plan(d, tab.K, resp_mode_);
    const DeviceGuard dg(device_);
    if (plan.kind == kRespThread) {
      gmm_resp_thread_kernel<<<grid(n, cb_), cb_, 0, stream_>>>(tab, x, n, d, cur, resp);
      check_launch("gmm_resp_thread_kernel");
      return;
    }
    if (plan.slices > 0x7fffffff) fail(ALMC_ERR_UNSUPPORTED, "rows of ", d, " coordinates are too long for the GPU");
    const dim3 blocks(static_cast<unsigned>(plan.slices), static_cast<unsigned>(std::min(n, kMaxGridY)));
    if (!plan.partials) {  // K <= kRespBlockSoftmaxK: the forms fit the block's shared memory
      gmm_resp_slice_kernel<<<blocks, kRespBlock, sizeof(float) * tab.K, stream_>>>(tab, x, n, d, d, cur, nullptr,
                                                                                   resp);
      check_launch("gmm_resp_slice_kernel");
      return;
    }
    if (!work)
      fail(ALMC_ERR_INTERNAL, "the GMM responsibilities of ", n, " rows of ", d, " need ",
           gmm_resp_work_bytes(n, d, tab.K), " bytes of workspace and none was given");
    gmm_resp_slice_kernel<<<blocks, kRespBlock, 0, stream_>>>(tab, x, n, d, plan.slice_len, cur, work, nullptr);
    check_launch("gmm_resp_slice_kernel (partials)");
    gmm_resp_finish_kernel<<<grid(n, cb_), cb_, 0, stream_>>>(tab, work, n, plan.slices, cur, resp);
    check_launch("gmm_resp_finish_kernel");
  }
  size_t gmm_resp_work_bytes(int64_t n, int64_t d, int64_t K) const override {
    return sizeof(float) * static_cast<size_t>(gmm_resp_work_floats(gmm_resp_plan(d, K, resp_mode_), n, K));
  }

  // Short rows: the tables (when asked for), then one launch for the rest of the step.
  void analytic_prior_step(const FusedStepParams& p, const GmmPrior* g) override {
    const DeviceGuard dg(device_);
    if (p.d > kChainStepRow) {
      Backend::analytic_prior_step(p, g);
      return;
    }
    const size_t table_bytes = g ? sizeof(float) * static_cast<size_t>(2 * g->K * p.d + g->K) : 0;
    if (g && table_bytes > kChainStepTableBytes) {
      prior_tables(*g, p.d, p.cur, p.tab);
      g = nullptr;
    }
    chain_steps(p, g, true);
  }

  // Grids from launch_policy.hpp (fused_step_grid, pool_step_grid), which the host tests check.
  void fused_step(const FusedStepParams& p) override {
    if (p.n <= 0) return;  // an empty grid is a launch error
    const DeviceGuard dg(device_);
    if (p.d <= kChainStepRow) {
      chain_steps(p, nullptr, false);
      return;
    }
    const int block = eb_;
    dispatch_step_variant(p.prior, p.op.kind, [&](auto prior, auto op) {
      constexpr int P = decltype(prior)::value, O = decltype(op)::value;
      if constexpr (O == kOpDownsample) {
        const int64_t blocks = pool_blocks_per_chain(p);
        if (blocks <= 0) return;  // no pooling blocks: nothing to update, and no empty grid
        const StepGrid sg = pool_step_grid(p.n, blocks, block);
        fused_pool_kernel<P><<<dim3(sg.blocks_x, sg.blocks_y), block, 0, stream_>>>(p, static_cast<int>(blocks));
        check_launch("fused_pool_kernel");
      } else {
        const StepGrid sg = fused_step_grid(p.n, p.d, block);
        fused_step_kernel<P, O><<<dim3(sg.blocks_x, sg.blocks_y), block, 0, stream_>>>(p, sg.flat);
        check_launch("fused_step_kernel");
      }
    });
  }

  void analytic_score(const FusedStepParams& p, float* out) override {
    const DeviceGuard dg(device_);
    analytic_score_kernel<<<grid(p.n * p.d, eb_), eb_, 0, stream_>>>(p, out);
    check_launch("analytic_score_kernel");
  }

  void op_forward(const LocalOp& op, const MatrixOp& mat, const float* x, float* out, int64_t n, int64_t d, int64_t m,
                  int64_t chain0, int64_t cpm) override {
    const DeviceGuard dg(device_);
    if (mat.A) {
      // Column-major view: out^T [m, rows] = A [m, d] (stored as A^T, ld d) x^T [d, rows].
      dense_gemm(mat, CUBLAS_OP_T, m, d, x, d, out, m, n, chain0, cpm);
      return;
    }
    local_forward_kernel<<<grid(n * m, eb_), eb_, 0, stream_>>>(op, x, out, n, d, m);
    check_launch("local_forward_kernel");
  }

  void op_adjoint(const LocalOp& op, const MatrixOp& mat, const float* v, float* out, int64_t n, int64_t d, int64_t m,
                  int64_t chain0, int64_t cpm) override {
    const DeviceGuard dg(device_);
    if (mat.A) {
      // out^T [d, rows] = A^T [d, m] (col-major A^T, ld d) v^T [m, rows].
      dense_gemm(mat, CUBLAS_OP_N, d, m, v, m, out, d, n, chain0, cpm);
      return;
    }
    local_adjoint_kernel<<<grid(n * d, eb_), eb_, 0, stream_>>>(op, v, out, n, d, m);
    check_launch("local_adjoint_kernel");
  }

  void residual_rows(float* R, const float* y, int64_t y_div, int64_t n, int64_t m, int64_t chain0,
                     const StepScalars* cur) override {
    const DeviceGuard dg(device_);
    residual_rows_kernel<<<grid(n * m, eb_), eb_, 0, stream_>>>(R, y, y_div, n, m, chain0, cur);
    check_launch("residual_rows_kernel");
  }
  void scale_by_xs(const float* x, float* out, int64_t count, const StepScalars* cur) override {
    const DeviceGuard dg(device_);
    scale_kernel<<<grid(count, eb_), eb_, 0, stream_>>>(x, out, count, cur);
    check_launch("scale_kernel");
  }
  void row_norms_and_flags(const float* R, int64_t m, const float* x, int64_t d, int64_t n, float* norms,
                           int32_t* flags) override {
    if (n <= 0) return;  // one block per chain: an empty grid is a launch error
    const DeviceGuard dg(device_);
    row_norms_kernel<<<static_cast<unsigned>(n), kRespBlock, 0, stream_>>>(R, m, x, d, norms, flags);
    check_launch("row_norms_kernel");
  }
  void fill_random(float* x, int64_t n, int64_t d, int64_t chain0, int64_t cpm, uint64_t seed, uint64_t key,
                   float scale, bool uniform) override {
    const DeviceGuard dg(device_);
    fill_random_kernel<<<grid(n * ((d + 3) / 4), eb_), eb_, 0, stream_>>>(x, n, d, chain0, cpm, seed, key, scale,
                                                                               uniform);
    check_launch("fill_random_kernel");
  }
  void axpby_tweedie(float* x, const float* s, int64_t count, float a, float b) override {
    const DeviceGuard dg(device_);
    tweedie_kernel<<<grid(count, eb_), eb_, 0, stream_>>>(x, s, count, a, b);
    check_launch("tweedie_kernel");
  }
  void copy_picked(const float* x, float* out, const int64_t* pick, int64_t first_step, int64_t n, int64_t d,
                   const StepScalars* cur) override {
    const DeviceGuard dg(device_);
    copy_picked_kernel<<<grid(n * d, eb_), eb_, 0, stream_>>>(x, out, pick, first_step, n, d, cur);
    check_launch("copy_picked_kernel");
  }
  void xgp_step_aux(float* ych, int64_t n, int64_t m, int64_t chain0, int64_t cpm, uint64_t seed,
                    const StepScalars* cur) override {
    const DeviceGuard dg(device_);
    xgp_aux_kernel<<<grid(n * ((m + 3) / 4), eb_), eb_, 0, stream_>>>(ych, n, m, chain0, cpm, seed, cur);
    check_launch("xgp_aux_kernel");
  }
  void add_log_density(const PriorTables& tab, const StepScalars* cur, const float* x, int64_t n, int64_t d,
                       double sign, double* acc) override {
    const DeviceGuard dg(device_);
    log_density_kernel<<<grid(n, cb_), cb_, 0, stream_>>>(tab, cur, x, n, d, sign, acc);
    check_launch("log_density_kernel");
  }
  void gather_rows(const float* src, float* dst, const int64_t* idx, int64_t n, int64_t d) override {
    const DeviceGuard dg(device_);
    gather_rows_kernel<<<grid(n * d, eb_), eb_, 0, stream_>>>(src, dst, idx, n, d);
    check_launch("gather_rows_kernel");
  }
  void mean_std(const float* x, int64_t n_meas, int64_t cpm, int64_t d, float* mean, float* std) override {
    const DeviceGuard dg(device_);
    mean_std_kernel<<<grid(n_meas * d, eb_), eb_, 0, stream_>>>(x, n_meas, cpm, d, mean, std);
    check_launch("mean_std_kernel");
  }

  std::shared_ptr<void> device_scope() override { return std::make_shared<DeviceGuard>(device_); }
  bool graphs_supported() const override { return true; }
  bool capturing() const override {
    const DeviceGuard dg(device_);
    cudaStreamCaptureStatus s = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream_, &s) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return s != cudaStreamCaptureStatusNone;
  }
  // On this backend's stream with its cuBLAS handle (bound to that stream) and workspace.
  onnx::OpKernels& onnx_kernels() override { return *onnx_; }
  void capture_begin() override {
    const DeviceGuard dg(device_);
    ALMC_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  }
  GraphHandle* capture_end() override {
    const DeviceGuard dg(device_);
    cudaGraph_t graph = nullptr;
    ALMC_CUDA_TRY(cudaStreamEndCapture(stream_, &graph));
    auto* h = new GraphHandle;
    const cudaError_t e = cudaGraphInstantiate(&h->exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
      delete h;
      cuda_check(e, "cudaGraphInstantiate");
    }
    return h;
  }
  void graph_launch(GraphHandle* h) override {
    const DeviceGuard dg(device_);
    ALMC_CUDA_TRY(cudaGraphLaunch(h->exec, stream_));
  }
  void graph_destroy(GraphHandle* h) noexcept override {
    if (!h) return;
    const DeviceGuard dg(device_, std::nothrow);
    if (h->exec) cudaGraphExecDestroy(h->exec);
    delete h;
  }

 private:
  // Everything the constructor makes, in reverse order; safe on a partly made backend.
  void release() noexcept {
    onnx_.reset();
    if (blas_) cublas().destroy(blas_);
    blas_ = nullptr;
    if (blas_ws_) cudaFree(blas_ws_);
    blas_ws_ = nullptr;
    if (own_stream_) cudaStreamDestroy(stream_);
    own_stream_ = false;
  }

  // What the launch helpers use, read from the device once (launch_policy.hpp): the table's row
  // for the architecture the kernels were compiled for on this device (their PTX version, as the
  // runtime reports it), SM count, threads per SM, L2 size. The kernels' __launch_bounds__ came
  // from the same row in their device pass; their attributes confirm it here, so that a table
  // edited for one side only fails at once instead of at the first launch.
  void read_launch_policy(const cudaDeviceProp& prop) {
    DeviceLaunchInfo dev;
    dev.cc_major = prop.major;
    dev.cc_minor = prop.minor;
    int l2 = 0;
    ALMC_CUDA_TRY(cudaDeviceGetAttribute(&dev.sm_count, cudaDevAttrMultiProcessorCount, device_));
    ALMC_CUDA_TRY(cudaDeviceGetAttribute(&dev.max_threads_per_sm, cudaDevAttrMaxThreadsPerMultiProcessor, device_));
    ALMC_CUDA_TRY(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device_));
    dev.l2_bytes = l2;
    cudaFuncAttributes step{}, chain{}, resp{};
    ALMC_CUDA_TRY(cudaFuncGetAttributes(&step, fused_step_kernel<kPriorGmm, kOpIdentity>));
    ALMC_CUDA_TRY(cudaFuncGetAttributes(&chain, chain_step_kernel<kPriorGmm, kOpIdentity>));
    ALMC_CUDA_TRY(cudaFuncGetAttributes(&resp, gmm_resp_slice_kernel));
    dev.compiled_arch = step.ptxVersion;
    policy_ = select_launch_policy(dev);
    eb_ = policy_.arch.elementwise_block;
    cb_ = policy_.arch.chain_block;
    if (step.maxThreadsPerBlock < eb_ || chain.maxThreadsPerBlock < cb_ || resp.maxThreadsPerBlock < kRespBlock)
      fail(ALMC_ERR_INTERNAL, "launch policy row for compute_", dev.compiled_arch, " asks for blocks of ", eb_, " / ", cb_,
           " / ", kRespBlock, " threads but the kernels allow ", step.maxThreadsPerBlock, " / ", chain.maxThreadsPerBlock,
           " / ", resp.maxThreadsPerBlock);
  }
  unsigned grid(int64_t work, int block) const { return grid_stride_blocks(policy_, work, block); }

  // (The private helpers below run inside guarded methods: the device is current.)
  // The per-chain step of every chain; with g, the tables at the step's level are computed by the
  // kernel itself (they must fit kChainStepTableBytes).
  void chain_steps(const FusedStepParams& p, const GmmPrior* g, bool resp_due) {
    if (p.n <= 0) return;
    const GmmPrior prior_g = g ? *g : GmmPrior{};
    const size_t smem = g ? sizeof(float) * static_cast<size_t>(2 * g->K * p.d + g->K) : 0;
    dispatch_step_variant(p.prior, p.op.kind, [&](auto prior, auto op) {
      constexpr int P = decltype(prior)::value, O = decltype(op)::value;
      chain_step_kernel<P, O><<<grid(p.n, cb_), cb_, smem, stream_>>>(p, prior_g, g != nullptr,
                                                                                                 resp_due);
      check_launch("chain_step_kernel");
    });
  }

  // out^T [rows_out, n] = op(A) [rows_out, inner] in^T [inner, n] for the rows of each
  // measurement with its own matrix (or all rows with a shared one). One measurement per batch
  // entry of a strided-batched GEMM when the rows cover whole measurements (the usual case: one
  // launch instead of n_meas); otherwise one GEMM per measurement's run of rows.
  void dense_gemm(const MatrixOp& mat, cublasOperation_t op_a, int64_t rows_out, int64_t inner, const float* in,
                  int64_t ld_in, float* out, int64_t ld_out, int64_t n, int64_t chain0, int64_t cpm) {
    const float one = 1.f, zero = 0.f;
    // The math mode is read when a GEMM is issued (and so when it is captured into a graph).
    ALMC_CUBLAS_TRY(cublas().set_math_mode(blas_, mat.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    auto gemm = [&](const float* A, int64_t r0, int64_t rows) {
      ALMC_CUBLAS_TRY(cublas().sgemm(blas_, op_a, CUBLAS_OP_N, static_cast<int>(rows_out), static_cast<int>(rows),
                                  static_cast<int>(inner), &one, A, static_cast<int>(mat.d), in + r0 * ld_in,
                                  static_cast<int>(ld_in), &zero, out + r0 * ld_out, static_cast<int>(ld_out)));
    };
    if (mat.n_mats == 1) {
      gemm(mat.A, 0, n);
      return;
    }
    if (chain0 % cpm == 0 && n % cpm == 0) {
      const long long md = mat.m * mat.d;
      ALMC_CUBLAS_TRY(cublas().sgemm_strided_batched(
          blas_, op_a, CUBLAS_OP_N, static_cast<int>(rows_out), static_cast<int>(cpm), static_cast<int>(inner), &one,
          mat.A + (chain0 / cpm) * md, static_cast<int>(mat.d), md, in, static_cast<int>(ld_in), cpm * ld_in, &zero, out,
          static_cast<int>(ld_out), cpm * ld_out, static_cast<int>(n / cpm)));
      return;
    }
    int64_t r = 0;
    while (r < n) {
      const int64_t meas = (chain0 + r) / cpm;
      const int64_t end = std::min(n, (meas + 1) * cpm - chain0);
      gemm(mat.A + meas * mat.m * mat.d, r, end - r);
      r = end;
    }
  }

  static constexpr size_t kBlasWorkspace = size_t(32) << 20;
  int device_;
  GmmRespMode resp_mode_ = GmmRespMode::Split;
  LaunchPolicy policy_{};
  int eb_ = 0, cb_ = 0;  // policy_'s elementwise and per-chain block sizes
  std::string name_;
  cudaStream_t stream_ = nullptr;
  bool own_stream_ = false;
  cublasHandle_t blas_ = nullptr;
  void* blas_ws_ = nullptr;
  std::unique_ptr<onnx::OpKernels> onnx_;  // uses stream_ and blas_; owns neither
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device, void* stream) {
  return std::make_unique<CudaBackend>(device, stream);
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace almc
