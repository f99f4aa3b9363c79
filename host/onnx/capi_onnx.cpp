// C API of the ONNX score networks: almc_onnx_config_default, almc_score_create_onnx,
// almc_onnx_eval_raw. The score is a callback score that owns its executor.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <new>
#include <string>

#include "host/capi/struct_sizes.hpp"
#include "host/core/capi_internal.hpp"
#include "host/core/error.hpp"
#include "host/core/objects.hpp"
#include "host/onnx/capi_onnx.hpp"
#include "host/onnx/executor.hpp"

namespace {

using almc::onnx::Error;
using almc::onnx::ExecConfig;
using almc::onnx::Executor;

struct OnnxScore {
  std::unique_ptr<Executor> exec;
  almc_context_t ctx = nullptr;  // for logging a failed call (the engine reports only the status)
  almc::onnx::Bindings bindings;
  ExecConfig cfg;
};

const char* dtype_name(almc::onnx::DType t) {
  return t == almc::onnx::DType::Float ? "float" : t == almc::onnx::DType::Int64 ? "int64" : "bool";
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + (dims[i] < 0 ? std::string("?") : std::to_string(dims[i]));
  return s + "]";
}

// Values per sample of a declared tensor (-1 when a dim after the first is free).
int64_t declared_per_sample(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) {
    if (dims[i] < 0) return -1;
    n *= dims[i];
  }
  return n;
}

