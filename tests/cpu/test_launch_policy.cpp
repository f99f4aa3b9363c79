// The CUDA backend's launch policy (cuda/launch_policy.hpp): the per-architecture table, the grid
// caps read from a device's properties, and the GMM responsibilities' decomposition, which must
// depend on (d, K, mode) alone. Pure host code: runs in every build, GPU or not.
#include "cuda/launch_policy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace almc;

// The device pass evaluates the table at compile time (__launch_bounds__).
static_assert(arch_launch(90).arch == 90 && arch_launch(80).arch == 80 && arch_launch(75).arch == 0,
              "rows found at compile time");

TEST(LaunchPolicy, TableRowsAreUsable) {
  EXPECT_EQ(kArchLaunch[kArchLaunchRows - 1].arch, 0) << "the default row must be last";
  for (int i = 0; i < kArchLaunchRows; ++i) {
    const ArchLaunch& r = kArchLaunch[i];
    SCOPED_TRACE(r.arch);
    for (int b : {r.elementwise_block, r.chain_block}) {
      EXPECT_GT(b, 0);
      EXPECT_EQ(b % 32, 0) << "blocks are whole warps";
      EXPECT_LE(b, 1024);
    }
    // __launch_bounds__(block, min_blocks) must be satisfiable on sm_80 / sm_90 (2048 threads per SM).
    EXPECT_GE(r.elementwise_min_blocks, 1);
    EXPECT_LE(r.elementwise_block * r.elementwise_min_blocks, 2048);
    EXPECT_GE(r.waves, 1);
  }
  EXPECT_EQ(kRespBlock % 32, 0);
  EXPECT_EQ(kRespBlock / 32, 8) << "the responsibilities' warp sums are sized for 8 warps";
}

TEST(LaunchPolicy, RowIsTheCompiledArchitecture) {
  EXPECT_EQ(arch_launch(80).arch, 80);
  EXPECT_EQ(arch_launch(90).arch, 90);
  // An architecture without a row (sm_86 built as such, or sm_100) takes the default row; a device
  // that runs sm_90 code JIT-compiled from its PTX reports PTX version 90 and takes the sm_90 row.
  for (int a : {0, 70, 86, 89, 100, 120}) EXPECT_EQ(arch_launch(a).arch, 0) << a;
  DeviceLaunchInfo h200;
  h200.cc_major = 9;
  h200.compiled_arch = 90;
  h200.sm_count = 132;
  h200.max_threads_per_sm = 2048;
  h200.l2_bytes = int64_t(60) << 20;
  const LaunchPolicy p = select_launch_policy(h200);
  EXPECT_EQ(p.arch.arch, 90);
  EXPECT_EQ(p.sm_count, 132);
  EXPECT_EQ(p.l2_bytes, int64_t(60) << 20);
  DeviceLaunchInfo newer = h200;
  newer.cc_major = 10;
  EXPECT_EQ(select_launch_policy(newer).arch.arch, 90) << "keyed by the compiled architecture, not the device's";
}

TEST(LaunchPolicy, GridStrideBlocksFromTheSmCount) {
  DeviceLaunchInfo dev;
  dev.compiled_arch = 90;
  dev.sm_count = 132;
  dev.max_threads_per_sm = 2048;
  const LaunchPolicy p = select_launch_policy(dev);
  const int b = p.arch.elementwise_block, w = p.arch.waves;
  // One item per thread while that is below the cap.
  EXPECT_EQ(grid_stride_blocks(p, 1, b), 1u);
  EXPECT_EQ(grid_stride_blocks(p, b, b), 1u);
  EXPECT_EQ(grid_stride_blocks(p, b + 1, b), 2u);
  EXPECT_EQ(grid_stride_blocks(p, 0, b), 1u) << "never an empty grid";
  // Capped at `waves` waves of resident blocks on every SM.
  const int64_t cap = int64_t(132) * (2048 / b) * w;
  EXPECT_EQ(grid_stride_blocks(p, int64_t(1) << 40, b), static_cast<unsigned>(cap));
  EXPECT_EQ(grid_stride_blocks(p, cap * b, b), static_cast<unsigned>(cap));
  EXPECT_EQ(grid_stride_blocks(p, cap * b + 1, b), static_cast<unsigned>(cap));
  // Smaller blocks: more of them resident.
  EXPECT_EQ(grid_stride_blocks(p, int64_t(1) << 40, 128), static_cast<unsigned>(int64_t(132) * 16 * w));
  // A device with fewer SMs gets a smaller cap.
  DeviceLaunchInfo small = dev;
  small.sm_count = 20;
  EXPECT_EQ(grid_stride_blocks(select_launch_policy(small), int64_t(1) << 40, b),
            static_cast<unsigned>(int64_t(20) * (2048 / b) * w));
  // Unknown device numbers: the old fixed cap.
  EXPECT_EQ(grid_stride_blocks(select_launch_policy(DeviceLaunchInfo{}), int64_t(1) << 40, b),
            static_cast<unsigned>(kFallbackMaxGrid));
}

