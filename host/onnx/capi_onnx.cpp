// C API of the ONNX score networks: almc_onnx_config_default, almc_score_create_onnx,
// almc_onnx_eval_raw. The score is a callback score that owns its executor.
#include <cmath>
#include <cstring>
#include <type_traits>
#include <new>
#include <string>

#include "host/core/capi_internal.hpp"
#include "host/core/objects.hpp"
#include "host/core/error.hpp"
#include "host/onnx/executor.hpp"

#ifdef ALMC_HAVE_CUDA
#include "cuda/onnx/kernels.hpp"
#endif

namespace {

using almc::onnx::Error;
using almc::onnx::ExecConfig;
using almc::onnx::Executor;

struct OnnxScore {
  std::unique_ptr<Executor> exec;
  almc_context_t ctx = nullptr;  // for logging a failed call (the engine reports only the status)
};

int score_trampoline(const float* x, float* score, int64_t n, int64_t d, const almc_level* /*level*/,
                     const almc_level_device* level_dev, void* stream, void* user_data) {
  auto* s = static_cast<OnnxScore*>(user_data);
  try {
    if (d != s->exec->d()) throw Error(ALMC_ERR_INVALID_ARGUMENT, "dimension mismatch");
    s->exec->run_score(x, score, n, level_dev, stream);
    return 0;
  } catch (const std::exception& e) {
    try {
      almc::context_log(s->ctx, ALMC_LOG_ERROR, std::string("ONNX score: ") + e.what());
    } catch (...) {
    }
    return 1;
  } catch (...) {
    return 1;
  }
}

void destroy_score(void* p) { delete static_cast<OnnxScore*>(p); }
void set_score_row0(void* p, int64_t row0) { static_cast<OnnxScore*>(p)->exec->set_row0(row0); }

ExecConfig lower_config(almc_context_t ctx, const almc_onnx_config* c) {
  ExecConfig e;
  e.backend = almc::context_backend(ctx);
  if (!c) return e;
  if (c->struct_size != sizeof(almc_onnx_config))
    throw Error(ALMC_ERR_STRUCT_SIZE, "almc_onnx_config.struct_size is " + std::to_string(c->struct_size) + ", expected " +
                                          std::to_string(sizeof(almc_onnx_config)));
  if (almc::raw_enum(c->output) < ALMC_OUTPUT_SCORE || almc::raw_enum(c->output) > ALMC_OUTPUT_X0) throw Error(ALMC_ERR_INVALID_ARGUMENT, "unknown output kind");
  if (almc::raw_enum(c->convention) < ALMC_CONV_OU || almc::raw_enum(c->convention) > ALMC_CONV_VE) throw Error(ALMC_ERR_INVALID_ARGUMENT, "unknown convention");
  if (almc::raw_enum(c->level) < ALMC_LEVEL_T || almc::raw_enum(c->level) > ALMC_LEVEL_NONE) throw Error(ALMC_ERR_INVALID_ARGUMENT, "unknown level kind");
  if (c->max_batch < 0) throw Error(ALMC_ERR_INVALID_ARGUMENT, "max_batch must be >= 0");
  if (c->level == ALMC_LEVEL_INDEX) {
    if (!c->alpha_bar_table || c->alpha_bar_len <= 0)
      throw Error(ALMC_ERR_INVALID_ARGUMENT, "level = ALMC_LEVEL_INDEX needs alpha_bar_table and alpha_bar_len > 0");
    if (c->alpha_bar_len > (int64_t(1) << 24)) throw Error(ALMC_ERR_INVALID_ARGUMENT, "alpha_bar_len too large");
    e.alpha_bar_table.assign(c->alpha_bar_table, c->alpha_bar_table + c->alpha_bar_len);
  }
  e.output = c->output;
  e.convention = c->convention;
  e.level = c->level;
  e.allow_tf32 = c->allow_tf32 != 0;
  e.max_batch = c->max_batch;
  if (c->x_input) e.x_input = c->x_input;
  if (c->level_input) e.level_input = c->level_input;
  return e;
}

template <class F>
almc_status guarded(almc_context_t ctx, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    return almc::set_context_error(ctx, e.status, e.what());
  } catch (const std::bad_alloc&) {
    return almc::set_context_error(ctx, ALMC_ERR_OUT_OF_MEMORY, "out of host memory while loading the ONNX model");
  } catch (const std::exception& e) {
    return almc::set_context_error(ctx, ALMC_ERR_INTERNAL, std::string("ONNX executor: ") + e.what());
  } catch (...) {
    return almc::set_context_error(ctx, ALMC_ERR_INTERNAL, "ONNX executor: unknown failure");
  }
}

const char* output_name(int o) {
  static const char* n[] = {"score", "eps", "denoiser", "x0"};
  return n[o];
}
const char* conv_name(int c) {
  static const char* n[] = {"OU", "VP", "VE"};
  return n[c];
}

}  // namespace

