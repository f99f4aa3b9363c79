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

// Per-level tables of an analytic prior, shared by all chains of a step: e^{-t} mu_k,
// 1 / S_k,t and sum_j log S_k,t. Recomputed only when the level or the prior changes; the
// buffers keep their capacity, so a run allocates only at its first step.
struct LevelTables {
  const float* mu = nullptr;
  const float* var = nullptr;
  int64_t K = 0, d = 0;
  float t = -1.f;
  std::vector<float> amu, inv_s, logdet;
};

// Responsibilities of one chain at the tables' level (log-sum-exp over the K components).
__attribute__((target_clones("avx2", "default")))
void gmm_chain_resp(const GmmPrior& gmm, const LevelTables& tb, const float* xr, int64_t d, float* r) {
  const int64_t K = gmm.K;
  for (int64_t k = 0; k < K; ++k) {
    const float* amu = tb.amu.data() + k * d;
    const float* inv = tb.inv_s.data() + k * d;
    // Eight partial sums in a fixed order: vectorisable, and independent of threading.
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= d; j += 8)
      for (int e = 0; e < 8; ++e) {
        const float diff = xr[j + e] - amu[j + e];
        acc[e] += diff * diff * inv[j + e];
      }
    for (; j < d; ++j) {
      const float diff = xr[j] - amu[j];
      acc[j % 8] += diff * diff * inv[j];
    }
    float q = 0.f;
    for (int e = 0; e < 8; ++e) q += acc[e];
    r[k] = gmm.log_w[k] - 0.5f * (q + tb.logdet[k]);
  }
  float mx = r[0];
  for (int64_t k = 1; k < K; ++k) mx = std::max(mx, r[k]);
  float z = 0.f;
  for (int64_t k = 0; k < K; ++k) z += (r[k] = std::exp(r[k] - mx));
  for (int64_t k = 0; k < K; ++k) r[k] /= z;
}

