// The CPU backend: float32 state, OpenMP over chains (or over units of one chain when there are
// few chains), the same per-unit functors as the CUDA kernels, OpenBLAS for dense operators.
// Reductions run in a fixed order per chain, so results do not depend on the thread count.
#include "host/backend/backend.hpp"

#include "cuda/langevin/step.cuh"
#include "host/backend/cpu_noise.hpp"
#include "host/core/error.hpp"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

namespace almc {
namespace {

constexpr int64_t kTile = 1024;  // coordinates per fused-step tile (a multiple of 4)

// The quadratic forms of one chain against the K components (the tables' level), then its
// responsibilities. Eight partial sums per component in a fixed order: vectorisable, and
// independent of threading.
ALMC_CPU_CLONES("avx2", "default")
void gmm_chain_resp(const PriorTables& tab, const float* xr, int64_t d, float* r) {
  for (int64_t k = 0; k < tab.K; ++k) {
    const float* amu = tab.amu + k * d;
    const float* inv = tab.inv_s + k * d;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= d; j += 8)
      for (int e = 0; e < 8; ++e) acc[e] += gmm_quad_term(xr[j + e], amu[j + e], inv[j + e]);
    for (; j < d; ++j) acc[j % 8] += gmm_quad_term(xr[j], amu[j], inv[j]);
    float q = 0.f;
    for (int e = 0; e < 8; ++e) q += acc[e];
    r[k] = q;
  }
  gmm_softmax(tab, r);
}

// Components per pass of the prior score (fused_tile): each s[j] still adds its terms in order.
constexpr int kCompGroup = 4;

// The prior score s[0 .. len) at coordinates j0 .. j0 + len of chain c (step.cuh's functions).
inline __attribute__((always_inline)) void tile_prior_score(const FusedStepParams& p, const StepScalars& cur,
                                                            int64_t c, int64_t j0, int64_t len, float* s) {
  const float* x = p.x + c * p.d;
  if (cur.kind == kStepWarm || p.prior == kPriorBuffer) {
    for (int64_t j = 0; j < len; ++j) s[j] = prior_score(p, cur, c, j0 + j, x[j0 + j]);
    return;
  }
  // Contiguous, vectorisable passes of up to four components each; every s[j] adds its K terms in
  // component order, starting from 0.
  const PriorTables& t = p.tab;
  const float* xt = x + j0;
  for (int64_t j = 0; j < len; ++j) s[j] = 0.f;
  int64_t k = 0;
  for (; k + kCompGroup <= t.K; k += kCompGroup) {
    float r[kCompGroup];
    for (int g = 0; g < kCompGroup; ++g) r[g] = p.prior == kPriorGaussian ? 1.f : p.resp[c * t.K + k + g];
    const float* amu = t.amu + k * p.d + j0;
    const float* inv = t.inv_s + k * p.d + j0;
    const int64_t dd = p.d;
    for (int64_t j = 0; j < len; ++j) {
      float sj = s[j];
      for (int g = 0; g < kCompGroup; ++g) sj += r[g] * component_score(xt[j], amu[g * dd + j], inv[g * dd + j]);
      s[j] = sj;
    }
  }
  for (; k < t.K; ++k) {
    const float r = p.prior == kPriorGaussian ? 1.f : p.resp[c * t.K + k];
    const float* amu = t.amu + k * p.d + j0;
    const float* inv = t.inv_s + k * p.d + j0;
    for (int64_t j = 0; j < len; ++j) s[j] += r * component_score(xt[j], amu[j], inv[j]);
  }
}

// One tile of a chain's row for the elementwise operators: the shared per-element functions
// (step.cuh), called in passes the compiler vectorises (noise block, prior score, update). The
// operator kind is a template parameter, so the update pass has no branch.
template <int32_t Op>
inline __attribute__((always_inline)) void fused_tile_body(const FusedStepParams& params, const StepScalars& cur,
                                                           int64_t c, int64_t tile) {
  FusedStepParams p = params;
  p.op.kind = Op;
  alignas(64) float xi[kTile], s[kTile];
  const int64_t j0 = tile * kTile, len = std::min(kTile, p.d - j0);
  float* x = p.x + c * p.d;
  // The tile's x lines are requested before the noise is drawn, so they arrive while it is
  // computed (a tile is one 4 KiB page, which the hardware prefetchers do not cross).
  for (int64_t j = 0; j < len; j += 16) __builtin_prefetch(x + j0 + j, 1, 3);
  philox_normals_block(p.seed, noise_stream(p.chain0 + c, p.cpm), static_cast<uint64_t>(cur.step),
                       static_cast<uint64_t>(j0 / 4), (len + 3) / 4, xi);
  tile_prior_score(p, cur, c, j0, len, s);
  const float* yrow = measurement_row(p, c);
  for (int64_t j = 0; j < len; ++j) x[j0 + j] = step_element(p, cur, yrow, c, j0 + j, x[j0 + j], s[j], xi[j]);
}

// AVX-512, AVX2 and baseline clones, picked at load time (the library itself targets x86-64-v2); each
// clone inlines the per-operator bodies (clang cannot clone templates, so the switch is here).
ALMC_CPU_CLONES("avx512f", "avx2", "default")
void fused_tile(const FusedStepParams& p, const StepScalars& cur, int64_t c, int64_t tile) {
  switch (p.op.kind) {
    case kOpNone: return fused_tile_body<kOpNone>(p, cur, c, tile);
    case kOpIdentity: return fused_tile_body<kOpIdentity>(p, cur, c, tile);
    case kOpMask: return fused_tile_body<kOpMask>(p, cur, c, tile);
    default: return fused_tile_body<kOpBlur>(p, cur, c, tile);  // the gradient buffer
  }
}

// The f image rows of pooling-block row br in channel ch of chain c under the downsampling
// operator (contiguous in x), in the passes of fused_tile: each block's likelihood term from x
// before the update (step.cuh's pool_block_grad), the noise, the prior score, then the update.
// Scratch: xi (f W + 8 floats), s (f W), g (W).
ALMC_CPU_CLONES("avx512f", "avx2", "default")
void fused_pool_band(const FusedStepParams& p, const StepScalars& cur, int64_t c, int64_t ch, int64_t br, float* xi,
                     float* s, float* g) {
  const int64_t f = p.op.f, W = p.op.W, len = f * W;
  const int64_t j0 = ch * p.op.H * W + br * len;
  float* x = p.x + c * p.d + j0;
  for (int64_t bc = 0; bc < W / f; ++bc) {
    const float gb = pool_block_grad(p, cur, c, ch, br, bc);
    for (int64_t cc = 0; cc < f; ++cc) g[bc * f + cc] = gb;
  }
  // Whole coordinate groups around the band; xi points at its first coordinate.
  const int64_t g0 = j0 / 4, lead = j0 - 4 * g0;
  philox_normals_block(p.seed, noise_stream(p.chain0 + c, p.cpm), static_cast<uint64_t>(cur.step),
                       static_cast<uint64_t>(g0), (lead + len + 3) / 4, xi);
  xi += lead;
  tile_prior_score(p, cur, c, j0, len, s);
  for (int64_t r = 0; r < f; ++r)
    for (int64_t col = 0; col < W; ++col) {
      const int64_t j = r * W + col;
      x[j] = langevin_update(cur, x[j], s[j], g[col], xi[j]);
    }
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads) : n_threads_(n_threads > 0 ? n_threads : omp_get_max_threads()) {}

