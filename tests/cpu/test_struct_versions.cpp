// Versioned structs (struct_size, almc.h): a program compiled against an older header passes a
// prefix of today's struct; the library takes the fields it has and gives the rest their defaults.
// The "older" structs here are today's with struct_size set to the first released layout and the
// bytes after it filled with values that would change or break the run if they were read.
#include <almc/almc.h>

#include "tests/common/cpu_context.hpp"
#include "tests/common/test_util.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

using Ctx = almc_test::CpuContext;

// The samples of a small Gaussian-prior run with `cfg`, or the create status when it fails.
almc_status run(const Ctx& ctx, const almc_sampler_config& cfg, std::vector<float>* out) {
  const int64_t d = 3;
  const float mean[d] = {0.5f, -1.f, 2.f}, var[d] = {1.f, 0.5f, 2.f}, y[d] = {0.2f, 0.1f, 1.5f};
  almc_score_t s = nullptr;
  almc_operator_t op = nullptr;
  EXPECT_EQ(almc_score_create_gaussian(ctx.h, d, mean, var, &s), ALMC_OK);
  EXPECT_EQ(almc_operator_create_identity(ctx.h, d, &op), ALMC_OK);
  almc_sampler_t sm = nullptr;
  almc_status st = almc_sampler_create(ctx.h, s, op, &cfg, &sm);
  if (st == ALMC_OK) {
    EXPECT_EQ(almc_sampler_set_measurement(sm, y), ALMC_OK);
    EXPECT_EQ(almc_sampler_run(sm), ALMC_OK) << almc_sampler_last_error(sm);
    out->assign(static_cast<size_t>(cfg.chains_per_meas * d), 0.f);
    EXPECT_EQ(almc_sampler_get_samples(sm, out->data()), ALMC_OK);
    almc_sampler_destroy(sm);
  }
  almc_operator_destroy(op);
  almc_score_destroy(s);
  return st;
}

TEST(StructVersions, FirstLayoutsArePrefixesOfToday) {
  // The first layouts (almc 0.1.0's first C API) end where these fields were appended; a size
  // check that is only ever "== sizeof" would make every one of these equal to sizeof.
  EXPECT_LT(ALMC_SAMPLER_CONFIG_MIN_SIZE, sizeof(almc_sampler_config));
  EXPECT_LT(ALMC_ONNX_CONFIG_MIN_SIZE, sizeof(almc_onnx_config));
  EXPECT_LT(ALMC_RUN_INFO_MIN_SIZE, sizeof(almc_run_info));
  EXPECT_EQ(ALMC_CONTEXT_CONFIG_MIN_SIZE, sizeof(almc_context_config));
  // sizeof of each struct as the first C API's header declared it (include/almc/almc.h of commit
  // 22dec9d compiled with gcc on x86-64): what a program built against it passes.
  if (sizeof(void*) == 8) {
    EXPECT_EQ(ALMC_SAMPLER_CONFIG_MIN_SIZE, 248u);
    EXPECT_EQ(ALMC_ONNX_CONFIG_MIN_SIZE, 72u);
    EXPECT_EQ(ALMC_RUN_INFO_MIN_SIZE, 96u);
    EXPECT_EQ(ALMC_CONTEXT_CONFIG_MIN_SIZE, 56u);
  }
}

