// Reliability (issue 7): the C API contract beyond test_capi.cpp. Every entry point with NULL
// handles and pointers, zero, negative, huge and overflowing sizes, NaN and Inf, wrong struct_size,
// calls out of order, failing and NaN-writing callbacks; runs that cannot fit in memory; handles
// that stay usable after a failure; independent handles used from several threads at once.
// Each case must give a status and a non-empty message, never a crash (the sanitizer build runs
// this file under ASan and UBSan: scripts/sanitize.sh).
#include <almc/almc.h>

#include "tests/common/test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr float kInff = std::numeric_limits<float>::infinity();

almc_context_t cpu_context(int threads = 1) {
  almc_context_config c = almc_context_config_default();
  c.backend = ALMC_BACKEND_CPU;
  c.n_threads = threads;
  almc_context_t h = nullptr;
  EXPECT_EQ(almc_context_create(&c, &h), ALMC_OK);
  return h;
}

struct Ctx {
  almc_context_t h = cpu_context();
  ~Ctx() { almc_context_destroy(h); }
  std::string err() const { return almc_context_last_error(h); }
};

// A failure must come with a message; the macro keeps the line of the call in the report.
#define EXPECT_FAILS_WITH(call, status, message_fn)                              \
  do {                                                                           \
    const almc_status st_ = (call);                                              \
    EXPECT_EQ(st_, status) << #call << ": " << (message_fn);                    \
    EXPECT_FALSE(std::string(message_fn).empty()) << #call << " left no message"; \
  } while (0)

int neg_x_score(const float* x, float* s, int64_t n, int64_t d, const almc_level*, const almc_level_device*, void*,
                void*) {
  for (int64_t i = 0; i < n * d; ++i) s[i] = -x[i];
  return 0;
}

// Callbacks that must never be called: the calls that take them fail before running anything.
int unused_linear(const float*, float*, int64_t, int64_t, int64_t, void*, void*) {
  ADD_FAILURE() << "unused_linear was called";
  return 1;
}
int unused_neg_grad(const float*, const float*, float*, int64_t, int64_t, int64_t, void*, void*) {
  ADD_FAILURE() << "unused_neg_grad was called";
  return 1;
}

// ------------------------------------------------------------------ NULL handles and pointers

TEST(Reliability, NullHandlesGiveNullPointerOnEveryEntryPoint) {
  float f[4] = {0, 0, 0, 0};
  double dbl = 0;
  int64_t i64 = 0, j64 = 0;
  float* fp = nullptr;
  size_t sz = 0;
  void* p = nullptr;
  almc_backend b;
  almc_run_info info{};
  info.struct_size = sizeof info;
  const almc_onnx_config oc = almc_onnx_config_default();
  const almc_sampler_config sc = almc_sampler_config_default();
  const almc_status N = ALMC_ERR_NULL_POINTER;
  almc_score_t s = reinterpret_cast<almc_score_t>(0x1);
  almc_operator_t op = reinterpret_cast<almc_operator_t>(0x1);
  almc_sampler_t sm = reinterpret_cast<almc_sampler_t>(0x1);

  EXPECT_EQ(almc_context_backend(nullptr, &b), N);
  EXPECT_STREQ(almc_context_device_name(nullptr), "");
  EXPECT_EQ(almc_malloc(nullptr, 16, &p), N);
  EXPECT_EQ(almc_free(nullptr, nullptr), N);
  EXPECT_EQ(almc_memcpy(nullptr, f, f, 4, 0), N);
  EXPECT_EQ(almc_synchronize(nullptr), N);

  EXPECT_EQ(almc_score_create_callback(nullptr, 2, neg_x_score, nullptr, 0, &s), N);
  EXPECT_EQ(s, nullptr);  // out is cleared on failure
  EXPECT_EQ(almc_score_create_gaussian(nullptr, 2, f, f, &s), N);
  EXPECT_EQ(almc_score_create_gmm(nullptr, 1, 2, f, f, f, &s), N);
  EXPECT_EQ(almc_score_create_gmm_json(nullptr, "x.json", &s), N);
  EXPECT_EQ(almc_score_create_onnx(nullptr, "x.onnx", &oc, &s), N);
  EXPECT_EQ(almc_onnx_eval_raw(nullptr, "x.onnx", &oc, f, 1, 1, 0.f, f), N);
  EXPECT_EQ(almc_score_dim(nullptr, &i64), N);
  EXPECT_EQ(almc_score_evaluate(nullptr, f, f, 1, 1.0), N);
  EXPECT_STRNE(almc_score_last_error(nullptr), "");

  EXPECT_EQ(almc_operator_create_identity(nullptr, 2, &op), N);
  EXPECT_EQ(op, nullptr);
  EXPECT_EQ(almc_operator_create_mask(nullptr, 2, f, &op), N);
  EXPECT_EQ(almc_operator_create_downsample(nullptr, 1, 2, 2, 2, &op), N);
  EXPECT_EQ(almc_operator_create_blur(nullptr, 1, 2, 2, 1, 1, f, &op), N);
  EXPECT_EQ(almc_operator_create_matrix(nullptr, 1, 2, 1, f, &op), N);
  EXPECT_EQ(almc_operator_create_linear_callback(nullptr, 1, 1, nullptr, nullptr, nullptr, 1.0, &op), N);
  EXPECT_EQ(almc_operator_create_neg_grad_callback(nullptr, 1, 1, nullptr, nullptr, &op), N);
  EXPECT_EQ(almc_operator_dims(nullptr, &i64, &j64), N);
  EXPECT_EQ(almc_operator_forward(nullptr, f, f, 1, 0), N);
  EXPECT_EQ(almc_operator_adjoint(nullptr, f, f, 1, 0), N);
  EXPECT_EQ(almc_operator_norm(nullptr, &dbl), N);
  EXPECT_STRNE(almc_operator_last_error(nullptr), "");

  EXPECT_EQ(almc_sampler_create(nullptr, nullptr, nullptr, &sc, &sm), N);
  EXPECT_EQ(sm, nullptr);
  EXPECT_EQ(almc_sampler_set_measurement(nullptr, f), N);
  EXPECT_EQ(almc_sampler_set_state(nullptr, f), N);
  EXPECT_EQ(almc_sampler_run(nullptr), N);
  EXPECT_EQ(almc_sampler_get_samples(nullptr, f), N);
  EXPECT_EQ(almc_sampler_get_mean_std(nullptr, f, f), N);
  EXPECT_EQ(almc_sampler_get_residuals(nullptr, f), N);
  EXPECT_EQ(almc_sampler_state_pointer(nullptr, &fp), N);
  EXPECT_EQ(almc_sampler_snapshot_count(nullptr, &i64), N);
  EXPECT_EQ(almc_sampler_get_snapshots(nullptr, f, &i64), N);
  EXPECT_EQ(almc_sampler_run_info(nullptr, &info), N);
  EXPECT_EQ(almc_sampler_workspace_bytes(nullptr, &sz), N);
  EXPECT_STRNE(almc_sampler_last_error(nullptr), "");
}

