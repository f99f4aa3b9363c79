// Test-side helpers around the closed-form oracles. The math itself lives in one place,
// host/cli/validate_oracles.hpp (shared with `almc validate`); this adds the problem builders,
// float conversions and the k-standard-error comparisons the tests use.
#pragma once

#include "host/cli/validate_oracles.hpp"
#include "tests/common/test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace almc_test {

using almc::oracle::Gauss;
using almc::oracle::LinearGaussian;
using almc::oracle::Mat;
using almc::oracle::Vec;

inline std::vector<float> to_float(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }
inline std::vector<float> to_float(const Mat& m) { return std::vector<float>(m.a.begin(), m.a.end()); }

// A linear Gaussian problem whose numbers are exactly representable in float (so the engine and
// the oracle see the same problem): prior N(m0, diag s0) with s0 in [0.3, 2], dense A [m, d] with
// N(0, a_scale^2) entries, y = A x_true + noise.
inline LinearGaussian dense_problem(int d, int m, double sigma_y, double a_scale, uint64_t seed) {
  Lcg rng(seed);
  LinearGaussian p;
  auto f = [](double v) { return static_cast<double>(static_cast<float>(v)); };
  for (int j = 0; j < d; ++j) {
    p.m0.push_back(f(rng.normal()));
    p.s0.push_back(f(0.3 + 1.7 * rng.uniform()));
  }
  p.A = Mat(m, d);
  for (double& a : p.A.a) a = f(a_scale * rng.normal());
  Vec xt(static_cast<size_t>(d));
  for (int j = 0; j < d; ++j) xt[j] = p.m0[j] + std::sqrt(p.s0[j]) * rng.normal();
  p.vy = f(sigma_y) * f(sigma_y);
  p.y = almc::oracle::mul(p.A, xt);
  for (double& v : p.y) v = f(v + std::sqrt(p.vy) * rng.normal());
  return p;
}

// Every entry of the empirical mean and covariance within k Monte Carlo standard errors of the
// law `truth` (plus `slack` in absolute terms, for a stated, known bias).
inline ::testing::AssertionResult moments_within(const Gauss& emp, const Gauss& truth, int64_t n, double k,
                                                 double slack = 0.0) {
  using namespace almc::oracle;
  const int d = static_cast<int>(truth.m.size());
  std::ostringstream bad;
  int n_bad = 0;
  double worst = 0;
  for (int i = 0; i < d; ++i) {
    const double z = std::fabs(emp.m[i] - truth.m[i]) / se_mean(truth, i, n);
    worst = std::max(worst, z);
    if (std::fabs(emp.m[i] - truth.m[i]) > k * se_mean(truth, i, n) + slack && n_bad++ < 6)
      bad << " mean[" << i << "] " << emp.m[i] << " vs " << truth.m[i] << " (" << z << " se);";
    for (int j = 0; j <= i; ++j) {
      const double se = se_cov(truth, i, j, n);
      const double zc = std::fabs(emp.C(i, j) - truth.C(i, j)) / se;
      worst = std::max(worst, zc);
      if (std::fabs(emp.C(i, j) - truth.C(i, j)) > k * se + slack && n_bad++ < 6)
        bad << " cov[" << i << "," << j << "] " << emp.C(i, j) << " vs " << truth.C(i, j) << " (" << zc << " se);";
    }
  }
  if (n_bad == 0) return ::testing::AssertionSuccess() << "largest deviation " << worst << " se";
  return ::testing::AssertionFailure() << n_bad << " moment(s) beyond " << k << " se (largest " << worst
                                       << " se):" << bad.str();
}

// Largest |a - b| over two equal-length float arrays.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

// An ALMC configuration carrying the oracle's parameters (kappa, delta, T_ws, tau, warm start), so
// the engine runs the chain the oracle's recursion describes.
inline almc_sampler_config almc_cfg(int64_t chains, uint64_t seed, double sigma_y, const almc::oracle::AlmcParams& a,
                                    almc_variant v = ALMC_VARIANT_PAPER) {
  almc_sampler_config c = almc_sampler_config_default();
  c.method = ALMC_METHOD_ALMC;
  c.chains_per_meas = chains;
  c.seed = seed;
  c.noise_std = sigma_y;
  c.kappa = a.kappa;
  c.delta = a.delta;
  c.t_start = a.t_start;
  c.t_stop = a.t_stop;
  c.warm_steps = a.warm_steps;
  c.warm_step = a.warm_step;
  c.variant = v;
  return c;
}

// ALMC (with variant v) on a mixture problem of validate_oracles (T4/T5), CPU backend, T_ws 3,
// tau 0.01: the fraction of chains nearest each mode of mu_tau against the exact w'_k(tau), and the
// largest gap in binomial standard errors of `se_draws` draws (empty modes get a floor of 1e-4 in
// p (1 - p)). Chains are classified by the largest responsibility under mu_tau.
struct ModeWeights {
  Vec frac, exact;
  double worst_se = 0;
  int64_t smc_resamples = 0;
};

inline ModeWeights run_mode_weights(const almc::oracle::GmmProblem& q, almc_variant v, double kappa, double delta,
                                    int64_t n, uint64_t seed, double se_draws) {
  using namespace almc::oracle;
  almc::Context ctx(ALMC_BACKEND_CPU);
  const Gmm& g = q.g;
  auto prior = almc::Score::gmm(ctx, g.K, g.d, to_float(g.w), to_float(g.mu), to_float(g.var));
  almc::Operator op = q.mask.empty() ? almc::Operator::matrix(ctx, q.A.r, q.A.c, 1, to_float(q.A))
                                     : almc::Operator::mask(ctx, q.mask);
  almc_sampler_config c = almc_sampler_config_default();
  c.chains_per_meas = n;
  c.seed = seed;
  c.noise_std = std::sqrt(q.vy);
  c.kappa = kappa;
  c.delta = delta;
  c.t_start = 3;
  c.t_stop = 0.01;
  c.variant = v;
  almc::Sampler s(ctx, prior, &op, c);
  s.set_measurement(to_float(q.y));
  s.run();
  const std::vector<float> x = s.samples();
  const Mixture mix = gmm_target(g, q.A, q.y, q.vy, 0.01);
  ModeWeights r;
  r.smc_resamples = s.info().smc_resamples;
  r.exact = mix.w;
  r.frac.assign(static_cast<size_t>(g.K), 0.0);
  for (int64_t i = 0; i < n; ++i) r.frac[nearest_component(mix, &x[static_cast<size_t>(i * g.d)], g.d)] += 1.0 / n;
  for (int k = 0; k < g.K; ++k) {
    const double se = std::sqrt(std::max(mix.w[k] * (1 - mix.w[k]), 1e-4) / se_draws);
    r.worst_se = std::max(r.worst_se, std::fabs(r.frac[k] - mix.w[k]) / se);
  }
  return r;
}

inline void print_mode_weights(const char* what, const ModeWeights& r) {
  std::printf("[%s] exact", what);
  for (double w : r.exact) std::printf(" %.4f", w);
  std::printf(", chains");
  for (double w : r.frac) std::printf(" %.4f", w);
  std::printf(" (worst %.1f se, %lld resamplings)\n", r.worst_se, static_cast<long long>(r.smc_resamples));
}

}  // namespace almc_test
