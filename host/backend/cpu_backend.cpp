// The CPU backend: float32 state, OpenMP over chains (or over units of one chain when there are
// few chains), the same per-unit functors as the CUDA kernels, the ONNX executor's GEMM (fixed
// per-element order) for dense operators. Reductions run in a fixed order per chain, so results
// do not depend on the thread count.
#include "host/core/parallel.hpp"
#include "host/backend/backend.hpp"

// Clang reports the `omp simd` loops it does not vectorise (sanitizer builds at -O1); they are
// correct either way.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include "cuda/langevin/chain_step.cuh"
#include "host/backend/cpu_noise.hpp"
#include "host/backend/cpu_tables.hpp"
#include "host/core/error.hpp"
#include "host/core/host_memory.hpp"
#include "host/core/parse_count.hpp"
#include "host/onnx/cpu_gemm.hpp"
#include "host/onnx/op_kernels.hpp"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

namespace almc {
namespace {

constexpr int64_t kTile = 1024;        // coordinates per fused-step tile (a multiple of 8)
// Coordinates per tile when one thread sweeps its range of chains a tile at a time under a
// mixture prior: the tile's K x 2 table rows (16 KiB at K = 8) then stay in L1 across the chains
// instead of streaming from L2 twice per chain (responsibilities and score). A multiple of 8, at
// most kTile.
constexpr int64_t kMixTile = 256;
constexpr int64_t kTableChunk = 2048;  // table entries per work item of the per-level tables
// Below this many chains per thread, a step's work is split along d (responsibilities by
// component, update by tile) rather than by chain, so that every thread gets an even share.
constexpr int64_t kChainsPerThread = 4;

// Table entries i0 .. i0 + len (one component's coordinates) at level l: amu and inv_s
// (step.cuh's prior_table_entry), and the sum of their log-determinant terms (prior_logdet_term,
// vectorised in cpu_tables.cpp) in a fixed order, eight partial sums; logs: len doubles of scratch.
ALMC_CPU_CLONES("avx512f", "arch=x86-64-v3", "default")
double table_chunk(const GmmPrior& g, const LevelConsts& l, int64_t i0, int64_t len, const PriorTables& out,
                   double* logs) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) prior_table_entry(g, l, i0 + i, out);
  cpu_prior_log_terms(g, l, i0, len, logs);
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= len; i += 8)
    for (int e = 0; e < 8; ++e) acc[e] += logs[i + e];
  for (; i < len; ++i) acc[i % 8] += logs[i];
  double sum = 0.0;
  for (int e = 0; e < 8; ++e) sum += acc[e];
  return sum;
}

// The tables of every component at level l as work items (component, chunk of kTableChunk
// coordinates) spread over the threads of the enclosing parallel region (an orphaned `omp for`,
// serial outside one); partial[item] = the item's log-determinant sum. Ends with a barrier.
void table_items(const GmmPrior& g, int64_t d, const LevelConsts& l, const PriorTables& out, double* partial) {
  const int64_t chunks = (d + kTableChunk - 1) / kTableChunk;
  alignas(64) double logs[kTableChunk];
#pragma omp for schedule(static)
  for (int64_t item = 0; item < g.K * chunks; ++item) {
    const int64_t k = item / chunks, j0 = (item % chunks) * kTableChunk;
    partial[item] = table_chunk(g, l, k * d + j0, std::min(kTableChunk, d - j0), out, logs);
  }
}

// logdet[k] = the sum of component k's chunk sums, in chunk order: the same for any thread count.
void logdet_from_items(int64_t K, int64_t d, const double* partial, float* logdet) {
  const int64_t chunks = (d + kTableChunk - 1) / kTableChunk;
  for (int64_t k = 0; k < K; ++k) {
    double sum = 0.0;
    for (int64_t c = 0; c < chunks; ++c) sum += partial[k * chunks + c];
    logdet[k] = static_cast<float>(sum);
  }
}

// Coordinates j0 .. j0 + len of one chain's quadratic forms against components k0 .. k1 - 1 (the
// tables' level): acc[8 k + e] gathers the terms of coordinates j with j % 8 == e, in coordinate
// order (chain_step.cuh's gmm_quad_lanes), so a chain's sums do not depend on how its row is cut
// into tiles (tiles start at multiples of 8), on which components are computed together, nor on
// threading, and are those of the per-chain step. Vectorisable: the eight sums are one AVX2
// register (an AVX-512 clone is slower: GCC splits and recombines 16-wide vectors into the eight
// lanes).
ALMC_CPU_CLONES("avx2", "default")
void gmm_resp_tile(const PriorTables& tab, const float* xr, int64_t d, int64_t j0, int64_t len, float* acc, int64_t k0,
                   int64_t k1) {
  for (int64_t k = k0; k < k1; ++k) {
    float a[8];
    for (int e = 0; e < 8; ++e) a[e] = acc[8 * k + e];
    gmm_quad_lanes(xr, tab.amu + k * d, tab.inv_s + k * d, j0, j0 + len, a);
    for (int e = 0; e < 8; ++e) acc[8 * k + e] = a[e];
  }
}

// A chain's responsibilities r[K] from its accumulated quadratic forms acc[K, 8].
void gmm_resp_finish(const PriorTables& tab, const float* acc, float* r) {
  for (int64_t k = 0; k < tab.K; ++k) r[k] = gmm_quad_from_lanes(acc + 8 * k);
  gmm_softmax(tab, r);
}

// (A x)_i of one chain's row for i < m, step.cuh's local_forward; the elementwise operators with
// the kind fixed at compile time, so the loop has no branch and vectorises.
template <int32_t Kind>
inline __attribute__((always_inline)) void forward_row_body(const LocalOp& op, const float* x, float* out, int64_t m) {
  LocalOp o = op;
  o.kind = Kind;
  for (int64_t i = 0; i < m; ++i) out[i] = local_forward(o, x, i);
}

