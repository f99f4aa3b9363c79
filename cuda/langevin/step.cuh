// The fused Langevin step, one unit of work at a time, as host/device functions: the CUDA
// backend calls them from kernels (one thread per unit), the CPU backend from OpenMP loops.
//
//   x <- post * ( x + h (s(x) + lik * g(x)) + sqrt(2h) xi )
//
// s is the prior score at the step's level (or -x during the warm start), g the raw likelihood
// term A^T (y - xs A x): computed here for the local operators, read from a buffer otherwise.
#pragma once

#include "cuda/common.cuh"
#include "cuda/langevin/params.cuh"
#include "cuda/rng.cuh"

#include <math.h>

namespace almc {

// ---------------------------------------------------------------- the analytic prior at a level

// OU-noised variance of a component's coordinate: e^{-2t} var + 1 - e^{-2t}.
ALMC_HD float ou_var(float var, float e2) { return fmaf(e2, var, 1.f - e2); }

struct LevelConsts {
  float a, e2;  // e^{-t}, e^{-2t}
};

ALMC_HD LevelConsts level_consts(const StepScalars& cur) {
  LevelConsts l;
  l.a = expf(-cur.t);
  l.e2 = l.a * l.a;
  return l;
}

// Entry i of the [K, d] tables at level l (ALGORITHMS.md T1/T4): e^{-t} mu and 1 / S_t.
ALMC_HD void prior_table_entry(const GmmPrior& g, const LevelConsts& l, int64_t i, const PriorTables& t) {
  t.amu[i] = l.a * g.mu[i];
  t.inv_s[i] = 1.f / ou_var(g.var[i], l.e2);
}

// One term of logdet[k] = sum_j log S_k,j (summed in double by the caller).
ALMC_HD double prior_logdet_term(const GmmPrior& g, const LevelConsts& l, int64_t i) {
  return log(static_cast<double>(ou_var(g.var[i], l.e2)));
}

// One coordinate's share of component k's quadratic form (x - e^{-t} mu)^2 / S.
ALMC_HD float gmm_quad_term(float x, float amu, float inv_s) {
  const float e = x - amu;
  return e * e * inv_s;
}

// Component k's log weight in the mixture at x, up to -d/2 log(2 pi): log w_k - (q_k + logdet_k) / 2
// for its quadratic form q_k (float in the responsibilities, double in the SMC weights).
template <class T>
ALMC_HD T gmm_log_term(const PriorTables& t, int64_t k, T q) {
  return static_cast<T>(t.log_w[k]) - static_cast<T>(0.5) * (q + static_cast<T>(t.logdet[k]));
}

// Turns the K quadratic forms q[k] of one chain into responsibilities, in place: log-sum-exp of
// log w_k - (q_k + logdet_k) / 2.
ALMC_HD void gmm_softmax(const PriorTables& t, float* q) {
  float mx = -INFINITY;
  for (int64_t k = 0; k < t.K; ++k) {
    q[k] = gmm_log_term(t, k, q[k]);
    mx = fmaxf(mx, q[k]);
  }
  float z = 0.f;
  for (int64_t k = 0; k < t.K; ++k) z += (q[k] = expf(q[k] - mx));
  const float inv_z = 1.f / z;
  for (int64_t k = 0; k < t.K; ++k) q[k] *= inv_z;
}

// log p_t(x) + d/2 log(2 pi) of one chain's row x at the step's level (ALGORITHMS.md T4, Sec. 9):
// the analytic prior's log-density from its tables, a log-sum-exp over components computed in one
// pass (running maximum) with each quadratic form summed in double; during the warm start the
// target's prior is N(0, I), so -||x||^2 / 2. The SMC weights are differences of these.
ALMC_HD double prior_log_density(const PriorTables& t, const StepScalars& cur, const float* x, int64_t d) {
  if (cur.kind == kStepWarm) {
    double s = 0.0;
    for (int64_t j = 0; j < d; ++j) s += static_cast<double>(x[j]) * x[j];
    return -0.5 * s;
  }
  double mx = -INFINITY, z = 0.0;
  for (int64_t k = 0; k < t.K; ++k) {
    double q = 0.0;
    for (int64_t j = 0; j < d; ++j) q += gmm_quad_term(x[j], t.amu[k * d + j], t.inv_s[k * d + j]);
    const double l = gmm_log_term(t, k, q);
    if (l > mx) {
      z = z * exp(mx - l) + 1.0;  // exp(-inf) = 0 on the first finite term
      mx = l;
    } else if (mx > -INFINITY) {  // a zero-weight component (log w = -inf) adds nothing
      z += exp(l - mx);
    }
  }
  return mx + log(z);
}

// Component k's share of the score at one coordinate: -(x - e^{-t} mu) / S.
ALMC_HD float component_score(float x, float amu, float inv_s) { return (amu - x) * inv_s; }

// The analytic score at coordinate j of local chain c: sum_k r_k * component score.
ALMC_HD float analytic_score(const FusedStepParams& p, int64_t c, int64_t j, float xv) {
  const PriorTables& t = p.tab;
  if (p.prior == kPriorGaussian) return component_score(xv, t.amu[j], t.inv_s[j]);
  const float* r = p.resp + c * t.K;
  float s = 0.f;
  for (int64_t k = 0; k < t.K; ++k) s += r[k] * component_score(xv, t.amu[k * p.d + j], t.inv_s[k * p.d + j]);
  return s;
}

// The prior's score at the step's level: -x during the warm start (the score of N(0, I)).
ALMC_HD float prior_score(const FusedStepParams& p, const StepScalars& cur, int64_t c, int64_t j, float xv) {
  if (cur.kind == kStepWarm) return -xv;
  if (p.prior == kPriorBuffer) return p.score[c * p.d + j];
  return analytic_score(p, c, j, xv);
}

// ---------------------------------------------------------------- the update

// The Langevin update of one coordinate: post * (x + h (s + lik g) + sqrt(2h) xi).
ALMC_HD float langevin_update(const StepScalars& cur, float xv, float s, float g, float xi) {
  return cur.post * (xv + cur.h * (s + cur.lik * g) + cur.noise * xi);
}

// The raw likelihood term g = A^T (y - xs A x) at coordinate j of local chain c: computed for the
// elementwise operators, read from the gradient buffer for the others, 0 without a likelihood.
// yrow: the chain's measurement row. No load happens on a path that does not need it, so callers
// that fix p.op.kind at compile time get branch-free, vectorisable code.
ALMC_HD float step_grad(const FusedStepParams& p, const StepScalars& cur, const float* yrow, int64_t c, int64_t j,
                       float xv) {
  switch (p.op.kind) {
    case kOpNone: return 0.f;
    case kOpIdentity: return yrow[j] - cur.xs * xv;
    case kOpMask: {
      const float mk = p.op.mask[j];
      return mk * (yrow[j] - mk * cur.xs * xv);
    }
    default: return p.g[c * p.d + j];
  }
}

// The whole step at coordinate j of local chain c for every operator but average pooling, given
// the prior score s and the normal xi.
ALMC_HD float step_element(const FusedStepParams& p, const StepScalars& cur, const float* yrow, int64_t c, int64_t j,
                           float xv, float s, float xi) {
  return langevin_update(cur, xv, s, step_grad(p, cur, yrow, c, j, xv), xi);
}

// The measurement row chain c reads (null without a likelihood).
ALMC_HD const float* measurement_row(const FusedStepParams& p, int64_t c) {
  return p.y ? p.y + ((p.chain0 + c) / p.y_div - p.y_row0) * p.m : nullptr;
}

// The likelihood term g = A^T (y - xs A x) = (y_b - xs mean_b(x)) / f^2 that the f x f pixels of
// pooling block (ch, br, bc) of chain c share (block index (ch H/f + br) W/f + bc), from x before
// the update. yrow: the chain's measurement row (measurement_row), which callers looping over
// blocks find once (it costs a division). F > 0 states the pooling factor p.op.f at compile time,
// so a loop over blocks has fixed inner loops and vectorises.
template <int64_t F = 0>
ALMC_HD float pool_block_grad_row(const FusedStepParams& p, const StepScalars& cur, const float* yrow, int64_t c,
                                  int64_t ch, int64_t br, int64_t bc) {
  const int64_t f = F > 0 ? F : p.op.f, W = p.op.W, H = p.op.H;
  const float* xb = p.x + c * p.d + ch * H * W + br * f * W + bc * f;
  float sum = 0.f;
  for (int64_t rr = 0; rr < f; ++rr)
    for (int64_t cc = 0; cc < f; ++cc) sum += xb[rr * W + cc];
  const float inv_area = 1.f / static_cast<float>(f * f);
  const float yb = yrow[(ch * (H / f) + br) * (W / f) + bc];
  return (yb - cur.xs * sum * inv_area) * inv_area;
}

ALMC_HD float pool_block_grad(const FusedStepParams& p, const StepScalars& cur, int64_t c, int64_t ch, int64_t br,
                              int64_t bc) {
  return pool_block_grad_row(p, cur, measurement_row(p, c), c, ch, br, bc);
}

// The step for the f x f pixels of pooling block `blk` (index into C x H/f x W/f) of chain c.
ALMC_HD void fused_pool_block(const FusedStepParams& p, const StepScalars& cur, int64_t c, int64_t blk) {
  const int64_t f = p.op.f, W = p.op.W, H = p.op.H;
  const int64_t Wo = W / f, Ho = H / f;
  const int64_t ch = blk / (Ho * Wo), rem = blk % (Ho * Wo);
  const int64_t r0 = (rem / Wo) * f, c0 = (rem % Wo) * f;
  float* xr = p.x + c * p.d + ch * H * W;
  const float g = pool_block_grad(p, cur, c, ch, rem / Wo, rem % Wo);
  const uint64_t stream = noise_stream(p.chain0 + c, p.cpm);
  int64_t cached = -1;
  float4 xi4 = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int64_t rr = 0; rr < f; ++rr) {
    for (int64_t cc = 0; cc < f; ++cc) {
      const int64_t jl = (r0 + rr) * W + c0 + cc;  // within the channel
      const int64_t j = ch * H * W + jl;           // within the chain
      if (j / 4 != cached) {
        cached = j / 4;
        xi4 = philox_normal4(p.seed, stream, static_cast<uint64_t>(cur.step), static_cast<uint64_t>(cached));
      }
      const float xv = xr[jl];
      xr[jl] = langevin_update(cur, xv, prior_score(p, cur, c, j, xv), g, component(xi4, static_cast<int>(j % 4)));
    }
  }
}

