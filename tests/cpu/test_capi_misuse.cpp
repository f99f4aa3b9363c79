// C API calls made wrongly: an empty file path is named as such (it failed as
// ": cannot open: No such file or directory", the path being the empty text before the colon);
// unknown callback flag bits are refused (they were ignored).
#include <almc/almc.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/common/test_util.hpp"

namespace {

int neg_x(const float* x, float* s, int64_t n, int64_t d, const almc_level*, const almc_level_device*, void*, void*) {
  for (int64_t i = 0; i < n * d; ++i) s[i] = -x[i];
  return 0;
}
int stop_at_40(const almc_progress* p, void*) { return p->step >= 40; }

// A CPU context, destroyed at the end of the test (null when it could not be made).
using ContextHolder = std::unique_ptr<almc_context_s, void (*)(almc_context_t)>;
ContextHolder cpu_context() {
  almc_context_config cc = almc_context_config_default();
  cc.backend = ALMC_BACKEND_CPU;
  almc_context_t ctx = nullptr;
  if (almc_context_create(&cc, &ctx) != ALMC_OK) ctx = nullptr;
  return ContextHolder(ctx, &almc_context_destroy);
}

TEST(CApiMisuse, EmptyPathsAreNamed) {
  const ContextHolder held_ctx = cpu_context();
  almc_context_t ctx = held_ctx.get();
  ASSERT_NE(ctx, nullptr);
  almc_score_t s = nullptr;
  EXPECT_EQ(almc_score_create_gmm_json(ctx, "", &s), ALMC_ERR_IO);
  EXPECT_EQ(std::string(almc_context_last_error(ctx)), "path is empty: give the file's path");
  EXPECT_EQ(s, nullptr);
  EXPECT_EQ(almc_score_create_gmm_json(ctx, nullptr, &s), ALMC_ERR_NULL_POINTER);

  // A state to write: a run stopped by its progress callback.
  ASSERT_EQ(almc_score_create_callback(ctx, 3, neg_x, nullptr, 0, &s), ALMC_OK);
  almc_sampler_config c = almc_test::quick_almc(2, 1, 0.5);
  c.progress = stop_at_40;
  c.check_every = 10;
  almc_sampler_t sm = nullptr;
  ASSERT_EQ(almc_sampler_create(ctx, s, nullptr, &c, &sm), ALMC_OK);
  ASSERT_EQ(almc_sampler_run(sm), ALMC_ERR_CANCELLED);
  size_t bytes = 0;
  ASSERT_EQ(almc_sampler_state_size(sm, &bytes), ALMC_OK);
  std::vector<unsigned char> state(bytes);
  ASSERT_EQ(almc_sampler_save_state(sm, state.data(), bytes, nullptr), ALMC_OK) << almc_sampler_last_error(sm);

  almc_snapshot_t snap = nullptr;
  ASSERT_EQ(almc_snapshot_create(&snap), ALMC_OK);
  ASSERT_EQ(almc_snapshot_set(snap, state.data(), bytes, nullptr), ALMC_OK) << almc_snapshot_last_error(snap);
  EXPECT_EQ(almc_snapshot_write(snap, ""), ALMC_ERR_IO);
  EXPECT_EQ(std::string(almc_snapshot_last_error(snap)), "path is empty: give the file's path");
  EXPECT_EQ(almc_snapshot_read(snap, ""), ALMC_ERR_IO);
  EXPECT_EQ(std::string(almc_snapshot_last_error(snap)), "path is empty: give the file's path");
  // The snapshot held before the failed read is kept.
  const void* held = nullptr;
  size_t held_bytes = 0;
  ASSERT_EQ(almc_snapshot_state(snap, &held, &held_bytes, nullptr, nullptr), ALMC_OK);
  EXPECT_EQ(held_bytes, bytes);
  almc_snapshot_destroy(snap);
  almc_sampler_destroy(sm);
  almc_score_destroy(s);
}

TEST(CApiMisuse, UnknownCallbackFlagBitsAreRefused) {
  const ContextHolder held_ctx = cpu_context();
  almc_context_t ctx = held_ctx.get();
  ASSERT_NE(ctx, nullptr);
  almc_score_t s = nullptr;
  for (unsigned bad : {2u, 99u, 0x80000000u}) {
    EXPECT_EQ(almc_score_create_callback(ctx, 3, neg_x, nullptr, bad, &s), ALMC_ERR_INVALID_ARGUMENT) << bad;
    EXPECT_EQ(s, nullptr);
    EXPECT_NE(std::string(almc_context_last_error(ctx)).find("unknown bits"), std::string::npos)
        << almc_context_last_error(ctx);
  }
  for (unsigned good : {0u, unsigned(ALMC_SCORE_GRAPH_SAFE)}) {
    ASSERT_EQ(almc_score_create_callback(ctx, 3, neg_x, nullptr, good, &s), ALMC_OK) << good;
    almc_score_destroy(s);
    s = nullptr;
  }
}

// almc_context_create has no handle to hold its message (and neither have almc_chain_mean_std and
// almc_chain_block): a wrong struct_size, which almc.h says is refused "with a message naming the
// sizes accepted", left nothing to read. Their messages are now the thread's,
// almc_context_last_error(NULL).
TEST(CApiMisuse, CallsWithoutAHandleKeepTheirMessageOnTheThread) {
  almc_context_config cc = almc_context_config_default();
  cc.backend = ALMC_BACKEND_CPU;
  cc.struct_size = ALMC_CONTEXT_CONFIG_MIN_SIZE - 8;
  almc_context_t h = nullptr;
  ASSERT_EQ(almc_context_create(&cc, &h), ALMC_ERR_STRUCT_SIZE);
  EXPECT_EQ(h, nullptr);
  const std::string sizes = almc_context_last_error(nullptr);
  EXPECT_NE(sizes.find("config->struct_size is " + std::to_string(ALMC_CONTEXT_CONFIG_MIN_SIZE - 8) +
                       ": this library accepts " + std::to_string(ALMC_CONTEXT_CONFIG_MIN_SIZE) + " (its first layout)"),
            std::string::npos)
      << sizes;
  cc.struct_size = sizeof cc;
  cc.n_threads = 99999;
  ASSERT_EQ(almc_context_create(&cc, &h), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(almc_context_last_error(nullptr)), "n_threads = 99999 is above the limit of 1024");
  // Another thread has its own (none yet).
  std::string elsewhere;
  std::thread([&] { elsewhere = almc_context_last_error(nullptr); }).join();
  EXPECT_EQ(elsewhere, "context is NULL");
  // A success leaves the last failure's message as it was (as on a handle).
  cc.n_threads = 1;
  ASSERT_EQ(almc_context_create(&cc, &h), ALMC_OK);
  almc_context_destroy(h);
  EXPECT_EQ(std::string(almc_context_last_error(nullptr)), "n_threads = 99999 is above the limit of 1024");
  const float x[4] = {1, 2, 3, 4};
  float mean[2];
  EXPECT_EQ(almc_chain_mean_std(x, 0, 2, 2, mean, nullptr), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(almc_context_last_error(nullptr)), "n_meas, chains_per_meas and d must be positive");
  int64_t start = 0, count = 0;
  EXPECT_EQ(almc_chain_block(0, 10, 2, 2, &start, &count), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(std::string(almc_context_last_error(nullptr)), "need start >= 0, count >= 0 and 0 <= part < parts");
}

int copy_rows(const float* in, float* out, int64_t n, int64_t, int64_t, void*, void*) {
  for (int64_t i = 0; i < 3 * n; ++i) out[i] = in[i];
  return 0;
}

// Values outside what almc.h documents were taken: a chain range whose end overflows int64 gave a
// negative block_start; an infinite norm_estimate was read as "unknown" (NaN was refused); flags
// of 5 or 2 and warm_steps = -7 (read as the default) ran; smc_ess_threshold with a variant that
// never reads it was ignored (the command and the Python package refused it, each with its own
// copy of the rule).
TEST(CApiMisuse, ValuesOutsideTheDocumentedRangesAreRefused) {
  int64_t start = -1, count = -1;
  EXPECT_EQ(almc_chain_block(INT64_MAX - 1, 100, 2, 1, &start, &count), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(almc_context_last_error(nullptr)).find("is beyond int64"), std::string::npos);
  ASSERT_EQ(almc_chain_block(INT64_MAX - 100, 100, 2, 1, &start, &count), ALMC_OK);
  EXPECT_EQ(start, INT64_MAX - 50);
  EXPECT_EQ(count, 50);

  const ContextHolder held_ctx = cpu_context();
  almc_context_t ctx = held_ctx.get();
  ASSERT_NE(ctx, nullptr);
  almc_operator_t op = nullptr;
  for (const double bad : {double(INFINITY), -double(INFINITY), double(NAN)}) {
    EXPECT_EQ(almc_operator_create_linear_callback(ctx, 3, 3, copy_rows, copy_rows, nullptr, bad, &op),
              ALMC_ERR_INVALID_ARGUMENT)
        << bad;
    EXPECT_NE(std::string(almc_context_last_error(ctx)).find("is not finite: give ||A||, or 0 when it is unknown"),
              std::string::npos)
        << almc_context_last_error(ctx);
  }
  for (const double good : {0.0, -1.0, 1.0}) {
    ASSERT_EQ(almc_operator_create_linear_callback(ctx, 3, 3, copy_rows, copy_rows, nullptr, good, &op), ALMC_OK);
    double norm = 0;
    ASSERT_EQ(almc_operator_norm(op, &norm), ALMC_OK);
    EXPECT_EQ(norm, good > 0 ? good : -1.0);
    almc_operator_destroy(op);
  }

  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_callback(ctx, 3, neg_x, nullptr, 0, &s), ALMC_OK);
  const float mean[3] = {0, 0, 0}, var[3] = {1, 1, 1};
  almc_score_t gauss = nullptr;
  ASSERT_EQ(almc_score_create_gaussian(ctx, 3, mean, var, &gauss), ALMC_OK);
  const auto create = [&](almc_score_t score, void (*edit)(almc_sampler_config&)) {
    almc_sampler_config c = almc_test::quick_almc(4, 1, 0.5);
    edit(c);
    almc_sampler_t sm = nullptr;
    const almc_status st = almc_sampler_create(ctx, score, nullptr, &c, &sm);
    almc_sampler_destroy(sm);
    return st == ALMC_OK ? std::string("ok") : std::string(almc_context_last_error(ctx));
  };
  EXPECT_EQ(create(s, [](almc_sampler_config& c) { c.tweedie = 5; }), "tweedie = 5 must be 0 or 1");
  EXPECT_EQ(create(s, [](almc_sampler_config& c) { c.use_graphs = 2; }), "use_graphs = 2 must be 0 or 1");
  EXPECT_EQ(create(s, [](almc_sampler_config& c) { c.force_unstable = -1; }), "force_unstable = -1 must be 0 or 1");
  EXPECT_EQ(create(s, [](almc_sampler_config& c) { c.warm_steps = -7; }),
            "warm_steps = -7 must be >= 0 (or -1: the default, ceil(10 (1 + L_R)))");
  const std::string unread = "smc_ess_threshold = 0.3 is read by variant smc or geo-smc only: the run would be the same without it";
  EXPECT_EQ(create(s, [](almc_sampler_config& c) { c.smc_ess_threshold = 0.3; }), unread);
  EXPECT_EQ(create(s, [](almc_sampler_config& c) {
              c.smc_ess_threshold = 0.3;
              c.variant = ALMC_VARIANT_NOISED_LIK;
            }),
            unread);
  EXPECT_EQ(create(s, [](almc_sampler_config& c) {
              c.smc_ess_threshold = 0.3;
              c.method = ALMC_METHOD_NCSN;
            }),
            unread);
  // What the fields do accept.
  EXPECT_EQ(create(s, [](almc_sampler_config& c) {
              c.tweedie = 1;
              c.use_graphs = 0;
              c.force_unstable = 1;
              c.warm_steps = -1;
            }),
            "ok");
  EXPECT_EQ(create(s, [](almc_sampler_config& c) { c.warm_steps = 0; }), "ok");
  EXPECT_EQ(create(s, [](almc_sampler_config& c) { c.smc_ess_threshold = -1; }), "ok");  // <= 0: unset
  EXPECT_EQ(create(gauss, [](almc_sampler_config& c) {
              c.variant = ALMC_VARIANT_GEO_SMC;
              c.smc_ess_threshold = 0.3;
            }),
            "ok");
  almc_score_destroy(gauss);
  almc_score_destroy(s);
}

}  // namespace
