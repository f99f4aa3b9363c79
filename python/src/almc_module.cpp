// almc._almc: a thin nanobind layer over the C API (include/almc/almc.h). Handles become Python
// objects that own them (shared_ptr keeps a context alive while its scores, operators and samplers
// live); Python callables become C callbacks that take the GIL, capture a raised exception and
// return non-zero so that the engine stops; run() releases the GIL and re-raises what a callback
// raised (with its traceback). Argument checking, shapes and array conversion live in Python.
#include <almc/almc.h>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace nb = nanobind;

namespace {

// A failed C call: translated into almc.Error (or its subclass for the status) in Python.
struct Failure {
  almc_status status;
  std::string message;
};

[[noreturn]] void fail(almc_status st, const char* message) {
  throw Failure{st, (message && *message) ? std::string(message) : std::string(almc_status_string(st))};
}

// Host float32 arrays as the C API takes them: C-contiguous, on the CPU. Python converts first.
using HostIn = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;
using HostOut = nb::ndarray<float, nb::c_contig, nb::device::cpu>;

void require_size(const char* what, size_t got, int64_t want) {
  if (static_cast<int64_t>(got) != want)
    fail(ALMC_ERR_INVALID_ARGUMENT,
         (std::string(what) + " has " + std::to_string(got) + " values, expected " + std::to_string(want)).c_str());
}

// An exception raised by Python code inside a callback, kept until run() can re-raise it.
struct Pending {
  std::unique_ptr<nb::python_error> error;
  void keep(nb::python_error& e) {
    if (!error) error = std::make_unique<nb::python_error>(std::move(e));
  }
  void keep_current() {  // the Python error indicator is set
    nb::python_error e;
    keep(e);
  }
  void clear() { error.reset(); }
  void rethrow() {
    if (error) {
      std::unique_ptr<nb::python_error> e = std::move(error);
      throw nb::python_error(*e);
    }
  }
};

// Runs a Python call from a C callback: takes the GIL, turns any exception into a kept error and
// a non-zero return.
template <class F>
int guarded_call(Pending& pending, F&& body) noexcept {
  nb::gil_scoped_acquire gil;
  try {
    body();
    return 0;
  } catch (nb::python_error& e) {
    pending.keep(e);
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    pending.keep_current();
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception in an almc callback");
    pending.keep_current();
  }
  return 1;
}

// ------------------------------------------------------------------ snapshot files

struct Snapshot {
  almc_snapshot_t h = nullptr;
  Snapshot() {
    if (almc_snapshot_create(&h) != ALMC_OK) fail(ALMC_ERR_OUT_OF_MEMORY, "out of memory");
  }
  ~Snapshot() { almc_snapshot_destroy(h); }
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  void check(almc_status st) const {
    if (st != ALMC_OK) fail(st, almc_snapshot_last_error(h));
  }
  std::pair<nb::bytes, int64_t> state() const {
    const void* p = nullptr;
    size_t bytes = 0;
    int64_t step = 0;
    check(almc_snapshot_state(h, &p, &bytes, &step, nullptr));
    return {nb::bytes(static_cast<const char*>(p), bytes), step};
  }
};

// ------------------------------------------------------------------ context

struct Context {
  almc_context_t h = nullptr;
  almc_backend backend = ALMC_BACKEND_CPU;
  int device = 0;
  Context(int backend_req, int device_req, int threads) {
    almc_context_config c = almc_context_config_default();
    c.backend = static_cast<almc_backend>(backend_req);
    c.device = device_req;
    c.n_threads = threads;
    const almc_status st = almc_context_create(&c, &h);
    if (st != ALMC_OK) {
      const std::string why = st == ALMC_ERR_NO_DEVICE ? "the CUDA backend was asked for but no CUDA device is usable"
                                                       : std::string("cannot create the almc context");
      fail(st, (why + " (" + almc_status_string(st) + ")").c_str());
    }
    almc_context_backend(h, &backend);
    device = device_req;
  }
  ~Context() {
    if (h) almc_context_destroy(h);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  [[noreturn]] void raise(almc_status st) const { fail(st, almc_context_last_error(h)); }
  bool cuda() const { return backend == ALMC_BACKEND_CUDA; }
};
using ContextPtr = std::shared_ptr<Context>;

// Python sees a buffer of the engine as a NumPy view on the CPU backend (valid during the call
// only; the Python layer marks inputs read-only), or as its address (an int) on CUDA, where the
// Python layer wraps it for PyTorch or __cuda_array_interface__ consumers without a copy.
nb::object view(const Context& ctx, const float* p, int64_t rows, int64_t cols) {
  if (ctx.cuda()) return nb::int_(reinterpret_cast<uintptr_t>(p));
  const size_t shape[2] = {static_cast<size_t>(rows), static_cast<size_t>(cols)};
  // rv_policy::reference: a view of the engine's memory (the default would copy an owner-less array).
  return nb::cast(nb::ndarray<nb::numpy, float, nb::ndim<2>>(const_cast<float*>(p), 2, shape, nb::handle()),
                  nb::rv_policy::reference);
}

nb::object stream_object(void* stream) { return nb::int_(reinterpret_cast<uintptr_t>(stream)); }

// ------------------------------------------------------------------ scores

// Python callables held by library handles, so that they can all be dropped at interpreter exit
// (atexit, in almc/__init__.py): a callback's closure usually reaches a module-level sampler, and
// module globals are torn down after nanobind checks for leaked instances. Guarded by the GIL.
struct HeldCallables;
std::set<HeldCallables*>& held_callables() {
  static std::set<HeldCallables*> all;
  return all;
}
struct HeldCallables {
  HeldCallables() { held_callables().insert(this); }
  virtual ~HeldCallables() { held_callables().erase(this); }
  HeldCallables(const HeldCallables&) = delete;
  HeldCallables& operator=(const HeldCallables&) = delete;
  virtual void release() = 0;
};

struct ScoreCallback : HeldCallables {
  ContextPtr ctx;
  nb::object fn;  // fn(x, out, n, t, stream)
  Pending pending;
  void release() override { fn = nb::none(); }
};

int score_trampoline(const float* x, float* score, int64_t n, int64_t d, const almc_level* level,
                     const almc_level_device*, void* stream, void* user_data) {
  auto* cb = static_cast<ScoreCallback*>(user_data);
  return guarded_call(cb->pending, [&] {
    cb->fn(view(*cb->ctx, x, n, d), view(*cb->ctx, score, n, d), n, level->t, stream_object(stream));
  });
}

struct Score {
  ContextPtr ctx;
  almc_score_t h = nullptr;
  std::unique_ptr<ScoreCallback> callback;
  explicit Score(ContextPtr c) : ctx(std::move(c)) {}
  ~Score() {
    if (h) almc_score_destroy(h);
  }
  Score(const Score&) = delete;
  Score& operator=(const Score&) = delete;
  int64_t dim() const {
    int64_t d = 0;
    almc_score_dim(h, &d);
    return d;
  }
  void evaluate(HostIn x, HostOut out, int64_t n, double t) {
    const int64_t d = dim();
    require_size("x", x.size(), n * d);
    require_size("out", out.size(), n * d);
    if (callback) callback->pending.clear();
    const almc_status st = almc_score_evaluate(h, x.data(), out.data(), n, t);
    if (callback) callback->pending.rethrow();
    if (st != ALMC_OK) fail(st, almc_score_last_error(h));
  }
};
using ScorePtr = std::shared_ptr<Score>;

template <class Create>
ScorePtr make_score(const ContextPtr& ctx, Create&& create) {
  auto s = std::make_shared<Score>(ctx);
  const almc_status st = create(&s->h);
  if (st != ALMC_OK) ctx->raise(st);
  return s;
}

// ------------------------------------------------------------------ operators

struct LinearCallback : HeldCallables {
  ContextPtr ctx;
  nb::object forward, adjoint;  // f(in, out, n, stream)
  int64_t m = 0, d = 0;
  Pending pending;
  void release() override { forward = adjoint = nb::none(); }
};

int linear_forward(const float* in, float* out, int64_t n, int64_t, int64_t, void* stream, void* user_data) {
  auto* cb = static_cast<LinearCallback*>(user_data);
  return guarded_call(cb->pending, [&] {
    cb->forward(view(*cb->ctx, in, n, cb->d), view(*cb->ctx, out, n, cb->m), n, stream_object(stream));
  });
}
int linear_adjoint(const float* in, float* out, int64_t n, int64_t, int64_t, void* stream, void* user_data) {
  auto* cb = static_cast<LinearCallback*>(user_data);
  return guarded_call(cb->pending, [&] {
    cb->adjoint(view(*cb->ctx, in, n, cb->m), view(*cb->ctx, out, n, cb->d), n, stream_object(stream));
  });
}

struct Operator {
  ContextPtr ctx;
  almc_operator_t h = nullptr;
  std::unique_ptr<LinearCallback> callback;
  explicit Operator(ContextPtr c) : ctx(std::move(c)) {}
  ~Operator() {
    if (h) almc_operator_destroy(h);
  }
  Operator(const Operator&) = delete;
  Operator& operator=(const Operator&) = delete;
  std::pair<int64_t, int64_t> dims() const {
    int64_t m = 0, d = 0;
    almc_operator_dims(h, &m, &d);
    return {m, d};
  }
  double norm() {
    double v = -1;
    const almc_status st = almc_operator_norm(h, &v);
    if (st != ALMC_OK) fail(st, almc_operator_last_error(h));
    return v;
  }
  void apply(bool adjoint, HostIn in, HostOut out, int64_t n, int64_t meas) {
    const auto [m, d] = dims();
    require_size("input", in.size(), n * (adjoint ? m : d));
    require_size("output", out.size(), n * (adjoint ? d : m));
    if (callback) callback->pending.clear();
    const almc_status st = adjoint ? almc_operator_adjoint(h, in.data(), out.data(), n, meas)
                                   : almc_operator_forward(h, in.data(), out.data(), n, meas);
    if (callback) callback->pending.rethrow();
    if (st != ALMC_OK) fail(st, almc_operator_last_error(h));
  }
};
using OperatorPtr = std::shared_ptr<Operator>;

template <class Create>
OperatorPtr make_operator(const ContextPtr& ctx, Create&& create) {
  auto op = std::make_shared<Operator>(ctx);
  const almc_status st = create(&op->h);
  if (st != ALMC_OK) ctx->raise(st);
  return op;
}

// ------------------------------------------------------------------ sampler

// The C config with the list schedule's storage; fields are exposed by their C names.
struct Config {
  almc_sampler_config c = almc_sampler_config_default();
  std::vector<double> levels;
};

struct ProgressCallback {
  nb::object fn;  // fn(step, total, steps_per_second, elapsed_seconds, mean_residual) or None
  Pending pending;
};

// Called every check_every steps: delivers Ctrl-C (the pending signal handler raises
// KeyboardInterrupt here, in the thread that called run) and the user's progress display.
int progress_trampoline(const almc_progress* p, void* user_data) {
  auto* cb = static_cast<ProgressCallback*>(user_data);
  return guarded_call(cb->pending, [&] {
    if (PyErr_CheckSignals() != 0) throw nb::python_error();
    if (cb->fn.is_valid() && !cb->fn.is_none())
      cb->fn(p->step, p->total, p->steps_per_second, p->elapsed_seconds, p->mean_residual);
  });
}

// Called with the run's resumable state every checkpoint_every steps: fn(state: bytes, step).
struct CheckpointCallback {
  nb::object fn;
  Pending pending;
};

int checkpoint_trampoline(const void* state, size_t bytes, int64_t step, void* user_data) {
  auto* cb = static_cast<CheckpointCallback*>(user_data);
  return guarded_call(cb->pending, [&] {
    if (cb->fn.is_valid() && !cb->fn.is_none()) cb->fn(nb::bytes(state, bytes), step);
  });
}

struct Sampler {
  ContextPtr ctx;
  ScorePtr score;
  OperatorPtr op;
  almc_sampler_t h = nullptr;
  // n_chains: the chains this sampler runs (a slice's chain_count when one is set); mean_rows: the
  // measurements whose mean and std it gives (a slice of whole measurements: its own; else 0).
  int64_t n_chains = 0, n_meas = 0, d = 0, m = 0, mean_rows = 0;
  int last_status = ALMC_OK;  // of the last run (ALMC_ERR_CANCELLED: its state can be saved)
  std::unique_ptr<ProgressCallback> progress = std::make_unique<ProgressCallback>();
  std::unique_ptr<CheckpointCallback> checkpoint = std::make_unique<CheckpointCallback>();