  almc_backend kind() const override { return ALMC_BACKEND_CPU; }
  std::string device_name() const override { return "CPU (" + std::to_string(n_threads_) + " threads)"; }
  void* stream() const override { return nullptr; }

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
  size_t available_memory() const override {
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return std::numeric_limits<size_t>::max();
    return static_cast<size_t>(pages) * static_cast<size_t>(page);
  }

  void begin_step(const StepScalars* table, int64_t* counter, StepScalars* cur) override {
    *cur = table[*counter];
    ++*counter;
  }

  void prior_tables(const GmmPrior& g, int64_t d, const StepScalars* cur, const PriorTables& out) override {
    if (cur->kind == kStepWarm) return;
    const LevelConsts l = level_consts(*cur);
    const int64_t kd = g.K * d;
#pragma omp parallel for schedule(static) num_threads(threads_for(kd * 8))
    for (int64_t i = 0; i < kd; ++i) prior_table_entry(g, l, i, out);
#pragma omp parallel for schedule(static) num_threads(threads_for(kd * 8))
    for (int64_t k = 0; k < g.K; ++k) {
      double sum = 0.0;
      for (int64_t j = 0; j < d; ++j) sum += prior_logdet_term(g, l, k * d + j);
      out.logdet[k] = static_cast<float>(sum);
    }
  }