// AVX2 and baseline clones, picked at load time: the library itself targets x86-64-v2.
__attribute__((target_clones("avx2", "default")))
void fused_tile(const FusedStepParams& p, const StepScalars& cur, const LevelTables* tb, int64_t c,
                int64_t tile) {
  alignas(64) float xi[kTile], s[kTile], g[kTile];
  const int64_t j0 = tile * kTile, len = std::min(kTile, p.d - j0);
  float* x = p.x + c * p.d + j0;
  philox_normals_block(p.seed, static_cast<uint64_t>(p.chain0 + c), static_cast<uint64_t>(cur.step),
                       static_cast<uint64_t>(j0 / 4), (len + 3) / 4, xi);
  // Prior score s (ALGORITHMS.md T1/T4; -x during the warm start).
  if (cur.kind == kStepWarm) {
    for (int64_t j = 0; j < len; ++j) s[j] = -x[j];
  } else if (p.prior == kPriorBuffer) {
    std::memcpy(s, p.score + c * p.d + j0, sizeof(float) * static_cast<size_t>(len));
  } else {
    const int64_t K = p.gmm.K;
    for (int64_t j = 0; j < len; ++j) s[j] = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      const float r = p.prior == kPriorGaussian ? 1.f : p.resp[c * K + k];
      const float* amu = tb->amu.data() + k * p.d + j0;
      const float* inv = tb->inv_s.data() + k * p.d + j0;
      for (int64_t j = 0; j < len; ++j) s[j] -= r * (x[j] - amu[j]) * inv[j];
    }
  }
  // Raw likelihood term g = A^T (y - xs A x) for the elementwise operators, else the buffer.
  const float* yr = p.y ? p.y + ((p.chain0 + c) / p.y_div) * p.m + j0 : nullptr;
  switch (p.op.kind) {
    case kOpNone:
      for (int64_t j = 0; j < len; ++j) g[j] = 0.f;
      break;
    case kOpIdentity:
      for (int64_t j = 0; j < len; ++j) g[j] = yr[j] - cur.xs * x[j];
      break;
    case kOpMask: {
      const float* mk = p.op.mask + j0;
      for (int64_t j = 0; j < len; ++j) g[j] = mk[j] * (yr[j] - mk[j] * cur.xs * x[j]);
      break;
    }
    default:
      std::memcpy(g, p.g + c * p.d + j0, sizeof(float) * static_cast<size_t>(len));
      break;
  }
  for (int64_t j = 0; j < len; ++j) x[j] = cur.post * (x[j] + cur.h * (s[j] + cur.lik * g[j]) + cur.noise * xi[j]);
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

  void gmm_responsibilities(const GmmPrior& gmm, const float* x, int64_t n, int64_t d, const StepScalars* cur,
                            float* resp, float* ws) override {
    if (cur->kind == kStepWarm) return;  // the warm start does not use the prior
    const LevelTables& tb = level_tables(gmm, d, *cur);
    const int64_t K = gmm.K;
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t c = 0; c < n; ++c) gmm_chain_resp(gmm, tb, x + c * d, d, resp + c * K);
  }

  void fused_step(const FusedStepParams& p) override {
    const StepScalars cur = *p.cur;
    const LevelConsts l = level_consts(cur);
    if (p.op.kind == kOpDownsample) {
      // The pooling blocks couple pixels across rows: one block at a time (step.cuh).
      const int64_t units = fused_units_per_chain(p);
#pragma omp parallel for schedule(static) num_threads(n_threads_)
      for (int64_t i = 0; i < p.n * units; ++i) fused_unit(p, cur, l, i / units, i % units);
      return;
    }
    // Elementwise operators: tiles of a chain's row, each in three vectorisable passes (noise,
    // prior score, likelihood term) and one update pass.
    const LevelTables* tb =
        p.prior != kPriorBuffer && cur.kind != kStepWarm ? &level_tables(p.gmm, p.d, cur) : nullptr;
    const int64_t tiles = (p.d + kTile - 1) / kTile;
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t item = 0; item < p.n * tiles; ++item) fused_tile(p, cur, tb, item / tiles, item % tiles);
  }

  void analytic_score(const FusedStepParams& p, float* out) override {
    const StepScalars cur = *p.cur;
    const LevelConsts l = level_consts(cur);
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t c = 0; c < p.n; ++c)
      for (int64_t j = 0; j < p.d; ++j) out[c * p.d + j] = prior_score(p, cur, l, c, j, p.x[c * p.d + j]);
  }

  void op_forward(const LocalOp& op, const MatrixOp& mat, const float* x, float* out, int64_t n, int64_t d, int64_t m,
                  int64_t chain0, int64_t cpm) override {
    if (mat.A) {
      for_each_matrix_block(mat, n, chain0, cpm, [&](const float* A, int64_t r0, int64_t rows) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(m),
                    static_cast<int>(d), 1.f, x + r0 * d, static_cast<int>(d), A, static_cast<int>(d), 0.f,
                    out + r0 * m, static_cast<int>(m));
      });
      return;
    }
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t c = 0; c < n; ++c)
      for (int64_t i = 0; i < m; ++i) out[c * m + i] = local_forward(op, x + c * d, i);
  }

  void op_adjoint(const LocalOp& op, const MatrixOp& mat, const float* v, float* out, int64_t n, int64_t d, int64_t m,
                  int64_t chain0, int64_t cpm) override {
    if (mat.A) {
      for_each_matrix_block(mat, n, chain0, cpm, [&](const float* A, int64_t r0, int64_t rows) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(d),
                    static_cast<int>(m), 1.f, v + r0 * m, static_cast<int>(m), A, static_cast<int>(d), 0.f,
                    out + r0 * d, static_cast<int>(d));
      });
      return;
    }
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t c = 0; c < n; ++c)
      for (int64_t j = 0; j < d; ++j) out[c * d + j] = local_adjoint(op, v + c * m, j);
  }

  void residual_rows(float* R, const float* y, int64_t y_div, int64_t n, int64_t m, int64_t chain0,
                     const StepScalars* cur) override {
    const float xs = cur ? cur->xs : 1.f;
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t c = 0; c < n; ++c) {
      const float* yr = y + ((chain0 + c) / y_div) * m;
      for (int64_t i = 0; i < m; ++i) R[c * m + i] = yr[i] - xs * R[c * m + i];
    }
  }

  void scale_by_xs(const float* x, float* out, int64_t count, const StepScalars* cur) override {
    const float xs = cur->xs;
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t i = 0; i < count; ++i) out[i] = xs * x[i];
  }

  void row_norms_and_flags(const float* R, int64_t m, const float* x, int64_t d, int64_t n, float* norms,
                           int32_t* flags) override {
#pragma omp parallel for schedule(static) num_threads(n_threads_)
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

  void fill_random(float* x, int64_t n, int64_t d, int64_t chain0, uint64_t seed, uint64_t key, float scale,
                   bool uniform) override {
    const int64_t groups = (d + 3) / 4;
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t c = 0; c < n; ++c)
      for (int64_t g = 0; g < groups; ++g) {
        const uint64_t chain = static_cast<uint64_t>(chain0 + c);
        const float4 v = uniform ? philox_uniform4(seed, chain, key, static_cast<uint64_t>(g))
                                 : philox_normal4(seed, chain, key, static_cast<uint64_t>(g));
        for (int e = 0; e < 4 && g * 4 + e < d; ++e) {
          const float r = component(v, e);
          x[c * d + g * 4 + e] = uniform ? scale * (2.f * r - 1.f) : scale * r;
        }
      }
  }

  void axpby_tweedie(float* x, const float* s, int64_t count, float a, float b) override {
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t i = 0; i < count; ++i) x[i] = a * (x[i] + b * s[i]);
  }

  void copy_picked(const float* x, float* out, const int64_t* pick, int64_t first_step, int64_t n, int64_t d,
                   const StepScalars* cur) override {
    const int64_t k = cur->step - first_step;
    for (int64_t c = 0; c < n; ++c)
      if (pick[c] == k) std::memcpy(out + c * d, x + c * d, sizeof(float) * static_cast<size_t>(d));
  }

  void xgp_step_aux(float* ych, int64_t n, int64_t m, int64_t chain0, uint64_t seed, const StepScalars* cur) override {
    if (cur->aux < 0) return;
    const uint64_t key = kRngXgpKeyBase + static_cast<uint64_t>(cur->aux);
    const float sc = cur->aux_scale;
    const int64_t groups = (m + 3) / 4;
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t c = 0; c < n; ++c)
      for (int64_t g = 0; g < groups; ++g) {
        const float4 v = philox_normal4(seed, static_cast<uint64_t>(chain0 + c), key, static_cast<uint64_t>(g));
        for (int e = 0; e < 4 && g * 4 + e < m; ++e) ych[c * m + g * 4 + e] -= sc * component(v, e);
      }
  }

  void mean_std(const float* x, int64_t n_meas, int64_t cpm, int64_t d, float* mean, float* std) override {
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t j = 0; j < d; ++j)
      for (int64_t q = 0; q < n_meas; ++q) chain_mean_std(x, cpm, d, q, j, mean, std);
  }

 private:
  // Calls fn(A, first_row, rows) on row ranges of [0, n) that share one matrix, split so that
  // each OpenMP thread runs its own single-threaded GEMM: OpenBLAS's own thread pool would spin
  // against ours.
  template <class Fn>
  void for_each_matrix_block(const MatrixOp& mat, int64_t n, int64_t chain0, int64_t cpm, Fn&& fn) {
    struct Seg {
      const float* A;
      int64_t r0, rows;
    };
    std::vector<Seg> segs;
    const int64_t piece = std::max<int64_t>(1, (n + n_threads_ - 1) / n_threads_);
    int64_t r = 0;
    while (r < n) {
      const int64_t meas = mat.n_mats == 1 ? 0 : (chain0 + r) / cpm;
      const int64_t end = mat.n_mats == 1 ? n : std::min(n, (meas + 1) * cpm - chain0);
      for (int64_t q = r; q < end; q += piece) segs.push_back({mat.A + meas * mat.m * mat.d, q, std::min(piece, end - q)});
      r = end;
    }
    const int saved = openblas_get_num_threads();
    if (saved != 1) openblas_set_num_threads(1);
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (size_t i = 0; i < segs.size(); ++i) fn(segs[i].A, segs[i].r0, segs[i].rows);
    if (saved != 1) openblas_set_num_threads(saved);
  }

  const LevelTables& level_tables(const GmmPrior& gm, int64_t d, const StepScalars& cur) {
    LevelTables& tb = tables_;
    if (tb.mu == gm.mu && tb.var == gm.var && tb.K == gm.K && tb.d == d && tb.t == cur.t) return tb;
    const LevelConsts l = level_consts(cur);
    const int64_t kd = gm.K * d;
    tb.amu.resize(static_cast<size_t>(kd));
    tb.inv_s.resize(static_cast<size_t>(kd));
    tb.logdet.assign(static_cast<size_t>(gm.K), 0.f);
#pragma omp parallel for schedule(static) num_threads(n_threads_)
    for (int64_t i = 0; i < kd; ++i) {
      tb.amu[i] = l.a * gm.mu[i];
      tb.inv_s[i] = 1.f / ou_var(gm.var[i], l.e2);
    }
    for (int64_t k = 0; k < gm.K; ++k) {
      double sum = 0.0;
      for (int64_t j = 0; j < d; ++j) sum += std::log(ou_var(gm.var[k * d + j], l.e2));
      tb.logdet[k] = static_cast<float>(sum);
    }
    tb.mu = gm.mu;
    tb.var = gm.var;
    tb.K = gm.K;
    tb.d = d;
    tb.t = cur.t;
    return tb;
  }

  int n_threads_;
  LevelTables tables_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

}  // namespace almc