  Sampler(ScorePtr s, OperatorPtr o, const Config& cfg) : ctx(s->ctx), score(std::move(s)), op(std::move(o)) {
    almc_sampler_config c = cfg.c;
    if (!cfg.levels.empty()) {
      c.levels = cfg.levels.data();
      c.n_levels_list = static_cast<int64_t>(cfg.levels.size());
    }
    c.progress = progress_trampoline;
    c.progress_user_data = progress.get();
    if (c.checkpoint_every > 0) {
      c.checkpoint = checkpoint_trampoline;
      c.checkpoint_user_data = checkpoint.get();
    }
    const almc_status st = almc_sampler_create(ctx->h, score->h, op ? op->h : nullptr, &c, &h);
    if (st != ALMC_OK) ctx->raise(st);
    n_meas = c.n_meas;
    n_chains = c.chain_count > 0 ? c.chain_count : c.n_meas * c.chains_per_meas;
    const bool whole = c.chain_start % c.chains_per_meas == 0 && n_chains % c.chains_per_meas == 0;
    mean_rows = whole ? n_chains / c.chains_per_meas : 0;
    d = score->dim();
    m = op ? op->dims().first : 0;
  }
  ~Sampler() {
    if (h) almc_sampler_destroy(h);
  }
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;
  [[noreturn]] void raise(almc_status st) const { fail(st, almc_sampler_last_error(h)); }

