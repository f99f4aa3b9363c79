// The per-chain whole step of short rows (cuda/langevin/chain_step.cuh) on the CPU: the same bits
// as the multi-pass step it replaces there (every prior, operator, warm and annealing steps),
// whatever the thread count, also with the device's way of drawing the normals (philox_normal4 a
// group at a time, run here on the host); and whole runs of the tiny problem on every path.
#include "cuda/langevin/chain_step.cuh"
#include "host/backend/backend.hpp"
#include "host/backend/cpu_noise.hpp"
#include "host/backend/cpu_noise_batch.hpp"
#include "tests/common/step_case.hpp"
#include "tests/common/test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

using almc_test::EnvGuard;
using almc_test::StepCase;

namespace {

constexpr const char* kChainEnv = "ALMC_CPU_CHAIN_STEP_MAX_D";

// The step of chains 0 .. n of p with chain_step, normals from philox_normal4 one group at a time.
template <int32_t Prior, int32_t Op>
void direct_chains(const almc::FusedStepParams& p) {
  float xi[almc::kChainStepMaxD], s[almc::kChainStepMaxD], g[almc::kChainStepMaxD];
  const almc::ChainScratch w{xi, s, g};
  const almc::StepScalars cur = *p.cur;
  for (int64_t c = 0; c < p.n; ++c) almc::chain_step<Prior, Op>(p, cur, c, true, almc::GroupNormals{}, w);
}

template <int32_t Prior>
void direct_prior(const almc::FusedStepParams& p) {
  switch (p.op.kind) {
    case almc::kOpNone: return direct_chains<Prior, almc::kOpNone>(p);
    case almc::kOpIdentity: return direct_chains<Prior, almc::kOpIdentity>(p);
    case almc::kOpMask: return direct_chains<Prior, almc::kOpMask>(p);
    case almc::kOpDownsample: return direct_chains<Prior, almc::kOpDownsample>(p);
    default: return direct_chains<Prior, almc::kOpBlur>(p);
  }
}

void direct_step(const almc::FusedStepParams& p) {
  switch (p.prior) {
    case almc::kPriorGaussian: return direct_prior<almc::kPriorGaussian>(p);
    case almc::kPriorGmm: return direct_prior<almc::kPriorGmm>(p);
    default: return direct_prior<almc::kPriorBuffer>(p);
  }
}

// Enough chains that two threads share the step (the backend gives a thread 32k numbers of work).
int64_t chains_for(int64_t d) { return std::max<int64_t>(200, 7000 / d); }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), 4 * a.size()) == 0;
}

// The multi-pass step (per-chain step turned off) against the per-chain step on 1 and 2 threads
// and against chain_step called directly with the device's normals: every bit of x and of the
// responsibilities. Each comparison fails when any piece of the per-chain step (its lane order,
// the score's component order, the normals' stream or the likelihood term) differs.
TEST(ChainStep, SameBitsAsMultiPassStep) {
  int checked = 0;
  for (const StepCase& k : almc_test::step_cases())
  for (const int64_t n : {int64_t(3), chains_for(k.d)}) {  // 3: fewer chains than a long row has groups
    almc_test::StepOutput ref;
    {
      EnvGuard off(kChainEnv, "0");
      auto be = almc::make_cpu_backend(2);
      ref = almc_test::run_step(be.get(), k, n, 11);
    }
    // The step moved every chain's row (a comparison of untouched rows would prove nothing).
    ASSERT_FALSE(same_bits(ref.x, ref.x0)) << k.name();
    EnvGuard on(kChainEnv, nullptr);
    for (int threads : {1, 2}) {
      auto be = almc::make_cpu_backend(threads);
      const auto out = almc_test::run_step(be.get(), k, n, 11);
      EXPECT_TRUE(same_bits(ref.x, out.x)) << k.name() << ", " << threads << " threads, " << n << " chains";
      EXPECT_TRUE(same_bits(ref.resp, out.resp)) << k.name() << ", " << threads << " threads, " << n
                                                 << " chains (responsibilities)";
    }
    if (!k.staged) {
      auto be = almc::make_cpu_backend(1);
      const auto out = almc_test::run_step(be.get(), k, n, 11, direct_step);
      EXPECT_TRUE(same_bits(ref.x, out.x)) << k.name() << ", chain_step with philox_normal4";
      EXPECT_TRUE(same_bits(ref.resp, out.resp)) << k.name() << ", chain_step with philox_normal4 (responsibilities)";
    }
    ++checked;
  }
  EXPECT_GT(checked, 200);
}

