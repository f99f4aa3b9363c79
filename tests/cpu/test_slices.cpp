// Slices of a run (almc_sampler_config chain_start / chain_count), CPU backend: a slice's samples
// must be bitwise the same chains of the whole run, whatever the slice's boundaries (inside a
// measurement, across measurement boundaries, not aligned to the dense operator's 16-row blocks
// or the ONNX executor's sample blocks), for every operator family, both analytic priors, an
// ONNX prior, XGP's per-chain measurements, the averaged-iterate pick and user callbacks.
#include <almc/almc.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

std::string onnx_dir() {
  if (const char* e = std::getenv("ALMC_TEST_DATA")) return std::string(e) + "/onnx/";
  return "tests/data/onnx/";
}

std::vector<float> ramp(size_t n, float a, float b) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = a + b * std::sin(0.7f * float(i) + 0.3f);
  return v;
}

std::vector<float> run_slice(const almc::Context& ctx, const almc::Score& prior, const almc::Operator* op,
                             almc_sampler_config cfg, const std::vector<float>& y, int64_t start, int64_t count,
                             const std::vector<float>* init = nullptr) {
  cfg.chain_start = start;
  cfg.chain_count = count;
  almc::Sampler s(ctx, prior, op, cfg);
  if (op) s.set_measurement(y);
  if (init) s.set_state(*init);
  s.run();
  return s.samples();
}

// The whole run, then each slice of `cuts` (consecutive boundaries from 0 to the total): every
// slice equals its rows of the whole run, bit for bit.
void expect_slices_match(const almc::Context& ctx, const almc::Score& prior, const almc::Operator* op,
                         const almc_sampler_config& cfg, const std::vector<float>& y, const std::vector<int64_t>& cuts,
                         const std::vector<float>* init = nullptr) {
  const int64_t d = prior.dim(), total = cfg.n_meas * cfg.chains_per_meas;
  ASSERT_EQ(cuts.front(), 0);
  ASSERT_EQ(cuts.back(), total);
  const std::vector<float> whole = run_slice(ctx, prior, op, cfg, y, 0, 0, init);
  ASSERT_EQ(int64_t(whole.size()), total * d);
  for (size_t k = 0; k + 1 < cuts.size(); ++k) {
    const int64_t a = cuts[k], cnt = cuts[k + 1] - cuts[k];
    std::vector<float> slice_init;
    if (init) slice_init.assign(init->begin() + a * d, init->begin() + (a + cnt) * d);
    const std::vector<float> part = run_slice(ctx, prior, op, cfg, y, a, cnt, init ? &slice_init : nullptr);
    ASSERT_EQ(int64_t(part.size()), cnt * d);
    EXPECT_EQ(0, std::memcmp(part.data(), whole.data() + a * d, part.size() * sizeof(float)))
        << "slice " << a << " + " << cnt << " differs from the whole run";
  }
}

almc_sampler_config small_almc(int64_t n_meas, int64_t cpm, uint64_t seed) {
  almc_sampler_config c = almc_sampler_config_default();
  c.method = ALMC_METHOD_ALMC;
  c.n_meas = n_meas;
  c.chains_per_meas = cpm;
  c.seed = seed;
  c.noise_std = 0.3;
  c.kappa = 2;
  c.delta = 4e-3;
  c.t_start = 1.0;
  c.t_stop = 0.05;
  return c;
}

almc::Score gmm_prior(const almc::Context& ctx, int64_t d) {
  return almc::Score::gmm(ctx, 2, d, {0.3f, 0.7f}, ramp(size_t(2 * d), 0.f, 1.f), ramp(size_t(2 * d), 0.6f, 0.3f));
}

TEST(Slices, IdentityGmmAcrossMeasurements) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  const int64_t d = 6;
  auto prior = gmm_prior(ctx, d);
  auto op = almc::Operator::identity(ctx, d);
  const almc_sampler_config cfg = small_almc(3, 5, 11);
  expect_slices_match(ctx, prior, &op, cfg, ramp(size_t(3 * d), 0.2f, 0.8f), {0, 4, 11, 15});
  expect_slices_match(ctx, prior, &op, cfg, ramp(size_t(3 * d), 0.2f, 0.8f), {0, 5, 6, 10, 15});
}

TEST(Slices, MaskAndDownsampleGaussian) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  const int64_t d = 16;
  auto prior = almc::Score::gaussian(ctx, ramp(size_t(d), 0.f, 0.5f), std::vector<float>(size_t(d), 0.8f));
  std::vector<float> mask(size_t(d), 1.f);
  for (int64_t j = 0; j < d; j += 3) mask[size_t(j)] = 0.f;
  auto mk = almc::Operator::mask(ctx, mask);
  const almc_sampler_config cfg = small_almc(2, 7, 5);
  expect_slices_match(ctx, prior, &mk, cfg, ramp(size_t(2 * d), 0.1f, 1.f), {0, 3, 9, 14});
  auto ds = almc::Operator::downsample(ctx, 1, 4, 4, 2);
  expect_slices_match(ctx, prior, &ds, cfg, ramp(size_t(2 * 4), 0.1f, 1.f), {0, 6, 8, 14});
}

// Per-measurement dense matrices, more chains per measurement than the CPU GEMM's 16-row block.
TEST(Slices, DenseMatrixPerMeasurement) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  const int64_t d = 6, m = 4, n_meas = 2, cpm = 20;
  auto prior = gmm_prior(ctx, d);
  auto op = almc::Operator::matrix(ctx, m, d, n_meas, ramp(size_t(n_meas * m * d), 0.f, 0.6f));
  const almc_sampler_config cfg = small_almc(n_meas, cpm, 3);
  expect_slices_match(ctx, prior, &op, cfg, ramp(size_t(n_meas * m), 0.f, 1.f), {0, 13, 27, 40});
  expect_slices_match(ctx, prior, &op, cfg, ramp(size_t(n_meas * m), 0.f, 1.f), {0, 1, 17, 20, 39, 40});
}