TEST(Reliability, NullArgumentsOnLiveHandles) {
  Ctx ctx;
  const almc_status N = ALMC_ERR_NULL_POINTER;
  const float f[4] = {0.f, 0.5f, 1.f, 1.f};
  float out[8];
  almc_score_t s = nullptr;
  almc_operator_t op = nullptr;
  EXPECT_FAILS_WITH(almc_context_backend(ctx.h, nullptr), N, ctx.err());
  EXPECT_FAILS_WITH(almc_malloc(ctx.h, 16, nullptr), N, ctx.err());
  EXPECT_FAILS_WITH(almc_memcpy(ctx.h, nullptr, f, 4, 0), N, ctx.err());
  EXPECT_FAILS_WITH(almc_memcpy(ctx.h, out, nullptr, 4, 0), N, ctx.err());
  EXPECT_FAILS_WITH(almc_score_create_gaussian(ctx.h, 2, f, f + 2, nullptr), N, ctx.err());
  EXPECT_FAILS_WITH(almc_score_create_gaussian(ctx.h, 2, f, nullptr, &s), N, ctx.err());
  EXPECT_FAILS_WITH(almc_score_create_gmm(ctx.h, 1, 2, nullptr, f, f + 2, &s), N, ctx.err());
  EXPECT_FAILS_WITH(almc_score_create_gmm(ctx.h, 1, 2, f + 2, nullptr, f + 2, &s), N, ctx.err());
  EXPECT_FAILS_WITH(almc_score_create_gmm_json(ctx.h, "x.json", nullptr), N, ctx.err());
  EXPECT_FAILS_WITH(almc_score_create_onnx(ctx.h, nullptr, nullptr, &s), N, ctx.err());
  almc_onnx_config oc = almc_onnx_config_default();
  EXPECT_FAILS_WITH(almc_score_create_onnx(ctx.h, "x.onnx", &oc, nullptr), N, ctx.err());
  EXPECT_FAILS_WITH(almc_onnx_eval_raw(ctx.h, nullptr, &oc, f, 1, 1, 0.f, out), N, ctx.err());
  EXPECT_FAILS_WITH(almc_onnx_eval_raw(ctx.h, "x.onnx", &oc, nullptr, 1, 1, 0.f, out), N, ctx.err());
  EXPECT_FAILS_WITH(almc_onnx_eval_raw(ctx.h, "x.onnx", &oc, f, 1, 1, 0.f, nullptr), N, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_blur(ctx.h, 1, 4, 4, 3, 3, nullptr, &op), N, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_matrix(ctx.h, 1, 2, 1, nullptr, &op), N, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_linear_callback(ctx.h, 1, 1, nullptr, nullptr, nullptr, 1.0, &op), N, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_neg_grad_callback(ctx.h, 1, 1, nullptr, nullptr, &op), N, ctx.err());
  EXPECT_EQ(op, nullptr);

  ASSERT_EQ(almc_score_create_gaussian(ctx.h, 2, f, f + 2, &s), ALMC_OK);
  EXPECT_FAILS_WITH(almc_score_dim(s, nullptr), N, almc_score_last_error(s));
  EXPECT_FAILS_WITH(almc_score_evaluate(s, f, nullptr, 1, 1.0), N, almc_score_last_error(s));
  ASSERT_EQ(almc_operator_create_identity(ctx.h, 2, &op), ALMC_OK);
  EXPECT_FAILS_WITH(almc_operator_forward(op, nullptr, out, 1, 0), N, almc_operator_last_error(op));
  EXPECT_FAILS_WITH(almc_operator_adjoint(op, f, nullptr, 1, 0), N, almc_operator_last_error(op));
  EXPECT_FAILS_WITH(almc_operator_norm(op, nullptr), N, almc_operator_last_error(op));
  int64_t m = 0;
  EXPECT_EQ(almc_operator_dims(op, &m, nullptr), ALMC_OK);  // one of the two is enough
  EXPECT_EQ(m, 2);

  almc_sampler_config c = almc_test::quick_almc(2, 1, 0.5);
  almc_sampler_t sm = nullptr;
  EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, s, op, &c, nullptr), N, ctx.err());
  ASSERT_EQ(almc_sampler_create(ctx.h, s, op, &c, &sm), ALMC_OK) << ctx.err();
  EXPECT_FAILS_WITH(almc_sampler_get_samples(sm, nullptr), N, almc_sampler_last_error(sm));
  EXPECT_FAILS_WITH(almc_sampler_get_mean_std(sm, nullptr, nullptr), N, almc_sampler_last_error(sm));
  EXPECT_FAILS_WITH(almc_sampler_get_residuals(sm, nullptr), N, almc_sampler_last_error(sm));
  EXPECT_FAILS_WITH(almc_sampler_state_pointer(sm, nullptr), N, almc_sampler_last_error(sm));
  EXPECT_FAILS_WITH(almc_sampler_snapshot_count(sm, nullptr), N, almc_sampler_last_error(sm));
  EXPECT_FAILS_WITH(almc_sampler_run_info(sm, nullptr), N, almc_sampler_last_error(sm));
  EXPECT_FAILS_WITH(almc_sampler_workspace_bytes(sm, nullptr), N, almc_sampler_last_error(sm));
  almc_sampler_destroy(sm);
  almc_operator_destroy(op);
  almc_score_destroy(s);
}