// The edits a configuration makes to the graph before planning: further inputs become constants,
// and an output channel slice becomes a Slice node after the output.
void edit_graph(almc::onnx::Graph& g, const almc_onnx_config* c) {
  using almc::onnx::DType;
  using almc::onnx::HostTensor;
  if (!c) return;
  if (c->n_inputs < 0 || (c->n_inputs > 0 && !c->inputs))
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "config.inputs must hold n_inputs entries");
  // x's input (config.x_input, else the first input not given a value), for the batch below.
  std::string x_name = c->x_input ? c->x_input : "";
  for (size_t i = 0; x_name.empty() && i < g.inputs.size(); ++i) {
    bool given = false;
    for (int64_t k = 0; k < c->n_inputs && c->inputs; ++k) given = given || (c->inputs[k].name && g.inputs[i].name == c->inputs[k].name);
    if (!given) x_name = g.inputs[i].name;
  }
  const auto x_it = std::find_if(g.inputs.begin(), g.inputs.end(), [&](const auto& v) { return v.name == x_name; });
  const std::string batch_name = x_it != g.inputs.end() && !x_it->dim_names.empty() && x_it->dims[0] < 0 ? x_it->dim_names[0] : "";
  std::vector<almc::onnx::Node> expand;  // nodes that give batch inputs their batch
  for (int64_t k = 0; k < c->n_inputs; ++k) {
    const almc_onnx_input& in = c->inputs[k];
    if (!in.name || !in.values || in.ndim < 0 || in.ndim > 8 || (in.ndim > 0 && !in.shape))
      throw Error(ALMC_ERR_INVALID_ARGUMENT, "config.inputs[" + std::to_string(k) + "] needs a name, values and a shape");
    auto it = std::find_if(g.inputs.begin(), g.inputs.end(), [&](const auto& v) { return v.name == in.name; });
    if (it == g.inputs.end())
      throw Error(ALMC_ERR_INVALID_ARGUMENT, std::string("the model has no input named '") + in.name +
                                                 "' (config.inputs); its inputs: " + almc::onnx::describe_inputs(g));
    if (it->dtype == DType::Bool) throw Error(ALMC_ERR_UNSUPPORTED, std::string("input '") + in.name + "' is bool; only float and integer inputs can be given");
    auto t = std::make_shared<HostTensor>();
    t->dtype = it->dtype;
    if (in.ndim == 0) {
      for (int64_t dim : it->dims) t->shape.push_back(dim < 0 ? 1 : dim);
    } else {
      t->shape.assign(in.shape, in.shape + in.ndim);
      bool ok = t->shape.size() == it->dims.size();
      for (size_t i = 0; ok && i < t->shape.size(); ++i)
        ok = t->shape[i] > 0 && (it->dims[i] < 0 || it->dims[i] == t->shape[i]);
      if (!ok) {
        std::string got;
        for (int64_t v : t->shape) got += (got.empty() ? "" : ", ") + std::to_string(v);
        throw Error(ALMC_ERR_INVALID_ARGUMENT, std::string("the value given for input '") + in.name + "' has shape [" + got +
                                                   "]; the input is " + dims_text(it->dims) + " (? : any size, 1 broadcasts)");
      }
    }
    int64_t count = 1;
    for (int64_t v : t->shape) {
      if (v > (int64_t(1) << 28) / count) throw Error(ALMC_ERR_INVALID_ARGUMENT, std::string("input '") + in.name + "' is too large");
      count *= v;
    }
    t->v.resize(size_t(count));
    for (int64_t i = 0; i < count; ++i) {
      const double v = in.values[in.ndim == 0 ? 0 : i];
      if (!std::isfinite(v)) throw Error(ALMC_ERR_INVALID_ARGUMENT, std::string("input '") + in.name + "' has a non-finite value");
      t->v[size_t(i)] = it->dtype == DType::Int64 ? std::nearbyint(v) : v;
    }
    // An input whose first dimension is x's batch (the same name) given one sample's value (a
    // conditioning image, a class label): that value for every sample, an Expand to x's batch
    // (the model may concatenate it with x, which broadcasting alone would not allow).
    const bool batch_input = !batch_name.empty() && !it->dims.empty() && it->dims[0] < 0 && it->dim_names.size() == it->dims.size() &&
                             it->dim_names[0] == batch_name && !t->shape.empty();
    if (batch_input && t->shape[0] != 1)
      throw Error(ALMC_ERR_INVALID_ARGUMENT, std::string("the value given for input '") + in.name + "' holds " +
                                                 std::to_string(t->shape[0]) + " samples along the batch dimension '" + batch_name +
                                                 "' it shares with x; give one sample's value (first dimension 1): it is used for every sample");
    if (batch_input) {
      using almc::onnx::Node;
      const std::string base = std::string(in.name) + "/almc_", value = base + "value";
      g.initializers[value] = t;
      auto ints = [&](const std::string& name, std::vector<int64_t> v) {
        auto c = std::make_shared<HostTensor>();
        c->dtype = DType::Int64;
        c->shape = {int64_t(v.size())};
        for (int64_t e : v) c->v.push_back(double(e));
        g.initializers[name] = c;
        return name;
      };
      Node shape;  // x's batch
      shape.name = base + "batch", shape.op = "Shape", shape.inputs = {x_name}, shape.outputs = {base + "batch"};
      shape.attrs["start"].i = 0;
      shape.attrs["end"].i = 1;
      Node cat;  // [batch, the value's other dimensions]
      cat.name = base + "shape", cat.op = "Concat", cat.outputs = {base + "shape"};
      cat.inputs = {base + "batch", ints(base + "dims", std::vector<int64_t>(t->shape.begin() + 1, t->shape.end()))};
      cat.attrs["axis"].i = 0;
      Node ex;
      ex.name = base + "expand", ex.op = "Expand", ex.inputs = {value, t->shape.size() > 1 ? base + "shape" : base + "batch"};
      ex.outputs = {in.name};
      expand.push_back(shape);
      if (t->shape.size() > 1) expand.push_back(cat);
      expand.push_back(ex);
    } else {
      g.initializers[in.name] = t;
    }
    g.inputs.erase(it);
  }
  g.nodes.insert(g.nodes.begin(), expand.begin(), expand.end());
  const int64_t b = c->output_channel_begin, e = c->output_channel_end;
  if (b == 0 && e == 0) return;
  if (b < 0 || e <= b) throw Error(ALMC_ERR_INVALID_ARGUMENT, "the output channel slice must have 0 <= begin < end");
  auto& out = g.outputs[0];
  // An output whose shape the model does not declare (dims empty) is checked by the planner's
  // Slice on axis 1 instead, and by the output-size check after it.
  const bool declared = !out.dims.empty();
  if (declared && out.dims.size() < 2)
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "an output channel slice needs an output with a channel axis (rank >= 2)");
  if (declared && out.dims[1] >= 0 && e > out.dims[1])
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "the output '" + out.name + "' " + dims_text(out.dims) + " has " +
                                               std::to_string(out.dims[1]) + " channels; the slice ends at " + std::to_string(e));
  auto int_const = [&](const std::string& name, int64_t v) {
    auto t = std::make_shared<HostTensor>();
    t->dtype = DType::Int64;
    t->shape = {1};
    t->v = {double(v)};
    g.initializers[name] = t;
    return name;
  };
  almc::onnx::Node n;
  n.name = "almc_output_slice";
  n.op = "Slice";
  n.inputs = {out.name, int_const("almc_output_slice_begin", b), int_const("almc_output_slice_end", e),
              int_const("almc_output_slice_axis", 1)};
  n.outputs = {"almc_output_sliced"};
  g.nodes.push_back(n);
  out.name = n.outputs[0];
  if (declared) out.dims[1] = e - b;
}

