// Header-only C++ wrapper over the C API: RAII handles and exceptions.
//
//   almc::Context ctx;                                   // backend auto
//   auto prior = almc::Score::gmm_json(ctx, "prior.json");
//   auto op = almc::Operator::mask(ctx, mask);
//   auto cfg = almc_sampler_config_default(); cfg.noise_std = 0.1; cfg.chains_per_meas = 64;
//   almc::Sampler s(ctx, prior, op, cfg);                // or (ctx, prior, cfg): the prior alone
//   s.set_measurement(y); s.run(); auto x = s.samples();
//
// Handles are shared: copying one shares the underlying object, which is destroyed with its last
// copy. A Sampler holds copies of its context, score and operator, so temporaries passed to it
// (almc::Sampler s(ctx, almc::Score::gaussian(ctx, m, v), op, cfg)) stay alive as long as it does.
#ifndef ALMC_ALMC_HPP
#define ALMC_ALMC_HPP

#include <almc/almc.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace almc {

class Exception : public std::runtime_error {
 public:
  Exception(almc_status status, const std::string& message)
      : std::runtime_error(std::string(almc_status_string(status)) + ": " + message), status_(status) {}
  almc_status status() const noexcept { return status_; }

 private:
  almc_status status_;
};

// Throw on failure with the message of the handle the call reports on. The message is read here,
// after the call has returned: a *_last_error pointer taken before (say, as another argument of the
// same call) may point to freed memory once the call has failed.
inline void check(almc_status st, almc_context_t h) {
  if (st != ALMC_OK) throw Exception(st, h ? almc_context_last_error(h) : "");
}
inline void check(almc_status st, almc_score_t h) {
  if (st != ALMC_OK) throw Exception(st, h ? almc_score_last_error(h) : "");
}
inline void check(almc_status st, almc_operator_t h) {
  if (st != ALMC_OK) throw Exception(st, h ? almc_operator_last_error(h) : "");
}
inline void check(almc_status st, almc_sampler_t h) {
  if (st != ALMC_OK) throw Exception(st, h ? almc_sampler_last_error(h) : "");
}

// Shares a handle of type H (a pointer) destroyed by D when its last copy goes.
template <class H, void (*D)(H)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(H h) { reset(h); }
  H get() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_ != nullptr; }

 protected:
  void reset(H h) {
    h_ = std::shared_ptr<std::remove_pointer_t<H>>(h, [](H p) {
      if (p) D(p);
    });
  }
  std::shared_ptr<std::remove_pointer_t<H>> h_;
};

class Context : public Handle<almc_context_t, almc_context_destroy> {
 public:
  explicit Context(almc_backend backend = ALMC_BACKEND_AUTO) {
    almc_context_config c = almc_context_config_default();
    c.backend = backend;
    init(c);
  }
  explicit Context(const almc_context_config& c) { init(c); }
  almc_backend backend() const {
    almc_backend b = ALMC_BACKEND_CPU;
    check(almc_context_backend(get(), &b), get());
    return b;
  }
  std::string device_name() const { return almc_context_device_name(get()); }
  const char* last_error() const { return almc_context_last_error(get()); }

 private:
  void init(const almc_context_config& c) {
    almc_context_t h = nullptr;
    const almc_status st = almc_context_create(&c, &h);
    // No context was made: the failure's message is the thread's (almc_context_last_error(NULL)).
    if (st != ALMC_OK) throw Exception(st, almc_context_last_error(nullptr));
    reset(h);
  }
};

class Score : public Handle<almc_score_t, almc_score_destroy> {
 public:
  using Handle::Handle;
  static Score gaussian(const Context& ctx, const std::vector<float>& mean, const std::vector<float>& var) {
    if (mean.size() != var.size()) throw Exception(ALMC_ERR_INVALID_ARGUMENT, "mean and var differ in length");
    almc_score_t h = nullptr;
    check(almc_score_create_gaussian(ctx.get(), static_cast<int64_t>(mean.size()), mean.data(), var.data(), &h),
          ctx.get());
    return Score(h);
  }
  static Score gmm(const Context& ctx, int64_t K, int64_t d, const std::vector<float>& w, const std::vector<float>& mu,
                   const std::vector<float>& var) {
    if (static_cast<int64_t>(w.size()) != K || static_cast<int64_t>(mu.size()) != K * d ||
        static_cast<int64_t>(var.size()) != K * d)
      throw Exception(ALMC_ERR_INVALID_ARGUMENT, "GMM arrays do not match K and d");
    almc_score_t h = nullptr;
    check(almc_score_create_gmm(ctx.get(), K, d, w.data(), mu.data(), var.data(), &h), ctx.get());
    return Score(h);
  }
  static Score gmm_json(const Context& ctx, const std::string& path) {
    almc_score_t h = nullptr;
    check(almc_score_create_gmm_json(ctx.get(), path.c_str(), &h), ctx.get());
    return Score(h);
  }
  static Score onnx(const Context& ctx, const std::string& path, const almc_onnx_config& cfg) {
    almc_score_t h = nullptr;
    check(almc_score_create_onnx(ctx.get(), path.c_str(), &cfg, &h), ctx.get());
    return Score(h);
  }
  int64_t dim() const {
    int64_t d = 0;
    check(almc_score_dim(get(), &d), get());
    return d;
  }
  // x [n, d] (n = x.size() / d).
  std::vector<float> evaluate(const std::vector<float>& x, double t) const {
    const int64_t d = dim();
    if (d <= 0 || x.size() % static_cast<size_t>(d) != 0)
      throw Exception(ALMC_ERR_INVALID_ARGUMENT, "evaluate: x has " + std::to_string(x.size()) +
                                                     " values, not a whole number of rows of d = " + std::to_string(d));
    std::vector<float> out(x.size());
    check(almc_score_evaluate(get(), x.data(), out.data(), static_cast<int64_t>(x.size()) / d, t), get());
    return out;
  }
};