// The normals of one coordinate group of many streams at once (the per-chain step's draw for
// short rows), on every instruction set this CPU has and through philox_normals_streams: the bits
// of philox_normal4, for batches of 1 .. 64 streams and more than a batch.
TEST(ChainStep, NormalsOfManyStreamsAreScalarBitsOnEveryIsa) {
  namespace cn = almc::cpu_noise;
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  struct Isa {
    const char* name;
    cn::StreamsFn fn;
    bool have;
  };
  const Isa isas[] = {{"sse2", cn::streams_sse, true},
                      {"avx2", cn::streams_avx2, avx2},
                      {"avx512", cn::streams_avx512, avx2 && static_cast<bool>(__builtin_cpu_supports("avx512f"))}};
  std::mt19937_64 gen(9);
  for (int round = 0; round < 60; ++round) {
    const uint64_t seed = gen(), step = gen() >> 33, group = gen() >> 40;
    const int64_t n = round == 0 ? 150 : 1 + static_cast<int64_t>(gen() % cn::kBatch);
    std::vector<uint64_t> streams(static_cast<size_t>(n));
    for (auto& s : streams) s = (gen() >> 33) << 32 | (gen() >> 40);  // q << 32 | j
    std::vector<float> want(static_cast<size_t>(4 * n)), got(want.size());
    for (int64_t i = 0; i < n; ++i) {
      const float4 v = almc::philox_normal4(seed, streams[i], step, group);
      std::memcpy(&want[4 * static_cast<size_t>(i)], &v, sizeof v);
    }
    almc::philox_normals_streams(seed, streams.data(), step, group, n, got.data());
    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), 4 * got.size())) << "round " << round << " n " << n;
    if (n > cn::kBatch) continue;
    const almc::PhiloxKey key = almc::philox_key(seed, 0, step);
    alignas(64) unsigned int c1[cn::kBatch] = {}, c3[cn::kBatch] = {};
    for (int64_t i = 0; i < n; ++i) {
      c1[i] = static_cast<unsigned int>(streams[i] >> 32);
      c3[i] = static_cast<unsigned int>(streams[i]);
    }
    for (const Isa& isa : isas) {
      if (!isa.have) continue;
      std::fill(got.begin(), got.end(), 0.f);
      isa.fn(key, static_cast<unsigned int>(group), c1, c3, static_cast<int>(n), got.data());
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), 4 * got.size())) << isa.name << " round " << round << " n " << n;
    }
  }
}

// Whole runs: the tiny problem of issue 10 (2-D GMM prior of 3 components, dense 1 x 2 A) and
// short rows under a mask and average pooling. Chain 17 is the same bits with the per-chain step
// off (multi-pass) or on, on 1 or 2 threads, among 20, 64 or 600 chains.
TEST(ChainStep, TinyProblemRunsSameBitsOnEveryPath) {
  for (const char* kind : {"matrix_d2", "mask_d5", "downsample_1x2x4"}) {
    const std::string kd = kind;
    std::vector<std::vector<float>> rows;
    for (auto [env, threads, n] : std::vector<std::tuple<const char*, int, int64_t>>{
             {"0", 2, 600}, {nullptr, 1, 20}, {nullptr, 2, 64}, {nullptr, 2, 600}}) {
      EnvGuard guard(kChainEnv, env);
      almc_context_config cc = almc_context_config_default();
      cc.backend = ALMC_BACKEND_CPU;
      cc.n_threads = threads;
      almc::Context ctx(cc);
      const int64_t d = kd == "matrix_d2" ? 2 : kd == "mask_d5" ? 5 : 8;
      almc_test::Lcg rng(77);
      const int64_t K = 3;
      const auto mu = rng.normals(static_cast<size_t>(K * d));
      std::vector<float> var(static_cast<size_t>(K * d)), w = {0.2f, 0.3f, 0.5f};
      for (size_t i = 0; i < var.size(); ++i) var[i] = 0.1f + 0.05f * static_cast<float>(i);
      auto prior = almc::Score::gmm(ctx, K, d, w, mu, var);
      auto op = kd == "matrix_d2" ? almc::Operator::matrix(ctx, 1, 2, 1, {0.8f, -0.6f})
                : kd == "mask_d5" ? almc::Operator::mask(ctx, {1.f, 0.f, 1.f, 1.f, 0.f})
                                  : almc::Operator::downsample(ctx, 1, 2, 4, 2);
      almc::Sampler s(ctx, prior, &op, almc_test::quick_almc(n, 5, 0.3));
      s.set_measurement(std::vector<float>(static_cast<size_t>(op.dims().first), 0.4f));
      s.run();
      const auto x = s.samples();
      rows.emplace_back(x.begin() + 17 * d, x.begin() + 18 * d);
    }
    for (size_t i = 1; i < rows.size(); ++i) EXPECT_TRUE(same_bits(rows[0], rows[i])) << kind << " run " << i;
    EXPECT_GT(std::fabs(rows[0][0]) + std::fabs(rows[0][1]), 0.f) << kind;
  }
}

}  // namespace