// Which graph inputs x and the level bind to, checked before planning so that a wrong name, a
// level fed with the wrong kind or inputs in an unexpected order get a message that says what to set.
almc::onnx::Bindings bind_inputs(const almc::onnx::Graph& g, const ExecConfig& e) {
  using almc::onnx::DType;
  using almc::onnx::ValueInfo;
  almc::onnx::Bindings b;
  b.inputs = almc::onnx::describe_inputs(g);
  auto find = [&](const std::string& name) -> const ValueInfo* {
    for (const auto& v : g.inputs)
      if (v.name == name) return &v;
    return nullptr;
  };
  if (g.inputs.empty()) throw Error(ALMC_ERR_UNSUPPORTED, "the model has no runtime input");
  if (!e.x_input.empty() && !find(e.x_input))
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "the model has no input named '" + e.x_input + "' (config.x_input); its inputs: " + b.inputs);
  if (e.level != ALMC_LEVEL_NONE && !e.level_input.empty() && !find(e.level_input))
    throw Error(ALMC_ERR_INVALID_ARGUMENT,
                "the model has no input named '" + e.level_input + "' (config.level_input); its inputs: " + b.inputs);
  const ValueInfo* x = e.x_input.empty() ? &g.inputs[0] : find(e.x_input);
  const ValueInfo* lv = nullptr;
  if (e.level != ALMC_LEVEL_NONE) {
    if (!e.level_input.empty()) {
      lv = find(e.level_input);
    } else {
      for (const auto& v : g.inputs)
        if (v.name != x->name) {
          lv = &v;
          break;
        }
    }
  }
  // x bound to something that looks like a level (one value per sample, or an integer) while
  // another input looks like data: the inputs are probably in the other order.
  if (e.x_input.empty() && (declared_per_sample(x->dims) == 1 || x->dtype != DType::Float))
    for (const auto& v : g.inputs)
      if (&v != x && v.dtype == DType::Float && declared_per_sample(v.dims) != 1)
        throw Error(ALMC_ERR_INVALID_ARGUMENT, "the first input '" + x->name + "' " + dtype_name(x->dtype) + " " +
                                                   dims_text(x->dims) + " looks like the level and '" + v.name +
                                                   "' like x: set config.x_input = \"" + v.name + "\" (inputs: " + b.inputs + ")");
  if (x->dtype != DType::Float)
    throw Error(ALMC_ERR_UNSUPPORTED, "input x '" + x->name + "' is " + dtype_name(x->dtype) + "; x must be float");
  if (lv && lv->dtype == DType::Int64 && e.level != ALMC_LEVEL_INDEX)
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "the level input '" + lv->name +
                                               "' is int64, a discrete timestep index: set level = ALMC_LEVEL_INDEX with "
                                               "the model's alpha_bar table (config.alpha_bar_table)");
  for (const auto& v : g.inputs)
    if (v.name != x->name && !(lv && v.name == lv->name))
      throw Error(ALMC_ERR_INVALID_ARGUMENT, "input '" + v.name + "' " + dtype_name(v.dtype) + " " + dims_text(v.dims) +
                                                 " is neither x nor the level: give its value (config.inputs)");
  // A learned-variance output (2C channels for C-channel x) needs a slice.
  const auto& out = g.outputs[0];
  const int64_t px = declared_per_sample(x->dims), po = declared_per_sample(out.dims);
  if (px > 0 && po == 2 * px && out.dims.size() >= 2 && out.dims[1] > 0 && out.dims[1] % 2 == 0)
    throw Error(ALMC_ERR_UNSUPPORTED, "the output '" + out.name + "' " + dims_text(out.dims) + " has twice the values of x '" +
                                          x->name + "' " + dims_text(x->dims) + almc::onnx::learned_variance_advice(out.dims[1] / 2));
  b.x = x->name;
  if (lv) b.level = lv->name;
  return b;
}