TEST(StructVersions, AnOlderSamplerConfigGetsTheDefaultsOfTheFieldsItLacks) {
  Ctx ctx;
  almc_sampler_config cfg = almc_test::quick_almc(4, 7, 0.5);
  std::vector<float> want, got;
  ASSERT_EQ(run(ctx, cfg, &want), ALMC_OK) << ctx.err();

  // The same run from a first-layout struct whose later bytes hold garbage: a slice of 1 chain,
  // SMC, a checkpoint every step with a NULL callback... none of which may be read.
  almc_sampler_config old = cfg;
  old.struct_size = ALMC_SAMPLER_CONFIG_MIN_SIZE;
  std::memset(reinterpret_cast<unsigned char*>(&old) + ALMC_SAMPLER_CONFIG_MIN_SIZE, 0x5a,
              sizeof old - ALMC_SAMPLER_CONFIG_MIN_SIZE);
  old.chain_start = 2;
  old.chain_count = 1;
  old.variant = ALMC_VARIANT_SMC;
  old.checkpoint_every = 1;
  ASSERT_EQ(run(ctx, old, &got), ALMC_OK) << ctx.err();
  EXPECT_EQ(got, want);

  // Every accepted size in between: the prefix is the caller's, the rest the defaults.
  almc_sampler_config mid = old;
  mid.struct_size = offsetof(almc_sampler_config, variant);  // has the slice fields, not the rest
  mid.chain_start = 0;
  mid.chain_count = 0;
  ASSERT_EQ(run(ctx, mid, &got), ALMC_OK) << ctx.err();
  EXPECT_EQ(got, want);
}

TEST(StructVersions, SizesOutsideTheKnownLayoutsAreRefusedNamingThem) {
  Ctx ctx;
  std::vector<float> out;
  const std::string accepted = "accepts " + std::to_string(ALMC_SAMPLER_CONFIG_MIN_SIZE) + " (its first layout) to " +
                               std::to_string(sizeof(almc_sampler_config)) + " in multiples of 8";
  for (size_t size : {size_t(0), size_t(8), ALMC_SAMPLER_CONFIG_MIN_SIZE - 8, ALMC_SAMPLER_CONFIG_MIN_SIZE + 4,
                      sizeof(almc_sampler_config) - 1, sizeof(almc_sampler_config) + 8, size_t(SIZE_MAX)}) {
    almc_sampler_config c = almc_test::quick_almc(4, 7, 0.5);
    c.struct_size = size;
    EXPECT_EQ(run(ctx, c, &out), ALMC_ERR_STRUCT_SIZE) << size;
    const std::string err = ctx.err();
    EXPECT_NE(err.find("config->struct_size is " + std::to_string(size) + ": this library " + accepted),
              std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos);
  }
  almc_sampler_config newer = almc_test::quick_almc(4, 7, 0.5);
  newer.struct_size = sizeof newer + 16;
  EXPECT_EQ(run(ctx, newer, &out), ALMC_ERR_STRUCT_SIZE);
  EXPECT_NE(ctx.err().find("built against a newer almc header"), std::string::npos) << ctx.err();

  // The context config: the whole of today's struct is its first layout.
  almc_context_config cc = almc_context_config_default();
  almc_context_t h = nullptr;
  cc.struct_size = ALMC_CONTEXT_CONFIG_MIN_SIZE;
  cc.backend = ALMC_BACKEND_CPU;
  ASSERT_EQ(almc_context_create(&cc, &h), ALMC_OK);
  almc_context_destroy(h);
  cc.struct_size = ALMC_CONTEXT_CONFIG_MIN_SIZE - 8;
  EXPECT_EQ(almc_context_create(&cc, &h), ALMC_ERR_STRUCT_SIZE);
}