TEST(LaunchPolicy, GmmRespModeFromTheEnvironmentValue) {
  GmmRespMode m = GmmRespMode::Block;
  EXPECT_TRUE(parse_gmm_resp_mode(nullptr, &m));
  EXPECT_EQ(m, GmmRespMode::Split) << "unset: split";
  m = GmmRespMode::Block;
  EXPECT_TRUE(parse_gmm_resp_mode("", &m));
  EXPECT_EQ(m, GmmRespMode::Split);
  EXPECT_TRUE(parse_gmm_resp_mode("block", &m));
  EXPECT_EQ(m, GmmRespMode::Block);
  EXPECT_TRUE(parse_gmm_resp_mode("split", &m));
  EXPECT_EQ(m, GmmRespMode::Split);
  for (const char* bad : {"Block", "splits", "blk", "1", " split"}) EXPECT_FALSE(parse_gmm_resp_mode(bad, &m)) << bad;
}

TEST(LaunchPolicy, GmmRespSliceLength) {
  EXPECT_EQ(gmm_resp_slice_len(8), 2048);   // 8 coordinates per thread and component pass
  EXPECT_EQ(gmm_resp_slice_len(64), 2048);  // passes of 8 components
  EXPECT_EQ(gmm_resp_slice_len(4), 4096);
  EXPECT_EQ(gmm_resp_slice_len(1), 16384);
  EXPECT_EQ(gmm_resp_slice_len(3), 5632);  // 16384 / 3 = 5461.3, rounded up to a multiple of 256
  for (int64_t K = 1; K <= 40; ++K) EXPECT_EQ(gmm_resp_slice_len(K) % kRespBlock, 0) << K;
}

TEST(LaunchPolicy, GmmRespPlanCoversEveryCoordinateOnce) {
  // Short rows: one thread per chain, in both modes.
  for (GmmRespMode mode : {GmmRespMode::Split, GmmRespMode::Block})
    for (int64_t d : {1, 2, 63, 64}) EXPECT_EQ(gmm_resp_plan(d, 8, mode).kind, kRespThread) << d;
  // The split: slices of slice_len(K) coordinates, all non-empty, together exactly the row.
  for (int64_t K : {1, 2, 3, 5, 8, 10, 17})
    for (int64_t d : {65, 100, 255, 256, 2047, 2048, 2049, 4096, 5000, 16384, 16385, 65536, 65869, 1000003}) {
      SCOPED_TRACE("K " + std::to_string(K) + " d " + std::to_string(d));
      const GmmRespPlan p = gmm_resp_plan(d, K, GmmRespMode::Split);
      ASSERT_EQ(p.kind, kRespSlices);
      ASSERT_GE(p.slices, 1);
      EXPECT_EQ(p.partials, p.slices > 1) << "few components: partials only for several slices";
      if (p.slices == 1) {
        EXPECT_EQ(p.slice_len, d);
        EXPECT_LE(d, gmm_resp_slice_len(K)) << "one slice only when the row fits one";
      } else {
        EXPECT_EQ(p.slice_len, gmm_resp_slice_len(K));
        EXPECT_LT((p.slices - 1) * p.slice_len, d) << "the last slice is not empty";
        EXPECT_GE(p.slices * p.slice_len, d) << "the slices cover the row";
      }
      // Block mode: one slice per row whatever d (the pass before the split).
      const GmmRespPlan b = gmm_resp_plan(d, K, GmmRespMode::Block);
      EXPECT_EQ(b.kind, kRespSlices);
      EXPECT_EQ(b.slices, 1);
      EXPECT_EQ(b.slice_len, d);
      EXPECT_FALSE(b.partials);
    }
  // The case: 16 chains of d 65536 at K = 8 get 32 slices each, 512 blocks.
  const GmmRespPlan p = gmm_resp_plan(65536, 8, GmmRespMode::Split);
  EXPECT_EQ(p.slices, 32);
  EXPECT_EQ(p.slice_len, 2048);
}