  void gmm_responsibilities(const PriorTables& tab, const float* x, int64_t n, int64_t d, const StepScalars* cur,
                            float* resp) override {
    if (cur->kind == kStepWarm) return;  // the warm start does not use the prior
#pragma omp parallel for schedule(static) num_threads(threads_for(n * d * tab.K))
    for (int64_t c = 0; c < n; ++c) gmm_chain_resp(tab, x + c * d, d, resp + c * tab.K);
  }

  void fused_step(const FusedStepParams& p) override {
    const StepScalars cur = *p.cur;
    if (p.op.kind == kOpDownsample) {
      // The pooling blocks couple f rows: one band of f rows at a time.
      const int64_t f = p.op.f, W = p.op.W, rows = p.op.C * (p.op.H / f), bands = p.n * rows;
#pragma omp parallel num_threads(threads_for(p.n * p.d))
      {
        std::vector<float> scratch(static_cast<size_t>(2 * f * W + 8 + W));
        float* xi = scratch.data();
#pragma omp for schedule(static)
        for (int64_t b = 0; b < bands; ++b) {
          const int64_t c = b / rows, row = b % rows;
          fused_pool_band(p, cur, c, row / (p.op.H / f), row % (p.op.H / f), xi, xi + f * W + 8, xi + 2 * f * W + 8);
        }
      }
      return;
    }
    const int64_t tiles = (p.d + kTile - 1) / kTile;
#pragma omp parallel for schedule(static) num_threads(threads_for(p.n * p.d))
    for (int64_t item = 0; item < p.n * tiles; ++item) fused_tile(p, cur, item / tiles, item % tiles);
  }

  void analytic_score(const FusedStepParams& p, float* out) override {
    const StepScalars cur = *p.cur;
#pragma omp parallel for schedule(static) num_threads(threads_for(p.n * p.d))
    for (int64_t c = 0; c < p.n; ++c)
      for (int64_t j = 0; j < p.d; ++j) out[c * p.d + j] = prior_score(p, cur, c, j, p.x[c * p.d + j]);
  }

  void op_forward(const LocalOp& op, const MatrixOp& mat, const float* x, float* out, int64_t n, int64_t d, int64_t m,
                  int64_t chain0, int64_t cpm) override {
    if (mat.A) {
      dense_rows(mat, x, d, out, m, n, chain0, cpm, /*transpose_a=*/true);
      return;
    }
#pragma omp parallel for schedule(static) num_threads(threads_for(n * m * 4))
    for (int64_t c = 0; c < n; ++c)
      for (int64_t i = 0; i < m; ++i) out[c * m + i] = local_forward(op, x + c * d, i);
  }