// One chain's blur (dir 1) or its adjoint (dir -1), step.cuh's blur_at in image order: no
// division per pixel (local_forward / local_adjoint find the pixel of a flat index), and the
// pixels whose window lies inside the image without the bounds tests. Each pixel's terms and their
// order are blur_at's, so the bits are those of local_forward / local_adjoint. The common square
// kernels get their size at compile time (blur_at<..., KH, KW>): unrolled, so that the loop over
// the inner pixels can vectorise across the row.
template <int KH, int KW>
inline __attribute__((always_inline)) void blur_row_body(const LocalOp& op, const float* in, float* out, int64_t dir) {
  const BlurSpan rows = blur_interior(op.H, op.kh, dir), cols = blur_interior(op.W, op.kw, dir);
  for (int64_t ch = 0; ch < op.C; ++ch) {
    const float* img = in + ch * op.H * op.W;
    for (int64_t r = 0; r < op.H; ++r) {
      float* o = out + (ch * op.H + r) * op.W;
      if (r < rows.lo || r >= rows.hi) {
        for (int64_t cl = 0; cl < op.W; ++cl) o[cl] = blur_at<true>(op, img, r, cl, dir);
        continue;
      }
      for (int64_t cl = 0; cl < cols.lo; ++cl) o[cl] = blur_at<true, KH, KW>(op, img, r, cl, dir);
#pragma omp simd
      for (int64_t cl = cols.lo; cl < cols.hi; ++cl) o[cl] = blur_at<false, KH, KW>(op, img, r, cl, dir);
      for (int64_t cl = std::max(cols.lo, cols.hi); cl < op.W; ++cl) o[cl] = blur_at<true, KH, KW>(op, img, r, cl, dir);
    }
  }
}

ALMC_CPU_CLONES("avx512f", "avx2", "default")
void blur_row(const LocalOp& op, const float* in, float* out, int64_t dir) {
  if (op.kh == 3 && op.kw == 3) return blur_row_body<3, 3>(op, in, out, dir);
  if (op.kh == 5 && op.kw == 5) return blur_row_body<5, 5>(op, in, out, dir);
  blur_row_body<0, 0>(op, in, out, dir);
}

ALMC_CPU_CLONES("avx512f", "avx2", "default")
void forward_row(const LocalOp& op, const float* x, float* out, int64_t m) {
  switch (op.kind) {
    case kOpIdentity: return forward_row_body<kOpIdentity>(op, x, out, m);
    case kOpMask: return forward_row_body<kOpMask>(op, x, out, m);
    case kOpBlur: return blur_row(op, x, out, 1);
    default:
      for (int64_t i = 0; i < m; ++i) out[i] = local_forward(op, x, i);
  }
}

// ||r|| of one row of m entries: the squares summed in double in eight interleaved partial sums
// (entry i into sum i % 8, in order), then the eight in order: a fixed order whatever the
// threading, and eight independent additions in flight instead of one chain of dependent ones.
ALMC_CPU_CLONES("avx512f", "avx2", "default")
float row_norm(const float* r, int64_t m) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= m; i += 8)
    for (int e = 0; e < 8; ++e) acc[e] += static_cast<double>(r[i + e]) * r[i + e];
  for (; i < m; ++i) acc[i % 8] += static_cast<double>(r[i]) * r[i];
  double s = 0.0;
  for (int e = 0; e < 8; ++e) s += acc[e];
  return static_cast<float>(std::sqrt(s));
}

// Whether a row of d floats holds a NaN or an infinity (|v| <= FLT_MAX is false for both).
ALMC_CPU_CLONES("avx512f", "avx2", "default")
int32_t row_has_nonfinite(const float* x, int64_t d) {
  int32_t bad = 0;
  for (int64_t j = 0; j < d; ++j) bad |= !(std::fabs(x[j]) <= std::numeric_limits<float>::max());
  return bad;
}

// One tile of a chain's row for the elementwise operators: the shared per-element functions
// (step.cuh), called in passes the compiler vectorises (noise block, prior score, update). The
// operator kind is a template parameter, so the update pass has no branch.
template <int32_t Op>
inline __attribute__((always_inline)) void fused_tile_body(const FusedStepParams& params, const StepScalars& cur,
                                                           int64_t c, int64_t j0, int64_t len) {
  FusedStepParams p = params;
  p.op.kind = Op;
  alignas(64) float xi[kTile], s[kTile];
  float* x = p.x + c * p.d;
  // The tile's x lines are requested before the noise is drawn, so they arrive while it is
  // computed (a tile is one 4 KiB page, which the hardware prefetchers do not cross).
  for (int64_t j = 0; j < len; j += 16) __builtin_prefetch(x + j0 + j, 1, 3);
  philox_normals_block(p.seed, noise_stream(p.chain0 + c, p.cpm), static_cast<uint64_t>(cur.step),
                       static_cast<uint64_t>(j0 / 4), (len + 3) / 4, xi);
  const float* yrow = measurement_row(p, c);
  if (p.prior == kPriorGaussian && cur.kind != kStepWarm) {
    // One component: its score and the update in one pass, the score summed as row_prior_score
    // sums it (0 + the component's term), so the bits are those of the two passes.
    const float* amu = p.tab.amu + j0;
    const float* inv = p.tab.inv_s + j0;
    for (int64_t j = 0; j < len; ++j) {
      const float xv = x[j0 + j];
      x[j0 + j] = step_element(p, cur, yrow, c, j0 + j, xv, 0.f + component_score(xv, amu[j], inv[j]), xi[j]);
    }
    return;
  }
  row_prior_score(p, cur, c, j0, len, s);
  for (int64_t j = 0; j < len; ++j) x[j0 + j] = step_element(p, cur, yrow, c, j0 + j, x[j0 + j], s[j], xi[j]);
}