TEST(LaunchPolicy, GmmRespWorkspace) {
  const GmmRespPlan split = gmm_resp_plan(65869, 10, GmmRespMode::Split);  // 33 slices of 2048
  ASSERT_EQ(split.slices, 33);
  EXPECT_EQ(gmm_resp_work_floats(split, 16, 10), 16 * 33 * 10);
  EXPECT_EQ(gmm_resp_work_floats(split, 0, 10), 0);
  EXPECT_EQ(gmm_resp_work_floats(gmm_resp_plan(65869, 10, GmmRespMode::Block), 16, 10), 0);
  EXPECT_EQ(gmm_resp_work_floats(gmm_resp_plan(2048, 8, GmmRespMode::Split), 16, 8), 0) << "one slice: no partials";
  EXPECT_EQ(gmm_resp_work_floats(gmm_resp_plan(64, 8, GmmRespMode::Split), 16, 8), 0);
}

TEST(LaunchPolicy, GmmRespManyComponentsGoThroughTheWorkspace) {
  // Above kRespBlockSoftmaxK components the forms do not go to shared memory: one slice, partials.
  const int64_t K = kRespBlockSoftmaxK + 1;
  for (GmmRespMode mode : {GmmRespMode::Split, GmmRespMode::Block}) {
    const GmmRespPlan p = gmm_resp_plan(100, K, mode);
    EXPECT_EQ(p.kind, kRespSlices);
    EXPECT_EQ(p.slices, 1);
    EXPECT_EQ(p.slice_len, 100);
    EXPECT_TRUE(p.partials);
    EXPECT_EQ(gmm_resp_work_floats(p, 3, K), 3 * K);
    EXPECT_FALSE(gmm_resp_plan(100, kRespBlockSoftmaxK, mode).partials);
  }
  const GmmRespPlan p = gmm_resp_plan(65536, K, GmmRespMode::Split);
  EXPECT_EQ(p.slices, 32);
  EXPECT_TRUE(p.partials);
  EXPECT_EQ(gmm_resp_plan(64, K, GmmRespMode::Split).kind, kRespThread) << "short rows need no shared memory";
}