  void set_measurement(HostIn y) {
    require_size("y", y.size(), n_meas * m);
    const almc_status st = almc_sampler_set_measurement(h, y.data());
    if (st != ALMC_OK) raise(st);
  }
  void set_state(HostIn x) {
    require_size("x", x.size(), n_chains * d);
    const almc_status st = almc_sampler_set_state(h, x.data());
    if (st != ALMC_OK) raise(st);
  }
  void run(nb::object progress_fn, nb::object checkpoint_fn) {
    Pending* all[4] = {&progress->pending, &checkpoint->pending, score->callback ? &score->callback->pending : nullptr,
                       op && op->callback ? &op->callback->pending : nullptr};
    for (Pending* p : all)
      if (p) p->clear();
    progress->fn = std::move(progress_fn);
    checkpoint->fn = std::move(checkpoint_fn);
    almc_status st;
    {
      nb::gil_scoped_release nogil;
      st = almc_sampler_run(h);
    }
    last_status = st;
    progress->fn = nb::none();
    checkpoint->fn = nb::none();
    // A Python exception (Ctrl-C included) explains the stop better than the status does.
    for (Pending* p : all)
      if (p) p->rethrow();
    if (st != ALMC_OK) raise(st);
  }
  void samples(HostOut out) {
    require_size("samples", out.size(), n_chains * d);
    const almc_status st = almc_sampler_get_samples(h, out.data());
    if (st != ALMC_OK) raise(st);
  }
  void mean_std(HostOut mean, HostOut std) {
    require_size("mean", mean.size(), mean_rows * d);
    require_size("std", std.size(), mean_rows * d);
    const almc_status st = almc_sampler_get_mean_std(h, mean.data(), std.data());
    if (st != ALMC_OK) raise(st);
  }
  void residuals(HostOut out) {
    require_size("residuals", out.size(), n_chains);
    const almc_status st = almc_sampler_get_residuals(h, out.data());
    if (st != ALMC_OK) raise(st);
  }
  // The state where the last run stopped (after a cancelled run only) and its step.
  std::pair<nb::bytes, int64_t> save_state() {
    size_t bytes = 0;
    almc_status st = almc_sampler_state_size(h, &bytes);
    if (st != ALMC_OK) raise(st);
    std::vector<char> buf(bytes);
    int64_t step = 0;
    st = almc_sampler_save_state(h, buf.data(), bytes, &step);
    if (st != ALMC_OK) raise(st);
    return {nb::bytes(buf.data(), buf.size()), step};
  }
  void load_state(nb::bytes state) {
    const almc_status st = almc_sampler_load_state(h, state.c_str(), state.size());
    if (st != ALMC_OK) raise(st);
  }
  nb::dict info() const {
    almc_run_info ri{};
    ri.struct_size = sizeof ri;
    const almc_status st = almc_sampler_run_info(h, &ri);
    if (st != ALMC_OK) raise(st);
    nb::dict r;
    r["steps"] = ri.steps;
    r["score_evals"] = ri.score_evals;
    r["warm_steps"] = ri.warm_steps;
    r["warm_step"] = ri.warm_step;
    r["seconds"] = ri.seconds;
    r["max_stable_delta"] = ri.max_stable_delta;
    r["operator_norm"] = ri.operator_norm;
    r["mean_residual"] = ri.mean_residual;
    r["used_graphs"] = ri.used_graphs != 0;
    r["smc_resamples"] = ri.smc_resamples;
    r["start_step"] = ri.start_step;
    return r;
  }
};

// Scores and operators built on Python callables hold those callables: let the cycle collector see
// (and break) the cycles they close, e.g. a callback whose closure reaches the sampler using it.
int score_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  if (!nb::inst_ready(self)) return 0;
  const Score* s = nb::inst_ptr<Score>(self);
  if (s->callback) Py_VISIT(s->callback->fn.ptr());
  return 0;
}
int score_clear(PyObject* self) {
  Score* s = nb::inst_ptr<Score>(self);
  if (s->callback) s->callback->release();
  return 0;
}
int operator_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  if (!nb::inst_ready(self)) return 0;
  const Operator* o = nb::inst_ptr<Operator>(self);
  if (o->callback) {
    Py_VISIT(o->callback->forward.ptr());
    Py_VISIT(o->callback->adjoint.ptr());
  }
  return 0;
}
int operator_clear(PyObject* self) {
  Operator* o = nb::inst_ptr<Operator>(self);
  if (o->callback) o->callback->release();
  return 0;
}
PyType_Slot score_slots[] = {{Py_tp_traverse, reinterpret_cast<void*>(score_traverse)},
                             {Py_tp_clear, reinterpret_cast<void*>(score_clear)}, {0, nullptr}};