// AVX-512, AVX2 and baseline clones, picked at load time (the library itself targets x86-64-v2); each
// clone inlines the per-operator bodies (clang cannot clone templates, so the switch is here).
ALMC_CPU_CLONES("avx512f", "avx2", "default")
void fused_tile(const FusedStepParams& p, const StepScalars& cur, int64_t c, int64_t j0, int64_t len) {
  switch (p.op.kind) {
    case kOpNone: return fused_tile_body<kOpNone>(p, cur, c, j0, len);
    case kOpIdentity: return fused_tile_body<kOpIdentity>(p, cur, c, j0, len);
    case kOpMask: return fused_tile_body<kOpMask>(p, cur, c, j0, len);
    default: return fused_tile_body<kOpBlur>(p, cur, c, j0, len);  // the gradient buffer
  }
}

// Bands b0 .. b0 + nb of chain c under the downsampling operator, a band being the f image rows
// of one row of pooling blocks (band b = channel b / (H / f), block row b % (H / f)); consecutive
// bands are contiguous in x, across channels too, so a strip of them is one range of coordinates.
// The passes of fused_tile over the strip: its normals in one draw and its prior score, then band
// by band each block's likelihood term from x before the update (step.cuh's pool_block_grad_row,
// vectorised over the band's blocks) and the update. One draw per strip rather than per band: the
// noise block computes whole batches of 64 coordinate groups (cpu_noise::kBatch), and a band of
// 2 x 64 pixels is only 32 of them. Scratch: xi (nb f W + 8 floats), s (nb f W), g (2 W). F > 0
// fixes the pooling factor at compile time. The chain's measurement row (a division) is found
// once per strip, not once per block.
template <int64_t F>
inline __attribute__((always_inline)) void fused_pool_strip_body(const FusedStepParams& params, const StepScalars& cur,
                                                                 int64_t c, int64_t b0, int64_t nb, float* xi,
                                                                 float* s, float* g) {
  FusedStepParams p = params;
  if (F > 0) p.op.f = F;
  const int64_t f = p.op.f, W = p.op.W, hb = p.op.H / f, band = f * W, len = nb * band;
  float* gb = g + W;
  const int64_t j0 = b0 * band;
  float* x = p.x + c * p.d + j0;
  // Whole coordinate groups around the strip; xi points at its first coordinate.
  const int64_t g0 = j0 / 4, lead = j0 - 4 * g0;
  philox_normals_block(p.seed, noise_stream(p.chain0 + c, p.cpm), static_cast<uint64_t>(cur.step),
                       static_cast<uint64_t>(g0), (lead + len + 3) / 4, xi);
  xi += lead;
  row_prior_score(p, cur, c, j0, len, s);
  const float* yrow = measurement_row(p, c);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t ch = (b0 + b) / hb, br = (b0 + b) % hb;
    // The band's block terms in a vectorised pass over the blocks (into gb), then spread to their
    // pixels' columns (g).
#pragma omp simd
    for (int64_t bc = 0; bc < W / f; ++bc) gb[bc] = pool_block_grad_row<F>(p, cur, yrow, c, ch, br, bc);
    for (int64_t bc = 0; bc < W / f; ++bc)
      for (int64_t cc = 0; cc < f; ++cc) g[bc * f + cc] = gb[bc];
    float* xb = x + b * band;
    const float* sb = s + b * band;
    const float* xib = xi + b * band;
    for (int64_t r = 0; r < f; ++r)
      for (int64_t col = 0; col < W; ++col) {
        const int64_t j = r * W + col;
        xb[j] = langevin_update(cur, xb[j], sb[j], g[col], xib[j]);
      }
  }
}

ALMC_CPU_CLONES("avx512f", "avx2", "default")
void fused_pool_strip(const FusedStepParams& p, const StepScalars& cur, int64_t c, int64_t b0, int64_t nb, float* xi,
                      float* s, float* g) {
  switch (p.op.f) {
    case 2: return fused_pool_strip_body<2>(p, cur, c, b0, nb, xi, s, g);
    case 4: return fused_pool_strip_body<4>(p, cur, c, b0, nb, xi, s, g);
    default: return fused_pool_strip_body<0>(p, cur, c, b0, nb, xi, s, g);
  }
}

// The per-chain whole step (chain_step.cuh) over chains c0 .. c1, for rows of at most
// kChainStepMaxD coordinates. The normals of a block of kChainBlock chains are drawn together, a
// coordinate group of all of them per call (philox_normals_streams: philox_normal4's bits), so
// rows of one group or a few still fill the SIMD lanes (a row at a time when the block has fewer
// chains than a row has groups); each chain's step then reads its own.
constexpr int64_t kChainBlock = 64;

struct BlockNormals {
  const float* xi;  // this chain's normals, groups 0 .. ceil(d / 4)
  void operator()(uint64_t, uint64_t, uint64_t, uint64_t g0, int64_t n, float* out) const {
    std::memcpy(out, xi + 4 * g0, sizeof(float) * static_cast<size_t>(4 * n));
  }
};

template <int32_t Prior, int32_t Op>
inline __attribute__((always_inline)) void chain_range_body(const FusedStepParams& p, const StepScalars& cur,
                                                            int64_t c0, int64_t c1, bool resp_due) {
  alignas(64) float xi[kChainStepMaxD], s[kChainStepMaxD], g[kChainStepMaxD];
  alignas(64) float block[kChainBlock * kChainStepMaxD], group[4 * kChainBlock];
  uint64_t streams[kChainBlock];
  const ChainScratch w{xi, s, g};
  const int64_t groups = (p.d + 3) / 4;
  for (int64_t b0 = c0; b0 < c1; b0 += kChainBlock) {
    const int64_t nb = std::min(kChainBlock, c1 - b0);
    for (int64_t i = 0; i < nb; ++i) streams[i] = noise_stream(p.chain0 + b0 + i, p.cpm);
    if (nb < groups) {  // few chains (the lanes run along each row): a row's groups per call
      for (int64_t i = 0; i < nb; ++i)
        philox_normals_block(p.seed, streams[i], static_cast<uint64_t>(cur.step), 0, groups, block + i * 4 * groups);
    } else {
      for (int64_t gr = 0; gr < groups; ++gr) {
        philox_normals_streams(p.seed, streams, static_cast<uint64_t>(cur.step), static_cast<uint64_t>(gr), nb, group);
        for (int64_t i = 0; i < nb; ++i)
          for (int e = 0; e < 4; ++e) block[i * 4 * groups + 4 * gr + e] = group[4 * i + e];
      }
    }
    for (int64_t i = 0; i < nb; ++i)
      chain_step<Prior, Op>(p, cur, b0 + i, resp_due, BlockNormals{block + i * 4 * groups}, w);
  }
}