// ------------------------------------------------------------------ sizes

TEST(Reliability, ZeroNegativeHugeAndOverflowingSizes) {
  Ctx ctx;
  const almc_status I = ALMC_ERR_INVALID_ARGUMENT;
  const float f[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  almc_score_t s = nullptr;
  almc_operator_t op = nullptr;
  for (int64_t bad : {int64_t(0), int64_t(-1), INT64_MIN}) {
    EXPECT_FAILS_WITH(almc_score_create_callback(ctx.h, bad, neg_x_score, nullptr, 0, &s), I, ctx.err());
    EXPECT_FAILS_WITH(almc_score_create_gaussian(ctx.h, bad, f, f, &s), I, ctx.err());
    EXPECT_FAILS_WITH(almc_score_create_gmm(ctx.h, bad, 2, f, f, f, &s), I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_mask(ctx.h, bad, f, &op), I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_downsample(ctx.h, 1, bad, 4, 2, &op), I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_downsample(ctx.h, 1, 4, 4, bad, &op), I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_blur(ctx.h, bad, 4, 4, 3, 3, f, &op), I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_blur(ctx.h, 1, 4, 4, bad, 3, f, &op), I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_matrix(ctx.h, 2, 2, bad, f, &op), I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_linear_callback(ctx.h, bad, 2, unused_linear, unused_linear,
                                                           nullptr, 1.0, &op),
                      I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_neg_grad_callback(ctx.h, 2, bad, unused_neg_grad, nullptr, &op), I,
                      ctx.err());
  }
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(op, nullptr);

  // Products that overflow 64 bits are refused before any array is read or allocated (the
  // pointers given are far too short: reading them would be caught by ASan).
  const int64_t big = int64_t(1) << 33;
  EXPECT_FAILS_WITH(almc_score_create_gmm(ctx.h, big, big, f, f, f, &s), I, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_downsample(ctx.h, big, big, big, 1, &op), I, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_blur(ctx.h, big, big, big, 3, 3, f, &op), I, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_matrix(ctx.h, 1 << 30, 1 << 30, big, f, &op), I, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_matrix(ctx.h, INT64_MAX, 2, 1, f, &op), I, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_mask(ctx.h, INT64_MAX, f, &op), I, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_blur(ctx.h, 1, 4, 4, INT64_MAX, INT64_MAX, f, &op), I, ctx.err());
  EXPECT_FAILS_WITH(almc_operator_create_blur(ctx.h, 1, 4, 4, 4097, 1, f, &op), I, ctx.err());

  // Huge batch sizes in evaluations: n x d beyond any memory is refused, not attempted.
  ASSERT_EQ(almc_score_create_gaussian(ctx.h, 4, f, f, &s), ALMC_OK);
  float out[4];
  EXPECT_FAILS_WITH(almc_score_evaluate(s, f, out, INT64_MAX, 1.0), I, almc_score_last_error(s));
  EXPECT_FAILS_WITH(almc_score_evaluate(s, f, out, INT64_MIN, 1.0), I, almc_score_last_error(s));
  almc_score_destroy(s);
  ASSERT_EQ(almc_operator_create_identity(ctx.h, 4, &op), ALMC_OK);
  EXPECT_FAILS_WITH(almc_operator_forward(op, f, out, INT64_MAX, 0), I, almc_operator_last_error(op));
  EXPECT_FAILS_WITH(almc_operator_adjoint(op, f, out, int64_t(1) << 62, 0), I, almc_operator_last_error(op));
  almc_operator_destroy(op);

  // Sampler batches: n_meas x chains overflowing, and chains x d overflowing.
  almc_score_t cs = nullptr;
  ASSERT_EQ(almc_score_create_callback(ctx.h, INT64_MAX / 2, neg_x_score, nullptr, 0, &cs), ALMC_OK);
  almc_sampler_config c = almc_test::quick_almc(4, 1, 0.5);
  almc_sampler_t sm = nullptr;
  EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, cs, nullptr, &c, &sm), I, ctx.err());
  EXPECT_EQ(sm, nullptr);
  almc_score_destroy(cs);
  ASSERT_EQ(almc_score_create_callback(ctx.h, 2, neg_x_score, nullptr, 0, &cs), ALMC_OK);
  for (auto [nm, ch] : {std::pair<int64_t, int64_t>{INT64_MAX, INT64_MAX}, {int64_t(1) << 32, int64_t(1) << 32},
                        {INT64_MAX, 2}, {1, INT64_MAX}}) {
    c.n_meas = nm;
    c.chains_per_meas = ch;
    EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, cs, nullptr, &c, &sm), I, ctx.err());
  }
  almc_score_destroy(cs);

  // Memory helpers: zero bytes is a no-op, out-of-range kinds are refused.
  void* p = reinterpret_cast<void*>(0x1);
  EXPECT_EQ(almc_malloc(ctx.h, 0, &p), ALMC_OK);
  EXPECT_EQ(almc_free(ctx.h, p), ALMC_OK);
  EXPECT_EQ(almc_memcpy(ctx.h, nullptr, nullptr, 0, 0), ALMC_OK);
  float a = 1, b = 0;
  EXPECT_FAILS_WITH(almc_memcpy(ctx.h, &b, &a, sizeof a, 3), I, ctx.err());
  EXPECT_FAILS_WITH(almc_memcpy(ctx.h, &b, &a, sizeof a, -1), I, ctx.err());
  EXPECT_EQ(almc_memcpy(ctx.h, &b, &a, sizeof a, 0), ALMC_OK);
  EXPECT_EQ(b, 1.f);
}

// ------------------------------------------------------------------ NaN and Inf

