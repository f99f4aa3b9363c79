// CUDA against the CPU backend on one seed. Skips, saying why, when there is no device; no CUDA
// call happens before a test body runs.
#include "host/backend/backend.hpp"
#include "tests/common/test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace {

bool have_device() { return almc::cuda_device_count() > 0; }

#define REQUIRE_DEVICE() \
  if (!have_device()) GTEST_SKIP() << "no CUDA device on this machine (or a build without the CUDA backend)"

TEST(Gpu, RawUniformsAndNormalsBitIdenticalToCpu) {
  REQUIRE_DEVICE();
  auto gpu = almc::make_cuda_backend(0, nullptr);
  auto cpu = almc::make_cpu_backend(0);
  const int64_t n = 37, d = 1001;
  std::vector<float> a(n * d), b(n * d);
  almc::Buffer g(gpu.get(), a.size() * 4);
  gpu->fill_random(g.f(), n, d, 5, 10, 1234, 77, 1.f, true);
  gpu->sync();
  g.download(a.data(), g.bytes());
  cpu->fill_random(b.data(), n, d, 5, 10, 1234, 77, 1.f, true);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
  // Normals too: rng.cuh's Box-Muller is exactly rounded arithmetic on both sides (no device
  // intrinsics), so the GPU gives the CPU's bits.
  gpu->fill_random(g.f(), n, d, 5, 10, 1234, 77, 1.f, false);
  gpu->sync();
  g.download(a.data(), g.bytes());
  cpu->fill_random(b.data(), n, d, 5, 10, 1234, 77, 1.f, false);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
}

struct RunResult {
  std::vector<float> x, mean, std;
  almc_run_info info;
};

