// The C++ wrapper (include/almc/almc.hpp): handles are shared, so a Sampler built from temporaries
// keeps them alive (issue 12, item 5), and operators are taken by reference.
#include <gtest/gtest.h>

#include <almc/almc.hpp>

#include <cmath>
#include <string>
#include <type_traits>

namespace {

// Operators by reference; the prior alone without one.
static_assert(std::is_constructible_v<almc::Sampler, const almc::Context&, const almc::Score&, const almc::Operator&,
                                      const almc_sampler_config&>);
static_assert(std::is_constructible_v<almc::Sampler, const almc::Context&, const almc::Score&, const almc_sampler_config&>);

almc_sampler_config quick(int64_t chains) {
  almc_sampler_config c = almc_sampler_config_default();
  c.n_meas = 1;
  c.chains_per_meas = chains;
  c.seed = 7;
  c.noise_std = 0.5;
  c.kappa = 2;
  c.delta = 4e-3;
  return c;
}

// Every handle passed as a temporary: before handles were shared this read freed memory
// (a crash under ASan, garbage or a segfault without). The posterior of N(m, 1) observed
// through the identity with sigma 0.5 has mean (m + 4 y) / 5 at tau = 0.
TEST(CxxWrapper, SamplerKeepsTemporariesAlive) {
  const int64_t chains = 400;
  const std::vector<float> m = {1.f, -1.f}, v = {1.f, 1.f}, y = {0.5f, 0.5f};
  std::unique_ptr<almc::Sampler> s;
  {
    almc::Context ctx(ALMC_BACKEND_CPU);
    s = std::make_unique<almc::Sampler>(almc::Context(ctx), almc::Score::gaussian(ctx, m, v),
                                        almc::Operator::identity(ctx, 2), quick(chains));
  }  // the caller's handles are gone; the sampler's copies remain
  s->set_measurement(y);
  s->run();
  const auto [mean, sd] = s->mean_std();
  for (int j = 0; j < 2; ++j) {
    const double want = (m[j] + 4 * y[j]) / 5, post_sd = std::sqrt(1.0 / 5);
    // 5 Monte Carlo standard errors plus 0.05 for tau = 0.01 and the ULA lag at kappa 2.
    EXPECT_NEAR(mean[j], want, 5 * post_sd / std::sqrt(double(chains)) + 0.05) << j;
    EXPECT_NEAR(sd[j], post_sd, 0.15 * post_sd) << j;
  }
}

TEST(CxxWrapper, HandlesShareOneObject) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  almc::Score a = almc::Score::gaussian(ctx, {0.f, 0.f, 0.f}, {1.f, 1.f, 1.f});
  almc::Score b = a;  // a copy shares the handle
  EXPECT_EQ(a.get(), b.get());
  a = almc::Score();
  EXPECT_EQ(b.dim(), 3);
  almc::Sampler prior_only(ctx, b, quick(8));
  prior_only.run();
  EXPECT_EQ(prior_only.samples().size(), 24u);
}

// Exceptions carry the failing call's own message. The wrapper used to take the *_last_error
// pointer as an argument of the same call, before the failure replaced the string it points to
// (on a fresh handle: "invalid argument: " and a garbage byte).
TEST(CxxWrapper, ExceptionsCarryTheMessageOfTheFailure) {
  auto message = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const almc::Exception& e) {
      return e.what();
    }
    return "no exception";
  };
  almc::Context ctx(ALMC_BACKEND_CPU);
  const std::string missing = ::testing::TempDir() + "no_such_prior.json";
  EXPECT_NE(message([&] { almc::Score::gmm_json(ctx, missing); }).find(missing), std::string::npos)
      << message([&] { almc::Score::gmm_json(ctx, missing); });
  almc::Context fresh(ALMC_BACKEND_CPU);
  const std::string blur = message([&] { almc::Operator::blur(fresh, 1, 8, 8, 2, 3, std::vector<float>(6, 0.1f)); });
  EXPECT_EQ(blur.rfind("invalid argument: ", 0), 0u) << blur;
  EXPECT_NE(blur.find("must have odd sizes"), std::string::npos) << blur;
  // On the sampler's own handle: a measurement for a sampler without an operator.
  almc::Score prior = almc::Score::gaussian(fresh, {0.f, 0.f}, {1.f, 1.f});
  almc::Sampler s(fresh, prior, quick(4));
  const std::string meas = message([&] { s.set_measurement({1.f, 2.f}); });
  EXPECT_NE(meas.find("no operator, so no measurement"), std::string::npos) << meas;
}