TEST(Reliability, NonFiniteArraysAndScalarsAreRefused) {
  Ctx ctx;
  const almc_status I = ALMC_ERR_INVALID_ARGUMENT;
  const float ok[4] = {1, 1, 1, 1};
  almc_score_t s = nullptr;
  almc_operator_t op = nullptr;
  for (float bad : {kNaNf, kInff, -kInff}) {
    const float arr[4] = {1, bad, 1, 1};
    EXPECT_FAILS_WITH(almc_score_create_gaussian(ctx.h, 4, arr, ok, &s), I, ctx.err());
    EXPECT_FAILS_WITH(almc_score_create_gaussian(ctx.h, 4, ok, arr, &s), I, ctx.err());
    EXPECT_FAILS_WITH(almc_score_create_gmm(ctx.h, 2, 2, arr, ok, ok, &s), I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_mask(ctx.h, 4, arr, &op), I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_blur(ctx.h, 1, 2, 2, 1, 3, arr, &op), I, ctx.err());
    EXPECT_FAILS_WITH(almc_operator_create_matrix(ctx.h, 2, 2, 1, arr, &op), I, ctx.err());
  }
  EXPECT_FAILS_WITH(almc_operator_create_linear_callback(ctx.h, 1, 1, unused_linear, unused_linear, nullptr,
                                                         kNaN, &op),
                    I, ctx.err());
  const float zero_w[2] = {0, 0};
  EXPECT_FAILS_WITH(almc_score_create_gmm(ctx.h, 2, 2, zero_w, ok, ok, &s), I, ctx.err());

  ASSERT_EQ(almc_score_create_gaussian(ctx.h, 4, ok, ok, &s), ALMC_OK);
  float out[4];
  for (double t : {kNaN, kInf, -kInf, 0.0, -1e-300})
    EXPECT_FAILS_WITH(almc_score_evaluate(s, ok, out, 1, t), I, almc_score_last_error(s));

  // Every floating-point field of the sampler config: NaN and +-Inf are refused at create (a
  // non-positive value may select a default, a NaN must not slip through as one).
  almc_operator_t id = nullptr;
  ASSERT_EQ(almc_operator_create_identity(ctx.h, 4, &id), ALMC_OK);
  using Field = double almc_sampler_config::*;
  const std::pair<const char*, Field> fields[] = {
      {"noise_std", &almc_sampler_config::noise_std}, {"likelihood_weight", &almc_sampler_config::likelihood_weight},
      {"kappa", &almc_sampler_config::kappa},         {"delta", &almc_sampler_config::delta},
      {"t_start", &almc_sampler_config::t_start},     {"t_stop", &almc_sampler_config::t_stop},
      {"warm_step", &almc_sampler_config::warm_step}, {"sigma_max", &almc_sampler_config::sigma_max},
      {"sigma_min", &almc_sampler_config::sigma_min}, {"eps", &almc_sampler_config::eps},
      {"init_scale", &almc_sampler_config::init_scale},
  };
  for (almc_method method : {ALMC_METHOD_ALMC, ALMC_METHOD_ALD, ALMC_METHOD_XGP}) {
    for (const auto& [name, field] : fields) {
      for (double bad : {kNaN, kInf, -kInf}) {
        almc_sampler_config c = almc_test::quick_almc(2, 1, 0.5);
        c.method = method;
        c.*field = bad;
        almc_sampler_t sm = nullptr;
        const almc_status st = almc_sampler_create(ctx.h, s, id, &c, &sm);
        if (bad < 0 && st == ALMC_OK) {
          // -Inf is a non-positive value: fields documented as "non-positive selects the
          // default" may take it so; the run must then be the default's, finite.
          const float y[4] = {0.1f, 0.2f, 0.3f, 0.4f};
          float out[8];
          ASSERT_EQ(almc_sampler_set_measurement(sm, y), ALMC_OK);
          EXPECT_EQ(almc_sampler_run(sm), ALMC_OK) << name << " = -inf: " << almc_sampler_last_error(sm);
          ASSERT_EQ(almc_sampler_get_samples(sm, out), ALMC_OK);
          for (float v : out) EXPECT_TRUE(std::isfinite(v)) << name << " = -inf";
        } else {
          EXPECT_EQ(st, I) << "method " << method << ", " << name << " = " << bad;
          EXPECT_EQ(sm, nullptr);
          EXPECT_FALSE(ctx.err().empty());
        }
        almc_sampler_destroy(sm);
      }
    }
  }
  // A levels list holding NaN or Inf.
  for (double bad : {kNaN, kInf}) {
    const double levels[3] = {1.0, bad, 0.1};
    almc_sampler_config c = almc_test::quick_almc(2, 1, 0.5);
    c.method = ALMC_METHOD_LANGEVIN;
    c.schedule = ALMC_SCHEDULE_LIST;
    c.levels = levels;
    c.n_levels_list = 3;
    almc_sampler_t sm = nullptr;
    EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, s, id, &c, &sm), I, ctx.err());
  }
  // Measurements and user states holding NaN or Inf, naming the index.
  almc_sampler_config c = almc_test::quick_almc(1, 1, 0.5);
  c.init = ALMC_INIT_USER;
  almc_sampler_t sm = nullptr;
  ASSERT_EQ(almc_sampler_create(ctx.h, s, id, &c, &sm), ALMC_OK) << ctx.err();
  const float y_inf[4] = {0, 0, kInff, 0};
  EXPECT_FAILS_WITH(almc_sampler_set_measurement(sm, y_inf), I, almc_sampler_last_error(sm));
  EXPECT_NE(std::string(almc_sampler_last_error(sm)).find("[2]"), std::string::npos) << almc_sampler_last_error(sm);
  EXPECT_FAILS_WITH(almc_sampler_set_state(sm, y_inf), I, almc_sampler_last_error(sm));
  almc_sampler_destroy(sm);
  almc_operator_destroy(id);
  almc_score_destroy(s);
}

// ------------------------------------------------------------------ struct_size and enums