// XGP (per-chain auxiliary measurements), the averaged-iterate pick and a user initial state.
TEST(Slices, XgpAveragePickAndUserInit) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  const int64_t d = 5;
  auto prior = gmm_prior(ctx, d);
  auto op = almc::Operator::matrix(ctx, 3, d, 1, ramp(size_t(3 * d), 0.f, 0.7f));
  almc_sampler_config x = small_almc(3, 4, 8);
  x.method = ALMC_METHOD_XGP;
  x.n_levels = 6;
  x.steps_per_level = 3;
  expect_slices_match(ctx, prior, &op, x, ramp(size_t(9), 0.f, 1.f), {0, 2, 7, 12});
  almc_sampler_config a = small_almc(3, 4, 9);
  a.average_last = 7;
  a.init = ALMC_INIT_USER;
  const std::vector<float> init = ramp(size_t(12 * d), 0.f, 2.f);
  expect_slices_match(ctx, prior, &op, a, ramp(size_t(9), 0.f, 1.f), {0, 5, 6, 12}, &init);
}

// A linear operator from callbacks: y = (meas + 1) * x. The callbacks get only a measurement
// index for row 0, so a slice's calls must never mix a partial measurement with the next one.
int scaled_identity(const float* in, float* out, int64_t n, int64_t meas0, int64_t cpm, void*, void* user) {
  const int64_t d = *static_cast<const int64_t*>(user);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < d; ++j) out[r * d + j] = float(meas0 + r / cpm + 1) * in[r * d + j];
  return 0;
}

TEST(Slices, LinearCallbackMeasurementIndex) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  int64_t d = 4;
  auto prior = gmm_prior(ctx, d);
  almc_operator_t h = nullptr;
  ASSERT_EQ(almc_operator_create_linear_callback(ctx.get(), d, d, scaled_identity, scaled_identity, &d, 3.0, &h),
            ALMC_OK);
  almc::Operator op(h);
  const almc_sampler_config cfg = small_almc(3, 4, 21);
  expect_slices_match(ctx, prior, &op, cfg, ramp(size_t(3 * d), 0.5f, 1.f), {0, 3, 9, 10, 12});
}

// An ONNX prior: the CPU executor evaluates samples in fixed blocks; slices cut inside them.
TEST(Slices, OnnxPrior) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  almc_onnx_config oc = almc_onnx_config_default();
  oc.convention = ALMC_CONV_VP;
  oc.output = ALMC_OUTPUT_EPS;
  oc.level = ALMC_LEVEL_T;
  auto prior = almc::Score::onnx(ctx, onnx_dir() + "mlp_embed.onnx", oc);
  const int64_t d = prior.dim();
  auto op = almc::Operator::identity(ctx, d);
  almc_sampler_config cfg = small_almc(3, 12, 4);
  cfg.method = ALMC_METHOD_NCSN;
  cfg.n_levels = 4;
  cfg.steps_per_level = 2;
  cfg.sigma_max = 1.0;
  cfg.sigma_min = 0.1;
  expect_slices_match(ctx, prior, &op, cfg, ramp(size_t(3 * d), 0.f, 0.5f), {0, 7, 27, 36});
}

TEST(Slices, MeanStdOfWholeMeasurementsOnly) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  const int64_t d = 3;
  auto prior = gmm_prior(ctx, d);
  auto op = almc::Operator::identity(ctx, d);
  almc_sampler_config cfg = small_almc(3, 4, 2);
  const std::vector<float> y = ramp(size_t(3 * d), 0.f, 1.f);
  almc::Sampler whole(ctx, prior, &op, cfg);
  whole.set_measurement(y);
  whole.run();
  const auto ms = whole.mean_std();
  cfg.chain_start = 4;
  cfg.chain_count = 8;  // measurements 1 and 2
  almc::Sampler part(ctx, prior, &op, cfg);
  part.set_measurement(y);
  part.run();
  const auto ps = part.mean_std();
  ASSERT_EQ(ps.first.size(), size_t(2 * d));
  EXPECT_EQ(0, std::memcmp(ps.first.data(), ms.first.data() + d, ps.first.size() * 4));
  EXPECT_EQ(0, std::memcmp(ps.second.data(), ms.second.data() + d, ps.second.size() * 4));
  cfg.chain_start = 3;  // splits measurement 0
  cfg.chain_count = 5;
  almc::Sampler odd(ctx, prior, &op, cfg);
  odd.set_measurement(y);
  odd.run();
  std::vector<float> mean(size_t(2 * d));
  EXPECT_EQ(almc_sampler_get_mean_std(odd.get(), mean.data(), nullptr), ALMC_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(odd.err()).find("splits a measurement"), std::string::npos) << odd.err();
}

TEST(Slices, BadRangesRefused) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  auto prior = gmm_prior(ctx, 3);
  for (auto r : std::vector<std::pair<int64_t, int64_t>>{{-1, 2}, {0, -1}, {2, 0}, {10, 3}, {0, 13}, {12, 1}}) {
    almc_sampler_config cfg = small_almc(3, 4, 2);
    cfg.chain_start = r.first;
    cfg.chain_count = r.second;
    almc_sampler_t s = nullptr;
    EXPECT_EQ(almc_sampler_create(ctx.get(), prior.get(), nullptr, &cfg, &s), ALMC_ERR_INVALID_ARGUMENT)
        << r.first << " " << r.second;
    EXPECT_NE(std::string(ctx.last_error()).find("chain range"), std::string::npos) << ctx.last_error();
  }
}

}  // namespace
