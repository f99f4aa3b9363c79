// The C API contract: bad arguments give statuses and messages, never a crash.
#include <almc/almc.h>

#include "tests/common/cpu_context.hpp"
#include "tests/common/test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

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
  // The warm start's step has its own bound: identity, sigma_y = 0.5 (L = 4) gives 2 / (1 + 4) = 0.4.
  // A warm step of 0.45 (delta stays 0.01, stable) is refused and 0.35 is not; with no warm start
  // the warm step does not matter.
  almc_sampler_config wu = c;
  wu.warm_step = 0.45;
  EXPECT_EQ(almc_sampler_create(ctx.h, s, op, &wu, &sm), ALMC_ERR_UNSTABLE);
  const std::string wmsg = almc_context_last_error(ctx.h);
  EXPECT_NE(wmsg.find("warm_step = 0.45"), std::string::npos) << wmsg;
  EXPECT_NE(wmsg.find("largest stable warm step is 0.4"), std::string::npos) << wmsg;
  wu.warm_steps = 0;
  ASSERT_EQ(almc_sampler_create(ctx.h, s, op, &wu, &sm), ALMC_OK) << almc_context_last_error(ctx.h);
  almc_sampler_destroy(sm);
  wu.warm_steps = -1;
  wu.warm_step = 0.35;
  ASSERT_EQ(almc_sampler_create(ctx.h, s, op, &wu, &sm), ALMC_OK) << almc_context_last_error(ctx.h);
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

// The prior N(0.7, 0.3 I) in 3-D noised to OU time t: its score depends on the level, so a level
// field that is read changes the samples.
int level_gauss_cb(const float* x, float* s, int64_t n, int64_t d, const almc_level* lv, const almc_level_device*,
                   void*, void*) {
  const double a = std::exp(-lv->t), v = a * a * 0.3 + 1 - a * a;
  for (int64_t i = 0; i < n * d; ++i) s[i] = static_cast<float>(-(x[i] - a * 0.7) / v);
  return 0;
}

