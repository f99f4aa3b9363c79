// The whole Langevin step of one chain in one function, for short rows (tiny problems): the GMM
// responsibilities, the prior score, the likelihood term of the local operators (or the gradient
// buffer), the normals and the update, with the row and its scratch in registers or L1. Both
// backends call it: the CPU over ranges of chains per thread (host/backend/cpu_backend.cpp), the
// CUDA backend one thread per chain (cuda/cuda_backend.cu). Built from the shared pieces of
// step.cuh and rng.cuh, in the order of the CPU's multi-pass step (responsibilities summed in
// eight coordinate lanes, the score a component at a time from 0, the update as step_element),
// so a chain's samples are the same bits whichever path the CPU takes.
#pragma once

#include "cuda/langevin/step.cuh"

namespace almc {

// Longest row the per-chain step takes: callers give it scratch rows of this many floats (a
// multiple of 4: the normals come in whole groups of four).
constexpr int64_t kChainStepMaxD = 64;

// ---------------------------------------------------------------- responsibilities, lane order

// Adds coordinates j0 .. j1 of one component's quadratic form (x - e^{-t} mu)^2 / S to its eight
// lane sums: coordinate j goes to lane j % 8, in coordinate order (j0 a multiple of 8), so the
// sums do not depend on how the row is cut into pieces that start at multiples of 8.
ALMC_HD_INLINE void gmm_quad_lanes(const float* x, const float* amu, const float* inv_s, int64_t j0, int64_t j1, float* a) {
  int64_t j = j0;
  for (; j + 8 <= j1; j += 8)
    for (int e = 0; e < 8; ++e) a[e] += gmm_quad_term(x[j + e], amu[j + e], inv_s[j + e]);
  for (; j < j1; ++j) a[j % 8] += gmm_quad_term(x[j], amu[j], inv_s[j]);
}

// The quadratic form from its eight lane sums, lane 0 first.
ALMC_HD float gmm_quad_from_lanes(const float* a) {
  float q = 0.f;
  for (int e = 0; e < 8; ++e) q += a[e];
  return q;
}

// ---------------------------------------------------------------- the prior score of a row piece

// Components per pass of the prior score: each s[j] still adds its K terms in component order.
constexpr int kScoreCompGroup = 4;

// s[0 .. len) = the prior score at coordinates j0 .. j0 + len of local chain c: -x during the warm
// start, the score buffer, or the analytic score summed from 0 a component at a time (weight 1 for
// the Gaussian prior, the chain's responsibilities p.resp for the GMM), in contiguous passes of up
// to kScoreCompGroup components that a CPU compiler vectorises.
ALMC_HD_INLINE void row_prior_score(const FusedStepParams& p, const StepScalars& cur, int64_t c, int64_t j0,
                                    int64_t len, float* s) {
  const float* x = p.x + c * p.d;
  if (cur.kind == kStepWarm || p.prior == kPriorBuffer) {
    for (int64_t j = 0; j < len; ++j) s[j] = prior_score(p, cur, c, j0 + j, x[j0 + j]);
    return;
  }
  const PriorTables& t = p.tab;
  const float* xt = x + j0;
  for (int64_t j = 0; j < len; ++j) s[j] = 0.f;
  int64_t k = 0;
  for (; k + kScoreCompGroup <= t.K; k += kScoreCompGroup) {
    float r[kScoreCompGroup];
    for (int g = 0; g < kScoreCompGroup; ++g) r[g] = p.prior == kPriorGaussian ? 1.f : p.resp[c * t.K + k + g];
    const float* amu = t.amu + k * p.d + j0;
    const float* inv = t.inv_s + k * p.d + j0;
    const int64_t dd = p.d;
    for (int64_t j = 0; j < len; ++j) {
      float sj = s[j];
      for (int g = 0; g < kScoreCompGroup; ++g) sj += r[g] * component_score(xt[j], amu[g * dd + j], inv[g * dd + j]);
      s[j] = sj;
    }
  }
  for (; k < t.K; ++k) {
    const float r = p.prior == kPriorGaussian ? 1.f : p.resp[c * t.K + k];
    const float* amu = t.amu + k * p.d + j0;
    const float* inv = t.inv_s + k * p.d + j0;
    for (int64_t j = 0; j < len; ++j) s[j] += r * component_score(xt[j], amu[j], inv[j]);
  }
}

// ---------------------------------------------------------------- the step of one chain

// Normals of coordinate groups g0 .. g0 + n of one stream, out[4 i + e] = component e of group
// g0 + i: philox_normal4 a group at a time (the device's way; the CPU passes its vectorised
// block, host/backend/cpu_noise.hpp, which gives the same bits).
struct GroupNormals {
  ALMC_HD void operator()(uint64_t seed, uint64_t stream, uint64_t step, uint64_t g0, int64_t n, float* out) const {
    for (int64_t i = 0; i < n; ++i) {
      const float4 v = philox_normal4(seed, stream, step, g0 + static_cast<uint64_t>(i));
      out[4 * i + 0] = v.x;
      out[4 * i + 1] = v.y;
      out[4 * i + 2] = v.z;
      out[4 * i + 3] = v.w;
    }
  }
};

// Scratch rows of one chain's step (kChainStepMaxD floats each): the normals, the prior score,
// and the likelihood term (average pooling only).
struct ChainScratch {
  float* xi;
  float* s;
  float* g;
};

// The whole step of local chain c (p.d <= kChainStepMaxD), (Prior, Op) fixed at compile time:
//   1. with resp_due, the GMM responsibilities at the tables' level into p.resp (else p.resp holds
//      them already, or the prior is not a GMM, or this is a warm step),
//   2. the chain's normals (normals(seed, stream, step, first group, groups, out)),
//   3. the prior score, then
//   4. the update with the likelihood term: step_element for the elementwise operators and the
//      gradient buffer (Op kOpBlur stands for every operator that fills it), each pooling block's
//      pool_block_grad (from x before the update) for average pooling.
template <int32_t Prior, int32_t Op, class Normals>
ALMC_HD_INLINE void chain_step(const FusedStepParams& params, const StepScalars& cur, int64_t c, bool resp_due,
                               const Normals& normals, const ChainScratch& w) {
  FusedStepParams p = params;
  p.prior = Prior;
  p.op.kind = Op;
  const int64_t d = p.d;
  float* x = p.x + c * d;
  if (Prior == kPriorGmm && resp_due && cur.kind != kStepWarm) {
    const PriorTables& t = p.tab;
    float* r = p.resp + c * t.K;
    for (int64_t k = 0; k < t.K; ++k) {
      float a[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      gmm_quad_lanes(x, t.amu + k * d, t.inv_s + k * d, 0, d, a);
      r[k] = gmm_quad_from_lanes(a);
    }
    gmm_softmax(t, r);
  }
  normals(p.seed, noise_stream(p.chain0 + c, p.cpm), static_cast<uint64_t>(cur.step), 0, (d + 3) / 4, w.xi);
  row_prior_score(p, cur, c, 0, d, w.s);
  if (Op == kOpDownsample) {
    const int64_t f = p.op.f, H = p.op.H, W = p.op.W;
    for (int64_t ch = 0; ch < p.op.C; ++ch)
      for (int64_t br = 0; br < H / f; ++br)
        for (int64_t bc = 0; bc < W / f; ++bc) {
          const float gb = pool_block_grad(p, cur, c, ch, br, bc);
          for (int64_t rr = 0; rr < f; ++rr)
            for (int64_t cc = 0; cc < f; ++cc) w.g[ch * H * W + (br * f + rr) * W + bc * f + cc] = gb;
        }
    for (int64_t j = 0; j < d; ++j) x[j] = langevin_update(cur, x[j], w.s[j], w.g[j], w.xi[j]);
  } else {
    const float* yrow = measurement_row(p, c);
    for (int64_t j = 0; j < d; ++j) x[j] = step_element(p, cur, yrow, c, j, x[j], w.s[j], w.xi[j]);
  }
}

}  // namespace almc
