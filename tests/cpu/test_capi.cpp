// The C API contract: bad arguments give statuses and messages, never a crash.
#include <almc/almc.h>

#include "tests/common/cpu_context.hpp"
#include "tests/common/test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

namespace {

using Ctx = almc_test::CpuContext;

TEST(CApi, StatusStringsAndVersion) {
  for (int s = ALMC_OK; s <= ALMC_ERR_INTERNAL; ++s)
    EXPECT_STRNE(almc_status_string(static_cast<almc_status>(s)), "unknown status");
  EXPECT_STREQ(almc_status_string(static_cast<almc_status>(999)), "unknown status");
  EXPECT_EQ(std::string(almc_version()), std::to_string(ALMC_VERSION_MAJOR) + "." + std::to_string(ALMC_VERSION_MINOR) +
                                             "." + std::to_string(ALMC_VERSION_PATCH));
  EXPECT_NE(std::string(almc_build_info()).find("cpu"), std::string::npos);
}

TEST(CApi, ContextArguments) {
  EXPECT_EQ(almc_context_create(nullptr, nullptr), ALMC_ERR_NULL_POINTER);
  almc_context_config c = almc_context_config_default();
  c.struct_size = 3;
  almc_context_t h = reinterpret_cast<almc_context_t>(0x1);
  EXPECT_EQ(almc_context_create(&c, &h), ALMC_ERR_STRUCT_SIZE);
  EXPECT_EQ(h, nullptr);
  c = almc_context_config_default();
  c.backend = static_cast<almc_backend>(7);
  EXPECT_EQ(almc_context_create(&c, &h), ALMC_ERR_INVALID_ARGUMENT);
  c.backend = ALMC_BACKEND_AUTO;
  c.n_threads = -2;
  EXPECT_EQ(almc_context_create(&c, &h), ALMC_ERR_INVALID_ARGUMENT);
  int n = -1;
  EXPECT_EQ(almc_cuda_device_count(&n), ALMC_OK);
  EXPECT_GE(n, 0);
  EXPECT_EQ(almc_cuda_device_count(nullptr), ALMC_ERR_NULL_POINTER);
  // NULL handles everywhere.
  almc_backend b;
  EXPECT_EQ(almc_context_backend(nullptr, &b), ALMC_ERR_NULL_POINTER);
  EXPECT_STRNE(almc_context_last_error(nullptr), "");
  almc_context_destroy(nullptr);
  almc_score_destroy(nullptr);
  almc_operator_destroy(nullptr);
  almc_sampler_destroy(nullptr);
}

TEST(CApi, AutoBackendFallsBackToCpuAndSaysSo) {
  int n = 0;
  almc_cuda_device_count(&n);
  if (n > 0) GTEST_SKIP() << "a CUDA device is present: auto picks it";
  std::string logged;
  almc_context_config c = almc_context_config_default();
  c.log = [](almc_log_level, const char* msg, void* ud) { *static_cast<std::string*>(ud) += msg; };
  c.log_user_data = &logged;
  almc_context_t h = nullptr;
  ASSERT_EQ(almc_context_create(&c, &h), ALMC_OK);
  almc_backend b = ALMC_BACKEND_AUTO;
  EXPECT_EQ(almc_context_backend(h, &b), ALMC_OK);
  EXPECT_EQ(b, ALMC_BACKEND_CPU);
  EXPECT_NE(logged.find("backend: cpu"), std::string::npos) << logged;
  almc_context_destroy(h);
  c.backend = ALMC_BACKEND_CUDA;
  EXPECT_EQ(almc_context_create(&c, &h), ALMC_ERR_NO_DEVICE);
}

TEST(CApi, ScoreAndOperatorArguments) {
  Ctx ctx;
  almc_score_t s = nullptr;
  const float m[2] = {0, 0}, v[2] = {1, 1}, bad[2] = {1, -1}, nanv[2] = {NAN, 1};
  EXPECT_EQ(almc_score_create_gaussian(ctx.h, 2, nullptr, v, &s), ALMC_ERR_NULL_POINTER);
  EXPECT_EQ(almc_score_create_gaussian(ctx.h, 0, m, v, &s), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_score_create_gaussian(ctx.h, 2, m, bad, &s), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(almc_context_last_error(ctx.h)).find("variances"), std::string::npos);
  EXPECT_EQ(almc_score_create_gaussian(ctx.h, 2, nanv, v, &s), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_score_create_gaussian(nullptr, 2, m, v, &s), ALMC_ERR_NULL_POINTER);
  EXPECT_EQ(almc_score_create_gmm(ctx.h, INT64_MAX, INT64_MAX, v, m, v, &s), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(almc_context_last_error(ctx.h)).find("overflow"), std::string::npos)
      << almc_context_last_error(ctx.h);
  EXPECT_EQ(almc_score_create_callback(ctx.h, 2, nullptr, nullptr, 0, &s), ALMC_ERR_NULL_POINTER);
  ASSERT_EQ(almc_score_create_gaussian(ctx.h, 2, m, v, &s), ALMC_OK);
  float out[2];
  EXPECT_EQ(almc_score_evaluate(s, m, out, 1, -1.0), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_score_evaluate(s, m, out, 1, NAN), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_score_evaluate(s, nullptr, out, 1, 1.0), ALMC_ERR_NULL_POINTER);
  EXPECT_EQ(almc_score_evaluate(s, m, out, 0, 1.0), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_score_evaluate(nullptr, m, out, 1, 1.0), ALMC_ERR_NULL_POINTER);
  almc_score_destroy(s);

  almc_operator_t op = nullptr;
  EXPECT_EQ(almc_operator_create_downsample(ctx.h, 1, 5, 4, 2, &op), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(almc_context_last_error(ctx.h)).find("divisible"), std::string::npos);
  EXPECT_EQ(almc_operator_create_blur(ctx.h, 1, 4, 4, 2, 3, v, &op), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_operator_create_matrix(ctx.h, 0, 2, 1, v, &op), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_operator_create_matrix(ctx.h, 1, 2, 1, nanv, &op), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_operator_create_mask(ctx.h, 2, nullptr, &op), ALMC_ERR_NULL_POINTER);
  EXPECT_EQ(almc_operator_create_identity(ctx.h, -1, &op), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_operator_create_identity(ctx.h, 2, nullptr), ALMC_ERR_NULL_POINTER);
  ASSERT_EQ(almc_operator_create_identity(ctx.h, 2, &op), ALMC_OK);
  EXPECT_EQ(almc_operator_forward(op, m, out, 0, 0), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_operator_forward(op, m, out, 1, -3), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_operator_dims(op, nullptr, nullptr), ALMC_ERR_NULL_POINTER);
  almc_operator_destroy(op);
}

int gauss_cb(const float* x, float* s, int64_t n, int64_t d, const almc_level* lv, const almc_level_device*, void*,
             void*) {
  // N(0, I) prior: p_t = N(0, I) at every t, score -x.
  for (int64_t i = 0; i < n * d; ++i) s[i] = -x[i];
  return lv->t > 0 ? 0 : 5;
}

int failing_cb(const float*, float*, int64_t, int64_t, const almc_level* lv, const almc_level_device*, void*,
               void* ud) {
  ++*static_cast<int*>(ud);
  return lv->step >= 3 ? 42 : 0;
}

TEST(CApi, SamplerArgumentsAndOrder) {
  Ctx ctx;
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_callback(ctx.h, 3, gauss_cb, nullptr, 0, &s), ALMC_OK);
  almc_operator_t op = nullptr;
  ASSERT_EQ(almc_operator_create_identity(ctx.h, 3, &op), ALMC_OK);
  almc_operator_t op4 = nullptr;
  ASSERT_EQ(almc_operator_create_identity(ctx.h, 4, &op4), ALMC_OK);
  almc_sampler_config c = almc_test::quick_almc(4, 1, 0.5);
  almc_sampler_t sm = nullptr;
  almc_sampler_config wrong = c;
  wrong.struct_size = ALMC_SAMPLER_CONFIG_MIN_SIZE - 8;  // below the first layout
  EXPECT_EQ(almc_sampler_create(ctx.h, s, op, &wrong, &sm), ALMC_ERR_STRUCT_SIZE);
  EXPECT_EQ(almc_sampler_create(ctx.h, s, op, nullptr, &sm), ALMC_ERR_NULL_POINTER);
  EXPECT_EQ(almc_sampler_create(ctx.h, nullptr, op, &c, &sm), ALMC_ERR_NULL_POINTER);
  EXPECT_EQ(almc_sampler_create(ctx.h, s, op4, &c, &sm), ALMC_ERR_INVALID_ARGUMENT);
  for (auto mutate : std::vector<void (*)(almc_sampler_config&)>{
           [](almc_sampler_config& k) { k.chains_per_meas = 0; },
           [](almc_sampler_config& k) { k.n_meas = -1; },
           [](almc_sampler_config& k) { k.noise_std = -0.1; },
           [](almc_sampler_config& k) { k.noise_std = NAN; },
           [](almc_sampler_config& k) { k.kappa = INFINITY; },
           [](almc_sampler_config& k) { k.delta = NAN; },
           [](almc_sampler_config& k) { k.method = static_cast<almc_method>(9); },
           [](almc_sampler_config& k) { k.t_stop = 10; },
           [](almc_sampler_config& k) { k.n_meas = INT64_MAX / 2; k.chains_per_meas = 4; },
           [](almc_sampler_config& k) { k.schedule = ALMC_SCHEDULE_LIST; },
       }) {
    almc_sampler_config k = c;
    mutate(k);
    EXPECT_EQ(almc_sampler_create(ctx.h, s, op, &k, &sm), ALMC_ERR_INVALID_ARGUMENT) << almc_context_last_error(ctx.h);
    EXPECT_EQ(sm, nullptr);
  }
  // The stability guard: identity with sigma_y = 0.01 makes delta = 0.01 unstable.
  almc_sampler_config u = c;
  u.noise_std = 0.01;
  EXPECT_EQ(almc_sampler_create(ctx.h, s, op, &u, &sm), ALMC_ERR_UNSTABLE);
  const std::string msg = almc_context_last_error(ctx.h);
  EXPECT_NE(msg.find("largest stable delta is 0.00019998"), std::string::npos) << msg;
  u.force_unstable = 1;
  ASSERT_EQ(almc_sampler_create(ctx.h, s, op, &u, &sm), ALMC_OK);
  almc_sampler_destroy(sm);