TEST(Reliability, WrongStructSizesAndEnumValues) {
  Ctx ctx;
  for (size_t size : {size_t(0), sizeof(almc_context_config) - 1, sizeof(almc_context_config) + 8, SIZE_MAX}) {
    almc_context_config c = almc_context_config_default();
    c.struct_size = size;
    almc_context_t h = reinterpret_cast<almc_context_t>(0x1);
    EXPECT_EQ(almc_context_create(&c, &h), ALMC_ERR_STRUCT_SIZE);
    EXPECT_EQ(h, nullptr);
  }
  almc_context_t dflt = nullptr;  // NULL config: the defaults
  ASSERT_EQ(almc_context_create(nullptr, &dflt), ALMC_OK);
  almc_context_destroy(dflt);

  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_callback(ctx.h, 2, neg_x_score, nullptr, 0, &s), ALMC_OK);
  for (size_t size : {size_t(0), sizeof(almc_sampler_config) + 8, SIZE_MAX}) {
    almc_sampler_config c = almc_test::quick_almc(2, 1, 0.5);
    c.struct_size = size;
    almc_sampler_t sm = nullptr;
    EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_ERR_STRUCT_SIZE, ctx.err());
  }
  for (int bad : {-1, 5, 1 << 30}) {
    almc_sampler_config c = almc_test::quick_almc(2, 1, 0.5);
    almc_sampler_t sm = nullptr;
    c.schedule = static_cast<almc_schedule>(bad);
    EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_ERR_INVALID_ARGUMENT, ctx.err());
    c = almc_test::quick_almc(2, 1, 0.5);
    c.init = static_cast<almc_init>(bad);
    EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_ERR_INVALID_ARGUMENT, ctx.err());
    c = almc_test::quick_almc(2, 1, 0.5);
    c.method = static_cast<almc_method>(bad);
    EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_ERR_INVALID_ARGUMENT, ctx.err());
  }
  almc_score_destroy(s);
  s = nullptr;
  // The ONNX config is checked before the file is opened.
  for (size_t size : {size_t(0), sizeof(almc_onnx_config) + 4}) {
    almc_onnx_config oc = almc_onnx_config_default();
    oc.struct_size = size;
    EXPECT_FAILS_WITH(almc_score_create_onnx(ctx.h, "no-such-file.onnx", &oc, &s), ALMC_ERR_STRUCT_SIZE, ctx.err());
  }
  const std::function<void(almc_onnx_config&)> bad_onnx[] = {
      [](almc_onnx_config& k) { k.output = static_cast<almc_net_output>(9); },
      [](almc_onnx_config& k) { k.convention = static_cast<almc_net_convention>(-1); },
      [](almc_onnx_config& k) { k.level = static_cast<almc_net_level>(7); },
      [](almc_onnx_config& k) { k.max_batch = -1; },
      [](almc_onnx_config& k) { k.level = ALMC_LEVEL_INDEX; },  // without a table
      [](almc_onnx_config& k) {
        static const float table[1] = {0.5f};
        k.level = ALMC_LEVEL_INDEX;
        k.alpha_bar_table = table;
        k.alpha_bar_len = INT64_MAX;
      },
  };
  for (const auto& mutate : bad_onnx) {
    almc_onnx_config oc = almc_onnx_config_default();
    mutate(oc);
    EXPECT_FAILS_WITH(almc_score_create_onnx(ctx.h, "no-such-file.onnx", &oc, &s), ALMC_ERR_INVALID_ARGUMENT,
                      ctx.err());
  }
  almc_onnx_config oc = almc_onnx_config_default();
  EXPECT_FAILS_WITH(almc_score_create_onnx(ctx.h, "no-such-file.onnx", &oc, &s), ALMC_ERR_IO, ctx.err());
  const float x[2] = {0, 0};
  float out[2];
  EXPECT_FAILS_WITH(almc_onnx_eval_raw(ctx.h, "m.onnx", &oc, x, 0, 2, 0.f, out), ALMC_ERR_INVALID_ARGUMENT, ctx.err());
  EXPECT_FAILS_WITH(almc_onnx_eval_raw(ctx.h, "m.onnx", &oc, x, 1, -2, 0.f, out), ALMC_ERR_INVALID_ARGUMENT, ctx.err());
  EXPECT_FAILS_WITH(almc_onnx_eval_raw(ctx.h, "m.onnx", &oc, x, 1, 2, kNaNf, out), ALMC_ERR_INVALID_ARGUMENT, ctx.err());
  EXPECT_FAILS_WITH(almc_onnx_eval_raw(ctx.h, "m.onnx", &oc, x, 1, 2, kInff, out), ALMC_ERR_INVALID_ARGUMENT, ctx.err());
  almc_score_destroy(s);
}

// ------------------------------------------------------------------ order of calls and ownership