template <int32_t Prior>
inline __attribute__((always_inline)) void chain_range_prior(const FusedStepParams& p, const StepScalars& cur,
                                                             int64_t c0, int64_t c1, bool resp_due) {
  switch (p.op.kind) {
    case kOpNone: return chain_range_body<Prior, kOpNone>(p, cur, c0, c1, resp_due);
    case kOpIdentity: return chain_range_body<Prior, kOpIdentity>(p, cur, c0, c1, resp_due);
    case kOpMask: return chain_range_body<Prior, kOpMask>(p, cur, c0, c1, resp_due);
    case kOpDownsample: return chain_range_body<Prior, kOpDownsample>(p, cur, c0, c1, resp_due);
    default: return chain_range_body<Prior, kOpBlur>(p, cur, c0, c1, resp_due);  // the gradient buffer
  }
}

// Clones per instruction set, as fused_tile; (prior, operator) switched here, once per range.
ALMC_CPU_CLONES("avx512f", "avx2", "default")
void chain_range(const FusedStepParams& p, const StepScalars& cur, int64_t c0, int64_t c1, bool resp_due) {
  switch (p.prior) {
    case kPriorGaussian: return chain_range_prior<kPriorGaussian>(p, cur, c0, c1, resp_due);
    case kPriorGmm: return chain_range_prior<kPriorGmm>(p, cur, c0, c1, resp_due);
    default: return chain_range_prior<kPriorBuffer>(p, cur, c0, c1, resp_due);
  }
}

// Rows up to this many coordinates take the per-chain step by default (measured: see
// chain_step_max_d). ALMC_CPU_CHAIN_STEP_MAX_D=<n> (read when a backend is made) changes it,
// 0 turning it off; at most kChainStepMaxD. The choice changes speed only, never results.
constexpr int64_t kCpuChainStepMaxD = 64;

