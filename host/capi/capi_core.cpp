// C API: status strings, version, contexts, memory helpers, scores and operators.
#include <almc/almc.h>

#include "host/capi/guard.hpp"
#include "host/capi/lifetime.hpp"
#include "host/core/error.hpp"
#include "host/core/capi_internal.hpp"
#include "host/core/objects.hpp"
#include "host/core/gmm_json.hpp"
#include "host/core/power_iteration.hpp"
#include "cuda/langevin/step.cuh"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

using namespace almc;

namespace {

constexpr int kMaxThreads = 1024;

const char* ctx_err(almc_context_t ctx) {
  if (ctx) return ctx->last_error.c_str();
  const std::string* unbound = unbound_last_error();
  return unbound->empty() ? "context is NULL" : unbound->c_str();
}

template <class F>
almc_status ctx_guarded(almc_context_t ctx, F&& body) {
  if (!ctx) return ALMC_ERR_NULL_POINTER;
  return guarded(&ctx->last_error, body);
}

// Copies host x[n, d_in] into backend memory, runs fn(dev_in, dev_out), copies out[n, d_out] back.
template <class Fn>
void run_on_backend(Backend* be, const float* in, int64_t in_count, float* out, int64_t out_count, Fn&& fn) {
  Buffer din(be, sizeof(float) * static_cast<size_t>(in_count));
  Buffer dout(be, sizeof(float) * static_cast<size_t>(out_count));
  din.upload(in, din.bytes());
  fn(din.f(), dout.f());
  be->check("kernel");
  be->sync();
  dout.download(out, dout.bytes());
}

}  // namespace

std::string* almc::unbound_last_error() {
  thread_local std::string message;
  return &message;
}