TEST(Reliability, CallsOutOfOrder) {
  Ctx ctx, other;
  almc_score_t s = nullptr, s_other = nullptr;
  ASSERT_EQ(almc_score_create_callback(ctx.h, 3, neg_x_score, nullptr, 0, &s), ALMC_OK);
  ASSERT_EQ(almc_score_create_callback(other.h, 3, neg_x_score, nullptr, 0, &s_other), ALMC_OK);
  almc_operator_t op = nullptr, op_other = nullptr;
  ASSERT_EQ(almc_operator_create_identity(ctx.h, 3, &op), ALMC_OK);
  ASSERT_EQ(almc_operator_create_identity(other.h, 3, &op_other), ALMC_OK);
  almc_sampler_config c = almc_test::quick_almc(2, 1, 0.5);
  almc_sampler_t sm = nullptr;
  // Handles from another context.
  EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, s_other, op, &c, &sm), ALMC_ERR_INVALID_ARGUMENT, ctx.err());
  EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, s, op_other, &c, &sm), ALMC_ERR_INVALID_ARGUMENT, ctx.err());

  // Results before a run.
  ASSERT_EQ(almc_sampler_create(ctx.h, s, op, &c, &sm), ALMC_OK);
  float buf[6], buf2[3];
  int64_t count = -1;
  const almc_status W = ALMC_ERR_WRONG_STATE;
  EXPECT_FAILS_WITH(almc_sampler_get_samples(sm, buf), W, almc_sampler_last_error(sm));
  EXPECT_FAILS_WITH(almc_sampler_get_mean_std(sm, buf, buf2), W, almc_sampler_last_error(sm));
  EXPECT_FAILS_WITH(almc_sampler_get_residuals(sm, buf), W, almc_sampler_last_error(sm));
  EXPECT_EQ(almc_sampler_snapshot_count(sm, &count), ALMC_OK);
  EXPECT_EQ(count, 0);
  EXPECT_EQ(almc_sampler_get_snapshots(sm, nullptr, nullptr), ALMC_OK);  // nothing to copy
  EXPECT_FAILS_WITH(almc_sampler_run(sm), W, almc_sampler_last_error(sm));
  EXPECT_NE(std::string(almc_sampler_last_error(sm)).find("set_measurement"), std::string::npos);
  // Measurement, run, results; a second run on the same handle works and gives the same result.
  const float y[3] = {0.5f, -0.5f, 1.f};
  ASSERT_EQ(almc_sampler_set_measurement(sm, y), ALMC_OK);
  ASSERT_EQ(almc_sampler_run(sm), ALMC_OK) << almc_sampler_last_error(sm);
  ASSERT_EQ(almc_sampler_get_samples(sm, buf), ALMC_OK);
  float again[6];
  ASSERT_EQ(almc_sampler_run(sm), ALMC_OK);
  ASSERT_EQ(almc_sampler_get_samples(sm, again), ALMC_OK);
  EXPECT_EQ(std::memcmp(buf, again, sizeof buf), 0);
  EXPECT_EQ(almc_sampler_get_mean_std(sm, buf2, nullptr), ALMC_OK);  // either output may be NULL
  almc_sampler_destroy(sm);

  // No operator: no measurement to set.
  ASSERT_EQ(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_OK);
  EXPECT_FAILS_WITH(almc_sampler_set_measurement(sm, y), W, almc_sampler_last_error(sm));
  almc_sampler_destroy(sm);

  // ALMC_INIT_USER: running before the state is set.
  c.init = ALMC_INIT_USER;
  ASSERT_EQ(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_OK);
  EXPECT_FAILS_WITH(almc_sampler_run(sm), W, almc_sampler_last_error(sm));
  const float x0[6] = {0, 0, 0, 1, 1, 1};
  ASSERT_EQ(almc_sampler_set_state(sm, x0), ALMC_OK);
  EXPECT_EQ(almc_sampler_run(sm), ALMC_OK) << almc_sampler_last_error(sm);
  almc_sampler_destroy(sm);

  // A nonlinear likelihood has no forward map to evaluate.
  almc_operator_t ng = nullptr;
  ASSERT_EQ(almc_operator_create_neg_grad_callback(ctx.h, 3, 3, unused_neg_grad, nullptr, &ng), ALMC_OK);
  EXPECT_FAILS_WITH(almc_operator_forward(ng, y, buf, 1, 0), ALMC_ERR_UNSUPPORTED, almc_operator_last_error(ng));
  almc_operator_destroy(ng);

  almc_operator_destroy(op);
  almc_operator_destroy(op_other);
  almc_score_destroy(s);
  almc_score_destroy(s_other);
}

// ------------------------------------------------------------------ failing callbacks

struct Flaky {
  bool fail = true;
  int64_t nan_at_step = -1;  // write NaN into chain 1 at this step
  int calls = 0;
};

int flaky_score(const float* x, float* s, int64_t n, int64_t d, const almc_level* lv, const almc_level_device*, void*,
                void* ud) {
  auto* f = static_cast<Flaky*>(ud);
  ++f->calls;
  for (int64_t i = 0; i < n * d; ++i) s[i] = -x[i];
  if (f->nan_at_step >= 0 && lv->step >= f->nan_at_step) s[1 * d] = kNaNf;
  return f->fail && lv->step >= 2 ? 7 : 0;
}

int failing_forward(const float*, float*, int64_t, int64_t, int64_t, void*, void*) { return 3; }
int copy_map(const float* in, float* out, int64_t n, int64_t, int64_t, void*, void*) {
  std::memcpy(out, in, sizeof(float) * size_t(n) * 3);
  return 0;
}
int failing_neg_grad(const float*, const float*, float*, int64_t, int64_t, int64_t, void*, void*) { return -4; }

