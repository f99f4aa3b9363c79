// Flat parameter structs of the step kernels, shared by both backends. Plain data only: lowered
// once from the user's objects by the sampler, passed to kernels by value.
#pragma once

#include <cstdint>

namespace almc {

// The scalars of one Langevin step, precomputed on the host for the whole run and kept in backend
// memory; begin_step copies entry `*counter` to `cur` and advances the counter, so every step of
// a run is the same sequence of launches and can be captured once into a CUDA graph.
struct StepScalars {
  // The level, laid out as almc_level_device (score callbacks read these four).
  float t, sigma, alpha_bar, log_sigma;
  float h;        // step size
  float noise;    // sqrt(2 h)
  float lik;      // multiplier of the raw likelihood term A^T (y - xs A x) (or of -grad R)
  float xs;       // scale of x inside the likelihood (e^t for methods run in VE coordinates)
  float neg_xs;   // -xs (a cuBLAS alpha read from device memory)
  float post;     // x is multiplied by this after the update (change of coordinates between levels)
  int32_t kind;   // kStepAnneal: score at level t; kStepWarm: score of N(0, I), i.e. -x
  int32_t aux;    // >= 0: this step begins by stepping the per-chain auxiliary measurements (XGP)
  int64_t step;   // global step index, the noise key
  float aux_scale;  // XGP: sqrt(eta_k^2 - eta_{k+1}^2) for the auxiliary update
  float pad_;
};

constexpr int32_t kStepAnneal = 0;
constexpr int32_t kStepWarm = 1;

enum OpKind : int32_t {
  kOpNone = 0,        // no likelihood
  kOpIdentity = 1,    // fused
  kOpMask = 2,        // fused
  kOpDownsample = 3,  // fused
  kOpBlur = 4,        // through the gradient buffer
  kOpMatrix = 5,      // through the gradient buffer (GEMM)
  kOpLinearCallback = 6,
  kOpNegGradCallback = 7
};

constexpr bool op_is_fused(int32_t op) { return op == kOpNone || op == kOpIdentity || op == kOpMask || op == kOpDownsample; }

enum PriorKind : int32_t {
  kPriorBuffer = 0,    // score evaluated into a buffer by a callback
  kPriorGaussian = 1,  // fused: N(mu, diag var)
  kPriorGmm = 2        // fused after a responsibilities pass
};

// Shape and data of the local operators (the part the fused kernel needs).
struct LocalOp {
  int32_t kind;
  const float* mask;     // [d] for kOpMask
  int64_t C, H, W;       // image shape for kOpDownsample and kOpBlur
  int64_t f;             // kOpDownsample: pooling factor
  const float* kernel;   // kOpBlur: [kh, kw], odd sizes, centred
  int64_t kh, kw;
};

struct GmmPrior {
  const float* mu;       // [K, d]
  const float* var;      // [K, d]
  const float* log_w;    // [K] log weights (normalised)
  int64_t K;
};

// An analytic prior at one level t, as the tables the step reads (computed once per step from
// GmmPrior by prior_table_entry / prior_logdet_term, ALGORITHMS.md T1/T4): amu = e^{-t} mu,
// inv_s = 1 / (e^{-2t} var + 1 - e^{-2t}), logdet[k] = sum_j log S_k,j. The Gaussian prior is the
// one-component case.
struct PriorTables {
  float* amu;            // [K, d]
  float* inv_s;          // [K, d]
  float* logdet;         // [K]
  const float* log_w;    // [K]
  int64_t K;
};

struct FusedStepParams {
  float* x;              // [n, d] state, updated in place
  int64_t n, d;
  int64_t chain0;        // global index of row 0
  int64_t cpm;           // chains per measurement (noise streams are keyed by measurement and chain)
  uint64_t seed;
  const StepScalars* cur;
  int32_t prior;         // PriorKind
  const float* score;    // kPriorBuffer: [n, d]
  PriorTables tab;       // kPriorGaussian (K = 1) and kPriorGmm, at cur's level
  float* resp;           // kPriorGmm: [n, K] responsibilities at this step
  float* resp_work;      // kPriorGmm: workspace of the responsibilities pass (Backend::gmm_resp_work_bytes)
  LocalOp op;
  const float* y;        // measurement rows; chain c reads row (chain0 + c) / y_div - y_row0
  int64_t y_div;
  int64_t y_row0;        // the row index y's first row stands for (per-chain rows of a slice)
  int64_t m;
  const float* g;        // non-fused operators: raw likelihood term [n, d]
};

}  // namespace almc