PyType_Slot operator_slots[] = {{Py_tp_traverse, reinterpret_cast<void*>(operator_traverse)},
                                {Py_tp_clear, reinterpret_cast<void*>(operator_clear)}, {0, nullptr}};

}  // namespace

NB_MODULE(_almc, mod) {
  mod.doc() = "almc's C API, wrapped (use the `almc` package, not this module)";

  // almc._errors.make(status, message) builds the exception (almc.Error or its subclass).
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Failure& f) {
      nb::object exc = nb::module_::import_("almc._errors").attr("make")(static_cast<int>(f.status), f.message);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });

  mod.def("release_callbacks", [] {
    for (HeldCallables* h : std::vector<HeldCallables*>(held_callables().begin(), held_callables().end())) h->release();
  });
  mod.def("version", [] { return std::string(almc_version()); });
  mod.def("method_reads_field", [](int method, int schedule, const std::string& field) {
    return almc_method_reads_field(static_cast<almc_method>(method), static_cast<almc_schedule>(schedule), field.c_str());
  });
  mod.def("build_info", [] { return std::string(almc_build_info()); });
  mod.def("status_string", [](int st) { return std::string(almc_status_string(static_cast<almc_status>(st))); });
  mod.def("cuda_device_count", [] {
    int n = 0;
    return almc_cuda_device_count(&n) == ALMC_OK ? n : 0;
  });

  // Handles are created through make_* functions so that Python holds them by shared_ptr.
  // Snapshot files: the library's container (almc_snapshot_*), shared with `almc sample --snapshot`.
  mod.def("snapshot_write", [](const std::string& path, nb::bytes state, const std::string& run) {
    Snapshot snap;
    snap.check(almc_snapshot_set(snap.h, state.c_str(), state.size(), run.c_str()));
    snap.check(almc_snapshot_write(snap.h, path.c_str()));
  });
  // The state held by a snapshot file, or by bytes (a container or a bare state), and its step.
  mod.def("snapshot_read", [](const std::string& path) {
    Snapshot snap;
    snap.check(almc_snapshot_read(snap.h, path.c_str()));
    return snap.state();
  });
  mod.def("snapshot_parse", [](nb::bytes data) {
    Snapshot snap;
    snap.check(almc_snapshot_parse(snap.h, data.c_str(), data.size()));
    return snap.state();
  });

  nb::class_<Context>(mod, "Context");
  mod.def("make_context", [](int backend, int device, int threads) { return std::make_shared<Context>(backend, device, threads); });
  mod.def("context_device_name", [](const ContextPtr& c) { return std::string(almc_context_device_name(c->h)); });
  mod.def("context_backend", [](const ContextPtr& c) { return static_cast<int>(c->backend); });
  mod.def("context_device", [](const ContextPtr& c) { return c->device; });
  mod.def("memcpy_device", [](const ContextPtr& c, uintptr_t dst, uintptr_t src, size_t bytes) {
    const almc_status st = almc_memcpy(c->h, reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes, 2);
    if (st != ALMC_OK) c->raise(st);
  });

  nb::class_<Score>(mod, "Score", nb::type_slots(score_slots))
      .def_prop_ro("dim", &Score::dim)
      .def("evaluate", &Score::evaluate, nb::arg("x"), nb::arg("out"), nb::arg("n"), nb::arg("t"));
  mod.def("score_gaussian", [](const ContextPtr& c, HostIn mean, HostIn var) {
    require_size("var", var.size(), static_cast<int64_t>(mean.size()));
    return make_score(c, [&](almc_score_t* out) {
      return almc_score_create_gaussian(c->h, static_cast<int64_t>(mean.size()), mean.data(), var.data(), out);
    });
  });
  mod.def("score_gmm", [](const ContextPtr& c, int64_t K, int64_t d, HostIn w, HostIn means, HostIn vars) {
    require_size("weights", w.size(), K);
    require_size("means", means.size(), K * d);
    require_size("variances", vars.size(), K * d);
    return make_score(c, [&](almc_score_t* out) {
      return almc_score_create_gmm(c->h, K, d, w.data(), means.data(), vars.data(), out);
    });
  });
  mod.def("score_gmm_json", [](const ContextPtr& c, const std::string& path) {
    return make_score(c, [&](almc_score_t* out) { return almc_score_create_gmm_json(c->h, path.c_str(), out); });
  });
  mod.def(
      "score_onnx",
      [](const ContextPtr& c, const std::string& path, int output, int convention, int level,
         std::optional<HostIn> alpha_bar, std::optional<std::string> x_input, std::optional<std::string> level_input,
         int precision, double beta_min, double beta_max, double level_scale, int64_t channel_begin, int64_t channel_end,
         const std::vector<std::string>& input_names, const std::vector<HostIn>& input_values,
         const std::vector<std::vector<int64_t>>& input_shapes, const std::vector<int64_t>& x_shape) {
        almc_onnx_config oc = almc_onnx_config_default();
        oc.x_shape = x_shape.empty() ? nullptr : x_shape.data();  // one sample's shape (dynamic H, W)
        oc.x_rank = static_cast<int64_t>(x_shape.size());
        oc.output = static_cast<almc_net_output>(output);
        oc.convention = static_cast<almc_net_convention>(convention);
        oc.level = static_cast<almc_net_level>(level);
        if (alpha_bar) {
          oc.alpha_bar_table = alpha_bar->data();
          oc.alpha_bar_len = static_cast<int64_t>(alpha_bar->size());
        }
        oc.x_input = x_input ? x_input->c_str() : nullptr;
        oc.level_input = level_input ? level_input->c_str() : nullptr;
        oc.precision = static_cast<almc_precision>(precision);
        oc.beta_min = beta_min;
        oc.beta_max = beta_max;
        oc.level_scale = level_scale;
        oc.output_channel_begin = channel_begin;
        oc.output_channel_end = channel_end;
        // Constant values of further graph inputs (shape empty: one value broadcast).
        if (input_values.size() != input_names.size() || input_shapes.size() != input_names.size())
          fail(ALMC_ERR_INVALID_ARGUMENT, "inputs: names, values and shapes differ in number");
        std::vector<almc_onnx_input> inputs(input_names.size());
        for (size_t i = 0; i < inputs.size(); ++i)
          inputs[i] = {input_names[i].c_str(), input_values[i].data(),
                       input_shapes[i].empty() ? nullptr : input_shapes[i].data(),
                       static_cast<int64_t>(input_shapes[i].size())};
        oc.inputs = inputs.empty() ? nullptr : inputs.data();
        oc.n_inputs = static_cast<int64_t>(inputs.size());
        return make_score(c, [&](almc_score_t* out) { return almc_score_create_onnx(c->h, path.c_str(), &oc, out); });
      },
      nb::arg("ctx"), nb::arg("path"), nb::arg("output"), nb::arg("convention"), nb::arg("level"),
      nb::arg("alpha_bar").none(), nb::arg("x_input").none(), nb::arg("level_input").none(), nb::arg("precision"),
      nb::arg("beta_min"), nb::arg("beta_max"), nb::arg("level_scale"), nb::arg("channel_begin"),
      nb::arg("channel_end"), nb::arg("input_names"), nb::arg("input_values"), nb::arg("input_shapes"),
      nb::arg("x_shape"));
  mod.def("score_callback", [](const ContextPtr& c, int64_t d, nb::object fn) {
    auto cb = std::make_unique<ScoreCallback>();
    cb->ctx = c;
    cb->fn = std::move(fn);
    ScorePtr s = make_score(c, [&](almc_score_t* out) {
      return almc_score_create_callback(c->h, d, score_trampoline, cb.get(), 0, out);
    });
    s->callback = std::move(cb);
    return s;
  });

  nb::class_<Operator>(mod, "Operator", nb::type_slots(operator_slots))
      .def_prop_ro("dims", &Operator::dims)
      .def("norm", &Operator::norm)
      .def("forward", [](Operator& o, HostIn x, HostOut y, int64_t n, int64_t meas) { o.apply(false, x, y, n, meas); })
      .def("adjoint", [](Operator& o, HostIn y, HostOut x, int64_t n, int64_t meas) { o.apply(true, y, x, n, meas); });
  mod.def("operator_identity", [](const ContextPtr& c, int64_t d) {
    return make_operator(c, [&](almc_operator_t* out) { return almc_operator_create_identity(c->h, d, out); });
  });
  mod.def("operator_mask", [](const ContextPtr& c, HostIn mask) {
    return make_operator(c, [&](almc_operator_t* out) {
      return almc_operator_create_mask(c->h, static_cast<int64_t>(mask.size()), mask.data(), out);
    });
  });
  mod.def("operator_downsample", [](const ContextPtr& c, int64_t C, int64_t H, int64_t W, int64_t factor) {
    return make_operator(c, [&](almc_operator_t* out) { return almc_operator_create_downsample(c->h, C, H, W, factor, out); });
  });
  mod.def("operator_blur", [](const ContextPtr& c, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, HostIn k) {
    require_size("kernel", k.size(), kh * kw);
    return make_operator(c, [&](almc_operator_t* out) {
      return almc_operator_create_blur(c->h, C, H, W, kh, kw, k.data(), out);
    });
  });
  mod.def("operator_matrix", [](const ContextPtr& c, int64_t m, int64_t d, int64_t n_mats, HostIn A) {
    require_size("A", A.size(), n_mats * m * d);
    return make_operator(c, [&](almc_operator_t* out) { return almc_operator_create_matrix(c->h, m, d, n_mats, A.data(), out); });
  });
  mod.def("operator_linear_callback", [](const ContextPtr& c, int64_t m, int64_t d, nb::object fwd, nb::object adj,
                                          double norm_estimate) {
    auto cb = std::make_unique<LinearCallback>();
    cb->ctx = c;
    cb->forward = std::move(fwd);
    cb->adjoint = std::move(adj);
    cb->m = m;
    cb->d = d;
    OperatorPtr op = make_operator(c, [&](almc_operator_t* out) {
      return almc_operator_create_linear_callback(c->h, m, d, linear_forward, linear_adjoint, cb.get(), norm_estimate, out);
    });
    op->callback = std::move(cb);
    return op;
  });

  nb::class_<Config> config(mod, "Config");
  config.def(nb::init<>());
