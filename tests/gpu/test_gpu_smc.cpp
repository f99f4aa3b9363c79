// Sequential Monte Carlo (ALMC_VARIANT_SMC, ALGORITHMS.md Sec. 9) on the CUDA backend: the
// per-chain log-density and the row gather run as kernels there, the weights and resampling on
// the host. Skips, saying why, when there is no device.
#include "host/backend/backend.hpp"
#include "host/cli/validate_oracles.hpp"
#include "tests/common/test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace {

using namespace almc::oracle;

bool have_device() { return almc::cuda_device_count() > 0; }

struct Out {
  std::vector<float> x;
  int64_t resamples = 0;
};

Out run_bars(almc_backend backend, const GmmProblem& q, int64_t n_meas, int64_t n, uint64_t seed, int64_t chain_start = 0,
             int64_t chain_count = 0) {
  almc::Context ctx(backend);
  const Gmm& g = q.g;
  auto f = [](const Vec& v) { return std::vector<float>(v.begin(), v.end()); };
  auto prior = almc::Score::gmm(ctx, g.K, g.d, f(g.w), f(g.mu), f(g.var));
  auto op = almc::Operator::mask(ctx, q.mask);
  almc_sampler_config c = almc_sampler_config_default();
  c.n_meas = n_meas;
  c.chains_per_meas = n;
  c.seed = seed;
  c.noise_std = std::sqrt(q.vy);
  c.kappa = 2000 * 1e-3 / (3 - 0.01);
  c.t_start = 3;
  c.t_stop = 0.01;
  c.variant = ALMC_VARIANT_SMC;
  c.chain_start = chain_start;
  c.chain_count = chain_count;
  almc::Sampler s(ctx, prior, &op, c);
  std::vector<float> y;
  for (int64_t k = 0; k < n_meas; ++k)
    for (double v : q.y) y.push_back(static_cast<float>(v));
  s.set_measurement(y);
  s.run();
  return {s.samples(), s.info().smc_resamples};
}

// Bars (T5), 4000 chains, 2000 annealing steps on the paper's levels: the mode weights within 4
// binomial standard errors of n / 2 draws (tests/cpu/test_smc.cpp explains the n / 2), as on
// the CPU, where the plain chain is 9 se off; the run repeats bit for bit, and a slice holding
// the second measurement gives that measurement's chains of the whole run.
TEST(GpuSmc, BarsWeightsDeterminismAndSlices) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device on this machine (or a build without the CUDA backend)";
  const GmmProblem q = validate_bars_problem();
  const int64_t n = 4000;
  const Out a = run_bars(ALMC_BACKEND_CUDA, q, 2, n, 1801);
  EXPECT_GE(a.resamples, 2);
  const Mixture mix = gmm_target(q.g, q.A, q.y, q.vy, 0.01);
  for (int64_t meas = 0; meas < 2; ++meas) {
    Vec frac(static_cast<size_t>(q.g.K), 0.0);
    for (int64_t i = 0; i < n; ++i)
      frac[nearest_component(mix, &a.x[static_cast<size_t>((meas * n + i) * q.g.d)], q.g.d)] += 1.0 / n;
    for (int k = 0; k < q.g.K; ++k) {
      const double se = std::sqrt(std::max(mix.w[k] * (1 - mix.w[k]), 1e-4) / (n / 2.0));
      EXPECT_LT(std::fabs(frac[k] - mix.w[k]), 4 * se) << "measurement " << meas << " mode " << k;
    }
  }
  EXPECT_EQ(run_bars(ALMC_BACKEND_CUDA, q, 2, n, 1801).x, a.x);
  const Out part = run_bars(ALMC_BACKEND_CUDA, q, 2, n, 1801, n, n);
  EXPECT_TRUE(std::equal(part.x.begin(), part.x.end(), a.x.begin() + static_cast<std::ptrdiff_t>(n * q.g.d)));
}

}  // namespace
