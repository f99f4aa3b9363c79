// The interface both backends implement: memory, and the handful of kernels the samplers are
// built from. Pointers are in the backend's memory space; everything runs on the backend's
// stream. Methods throw almc::Error; the C API turns that into a status.
#pragma once

#include <almc/almc.h>

#include "cuda/langevin/params.cuh"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace almc {

enum class CopyKind { HostToBackend = 0, BackendToHost = 1, BackendToBackend = 2 };

// A dense operator [n_mats, m, d] in backend memory.
struct MatrixOp {
  const float* A;
  int64_t m, d, n_mats;
  bool tf32 = false;  // CUDA: TF32 tensor-core GEMMs allowed
};

struct GraphHandle;

namespace onnx {
class OpKernels;  // host/onnx/op_kernels.hpp
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual almc_backend kind() const = 0;
  virtual std::string device_name() const = 0;
  virtual void* stream() const = 0;
  // Host threads the backend's work may use (the CPU backend's n_threads; 1 elsewhere): code
  // running on the backend, the ONNX executor's blocks included, uses no more.
  virtual int host_threads() const { return 1; }
  // The backend's device made current on the calling thread until the returned object is
  // destroyed (the caller's device back then): the entry points that call user callbacks (a run,
  // almc_score_evaluate, almc_operator_apply*) hold one, so a callback finds the context's device
  // current (CUDA; nothing on the CPU).
  virtual std::shared_ptr<void> device_scope() { return nullptr; }

  // Memory. alloc throws Error(ALMC_ERR_OUT_OF_MEMORY) with the size asked for.
  virtual void* alloc(size_t bytes) = 0;
  virtual void dealloc(void* p) noexcept = 0;
  virtual void copy(void* dst, const void* src, size_t bytes, CopyKind kind) = 0;
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void sync() = 0;
  // Bytes that can still be allocated (an estimate; SIZE_MAX when unknown).
  virtual size_t available_memory() const = 0;

  // cur = table[*counter]; ++*counter (both in backend memory).
  virtual void begin_step(const StepScalars* table, int64_t* counter, StepScalars* cur) = 0;
  // The analytic prior's tables at cur's level (PriorTables); nothing during the warm start.
  virtual void prior_tables(const GmmPrior& prior, int64_t d, const StepScalars* cur, const PriorTables& out) = 0;
  // resp[n, K]: posterior responsibilities of the GMM components at cur's level (tab at that level).
  // work: gmm_resp_work_bytes(n, d, K) bytes of backend memory that the caller allocated with its
  // other buffers (null when that is 0), so that the pass allocates nothing (it may be captured).
  virtual void gmm_responsibilities(const PriorTables& tab, const float* x, int64_t n, int64_t d, const StepScalars* cur,
                                    float* resp, float* work) = 0;
  // Workspace bytes gmm_responsibilities needs for n rows of d coordinates and K components.
  virtual size_t gmm_resp_work_bytes(int64_t n, int64_t d, int64_t K) const { return 0; }
  virtual void fused_step(const FusedStepParams& p) = 0;
  // A step with an analytic prior (p.prior Gaussian or GMM): the tables at cur's level from `g`
  // into p.tab when g is given (else p.tab holds them already), the GMM responsibilities into
  // p.resp, then fused_step. A backend may overlap these per chain; the default runs them in turn.
  virtual void analytic_prior_step(const FusedStepParams& p, const GmmPrior* g) {
    if (g) prior_tables(*g, p.d, p.cur, p.tab);
    if (p.prior == kPriorGmm) gmm_responsibilities(p.tab, p.x, p.n, p.d, p.cur, p.resp, p.resp_work);
    fused_step(p);
  }
  // out[n, d] = the analytic prior score (p.prior, p.tab, p.resp) of p.x at cur's level.
  virtual void analytic_score(const FusedStepParams& p, float* out) = 0;