  ASSERT_EQ(almc_sampler_create(ctx.h, s, op, &c, &sm), ALMC_OK);
  float out[12];
  EXPECT_EQ(almc_sampler_run(sm), ALMC_ERR_WRONG_STATE);  // no measurement yet
  EXPECT_EQ(almc_sampler_get_samples(sm, out), ALMC_ERR_WRONG_STATE);
  const float ybad[3] = {0, NAN, 1}, y[3] = {0.5f, -0.5f, 1};
  EXPECT_EQ(almc_sampler_set_measurement(sm, ybad), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(almc_sampler_last_error(sm)).find("y[1]"), std::string::npos);
  EXPECT_EQ(almc_sampler_set_measurement(sm, nullptr), ALMC_ERR_NULL_POINTER);
  EXPECT_EQ(almc_sampler_set_state(sm, y), ALMC_ERR_WRONG_STATE);
  ASSERT_EQ(almc_sampler_set_measurement(sm, y), ALMC_OK);
  EXPECT_EQ(almc_sampler_run(sm), ALMC_OK) << almc_sampler_last_error(sm);
  EXPECT_EQ(almc_sampler_get_samples(sm, out), ALMC_OK);
  almc_run_info info{};
  EXPECT_EQ(almc_sampler_run_info(sm, &info), ALMC_ERR_STRUCT_SIZE);
  info.struct_size = sizeof info;
  EXPECT_EQ(almc_sampler_run_info(sm, &info), ALMC_OK);
  EXPECT_EQ(info.score_evals, info.steps - info.warm_steps);
  for (float v : out) EXPECT_TRUE(std::isfinite(v));
  almc_sampler_destroy(sm);

