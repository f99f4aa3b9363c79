// The objects behind the C API's opaque handles. Internal: never installed.
#pragma once

#include <almc/almc.h>

#include "host/backend/backend.hpp"
#include "host/core/digest.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct almc_context_s {
  std::atomic<int> refs{1};  // the user's handle + one per live child (host/capi/lifetime.hpp)
  almc_context_config config{};
  std::unique_ptr<almc::Backend> backend;
  std::string last_error;
  std::string device_name;
  void log(almc_log_level level, const std::string& msg) const {
    if (config.log && level >= config.log_level) config.log(level, msg.c_str(), config.log_user_data);
  }
};

enum class ScoreKind { Callback, Gaussian, Gmm };

struct almc_score_s {
  std::atomic<int> refs{1};  // the user's handle + one per live child (host/capi/lifetime.hpp)
  almc_context_t ctx = nullptr;
  ScoreKind kind = ScoreKind::Callback;
  int64_t d = 0;
  std::string description;
  std::string last_error;
  // Callback scores.
  almc_score_fn fn = nullptr;
  void* user_data = nullptr;
  unsigned flags = 0;
  void (*destroy)(void*) = nullptr;
  // Scores that evaluate rows in fixed blocks (ONNX on the CPU): the global chain index of the
  // next calls' row 0, so a slice of a run is evaluated as the whole run would be. Null: no need.
  void (*set_row0)(void* user_data, int64_t row0) = nullptr;
  // Scores that become graph-safe once planned for their largest batch (ONNX on CUDA without
  // max_batch): the sampler calls this with its row count before it decides on graph capture.
  // Throws (an almc error) when planning fails. Null: no need.
  void (*prepare)(void* user_data, int64_t max_rows, void* stream) = nullptr;
  // Analytic priors: K components (K = 1 for the Gaussian), in backend buffers only (no host
  // copies: a large mixture's memory is its K x d arrays).
  int64_t K = 0;
  almc::Buffer d_mu, d_var, d_log_w;
  double min_var = -1;  // the smallest variance of a component of non-zero weight (stability checks)
  // Digest of the three parameter arrays as uploaded (host/samplers/state.cpp), taken at creation
  // so that saving or loading a state never reads them back from the backend.
  uint64_t params_digest = 0;
  ~almc_score_s() {
    if (destroy) destroy(user_data);
  }
  almc::GmmPrior gmm() const { return {d_mu.f(), d_var.f(), d_log_w.f(), K}; }
};

struct almc_operator_s {
  std::atomic<int> refs{1};  // the user's handle + one per live child (host/capi/lifetime.hpp)
  almc_context_t ctx = nullptr;
  int32_t kind = almc::kOpIdentity;
  int64_t m = 0, d = 0;
  std::string description;
  std::string last_error;
  double norm = -1.0;  // spectral norm (max over matrices), -1 unknown
  // Local operators and blur.
  almc::LocalOp local{};
  almc::Buffer d_mask, d_kernel;
  std::vector<float> h_mask, h_kernel;
  // Dense matrices.
  int64_t n_mats = 0;
  almc::Buffer d_A;
  uint64_t A_digest = 0;  // of the matrices as uploaded (resumable states), taken at creation
  bool tf32 = false;  // CUDA: TF32 tensor-core GEMMs allowed
  // Callbacks.
  almc_linear_fn forward = nullptr, adjoint = nullptr;
  almc_neg_grad_fn neg_grad = nullptr;
  void* user_data = nullptr;

  almc::MatrixOp matrix() const { return {kind == almc::kOpMatrix ? d_A.f() : nullptr, m, d, n_mats, tf32}; }
  almc::LocalOp local_desc() const {
    almc::LocalOp l = local;
    l.kind = kind;
    l.mask = d_mask.f();
    l.kernel = d_kernel.f();
    return l;
  }
};