// fused_step_kernel's threads as the kernel maps them (cuda/cuda_backend.cu): flat, the unsigned
// index i = blockIdx.x * blockDim.x + threadIdx.x takes chain i / groups, group i - chain * groups
// while i < n * groups; else group blockIdx.x * blockDim.x + threadIdx.x (< groups) of chains
// blockIdx.y, + gridDim.y, ... Every (chain, group) must be taken exactly once, the grid must be
// launchable (gridDim.y <= 65535, gridDim.x < 2^31) and the flat index must not wrap.
TEST(LaunchPolicy, FusedStepGridCoversEveryChainAndGroupOnce) {
  std::vector<int> blocks = {32, 1024};
  for (int i = 0; i < kArchLaunchRows; ++i)
    if (std::find(blocks.begin(), blocks.end(), kArchLaunch[i].elementwise_block) == blocks.end())
      blocks.push_back(kArchLaunch[i].elementwise_block);
  for (int block : blocks)
    for (int64_t n : {int64_t(1), int64_t(2), int64_t(7), int64_t(300), int64_t(65535), int64_t(65536), int64_t(65576),
                      int64_t(131071), int64_t(200001), int64_t(1000000)})
      for (int64_t d : {33, 64, 100, 249, 252, 253, 256, 257, 1024, 1026, 65869}) {
        SCOPED_TRACE("block " + std::to_string(block) + " n " + std::to_string(n) + " d " + std::to_string(d));
        const int64_t groups = (d + 3) / 4;
        const StepGrid g = fused_step_grid(n, d, block);
        ASSERT_GE(g.blocks_x, 1u);
        ASSERT_LT(int64_t(g.blocks_x), int64_t(1) << 31);
        ASSERT_GE(g.blocks_y, 1u);
        ASSERT_LE(int64_t(g.blocks_y), kMaxGridY);
        if (g.flat) {
          ASSERT_LT(groups, kFlatStepGroups);
          ASSERT_EQ(g.blocks_y, 1u);
          const int64_t threads = int64_t(g.blocks_x) * block, work = n * groups;
          ASSERT_LE(threads, int64_t(1) << 32) << "the unsigned flat index wraps";
          ASSERT_GE(threads, work);
          ASSERT_LT(threads - block, work) << "a whole block of idle threads";
          if (work > (int64_t(1) << 22)) continue;  // the mapping below is the same at every size
          std::vector<uint8_t> seen(static_cast<size_t>(work), 0);
          const unsigned ug = static_cast<unsigned>(groups);
          bool inside = true;
          for (int64_t t = 0; t < threads; ++t) {
            const unsigned u = static_cast<unsigned>(t);
            if (u >= static_cast<unsigned>(n) * ug) continue;
            const int64_t c = u / ug;
            const unsigned grp = u - static_cast<unsigned>(c) * ug;
            inside = inside && c < n && grp < ug;
            if (inside) ++seen[static_cast<size_t>(c * groups + grp)];
          }
          ASSERT_TRUE(inside);
          ASSERT_EQ(std::count(seen.begin(), seen.end(), uint8_t(1)), work) << "(chain, group) items not taken exactly once";
        } else {
          EXPECT_TRUE(groups >= kFlatStepGroups || n * groups >= (int64_t(1) << 31)) << "short rows take the flat launch";
          ASSERT_GE(int64_t(g.blocks_x) * block, groups);
          ASSERT_LT(int64_t(g.blocks_x - 1) * block, groups);
          std::vector<uint8_t> seen(static_cast<size_t>(n), 0);
          for (int64_t y = 0; y < g.blocks_y; ++y)
            for (int64_t c = y; c < n; c += g.blocks_y) ++seen[static_cast<size_t>(c)];
          ASSERT_EQ(std::count(seen.begin(), seen.end(), uint8_t(1)), n) << "chains not taken exactly once";
        }
      }
  // Short rows whose flat index would pass 31 bits take the 2-D launch.
  const int64_t big = (int64_t(1) << 31) / 63 + 1;
  EXPECT_FALSE(fused_step_grid(big, 252, 256).flat);
  EXPECT_EQ(fused_step_grid(big, 252, 256).blocks_y, 65535u);
  EXPECT_TRUE(fused_step_grid(big - 1, 252, 256).flat);
}

TEST(LaunchPolicy, PoolStepGridCoversEveryBlockAndChain) {
  for (int64_t n : {int64_t(1), int64_t(65535), int64_t(65536), int64_t(1000000)})
    for (int64_t pool_blocks : {1, 255, 256, 257, 12288}) {
      const StepGrid g = pool_step_grid(n, pool_blocks, 256);
      EXPECT_FALSE(g.flat);
      EXPECT_GE(int64_t(g.blocks_x) * 256, pool_blocks);
      EXPECT_LT(int64_t(g.blocks_x - 1) * 256, pool_blocks);
      EXPECT_GE(g.blocks_y, 1u);
      EXPECT_LE(int64_t(g.blocks_y), kMaxGridY);
      EXPECT_EQ(int64_t(g.blocks_y), n < kMaxGridY ? n : kMaxGridY);
    }
}

}  // namespace
