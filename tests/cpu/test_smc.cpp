// Sequential Monte Carlo along ALMC's path (ALMC_VARIANT_SMC, ALGORITHMS.md Sec. 9), CPU backend.
//
// Gaussian prior: SMC's weighted chains target mu_{t_last} at the end (importance weights exact
// for the analytic prior), so at a budget where the plain chain still lags its targets by many
// standard errors (the T2 recursion says how far), SMC's output must match mu_{t_last} itself.
// Mixtures: the mode weights within 4 binomial standard errors of the exact w'_k(tau) on levels
// uniform in t (the paper's), where the plain chain is outside that band.
// Also: determinism, slices of whole measurements reproduce the full run bit for bit, and the
// refusals (score callbacks, partial measurements, average_last, other methods).
//
// Standard errors: the last annealing step always resamples, and the weights were then at an
// effective sample size of at least about half the chains (the threshold, 0.5, was checked one
// step earlier), so the output's Monte Carlo variance is about that of n / 2 independent draws
// (Kong-Liu-Wong ESS): every standard error below uses n / 2.
#include "tests/common/gauss_oracle.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

namespace {

using namespace almc::oracle;
using almc_test::almc_cfg;
using almc_test::dense_problem;
using almc_test::ModeWeights;
using almc_test::print_mode_weights;
using almc_test::to_float;

almc::Context cpu() { return almc::Context(ALMC_BACKEND_CPU); }

// The largest |difference| between the moments of `a` and `b`, in standard errors of n draws of b.
double gap_se(const Gauss& a, const Gauss& b, double n) {
  double worst = 0;
  const auto ni = static_cast<int64_t>(n);
  for (int i = 0; i < static_cast<int>(a.m.size()); ++i) {
    worst = std::max(worst, std::fabs(a.m[i] - b.m[i]) / se_mean(b, i, ni));
    for (int j = 0; j <= i; ++j) worst = std::max(worst, std::fabs(a.C(i, j) - b.C(i, j)) / se_cov(b, i, j, ni));
  }
  return worst;
}

// d 8, dense A 6 x 8, sigma_y 0.3 (||A||^2 / sigma_y^2 ~ 20), levels uniform in t from 1.5 to
// 0.05 at kappa 0.5 and delta 1e-3 (725 steps): the plain chain lags its targets by many se.
// ULA's bias at the last level is below delta lambda_max / 2 ~ 1.3% of each variance, under a
// quarter of the variance's standard error at n / 2 = 2000 (3.2%): SMC removes the lag, not
// that bias, and this test cannot see it.
TEST(Smc, GaussianOutputIsTheLastTargetWhereThePlainChainLags) {
  auto ctx = cpu();
  const LinearGaussian p = dense_problem(8, 6, 0.3, 0.4, 4242);
  AlmcParams a;
  a.kappa = 0.5;
  a.delta = 1e-3;
  a.t_start = 1.5;
  a.t_stop = 0.05;
  const double L = 20;
  a.warm_step = 0.5 / (1 + L);
  a.warm_steps = 300;
  const int64_t n = 4000;
  auto prior = almc::Score::gaussian(ctx, to_float(p.m0), to_float(p.s0));
  auto op = almc::Operator::matrix(ctx, p.A.r, p.A.c, 1, to_float(p.A));
  almc::Sampler s(ctx, prior, &op, almc_cfg(n, 1701, std::sqrt(p.vy), a, ALMC_VARIANT_SMC));
  s.set_measurement(to_float(p.y));
  s.run();
  const std::vector<float> x = s.samples();
  const Gauss emp = empirical(x.data(), n, p.d());
  const Vec ts = almc_levels(a);
  const Gauss last = target(p, ts.back());
  const Gauss plain = almc_chain(p, a);  // the exact law of the same chain without weights
  const double plain_gap = gap_se(plain, last, n / 2.0), smc_gap = gap_se(emp, last, n / 2.0);
  std::printf("[smc gauss] %lld resamplings; gap to mu_t_last: plain chain (exact law) %.1f se, smc %.1f se\n",
              static_cast<long long>(s.info().smc_resamples), plain_gap, smc_gap);
  EXPECT_GT(plain_gap, 8.0) << "the plain chain should lag visibly at this budget";
  // 4 se per moment (8 means + 36 covariances).
  EXPECT_LT(smc_gap, 4.0);
  EXPECT_GE(s.info().smc_resamples, 2);  // the forced last one and at least one on the way
}

// SMC on the paper's uniform levels at 2000 annealing steps (delta 1e-3, T_ws 3, tau 0.01): the
// mode weights within 4 binomial se of n / 2 draws; the plain chain, same seed and budget,
// outside that band (it freezes the weights where the modes part).
void smc_fixes_the_weights(const char* name, const GmmProblem& q, int64_t n, uint64_t seed) {
  const double kappa = 2000 * 1e-3 / (3 - 0.01);
  const ModeWeights smc = almc_test::run_mode_weights(q, ALMC_VARIANT_SMC, kappa, 1e-3, n, seed, n / 2.0);
  print_mode_weights((std::string(name) + ", smc").c_str(), smc);
  EXPECT_LT(smc.worst_se, 4.0);
  const ModeWeights plain = almc_test::run_mode_weights(q, ALMC_VARIANT_PAPER, kappa, 1e-3, n, seed, n / 2.0);
  print_mode_weights((std::string(name) + ", paper").c_str(), plain);
  EXPECT_GT(plain.worst_se, 4.0) << "the paper's chain should still be off at this budget";
}

// Bars (T5, exact weights 0.130 / 0.482 / 0.388), 2000 chains.
TEST(Smc, BarsWeightsOnThePapersLevels) { smc_fixes_the_weights("bars", validate_bars_problem(), 2000, 1702); }

// The 16-D mixture of the sweep (exact weights 0, 0.868, 0, 0.132), 2000 chains.
TEST(Smc, Mix16WeightsOnThePapersLevels) {
  smc_fixes_the_weights("mix16", random_mixture_problem("mix16", 16, 4, 8, 1.0, 0.5, 1, 16), 2000, 1703);
}

// Two measurements of the bars problem; run whole, then each measurement as a slice.
struct TwoMeas {
  almc::Context ctx = cpu();
  GmmProblem q = validate_bars_problem();
  almc::Score prior = almc::Score::gmm(ctx, q.g.K, q.g.d, to_float(q.g.w), to_float(q.g.mu), to_float(q.g.var));
  almc::Operator op = almc::Operator::mask(ctx, q.mask);
  almc_sampler_config cfg() const {
    almc_sampler_config c = almc_sampler_config_default();
    c.n_meas = 2;
    c.chains_per_meas = 300;
    c.seed = 1704;
    c.noise_std = std::sqrt(q.vy);
    c.kappa = 0.3;
    c.t_start = 3;
    c.variant = ALMC_VARIANT_SMC;
    c.smc_ess_threshold = 0.95;  // resample often, so that mid-run resamplings are compared too
    return c;
  }
  std::vector<float> y2() const {
    std::vector<float> y = to_float(q.y), y2 = y;
    for (float v : y) y2.push_back(-v);
    return y2;
  }
  std::vector<float> run(const almc_sampler_config& c, int64_t* resamples = nullptr) const {
    almc::Sampler s(ctx, prior, &op, c);
    s.set_measurement(y2());
    s.run();
    if (resamples) *resamples = s.info().smc_resamples;
    return s.samples();
  }
};

TEST(Smc, DeterministicAndSlicesOfWholeMeasurementsMatchTheRun) {
  TwoMeas t;
  int64_t resamples = 0;
  const std::vector<float> all = t.run(t.cfg(), &resamples), again = t.run(t.cfg());
  EXPECT_EQ(all, again);
  EXPECT_GE(resamples, 6);  // both measurements resample on the way and at the end
  for (int64_t q = 0; q < 2; ++q) {
    almc_sampler_config c = t.cfg();
    c.chain_start = q * c.chains_per_meas;
    c.chain_count = c.chains_per_meas;
    const std::vector<float> part = t.run(c);
    const size_t len = static_cast<size_t>(c.chains_per_meas * t.q.g.d);
    EXPECT_TRUE(std::equal(part.begin(), part.end(), all.begin() + static_cast<std::ptrdiff_t>(q * len)))
        << "measurement " << q;
  }
  almc_sampler_config other = t.cfg();
  other.seed += 1;
  EXPECT_NE(t.run(other), all);
}

almc_status create_status(const almc::Context& ctx, almc_score_t score, almc_operator_t op, const almc_sampler_config& c,
                          std::string* msg) {
  almc_sampler_t h = nullptr;
  const almc_status st = almc_sampler_create(ctx.get(), score, op, &c, &h);
  *msg = st == ALMC_OK ? "" : almc_context_last_error(ctx.get());
  if (h) almc_sampler_destroy(h);
  return st;
}

int zero_score(const float*, float* out, int64_t n, int64_t d, const almc_level*, const almc_level_device*, void*,
               void*) {
  for (int64_t i = 0; i < n * d; ++i) out[i] = 0.f;
  return 0;
}

TEST(Smc, RefusesWhatItCannotWeigh) {
  TwoMeas t;
  std::string msg;
  almc_sampler_config c = t.cfg();
  c.chain_start = 100;
  c.chain_count = 300;
  EXPECT_EQ(create_status(t.ctx, t.prior.get(), t.op.get(), c, &msg), ALMC_ERR_UNSUPPORTED);
  EXPECT_NE(msg.find("whole measurements"), std::string::npos) << msg;
  c = t.cfg();
  c.average_last = 10;
  EXPECT_EQ(create_status(t.ctx, t.prior.get(), t.op.get(), c, &msg), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("average_last"), std::string::npos) << msg;
  c = t.cfg();
  c.smc_ess_threshold = 1.5;
  EXPECT_EQ(create_status(t.ctx, t.prior.get(), t.op.get(), c, &msg), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("smc_ess_threshold"), std::string::npos) << msg;
  c = t.cfg();
  c.method = ALMC_METHOD_ALD;
  EXPECT_EQ(create_status(t.ctx, t.prior.get(), t.op.get(), c, &msg), ALMC_ERR_INVALID_ARGUMENT);
  c = t.cfg();
  c.warm_steps = 0;
  EXPECT_EQ(create_status(t.ctx, t.prior.get(), t.op.get(), c, &msg), ALMC_ERR_INVALID_ARGUMENT);
  // The resumable state holds no importance weights: checkpoints are refused, not silently wrong.
  c = t.cfg();
  c.checkpoint_every = 10;
  c.checkpoint = [](const void*, size_t, int64_t, void*) { return 0; };
  EXPECT_EQ(create_status(t.ctx, t.prior.get(), t.op.get(), c, &msg), ALMC_ERR_UNSUPPORTED);
  EXPECT_NE(msg.find("snapshots and resume"), std::string::npos) << msg;
  almc_score_t cb = nullptr;
  ASSERT_EQ(almc_score_create_callback(t.ctx.get(), t.q.g.d, zero_score, nullptr, 0, &cb), ALMC_OK);
  almc::Score net(cb);
  EXPECT_EQ(create_status(t.ctx, net.get(), t.op.get(), t.cfg(), &msg), ALMC_ERR_UNSUPPORTED);
  EXPECT_NE(msg.find("density"), std::string::npos) << msg;
}

}  // namespace