// The executor runs on its context's backend and stream; the engine calls the score on that
// stream, and anything else (a score used with another context's sampler) is refused.
void check_stream(const Executor& ex, void* stream) {
  if (stream != ex.backend().stream())
    throw Error(ALMC_ERR_WRONG_STATE, "the ONNX network was called on a stream other than its context's");
}

// The engine calls this score directly (C++ to C++), so an executor error, an almc::Error with
// the engine's status (a CUDA failure, memory, a wrong state), propagates to the C API as the
// engine's own errors do. Anything else is logged and reported as a failed callback.
int score_trampoline(const float* x, float* score, int64_t n, int64_t d, const almc_level* /*level*/,
                     const almc_level_device* level_dev, void* stream, void* user_data) {
  auto* s = static_cast<OnnxScore*>(user_data);
  try {
    if (d != s->exec->d()) throw Error(ALMC_ERR_INVALID_ARGUMENT, "dimension mismatch");
    check_stream(*s->exec, stream);
    s->exec->run_score(x, score, n, level_dev);
    return 0;
  } catch (const almc::Error& e) {
    almc::fail(e.status(), "ONNX score: ", e.what());
  } catch (const std::bad_alloc&) {
    almc::fail(ALMC_ERR_OUT_OF_MEMORY, "ONNX score: out of host memory");
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
void prepare_score(void* p, int64_t max_rows, void* stream) {
  Executor& ex = *static_cast<OnnxScore*>(p)->exec;
  check_stream(ex, stream);
  ex.prepare(max_rows);
}

// The caller's config (NULL: the defaults) in this library's layout: an older layout's missing
// fields take their defaults (struct_size, see almc.h).
almc_onnx_config full_config(const almc_onnx_config* c) {
  if (!c) return almc_onnx_config_default();
  const std::string why = almc::struct_size_problem<almc_onnx_config>(c->struct_size, "config");
  if (!why.empty()) throw Error(ALMC_ERR_STRUCT_SIZE, why);
  return almc::widen_struct(c, almc_onnx_config_default());
}

ExecConfig lower_config(almc_context_t ctx, const almc_onnx_config* c) {
  ExecConfig e;
  if (!c) return e;
  if (almc::raw_enum(c->output) < ALMC_OUTPUT_SCORE || almc::raw_enum(c->output) > ALMC_OUTPUT_X0) throw Error(ALMC_ERR_INVALID_ARGUMENT, "unknown output kind");
  if (almc::raw_enum(c->convention) < ALMC_CONV_OU || almc::raw_enum(c->convention) > ALMC_CONV_VE) throw Error(ALMC_ERR_INVALID_ARGUMENT, "unknown convention");
  if (almc::raw_enum(c->level) < ALMC_LEVEL_T || almc::raw_enum(c->level) > ALMC_LEVEL_NONE) throw Error(ALMC_ERR_INVALID_ARGUMENT, "unknown level kind");
  if (c->max_batch < 0) throw Error(ALMC_ERR_INVALID_ARGUMENT, "max_batch must be >= 0");
  if (c->level == ALMC_LEVEL_INDEX) {
    if (!c->alpha_bar_table || c->alpha_bar_len <= 0)
      throw Error(ALMC_ERR_INVALID_ARGUMENT, "level = ALMC_LEVEL_INDEX needs alpha_bar_table and alpha_bar_len > 0");
    if (c->alpha_bar_len > (int64_t(1) << 24)) throw Error(ALMC_ERR_INVALID_ARGUMENT, "alpha_bar_len too large");
    e.alpha_bar_table.assign(c->alpha_bar_table, c->alpha_bar_table + c->alpha_bar_len);
    // The index fed is the one whose alpha_bar is nearest the level's: a table in the other order
    // (or of one entry) would feed a wrong step at every level without a word.
    if (c->alpha_bar_len < 2)
      throw Error(ALMC_ERR_INVALID_ARGUMENT, "the alpha_bar table has one entry: a table of the training steps' alpha_bar "
                                             "(at least 2, decreasing) is needed to map levels to step indices");
    for (int64_t i = 0; i < c->alpha_bar_len; ++i) {
      const float v = c->alpha_bar_table[i];
      if (!(v > 0.f && v <= 1.f))
        throw Error(ALMC_ERR_INVALID_ARGUMENT, "alpha_bar[" + std::to_string(i) + "] = " + std::to_string(v) +
                                                   " must lie in (0, 1]");
      if (i > 0 && v > c->alpha_bar_table[i - 1])
        throw Error(ALMC_ERR_INVALID_ARGUMENT, "the alpha_bar table must decrease with the step index (alpha_bar[" +
                                                   std::to_string(i) + "] = " + std::to_string(v) + " > alpha_bar[" +
                                                   std::to_string(i - 1) + "] = " + std::to_string(c->alpha_bar_table[i - 1]) +
                                                   "): was it saved in reverse?");
    }
  }
  if (!(c->beta_min >= 0) || !(c->beta_max >= 0) || !std::isfinite(c->beta_max) || !(c->level_scale >= 0) ||
      !std::isfinite(c->level_scale))
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "beta_min, beta_max and level_scale must be finite and >= 0");
  if (c->beta_max > 0) {
    if (c->convention != ALMC_CONV_VP || c->level != ALMC_LEVEL_T)
      throw Error(ALMC_ERR_INVALID_ARGUMENT, "beta_min/beta_max describe a VP network fed its time: set convention = "
                                             "ALMC_CONV_VP and level = ALMC_LEVEL_T");
    if (!(c->beta_max > c->beta_min) && !(c->beta_max == c->beta_min && c->beta_min > 0))
      throw Error(ALMC_ERR_INVALID_ARGUMENT, "beta_max must be >= beta_min > 0 (or > beta_min = 0)");
    e.vp_sde = true;
    e.beta_min = float(c->beta_min);
    e.beta_max = float(c->beta_max);
  } else if (c->beta_min > 0) {
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "beta_min needs beta_max");
  }
  e.level_scale = c->level_scale > 0 ? float(c->level_scale) : 1.f;
  e.output = c->output;
  e.convention = c->convention;
  e.level = c->level;
  if (almc::raw_enum(c->precision) < ALMC_PRECISION_FP32 || almc::raw_enum(c->precision) > ALMC_PRECISION_BF16)
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "unknown precision " + std::to_string(almc::raw_enum(c->precision)) +
                                               " (ALMC_PRECISION_FP32, _TF32 or _BF16)");
  if (c->precision == ALMC_PRECISION_BF16 && c->allow_tf32)
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "precision BF16 and allow_tf32 both set: choose one");
  e.allow_tf32 = c->allow_tf32 != 0 || c->precision == ALMC_PRECISION_TF32;
  e.precision = c->precision;
  e.max_batch = c->max_batch;
  if (c->x_input) e.x_input = c->x_input;
  if (c->level_input) e.level_input = c->level_input;
  if (c->x_rank < 0 || c->x_rank > 7 || (c->x_rank > 0 && !c->x_shape))
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "x_rank must be 0 to 7, with x_shape holding that many dimensions");
  for (int64_t i = 0; i < c->x_rank; ++i) {
    if (c->x_shape[i] <= 0 || c->x_shape[i] > (int64_t(1) << 31))
      throw Error(ALMC_ERR_INVALID_ARGUMENT, "x_shape[" + std::to_string(i) + "] = " + std::to_string(c->x_shape[i]) +
                                                 " is not a dimension (1 to 2^31)");
    e.x_shape.push_back(c->x_shape[i]);
  }
  return e;
}