// One engine configuration: every fused-step variant (prior x operator, warm start and anneal:
// every ALMC run begins with warm steps) and the extras (Tweedie, average-last pick, XGP's
// auxiliary measurements, mean/std, dense A per measurement).
struct Case {
  const char* name;
  int op;  // 0 identity, 1 mask, 2 downsample, 3 blur (asymmetric), 4 matrix, 5 none (prior only)
  bool gmm;
  almc_method method = ALMC_METHOD_ALMC;
  int64_t n_meas = 1, n_mats = 1;
  bool tweedie = false;
  int64_t average_last = 0;
  // 64: rows of 16 groups (the flat launch); >= 256: the 2-D launch; % 4 != 0: scalar tail; <= 32:
  // the one-thread-per-chain step (image operators: a multiple of 16)
  int64_t d = 64;
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

RunResult run(almc_backend backend, const Case& k, bool graphs) {
  almc::Context ctx(backend);
  const int64_t d = k.d;  // the image operators (downsample, blur) take 1 x 8 x (d / 8)
  almc_test::Lcg rng(3);
  const auto mu = rng.normals(2 * d);
  const std::vector<float> w = {0.4f, 0.6f};
  std::vector<float> var(2 * d);
  for (int64_t i = 0; i < 2 * d; ++i) var[i] = 0.3f + 0.01f * static_cast<float>(i % 17);
  auto prior = k.gmm ? almc::Score::gmm(ctx, 2, d, w, mu, var)
                     : almc::Score::gaussian(ctx, std::vector<float>(mu.begin(), mu.begin() + d),
                                             std::vector<float>(var.begin(), var.begin() + d));
  std::vector<float> mask(static_cast<size_t>(d)), kernel = {0.05f, 0.1f, 0.3f, 0.2f, 0.15f, 0.0f, 0.1f, 0.05f, 0.05f};
  for (int64_t j = 0; j < d; ++j) mask[j] = j % 3 ? 1.f : 0.f;
  auto op = k.op == 0   ? almc::Operator::identity(ctx, d)
            : k.op == 1 ? almc::Operator::mask(ctx, mask)
            : k.op == 2 ? almc::Operator::downsample(ctx, 1, 8, d / 8, 2)
            : k.op == 3 ? almc::Operator::blur(ctx, 1, 8, d / 8, 3, 3, kernel)
                        : almc::Operator::matrix(ctx, 16, d, k.n_mats, rng.normals(16 * d * k.n_mats, 0.2));
  almc_sampler_config c = almc_test::quick_almc(33, 7, 0.3);
  c.method = k.method;
  c.n_meas = k.n_meas;
  c.tweedie = k.tweedie;
  c.average_last = k.average_last;
  if (k.method != ALMC_METHOD_ALMC) {
    c.n_levels = 20;
    c.steps_per_level = 3;
    c.sigma_max = k.method == ALMC_METHOD_XGP ? 2.0 : 5.0;
    c.sigma_min = k.method == ALMC_METHOD_XGP ? 0.3 : 0.05;
    c.eps = k.method == ALMC_METHOD_XGP ? 0.01 : 2e-3;
  }
  c.use_graphs = graphs;
  almc::Sampler s(ctx, prior, k.op == 5 ? nullptr : &op, c);
  if (k.op != 5) s.set_measurement(rng.normals(static_cast<size_t>(op.dims().first * k.n_meas)));
  s.run();
  const auto ms = s.mean_std();
  return {s.samples(), ms.first, ms.second, s.info()};
}

bool all_finite(const std::vector<float>& v) {
  for (float f : v)
    if (!std::isfinite(f)) return false;
  return !v.empty();
}

class GpuVsCpu : public ::testing::TestWithParam<Case> {};

// The CPU half runs first, with or without a device, so a broken test setup fails everywhere.
TEST_P(GpuVsCpu, SameSeedSameSamples) {
  const Case& k = GetParam();
  const auto c = run(ALMC_BACKEND_CPU, k, false);
  ASSERT_TRUE(all_finite(c.x));
  REQUIRE_DEVICE();
  const auto g = run(ALMC_BACKEND_CUDA, k, true);
  EXPECT_TRUE(g.info.used_graphs);
  ASSERT_EQ(c.x.size(), g.x.size());
  for (size_t i = 0; i < c.x.size(); ++i) ASSERT_NEAR(c.x[i], g.x[i], 2e-3f * (1 + std::fabs(c.x[i]))) << i;
  for (size_t i = 0; i < c.mean.size(); ++i) {
    ASSERT_NEAR(c.mean[i], g.mean[i], 2e-3f * (1 + std::fabs(c.mean[i]))) << i;
    ASSERT_NEAR(c.std[i], g.std[i], 2e-3f * (1 + std::fabs(c.std[i]))) << i;
  }
}

TEST_P(GpuVsCpu, GraphReplayEqualsEager) {
  const Case& k = GetParam();
  ASSERT_TRUE(all_finite(run(ALMC_BACKEND_CPU, k, false).x));
  REQUIRE_DEVICE();
  const auto a = run(ALMC_BACKEND_CUDA, k, true);
  const auto b = run(ALMC_BACKEND_CUDA, k, false);
  EXPECT_TRUE(a.info.used_graphs);
  EXPECT_FALSE(b.info.used_graphs);
  EXPECT_EQ(0, std::memcmp(a.x.data(), b.x.data(), a.x.size() * 4));
}

INSTANTIATE_TEST_SUITE_P(
    Engine, GpuVsCpu,
    ::testing::Values(Case{"gauss_identity", 0, false}, Case{"gauss_mask", 1, false}, Case{"gauss_downsample", 2, false},
                      Case{"gauss_blur", 3, false}, Case{"gauss_matrix", 4, false}, Case{"gauss_prior_only", 5, false},
                      Case{"gmm_identity", 0, true}, Case{"gmm_mask", 1, true}, Case{"gmm_downsample", 2, true},
                      Case{"gmm_blur", 3, true}, Case{"gmm_matrix", 4, true}, Case{"gmm_prior_only", 5, true},
                      Case{"gmm_mask_tweedie", 1, true, ALMC_METHOD_ALMC, 1, 1, true},
                      Case{"gmm_mask_average_last", 1, true, ALMC_METHOD_ALMC, 1, 1, false, 5},
                      Case{"gmm_matrix_per_measurement", 4, true, ALMC_METHOD_ALMC, 3, 3},
                      Case{"gauss_mask_3_measurements", 1, false, ALMC_METHOD_ALMC, 3, 1},
                      Case{"gmm_mask_xgp", 1, true, ALMC_METHOD_XGP}, Case{"gmm_mask_ald", 1, true, ALMC_METHOD_ALD},
                      Case{"gmm_mask_d1024", 1, true, ALMC_METHOD_ALMC, 1, 1, false, 0, 1024},
                      Case{"gauss_identity_d1026", 0, false, ALMC_METHOD_ALMC, 1, 1, false, 0, 1026},
                      Case{"gmm_identity_d6", 0, true, ALMC_METHOD_ALMC, 1, 1, false, 0, 6},
                      Case{"gmm_identity_d2", 0, true, ALMC_METHOD_ALMC, 1, 1, false, 0, 2},
                      Case{"gmm_matrix_d2", 4, true, ALMC_METHOD_ALMC, 1, 1, false, 0, 2},
                      Case{"gauss_mask_d32", 1, false, ALMC_METHOD_ALMC, 1, 1, false, 0, 32},
                      Case{"gmm_downsample_d32", 2, true, ALMC_METHOD_ALMC, 1, 1, false, 0, 32},
                      Case{"gmm_blur_d16", 3, true, ALMC_METHOD_ALMC, 1, 1, false, 0, 16},
                      Case{"gmm_prior_only_d13", 5, true, ALMC_METHOD_ALMC, 1, 1, false, 0, 13},
                      Case{"gmm_mask_xgp_d8", 1, true, ALMC_METHOD_XGP, 1, 1, false, 0, 8}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

}  // namespace