// almc_method_reads_field against the engine itself: for every method, schedule and field, a run
// with the field changed gives the same samples exactly when the table says the field is not read.
// (ALMC under the paper's likelihood with a level list does not use t_start, the warm start's level,
// whose target is then N(0, I) times the likelihood at any level: the table counts it as read, for
// the other likelihood variants; that case is checked only in the "not read" direction.)
TEST(CApi, MethodReadsFieldMatchesTheRun) {
  Ctx ctx;
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_callback(ctx.h, 3, level_gauss_cb, nullptr, 0, &s), ALMC_OK);
  almc_operator_t op = nullptr;
  ASSERT_EQ(almc_operator_create_identity(ctx.h, 3, &op), ALMC_OK);
  const double levels[4] = {1.0, 0.5, 0.2, 0.1};
  const float y[3] = {0.4f, -0.3f, 1.1f};
  auto run = [&](const almc_sampler_config& c) {
    almc_sampler_t sm = nullptr;
    std::vector<float> out(12, NAN);
    EXPECT_EQ(almc_sampler_create(ctx.h, s, op, &c, &sm), ALMC_OK) << almc_context_last_error(ctx.h);
    if (!sm) return out;
    EXPECT_EQ(almc_sampler_set_measurement(sm, y), ALMC_OK);
    EXPECT_EQ(almc_sampler_run(sm), ALMC_OK) << almc_sampler_last_error(sm);
    EXPECT_EQ(almc_sampler_get_samples(sm, out.data()), ALMC_OK);
    almc_sampler_destroy(sm);
    return out;
  };
  using Set = void (*)(almc_sampler_config&);
  const std::vector<std::pair<const char*, Set>> fields = {
      {"kappa", [](almc_sampler_config& k) { k.kappa = 1.5; }},
      {"delta", [](almc_sampler_config& k) { k.delta = 0.015; }},
      {"t_start", [](almc_sampler_config& k) { k.t_start = 1.2; }},
      {"t_stop", [](almc_sampler_config& k) { k.t_stop = 0.15; }},
      {"warm_steps", [](almc_sampler_config& k) { k.warm_steps = 5; }},
      {"warm_step", [](almc_sampler_config& k) { k.warm_step = 0.05; }},
      {"n_levels", [](almc_sampler_config& k) { k.n_levels = 6; }},
      {"steps_per_level", [](almc_sampler_config& k) { k.steps_per_level = 3; }},
      {"sigma_max", [](almc_sampler_config& k) { k.sigma_max = 4; }},
      {"sigma_min", [](almc_sampler_config& k) { k.sigma_min = 0.2; }},
      {"eps", [](almc_sampler_config& k) { k.eps = 2e-3; }}};
  int checked = 0;
  for (almc_method m : {ALMC_METHOD_ALMC, ALMC_METHOD_NCSN, ALMC_METHOD_ALD, ALMC_METHOD_XGP, ALMC_METHOD_LANGEVIN})
    for (almc_schedule sch : {ALMC_SCHEDULE_DEFAULT, ALMC_SCHEDULE_UNIFORM_T, ALMC_SCHEDULE_GEOMETRIC_SIGMA, ALMC_SCHEDULE_LIST})
      for (almc_variant var : {ALMC_VARIANT_PAPER, ALMC_VARIANT_NOISED_LIK}) {
        if (var != ALMC_VARIANT_PAPER && m != ALMC_METHOD_ALMC) continue;
        almc_sampler_config base = almc_test::quick_almc(4, 3, 0.5);  // kappa 1, t_start 1
        base.method = m;
        base.schedule = sch;
        base.variant = var;
        base.delta = 0.02;
        base.t_stop = 0.1;
        base.warm_steps = 3;
        base.warm_step = 0.1;
        base.n_levels = 5;
        base.steps_per_level = 2;
        base.sigma_max = 5;
        base.sigma_min = 0.1;
        base.eps = 1e-3;
        base.levels = levels;
        base.n_levels_list = 4;
        const std::vector<float> ref = run(base);
        for (const auto& [name, set] : fields) {
          SCOPED_TRACE(std::string(name) + " method " + std::to_string(m) + " schedule " + std::to_string(sch) +
                       " variant " + std::to_string(var));
          const int reads = almc_method_reads_field(m, sch, name);
          ASSERT_TRUE(reads == 0 || reads == 1);
          almc_sampler_config k = base;
          set(k);
          const std::vector<float> got = run(k);
          for (float v : got) ASSERT_TRUE(std::isfinite(v));
          if (reads == 0) {
            EXPECT_EQ(got, ref) << "the table says the field is not read, but the samples changed";
          } else if (!(m == ALMC_METHOD_ALMC && sch == ALMC_SCHEDULE_LIST && var == ALMC_VARIANT_PAPER &&
                       std::string(name) == "t_start")) {
            EXPECT_NE(got, ref) << "the table says the field is read, but the samples did not change";
          }
          ++checked;
        }
      }
  EXPECT_EQ(checked, 6 * 4 * 11);
  // Other names, and no name, are not fields of the table.
  EXPECT_EQ(almc_method_reads_field(ALMC_METHOD_ALMC, ALMC_SCHEDULE_DEFAULT, "noise_std"), -1);
  EXPECT_EQ(almc_method_reads_field(ALMC_METHOD_ALMC, ALMC_SCHEDULE_DEFAULT, "Kappa"), -1);
  EXPECT_EQ(almc_method_reads_field(ALMC_METHOD_ALMC, ALMC_SCHEDULE_DEFAULT, nullptr), -1);
  EXPECT_EQ(almc_method_reads_field(static_cast<almc_method>(9), ALMC_SCHEDULE_DEFAULT, "kappa"), -1);
  EXPECT_EQ(almc_method_reads_field(ALMC_METHOD_ALMC, static_cast<almc_schedule>(7), "kappa"), -1);
  almc_operator_destroy(op);
  almc_score_destroy(s);
}