  // A failing score callback stops the run with ALMC_ERR_CALLBACK and a message naming the step.
  int calls = 0;
  almc_score_t fs = nullptr;
  ASSERT_EQ(almc_score_create_callback(ctx.h, 3, failing_cb, &calls, 0, &fs), ALMC_OK);
  ASSERT_EQ(almc_sampler_create(ctx.h, fs, op, &c, &sm), ALMC_OK);
  ASSERT_EQ(almc_sampler_set_measurement(sm, y), ALMC_OK);
  EXPECT_EQ(almc_sampler_run(sm), ALMC_ERR_CALLBACK);
  EXPECT_NE(std::string(almc_sampler_last_error(sm)).find("returned 42"), std::string::npos) << almc_sampler_last_error(sm);
  EXPECT_EQ(calls, 1);  // the warm start never calls the prior; step 3 is the first annealing step
  almc_sampler_destroy(sm);
  almc_score_destroy(fs);
  almc_operator_destroy(op);
  almc_operator_destroy(op4);
  almc_score_destroy(s);
}

int nan_cb(const float* x, float* s, int64_t n, int64_t d, const almc_level* lv, const almc_level_device*, void*,
           void*) {
  for (int64_t i = 0; i < n * d; ++i) s[i] = lv->step == 30 && i == 5 ? NAN : -x[i];
  return 0;
}