  void op_adjoint(const LocalOp& op, const MatrixOp& mat, const float* v, float* out, int64_t n, int64_t d, int64_t m,
                  int64_t chain0, int64_t cpm) override {
    if (mat.A) {
      dense_rows(mat, v, m, out, d, n, chain0, cpm, /*transpose_a=*/false);
      return;
    }
#pragma omp parallel for schedule(static) num_threads(threads_for(n * d * 4))
    for (int64_t c = 0; c < n; ++c)
      for (int64_t j = 0; j < d; ++j) out[c * d + j] = local_adjoint(op, v + c * m, j);
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
      if (norms) {
        double s = 0.0;
        if (R)
          for (int64_t i = 0; i < m; ++i) s += static_cast<double>(R[c * m + i]) * R[c * m + i];
        norms[c] = R ? static_cast<float>(std::sqrt(s)) : std::numeric_limits<float>::quiet_NaN();
      }
      if (flags) {
        int32_t bad = 0;
        for (int64_t j = 0; j < d; ++j) bad |= !std::isfinite(x[c * d + j]);
        flags[c] = bad;
      }
    }
  }

  void fill_random(float* x, int64_t n, int64_t d, int64_t chain0, int64_t cpm, uint64_t seed, uint64_t key,
                   float scale, bool uniform) override {
    const int64_t groups = (d + 3) / 4;
#pragma omp parallel for schedule(static) num_threads(threads_for(n * d * 8))
    for (int64_t c = 0; c < n; ++c) {
      if (!uniform) {  // the vectorised normals (philox_normal4's bits)
        philox_normals(seed, noise_stream(chain0 + c, cpm), key, 0, d, x + c * d);
        for (int64_t j = 0; j < d; ++j) x[c * d + j] = scale * x[c * d + j];
        continue;
      }
      for (int64_t g = 0; g < groups; ++g) {
        const float4 v = philox_uniform4(seed, noise_stream(chain0 + c, cpm), key, static_cast<uint64_t>(g));
        for (int e = 0; e < 4 && g * 4 + e < d; ++e) x[c * d + g * 4 + e] = scale * (2.f * component(v, e) - 1.f);
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
  // out rows = in rows times A^T (transpose_a: in [n, d] -> out [n, m]) or A ([n, m] -> [n, d]),
  // each row with its measurement's matrix. OpenBLAS's result for a row depends on the row's
  // position inside the call (its kernels treat row positions differently), so rows go in
  // blocks of kGemmRows aligned to the chain index within the measurement: chain j of a
  // measurement is always row j % kGemmRows of a single-threaded call of the same shape
  // (incomplete blocks padded through a per-thread scratch copy). A chain's result then does not
  // depend on how many chains run, how they are split or the thread count; the blocks are spread
  // over this backend's threads.
  void dense_rows(const MatrixOp& mat, const float* in, int64_t k_in, float* out, int64_t k_out, int64_t n,
                  int64_t chain0, int64_t cpm, bool transpose_a) {
    constexpr int64_t kGemmRows = 16;
    const int64_t m = mat.m, d = mat.d;
    blocks_.clear();
    for (int64_t r = 0; r < n;) {
      const int64_t g = chain0 + r, meas = g / cpm, j = g - meas * cpm;
      const int64_t lead = j % kGemmRows;  // row r's position in its block
      const int64_t rows = std::min({kGemmRows - lead, cpm - j, n - r});
      blocks_.push_back({r, rows, lead, mat.n_mats == 1 ? 0 : meas});
      r += rows;
    }
    ensure_serial_blas();
    const int64_t nb = static_cast<int64_t>(blocks_.size());
#pragma omp parallel num_threads(threads_for(n * (m + d) * 16))
    {
      std::vector<float> pad_in, pad_out;
#pragma omp for schedule(static)
      for (int64_t b = 0; b < nb; ++b) {
        const GemmBlock& bk = blocks_[static_cast<size_t>(b)];
        const float* A = mat.A + bk.meas * m * d;
        const float* src = in + bk.r * k_in;
        float* dst = out + bk.r * k_out;
        const bool whole = bk.lead == 0 && bk.rows == kGemmRows;
        if (!whole) {
          pad_in.assign(static_cast<size_t>(kGemmRows * k_in), 0.f);
          pad_out.resize(static_cast<size_t>(kGemmRows * k_out));
          std::memcpy(pad_in.data() + bk.lead * k_in, src, sizeof(float) * static_cast<size_t>(bk.rows * k_in));
          src = pad_in.data();
          dst = pad_out.data();
        }
        if (transpose_a)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kGemmRows, static_cast<int>(m), static_cast<int>(d), 1.f,
                      src, static_cast<int>(d), A, static_cast<int>(d), 0.f, dst, static_cast<int>(m));
        else
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, kGemmRows, static_cast<int>(d), static_cast<int>(m),
                      1.f, src, static_cast<int>(m), A, static_cast<int>(d), 0.f, dst, static_cast<int>(d));
        if (!whole)
          std::memcpy(out + bk.r * k_out, pad_out.data() + bk.lead * k_out,
                      sizeof(float) * static_cast<size_t>(bk.rows * k_out));
      }
    }
  }

  // Threads for a pass over `work` numbers: a thread per 32k of them at least, so small
  // problems do not pay for waking threads they cannot keep busy.
  int threads_for(int64_t work) const {
    const int64_t t = std::max<int64_t>(1, work / 32768);
    return static_cast<int>(std::min<int64_t>(n_threads_, t));
  }


  int n_threads_;
  struct GemmBlock {
    int64_t r, rows, lead, meas;
  };
  std::vector<GemmBlock> blocks_;  // dense_rows' block list (keeps its capacity)
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

void ensure_serial_blas() {
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

}  // namespace almc
