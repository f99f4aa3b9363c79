// The CUDA backend's launch configuration as data, and the pure choices made from it. Plain C++
// (no CUDA header): the kernels read it at compile time, the backend at creation from what it
// reads off the device, and tests/cpu/test_launch_policy.cpp checks the choices on the host.
//
// Two kinds of number live here and must not be confused:
//  - Per-architecture launch shapes (kArchLaunch): block sizes, __launch_bounds__ minimum blocks,
//    grid caps. They change speed, never results: every kernel they shape computes each output
//    element (or each chain) independently of the grid.
//  - Shapes that fix a summation order (kRespBlock, the slice length of the GMM responsibilities).
//    These are the same on every architecture and for every batch, so a chain's result depends on
//    its own row alone (the batch-invariance tests) and on no device property.
//
// NOT YET MEASURED: every number below is a starting point chosen without a device (no GPU in
// the session that wrote it). bench/gpu_check.sh's gmm_resp_block / gmm_resp_split steps and
// `almc bench --backend cuda` are what to tune them with.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace almc {

// ---------------------------------------------------------------- per-architecture launch shapes

// One row per compiled architecture (compute capability x 10, i.e. __CUDA_ARCH__ / 10); the row
// with arch 0 serves every architecture not listed. A kernel compiled for compute_XY takes its
// __launch_bounds__ from row XY (arch_launch(__CUDA_ARCH__ / 10) in the device pass); the host
// launches it with the same row, found from the PTX version the runtime reports for the kernel
// (cudaFuncAttributes::ptxVersion), so the two always agree, also on a GPU that runs code JIT-
// compiled from an older architecture's PTX.
struct ArchLaunch {
  int arch;                     // compute capability x 10 (0: any other)
  int elementwise_block;        // threads per block: fused step, pooling step, grid-stride maps
  int elementwise_min_blocks;   // __launch_bounds__ minimum resident blocks per SM for those
  int chain_block;              // threads per block of the one-thread-per-chain kernels
  int waves;                    // grid-stride kernels: at most this many waves of resident blocks
};

// sm_80 (A100) and sm_90 (H100/H200) both hold 2048 threads and 64K registers per SM: 256-thread
// blocks with 4 resident per SM cap registers at 64 per thread. Unmeasured: the same numbers on
// both until a device says otherwise.
constexpr ArchLaunch kArchLaunch[] = {
    {80, 256, 4, 128, 4},
    {90, 256, 4, 128, 4},
    {0, 256, 4, 128, 4},
};
constexpr int kArchLaunchRows = sizeof(kArchLaunch) / sizeof(kArchLaunch[0]);

// The row for compiled architecture `arch` (exact match, else the default row).
constexpr ArchLaunch arch_launch(int arch) {
  for (int i = 0; i < kArchLaunchRows; ++i)
    if (kArchLaunch[i].arch == arch) return kArchLaunch[i];
  return kArchLaunch[kArchLaunchRows - 1];
}

// The block size of the per-chain reductions (row norms, log-determinants, GMM responsibilities):
// it fixes the order of their sums, so it is one constant for every architecture.
constexpr int kRespBlock = 256;

// ---------------------------------------------------------------- what the device says

// Read once when the backend is created (cudaDeviceGetAttribute, cudaFuncGetAttributes).
struct DeviceLaunchInfo {
  int cc_major = 0, cc_minor = 0;
  int compiled_arch = 0;        // the PTX version the step kernels were compiled for on this device
  int sm_count = 0;             // cudaDevAttrMultiProcessorCount (0: unknown)
  int max_threads_per_sm = 0;   // cudaDevAttrMaxThreadsPerMultiProcessor (0: unknown)
  int64_t l2_bytes = 0;         // cudaDevAttrL2CacheSize; reported, not yet used by any choice
};

struct LaunchPolicy {
  ArchLaunch arch;
  int sm_count;            // 0: unknown
  int max_threads_per_sm;  // 0: unknown
  int64_t l2_bytes;
};

// Without a known SM count: the fixed cap on grid-stride grids the backend used before it read
// the device.
constexpr int64_t kFallbackMaxGrid = int64_t(65535) * 8;