int64_t chain_step_max_d() {
  const char* v = std::getenv("ALMC_CPU_CHAIN_STEP_MAX_D");
  if (!v || !*v) return kCpuChainStepMaxD;
  uint64_t n = 0;
  if (!parse_count(v, n)) {
    std::fprintf(stderr, "almc: ignoring ALMC_CPU_CHAIN_STEP_MAX_D=%s (not a count of coordinates)\n", v);
    return kCpuChainStepMaxD;
  }
  return int64_t(std::min<uint64_t>(n, uint64_t(kChainStepMaxD)));
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads)
      : n_threads_(n_threads > 0 ? n_threads : 0), chain_max_d_(chain_step_max_d()) {}

  almc_backend kind() const override { return ALMC_BACKEND_CPU; }
  std::string device_name() const override {
    const int n = host_threads();
    return "CPU (" + std::to_string(n) + (n == 1 ? " thread)" : " threads)");
  }
  void* stream() const override { return nullptr; }
  // 0 asked: OpenMP's default at the time of the call (omp_set_num_threads changes it).
  int host_threads() const override { return n_threads_ > 0 ? n_threads_ : omp_get_max_threads(); }

  void* alloc(size_t bytes) override {
    void* p = nullptr;
    const size_t rounded = (bytes + 63) / 64 * 64;
    if (bytes == 0) return nullptr;
    if (rounded < bytes || posix_memalign(&p, 64, rounded) != 0 || !p)
      fail(ALMC_ERR_OUT_OF_MEMORY, "host allocation of ", bytes, " bytes failed");
    return p;
  }
  void dealloc(void* p) noexcept override { std::free(p); }
  void copy(void* dst, const void* src, size_t bytes, CopyKind) override {
    if (bytes) std::memmove(dst, src, bytes);
  }
  void zero(void* p, size_t bytes) override {
    if (bytes) std::memset(p, 0, bytes);
  }
  void sync() override {}
  size_t available_memory() const override { return available_host_memory(); }
  onnx::OpKernels& onnx_kernels() override { return onnx::cpu_op_kernels(); }

  void begin_step(const StepScalars* table, int64_t* counter, StepScalars* cur) override {
    *cur = table[*counter];
    ++*counter;
  }

  void prior_tables(const GmmPrior& g, int64_t d, const StepScalars* cur, const PriorTables& out) override {
    if (cur->kind == kStepWarm) return;
    const LevelConsts l = level_consts(*cur);
    table_partial_.resize(static_cast<size_t>(g.K * ((d + kTableChunk - 1) / kTableChunk)));
    double* partial = table_partial_.data();
#pragma omp parallel num_threads(threads_for(g.K * d * 8))
    table_items(g, d, l, out, partial);
    logdet_from_items(g.K, d, partial, out.logdet);
  }

  void gmm_responsibilities(const PriorTables& tab, const float* x, int64_t n, int64_t d, const StepScalars* cur,
                            float* resp, float* /*work: none needed here*/) override {
    if (cur->kind == kStepWarm) return;  // the warm start does not use the prior
    resp_acc_.assign(static_cast<size_t>(n * tab.K * 8), 0.f);
    float* acc = resp_acc_.data();
    const int nt = threads_for(n * d * tab.K);
    if (n >= kChainsPerThread * nt) {
#pragma omp parallel for schedule(static) num_threads(nt)
      for (int64_t c = 0; c < n; ++c) {
        gmm_resp_tile(tab, x + c * d, d, 0, d, acc + c * tab.K * 8, 0, tab.K);
        gmm_resp_finish(tab, acc + c * tab.K * 8, resp + c * tab.K);
      }
      return;
    }
#pragma omp parallel num_threads(nt)
    resp_items(tab, x, n, d, acc, resp);
  }

  void fused_step(const FusedStepParams& p) override {
    if (p.d <= chain_max_d_) {  // short rows: the whole step chain by chain (p.resp is current)
      chain_steps(p, false);
      return;
    }
    const StepScalars cur = *p.cur;
    // Weighed as 4 numbers per coordinate (threads_for counts a K = 8 mixture step as 8): the
    // normal and the update cost about half a mixture step's coordinate (single thread, 3x64x64
    // downsampling, 32 chains: 1.6 ns per coordinate for a warm step, 2.2 for a mixture step).
    // Counted as one, the warm start of that case ran on one thread (~0.6 ms per step).
    const int nt = threads_for(p.n * p.d * 4);
    float* scratch = p.op.kind == kOpDownsample ? pool_scratch(nt, p.op) : nullptr;
#pragma omp parallel num_threads(nt)
    update_items(p, cur, scratch);
  }

  // One parallel region for the whole step: the tables (when asked for), then with many chains
  // each thread takes a contiguous range of chains and runs their responsibilities and update, a
  // tile of coordinates at a time for all its chains (the tile's tables stay in cache across the
  // chains; for large d they would otherwise stream from memory once per chain). With few chains
  // per thread (or fewer chains than threads) the work is split along d instead, so every thread
  // has an even share: the responsibilities by (chain, component), then the update by (chain,
  // tile), with a barrier between. Each chain's arithmetic and its order are those of
  // prior_tables + gmm_responsibilities + fused_step, whatever the split.
  void analytic_prior_step(const FusedStepParams& p, const GmmPrior* g) override {
    if (p.d <= chain_max_d_) {  // short rows: the tables, then the whole step chain by chain
      if (g) prior_tables(*g, p.d, p.cur, p.tab);
      chain_steps(p, true);
      return;
    }
    const StepScalars cur = *p.cur;
    const bool gmm = p.prior == kPriorGmm;
    const int nt = threads_for(p.n * p.d * 8);
    if (cur.kind == kStepWarm) {  // the update alone (no tables, no responsibilities)
      fused_step(p);
      return;
    }
    const bool by_chain = p.n >= kChainsPerThread * nt;
    const int64_t K = p.tab.K;
    // Small tables (under 8192 entries) cost less than the barrier that would share them: this
    // thread computes them before the region (prior_tables runs them on one thread at that size).
    if (g && threads_for(g->K * p.d * 8) == 1) {
      prior_tables(*g, p.d, p.cur, p.tab);
      g = nullptr;
    }
    if (g) table_partial_.resize(static_cast<size_t>(g->K * ((p.d + kTableChunk - 1) / kTableChunk)));
    if (gmm) resp_acc_.resize(static_cast<size_t>(p.n * K * 8));
    logdet_local_.resize(static_cast<size_t>(nt * K));
    float* scratch = p.op.kind == kOpDownsample ? pool_scratch(nt, p.op) : nullptr;
    const LevelConsts l = level_consts(cur);
#pragma omp parallel num_threads(nt)
    {
      const int me = omp_get_thread_num(), team = omp_get_num_threads();
      PriorTables tab = p.tab;
      if (g) {
        table_items(*g, p.d, l, p.tab, table_partial_.data());  // ends with a barrier
        // Every thread sums the chunks itself (no second barrier); thread 0 stores them.
        tab.logdet = logdet_local_.data() + me * K;
        logdet_from_items(K, p.d, table_partial_.data(), tab.logdet);
        if (me == 0) std::memcpy(p.tab.logdet, tab.logdet, sizeof(float) * static_cast<size_t>(K));
      }
      if (!by_chain) {
        if (gmm) resp_items(tab, p.x, p.n, p.d, resp_acc_.data(), p.resp);  // ends with a barrier
        update_items(p, cur, scratch);
      } else {
        chain_range_step(p, cur, tab, p.n * me / team, p.n * (me + 1) / team, gmm ? resp_acc_.data() : nullptr,
                         scratch ? scratch + me * pool_scratch_floats(p.op) : nullptr);
      }
    }
  }

  void analytic_score(const FusedStepParams& p, float* out) override {
    const StepScalars cur = *p.cur;
    const int64_t tiles = (p.d + kTile - 1) / kTile;  // (chain, tile) items: few long rows split too
#pragma omp parallel for schedule(static) num_threads(threads_for(p.n * p.d))
    for (int64_t item = 0; item < p.n * tiles; ++item) {
      const int64_t c = item / tiles, j0 = item % tiles * kTile, j1 = std::min(p.d, j0 + kTile);
      for (int64_t j = j0; j < j1; ++j) out[c * p.d + j] = prior_score(p, cur, c, j, p.x[c * p.d + j]);
    }
  }

  void op_forward(const LocalOp& op, const MatrixOp& mat, const float* x, float* out, int64_t n, int64_t d, int64_t m,
                  int64_t chain0, int64_t cpm) override {
    if (mat.A) {
      dense_rows(mat, x, d, out, m, n, chain0, cpm, /*transpose_a=*/true);
      return;
    }
#pragma omp parallel for schedule(static) num_threads(threads_for(n * m * 4))
    for (int64_t c = 0; c < n; ++c) forward_row(op, x + c * d, out + c * m, m);
  }

  void op_adjoint(const LocalOp& op, const MatrixOp& mat, const float* v, float* out, int64_t n, int64_t d, int64_t m,
                  int64_t chain0, int64_t cpm) override {
    if (mat.A) {
      dense_rows(mat, v, m, out, d, n, chain0, cpm, /*transpose_a=*/false);
      return;
    }
#pragma omp parallel for schedule(static) num_threads(threads_for(n * d * 4))
    for (int64_t c = 0; c < n; ++c) {
      if (op.kind == kOpBlur) {
        blur_row(op, v + c * m, out + c * d, -1);
        continue;
      }
      for (int64_t j = 0; j < d; ++j) out[c * d + j] = local_adjoint(op, v + c * m, j);
    }
  }

  void residual_rows(float* R, const float* y, int64_t y_div, int64_t n, int64_t m, int64_t chain0,
                     const StepScalars* cur) override {
    const float xs = cur ? cur->xs : 1.f;
#pragma omp parallel for schedule(static) num_threads(threads_for(n * m))
    for (int64_t c = 0; c < n; ++c) {
      const float* yr = y + ((chain0 + c) / y_div) * m;
      for (int64_t i = 0; i < m; ++i) R[c * m + i] = yr[i] - xs * R[c * m + i];
    }
  }

  void scale_by_xs(const float* x, float* out, int64_t count, const StepScalars* cur) override {
    const float xs = cur->xs;
#pragma omp parallel for schedule(static) num_threads(threads_for(count))
    for (int64_t i = 0; i < count; ++i) out[i] = xs * x[i];
  }

  void row_norms_and_flags(const float* R, int64_t m, const float* x, int64_t d, int64_t n, float* norms,
                           int32_t* flags) override {
#pragma omp parallel for schedule(static) num_threads(threads_for(n * (m + d)))
    for (int64_t c = 0; c < n; ++c) {
      if (norms) norms[c] = R ? row_norm(R + c * m, m) : std::numeric_limits<float>::quiet_NaN();
      if (flags) flags[c] = row_has_nonfinite(x + c * d, d);
    }
  }

  void fill_random(float* x, int64_t n, int64_t d, int64_t chain0, int64_t cpm, uint64_t seed, uint64_t key,
                   float scale, bool uniform) override {
    // Work items of (chain, chunk of coordinates): every number is keyed by its coordinate, so
    // a few long rows split over the threads too, with the same bits.
    constexpr int64_t kChunk = 4096;  // a multiple of 4 (whole coordinate groups)
    const int64_t chunks = (d + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) num_threads(threads_for(n * d * 8))
    for (int64_t item = 0; item < n * chunks; ++item) {
      const int64_t c = item / chunks, j0 = item % chunks * kChunk, j1 = std::min(d, j0 + kChunk);
      float* row = x + c * d;
      if (!uniform) {  // the vectorised normals (philox_normal4's bits)
        philox_normals(seed, noise_stream(chain0 + c, cpm), key, static_cast<uint64_t>(j0 / 4), j1 - j0, row + j0);
        for (int64_t j = j0; j < j1; ++j) row[j] = scale * row[j];
        continue;
      }
      for (int64_t g = j0 / 4; g < (j1 + 3) / 4; ++g) {
        const float4 v = philox_uniform4(seed, noise_stream(chain0 + c, cpm), key, static_cast<uint64_t>(g));
        for (int e = 0; e < 4 && g * 4 + e < d; ++e) row[g * 4 + e] = scale * (2.f * component(v, e) - 1.f);
      }
    }
  }

  void axpby_tweedie(float* x, const float* s, int64_t count, float a, float b) override {
#pragma omp parallel for schedule(static) num_threads(threads_for(count))
    for (int64_t i = 0; i < count; ++i) x[i] = a * (x[i] + b * s[i]);
  }

  void copy_picked(const float* x, float* out, const int64_t* pick, int64_t first_step, int64_t n, int64_t d,
                   const StepScalars* cur) override {
    const int64_t k = cur->step - first_step;
    for (int64_t c = 0; c < n; ++c)
      if (pick[c] == k) std::memcpy(out + c * d, x + c * d, sizeof(float) * static_cast<size_t>(d));
  }

  void xgp_step_aux(float* ych, int64_t n, int64_t m, int64_t chain0, int64_t cpm, uint64_t seed,
                    const StepScalars* cur) override {
    if (cur->aux < 0) return;
    const uint64_t key = kRngXgpKeyBase + static_cast<uint64_t>(cur->aux);
    const float sc = cur->aux_scale;
    constexpr int64_t kChunk = 1024;  // normals per pass (a multiple of 4)
#pragma omp parallel for schedule(static) num_threads(threads_for(n * m * 8))
    for (int64_t c = 0; c < n; ++c)
      for (int64_t j0 = 0; j0 < m; j0 += kChunk) {
        float xi[kChunk];
        const int64_t len = m - j0 < kChunk ? m - j0 : kChunk;
        philox_normals(seed, noise_stream(chain0 + c, cpm), key, static_cast<uint64_t>(j0 / 4), len, xi);
        for (int64_t j = 0; j < len; ++j) ych[c * m + j0 + j] -= sc * xi[j];
      }
  }

  void add_log_density(const PriorTables& tab, const StepScalars* cur, const float* x, int64_t n, int64_t d,
                       double sign, double* acc) override {
    const StepScalars c = *cur;
#pragma omp parallel for schedule(static) num_threads(threads_for(n * d * tab.K))
    for (int64_t i = 0; i < n; ++i) acc[i] += sign * prior_log_density(tab, c, x + i * d, d);
  }

  void gather_rows(const float* src, float* dst, const int64_t* idx, int64_t n, int64_t d) override {
#pragma omp parallel for schedule(static) num_threads(threads_for(n * d))
    for (int64_t c = 0; c < n; ++c) std::memcpy(dst + c * d, src + idx[c] * d, sizeof(float) * static_cast<size_t>(d));
  }

  void mean_std(const float* x, int64_t n_meas, int64_t cpm, int64_t d, float* mean, float* std) override {
#pragma omp parallel for schedule(static) num_threads(threads_for(n_meas * cpm * d))
    for (int64_t j = 0; j < d; ++j)
      for (int64_t q = 0; q < n_meas; ++q) chain_mean_std(x, cpm, d, q, j, mean, std);
  }

 private:
  // Chains split into one contiguous range per thread, each chain's whole step in one call
  // (chain_step.cuh): nothing is shared between chains but the tables, so the results do not
  // depend on the split. resp_due: compute the GMM responsibilities too.
  void chain_steps(const FusedStepParams& p, bool resp_due) {
    const StepScalars cur = *p.cur;
    const int64_t K = p.prior == kPriorGmm ? p.tab.K : 1;
    if (p.n <= 0) return;
    const int nt = static_cast<int>(std::min<int64_t>(threads_for(p.n * p.d * (8 + 2 * K)), p.n));
#pragma omp parallel num_threads(nt)
    {
      const int me = omp_get_thread_num(), team = omp_get_num_threads();
      chain_range(p, cur, p.n * me / team, p.n * (me + 1) / team, resp_due);
    }
  }

  // out rows = in rows times A^T (transpose_a: in [n, d] -> out [n, m]) or A ([n, m] -> [n, d]),
  // each row with its measurement's matrix, through the executor's GEMM (host/onnx/cpu_gemm.hpp):
  // every output element is summed in the same order whatever rectangle it is computed in, so a
  // chain's result does not depend on how many chains run, how they are split or the thread count,
  // and the work is cut freely over this backend's threads (no padded blocks). That GEMM reads its
  // right operand with unit column stride: A^T x is computed as (A X^T)^T through transposed copies
  // of X and of the result (n d + n m numbers, against the product's n m d).
  void dense_rows(const MatrixOp& mat, const float* in, int64_t k_in, float* out, int64_t k_out, int64_t n,
                  int64_t chain0, int64_t cpm, bool transpose_a) {
    const int64_t m = mat.m, d = mat.d;
    // Groups of consecutive rows that share a matrix: all rows, or one measurement's chains.
    groups_.clear();
    for (int64_t r = 0; r < n;) {
      const int64_t meas = (chain0 + r) / cpm;
      const int64_t rows = mat.n_mats == 1 ? n - r : std::min(n - r, (meas + 1) * cpm - (chain0 + r));
      groups_.push_back({r, rows, mat.n_mats == 1 ? 0 : meas});
      r += rows;
    }
    const int64_t ng = static_cast<int64_t>(groups_.size());
    const int nt = threads_for(n * m * d / 8);
    if (transpose_a) {
      gemm_xt_.resize(static_cast<size_t>(d * n));
      gemm_rt_.resize(static_cast<size_t>(m * n));
      float* xt = gemm_xt_.data();
      float* rt = gemm_rt_.data();
      constexpr int64_t kRowsPerItem = 64;  // rows of A per work item
      const int64_t blocks = (m + kRowsPerItem - 1) / kRowsPerItem;
#pragma omp parallel num_threads(nt)
      {
#pragma omp for schedule(static)
        for (int64_t j = 0; j < d; ++j)
          for (int64_t c = 0; c < n; ++c) xt[j * n + c] = in[c * k_in + j];
#pragma omp for schedule(static)
        for (int64_t item = 0; item < ng * blocks; ++item) {
          const GemmGroup& gr = groups_[static_cast<size_t>(item / blocks)];
          const int64_t i0 = (item % blocks) * kRowsPerItem;
          const onnx::GemmView g = gemm_view(m, n, d, mat.A + gr.meas * m * d, d, xt, n, rt, n);
          onnx::gemm_tile(g, i0, std::min(m, i0 + kRowsPerItem), gr.r, gr.r + gr.rows);
        }
#pragma omp for schedule(static)
        for (int64_t c = 0; c < n; ++c)
          for (int64_t i = 0; i < m; ++i) out[c * k_out + i] = rt[i * n + c];
      }
      return;
    }
    constexpr int64_t kColsPerItem = 256;  // output coordinates per work item
    const int64_t blocks = (d + kColsPerItem - 1) / kColsPerItem;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t item = 0; item < ng * blocks; ++item) {
      const GemmGroup& gr = groups_[static_cast<size_t>(item / blocks)];
      const int64_t j0 = (item % blocks) * kColsPerItem;
      const onnx::GemmView g = gemm_view(n, d, m, in, k_in, mat.A + gr.meas * m * d, d, out, k_out);
      onnx::gemm_tile(g, gr.r, gr.r + gr.rows, j0, std::min(d, j0 + kColsPerItem));
    }
  }

  // C [M, N] (leading dimension ldc) = A [M, K] (row stride a_rs) times B [K, N] (row stride ldb).
  static onnx::GemmView gemm_view(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, const float* B,
                                  int64_t ldb, float* C, int64_t ldc) {
    onnx::GemmView g;
    g.M = M;
    g.N = N;
    g.K = K;
    g.A = A;
    g.a_rs = a_rs;
    g.B = B;
    g.ldb = ldb;
    g.C = C;
    g.ldc = ldc;
    return g;
  }

  // Chains c0 .. c1 - 1 of the step, by one thread: their responsibilities (acc: [n, K, 8] scratch,
  // null without a mixture) and update, a tile (or band) of coordinates at a time for all of them.
  static void chain_range_step(const FusedStepParams& p, const StepScalars& cur, const PriorTables& tab, int64_t c0,
                               int64_t c1, float* acc, float* xi) {
    const int64_t K = tab.K, w = p.prior == kPriorGmm ? kMixTile : kTile;
    if (acc) {
      std::fill(acc + c0 * K * 8, acc + c1 * K * 8, 0.f);
      for (int64_t j0 = 0; j0 < p.d; j0 += w)
        for (int64_t c = c0; c < c1; ++c)
          gmm_resp_tile(tab, p.x + c * p.d, p.d, j0, std::min(w, p.d - j0), acc + c * K * 8, 0, K);
      for (int64_t c = c0; c < c1; ++c) gmm_resp_finish(tab, acc + c * K * 8, p.resp + c * K);
    }
    if (p.op.kind == kOpDownsample) {
      const int64_t bands = pool_bands(p.op), nb = pool_strip_bands(p.op, w);
      for (int64_t b0 = 0; b0 < bands; b0 += nb)
        for (int64_t c = c0; c < c1; ++c) pool_strip(p, cur, c, b0, std::min(nb, bands - b0), xi);
    } else {
      for (int64_t j0 = 0; j0 < p.d; j0 += w)
        for (int64_t c = c0; c < c1; ++c) fused_tile(p, cur, c, j0, std::min(w, p.d - j0));
    }
  }

  // The update of every chain as work items spread over the threads of the enclosing parallel
  // region (an orphaned `omp for`): (chain, tile), or (chain, strip of bands of f rows) under
  // downsampling (the pooling blocks couple f rows; scratch: pool_scratch for the region's threads).
  static void update_items(const FusedStepParams& p, const StepScalars& cur, float* scratch) {
    if (p.op.kind == kOpDownsample) {
      const int64_t bands = pool_bands(p.op), nb = pool_strip_bands(p.op, kTile), strips = (bands + nb - 1) / nb;
      float* xi = scratch + omp_get_thread_num() * pool_scratch_floats(p.op);
#pragma omp for schedule(static)
      for (int64_t item = 0; item < p.n * strips; ++item) {
        const int64_t b0 = item % strips * nb;
        pool_strip(p, cur, item / strips, b0, std::min(nb, bands - b0), xi);
      }
      return;
    }
    const int64_t tiles = (p.d + kTile - 1) / kTile;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < p.n * tiles; ++item) {
      const int64_t j0 = item % tiles * kTile;
      fused_tile(p, cur, item / tiles, j0, std::min(kTile, p.d - j0));
    }
  }

  // The responsibilities of n chains as work items (chain, component) over the threads of the
  // enclosing parallel region, then each chain's softmax; acc [n, K, 8] zeroed here. Each
  // component's sums run over the whole row in coordinate order, as in the per-chain pass, so the
  // bits do not depend on the split. Ends with a barrier.
  static void resp_items(const PriorTables& tab, const float* x, int64_t n, int64_t d, float* acc, float* resp) {
    const int64_t K = tab.K;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < n * K; ++item) {
      const int64_t c = item / K, k = item % K;
      std::fill(acc + (c * K + k) * 8, acc + (c * K + k + 1) * 8, 0.f);
      gmm_resp_tile(tab, x + c * d, d, 0, d, acc + c * K * 8, k, k + 1);
    }