template <class F>
almc_status guarded(almc_context_t ctx, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    return almc::set_context_error(ctx, e.status(), e.what());
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

namespace almc::onnx {

std::string describe_inputs(const Graph& g) {
  std::string s;
  for (const auto& v : g.inputs) s += (s.empty() ? "'" : ", '") + v.name + "' " + dtype_name(v.dtype) + " " + dims_text(v.dims);
  return s;
}

bool score_bindings(almc_score_t score, Bindings* out) {
  if (!score || score->fn != score_trampoline || !score->user_data) return false;
  if (out) *out = static_cast<const OnnxScore*>(score->user_data)->bindings;
  return true;
}

bool score_level_value(almc_score_t score, double t, double* value) {
  if (!score || score->fn != score_trampoline || !score->user_data) return false;
  const ExecConfig& c = static_cast<const OnnxScore*>(score->user_data)->cfg;
  if (c.level == ALMC_LEVEL_NONE) return false;
  const AdapterParams a = adapter_params(c, c.alpha_bar_table.data());
  const double sigma2 = std::expm1(2.0 * t);
  *value = adapter_level_value(a, float(t), float(std::sqrt(sigma2)), float(0.5 * std::log(sigma2)), float(std::exp(-2.0 * t)));
  return true;
}

}  // namespace almc::onnx

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
  c.output_channel_begin = 0;
  c.output_channel_end = 0;
  c.inputs = nullptr;
  c.n_inputs = 0;
  c.beta_min = 0;
  c.beta_max = 0;
  c.level_scale = 0;
  c.precision = ALMC_PRECISION_FP32;
  return c;
}