// Blocks of `block` threads resident on one SM at once (at least 1).
constexpr int64_t resident_blocks(int max_threads_per_sm, int block) {
  return max_threads_per_sm >= block && block > 0 ? max_threads_per_sm / block : 1;
}

inline LaunchPolicy select_launch_policy(const DeviceLaunchInfo& dev) {
  return {arch_launch(dev.compiled_arch), dev.sm_count, dev.max_threads_per_sm, dev.l2_bytes};
}

// Blocks of a grid-stride kernel over `work` items, `block` threads each: one item per thread
// when that fits, else the policy's waves of resident blocks on every SM (each thread then loops),
// at least 1. The kernels it shapes compute each item independently: the grid changes speed, not
// results.
inline unsigned grid_stride_blocks(const LaunchPolicy& p, int64_t work, int block) {
  const int64_t want = work > 0 ? (work + block - 1) / block : 1;
  int64_t cap = p.sm_count > 0 && p.max_threads_per_sm > 0
                    ? int64_t(p.sm_count) * resident_blocks(p.max_threads_per_sm, block) * p.arch.waves
                    : kFallbackMaxGrid;
  if (cap > int64_t(0x7fffffff)) cap = 0x7fffffff;
  return static_cast<unsigned>(want < cap ? want : cap);
}

// ---------------------------------------------------------------- the fused step's grid

constexpr int64_t kMaxGridY = 65535;  // gridDim.y (and gridDim.z) limit of every device

// Rows of fewer groups of 4 coordinates than this take the flat launch of the fused step.
constexpr int64_t kFlatStepGroups = 64;

// The grid of fused_step_kernel (cuda/cuda_backend.cu) over n chains of d coordinates, `block`
// threads per block. One thread per (chain, group of 4 coordinates):
//   flat: short rows (fewer than kFlatStepGroups groups) while n x groups fits 31 bits: thread i of
//     the flat 32-bit index takes chain i / groups, group i % groups (a block is not mostly idle
//     threads); blocks_y is 1;
//   else: blockIdx.x * block + threadIdx.x is the group (blocks_x blocks cover a row), blockIdx.y
//     the first chain, striding by blocks_y (at most kMaxGridY) over the rest.
// Either way every (chain, group) is taken by exactly one thread (tests/cpu/test_launch_policy.cpp).
struct StepGrid {
  bool flat;
  unsigned blocks_x, blocks_y;
};

inline StepGrid fused_step_grid(int64_t n, int64_t d, int block) {
  const int64_t groups = (d + 3) / 4;
  if (groups < kFlatStepGroups && n * groups < (int64_t(1) << 31))
    return {true, static_cast<unsigned>((n * groups + block - 1) / block), 1u};
  return {false, static_cast<unsigned>((groups + block - 1) / block),
          static_cast<unsigned>(n < kMaxGridY ? n : kMaxGridY)};
}

// The grid of fused_pool_kernel: one thread per pooling block of a chain along x, chains along y
// striding by blocks_y (at most kMaxGridY).
inline StepGrid pool_step_grid(int64_t n, int64_t pool_blocks, int block) {
  return {false, static_cast<unsigned>((pool_blocks + block - 1) / block),
          static_cast<unsigned>(n < kMaxGridY ? n : kMaxGridY)};
}

// ---------------------------------------------------------------- GMM responsibilities