TEST(Reliability, FailingAndNaNCallbacksLeaveUsableHandles) {
  Ctx ctx;
  Flaky flaky;
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_callback(ctx.h, 3, flaky_score, &flaky, 0, &s), ALMC_OK);
  const float y[3] = {0.5f, -0.5f, 1.f};
  float out[12];

  // Each method family stops at the failing step with ALMC_ERR_CALLBACK naming it; the same handle
  // runs to completion once the callback recovers.
  for (almc_method method : {ALMC_METHOD_ALMC, ALMC_METHOD_NCSN, ALMC_METHOD_ALD, ALMC_METHOD_LANGEVIN}) {
    almc_sampler_config c = almc_test::quick_almc(4, 1, 0.5);
    c.method = method;
    c.n_levels = 4;
    c.steps_per_level = 2;
    static const double levels[4] = {1.0, 0.5, 0.2, 0.05};
    if (method == ALMC_METHOD_LANGEVIN) {
      c.schedule = ALMC_SCHEDULE_LIST;
      c.levels = levels;
      c.n_levels_list = 4;
    }
    almc_sampler_t sm = nullptr;
    ASSERT_EQ(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_OK) << ctx.err();
    flaky.fail = true;
    flaky.nan_at_step = -1;
    EXPECT_FAILS_WITH(almc_sampler_run(sm), ALMC_ERR_CALLBACK, almc_sampler_last_error(sm));
    const std::string msg = almc_sampler_last_error(sm);
    EXPECT_NE(msg.find("returned 7"), std::string::npos) << msg;
    EXPECT_NE(msg.find("step"), std::string::npos) << msg;
    EXPECT_EQ(almc_sampler_get_samples(sm, out), ALMC_ERR_WRONG_STATE) << "a failed run has no samples";
    flaky.fail = false;
    EXPECT_EQ(almc_sampler_run(sm), ALMC_OK) << almc_sampler_last_error(sm);
    EXPECT_EQ(almc_sampler_get_samples(sm, out), ALMC_OK);
    // NaN from the callback: ALMC_ERR_DIVERGED naming chain 1 and the step; run_info agrees.
    c.check_every = 1;
    almc_sampler_t sn = nullptr;
    ASSERT_EQ(almc_sampler_create(ctx.h, s, nullptr, &c, &sn), ALMC_OK) << ctx.err();
    flaky.nan_at_step = 4;
    EXPECT_FAILS_WITH(almc_sampler_run(sn), ALMC_ERR_DIVERGED, almc_sampler_last_error(sn));
    const std::string nmsg = almc_sampler_last_error(sn);
    EXPECT_NE(nmsg.find("chain 1 "), std::string::npos) << nmsg;
    EXPECT_NE(nmsg.find("step"), std::string::npos) << nmsg;
    almc_run_info info{};
    info.struct_size = sizeof info;
    ASSERT_EQ(almc_sampler_run_info(sn, &info), ALMC_OK);
    EXPECT_EQ(info.diverged_chain, 1);
    EXPECT_GE(info.diverged_step, 4);
    flaky.nan_at_step = -1;
    EXPECT_EQ(almc_sampler_run(sn), ALMC_OK) << almc_sampler_last_error(sn);
    almc_sampler_destroy(sn);
    almc_sampler_destroy(sm);
  }
  flaky.fail = false;

  // Failing operator callbacks.
  almc_operator_t lin = nullptr, ng = nullptr;
  ASSERT_EQ(almc_operator_create_linear_callback(ctx.h, 3, 3, failing_forward, copy_map, nullptr, 1.0, &lin), ALMC_OK);
  EXPECT_FAILS_WITH(almc_operator_forward(lin, y, out, 1, 0), ALMC_ERR_CALLBACK, almc_operator_last_error(lin));
  EXPECT_EQ(almc_operator_adjoint(lin, y, out, 1, 0), ALMC_OK) << almc_operator_last_error(lin);
  ASSERT_EQ(almc_operator_create_neg_grad_callback(ctx.h, 3, 3, failing_neg_grad, nullptr, &ng), ALMC_OK);
  for (almc_operator_t op : {lin, ng}) {
    almc_sampler_config c = almc_test::quick_almc(2, 1, 0.5);
    almc_sampler_t sm = nullptr;
    ASSERT_EQ(almc_sampler_create(ctx.h, s, op, &c, &sm), ALMC_OK) << ctx.err();
    ASSERT_EQ(almc_sampler_set_measurement(sm, y), ALMC_OK);
    EXPECT_FAILS_WITH(almc_sampler_run(sm), ALMC_ERR_CALLBACK, almc_sampler_last_error(sm));
    EXPECT_NE(std::string(almc_sampler_last_error(sm)).find("callback"), std::string::npos);
    almc_sampler_destroy(sm);
  }
  almc_operator_destroy(lin);
  almc_operator_destroy(ng);

  // Cancelling through the progress callback: ALMC_ERR_CANCELLED, then the handle runs again.
  struct Stop {
    int64_t at;
  } stop{5};
  almc_sampler_config c = almc_test::quick_almc(2, 1, 0.5);
  c.check_every = 1;
  c.progress = [](const almc_progress* p, void* ud) { return p->step >= static_cast<Stop*>(ud)->at ? 1 : 0; };
  c.progress_user_data = &stop;
  almc_sampler_t sm = nullptr;
  ASSERT_EQ(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_OK);
  EXPECT_FAILS_WITH(almc_sampler_run(sm), ALMC_ERR_CANCELLED, almc_sampler_last_error(sm));
  stop.at = INT64_MAX;
  EXPECT_EQ(almc_sampler_run(sm), ALMC_OK) << almc_sampler_last_error(sm);
  almc_sampler_destroy(sm);
  almc_score_destroy(s);
}

// ------------------------------------------------------------------ resource limits

TEST(Reliability, RunsThatCannotFitAreRefusedBeforeAllocating) {
  Ctx ctx;
  // chains x d = 2^44 floats (64 TiB): no overflow, far beyond any machine. The check happens at
  // create, before the workspace exists, and says how much is needed.
  const int64_t d = int64_t(1) << 24;
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_callback(ctx.h, d, neg_x_score, nullptr, 0, &s), ALMC_OK);
  almc_sampler_config c = almc_test::quick_almc(int64_t(1) << 20, 1, 0.5);
  almc_sampler_t sm = nullptr;
  const almc_status st = almc_sampler_create(ctx.h, s, nullptr, &c, &sm);
  EXPECT_TRUE(st == ALMC_ERR_OUT_OF_MEMORY || st == ALMC_ERR_INVALID_ARGUMENT) << ctx.err();
  EXPECT_EQ(sm, nullptr);
  // 2^36 floats (256 GiB): within the element limit, so it is the memory check that refuses it.
  c.chains_per_meas = 4096;
  EXPECT_FAILS_WITH(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_ERR_OUT_OF_MEMORY, ctx.err());
  EXPECT_NE(ctx.err().find("MiB"), std::string::npos) << ctx.err();
  EXPECT_NE(ctx.err().find("needs"), std::string::npos) << ctx.err();
  almc_score_destroy(s);

  // Allocation failures leave the context usable.
  void* p = reinterpret_cast<void*>(0x1);
  EXPECT_FAILS_WITH(almc_malloc(ctx.h, SIZE_MAX, &p), ALMC_ERR_OUT_OF_MEMORY, ctx.err());
  EXPECT_FAILS_WITH(almc_malloc(ctx.h, SIZE_MAX / 2, &p), ALMC_ERR_OUT_OF_MEMORY, ctx.err());
  ASSERT_EQ(almc_malloc(ctx.h, 64, &p), ALMC_OK);
  EXPECT_EQ(almc_free(ctx.h, p), ALMC_OK);
  ASSERT_EQ(almc_score_create_callback(ctx.h, 3, neg_x_score, nullptr, 0, &s), ALMC_OK);
  c = almc_test::quick_almc(2, 1, 0.5);
  ASSERT_EQ(almc_sampler_create(ctx.h, s, nullptr, &c, &sm), ALMC_OK) << ctx.err();
  EXPECT_EQ(almc_sampler_run(sm), ALMC_OK) << almc_sampler_last_error(sm);
  size_t ws = 0;
  EXPECT_EQ(almc_sampler_workspace_bytes(sm, &ws), ALMC_OK);
  EXPECT_GT(ws, 0u);
  almc_sampler_destroy(sm);
  almc_score_destroy(s);
}

// ------------------------------------------------------------------ thread safety

