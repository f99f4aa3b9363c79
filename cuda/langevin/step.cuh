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

// OU-noised variance of a component's coordinate: e^{-2t} var + 1 - e^{-2t}.
ALMC_HD float ou_var(float var, float e2) { return fmaf(e2, var, 1.f - e2); }

// Score of the analytic prior at coordinate j of chain c (ALGORITHMS.md T1/T4):
// sum_k r_k * (-(x - e^{-t} mu_k) / S_k,t).
ALMC_HD float analytic_score(const FusedStepParams& p, int64_t c, int64_t j, float xv, float a, float e2) {
  const GmmPrior& g = p.gmm;
  if (p.prior == kPriorGaussian) {
    return -(xv - a * g.mu[j]) / ou_var(g.var[j], e2);
  }
  const float* r = p.resp + c * g.K;
  float s = 0.f;
  for (int64_t k = 0; k < g.K; ++k) {
    const int64_t kj = k * p.d + j;
    s -= r[k] * (xv - a * g.mu[kj]) / ou_var(g.var[kj], e2);
  }
  return s;
}

struct LevelConsts {
  float a, e2;  // e^{-t}, e^{-2t}
};

ALMC_HD LevelConsts level_consts(const StepScalars& cur) {
  LevelConsts l;
  l.a = expf(-cur.t);
  l.e2 = l.a * l.a;
  return l;
}

ALMC_HD float prior_score(const FusedStepParams& p, const StepScalars& cur, const LevelConsts& l, int64_t c, int64_t j,
                          float xv) {
  if (cur.kind == kStepWarm) return -xv;
  if (p.prior == kPriorBuffer) return p.score[c * p.d + j];
  return analytic_score(p, c, j, xv, l.a, l.e2);
}

// The step for the four coordinates 4*grp .. 4*grp+3 of local chain c, for every operator except
// average-pool downsampling (whose gradient couples the pixels of a pooling block).
ALMC_HD void fused_group(const FusedStepParams& p, const StepScalars& cur, const LevelConsts& l, int64_t c,
                         int64_t grp) {
  const float4 xi4 = philox_normal4(p.seed, static_cast<uint64_t>(p.chain0 + c), static_cast<uint64_t>(cur.step),
                                    static_cast<uint64_t>(grp));
  const float* yrow = p.y ? p.y + ((p.chain0 + c) / p.y_div) * p.m : nullptr;
  float* xr = p.x + c * p.d;
  const int64_t j0 = grp * 4;
  for (int e = 0; e < 4; ++e) {
    const int64_t j = j0 + e;
    if (j >= p.d) break;
    const float xv = xr[j];
    float g = 0.f;
    switch (p.op.kind) {
      case kOpNone: break;
      case kOpIdentity: g = yrow[j] - cur.xs * xv; break;
      case kOpMask: {
        const float mk = p.op.mask[j];
        g = mk * (yrow[j] - mk * cur.xs * xv);
        break;
      }
      default: g = p.g[c * p.d + j]; break;
    }
    const float s = prior_score(p, cur, l, c, j, xv);
    const float xn = xv + cur.h * (s + cur.lik * g) + cur.noise * component(xi4, e);
    xr[j] = cur.post * xn;
  }
}

// The step for the f x f pixels of pooling block `blk` (index into C x H/f x W/f) of chain c:
// g = A^T (y - xs A x) = (y_b - xs mean_b(x)) / f^2 on every pixel of the block.
ALMC_HD void fused_pool_block(const FusedStepParams& p, const StepScalars& cur, const LevelConsts& l, int64_t c,
                              int64_t blk) {
  const int64_t f = p.op.f, W = p.op.W, H = p.op.H;
  const int64_t Wo = W / f, Ho = H / f;
  const int64_t ch = blk / (Ho * Wo), rem = blk % (Ho * Wo);
  const int64_t r0 = (rem / Wo) * f, c0 = (rem % Wo) * f;
  float* xr = p.x + c * p.d + ch * H * W;
  float sum = 0.f;
  for (int64_t rr = 0; rr < f; ++rr)
    for (int64_t cc = 0; cc < f; ++cc) sum += xr[(r0 + rr) * W + c0 + cc];
  const float inv_area = 1.f / static_cast<float>(f * f);
  const float yb = p.y[((p.chain0 + c) / p.y_div) * p.m + blk];
  const float g = (yb - cur.xs * sum * inv_area) * inv_area;
  const uint64_t chain = static_cast<uint64_t>(p.chain0 + c);
  int64_t cached = -1;
  float4 xi4 = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int64_t rr = 0; rr < f; ++rr) {
    for (int64_t cc = 0; cc < f; ++cc) {
      const int64_t jl = (r0 + rr) * W + c0 + cc;  // within the channel
      const int64_t j = ch * H * W + jl;           // within the chain
      if (j / 4 != cached) {
        cached = j / 4;
        xi4 = philox_normal4(p.seed, chain, static_cast<uint64_t>(cur.step), static_cast<uint64_t>(cached));
      }
      const float xv = xr[jl];
      const float s = prior_score(p, cur, l, c, j, xv);
      const float xn = xv + cur.h * (s + cur.lik * g) + cur.noise * component(xi4, static_cast<int>(j % 4));
      xr[jl] = cur.post * xn;
    }
  }
}

// Units of work per chain for the fused step.
inline int64_t fused_units_per_chain(const FusedStepParams& p) {
  if (p.op.kind == kOpDownsample) return p.op.C * (p.op.H / p.op.f) * (p.op.W / p.op.f);
  return (p.d + 3) / 4;
}

ALMC_HD void fused_unit(const FusedStepParams& p, const StepScalars& cur, const LevelConsts& l, int64_t c,
                        int64_t u) {
  if (p.op.kind == kOpDownsample)
    fused_pool_block(p, cur, l, c, u);
  else
    fused_group(p, cur, l, c, u);
}

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
      // Correlation with a centred kernel, zero outside the image.
      const int64_t hw = op.H * op.W, ch = i / hw, r = (i % hw) / op.W, cl = i % op.W;
      const int64_t ph = op.kh / 2, pw = op.kw / 2;
      const float* xc = x + ch * hw;
      float s = 0.f;
      for (int64_t a = 0; a < op.kh; ++a) {
        const int64_t rr = r + a - ph;
        if (rr < 0 || rr >= op.H) continue;
        for (int64_t b = 0; b < op.kw; ++b) {
          const int64_t cc = cl + b - pw;
          if (cc < 0 || cc >= op.W) continue;
          s += op.kernel[a * op.kw + b] * xc[rr * op.W + cc];
        }
      }
      return s;
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
      const int64_t ph = op.kh / 2, pw = op.kw / 2;
      const float* vc = v + ch * hw;
      float s = 0.f;
      for (int64_t a = 0; a < op.kh; ++a) {
        const int64_t rr = r - a + ph;
        if (rr < 0 || rr >= op.H) continue;
        for (int64_t b = 0; b < op.kw; ++b) {
          const int64_t cc = cl - b + pw;
          if (cc < 0 || cc >= op.W) continue;
          s += op.kernel[a * op.kw + b] * vc[rr * op.W + cc];
        }
      }
      return s;
    }
    default: return 0.f;
  }
}

}  // namespace almc