almc_status almc_score_create_onnx(almc_context_t ctx, const char* path, const almc_onnx_config* config,
                                   almc_score_t* out) {
  if (!ctx) return ALMC_ERR_NULL_POINTER;
  return guarded(ctx, [&]() -> almc_status {
    if (!path || !out) throw Error(ALMC_ERR_NULL_POINTER, "almc_score_create_onnx: path and out are required");
    *out = nullptr;
    const almc_onnx_config cfg = full_config(config);
    ExecConfig ec = lower_config(ctx, &cfg);
    auto s = std::make_unique<OnnxScore>();
    s->ctx = ctx;
    s->cfg = ec;
    almc::onnx::Graph graph = almc::onnx::load_graph(path);
    edit_graph(graph, &cfg);
    s->bindings = bind_inputs(graph, ec);
    s->exec = std::make_unique<Executor>(std::move(graph), ec, *ctx->backend);
    const int64_t d = s->exec->d();
    almc::context_log(ctx, ALMC_LOG_INFO, std::string("ONNX network '") + path + "': x <- input '" + s->bindings.x + "'" +
                                              (s->bindings.level.empty() ? ", no level input" : ", level <- input '" + s->bindings.level + "'") +
                                              " (inputs: " + s->bindings.inputs + ")");
    std::string desc = std::string("ONNX network '") + path + "' (" + output_name(ec.output) + ", " +
                       conv_name(ec.convention) + ", x '" + s->exec->x_name() + "'" +
                       (s->exec->level_name().empty() ? "" : ", level '" + s->exec->level_name() + "'") + ")";
    if (ec.level == ALMC_LEVEL_INDEX)
      almc::context_log(ctx, ALMC_LOG_INFO, desc + ": the step index fed to the network is the one whose alpha_bar is "
                                                   "nearest to e^{-2t}");
    // Graph-safe: the level is read from level_dev on the device, and once planned for the largest
    // batch no call allocates. With max_batch the plan exists now; without it the sampler plans
    // for its own chain count through `prepare` before it captures, so a whole step with the
    // network is one graph launch by default.
    unsigned flags = 0;
    if (!ctx->backend->graphs_supported() || ec.max_batch > 0) flags |= ALMC_SCORE_GRAPH_SAFE;
    OnnxScore* raw = s.release();
    const almc_status st =
        almc_score_create_callback_owned(ctx, d, score_trampoline, raw, flags, destroy_score, desc.c_str(), out);
    if (st == ALMC_OK) {
      (*out)->set_row0 = set_score_row0;
      if (!(flags & ALMC_SCORE_GRAPH_SAFE)) (*out)->prepare = prepare_score;
    }
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
    const almc_onnx_config cfg = full_config(config);
    ExecConfig ec = lower_config(ctx, &cfg);
    ec.max_batch = n;
    almc::onnx::Graph graph = almc::onnx::load_graph(path);
    edit_graph(graph, &cfg);
    ExecConfig raw = ec;  // the raw level is fed as given, whatever the input's dtype
    if (raw.level != ALMC_LEVEL_NONE) raw.level = ALMC_LEVEL_INDEX;
    bind_inputs(graph, raw);
    if (ec.level == ALMC_LEVEL_INDEX) ec.level = ALMC_LEVEL_T;
    almc::Backend& be = *ctx->backend;
    Executor ex(std::move(graph), ec, be);
    if (ex.d() != d)
      throw Error(ALMC_ERR_INVALID_ARGUMENT, "x has " + std::to_string(d) + " values per sample, the model's input '" +
                                                 ex.x_name() + "' has " + std::to_string(ex.d()));
    // x and out through backend memory (a copy on any backend: the caller's arrays are host).
    const size_t bytes = size_t(n * d) * sizeof(float);
    almc::Buffer dx(&be, bytes), dy(&be, bytes);
    dx.upload(x, bytes);
    ex.run_raw(dx.f(), dy.f(), n, level);
    be.sync();
    dy.download(out, bytes);
    return ALMC_OK;
  });
}

}  // extern "C"