// One complete job on its own context: a GMM prior (fused analytic path) with a mask operator, and
// a callback prior without an operator. Returns the samples of both runs.
std::vector<float> job(uint64_t seed, int threads) {
  std::vector<float> result;
  almc_context_t ctx = cpu_context(threads);
  const int64_t d = 16, K = 3, chains = 8;
  almc_test::Lcg rng(seed);
  const std::vector<float> w = {1, 2, 3}, mu = rng.normals(K * d), var(K * d, 0.5f);
  std::vector<float> mask(d);
  for (int64_t i = 0; i < d; ++i) mask[i] = i % 3 ? 1.f : 0.f;
  const std::vector<float> y = rng.normals(d, 0.5);
  almc_score_t gmm = nullptr, cb = nullptr;
  almc_operator_t op = nullptr;
  almc_sampler_t sm = nullptr;
  if (almc_score_create_gmm(ctx, K, d, w.data(), mu.data(), var.data(), &gmm) != ALMC_OK ||
      almc_operator_create_mask(ctx, d, mask.data(), &op) != ALMC_OK ||
      almc_score_create_callback(ctx, d, neg_x_score, nullptr, 0, &cb) != ALMC_OK) {
    ADD_FAILURE() << almc_context_last_error(ctx);
    return result;
  }
  almc_sampler_config c = almc_test::quick_almc(chains, seed, 0.3);
  c.warm_steps = 10;
  std::vector<float> out(size_t(chains * d));
  if (almc_sampler_create(ctx, gmm, op, &c, &sm) == ALMC_OK && almc_sampler_set_measurement(sm, y.data()) == ALMC_OK &&
      almc_sampler_run(sm) == ALMC_OK && almc_sampler_get_samples(sm, out.data()) == ALMC_OK)
    result.insert(result.end(), out.begin(), out.end());
  else
    ADD_FAILURE() << almc_context_last_error(ctx) << " / " << almc_sampler_last_error(sm);
  almc_sampler_destroy(sm);
  sm = nullptr;
  c.method = ALMC_METHOD_ALD;
  c.n_levels = 10;
  if (almc_sampler_create(ctx, cb, nullptr, &c, &sm) == ALMC_OK && almc_sampler_run(sm) == ALMC_OK &&
      almc_sampler_get_samples(sm, out.data()) == ALMC_OK)
    result.insert(result.end(), out.begin(), out.end());
  else
    ADD_FAILURE() << almc_context_last_error(ctx) << " / " << almc_sampler_last_error(sm);
  almc_sampler_destroy(sm);
  almc_operator_destroy(op);
  almc_score_destroy(gmm);
  almc_score_destroy(cb);
  almc_context_destroy(ctx);
  return result;
}

TEST(Reliability, IndependentHandlesOnThreadsMatchSequentialRunsBitwise) {
  // Four single-threaded contexts at once, then two with two OpenMP threads each (a team per
  // context: contexts share no OpenMP state that affects results).
  for (auto [threads_each, kJobs] : {std::pair<int, int>{1, 4}, {2, 2}}) {
    const int threads = threads_each;  // a structured binding cannot be captured before C++20
    std::vector<std::vector<float>> sequential(kJobs), parallel(kJobs);
    for (int j = 0; j < kJobs; ++j) sequential[j] = job(100 + j, threads);
    std::vector<std::thread> pool;
    for (int j = 0; j < kJobs; ++j) pool.emplace_back([&, j] { parallel[j] = job(100 + j, threads); });
    for (auto& t : pool) t.join();
    for (int j = 0; j < kJobs; ++j) {
      ASSERT_FALSE(sequential[j].empty());
      ASSERT_EQ(sequential[j].size(), parallel[j].size());
      EXPECT_EQ(std::memcmp(sequential[j].data(), parallel[j].data(), sizeof(float) * sequential[j].size()), 0)
          << "job " << j << " with " << threads << " OpenMP threads per context";
    }
    // Distinct seeds give distinct results (the comparison above is not vacuous).
    EXPECT_NE(std::memcmp(sequential[0].data(), sequential[1].data(), sizeof(float) * sequential[0].size()), 0);
  }
}

TEST(Reliability, OnnxScoresOnThreadsMatchSequentialEvaluations) {
  const std::string model = almc_test::data_dir() + "/onnx/gauss_vp_eps.onnx";
  auto evaluate = [&](int j) {
    std::vector<float> out;
    almc_context_t ctx = cpu_context(1);
    almc_onnx_config oc = almc_onnx_config_default();
    oc.convention = ALMC_CONV_VP;
    oc.output = ALMC_OUTPUT_EPS;
    almc_score_t s = nullptr;
    if (almc_score_create_onnx(ctx, model.c_str(), &oc, &s) != ALMC_OK) {
      ADD_FAILURE() << almc_context_last_error(ctx);
      almc_context_destroy(ctx);
      return out;
    }
    int64_t d = 0;
    almc_score_dim(s, &d);
    almc_test::Lcg rng(7 + j);
    const std::vector<float> x = rng.normals(size_t(3 * d));
    out.resize(x.size());
    if (almc_score_evaluate(s, x.data(), out.data(), 3, 0.2 + 0.1 * j) != ALMC_OK) {
      ADD_FAILURE() << almc_score_last_error(s);
      out.clear();
    }
    almc_score_destroy(s);
    almc_context_destroy(ctx);
    return out;
  };
  constexpr int kJobs = 4;
  std::vector<std::vector<float>> sequential(kJobs), parallel(kJobs);
  for (int j = 0; j < kJobs; ++j) sequential[j] = evaluate(j);
  std::vector<std::thread> pool;
  for (int j = 0; j < kJobs; ++j) pool.emplace_back([&, j] { parallel[j] = evaluate(j); });
  for (auto& t : pool) t.join();
  for (int j = 0; j < kJobs; ++j) {
    ASSERT_FALSE(sequential[j].empty()) << "job " << j;
    ASSERT_EQ(sequential[j].size(), parallel[j].size());
    EXPECT_EQ(std::memcmp(sequential[j].data(), parallel[j].data(), sizeof(float) * sequential[j].size()), 0)
        << "job " << j;
  }
}

}  // namespace