// Pooling blocks per chain (the downsampling operator's unit of work).
inline int64_t pool_blocks_per_chain(const FusedStepParams& p) { return p.op.C * (p.op.H / p.op.f) * (p.op.W / p.op.f); }

// Mean and (n - 1) standard deviation across the cpm chains of measurement q at coordinate j, in
// double and in chain order, so results do not depend on how the work is spread.
ALMC_HD void chain_mean_std(const float* x, int64_t cpm, int64_t d, int64_t q, int64_t j, float* mean, float* std) {
  const float* xq = x + q * cpm * d;
  double s = 0.0;
  for (int64_t c = 0; c < cpm; ++c) s += xq[c * d + j];
  const double mu = s / static_cast<double>(cpm);
  double v = 0.0;
  for (int64_t c = 0; c < cpm; ++c) {
    const double e = xq[c * d + j] - mu;
    v += e * e;
  }
  if (mean) mean[q * d + j] = static_cast<float>(mu);
  if (std) std[q * d + j] = cpm > 1 ? static_cast<float>(sqrt(v / static_cast<double>(cpm - 1))) : 0.f;
}

// ---------------------------------------------------------------- operators, element by element

// The blur at pixel (r, cl) of one channel image img [H, W]: dir = 1 is the forward correlation
// with the centred kernel, sum over (a, b) of k[a, b] img[r + a - kh/2, cl + b - kw/2]; dir = -1 is
// its adjoint, img[r - a + kh/2, cl - b + kw/2]; zero outside the image. Terms in (a, b) order.
// Checked = false skips the image-bounds tests, for pixels whose whole window lies inside the image
// (blur_interior): the same terms in the same order, so the same bits. KH, KW > 0 fix the kernel's
// size at compile time (it must then equal op.kh, op.kw), so that the loops unroll.
template <bool Checked, int KH = 0, int KW = 0>
ALMC_HD float blur_at(const LocalOp& op, const float* img, int64_t r, int64_t cl, int64_t dir) {
  const int64_t kh = KH > 0 ? KH : op.kh, kw = KW > 0 ? KW : op.kw;
  const int64_t ph = kh / 2, pw = kw / 2;
  float s = 0.f;
  for (int64_t a = 0; a < kh; ++a) {
    const int64_t rr = r + dir * (a - ph);
    if (Checked && (rr < 0 || rr >= op.H)) continue;
    for (int64_t b = 0; b < kw; ++b) {
      const int64_t cc = cl + dir * (b - pw);
      if (Checked && (cc < 0 || cc >= op.W)) continue;
      s += op.kernel[a * kw + b] * img[rr * op.W + cc];
    }
  }
  return s;
}