class Operator : public Handle<almc_operator_t, almc_operator_destroy> {
 public:
  using Handle::Handle;
  static Operator identity(const Context& ctx, int64_t d) {
    almc_operator_t h = nullptr;
    check(almc_operator_create_identity(ctx.get(), d, &h), ctx.get());
    return Operator(h);
  }
  static Operator mask(const Context& ctx, const std::vector<float>& m) {
    almc_operator_t h = nullptr;
    check(almc_operator_create_mask(ctx.get(), static_cast<int64_t>(m.size()), m.data(), &h), ctx.get());
    return Operator(h);
  }
  static Operator downsample(const Context& ctx, int64_t C, int64_t H, int64_t W, int64_t f) {
    almc_operator_t h = nullptr;
    check(almc_operator_create_downsample(ctx.get(), C, H, W, f, &h), ctx.get());
    return Operator(h);
  }
  static Operator blur(const Context& ctx, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw,
                       const std::vector<float>& k) {
    if (kh < 0 || kw < 0 || static_cast<int64_t>(k.size()) != kh * kw)
      throw Exception(ALMC_ERR_INVALID_ARGUMENT, "blur: the kernel has " + std::to_string(k.size()) + " values, not kh x kw = " +
                                                     std::to_string(kh) + " x " + std::to_string(kw));
    almc_operator_t h = nullptr;
    check(almc_operator_create_blur(ctx.get(), C, H, W, kh, kw, k.data(), &h), ctx.get());
    return Operator(h);
  }
  static Operator matrix(const Context& ctx, int64_t m, int64_t d, int64_t n_mats, const std::vector<float>& A) {
    if (static_cast<int64_t>(A.size()) != m * d * n_mats) throw Exception(ALMC_ERR_INVALID_ARGUMENT, "A has the wrong size");
    almc_operator_t h = nullptr;
    check(almc_operator_create_matrix(ctx.get(), m, d, n_mats, A.data(), &h), ctx.get());
    return Operator(h);
  }
  std::pair<int64_t, int64_t> dims() const {
    int64_t m = 0, d = 0;
    check(almc_operator_dims(get(), &m, &d), get());
    return {m, d};
  }
  double norm() const {
    double v = -1;
    check(almc_operator_norm(get(), &v), get());
    return v;
  }
  // x [n, d] -> A x [n, m].
  std::vector<float> forward(const std::vector<float>& x, int64_t n, int64_t meas = 0) const {
    const auto [m, d] = dims();
    check_rows("forward: x", x.size(), n, d);
    std::vector<float> y(static_cast<size_t>(n * m));
    check(almc_operator_forward(get(), x.data(), y.data(), n, meas), get());
    return y;
  }
  // y [n, m] -> A^T y [n, d].
  std::vector<float> adjoint(const std::vector<float>& y, int64_t n, int64_t meas = 0) const {
    const auto [m, d] = dims();
    check_rows("adjoint: y", y.size(), n, m);
    std::vector<float> x(static_cast<size_t>(n * d));
    check(almc_operator_adjoint(get(), y.data(), x.data(), n, meas), get());
    return x;
  }

 private:
  static void check_rows(const char* what, size_t size, int64_t n, int64_t width) {
    if (n < 0 || static_cast<int64_t>(size) != n * width)
      throw Exception(ALMC_ERR_INVALID_ARGUMENT, std::string(what) + " has " + std::to_string(size) + " values, not n x " +
                                                     std::to_string(width) + " = " + std::to_string(n * width));
  }
};