TEST(CApi, DivergedChainIsNamed) {
  Ctx ctx;
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_callback(ctx.h, 3, nan_cb, nullptr, 0, &s), ALMC_OK);
  almc_sampler_config c = almc_test::quick_almc(4, 1, 0.5);
  c.check_every = 10;
  almc_sampler_t sm = nullptr;
  ASSERT_EQ(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_OK);
  EXPECT_EQ(almc_sampler_run(sm), ALMC_ERR_DIVERGED);
  EXPECT_NE(std::string(almc_sampler_last_error(sm)).find("chain 1 "), std::string::npos) << almc_sampler_last_error(sm);
  // A callback score is named as a possible cause (it was blamed on the step size alone).
  EXPECT_NE(std::string(almc_sampler_last_error(sm)).find("did the score return NaN or Inf for a finite x?"),
            std::string::npos)
      << almc_sampler_last_error(sm);
  almc_run_info info{};
  info.struct_size = sizeof info;
  almc_sampler_run_info(sm, &info);
  EXPECT_EQ(info.diverged_chain, 1);
  EXPECT_EQ(info.diverged_step, 40);
  almc_sampler_destroy(sm);
  almc_score_destroy(s);
}

TEST(CApi, GmmJson) {
  Ctx ctx;
  const std::string dir = ::testing::TempDir();
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + name) << text;
    return dir + name;
  };
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_gmm_json(
                ctx.h, write("ok.json", R"({"weights":[1,3],"means":[[0,1],[2,3]],"variances":[[1,1],[0.5,2]]})").c_str(),
                &s),
            ALMC_OK)
      << almc_context_last_error(ctx.h);
  int64_t d = 0;
  almc_score_dim(s, &d);
  EXPECT_EQ(d, 2);
  almc_score_destroy(s);
  ASSERT_EQ(almc_score_create_gmm_json(ctx.h, write("iso.json", R"({"weights":[1],"means":[[0,1,2]],"stds":[0.5]})").c_str(), &s),
            ALMC_OK);
  almc_score_destroy(s);
  const std::pair<const char*, const char*> bad[] = {
      {R"({"weights":[1],"means":[[0,1]],"variances":[[1]]})", "length"},
      {R"({"weights":[1,1],"means":[[0,1]],"variances":[[1,1]]})", "entries"},
      {R"({"weights":[1],"means":[[0,"x"]],"variances":[[1,1]]})", "not a number"},
      {R"({"weights":[1],"means":[[0,1]],"variances":[[1,0]]})", "positive"},
      {R"({"weights":[-1],"means":[[0,1]],"variances":[[1,1]]})", "negative"},
      {R"({"weights":[1],"means":[[0,1]]})", "variances"},
      {R"({"weights":[1],"means":[[0,1e999]],"variances":[[1,1]]})", "JSON"},
      {R"([1,2,3])", "object"},
      {R"({"weights":[1],"means":[[0,1]],"variances":[[1,1]])", "not valid JSON"},
  };
  int i = 0;
  for (const auto& [text, needle] : bad) {
    EXPECT_EQ(almc_score_create_gmm_json(ctx.h, write("bad" + std::to_string(i++) + ".json", text).c_str(), &s),
              ALMC_ERR_PARSE)
        << text;
    EXPECT_NE(std::string(almc_context_last_error(ctx.h)).find(needle), std::string::npos)
        << text << " -> " << almc_context_last_error(ctx.h);
  }
  EXPECT_EQ(almc_score_create_gmm_json(ctx.h, (dir + "missing.json").c_str(), &s), ALMC_ERR_IO);
  EXPECT_EQ(almc_score_create_gmm_json(ctx.h, nullptr, &s), ALMC_ERR_NULL_POINTER);
}

}  // namespace