extern "C" {

almc_onnx_config almc_onnx_config_default(void) {
  // Cannot fail: plain assignments.
  almc_onnx_config c{};
  c.struct_size = sizeof(almc_onnx_config);
  c.x_input = nullptr;
  c.level_input = nullptr;
  c.output = ALMC_OUTPUT_SCORE;
  c.convention = ALMC_CONV_OU;
  c.level = ALMC_LEVEL_T;
  c.alpha_bar_table = nullptr;
  c.alpha_bar_len = 0;
  c.allow_tf32 = 0;
  c.max_batch = 0;
  return c;
}

almc_status almc_score_create_onnx(almc_context_t ctx, const char* path, const almc_onnx_config* config,
                                   almc_score_t* out) {
  if (!ctx) return ALMC_ERR_NULL_POINTER;
  return guarded(ctx, [&]() -> almc_status {
    if (!path || !out) throw Error(ALMC_ERR_NULL_POINTER, "almc_score_create_onnx: path and out are required");
    *out = nullptr;
    almc_onnx_config def = almc_onnx_config_default();  // a NULL config means the defaults
    ExecConfig ec = lower_config(ctx, config ? config : &def);
    auto s = std::make_unique<OnnxScore>();
    s->ctx = ctx;
    s->exec = std::make_unique<Executor>(almc::onnx::load_graph(path), ec);
    const int64_t d = s->exec->d();
    std::string desc = std::string("ONNX network '") + path + "' (" + output_name(ec.output) + ", " +
                       conv_name(ec.convention) + ", x '" + s->exec->x_name() + "'" +
                       (s->exec->level_name().empty() ? "" : ", level '" + s->exec->level_name() + "'") + ")";
    if (ec.level == ALMC_LEVEL_INDEX)
      almc::context_log(ctx, ALMC_LOG_INFO, desc + ": the step index fed to the network is the one whose alpha_bar is "
                                                   "nearest to e^{-2t}");
    // Graph-safe: the level is read from level_dev on the device, and with max_batch the plan
    // exists before any capture, so no call allocates.
    unsigned flags = 0;
    if (ec.backend != ALMC_BACKEND_CUDA || ec.max_batch > 0) flags |= ALMC_SCORE_GRAPH_SAFE;
    else
      almc::context_log(ctx, ALMC_LOG_INFO, desc + ": set max_batch to let the sampler capture the network into CUDA graphs");
    OnnxScore* raw = s.release();
    const almc_status st =
        almc_score_create_callback_owned(ctx, d, score_trampoline, raw, flags, destroy_score, desc.c_str(), out);
    if (st == ALMC_OK) (*out)->set_row0 = set_score_row0;
    return st;
  });
}

almc_status almc_onnx_eval_raw(almc_context_t ctx, const char* path, const almc_onnx_config* config, const float* x,
                               int64_t n, int64_t d, float level, float* out) {
  if (!ctx) return ALMC_ERR_NULL_POINTER;
  return guarded(ctx, [&]() -> almc_status {
    if (!path || !x || !out) throw Error(ALMC_ERR_NULL_POINTER, "almc_onnx_eval_raw: path, x and out are required");
    if (n <= 0 || d <= 0) throw Error(ALMC_ERR_INVALID_ARGUMENT, "almc_onnx_eval_raw: n and d must be positive");
    if (!std::isfinite(level)) throw Error(ALMC_ERR_INVALID_ARGUMENT, "almc_onnx_eval_raw: the level must be finite");
    almc_onnx_config def = almc_onnx_config_default();
    ExecConfig ec = lower_config(ctx, config ? config : &def);
    ec.max_batch = n;
    if (ec.level == ALMC_LEVEL_INDEX) ec.level = ALMC_LEVEL_T;  // the raw level is fed as given
    Executor ex(almc::onnx::load_graph(path), ec);
    if (ex.d() != d)
      throw Error(ALMC_ERR_INVALID_ARGUMENT, "x has " + std::to_string(d) + " values per sample, the model's input '" +
                                                 ex.x_name() + "' has " + std::to_string(ex.d()));
    if (ec.backend == ALMC_BACKEND_CUDA) {
#ifdef ALMC_HAVE_CUDA
      const size_t bytes = size_t(n * d) * sizeof(float);
      float* dx = static_cast<float*>(almc::onnx::cuda::device_alloc(bytes));
      float* dy = nullptr;
      try {
        dy = static_cast<float*>(almc::onnx::cuda::device_alloc(bytes));
        almc::onnx::cuda::copy_to_device(dx, x, bytes);
        void* stream = almc::context_stream(ctx);
        ex.run_raw(dx, dy, n, level, stream);
        almc::onnx::cuda::synchronize(stream);
        almc::onnx::cuda::copy_to_host(out, dy, bytes);
      } catch (...) {
        almc::onnx::cuda::device_free(dx);
        almc::onnx::cuda::device_free(dy);
        throw;
      }
      almc::onnx::cuda::device_free(dx);
      almc::onnx::cuda::device_free(dy);
#endif
    } else {
      ex.run_raw(x, out, n, level, nullptr);
    }
    return ALMC_OK;
  });
}

}  // extern "C"
