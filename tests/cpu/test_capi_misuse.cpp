// C API calls made wrongly: an empty file path is named as such (it failed as
// ": cannot open: No such file or directory", the path being the empty text before the colon);
// unknown callback flag bits are refused (they were ignored).
#include <almc/almc.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
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

}  // namespace