// Vectors of the wrong size were passed on as pointers: the C API then read (or wrote) past their
// end (a heap-buffer-overflow under ASan for a 1-value y), or evaluate() dropped a partial row.
// Now each is refused with the sizes named, before any C call.
TEST(CxxWrapper, VectorsOfTheWrongSizeAreRefused) {
  auto refusal = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const almc::Exception& e) {
      EXPECT_EQ(e.status(), ALMC_ERR_INVALID_ARGUMENT);
      return e.what();
    }
    return "no exception";
  };
  almc::Context ctx(ALMC_BACKEND_CPU);
  almc::Score prior = almc::Score::gaussian(ctx, {1, -2, 0.5f, 3}, {2, 0.5f, 1, 4});
  almc::Operator op = almc::Operator::identity(ctx, 4);
  almc_sampler_config c = quick(3);
  c.n_meas = 2;
  almc::Sampler s(ctx, prior, op, c);
  for (size_t bad : {size_t(1), size_t(4), size_t(9), size_t(100)})
    EXPECT_NE(refusal([&] { s.set_measurement(std::vector<float>(bad, 0.f)); }).find("not n_meas x m = 2 x 4"),
              std::string::npos)
        << bad;
  EXPECT_NE(refusal([&] { s.set_state(std::vector<float>(4, 0.f)); }).find("not n_chains x d = 6 x 4"), std::string::npos);
  EXPECT_NE(refusal([&] { op.forward({1.f}, 3); }).find("forward: x has 1 values, not n x 4 = 12"), std::string::npos);
  EXPECT_NE(refusal([&] { op.adjoint(std::vector<float>(13), 3); }).find("adjoint: y has 13 values"), std::string::npos);
  EXPECT_NE(refusal([&] { prior.evaluate(std::vector<float>(6, 1.f), 0.5); }).find("not a whole number of rows of d = 4"),
            std::string::npos);
  EXPECT_NE(refusal([&] { almc::Operator::blur(ctx, 1, 8, 8, 3, 3, std::vector<float>(4, 0.1f)); })
                .find("the kernel has 4 values, not kh x kw = 3 x 3"),
            std::string::npos);
  // The right sizes still run.
  s.set_measurement(std::vector<float>(8, 0.5f));
  s.run();
  EXPECT_EQ(s.samples().size(), 24u);
  EXPECT_EQ(op.forward(std::vector<float>(12, 1.f), 3).size(), 12u);
  EXPECT_EQ(prior.evaluate(std::vector<float>(8, 1.f), 0.5).size(), 8u);
}

// A config of the first released layout (struct_size = ALMC_SAMPLER_CONFIG_MIN_SIZE) has no chain
// range: the library runs every chain whatever the bytes beyond struct_size hold, but the wrapper
// read chain_count there and sized samples() for 5 chains, into which the C call wrote 64 (a heap
// overflow). The wrapper now reads the config as the library does.
TEST(CxxWrapper, SizesComeFromTheFieldsWithinStructSize) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  almc::Score prior = almc::Score::gaussian(ctx, {0.f, 1.f, 2.f, 3.f}, {1.f, 1.f, 1.f, 1.f});
  almc::Operator op = almc::Operator::identity(ctx, 4);
  almc_sampler_config c = quick(16);
  c.n_meas = 2;
  c.struct_size = ALMC_SAMPLER_CONFIG_MIN_SIZE;
  c.chain_start = 7;  // beyond struct_size: not read
  c.chain_count = 5;
  almc::Sampler s(ctx, prior, op, c);
  s.set_measurement(std::vector<float>(8, 0.5f));
  s.run();
  EXPECT_EQ(s.samples().size(), 2u * 16u * 4u);
  const auto [mean, sd] = s.mean_std();
  EXPECT_EQ(mean.size(), 2u * 4u);
  EXPECT_EQ(sd.size(), 2u * 4u);
  EXPECT_THROW(s.set_state(std::vector<float>(5 * 4, 0.f)), almc::Exception);
}

// mean_std() on a slice smaller than a measurement (3 .. 12 of 64 chains) asked for 10 / 64 = 0
// rows and passed two null pointers: "mean and std are both NULL" instead of the library's
// refusal of a slice that splits a measurement. The same for a slice of whole rows off the
// measurements' boundaries.
TEST(CxxWrapper, MeanStdOfASplitMeasurementIsTheLibrarysRefusal) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  almc::Score prior = almc::Score::gaussian(ctx, {0.f, 1.f}, {1.f, 1.f});
  almc::Operator op = almc::Operator::identity(ctx, 2);
  for (const auto& [start, count] : {std::pair<int64_t, int64_t>{3, 10}, {32, 64}}) {
    almc_sampler_config c = quick(64);
    c.n_meas = 2;
    c.chain_start = start;
    c.chain_count = count;
    almc::Sampler s(ctx, prior, op, c);
    s.set_measurement(std::vector<float>(4, 0.5f));
    s.run();
    EXPECT_EQ(s.samples().size(), static_cast<size_t>(count * 2));
    try {
      s.mean_std();
      ADD_FAILURE() << "no exception for the slice " << start << ":" << count;
    } catch (const almc::Exception& e) {
      EXPECT_EQ(e.status(), ALMC_ERR_UNSUPPORTED) << e.what();
      EXPECT_NE(std::string(e.what()).find("splits a measurement's chains"), std::string::npos) << e.what();
    }
  }
  // A slice of whole measurements has their rows.
  almc_sampler_config c = quick(64);
  c.n_meas = 3;
  c.chain_start = 64;
  c.chain_count = 128;
  almc::Sampler s(ctx, prior, op, c);
  s.set_measurement(std::vector<float>(6, 0.5f));
  s.run();
  EXPECT_EQ(s.mean_std().first.size(), 2u * 2u);
}

// A context that could not be made threw "almc_context_create failed": the library's reason (here
// the struct sizes it accepts) had no handle to be read from. It is the thread's now.
TEST(CxxWrapper, AContextThatCannotBeMadeSaysWhy) {
  almc_context_config c = almc_context_config_default();
  c.backend = ALMC_BACKEND_CPU;
  c.struct_size = 8;
  try {
    almc::Context ctx(c);
    ADD_FAILURE() << "no exception";
  } catch (const almc::Exception& e) {
    EXPECT_EQ(e.status(), ALMC_ERR_STRUCT_SIZE);
    EXPECT_NE(std::string(e.what()).find("config->struct_size is 8: this library accepts"), std::string::npos) << e.what();
  }
  c.struct_size = sizeof c;
  c.n_threads = -3;
  try {
    almc::Context ctx(c);
    ADD_FAILURE() << "no exception";
  } catch (const almc::Exception& e) {
    EXPECT_EQ(std::string(e.what()), "invalid argument: n_threads = -3 must be >= 0");
  }
}

}  // namespace