  // out[n, m] = A x for local/blur operators (op.kind) or a dense matrix (mat.A != nullptr).
  virtual void op_forward(const LocalOp& op, const MatrixOp& mat, const float* x, float* out, int64_t n, int64_t d,
                          int64_t m, int64_t chain0, int64_t chains_per_meas) = 0;
  virtual void op_adjoint(const LocalOp& op, const MatrixOp& mat, const float* v, float* out, int64_t n, int64_t d,
                          int64_t m, int64_t chain0, int64_t chains_per_meas) = 0;
  // R[n, m] = y_row(c) - xs * R (xs from cur, or 1 when cur is null).
  virtual void residual_rows(float* R, const float* y, int64_t y_div, int64_t n, int64_t m, int64_t chain0,
                             const StepScalars* cur) = 0;
  // out[i] = xs * x[i] (xs from cur).
  virtual void scale_by_xs(const float* x, float* out, int64_t count, const StepScalars* cur) = 0;
  // out[c] = ||R_c||_2 over m entries; flags[c] = 1 when row c of x[n, d] holds a NaN or Inf.
  virtual void row_norms_and_flags(const float* R, int64_t m, const float* x, int64_t d, int64_t n, float* norms,
                                   int32_t* flags) = 0;
  // x[n, d] = scale * N(0, 1) (uniform: scale * U(-1, 1)) keyed by (seed, noise_stream(chain0 + c,
  // cpm), key, j).
  virtual void fill_random(float* x, int64_t n, int64_t d, int64_t chain0, int64_t cpm, uint64_t seed, uint64_t key,
                           float scale, bool uniform) = 0;
  // x = a * (x + b * s) elementwise (Tweedie: a = e^t, b = 1 - e^{-2t}).
  virtual void axpby_tweedie(float* x, const float* s, int64_t count, float a, float b) = 0;
  // For chains whose pick[c] == cur.step - first_step, out row c = x row c.
  virtual void copy_picked(const float* x, float* out, const int64_t* pick, int64_t first_step, int64_t n, int64_t d,
                           const StepScalars* cur) = 0;
  // XGP auxiliary measurements: when cur.aux >= 0, ych[c] -= cur.aux_scale * xi(seed, stream, key + aux).
  virtual void xgp_step_aux(float* ych, int64_t n, int64_t m, int64_t chain0, int64_t cpm, uint64_t seed,
                            const StepScalars* cur) = 0;
  // Sequential Monte Carlo (ALGORITHMS.md Sec. 9): acc[c] += sign * (log p(x_c) + d/2 log 2 pi)
  // for the analytic prior at cur's level (tab at that level; N(0, I) during the warm start).
  virtual void add_log_density(const PriorTables& tab, const StepScalars* cur, const float* x, int64_t n, int64_t d,
                               double sign, double* acc) = 0;
  // dst row c = src row idx[c] for c < n (rows of d floats; idx in backend memory).
  virtual void gather_rows(const float* src, float* dst, const int64_t* idx, int64_t n, int64_t d) = 0;
  // Per measurement mean and std across its chains: x[n_meas * cpm, d] -> mean/std [n_meas, d].
  virtual void mean_std(const float* x, int64_t n_meas, int64_t cpm, int64_t d, float* mean, float* std) = 0;

  // CUDA graphs (no-ops returning false on the CPU).
  virtual bool graphs_supported() const { return false; }
  virtual void capture_begin() {}
  virtual GraphHandle* capture_end() { return nullptr; }
  virtual void graph_launch(GraphHandle*) {}
  virtual void graph_destroy(GraphHandle*) noexcept {}
  // True when a kernel or an asynchronous call failed (CUDA: cudaGetLastError / stream errors).
  virtual void check(const char* what) {}
  // True while the stream is being captured into a graph (nothing may allocate then).
  virtual bool capturing() const { return false; }

  // The ONNX executor's operators on this backend: launched on this backend's stream, GEMMs
  // through its GEMM library (CUDA: its one cuBLAS handle and workspace). Owned by the backend.
  virtual onnx::OpKernels& onnx_kernels() = 0;
};

std::unique_ptr<Backend> make_cpu_backend(int n_threads);
// Throws Error(ALMC_ERR_NO_DEVICE) when CUDA is not compiled in or no device is present.
std::unique_ptr<Backend> make_cuda_backend(int device, void* stream);
int cuda_device_count();  // 0 without CUDA support

// RAII buffer in backend memory.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* be, size_t bytes) : be_(be), bytes_(bytes) { p_ = bytes ? be->alloc(bytes) : nullptr; }
  ~Buffer() { reset(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      be_ = o.be_; p_ = o.p_; bytes_ = o.bytes_;
      o.p_ = nullptr; o.bytes_ = 0;
    }
    return *this;
  }
  void reset() noexcept {
    if (p_ && be_) be_->dealloc(p_);
    p_ = nullptr;
    bytes_ = 0;
  }
  template <class T = void>
  T* get() const { return static_cast<T*>(p_); }
  float* f() const { return static_cast<float*>(p_); }
  size_t bytes() const { return bytes_; }
  // Upload host data (bytes must not exceed the buffer).
  void upload(const void* src, size_t bytes) { if (bytes) be_->copy(p_, src, bytes, CopyKind::HostToBackend); }
  void download(void* dst, size_t bytes) const { if (bytes) be_->copy(dst, p_, bytes, CopyKind::BackendToHost); }

 private:
  Backend* be_ = nullptr;
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Backend memory for an analytic prior's tables at one level (PriorTables: [K, d] twice, [K]).
class PriorTableStorage {
 public:
  PriorTableStorage() = default;
  PriorTableStorage(Backend* be, const GmmPrior& g, int64_t d)
      : buf_(be, sizeof(float) * static_cast<size_t>(2 * g.K * d + g.K)), log_w_(g.log_w), K_(g.K), d_(d) {}
  static double bytes(int64_t K, int64_t d) { return 4.0 * (2.0 * K * d + K); }
  PriorTables view() const {
    float* b = buf_.f();
    return {b, b ? b + K_ * d_ : nullptr, b ? b + 2 * K_ * d_ : nullptr, log_w_, K_};
  }
  size_t size_bytes() const { return buf_.bytes(); }

 private:
  Buffer buf_;
  const float* log_w_ = nullptr;
  int64_t K_ = 0, d_ = 0;
};

// An analytic prior's score into out[n, d]: its tables at p.cur's level (into p.tab), the GMM
// responsibilities (into p.resp, with p.resp_work), then the score.
inline void eval_analytic_score(Backend* be, const GmmPrior& g, const FusedStepParams& p, float* out) {
  be->prior_tables(g, p.d, p.cur, p.tab);
  if (p.prior == kPriorGmm) be->gmm_responsibilities(p.tab, p.x, p.n, p.d, p.cur, p.resp, p.resp_work);
  be->analytic_score(p, out);
}

}  // namespace almc