class Sampler {
 public:
  // The posterior: prior `score`, operator `op` (copies of the handles are kept).
  Sampler(const Context& ctx, const Score& score, const Operator& op, const almc_sampler_config& cfg)
      : ctx_(ctx), score_(score), op_(op) {
    create(cfg);
  }
  // The prior alone (no likelihood).
  Sampler(const Context& ctx, const Score& score, const almc_sampler_config& cfg) : ctx_(ctx), score_(score) {
    create(cfg);
  }
  // op may be null (the prior alone).
  Sampler(const Context& ctx, const Score& score, const Operator* op, const almc_sampler_config& cfg)
      : ctx_(ctx), score_(score), op_(op ? *op : Operator()) {
    create(cfg);
  }
  almc_sampler_t get() const noexcept { return h_.get(); }
  // y [n_meas, m] (every measurement of the run, a slice's too).
  void set_measurement(const std::vector<float>& y) {
    if (op_.get()) {
      const int64_t m = op_.dims().first;
      if (static_cast<int64_t>(y.size()) != total_meas_ * m)
        throw Exception(ALMC_ERR_INVALID_ARGUMENT, "set_measurement: y has " + std::to_string(y.size()) + " values, not n_meas x m = " +
                                                       std::to_string(total_meas_) + " x " + std::to_string(m));
    }
    check(almc_sampler_set_measurement(get(), y.data()), get());
  }
  // x [n_chains, d] (the slice's chains when the config has a chain range).
  void set_state(const std::vector<float>& x) {
    if (static_cast<int64_t>(x.size()) != n_ * d_)
      throw Exception(ALMC_ERR_INVALID_ARGUMENT, "set_state: x has " + std::to_string(x.size()) + " values, not n_chains x d = " +
                                                     std::to_string(n_) + " x " + std::to_string(d_));
    check(almc_sampler_set_state(get(), x.data()), get());
  }
  void run() { check(almc_sampler_run(get()), get()); }
  std::vector<float> samples() const {
    std::vector<float> x(static_cast<size_t>(n_ * d_));
    check(almc_sampler_get_samples(get(), x.data()), get());
    return x;
  }
  // [n_meas, d] each, for the measurements the run (or its slice) holds whole. A slice that splits
  // a measurement's chains has none: the library refuses it (ALMC_ERR_UNSUPPORTED), and is given a
  // row of room so that its own status and message are the ones thrown.
  std::pair<std::vector<float>, std::vector<float>> mean_std() const {
    std::vector<float> m(static_cast<size_t>((n_meas_ > 0 ? n_meas_ : 1) * d_)), s(m.size());
    check(almc_sampler_get_mean_std(get(), m.data(), s.data()), get());
    return {m, s};
  }
  almc_run_info info() const {
    almc_run_info i{};
    i.struct_size = sizeof i;
    check(almc_sampler_run_info(get(), &i), get());
    return i;
  }
  // The resumable state after a cancelled run (almc_sampler_save_state), and loading one
  // (almc_sampler_load_state): the next run() continues it.
  std::vector<unsigned char> save_state(int64_t* step = nullptr) const {
    size_t bytes = 0;
    check(almc_sampler_state_size(get(), &bytes), get());
    std::vector<unsigned char> state(bytes);
    check(almc_sampler_save_state(get(), state.data(), state.size(), step), get());
    return state;
  }
  void load_state(const std::vector<unsigned char>& state) {
    check(almc_sampler_load_state(get(), state.data(), state.size()), get());
  }
  const char* err() const { return almc_sampler_last_error(get()); }

 private:
  void create(const almc_sampler_config& given) {
    almc_sampler_t h = nullptr;
    check(almc_sampler_create(ctx_.get(), score_.get(), op_.get(), &given, &h), ctx_.get());
    h_.reset(h, almc_sampler_destroy);
    // The config as the library read it (struct_size accepted): a field beyond the caller's
    // struct_size takes its default, whatever the bytes there hold.
    almc_sampler_config cfg = almc_sampler_config_default();
    std::memcpy(static_cast<void*>(&cfg), &given, given.struct_size);
    d_ = score_.dim();
    const int64_t cpm = cfg.chains_per_meas;
    const bool slice = cfg.chain_count > 0;
    n_ = slice ? cfg.chain_count : cfg.n_meas * cpm;
    n_meas_ = !slice ? cfg.n_meas : cfg.chain_start % cpm == 0 && cfg.chain_count % cpm == 0 ? cfg.chain_count / cpm : 0;
    total_meas_ = cfg.n_meas;
  }
  // Copies of the handles the sampler was made from (so the caller's may go first; the C API's
  // reference counts make the order in which handles are destroyed irrelevant).
  Context ctx_;
  Score score_;
  Operator op_;
  std::shared_ptr<almc_sampler_s> h_;
  int64_t d_ = 0, n_ = 0, n_meas_ = 0, total_meas_ = 0;
};

}  // namespace almc

#endif  // ALMC_ALMC_HPP