// How the [n, K] responsibilities are computed from rows of d coordinates:
//   kRespThread: rows up to kRespShortRow coordinates, one thread per chain, sums in coordinate
//     order (tiny problems);
//   kRespSlices: longer rows cut into `slices` slices of `slice_len` coordinates; one block of
//     kRespBlock threads per (slice, chain) accumulates the K quadratic forms of its slice (K
//     accumulators per pass of kRespPassK components); with one slice and at most
//     kRespBlockSoftmaxK components that block also takes the softmax (the K forms in shared
//     memory), else (`partials`) it writes its slice's forms to a workspace and a second kernel
//     sums each chain's slices in slice order and takes the softmax. One partial summed from zero
//     is that partial, so with one slice `partials` changes where gmm_softmax runs, not the forms
//     (the compiler may contract its multiply-adds differently in the two kernels; the choice
//     depends on K alone). `slice_len` is a multiple of kRespBlock, so every slice reduces in the
//     same order.
// The decomposition is a function of (d, K, mode) alone, never of the number of chains or of the
// device: a chain's responsibilities are the same whatever the batch (the batch-invariance tests)
// and on every GPU. The split therefore applies whenever d exceeds one slice (slice_len depends on
// K only), also with many chains, where it costs a second, small launch and n x slices x K partial
// forms (K / slice_len of the traffic of x: 0.4% at K = 8), and buys blocks enough to fill the
// device when the chains are few (16 chains of d 65536 at K = 8: 512 blocks instead of 16).
enum GmmRespKind : int { kRespThread = 0, kRespSlices = 1 };

// ALMC_GPU_GMM_RESP: "split" (default: the rule above) or "block" (one slice per row whatever d:
// one block per chain, the responsibilities pass before the split existed), so a GPU session can
// measure the two side by side. Read once per backend; results differ between the modes by
// rounding only (another summation order), so a process keeps one mode.
enum class GmmRespMode : int { Split = 0, Block = 1 };

constexpr int64_t kRespShortRow = 64;
constexpr int kRespPassK = 8;  // components accumulated together per pass over a slice
// Coordinate x component terms of one slice per pass: 2048 coordinates at K >= 8 (8 per thread),
// more coordinates for fewer components. Unmeasured.
constexpr int64_t kRespSliceTerms = 16384;
// Most components whose forms a block keeps in shared memory for its softmax (16 KB; more would
// pass the 48 KB a launch gets without opting in).
constexpr int64_t kRespBlockSoftmaxK = 4096;

struct GmmRespPlan {
  GmmRespKind kind;
  int64_t slices;     // kRespSlices: slices per row (>= 1)
  int64_t slice_len;  // kRespSlices: coordinates per slice (the last one may be shorter)
  bool partials;      // kRespSlices: forms go through the workspace and a second kernel
};

// Parses ALMC_GPU_GMM_RESP's value: null or empty is the default (split). False for anything else
// than "split" or "block".
inline bool parse_gmm_resp_mode(const char* s, GmmRespMode* out) {
  if (!s || !*s || std::strcmp(s, "split") == 0) {
    *out = GmmRespMode::Split;
    return true;
  }
  if (std::strcmp(s, "block") == 0) {
    *out = GmmRespMode::Block;
    return true;
  }
  return false;
}

// What is wrong with a value parse_gmm_resp_mode refused (the backend's error, and the command's
// when context creation fails without a handle to carry it).
inline std::string gmm_resp_mode_problem(const char* value) {
  return std::string("ALMC_GPU_GMM_RESP=") + (value ? value : "") + " is not a GMM responsibilities mode (split or block)";
}

// Coordinates per slice for K components: kRespSliceTerms / min(K, kRespPassK), rounded up to a
// multiple of kRespBlock.
constexpr int64_t gmm_resp_slice_len(int64_t K) {
  const int64_t per_pass = K < 1 ? 1 : K < kRespPassK ? K : kRespPassK;
  const int64_t len = (kRespSliceTerms + per_pass - 1) / per_pass;
  return (len + kRespBlock - 1) / kRespBlock * kRespBlock;
}

inline GmmRespPlan gmm_resp_plan(int64_t d, int64_t K, GmmRespMode mode) {
  if (d <= kRespShortRow) return {kRespThread, 1, d, false};
  const int64_t len = gmm_resp_slice_len(K);
  const int64_t slices = mode == GmmRespMode::Block ? 1 : (d + len - 1) / len;
  if (slices <= 1) return {kRespSlices, 1, d, K > kRespBlockSoftmaxK};
  return {kRespSlices, slices, len, true};
}

// Floats of workspace the plan needs for n chains: the partial forms [n, slices, K], or none.
inline int64_t gmm_resp_work_floats(const GmmRespPlan& plan, int64_t n, int64_t K) {
  return plan.kind == kRespSlices && plan.partials ? n * plan.slices * K : 0;
}

}  // namespace almc