TEST(StructVersions, AnOlderRunInfoIsFilledUpToItsSize) {
  Ctx ctx;
  const float mean[2] = {0.f, 0.f}, var[2] = {1.f, 1.f};
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_gaussian(ctx.h, 2, mean, var, &s), ALMC_OK);
  almc_sampler_config cfg = almc_test::quick_almc(2, 1, 0.5);
  almc_sampler_t sm = nullptr;
  ASSERT_EQ(almc_sampler_create(ctx.h, s, nullptr, &cfg, &sm), ALMC_OK) << ctx.err();
  ASSERT_EQ(almc_sampler_run(sm), ALMC_OK);
  almc_run_info now{};
  now.struct_size = sizeof now;
  ASSERT_EQ(almc_sampler_run_info(sm, &now), ALMC_OK);

  almc_run_info old;
  std::memset(&old, 0x77, sizeof old);
  old.struct_size = ALMC_RUN_INFO_MIN_SIZE;
  ASSERT_EQ(almc_sampler_run_info(sm, &old), ALMC_OK);
  EXPECT_EQ(old.struct_size, ALMC_RUN_INFO_MIN_SIZE);  // the caller's, kept
  EXPECT_EQ(old.steps, now.steps);
  EXPECT_GT(old.steps, 0);
  EXPECT_EQ(old.used_graphs, now.used_graphs);
  // Nothing written past the caller's struct.
  const unsigned char* tail = reinterpret_cast<const unsigned char*>(&old) + ALMC_RUN_INFO_MIN_SIZE;
  for (size_t i = 0; i < sizeof old - ALMC_RUN_INFO_MIN_SIZE; ++i) ASSERT_EQ(tail[i], 0x77) << i;

  old.struct_size = ALMC_RUN_INFO_MIN_SIZE + 4;
  EXPECT_EQ(almc_sampler_run_info(sm, &old), ALMC_ERR_STRUCT_SIZE);
  EXPECT_NE(std::string(almc_sampler_last_error(sm)).find("out->struct_size is " + std::to_string(ALMC_RUN_INFO_MIN_SIZE + 4)),
            std::string::npos);
  almc_sampler_destroy(sm);
  almc_score_destroy(s);
}

TEST(StructVersions, AnOlderOnnxConfigGetsTheDefaultsOfTheFieldsItLacks) {
  Ctx ctx;
  const std::string model = almc_test::data_dir() + "/onnx/gauss_vp_eps.onnx";
  almc_onnx_config cfg = almc_onnx_config_default();
  cfg.output = ALMC_OUTPUT_EPS;
  cfg.convention = ALMC_CONV_VP;
  almc_score_t want = nullptr, got = nullptr;
  ASSERT_EQ(almc_score_create_onnx(ctx.h, model.c_str(), &cfg, &want), ALMC_OK) << ctx.err();
  // Garbage after the first layout: an output slice, constant inputs that are not there, an
  // unknown precision; each would change or refuse the score if it were read.
  almc_onnx_config old = cfg;
  old.struct_size = ALMC_ONNX_CONFIG_MIN_SIZE;
  std::memset(reinterpret_cast<unsigned char*>(&old) + ALMC_ONNX_CONFIG_MIN_SIZE, 0x5a,
              sizeof old - ALMC_ONNX_CONFIG_MIN_SIZE);
  old.output_channel_begin = 1;
  old.output_channel_end = 2;
  old.inputs = nullptr;
  old.n_inputs = 3;
  old.precision = static_cast<almc_precision>(9);
  ASSERT_EQ(almc_score_create_onnx(ctx.h, model.c_str(), &old, &got), ALMC_OK) << ctx.err();
  int64_t d = 0;
  ASSERT_EQ(almc_score_dim(want, &d), ALMC_OK);
  std::vector<float> x(static_cast<size_t>(3 * d)), a(x.size()), b(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * float(i) - 0.7f;
  ASSERT_EQ(almc_score_evaluate(want, x.data(), a.data(), 3, 0.3), ALMC_OK);
  ASSERT_EQ(almc_score_evaluate(got, x.data(), b.data(), 3, 0.3), ALMC_OK);
  EXPECT_EQ(a, b);
  almc_score_destroy(got);
  old.struct_size = ALMC_ONNX_CONFIG_MIN_SIZE - 8;
  EXPECT_EQ(almc_score_create_onnx(ctx.h, model.c_str(), &old, &got), ALMC_ERR_STRUCT_SIZE);
  EXPECT_NE(ctx.err().find("accepts " + std::to_string(ALMC_ONNX_CONFIG_MIN_SIZE) + " (its first layout)"),
            std::string::npos) << ctx.err();
  almc_score_destroy(want);
}

}  // namespace