#pragma omp for schedule(static)
    for (int64_t c = 0; c < n; ++c) gmm_resp_finish(tab, acc + c * K * 8, resp + c * K);
  }

  // Bands of f image rows under the downsampling operator, and how many of them a strip takes to
  // cover about w coordinates (at least one band).
  static int64_t pool_bands(const LocalOp& op) { return op.C * (op.H / op.f); }
  static int64_t pool_strip_bands(const LocalOp& op, int64_t w) { return std::max<int64_t>(1, w / (op.f * op.W)); }
  // Scratch floats per thread of pool_strip (strips of up to kTile coordinates, or one band), and
  // the whole block for `threads` threads (kept).
  static int64_t pool_scratch_floats(const LocalOp& op) {
    const int64_t len = pool_strip_bands(op, kTile) * op.f * op.W;
    return (2 * len + 8 + 2 * op.W + 15) / 16 * 16;
  }
  float* pool_scratch(int threads, const LocalOp& op) {
    pool_scratch_.resize(static_cast<size_t>(threads * pool_scratch_floats(op)));
    return pool_scratch_.data();
  }
  // Bands b0 .. b0 + nb of chain c under downsampling (nb at most pool_strip_bands(op, kTile)).
  static void pool_strip(const FusedStepParams& p, const StepScalars& cur, int64_t c, int64_t b0, int64_t nb,
                         float* xi) {
    const int64_t len = pool_strip_bands(p.op, kTile) * p.op.f * p.op.W;
    fused_pool_strip(p, cur, c, b0, nb, xi, xi + len + 8, xi + 2 * len + 8);
  }

  // Threads for a pass over `work` numbers: a thread per 32k of them at least, so small
  // problems do not pay for waking threads they cannot keep busy; 8 times that when OpenMP's
  // threads sleep (host/core/parallel.hpp). Measured passive, 2 threads against 1, GMM K=8 step
  // (`almc bench --threads 1|2`): d64 x 256 chains 0.66x, d4096 x 16 0.95x, d64 x 4096 1.71x,
  // d4096 x 256 1.82x: splitting pays from ~64k coordinates, 512k of these numbers.
  int threads_for(int64_t work) const {
    const int64_t t = std::max<int64_t>(1, work / (openmp_waits_passively() ? 8 * 32768 : 32768));
    return static_cast<int>(std::min<int64_t>(host_threads(), t));
  }


  int n_threads_;  // as asked; 0: OpenMP's default
  int64_t chain_max_d_;  // rows up to this long take the per-chain step
  struct GemmGroup {
    int64_t r, rows, meas;
  };
  std::vector<GemmGroup> groups_;  // dense_rows' groups (keeps its capacity)
  std::vector<float> gemm_xt_, gemm_rt_;  // dense_rows' transposed input and result
  // Per-step scratch, kept between steps (no allocation once sized).
  std::vector<double> table_partial_;  // the tables' per-item log-determinant sums
  std::vector<float> resp_acc_;        // [n, K, 8] partial quadratic forms
  std::vector<float> logdet_local_;    // [threads, K]
  std::vector<float> pool_scratch_;    // [threads, pool_scratch_floats]
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

}  // namespace almc