// One level was the top of the schedule (t_start, sigma_max; XGP's eta = sigma_max), so
// `--method langevin --levels 1` sampled the prior at t = 5, nearly N(0, I), instead of the target:
// a 4-D Gaussian prior N(m, v) seen through the identity with sigma_y 0.5 came back with mean ~0.
// Now the one level is the last one (t_stop, sigma_min, sigma_y), and each method's mean matches
// the closed form of the posterior under the prior noised to that level, N(e^-t m, e^-2t v + 1 - e^-2t).
// Tolerance: 5 standard errors of a mean over 2000 independent chains (Langevin's stationary mean
// is exact for a Gaussian target; the step's bias is in the variance), plus 0.02 for the chains'
// distance from stationarity after 1500 steps of contraction >= 0.03 (the prior-only XGP level
// has eps 1e-3: 3000 steps).
TEST(CApi, OneLevelIsTheLastLevel) {
  Ctx ctx;
  const float m[4] = {1.f, -2.f, 0.5f, 3.f}, v[4] = {2.f, 0.5f, 1.f, 4.f}, y[4] = {0.3f, -1.f, 1.2f, 2.f};
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_gaussian(ctx.h, 4, m, v, &s), ALMC_OK);
  almc_operator_t op = nullptr;
  ASSERT_EQ(almc_operator_create_identity(ctx.h, 4, &op), ALMC_OK);
  const double sy2 = 0.25;
  struct Case {
    almc_method method;
    almc_schedule schedule;
    double t_level;  // the OU time of the prior at the one level
  };
  const double t_sigma_min = 0.5 * std::log1p(0.01 * 0.01);
  for (const Case& k : {Case{ALMC_METHOD_LANGEVIN, ALMC_SCHEDULE_DEFAULT, 0.01},
                        Case{ALMC_METHOD_LANGEVIN, ALMC_SCHEDULE_GEOMETRIC_SIGMA, t_sigma_min},
                        Case{ALMC_METHOD_ALD, ALMC_SCHEDULE_DEFAULT, t_sigma_min},
                        Case{ALMC_METHOD_ALD, ALMC_SCHEDULE_UNIFORM_T, 0.01},
                        Case{ALMC_METHOD_XGP, ALMC_SCHEDULE_DEFAULT, 0.01}}) {
    SCOPED_TRACE("method " + std::to_string(k.method) + " schedule " + std::to_string(k.schedule));
    almc_sampler_config c = almc_sampler_config_default();
    c.method = k.method;
    c.schedule = k.schedule;
    c.chains_per_meas = 2000;
    c.seed = 11;
    c.noise_std = 0.5;
    c.n_levels = 1;
    c.steps_per_level = k.method == ALMC_METHOD_XGP ? 3000 : 1500;
    c.delta = 0.02;
    c.eps = k.method == ALMC_METHOD_XGP ? 1e-3 : 0.02;  // ALD's step at its one level is eps itself
    almc_sampler_t sm = nullptr;
    ASSERT_EQ(almc_sampler_create(ctx.h, s, op, &c, &sm), ALMC_OK) << almc_context_last_error(ctx.h);
    ASSERT_EQ(almc_sampler_set_measurement(sm, y), ALMC_OK);
    ASSERT_EQ(almc_sampler_run(sm), ALMC_OK) << almc_sampler_last_error(sm);
    std::vector<float> mean(4), sd(4);
    ASSERT_EQ(almc_sampler_get_mean_std(sm, mean.data(), sd.data()), ALMC_OK);
    almc_sampler_destroy(sm);
    const double a = std::exp(-k.t_level);
    for (int j = 0; j < 4; ++j) {
      const double vt = a * a * v[j] + 1 - a * a, mt = a * m[j];
      const double post_mean = (vt * y[j] + sy2 * mt) / (vt + sy2), post_var = vt * sy2 / (vt + sy2);
      // ALD's chains end in VE coordinates scaled back to the data: at sigma_min = 0.01 the same.
      EXPECT_NEAR(mean[j], post_mean, 5 * std::sqrt(post_var / 2000) + 0.02) << "coordinate " << j;
    }
  }
  almc_operator_destroy(op);
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