// The pixels [lo, hi) along an axis of n pixels whose window (kernel size k, direction dir) lies
// inside the image; empty when the kernel is longer than the axis.
struct BlurSpan {
  int64_t lo, hi;
};
ALMC_HD BlurSpan blur_interior(int64_t n, int64_t k, int64_t dir) {
  const int64_t below = dir > 0 ? k / 2 : k - 1 - k / 2;  // how far the window reaches below a pixel
  const int64_t above = k - 1 - below;
  const int64_t lo = below, hi = n - above;
  return hi > lo ? BlurSpan{lo, hi} : BlurSpan{0, 0};
}

// (A x)_i for the local and blur operators; x is one chain's row.
ALMC_HD float local_forward(const LocalOp& op, const float* x, int64_t i) {
  switch (op.kind) {
    case kOpIdentity: return x[i];
    case kOpMask: return op.mask[i] * x[i];
    case kOpDownsample: {
      const int64_t Wo = op.W / op.f, Ho = op.H / op.f;
      const int64_t ch = i / (Ho * Wo), rem = i % (Ho * Wo);
      const int64_t r0 = (rem / Wo) * op.f, c0 = (rem % Wo) * op.f;
      const float* xc = x + ch * op.H * op.W;
      float s = 0.f;
      for (int64_t rr = 0; rr < op.f; ++rr)
        for (int64_t cc = 0; cc < op.f; ++cc) s += xc[(r0 + rr) * op.W + c0 + cc];
      return s / static_cast<float>(op.f * op.f);
    }
    case kOpBlur: {
      const int64_t hw = op.H * op.W, ch = i / hw, r = (i % hw) / op.W, cl = i % op.W;
      return blur_at<true>(op, x + ch * hw, r, cl, 1);
    }
    default: return 0.f;
  }
}

// (A^T v)_j for the same operators; v is one chain's row of length m.
ALMC_HD float local_adjoint(const LocalOp& op, const float* v, int64_t j) {
  switch (op.kind) {
    case kOpIdentity: return v[j];
    case kOpMask: return op.mask[j] * v[j];
    case kOpDownsample: {
      const int64_t hw = op.H * op.W, ch = j / hw, r = (j % hw) / op.W, cl = j % op.W;
      const int64_t Wo = op.W / op.f, Ho = op.H / op.f;
      return v[ch * Ho * Wo + (r / op.f) * Wo + cl / op.f] / static_cast<float>(op.f * op.f);
    }
    case kOpBlur: {
      const int64_t hw = op.H * op.W, ch = j / hw, r = (j % hw) / op.W, cl = j % op.W;
      return blur_at<true>(op, v + ch * hw, r, cl, -1);
    }
    default: return 0.f;
  }
}

}  // namespace almc