#define ALMC_FIELD(name, T)                                                                                        \
  config.def_prop_rw(                                                                                              \
      #name, [](const Config& s) { return static_cast<T>(s.c.name); },                                            \
      [](Config& s, T v) { s.c.name = static_cast<decltype(s.c.name)>(v); })
  ALMC_FIELD(method, int);
  ALMC_FIELD(n_meas, int64_t);
  ALMC_FIELD(chains_per_meas, int64_t);
  ALMC_FIELD(seed, uint64_t);
  ALMC_FIELD(noise_std, double);
  ALMC_FIELD(likelihood_weight, double);
  ALMC_FIELD(kappa, double);
  ALMC_FIELD(delta, double);
  ALMC_FIELD(t_start, double);
  ALMC_FIELD(t_stop, double);
  ALMC_FIELD(warm_steps, int64_t);
  ALMC_FIELD(warm_step, double);
  ALMC_FIELD(average_last, int64_t);
  ALMC_FIELD(tweedie, int);
  ALMC_FIELD(schedule, int);
  ALMC_FIELD(n_levels, int64_t);
  ALMC_FIELD(sigma_max, double);
  ALMC_FIELD(sigma_min, double);
  ALMC_FIELD(steps_per_level, int64_t);
  ALMC_FIELD(eps, double);
  ALMC_FIELD(init, int);
  ALMC_FIELD(init_scale, double);
  ALMC_FIELD(use_graphs, int);
  ALMC_FIELD(graph_chunk, int64_t);
  ALMC_FIELD(force_unstable, int);
  ALMC_FIELD(check_every, int64_t);
  ALMC_FIELD(variant, int);
  ALMC_FIELD(smc_ess_threshold, double);
  ALMC_FIELD(checkpoint_every, int64_t);
  ALMC_FIELD(chain_start, int64_t);
  ALMC_FIELD(chain_count, int64_t);
#undef ALMC_FIELD
  config.def_rw("levels", &Config::levels);

  nb::class_<Sampler>(mod, "Sampler")
      .def_ro("n_chains", &Sampler::n_chains)
      .def_ro("n_meas", &Sampler::n_meas)
      .def_ro("mean_rows", &Sampler::mean_rows)
      .def_ro("d", &Sampler::d)
      .def_ro("m", &Sampler::m)
      .def("set_measurement", &Sampler::set_measurement)
      .def("set_state", &Sampler::set_state)
      .def_ro("last_status", &Sampler::last_status)
      .def("run", &Sampler::run, nb::arg("progress").none(), nb::arg("checkpoint").none())
      .def("save_state", &Sampler::save_state)
      .def("load_state", &Sampler::load_state)
      .def("samples", &Sampler::samples)
      .def("mean_std", &Sampler::mean_std)
      .def("residuals", &Sampler::residuals)
      .def("info", &Sampler::info);
  mod.def("make_sampler", [](ScorePtr s, std::optional<OperatorPtr> op, const Config& cfg) {
    return std::make_shared<Sampler>(std::move(s), op ? *op : nullptr, cfg);
  }, nb::arg("score"), nb::arg("op").none(), nb::arg("config"));
}