extern "C" {

const char* almc_status_string(almc_status status) {
  // A C caller may pass any int (C's enums are ints); in C++ reading an almc_status outside the
  // enumerators' range is undefined, so the value is read as its int representation.
  int s = 0;
  static_assert(sizeof(status) == sizeof(s), "almc_status is an int-sized enum");
  std::memcpy(&s, &status, sizeof s);
  switch (s) {
    case ALMC_OK: return "ok";
    case ALMC_ERR_INVALID_ARGUMENT: return "invalid argument";
    case ALMC_ERR_NULL_POINTER: return "null pointer";
    case ALMC_ERR_STRUCT_SIZE: return "struct_size mismatch";
    case ALMC_ERR_OUT_OF_MEMORY: return "out of memory";
    case ALMC_ERR_NO_DEVICE: return "no CUDA device";
    case ALMC_ERR_CUDA: return "CUDA error";
    case ALMC_ERR_UNSUPPORTED: return "unsupported";
    case ALMC_ERR_IO: return "I/O error";
    case ALMC_ERR_PARSE: return "malformed input";
    case ALMC_ERR_CALLBACK: return "callback failed";
    case ALMC_ERR_DIVERGED: return "chain diverged";
    case ALMC_ERR_UNSTABLE: return "step size above the stability bound";
    case ALMC_ERR_WRONG_STATE: return "call out of order";
    case ALMC_ERR_CANCELLED: return "cancelled";
    case ALMC_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* almc_version(void) { return ALMC_VERSION_STRING; }

const char* almc_build_info(void) {
  return "almc " ALMC_VERSION_STRING "; backends: cpu (OpenMP)"
#ifdef ALMC_HAVE_CUDA
         ", cuda (architectures " ALMC_CUDA_ARCHS ")"
#else
         ", cuda not built"
#endif
         "; onnx executor built in";
}

almc_context_config almc_context_config_default(void) {
  almc_context_config c;
  std::memset(&c, 0, sizeof c);
  c.struct_size = sizeof c;
  c.backend = ALMC_BACKEND_AUTO;
  c.log_level = ALMC_LOG_INFO;
  return c;
}

almc_status almc_cuda_device_count(int* out) {
  return guarded(unbound_last_error(), [&] {
    require(out, "out");
    *out = cuda_device_count();
  });
}

almc_status almc_context_create(const almc_context_config* config, almc_context_t* out) {
  if (out) *out = nullptr;
  return guarded(unbound_last_error(), [&] {
    require(out, "out");
    almc_context_config cfg = almc_context_config_default();
    if (config) cfg = read_struct(config, cfg, "config");
    if (raw_enum(cfg.backend) < ALMC_BACKEND_AUTO || raw_enum(cfg.backend) > ALMC_BACKEND_CUDA)
      fail(ALMC_ERR_INVALID_ARGUMENT, "unknown backend ", raw_enum(cfg.backend));
    if (cfg.n_threads < 0) fail(ALMC_ERR_INVALID_ARGUMENT, "n_threads = ", cfg.n_threads, " must be >= 0");
    // Far above any CPU's cores; beyond it thread creation fails inside the OpenMP runtime.
    if (cfg.n_threads > kMaxThreads)
      fail(ALMC_ERR_INVALID_ARGUMENT, "n_threads = ", cfg.n_threads, " is above the limit of ", kMaxThreads);
    auto ctx = std::make_unique<almc_context_s>();
    ctx->config = cfg;
    std::string why;
    if (cfg.backend == ALMC_BACKEND_CUDA) {
      ctx->backend = make_cuda_backend(cfg.device, cfg.stream);
    } else if (cfg.backend == ALMC_BACKEND_AUTO) {
      if (cuda_device_count() > 0) {
        try {
          ctx->backend = make_cuda_backend(cfg.device, cfg.stream);
        } catch (const Error& e) {
          // A bad setting (e.g. ALMC_GPU_GMM_RESP) is the caller's to fix, not a reason to fall back.
          if (e.status() == ALMC_ERR_INVALID_ARGUMENT) throw;
          why = e.what();
        }
      } else {
        why = "no CUDA device";
      }
      if (!ctx->backend) ctx->backend = make_cpu_backend(cfg.n_threads);
    } else {
      ctx->backend = make_cpu_backend(cfg.n_threads);
    }
    ctx->device_name = ctx->backend->device_name();
    ctx->log(ALMC_LOG_INFO, std::string("backend: ") + (ctx->backend->kind() == ALMC_BACKEND_CUDA ? "cuda" : "cpu") +
                                " on " + ctx->device_name +
                                (cfg.backend == ALMC_BACKEND_AUTO && !why.empty() ? " (auto: " + why + ")" : ""));
    *out = ctx.release();
  });
}

void almc_context_destroy(almc_context_t ctx) { release(ctx); }

almc_status almc_context_backend(almc_context_t ctx, almc_backend* out) {
  return ctx_guarded(ctx, [&] {
    require(out, "out");
    *out = ctx->backend->kind();
  });
}

const char* almc_context_device_name(almc_context_t ctx) { return ctx ? ctx->device_name.c_str() : ""; }
const char* almc_context_last_error(almc_context_t ctx) { return ctx_err(ctx); }

almc_status almc_malloc(almc_context_t ctx, size_t bytes, void** out) {
  return ctx_guarded(ctx, [&] {
    require(out, "out");
    *out = ctx->backend->alloc(bytes);
  });
}
almc_status almc_free(almc_context_t ctx, void* ptr) {
  return ctx_guarded(ctx, [&] { ctx->backend->dealloc(ptr); });
}
almc_status almc_memcpy(almc_context_t ctx, void* dst, const void* src, size_t bytes, int kind) {
  return ctx_guarded(ctx, [&] {
    if (bytes == 0) return;
    require(dst, "dst");
    require(src, "src");
    if (kind < 0 || kind > 2) fail(ALMC_ERR_INVALID_ARGUMENT, "memcpy kind ", kind, " must be 0, 1 or 2");
    ctx->backend->copy(dst, src, bytes, static_cast<CopyKind>(kind));
  });
}
almc_status almc_synchronize(almc_context_t ctx) {
  return ctx_guarded(ctx, [&] { ctx->backend->sync(); });
}

// ---------------------------------------------------------------------------------------- scores

almc_status almc_score_create_callback_owned(almc_context_t ctx, int64_t d, almc_score_fn fn, void* user_data,
                                             unsigned flags, void (*destroy)(void*), const char* description,
                                             almc_score_t* out) {
  if (out) *out = nullptr;
  if (!ctx) {
    if (destroy) destroy(user_data);
    return ALMC_ERR_NULL_POINTER;
  }
  auto s = std::make_unique<almc_score_s>();
  s->destroy = destroy;  // owned from here on, also when validation below fails
  s->user_data = user_data;
  return guarded(&ctx->last_error, [&] {
    require(out, "out");
    require(reinterpret_cast<const void*>(fn), "score callback");
    require_positive(d, "d");
    // Unknown bits are refused: a flag from a later almc.h must not be silently ignored.
    if (flags & ~unsigned(ALMC_SCORE_GRAPH_SAFE))
      fail(ALMC_ERR_INVALID_ARGUMENT, "flags = ", flags, ": unknown bits (the flags are ALMC_SCORE_GRAPH_SAFE)");
    s->ctx = ctx;
    s->kind = ScoreKind::Callback;
    s->d = d;
    s->fn = fn;
    s->flags = flags;
    s->description = description ? description : "callback";
    *out = s.release();
    retain(ctx);
  });
}

almc_status almc_score_create_callback(almc_context_t ctx, int64_t d, almc_score_fn fn, void* user_data,
                                       unsigned flags, almc_score_t* out) {
  return almc_score_create_callback_owned(ctx, d, fn, user_data, flags, nullptr, "callback", out);
}

almc_status almc_score_create_gmm(almc_context_t ctx, int64_t K, int64_t d, const float* weights, const float* means,
                                  const float* variances, almc_score_t* out) {
  if (out) *out = nullptr;
  return ctx_guarded(ctx, [&] {
    require(out, "out");
    require(weights, "weights");
    require(means, "means");
    require(variances, "variances");
    require_positive(K, "K");
    require_positive(d, "d");
    const int64_t kd = elements(K, d, "K x d");
    require_finite(weights, K, "weights");
    require_finite(means, kd, "means");
    require_finite(variances, kd, "variances");
    double wsum = 0;
    for (int64_t k = 0; k < K; ++k) {
      if (weights[k] < 0) fail(ALMC_ERR_INVALID_ARGUMENT, "weights[", k, "] = ", weights[k], " is negative");
      wsum += weights[k];
    }
    if (!(wsum > 0)) fail(ALMC_ERR_INVALID_ARGUMENT, "the mixture weights sum to zero");
    for (int64_t i = 0; i < kd; ++i)
      if (!(variances[i] > 0))
        fail(ALMC_ERR_INVALID_ARGUMENT, "variances[", i / d, "][", i % d, "] = ", variances[i], " must be positive");
    auto s = std::make_unique<almc_score_s>();
    s->ctx = ctx;
    s->kind = K == 1 ? ScoreKind::Gaussian : ScoreKind::Gmm;
    s->d = d;
    s->K = K;
    std::vector<float> log_w(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k)
      log_w[k] = weights[k] > 0 ? static_cast<float>(std::log(weights[k] / wsum)) : -INFINITY;
    Backend* be = ctx->backend.get();
    s->d_mu = Buffer(be, sizeof(float) * kd);
    s->d_var = Buffer(be, sizeof(float) * kd);
    s->d_log_w = Buffer(be, sizeof(float) * K);
    s->d_mu.upload(means, s->d_mu.bytes());
    s->d_var.upload(variances, s->d_var.bytes());
    s->d_log_w.upload(log_w.data(), s->d_log_w.bytes());
    Fnv1a h;
    h.add_array(means, static_cast<size_t>(kd));
    h.add_array(variances, static_cast<size_t>(kd));
    h.add_vector(log_w);
    s->params_digest = h.h;
    for (int64_t i = 0; i < kd; ++i)
      if (weights[i / d] > 0 && (s->min_var < 0 || variances[i] < s->min_var)) s->min_var = variances[i];
    s->description = K == 1 ? "gaussian" : "gmm(K=" + std::to_string(K) + ")";
    *out = s.release();
    retain(ctx);
  });
}

almc_status almc_score_create_gaussian(almc_context_t ctx, int64_t d, const float* mean, const float* var,
                                       almc_score_t* out) {
  const float one = 1.f;
  return almc_score_create_gmm(ctx, 1, d, &one, mean, var, out);
}

almc_status almc_score_create_gmm_json(almc_context_t ctx, const char* path, almc_score_t* out) {
  if (out) *out = nullptr;
  GmmSpec spec;
  const almc_status st = ctx_guarded(ctx, [&] {
    require_path(path, "path");
    require(out, "out");
    spec = read_gmm_json(path);
  });
  if (st != ALMC_OK) return st;
  return almc_score_create_gmm(ctx, spec.K, spec.d, spec.weights.data(), spec.means.data(), spec.variances.data(), out);
}

void almc_score_destroy(almc_score_t score) { release(score); }

almc_status almc_score_dim(almc_score_t score, int64_t* d) {
  if (!score) return ALMC_ERR_NULL_POINTER;
  return guarded(&score->last_error, [&] {
    require(d, "d");
    *d = score->d;
  });
}

const char* almc_score_last_error(almc_score_t score) { return score ? score->last_error.c_str() : "score is NULL"; }

almc_status almc_score_evaluate(almc_score_t score, const float* x, float* out, int64_t n, double t) {
  if (!score) return ALMC_ERR_NULL_POINTER;
  return guarded(&score->last_error, [&] {
    require(x, "x");
    require(out, "out");
    require_positive(n, "n");
    if (!(t > 0) || !std::isfinite(t)) fail(ALMC_ERR_INVALID_ARGUMENT, "t = ", t, " must be positive and finite");
    Backend* be = score->ctx->backend.get();
    const auto scope = be->device_scope();  // a callback finds the context's device current
    const int64_t nd = elements(n, score->d, "n x d");
    StepScalars cur{};
    cur.t = static_cast<float>(t);
    cur.sigma = static_cast<float>(std::sqrt(std::expm1(2 * t)));
    cur.alpha_bar = static_cast<float>(std::exp(-2 * t));
    cur.log_sigma = std::log(cur.sigma);
    cur.kind = kStepAnneal;
    cur.step = -1;
    Buffer dcur(be, sizeof cur);
    dcur.upload(&cur, sizeof cur);
    run_on_backend(be, x, nd, out, nd, [&](float* dx, float* dout) {
      if (score->kind == ScoreKind::Callback) {
        almc_level lv{t, cur.sigma, cur.alpha_bar, -1};
        const int rc = score->fn(dx, dout, n, score->d, &lv, dcur.get<almc_level_device>(), be->stream(),
                                 score->user_data);
        if (rc != 0) fail(ALMC_ERR_CALLBACK, "score callback (", score->description, ") returned ", rc);
        return;
      }
      FusedStepParams p{};
      p.x = dx;
      p.n = n;
      p.d = score->d;
      p.cur = dcur.get<StepScalars>();
      p.prior = score->kind == ScoreKind::Gaussian ? kPriorGaussian : kPriorGmm;
      const PriorTableStorage tables(be, score->gmm(), score->d);
      p.tab = tables.view();
      Buffer resp, resp_work;
      if (score->kind == ScoreKind::Gmm) {
        resp = Buffer(be, sizeof(float) * elements(n, score->K, "n x K"));
        resp_work = Buffer(be, be->gmm_resp_work_bytes(n, score->d, score->K));
      }
      p.resp = resp.f();
      p.resp_work = resp_work.f();
      eval_analytic_score(be, score->gmm(), p, dout);
      be->check("analytic score");
      be->sync();
    });
  });
}

// ------------------------------------------------------------------------------------- operators

}  // extern "C"

namespace {

template <class F>
almc_status make_operator(almc_context_t ctx, almc_operator_t* out, F&& fill) {
  if (out) *out = nullptr;
  return ctx_guarded(ctx, [&] {
    require(out, "out");
    auto op = std::make_unique<almc_operator_s>();
    op->ctx = ctx;
    fill(*op);
    *out = op.release();
    retain(ctx);
  });
}

}  // namespace

extern "C" {

almc_status almc_operator_create_identity(almc_context_t ctx, int64_t d, almc_operator_t* out) {
  return make_operator(ctx, out, [&](almc_operator_s& op) {
    require_positive(d, "d");
    op.kind = kOpIdentity;
    op.m = op.d = d;
    op.norm = 1.0;
    op.description = "identity";
  });
}

almc_status almc_operator_create_mask(almc_context_t ctx, int64_t d, const float* mask, almc_operator_t* out) {
  return make_operator(ctx, out, [&](almc_operator_s& op) {
    require(mask, "mask");
    require_positive(d, "d");
    elements(d, 1, "d");
    require_finite(mask, d, "mask");
    op.kind = kOpMask;
    op.m = op.d = d;
    op.h_mask.assign(mask, mask + d);
    double mx = 0;
    for (float v : op.h_mask) mx = std::max(mx, static_cast<double>(std::fabs(v)));
    op.norm = mx;
    op.d_mask = Buffer(ctx->backend.get(), sizeof(float) * d);
    op.d_mask.upload(mask, op.d_mask.bytes());
    op.description = "mask";
  });
}

almc_status almc_operator_create_downsample(almc_context_t ctx, int64_t C, int64_t H, int64_t W, int64_t factor,
                                            almc_operator_t* out) {
  return make_operator(ctx, out, [&](almc_operator_s& op) {
    require_positive(C, "C");
    require_positive(H, "H");
    require_positive(W, "W");
    require_positive(factor, "factor");
    if (H % factor || W % factor)
      fail(ALMC_ERR_INVALID_ARGUMENT, "downsample: image ", H, "x", W, " is not divisible by the factor ", factor);
    op.kind = kOpDownsample;
    op.d = elements(elements(C, H, "C x H"), W, "C x H x W");
    op.m = C * (H / factor) * (W / factor);
    op.local.C = C;
    op.local.H = H;
    op.local.W = W;
    op.local.f = factor;
    op.norm = 1.0 / static_cast<double>(factor);  // A A^T = I / f^2
    op.description = "downsample:" + std::to_string(factor);
  });
}

almc_status almc_operator_create_blur(almc_context_t ctx, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw,
                                      const float* kernel, almc_operator_t* out) {
  return make_operator(ctx, out, [&](almc_operator_s& op) {
    require(kernel, "kernel");
    require_positive(C, "C");
    require_positive(H, "H");
    require_positive(W, "W");
    require_positive(kh, "kh");
    require_positive(kw, "kw");
    if (kh % 2 == 0 || kw % 2 == 0) fail(ALMC_ERR_INVALID_ARGUMENT, "blur kernel ", kh, "x", kw, " must have odd sizes");
    if (kh > 2 * H + 1 || kw > 2 * W + 1 || kh * kw > 4096)
      fail(ALMC_ERR_INVALID_ARGUMENT, "blur kernel ", kh, "x", kw, " is too large for a small-kernel blur");
    require_finite(kernel, kh * kw, "kernel");
    op.kind = kOpBlur;
    op.d = op.m = elements(elements(C, H, "C x H"), W, "C x H x W");
    op.local.C = C;
    op.local.H = H;
    op.local.W = W;
    op.local.kh = kh;
    op.local.kw = kw;
    op.h_kernel.assign(kernel, kernel + kh * kw);
    op.d_kernel = Buffer(ctx->backend.get(), sizeof(float) * kh * kw);
    op.d_kernel.upload(kernel, op.d_kernel.bytes());
    LocalOp host = op.local;
    host.kind = kOpBlur;
    host.kernel = op.h_kernel.data();
    host.C = 1;  // every channel is blurred alike: one channel gives the norm
    op.norm = power_iteration_norm(H * W, H * W,
                                   [&](const float* x, float* y) {
                                     for (int64_t i = 0; i < H * W; ++i) y[i] = local_forward(host, x, i);
                                   },
                                   [&](const float* y, float* x) {
                                     for (int64_t j = 0; j < H * W; ++j) x[j] = local_adjoint(host, y, j);
                                   });
    op.description = "blur";
  });
}

almc_status almc_operator_create_matrix(almc_context_t ctx, int64_t m, int64_t d, int64_t n_mats, const float* A,
                                        almc_operator_t* out) {
  return make_operator(ctx, out, [&](almc_operator_s& op) {
    require(A, "A");
    require_positive(m, "m");
    require_positive(d, "d");
    require_positive(n_mats, "n_mats");
    if (m > INT32_MAX || d > INT32_MAX) fail(ALMC_ERR_INVALID_ARGUMENT, "matrix dimensions must fit in 32 bits for BLAS");
    const int64_t md = elements(m, d, "m x d");
    const int64_t total = elements(md, n_mats, "n_mats x m x d");
    require_finite(A, total, "A");
    op.kind = kOpMatrix;
    op.m = m;
    op.d = d;
    op.n_mats = n_mats;
    // ||A|| by power iteration (it sets the stability guard and the warm start's step, so its bits
    // matter): every row's sum of A x and every coordinate's sum of A^T y in double, in index
    // order. Rows are taken eight at a time (eight independent sums in flight rather than one chain
    // of dependent double additions) and both products are spread over threads by rows or
    // coordinates, which changes no element's order of summation.
    const bool par = md >= (int64_t{1} << 20);
    double norm = 0;
    std::vector<double> acc(static_cast<size_t>(d));
    for (int64_t q = 0; q < n_mats; ++q) {
      const float* Aq = A + q * md;
      norm = std::max(norm, power_iteration_norm(m, d,
                                                 [&](const float* x, float* y) {
#pragma omp parallel for schedule(static) if (par)
                                                   for (int64_t i0 = 0; i0 < m; i0 += 8) {
                                                     const int64_t rows = std::min<int64_t>(8, m - i0);
                                                     const float* a = Aq + i0 * d;
                                                     double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                                                     if (rows == 8) {
                                                       for (int64_t j = 0; j < d; ++j)
                                                         for (int e = 0; e < 8; ++e) s[e] += a[e * d + j] * x[j];
                                                     } else {
                                                       for (int64_t e = 0; e < rows; ++e)
                                                         for (int64_t j = 0; j < d; ++j) s[e] += a[e * d + j] * x[j];
                                                     }
                                                     for (int64_t e = 0; e < rows; ++e) y[i0 + e] = static_cast<float>(s[e]);
                                                   }
                                                 },
                                                 [&](const float* y, float* x) {
                                                   constexpr int64_t kCols = 1024;
#pragma omp parallel for schedule(static) if (par)
                                                   for (int64_t j0 = 0; j0 < d; j0 += kCols) {
                                                     const int64_t j1 = std::min(d, j0 + kCols);
                                                     for (int64_t j = j0; j < j1; ++j) acc[j] = 0.0;
                                                     for (int64_t i = 0; i < m; ++i)
                                                       for (int64_t j = j0; j < j1; ++j) acc[j] += Aq[i * d + j] * y[i];
                                                     for (int64_t j = j0; j < j1; ++j) x[j] = static_cast<float>(acc[j]);
                                                   }
                                                 }));
    }
    op.norm = norm;
    op.d_A = Buffer(ctx->backend.get(), sizeof(float) * total);
    op.d_A.upload(A, op.d_A.bytes());
    Fnv1a h;
    h.add_array(reinterpret_cast<const unsigned char*>(A), sizeof(float) * static_cast<size_t>(total));
    op.A_digest = h.h;
    op.description = "matrix(" + std::to_string(m) + "x" + std::to_string(d) + ")";
  });
}

almc_status almc_operator_create_linear_callback(almc_context_t ctx, int64_t m, int64_t d, almc_linear_fn forward,
                                                 almc_linear_fn adjoint, void* user_data, double norm_estimate,
                                                 almc_operator_t* out) {
  return make_operator(ctx, out, [&](almc_operator_s& op) {
    require(reinterpret_cast<const void*>(forward), "forward");
    require(reinterpret_cast<const void*>(adjoint), "adjoint");
    require_positive(m, "m");
    require_positive(d, "d");
    if (!std::isfinite(norm_estimate))
      fail(ALMC_ERR_INVALID_ARGUMENT, "norm_estimate = ", norm_estimate, " is not finite: give ||A||, or 0 when it is unknown");
    op.kind = kOpLinearCallback;
    op.m = m;
    op.d = d;
    op.forward = forward;
    op.adjoint = adjoint;
    op.user_data = user_data;
    op.norm = norm_estimate > 0 ? norm_estimate : -1.0;
    op.description = "linear callback";
  });
}

almc_status almc_operator_create_neg_grad_callback(almc_context_t ctx, int64_t m, int64_t d, almc_neg_grad_fn fn,
                                                   void* user_data, almc_operator_t* out) {
  return make_operator(ctx, out, [&](almc_operator_s& op) {
    require(reinterpret_cast<const void*>(fn), "neg_grad callback");
    require_positive(m, "m");
    require_positive(d, "d");
    op.kind = kOpNegGradCallback;
    op.m = m;
    op.d = d;
    op.neg_grad = fn;
    op.user_data = user_data;
    op.description = "nonlinear likelihood callback";
  });
}

void almc_operator_destroy(almc_operator_t op) { release(op); }

almc_status almc_operator_dims(almc_operator_t op, int64_t* m, int64_t* d) {
  if (!op) return ALMC_ERR_NULL_POINTER;
  return guarded(&op->last_error, [&] {
    if (!m && !d) fail(ALMC_ERR_NULL_POINTER, "m and d are both NULL");
    if (m) *m = op->m;
    if (d) *d = op->d;
  });
}

almc_status almc_operator_norm(almc_operator_t op, double* out) {
  if (!op) return ALMC_ERR_NULL_POINTER;
  return guarded(&op->last_error, [&] {
    require(out, "out");
    *out = op->norm;
  });
}

almc_status almc_operator_set_tf32(almc_operator_t op, int enable) {
  if (!op) return ALMC_ERR_NULL_POINTER;
  return guarded(&op->last_error, [&] {
    if (enable != 0 && enable != 1) fail(ALMC_ERR_INVALID_ARGUMENT, "enable = ", enable, " must be 0 or 1");
    op->tf32 = enable == 1;
  });
}

const char* almc_operator_last_error(almc_operator_t op) { return op ? op->last_error.c_str() : "operator is NULL"; }

static almc_status operator_apply(almc_operator_t op, const float* in, float* out, int64_t n, int64_t meas, bool adjoint) {
  if (!op) return ALMC_ERR_NULL_POINTER;
  return guarded(&op->last_error, [&] {
    require(in, adjoint ? "y" : "x");
    require(out, adjoint ? "x" : "y");
    require_positive(n, "n");
    if (meas < 0) fail(ALMC_ERR_INVALID_ARGUMENT, "meas = ", meas, " must be >= 0");
    if (op->kind == kOpMatrix && op->n_mats > 1 && meas >= op->n_mats)
      fail(ALMC_ERR_INVALID_ARGUMENT, "meas = ", meas, " but the operator holds ", op->n_mats, " matrices");
    if (op->kind == kOpNegGradCallback)
      fail(ALMC_ERR_UNSUPPORTED, "a nonlinear likelihood callback has no forward or adjoint map");
    Backend* be = op->ctx->backend.get();
    const auto scope = be->device_scope();  // a callback finds the context's device current
    const int64_t nin = elements(n, adjoint ? op->m : op->d, "n x dim");
    const int64_t nout = elements(n, adjoint ? op->d : op->m, "n x dim");
    run_on_backend(be, in, nin, out, nout, [&](float* din, float* dout) {
      if (op->kind == kOpLinearCallback) {
        const int rc = (adjoint ? op->adjoint : op->forward)(din, dout, n, meas, n, be->stream(), op->user_data);
        if (rc != 0) fail(ALMC_ERR_CALLBACK, "operator callback returned ", rc);
        return;
      }
      // All n rows use measurement `meas`: present them as chains of that measurement.
      const int64_t chain0 = meas * n;
      if (adjoint)
        be->op_adjoint(op->local_desc(), op->matrix(), din, dout, n, op->d, op->m, chain0, n);
      else
        be->op_forward(op->local_desc(), op->matrix(), din, dout, n, op->d, op->m, chain0, n);
    });
  });
}

almc_status almc_operator_forward(almc_operator_t op, const float* x, float* y, int64_t n, int64_t meas) {
  return operator_apply(op, x, y, n, meas, false);
}
almc_status almc_operator_adjoint(almc_operator_t op, const float* y, float* x, int64_t n, int64_t meas) {
  return operator_apply(op, y, x, n, meas, true);
}

}  // extern "C"

// ------------------------------------------------------------------------------ internal hooks

namespace almc {
almc_status set_context_error(almc_context_t ctx, almc_status status, const std::string& message) {
  if (ctx) ctx->last_error = message;
  return status;
}
almc_backend context_backend(almc_context_t ctx) { return ctx ? ctx->backend->kind() : ALMC_BACKEND_CPU; }
void* context_stream(almc_context_t ctx) { return ctx ? ctx->backend->stream() : nullptr; }
void context_log(almc_context_t ctx, almc_log_level level, const std::string& message) {
  if (ctx) ctx->log(level, message);
}
}  // namespace almc
