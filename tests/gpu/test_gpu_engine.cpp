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

TEST(Gpu, RawUniformsBitIdenticalToCpu) {
  REQUIRE_DEVICE();
  auto gpu = almc::make_cuda_backend(0, nullptr);
  auto cpu = almc::make_cpu_backend(0);
  const int64_t n = 37, d = 1001;
  std::vector<float> a(n * d), b(n * d);
  almc::Buffer g(gpu.get(), a.size() * 4);
  gpu->fill_random(g.f(), n, d, 5, 1234, 77, 1.f, true);
  gpu->sync();
  g.download(a.data(), g.bytes());
  cpu->fill_random(b.data(), n, d, 5, 1234, 77, 1.f, true);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
  // Normals may differ in the last bits (fast device intrinsics), not more.
  gpu->fill_random(g.f(), n, d, 5, 1234, 77, 1.f, false);
  gpu->sync();
  g.download(a.data(), g.bytes());
  cpu->fill_random(b.data(), n, d, 5, 1234, 77, 1.f, false);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5f * (1 + std::fabs(b[i])));
}

struct RunResult {
  std::vector<float> x;
  almc_run_info info;
};

RunResult run(almc_backend backend, int op_kind, bool gmm, bool graphs) {
  almc::Context ctx(backend);
  const int64_t d = 64;
  almc_test::Lcg rng(3);
  auto mu = rng.normals(2 * d);
  std::vector<float> var(2 * d, 0.5f), w = {0.4f, 0.6f};
  auto prior = gmm ? almc::Score::gmm(ctx, 2, d, w, mu, var)
                   : almc::Score::gaussian(ctx, std::vector<float>(mu.begin(), mu.begin() + d), var);
  std::vector<float> mask(d);
  for (int64_t j = 0; j < d; ++j) mask[j] = j % 3 ? 1.f : 0.f;
  auto op = op_kind == 0   ? almc::Operator::identity(ctx, d)
            : op_kind == 1 ? almc::Operator::mask(ctx, mask)
            : op_kind == 2 ? almc::Operator::downsample(ctx, 1, 8, 8, 2)
            : op_kind == 3 ? almc::Operator::blur(ctx, 1, 8, 8, 3, 3, std::vector<float>(9, 1.f / 9))
                           : almc::Operator::matrix(ctx, 16, d, 1, rng.normals(16 * d, 0.2));
  almc_sampler_config c = almc_test::quick_almc(33, 7, 0.3);
  c.use_graphs = graphs;
  almc::Sampler s(ctx, prior, &op, c);
  s.set_measurement(rng.normals(static_cast<size_t>(op.dims().first)));
  s.run();
  return {s.samples(), s.info()};
}

class GpuVsCpu : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(GpuVsCpu, SameSeedSameSamples) {
  REQUIRE_DEVICE();
  const auto [op, gmm] = GetParam();
  const auto c = run(ALMC_BACKEND_CPU, op, gmm, false);
  const auto g = run(ALMC_BACKEND_CUDA, op, gmm, true);
  EXPECT_TRUE(g.info.used_graphs);
  ASSERT_EQ(c.x.size(), g.x.size());
  for (size_t i = 0; i < c.x.size(); ++i) ASSERT_NEAR(c.x[i], g.x[i], 2e-3f * (1 + std::fabs(c.x[i]))) << i;
}

TEST_P(GpuVsCpu, GraphReplayEqualsEager) {
  REQUIRE_DEVICE();
  const auto [op, gmm] = GetParam();
  const auto a = run(ALMC_BACKEND_CUDA, op, gmm, true);
  const auto b = run(ALMC_BACKEND_CUDA, op, gmm, false);
  EXPECT_TRUE(a.info.used_graphs);
  EXPECT_FALSE(b.info.used_graphs);
  EXPECT_EQ(0, std::memcmp(a.x.data(), b.x.data(), a.x.size() * 4));
}

INSTANTIATE_TEST_SUITE_P(Engine, GpuVsCpu, ::testing::Combine(::testing::Values(0, 1, 2, 3, 4), ::testing::Bool()));

}  // namespace
