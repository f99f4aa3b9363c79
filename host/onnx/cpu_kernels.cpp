// CPU launchers of the ONNX executor: the shared operators (cuda/onnx/ops.cuh) called row by row,
// and OpenBLAS GEMMs. A step runs on the calling thread only: the executor parallelises over
// blocks of chains (executor.cpp), so the result of a chain never depends on the thread count.
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "cuda/onnx/ops.cuh"
#include "host/onnx/plan.hpp"

namespace almc::onnx {
namespace {

constexpr int kChunk = 256;  // elementwise block: the program's registers stay in L1

// C[M,N] = alpha op(A) op(B) + beta C, row-major, on the calling thread (see ensure_serial_blas).
void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
           int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), alpha, A,
              int(lda), B, int(ldb), beta, C, int(ldc));
}

void run_ew(const EwParams& p) {
  alignas(64) float regs[kMaxEwRegs][kChunk];
  for (int64_t start = 0; start < p.total; start += kChunk)
    ew_range<kChunk>(p, start, int(std::min<int64_t>(kChunk, p.total - start)), regs);
}

void run_gemm(const GemmParams& p) {
  for (int64_t b = 0; b < p.batch; ++b) {
    int64_t oa, ob, oc;
    gemm_batch_offsets(p, b, oa, ob, oc);
    float* C = p.C + oc;
    float beta = 0.f;
    if (p.bias_kind != BIAS_NONE) {
      beta = 1.f;
      for (int64_t m = 0; m < p.M; ++m) gemm_bias_range(p, C, m, 0, p.N);
    }
    sgemm(p.trans_a, p.trans_b, p.M, p.N, p.K, p.alpha, p.A + oa, p.lda, p.B + ob, p.ldb, beta, C, p.ldc);
    if (p.act != EW_COPY)
      for (int64_t m = 0; m < p.M; ++m) act_range(p.act, p.act_alpha, C + m * p.ldc, 0, p.N);
  }
}

void run_conv(const ConvParams& p) {
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, OHW = p.OH * p.OW;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = std::min(p.chunk, p.N - n0), cols = B * OHW;
    // A 1x1 unit-stride unpadded kernel on one image reads the image itself as its columns.
    const bool direct = B == 1 && KK == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0;
    for (int64_t g = 0; g < G; ++g) {
      const float* col = p.col;
      if (direct) col = p.x + (n0 * p.C + g * Cg) * p.H * p.W;
      else
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t kh = 0; kh < p.KH; ++kh)
            for (int64_t kw = 0; kw < p.KW; ++kw)
              for (int64_t b = 0; b < B; ++b)
                for (int64_t oh = 0; oh < p.OH; ++oh) im2col_row(p, p.col, n0, B, g, c, kh, kw, b, oh, 0, p.OW);
      // The GEMM result [Mg, B*OHW]: for one image it is the output itself, finished in place.
      float* tmp = B == 1 ? p.y + (n0 * p.M + g * Mg) * OHW : p.col + Cg * KK * cols;
      sgemm(false, false, Mg, cols, Cg * KK, 1.f, p.w + g * Mg * Cg * KK, Cg * KK, col, cols, 0.f, tmp, cols);
      for (int64_t r = 0; r < Mg * B; ++r) conv_out_range(p, tmp, n0, B, g, r, 0, OHW);
    }
  }
}

void run_conv_transpose(const ConvParams& p) {
  const int64_t G = p.group, Cg = p.C / G, Mg = p.M / G, KK = p.KH * p.KW, HW = p.H * p.W;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.chunk) {
    const int64_t B = std::min(p.chunk, p.N - n0), cols = B * HW;
    float* xt = p.col;               // [Cg, B*HW]
    float* col = p.col + Cg * cols;  // [Mg*KK, B*HW]
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t r = 0; r < Cg * B; ++r) regroup_range(p, xt, n0, B, g, r, 0, HW);
      // weight [C, Mg, KH, KW]: the group's block is [Cg, Mg*KK]; col = block^T xt.
      sgemm(true, false, Mg * KK, cols, Cg, 1.f, p.w + g * Cg * Mg * KK, Mg * KK, xt, cols, 0.f, col, cols);
      for (int64_t r = 0, rows = B * Mg * p.OH; r < rows; ++r) col2im_range(p, col, n0, B, g, r, 0, p.OW);
    }
  }
}

void run_softmax(const SoftmaxParams& p) {
  float v[kLanes];
  for (int64_t r = 0; r < p.outer * p.inner; ++r) {
    for (int l = 0; l < kLanes; ++l) v[l] = softmax_lane_max(p, r, l);
    const float mx = lane_tree_max(v);
    for (int l = 0; l < kLanes; ++l) v[l] = softmax_lane_sum(p, r, l, mx);
    softmax_lane_write(p, r, 0, 1, mx, lane_tree_sum(v));
  }
}

void run_norm(const NormParams& p) {
  float v[kLanes];
  for (int64_t r = 0; r < p.rows; ++r) {
    for (int l = 0; l < kLanes; ++l) v[l] = norm_lane_sum(p, r, l);
    const float mean = norm_mean(p, lane_tree_sum(v));
    for (int l = 0; l < kLanes; ++l) v[l] = norm_lane_sq(p, r, l, mean);
    norm_write(p, r, 0, 1, mean, norm_rstd(p, lane_tree_sum(v)));
  }
}

void run_reduce(const ReduceParams& p) {
  float v[kLanes];
  for (int64_t o = 0; o < p.out_total; ++o) {
    for (int l = 0; l < kLanes; ++l) v[l] = reduce_lane_sum(p, o, l);
    p.y[o] = reduce_finish(p, lane_tree_sum(v));
  }
}

}  // namespace

template <class T>
void cpu_copy(const CopyParams& p, const T* in, T* out) {
  if (p.total <= 0) return;
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
    case StepKind::Pool:
      for (int64_t r = 0; r < s.pool.NC * s.pool.OH; ++r) pool_range(s.pool, r, 0, s.pool.OW);
      return;
    case StepKind::Resize:
      for (int64_t r = 0; r < s.resize.NC * s.resize.OH; ++r) resize_range(s.resize, r, 0, s.resize.OW);
      return;
    case StepKind::Pad:
      for (int64_t o = 0; o < s.pad.total; ++o) s.pad.y[o] = pad_at(s.pad, o);
      return;
    case StepKind::Fill: std::fill(s.fill_ptr, s.fill_ptr + s.fill_count, s.fill_value); return;
  }
}

}  // namespace almc::onnx
