#include "host/samplers/schedule.hpp"

#include "host/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <sstream>
#include <utility>

namespace almc {
namespace {

// A level in every convention, from OU time t.
StepScalars level_at(double t) {
  StepScalars s{};
  s.t = static_cast<float>(t);
  const double sig2 = std::expm1(2 * t);
  s.sigma = static_cast<float>(std::sqrt(sig2));
  s.alpha_bar = static_cast<float>(std::exp(-2 * t));
  s.log_sigma = static_cast<float>(0.5 * std::log(sig2));
  s.kind = kStepAnneal;
  s.aux = -1;
  s.xs = 1.f;
  s.neg_xs = -1.f;
  s.post = 1.f;
  return s;
}

double t_of_sigma(double sigma) { return 0.5 * std::log1p(sigma * sigma); }

// n values geometric from hi down to lo; one value is lo, the level the run ends at (the target:
// sigma_min, sigma_y), not the top.
std::vector<double> geometric(double hi, double lo, int64_t n) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[i] = n == 1 ? lo : hi * std::pow(lo / hi, static_cast<double>(i) / static_cast<double>(n - 1));
  return v;
}

// The method's levels as OU times, decreasing.
std::vector<double> level_times(const ScheduleInputs& in, almc_schedule sched, int64_t n_default) {
  const almc_sampler_config& c = in.cfg;
  switch (sched) {
    case ALMC_SCHEDULE_LIST: return in.levels;
    case ALMC_SCHEDULE_UNIFORM_T: {
      const int64_t n = c.n_levels;
      std::vector<double> v(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        v[i] = n == 1 ? c.t_stop : c.t_start + (c.t_stop - c.t_start) * static_cast<double>(i) / static_cast<double>(n - 1);
      return v;
    }
    case ALMC_SCHEDULE_GEOMETRIC_SIGMA:
    default: {
      std::vector<double> v = geometric(c.sigma_max, c.sigma_min, n_default > 0 ? n_default : c.n_levels);
      for (double& t : v) t = t_of_sigma(t);
      return v;
    }
  }
}

// Largest number of steps one run may have. The step table (64 bytes a step, kept on the host and
// on the backend) then stays within 2 GiB; a run this long takes days on any score worth sampling.
constexpr int64_t kMaxRunSteps = int64_t(1) << 25;

// A step count computed in double, checked before it is converted or anything is allocated.
int64_t checked_steps(double n, const char* what, const char* hint = "") {
  if (!(n >= 0) || !(n <= static_cast<double>(kMaxRunSteps)))
    fail(ALMC_ERR_INVALID_ARGUMENT, what, " gives ", n, " steps, above the limit of ", kMaxRunSteps, " steps per run", hint);
  return static_cast<int64_t>(n);
}

void push(Schedule& s, StepScalars st) {
  st.step = static_cast<int64_t>(s.steps.size());
  st.noise = std::sqrt(2.f * st.h);
  st.neg_xs = -st.xs;
  s.steps.push_back(st);
}

// ALMC's likelihood along the path (ALGORITHMS.md Sec. 7). With s = t - t_last, the variant's
// likelihood at level t is the Gaussian y ~ N(e^s A x, V(s) I), V(s) = sigma_y^2 + (e^{2s} - 1) g:
// in the step's terms xs = e^s and lik = lik_base e^s sigma_y^2 / V(s). g = 0 would keep the
// paper's variance; g = ||A||^2 is the Gaussian approximation of p(y | x_t) (NOISED_LIK),
// g = sigma_y^2 the measurement scaled by the OU mean (SCALED_Y). PAPER: xs = 1, multiplier 1.
struct VariantLik {
  double xs = 1, mult = 1;
};
VariantLik variant_lik(almc_variant v, double t, double t_last, double var_y, double normsq) {
  VariantLik r;
  if (v == ALMC_VARIANT_PAPER) return r;
  const double s = std::max(0.0, t - t_last);
  const double g = v == ALMC_VARIANT_SCALED_Y ? var_y : normsq;
  const double V = var_y + std::expm1(2 * s) * g;
  r.xs = std::exp(s);
  r.mult = r.xs * var_y / V;
  return r;
}

}  // namespace

almc_sampler_config resolve_defaults(const almc_sampler_config& in) {
  almc_sampler_config c = in;
  if (c.kappa <= 0) c.kappa = 10;
  if (c.delta <= 0) c.delta = 1e-3;
  if (c.t_start <= 0) c.t_start = 5;
  if (c.t_stop <= 0) c.t_stop = 0.01;
  if (c.n_levels <= 0) c.n_levels = 100;
  if (c.sigma_max <= 0) c.sigma_max = raw_enum(c.method) == ALMC_METHOD_XGP ? 1.0 : 50.0;
  if (c.sigma_min <= 0) c.sigma_min = 0.01;
  if (c.steps_per_level <= 0) c.steps_per_level = 5;
  if (c.eps <= 0) c.eps = raw_enum(c.method) == ALMC_METHOD_XGP ? 1e-3 : 2e-5;
  if (c.init_scale <= 0) c.init_scale = 1;
  if (c.graph_chunk <= 0) c.graph_chunk = 50;
  if (c.check_every <= 0) c.check_every = 100;
  if (c.variant == ALMC_VARIANT_BEST && c.method == ALMC_METHOD_ALMC) {
    // The recommendation of `almc validate --sweep` (ALGORITHMS.md Sec. 8): the paper's likelihood
    // on levels geometric in sigma, unless the caller chose the levels.
    c.variant = ALMC_VARIANT_PAPER;
    if (c.schedule == ALMC_SCHEDULE_DEFAULT) c.schedule = ALMC_SCHEDULE_GEOMETRIC_SIGMA;
  }
  if (c.variant == ALMC_VARIANT_GEO_SMC && c.method == ALMC_METHOD_ALMC) {
    c.variant = ALMC_VARIANT_SMC;
    if (c.schedule == ALMC_SCHEDULE_DEFAULT) c.schedule = ALMC_SCHEDULE_GEOMETRIC_SIGMA;
  }
  // Read by the SMC variants only; elsewhere a threshold set is refused (validate_config).
  if (c.variant == ALMC_VARIANT_SMC && c.smc_ess_threshold <= 0) c.smc_ess_threshold = 0.5;
  return c;
}

void validate_config(const almc_sampler_config& c, bool has_operator) {
  auto finite_pos = [](double v, const char* name) {
    if (!std::isfinite(v) || !(v > 0)) fail(ALMC_ERR_INVALID_ARGUMENT, name, " = ", v, " must be positive and finite");
  };
  if (raw_enum(c.method) < ALMC_METHOD_ALMC || raw_enum(c.method) > ALMC_METHOD_LANGEVIN)
    fail(ALMC_ERR_INVALID_ARGUMENT, "unknown method ", raw_enum(c.method));
  if (raw_enum(c.schedule) < ALMC_SCHEDULE_DEFAULT || raw_enum(c.schedule) > ALMC_SCHEDULE_LIST)
    fail(ALMC_ERR_INVALID_ARGUMENT, "unknown schedule ", raw_enum(c.schedule));
  if (raw_enum(c.variant) != ALMC_VARIANT_BEST &&
      (raw_enum(c.variant) < ALMC_VARIANT_PAPER || raw_enum(c.variant) > ALMC_VARIANT_GEO_SMC))
    fail(ALMC_ERR_INVALID_ARGUMENT, "unknown variant ", raw_enum(c.variant));
  if (c.variant != ALMC_VARIANT_PAPER && c.method != ALMC_METHOD_ALMC)
    fail(ALMC_ERR_INVALID_ARGUMENT, "variant ", raw_enum(c.variant), " applies to method almc only (the other methods take the paper's variant, 0)");
  if (c.variant == ALMC_VARIANT_SMC) {
    if (!(c.smc_ess_threshold > 0 && c.smc_ess_threshold <= 1))
      fail(ALMC_ERR_INVALID_ARGUMENT, "smc_ess_threshold = ", c.smc_ess_threshold, " must be in (0, 1]");
    if (c.average_last > 1)
      fail(ALMC_ERR_INVALID_ARGUMENT, "variant smc outputs the last iterate (resampling reorders the chains): "
                                      "average_last must be 0 or 1");
  } else if (c.smc_ess_threshold > 0 || std::isnan(c.smc_ess_threshold)) {
    // A threshold the run never reads: refused rather than ignored, for every front end alike.
    fail(ALMC_ERR_INVALID_ARGUMENT, "smc_ess_threshold = ", c.smc_ess_threshold,
         " is read by variant smc or geo-smc only: the run would be the same without it");
  }
  // Flags are 0 or 1: any other value is a field set by mistake (or garbage), not a choice.
  for (const auto& [v, name] : {std::pair<int, const char*>{c.tweedie, "tweedie"}, {c.use_graphs, "use_graphs"},
                                {c.force_unstable, "force_unstable"}})
    if (v != 0 && v != 1) fail(ALMC_ERR_INVALID_ARGUMENT, name, " = ", v, " must be 0 or 1");
  if (raw_enum(c.init) < ALMC_INIT_GAUSSIAN || raw_enum(c.init) > ALMC_INIT_USER)
    fail(ALMC_ERR_INVALID_ARGUMENT, "unknown init ", raw_enum(c.init));
  if (c.n_meas <= 0) fail(ALMC_ERR_INVALID_ARGUMENT, "n_meas = ", c.n_meas, " must be positive");
  if (c.chains_per_meas <= 0) fail(ALMC_ERR_INVALID_ARGUMENT, "chains_per_meas = ", c.chains_per_meas, " must be positive");
  checked_mul(c.n_meas, c.chains_per_meas, "n_meas x chains_per_meas");
  if (c.n_meas * c.chains_per_meas > (int64_t(1) << 31))
    fail(ALMC_ERR_INVALID_ARGUMENT, "more than 2^31 chains");
  const int64_t total = c.n_meas * c.chains_per_meas;
  if (c.chain_start < 0 || c.chain_count < 0 || (c.chain_count == 0 && c.chain_start != 0) ||
      c.chain_start > total - c.chain_count)
    fail(ALMC_ERR_INVALID_ARGUMENT, "chain range start ", c.chain_start, " count ", c.chain_count,
         " is not a non-empty part of the run's ", total, " chains (0 / 0: all)");
  finite_pos(c.kappa, "kappa");
  finite_pos(c.delta, "delta");
  finite_pos(c.t_start, "t_start");
  finite_pos(c.t_stop, "t_stop");
  finite_pos(c.sigma_max, "sigma_max");
  finite_pos(c.sigma_min, "sigma_min");
  finite_pos(c.eps, "eps");
  finite_pos(c.init_scale, "init_scale");
  // Beyond OU time 40 (sigma ~ 2e17) a level is pure noise in float32 and e^{2t} soon overflows.
  if (c.t_start > 40) fail(ALMC_ERR_INVALID_ARGUMENT, "t_start = ", c.t_start, " is too large (at most 40)");
  if (c.t_stop >= c.t_start) fail(ALMC_ERR_INVALID_ARGUMENT, "t_stop = ", c.t_stop, " must be below t_start = ", c.t_start);
  if (c.sigma_min > c.sigma_max)
    fail(ALMC_ERR_INVALID_ARGUMENT, "sigma_min = ", c.sigma_min, " must not exceed sigma_max = ", c.sigma_max);
  if (!std::isfinite(c.likelihood_weight) || c.likelihood_weight < 0)
    fail(ALMC_ERR_INVALID_ARGUMENT, "likelihood_weight = ", c.likelihood_weight, " must be finite and >= 0");
  if (c.warm_steps < -1)
    fail(ALMC_ERR_INVALID_ARGUMENT, "warm_steps = ", c.warm_steps, " must be >= 0 (or -1: the default, ceil(10 (1 + L_R)))");
  if (c.warm_steps > kMaxRunSteps)
    fail(ALMC_ERR_INVALID_ARGUMENT, "warm_steps = ", c.warm_steps, " is above the limit of ", kMaxRunSteps, " steps per run");
  if (!std::isfinite(c.warm_step)) fail(ALMC_ERR_INVALID_ARGUMENT, "warm_step is not finite");
  if (c.average_last < 0) fail(ALMC_ERR_INVALID_ARGUMENT, "average_last = ", c.average_last, " must be >= 0");
  if (c.snapshot_every < 0) fail(ALMC_ERR_INVALID_ARGUMENT, "snapshot_every must be >= 0");
  if (c.n_levels > kMaxRunSteps || c.steps_per_level > kMaxRunSteps)
    fail(ALMC_ERR_INVALID_ARGUMENT, "n_levels = ", c.n_levels, " or steps_per_level = ", c.steps_per_level,
         " is above the limit of ", kMaxRunSteps, " steps per run");
  if (has_operator && c.likelihood_weight > 0 && (!std::isfinite(c.noise_std) || !(c.noise_std > 0)))
    fail(ALMC_ERR_INVALID_ARGUMENT, "noise_std = ", c.noise_std, " must be positive and finite");
  if (c.method == ALMC_METHOD_XGP && !has_operator)
    fail(ALMC_ERR_INVALID_ARGUMENT, "method xgp anneals the measurement noise: it needs an operator");
  if (c.schedule == ALMC_SCHEDULE_LIST) {
    if (!c.levels || c.n_levels_list <= 0)
      fail(ALMC_ERR_INVALID_ARGUMENT, "schedule LIST needs levels and n_levels_list > 0");
    if (c.n_levels_list > kMaxRunSteps)
      fail(ALMC_ERR_INVALID_ARGUMENT, "n_levels_list = ", c.n_levels_list, " is above the limit of ", kMaxRunSteps,
           " steps per run");
    for (int64_t i = 0; i < c.n_levels_list; ++i) {
      if (!std::isfinite(c.levels[i]) || !(c.levels[i] > 0))
        fail(ALMC_ERR_INVALID_ARGUMENT, "levels[", i, "] = ", c.levels[i], " must be a positive OU time");
      if (i > 0 && c.levels[i] > c.levels[i - 1])
        fail(ALMC_ERR_INVALID_ARGUMENT, "levels must decrease (levels[", i, "] > levels[", i - 1, "])");
    }
  }
}

int method_reads_field(int method, int schedule, const char* field) {
  if (!field) return -1;
  const std::string f = field;
  static const char* const kFields[] = {"kappa",   "delta",           "t_start",   "t_stop",    "warm_steps", "warm_step",
                                        "n_levels", "steps_per_level", "sigma_max", "sigma_min", "eps"};
  if (std::find(std::begin(kFields), std::end(kFields), f) == std::end(kFields)) return -1;
  if (schedule < ALMC_SCHEDULE_DEFAULT || schedule > ALMC_SCHEDULE_LIST) return -1;
  // The level fields of level_times() for a schedule (the default differs by method).
  auto levels = [&](int sch) {
    if (sch == ALMC_SCHEDULE_LIST) return false;
    if (sch == ALMC_SCHEDULE_UNIFORM_T) return f == "t_start" || f == "t_stop" || f == "n_levels";
    return f == "sigma_max" || f == "sigma_min" || f == "n_levels";
  };
  switch (method) {
    case ALMC_METHOD_ALMC:  // warm start at t_start, then levels kappa / delta apart (or the list's)
      if (f == "kappa" || f == "t_stop") return schedule != ALMC_SCHEDULE_LIST;
      return f == "delta" || f == "t_start" || f == "warm_steps" || f == "warm_step";
    case ALMC_METHOD_NCSN:
    case ALMC_METHOD_ALD:
      return f == "eps" || f == "steps_per_level" ||
             levels(schedule == ALMC_SCHEDULE_DEFAULT ? ALMC_SCHEDULE_GEOMETRIC_SIGMA : schedule);
    case ALMC_METHOD_XGP:  // eta from max(sigma_max, sigma_y) down to sigma_y; the prior at t_stop
      return f == "eps" || f == "steps_per_level" || f == "n_levels" || f == "sigma_max" || f == "t_stop";
    case ALMC_METHOD_LANGEVIN:
      return f == "delta" || f == "steps_per_level" ||
             levels(schedule == ALMC_SCHEDULE_DEFAULT ? ALMC_SCHEDULE_UNIFORM_T : schedule);
  }
  return -1;
}

double prior_curvature(const ScheduleInputs& in, double t) {
  if (!(in.prior_min_var > 0)) return 1.0;
  return 1.0 / (std::exp(-2 * t) * in.prior_min_var - std::expm1(-2 * t));
}

namespace {
// How a stability message names the prior's part of the curvature.
std::string prior_term(const ScheduleInputs& in, double curv) {
  if (!(in.prior_min_var > 0)) return "1";
  std::ostringstream os;
  os << "1/S_t = " << curv << ", the prior's curvature with its smallest variance " << in.prior_min_var;
  return os.str();
}
}  // namespace

Schedule build_schedule(const ScheduleInputs& in) {
  const almc_sampler_config& c = in.cfg;
  Schedule s;
  const double w = in.has_likelihood ? c.likelihood_weight : 0.0;
  const double var_y = in.has_likelihood ? c.noise_std * c.noise_std : 1.0;
  // -grad R callbacks include their own 1 / sigma_y^2: the multiplier is then relative to it.
  const double lik_base = in.neg_grad ? w : w / var_y;
  const double normsq = in.op_norm >= 0 ? in.op_norm * in.op_norm : -1;
  const double L = !in.has_likelihood ? 0.0 : normsq >= 0 ? w * normsq / var_y : -1;  // Lipschitz constant of grad R
  s.average_last = c.average_last > 1 ? c.average_last : 0;
  s.init_uniform = c.init == ALMC_INIT_UNIFORM;
  s.init_scale = static_cast<float>(c.init_scale);
  s.tweedie = c.tweedie != 0;

  switch (c.method) {
    case ALMC_METHOD_ALMC: {
      const double Lw = L >= 0 ? L : 1.0 / var_y;  // unknown norm: assume ||A|| <= 1
      if (L < 0 && in.has_likelihood)
        s.notes.push_back("operator norm unknown: warm-start defaults assume ||A|| <= 1");
      s.warm_step = c.warm_step > 0 ? c.warm_step : 0.5 / (1 + Lw);
      // Every count in double first: kappa / delta can be anything a user types.
      const bool uniform = c.schedule == ALMC_SCHEDULE_DEFAULT || c.schedule == ALMC_SCHEDULE_UNIFORM_T;
      int64_t n_main = 0, N = 0;
      if (uniform) {
        const double hi = std::round(c.kappa * c.t_start / c.delta), lo = std::round(c.kappa * c.t_stop / c.delta);
        if (!(hi <= 4.0e18)) fail(ALMC_ERR_INVALID_ARGUMENT, "kappa t_start / delta = ", hi, " is too large");
        n_main = checked_steps(hi - lo, "kappa (t_start - t_stop) / delta");
        N = static_cast<int64_t>(hi);
      } else if (c.schedule == ALMC_SCHEDULE_GEOMETRIC_SIGMA) {
        n_main = std::max<int64_t>(1, checked_steps(std::round(c.kappa * (c.t_start - c.t_stop) / c.delta),
                                                    "kappa (t_start - t_stop) / delta"));
      } else {
        n_main = checked_steps(static_cast<double>(in.levels.size()), "the level list");
      }
      if (n_main < 1)
        fail(ALMC_ERR_INVALID_ARGUMENT, "kappa (t_start - t_stop) / delta = ", c.kappa * (c.t_start - c.t_stop) / c.delta,
             " rounds to no annealing step (raise kappa or lower delta)");
      // The variant's likelihood (Sec. 7) is anchored at the last level t_last; the warm start
      // targets N(0, I) times the first level's likelihood. Its curvature relative to the paper's,
      // xs * mult = e^{2s} sigma_y^2 / V(s), is monotone in s: the largest along the path is at
      // s = 0 (1) or at t_start.
      // SMC keeps the paper's likelihood (its weights correct the prior's path only, Sec. 9).
      const almc_variant var = in.has_likelihood && c.variant != ALMC_VARIANT_SMC ? c.variant : ALMC_VARIANT_PAPER;
      if (var == ALMC_VARIANT_NOISED_LIK && normsq < 0)
        s.notes.push_back("variant noised-lik: operator norm unknown, the noise proxy assumes ||A|| = 1");
      const double t_last = uniform ? static_cast<double>(N - n_main + 1) * c.delta / c.kappa
                            : c.schedule == ALMC_SCHEDULE_GEOMETRIC_SIGMA ? c.t_stop
                                                                          : in.levels.back();
      if (uniform && t_last > 2 * c.t_stop)
        s.notes.push_back(concat("the levels are delta / kappa = ", c.delta / c.kappa, " apart: the last is t = ", t_last,
                              ", not t_stop = ", c.t_stop, " (lower delta or raise kappa to end nearer t_stop)"));
      const double g_norm = normsq >= 0 ? normsq : 1.0;
      const VariantLik at_start = variant_lik(var, c.t_start, t_last, var_y, g_norm);
      const double Lpath = L * std::max(1.0, at_start.xs * at_start.mult);
      // The prior's curvature is largest at the smallest level (variances below 1) or at the
      // first (above 1).
      const double t_min = uniform ? t_last : c.schedule == ALMC_SCHEDULE_GEOMETRIC_SIGMA ? c.t_stop : in.levels.back();
      const double P = std::max(prior_curvature(in, t_min), prior_curvature(in, c.t_start));
      // The stability check comes first: an unstable run is refused before any table is built.
      if (L >= 0) s.max_stable_delta = 2.0 / (Lpath + P);
      if (L >= 0 && c.delta * (Lpath + P) >= 2.0) {
        std::ostringstream os;
        os << "delta = " << c.delta << " is above the stability bound of explicit Euler: delta (||A||^2/sigma_y^2 + "
           << (in.prior_min_var > 0 ? "1/S_t" : "1") << ") = " << c.delta * (Lpath + P) << " >= 2 (||A|| = " << in.op_norm
           << ", sigma_y = " << c.noise_std << (var != ALMC_VARIANT_PAPER ? ", largest along the variant's path" : "")
           << (in.prior_min_var > 0 ? "; " + prior_term(in, P) : std::string()) << "); the largest stable delta is "
           << s.max_stable_delta;
        s.unstable = os.str();
        if (!c.force_unstable) return s;
      }
      // The warm start's own step (unless there is no warm start): its target N(0, I) times the
      // first level's likelihood has curvature 1 + L xs mult at t_start (the default 0.5 / (1 + L)
      // is well inside the bound).
      const double Lwarm = L * at_start.xs * at_start.mult;
      if (L >= 0 && c.warm_steps != 0 && s.warm_step * (Lwarm + 1.0) >= 2.0 && s.unstable.empty()) {
        std::ostringstream os;
        os << "warm_step = " << s.warm_step << " is above the stability bound of explicit Euler for the warm start: "
           << "warm_step (1 + ||A||^2/sigma_y^2" << (var != ALMC_VARIANT_PAPER ? " at the first level" : "") << ") = "
           << s.warm_step * (Lwarm + 1.0) << " >= 2 (||A|| = " << in.op_norm << ", sigma_y = " << c.noise_std
           << "); the largest stable warm step is " << 2.0 / (Lwarm + 1.0);
        s.unstable = os.str();
        if (!c.force_unstable) return s;
      }
      s.warm_steps = c.warm_steps >= 0 ? c.warm_steps
                                       : checked_steps(std::ceil(10 * (1 + Lw)), "the default warm start ceil(10 (1 + L_R))",
                                                       " (give warm_steps = N explicitly)");
      checked_steps(static_cast<double>(s.warm_steps) + static_cast<double>(n_main), "warm start plus annealing");
      s.steps.reserve(static_cast<size_t>(s.warm_steps + n_main + 1));
      std::vector<double> ts;
      if (uniform) {
        ts.reserve(static_cast<size_t>(n_main));
        for (int64_t i = N; i > N - n_main; --i) ts.push_back(static_cast<double>(i) * c.delta / c.kappa);
      } else if (c.schedule == ALMC_SCHEDULE_GEOMETRIC_SIGMA) {
        const double shi = std::sqrt(std::expm1(2 * c.t_start)), slo = std::sqrt(std::expm1(2 * c.t_stop));
        for (double sg : geometric(shi, slo, n_main)) ts.push_back(t_of_sigma(sg));
      } else {
        ts = in.levels;
      }
      auto lik_step = [&](StepScalars& st, double t) {
        const VariantLik v = variant_lik(var, t, t_last, var_y, g_norm);
        st.xs = static_cast<float>(v.xs);
        st.lik = static_cast<float>(lik_base * v.mult);
      };
      for (int64_t i = 0; i < s.warm_steps; ++i) {
        StepScalars st = level_at(c.t_start);
        st.kind = kStepWarm;
        st.h = static_cast<float>(s.warm_step);
        lik_step(st, c.t_start);
        push(s, st);
      }
      for (double t : ts) {
        StepScalars st = level_at(t);
        st.h = static_cast<float>(c.delta);
        lik_step(st, t);
        push(s, st);
      }
      if (s.tweedie) s.tweedie_t = ts.empty() ? c.t_stop : ts.back();
      break;
    }
    case ALMC_METHOD_NCSN:
    case ALMC_METHOD_ALD: {
      // Run in OU coordinates: VE Langevin with step h at sigma equals OU Langevin with step
      // h / (1 + sigma^2) on p_t, with x_OU = x_VE / sqrt(1 + sigma^2) (ALGORITHMS.md Sec. 2).
      const std::vector<double> ts = level_times(in, c.schedule, 0);
      checked_steps(static_cast<double>(ts.size()) * static_cast<double>(c.steps_per_level), "levels x steps_per_level");
      const double sig_last2 = std::expm1(2 * ts.back());
      const bool ald = c.method == ALMC_METHOD_ALD;
      // The stability check first: an unstable run is refused before the table is built.
      // The prior's curvature in VE coordinates at sigma_k is 1/(v + sigma_k^2) for a component
      // variance v (1 assumed for a network): prior_curvature(t) / (1 + sigma_k^2).
      double worst = 0;
      if (!ald || L >= 0)
        for (double t : ts) {
          const double sig2 = std::expm1(2 * t);
          const double lik = ald ? w * (in.op_norm * in.op_norm) / (var_y + sig2) : 0.0;
          worst = std::max(worst, c.eps * sig2 / sig_last2 * (lik + prior_curvature(in, t) / (1 + sig2)));
        }
      if (worst >= 2) {
        std::ostringstream os;
        os << "eps = " << c.eps << " makes the " << (ald ? "ALD" : "NCSN") << " step unstable (h ("
           << (ald ? "||A||^2/(sigma_y^2+sigma_k^2) + " : "") << (in.prior_min_var > 0 ? "1/(v+sigma_k^2)" : "1/(1+sigma_k^2)")
           << ") = " << worst << " >= 2" << (in.prior_min_var > 0 ? ", v = the prior's smallest variance" : "")
           << "); the largest stable eps is " << c.eps * 2 / worst;
        s.unstable = os.str();
        if (!c.force_unstable) return s;
      }
      s.steps.reserve(ts.size() * static_cast<size_t>(c.steps_per_level));
      for (size_t k = 0; k < ts.size(); ++k) {
        const double sig2 = std::expm1(2 * ts[k]);
        const double c_k = std::sqrt(1 + sig2);
        const double h_ve = c.eps * sig2 / sig_last2;
        for (int64_t r = 0; r < c.steps_per_level; ++r) {
          StepScalars st = level_at(ts[k]);
          st.h = static_cast<float>(h_ve / (1 + sig2));
          st.xs = static_cast<float>(c_k);
          st.lik = ald ? static_cast<float>(c_k * (in.neg_grad ? w * var_y : w) / (var_y + sig2)) : 0.f;
          if (r == c.steps_per_level - 1)
            st.post = k + 1 < ts.size() ? static_cast<float>(c_k / std::sqrt(1 + std::expm1(2 * ts[k + 1])))
                                        : (s.tweedie ? 1.f : static_cast<float>(c_k));
          push(s, st);
        }
      }
      s.coord_factor = static_cast<float>(1.0 / std::sqrt(1 + std::expm1(2 * ts.front())));
      s.init_scale = static_cast<float>(c.init_scale) * s.coord_factor;
      if (s.tweedie) s.tweedie_t = ts.back();
      break;
    }
    case ALMC_METHOD_XGP: {
      // Annealed measurement noise eta_1 > ... > eta_N = sigma_y, prior score at the smallest
      // level, per-chain auxiliary measurements y_k = y_{k+1} + sqrt(eta_k^2 - eta_{k+1}^2) xi_k.
      const double sy = c.noise_std;
      const double top = std::max(c.sigma_max, sy);
      checked_steps(static_cast<double>(c.n_levels) * static_cast<double>(c.steps_per_level), "levels x steps_per_level");
      const std::vector<double> eta = geometric(top, sy, c.n_levels);
      s.xgp = true;
      // The stability check first (the step is largest relative to eta at eta = sigma_y).
      double worst = 0;
      const double P = prior_curvature(in, c.t_stop);
      if (L >= 0)
        for (double e : eta) worst = std::max(worst, c.eps * (w * in.op_norm * in.op_norm / (e * e) + P));
      if (worst >= 2) {
        std::ostringstream os;
        os << "eps = " << c.eps << " makes the XGP step unstable (h (||A||^2/eta^2 + "
           << (in.prior_min_var > 0 ? "1/S_t" : "1") << ") = " << worst
           << " >= 2 at eta = sigma_y); the largest stable eps is " << c.eps * 2 / worst;
        s.unstable = os.str();
        if (!c.force_unstable) return s;
      }
      for (size_t k = 0; k + 1 < eta.size(); ++k)
        s.xgp_scales.push_back(static_cast<float>(std::sqrt(std::max(0.0, eta[k] * eta[k] - eta[k + 1] * eta[k + 1]))));
      s.steps.reserve(eta.size() * static_cast<size_t>(c.steps_per_level));
      for (size_t k = 0; k < eta.size(); ++k) {
        for (int64_t r = 0; r < c.steps_per_level; ++r) {
          StepScalars st = level_at(c.t_stop);
          st.h = static_cast<float>(c.eps);
          st.lik = static_cast<float>((in.neg_grad ? w * var_y : w) / (eta[k] * eta[k]));
          if (r == 0 && k > 0) {
            st.aux = static_cast<int32_t>(k - 1);
            st.aux_scale = s.xgp_scales[k - 1];
          }
          push(s, st);
        }
      }
      if (s.tweedie) s.tweedie_t = c.t_stop;
      break;
    }
    case ALMC_METHOD_LANGEVIN: {
      const std::vector<double> ts =
          level_times(in, c.schedule == ALMC_SCHEDULE_DEFAULT ? ALMC_SCHEDULE_UNIFORM_T : c.schedule, 0);
      double P = in.prior_min_var > 0 ? 0.0 : 1.0;  // the largest along the levels
      for (double t : ts) P = std::max(P, prior_curvature(in, t));
      if (L >= 0) s.max_stable_delta = 2.0 / (L + P);
      if (L >= 0 && c.delta * (L + P) >= 2.0) {
        std::ostringstream os;
        os << "delta = " << c.delta << " is above the stability bound: delta (||A||^2/sigma_y^2 + "
           << (in.prior_min_var > 0 ? "1/S_t" : "1") << ") = " << c.delta * (L + P) << " >= 2"
           << (in.prior_min_var > 0 ? " (" + prior_term(in, P) + ")" : std::string()) << "; the largest stable delta is "
           << s.max_stable_delta;
        s.unstable = os.str();
        if (!c.force_unstable) return s;
      }
      checked_steps(static_cast<double>(ts.size()) * static_cast<double>(c.steps_per_level), "levels x steps_per_level");
      s.steps.reserve(ts.size() * static_cast<size_t>(c.steps_per_level));
      for (double t : ts)
        for (int64_t r = 0; r < c.steps_per_level; ++r) {
          StepScalars st = level_at(t);
          st.h = static_cast<float>(c.delta);
          st.lik = static_cast<float>(lik_base);
          push(s, st);
        }
      if (s.tweedie) s.tweedie_t = ts.back();
      break;
    }
  }
  if (s.steps.empty()) fail(ALMC_ERR_INVALID_ARGUMENT, "the schedule has no steps");
  if (s.average_last > static_cast<int64_t>(s.steps.size()))
    fail(ALMC_ERR_INVALID_ARGUMENT, "average_last = ", s.average_last, " exceeds the ", s.steps.size(), " steps of the run");
  return s;
}

}  // namespace almc
