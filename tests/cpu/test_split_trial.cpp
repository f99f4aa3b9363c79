// SplitTrial (host/core/split_trial.hpp): per call size, one thread and the proposed split
// alternate for kRounds timed calls each, and the faster (by its best time) is kept; one thread is
// never tried against itself, new proposals are tried afresh, and sizes past the limit take the
// proposal untried.
#include <gtest/gtest.h>

#include "host/core/split_trial.hpp"

namespace {

// Runs calls of `size` with the trial choosing, timing one-thread calls `one` s and split calls
// `split` s (the first of each 3x slower: cold caches); returns the threads of call `calls`.
int run(almc::SplitTrial& t, int64_t size, int proposed, double one, double split, int calls) {
  int first_one = 1, first_split = 1, th = 0;
  for (int c = 0; c <= calls; ++c) {
    th = t.threads(size, proposed);
    const double secs = th == 1 ? one * (first_one ? 3 : 1) : split * (first_split ? 3 : 1);
    (th == 1 ? first_one : first_split) = 0;
    t.record(size, th, secs);
  }
  return th;
}

}  // namespace

TEST(SplitTrial, KeepsTheFasterOfOneThreadAndTheSplit) {
  almc::SplitTrial t;
  // The alternation: 1, 4, 1, 4, ... (kRounds calls of each), then the decision by the best
  // time of each: here one thread's best is its second call, the split's its last.
  constexpr int R = almc::SplitTrial::kRounds;
  static_assert(R >= 2, "the test needs two rounds");
  for (int r = 0; r < R; ++r) {
    EXPECT_FALSE(t.decided(64));
    EXPECT_EQ(t.threads(64, 4), 1);
    t.record(64, 1, r == 1 ? 1.0e-3 : 1.1e-3 + 1e-4 * r);
    EXPECT_EQ(t.threads(64, 4), 4);
    t.record(64, 4, r == R - 1 ? 0.9e-3 : 2e-3);
  }
  EXPECT_TRUE(t.decided(64));
  EXPECT_TRUE(t.split_pays(64));
  for (int c = 0; c < 5; ++c) EXPECT_EQ(t.threads(64, 4), 4);

  // A split that costs more than it saves (the Intel VM's 64-sample MLP call) falls back to one
  // thread; one that saves is kept; sizes are independent.
  EXPECT_EQ(run(t, 128, 2, 106e-6, 222e-6, 20), 1);
  EXPECT_FALSE(t.split_pays(128));
  EXPECT_EQ(run(t, 1024, 2, 1.8e-3, 1.0e-3, 20), 2);
  EXPECT_TRUE(t.split_pays(1024));
  EXPECT_TRUE(t.split_pays(64));

  // One thread proposed: nothing to try.
  EXPECT_EQ(t.threads(7, 1), 1);
  EXPECT_FALSE(t.decided(7));
  // A new proposal for a decided size (the heuristic's view changed) is tried again.
  EXPECT_EQ(t.threads(128, 3), 1);
  EXPECT_FALSE(t.decided(128));
  // Times of calls the trial did not ask for change nothing.
  t.record(128, 2, 1e-9);
  EXPECT_EQ(t.threads(128, 3), 1);
}

TEST(SplitTrial, SizesPastTheLimitTakeTheProposal) {
  almc::SplitTrial t;
  for (int64_t s = 1; s <= int64_t(almc::SplitTrial::kMaxSizes); ++s) EXPECT_EQ(t.threads(s, 2), 1);
  EXPECT_EQ(t.threads(100000, 2), 2);
  EXPECT_FALSE(t.decided(100000));
}
