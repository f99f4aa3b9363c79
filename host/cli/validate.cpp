// `almc validate`: the closed-form validation table (ALGORITHMS.md Sec. 6).
//
// For a fixed set of problems whose posterior is known in closed form, runs ALMC and each variant
// of Sec. 4 at two or three step budgets and prints how far the output is from the targets:
//   gauss  Gaussian prior, dense A (d 8, m 6): KL(out || target), KL(law || target) (the exact
//          law of the discretised chain: what the engine should reach up to Monte Carlo error),
//          KL(out || mu_0) and Fisher divergence FI(out || mu_0), Gaussian formulas of T3 on the
//          empirical moments. target = mu_tau for ALMC, LANGEVIN and XGP; the last level's own
//          target for NCSN (noised prior) and ALD (VE-noised prior, likelihood at vy + sigma^2).
//   gmm    two separated modes whose weights change after they part: mode-weight error against
//          mu_tau and mu_0, per-mode mean and covariance errors (T4), as a function of kappa.
//   bars   the 2-D bars of T5, the same columns.
// Equal step budgets across methods: the VE methods get budget / 5 levels of 5 steps.
#include "host/cli/commands.hpp"
#include "host/cli/validate_oracles.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace almc::cli {
namespace {

using namespace almc::oracle;
using json = nlohmann::json;

struct ValidateOptions {
  int64_t chains = 4000;
  uint64_t seed = 1;
  JsonReport json;
  std::string backend = "cpu";
  bool quick = false;
  // --sweep (issue 15)
  bool sweep = false;
  std::vector<int64_t> budgets = {10000, 30000, 100000, 300000, 1000000};
  std::vector<std::string> problems = {"gauss", "bars", "mix16", "mix64"};
  std::vector<std::string> methods = {"almc", "almc@geo", "almc+smc", "almc+smc@geo", "almc+noised-lik", "almc+scaled-y", "ald", "xgp"};
  double max_seconds = 300;
};

std::vector<float> to_f(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }

struct Setting {
  double kappa, delta;
};

const char* method_name(almc_method m) {
  switch (m) {
    case ALMC_METHOD_ALMC: return "almc";
    case ALMC_METHOD_NCSN: return "ncsn";
    case ALMC_METHOD_ALD: return "ald";
    case ALMC_METHOD_XGP: return "xgp";
    default: return "langevin";
  }
}

// One method's configuration for a (kappa, delta) setting: ALMC as given; the others with the
// same number of steps. t_start = 3, tau = 0.01.
struct Plan {
  almc_sampler_config cfg;
  int64_t budget = 0;
  double sigma_min = 0;
};
constexpr double kTStart = 3, kTau = 0.01;

// The largest eps the engine accepts for ALD (its own stability check), given ||A||^2 and vy.
double ald_eps(double normsq, double vy, const Vec& sig) {
  double worst = 0;
  const double sL2 = sig.back() * sig.back();
  for (double s : sig) {
    const double s2 = s * s;
    worst = std::max(worst, s2 / sL2 * (normsq / (vy + s2) + 1.0 / (1 + s2)));
  }
  return 1.0 / worst;  // half the bound of 2
}

Plan make_plan(almc_method method, const Setting& st, int64_t chains, uint64_t seed, double vy, double normsq,
               double prior_prec_max) {
  Plan p;
  almc_sampler_config& c = p.cfg;
  c = almc_sampler_config_default();
  c.method = method;
  c.chains_per_meas = chains;
  c.seed = seed;
  c.noise_std = std::sqrt(vy);
  c.kappa = st.kappa;
  c.delta = st.delta;
  c.t_start = kTStart;
  c.t_stop = kTau;
  p.budget = static_cast<int64_t>(almc_levels(AlmcParams{st.kappa, st.delta, kTStart, kTau, 0, 0, 1}).size());
  const int64_t steps = 5, levels = std::max<int64_t>(2, p.budget / steps);
  p.sigma_min = std::sqrt(std::expm1(2 * kTau));
  switch (method) {
    case ALMC_METHOD_ALMC: break;
    case ALMC_METHOD_LANGEVIN:  // plain Langevin on mu_tau from N(0, I)
      c.schedule = ALMC_SCHEDULE_UNIFORM_T;
      c.t_start = kTau * 1.0000001;
      c.n_levels = 1;
      c.steps_per_level = p.budget;
      break;
    case ALMC_METHOD_NCSN:
    case ALMC_METHOD_ALD: {
      c.sigma_max = 20;
      c.sigma_min = p.sigma_min;
      c.n_levels = levels;
      c.steps_per_level = steps;
      const Vec sig = geometric(c.sigma_max, c.sigma_min, levels);
      c.eps = std::min(st.delta, method == ALMC_METHOD_ALD ? ald_eps(normsq, vy, sig) : ald_eps(0, vy, sig));
      // The last level must be stable for the prior too: eps * max precision < 1.
      c.eps = std::min(c.eps, 1.0 / prior_prec_max);
      break;
    }
    case ALMC_METHOD_XGP:
      c.sigma_max = 1;
      c.n_levels = levels;
      c.steps_per_level = steps;
      c.eps = std::min(st.delta, 1.0 / (normsq / vy + prior_prec_max));
      break;
  }
  return p;
}

struct RunOut {
  std::vector<float> x;
  int64_t steps = 0;
  int64_t resamples = 0;  // SMC resampling events
  double seconds = 0;
};

RunOut run_engine(almc_context_t ctx, almc_score_t score, almc_operator_t op, const almc_sampler_config& cfg,
                  const std::vector<float>& y) {
  almc_sampler_t h = nullptr;
  check(almc_sampler_create(ctx, score, op, &cfg, &h), "create the sampler", ctx);
  Sampler s(h);
  if (op) check(almc_sampler_set_measurement(h, y.data()), "set the measurement", h);
  const auto t0 = std::chrono::steady_clock::now();
  check(almc_sampler_run(h), std::string("run ") + method_name(cfg.method), h);
  RunOut r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t d = 0;
  almc_score_dim(score, &d);
  r.x.resize(static_cast<size_t>(cfg.chains_per_meas * d));
  check(almc_sampler_get_samples(h, r.x.data()), "get samples", h);
  almc_run_info info{};
  info.struct_size = sizeof info;
  almc_sampler_run_info(h, &info);
  r.steps = info.steps;
  r.resamples = info.smc_resamples;
  return r;
}

double spectral_normsq(const Mat& A) {
  const Mat AtA = mul(transpose(A), A);
  Vec v(static_cast<size_t>(A.c), 1.0);
  double lam = 0;
  for (int it = 0; it < 300; ++it) {
    const Vec w = mul(AtA, v);
    lam = std::sqrt(dot(w, w));
    for (size_t i = 0; i < v.size(); ++i) v[i] = w[i] / lam;
  }
  return lam;
}

// The exact law of the method's chain for the Gaussian problem, and the target it aims at.
void gauss_law(const LinearGaussian& p, const Plan& pl, Gauss* law, Gauss* tgt) {
  const almc_sampler_config& c = pl.cfg;
  const double Lw = spectral_normsq(p.A) / p.vy;
  switch (c.method) {
    case ALMC_METHOD_ALMC: {
      AlmcParams a{c.kappa, c.delta, c.t_start, c.t_stop, static_cast<int64_t>(std::ceil(10 * (1 + Lw))),
                   0.5 / (1 + Lw), 1};
      *law = almc_chain(p, a);
      *tgt = target(p, kTau);
      break;
    }
    case ALMC_METHOD_LANGEVIN:
      *law = langevin_chain(p, {c.t_start}, c.steps_per_level, c.delta, standard_normal(p.d()));
      *tgt = target(p, c.t_start);
      break;
    case ALMC_METHOD_NCSN:
    case ALMC_METHOD_ALD: {
      const bool ald = c.method == ALMC_METHOD_ALD;
      LinearGaussian q = p;
      if (!ald) q.w = 0;
      *law = ve_chain(q, ald, VeParams{c.sigma_max, c.sigma_min, c.n_levels, c.steps_per_level, c.eps, 1});
      *tgt = ve_last_target(q, ald, c.sigma_min);
      break;
    }
    case ALMC_METHOD_XGP:
      *law = xgp_chain(p, XgpParams{c.sigma_max, c.n_levels, c.steps_per_level, c.eps, c.t_stop, 1, true});
      *tgt = target(p, kTau);
      break;
  }
}

// Per-mode summary of samples against a mixture target: chains are assigned to the component of
// largest responsibility under the target (ALGORITHMS.md T4).
struct ModeStats {
  Vec frac;             // fraction of chains per mode
  double w_err = 0;     // max_k |frac_k - w_k|
  double w_se = 0;      // binomial standard error of that figure: max_k sqrt(w_k (1 - w_k) / n)
  double mean_err = 0;  // max abs error of the per-mode mean against M_k
  double cov_err = 0;   // max abs error of the per-mode covariance against C_k
  double mean_se = 0, cov_se = 0;  // Monte Carlo standard errors of those two (largest over entries)
  double kl = 0;        // KL(frac || w) + sum_k frac_k KL(N(fit_k) || N(M_k, C_k)), modes with n_k > d + 1
  double kl_bias = 0;   // its Monte Carlo bias ~ (K_used - 1) / 2n + sum_k (d + d(d+1)/2) / 2n
  int modes_skipped = 0;  // modes with too few chains for a covariance fit (left out of kl)
};
ModeStats mode_stats(const Mixture& mix, const std::vector<float>& x, int64_t n, int d) {
  const int K = static_cast<int>(mix.w.size());
  ModeStats st;
  st.frac.assign(static_cast<size_t>(K), 0.0);
  std::vector<std::vector<float>> parts(static_cast<size_t>(K));
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = &x[static_cast<size_t>(i * d)];
    const int k = nearest_component(mix, xi, d);
    st.frac[k] += 1.0 / static_cast<double>(n);
    parts[k].insert(parts[k].end(), xi, xi + d);
  }
  int used = 0;
  for (int k = 0; k < K; ++k) {
    st.w_err = std::max(st.w_err, std::fabs(st.frac[k] - mix.w[k]));
    st.w_se = std::max(st.w_se, std::sqrt(mix.w[k] * (1 - mix.w[k]) / static_cast<double>(n)));
    const int64_t nk = static_cast<int64_t>(parts[k].size() / static_cast<size_t>(d));
    if (st.frac[k] > 0) st.kl += st.frac[k] * std::log(st.frac[k] / mix.w[k]);
    if (nk < 2) continue;
    const Gauss e = empirical(parts[k].data(), nk, d);
    const Gauss& c = mix.comp[k];
    for (int i = 0; i < d; ++i) {
      st.mean_err = std::max(st.mean_err, std::fabs(e.m[i] - c.m[i]));
      st.mean_se = std::max(st.mean_se, se_mean(c, i, nk));
      for (int j = 0; j < d; ++j) {
        st.cov_err = std::max(st.cov_err, std::fabs(e.C(i, j) - c.C(i, j)));
        st.cov_se = std::max(st.cov_se, se_cov(c, i, j, nk));
      }
    }
    if (nk > d + 1) {
      st.kl += st.frac[k] * kl(e, c);
      st.kl_bias += (d + d * (d + 1) / 2.0) / (2.0 * static_cast<double>(n));
      ++used;
    } else if (mix.w[k] > 1e-3) {
      ++st.modes_skipped;
    }
  }
  st.kl_bias += std::max(0, used - 1) / (2.0 * static_cast<double>(n));
  return st;
}

// Where the table goes: stdout, or stderr when --json prints the report on stdout.
std::FILE* g_text = stdout;

void print_rule() { std::fprintf(g_text, "%s\n", std::string(112, '-').c_str()); }

// What every --json report of this command starts with: the run's settings and device.
json run_json(const ValidateOptions& o, almc_context_t cx) {
  json j;
  j["chains"] = o.chains;
  j["seed"] = o.seed;
  j["backend"] = o.backend;
  j["device"] = almc_context_device_name(cx);
  j["tau"] = kTau;
  j["t_start"] = kTStart;
  return j;
}

void run_validate(const ValidateOptions& o) {
  if (o.chains < 10) throw CliError("--chains must be at least 10", 2);
  if (o.chains > (int64_t(1) << 24)) throw CliError("--chains is too large (at most 16777216)", 2);
  o.json.prepare();
  g_text = o.json.on_stdout() ? stderr : stdout;
  Context ctx = make_context(o.backend, 0, true);
  almc_context_t cx = ctx.get();
  const std::vector<Setting> settings =
      o.quick ? std::vector<Setting>{{1, 0.01}, {4, 0.005}} : std::vector<Setting>{{1, 0.01}, {4, 0.005}, {10, 0.005}};
  // The weight error against kappa (ALGORITHMS.md T4 note): every method at kappa 2 and 10,
  // ALMC alone at 50 (the GMM problems use half as many chains: they are per-step costlier).
  const std::vector<Setting> gmm_settings = o.quick ? std::vector<Setting>{{2, 0.01}, {10, 0.01}}
                                                    : std::vector<Setting>{{2, 0.01}, {10, 0.01}, {50, 0.01}};
  const int64_t gmm_chains = std::max<int64_t>(10, o.chains / 2);
  const almc_method methods[] = {ALMC_METHOD_ALMC, ALMC_METHOD_LANGEVIN, ALMC_METHOD_NCSN, ALMC_METHOD_ALD,
                                 ALMC_METHOD_XGP};
  json rows = json::array();
  const auto t_all = std::chrono::steady_clock::now();
  std::fprintf(g_text, "almc validate: %lld chains, seed %llu, backend %s (%s); tau = %g, T_ws = %g\n",
              static_cast<long long>(o.chains), static_cast<unsigned long long>(o.seed), o.backend.c_str(),
              almc_context_device_name(cx), kTau, kTStart);

  // ---------------------------------------------------------------- Gaussian prior, dense A
  {
    const LinearGaussian p = validate_gauss_problem();
    const int d = p.d();
    almc_score_t sh = nullptr;
    check(almc_score_create_gaussian(cx, d, to_f(p.m0).data(), to_f(p.s0).data(), &sh), "prior", cx);
    Score score(sh);
    almc_operator_t oh = nullptr;
    check(almc_operator_create_matrix(cx, p.A.r, d, 1, to_f(p.A.a).data(), &oh), "operator", cx);
    Operator op(oh);
    const double normsq = spectral_normsq(p.A);
    double prec_max = 0;
    for (double v : p.s0) prec_max = std::max(prec_max, 1 / v);
    const Gauss mu0 = target(p, 0.0);
    std::fprintf(g_text, "\nProblem gauss: Gaussian prior N(m0, diag s0), d = %d, dense A %d x %d, sigma_y = %.2f\n", d, p.A.r, d,
                std::sqrt(p.vy));
    std::fprintf(g_text, "%-9s %6s %7s %7s %14s %14s %13s %13s %8s\n", "method", "kappa", "delta", "steps", "KL(out||tgt)",
                "KL(law||tgt)", "KL(out||mu0)", "FI(out||mu0)", "seconds");
    print_rule();
    for (const Setting& st : settings)
      for (almc_method m : methods) {
        const Plan pl = make_plan(m, st, o.chains, o.seed, p.vy, normsq, prec_max);
        const RunOut r = run_engine(cx, score.get(), m == ALMC_METHOD_NCSN ? nullptr : op.get(), pl.cfg, to_f(p.y));
        const Gauss emp = empirical(r.x.data(), o.chains, d);
        Gauss law, tgt;
        gauss_law(p, pl, &law, &tgt);
        const double k_out = kl(emp, tgt), k_law = kl(law, tgt), k0 = kl(emp, mu0), f0 = fisher(emp, mu0);
        std::fprintf(g_text, "%-9s %6g %7g %7lld %14.4f %14.4f %13.4f %13.4f %8.2f\n", method_name(m), st.kappa, st.delta,
                    static_cast<long long>(r.steps), k_out, k_law, k0, f0, r.seconds);
        rows.push_back({{"problem", "gauss"}, {"method", method_name(m)}, {"kappa", st.kappa}, {"delta", st.delta},
                        {"steps", r.steps}, {"kl_out_target", finite_or_nan(k_out)}, {"kl_law_target", finite_or_nan(k_law)},
                        {"kl_out_mu0", finite_or_nan(k0)}, {"fisher_out_mu0", finite_or_nan(f0)}, {"seconds", r.seconds}});
      }
    std::fprintf(g_text, "KL(law||tgt): the exact law of each method's discretised chain (its own step list) against its target;\n"
                "KL(out||tgt) should match it up to Monte Carlo error ~ %.4f (= (d + d(d+1)/2) / 2n).\n",
                (d + d * (d + 1) / 2.0) / (2.0 * o.chains));
  }

  // ---------------------------------------------------------------- GMM and bars
  for (const GmmProblem& q : {validate_gmm_problem(), validate_bars_problem()}) {
    const Gmm& g = q.g;
    almc_score_t sh = nullptr;
    check(almc_score_create_gmm(cx, g.K, g.d, to_f(g.w).data(), to_f(g.mu).data(), to_f(g.var).data(), &sh), "prior",
          cx);
    Score score(sh);
    almc_operator_t oh = nullptr;
    check(almc_operator_create_mask(cx, g.d, q.mask.data(), &oh), "operator", cx);
    Operator op(oh);
    const Mixture mtau = gmm_target(g, q.A, q.y, q.vy, kTau), m0 = gmm_target(g, q.A, q.y, q.vy, 0.0);
    double prec_max = 0;
    for (double v : g.var) prec_max = std::max(prec_max, 1 / v);
    std::fprintf(g_text, "\nProblem %s: %d-component GMM prior in 2-D, y observes x2, sigma_y = %.2f, %lld chains; w'(tau) =",
                q.name, g.K, std::sqrt(q.vy), static_cast<long long>(gmm_chains));
    for (double w : mtau.w) std::fprintf(g_text, " %.4f", w);
    std::fprintf(g_text, ", prior w =");
    for (double w : g.w) std::fprintf(g_text, " %.2f", w);
    std::fprintf(g_text, "\n%-9s %6s %7s %7s %14s %14s %14s %14s %8s\n", "method", "kappa", "delta", "steps", "w_err(tau)",
                "w_err(mu0)", "mode_mean_err", "mode_cov_err", "seconds");
    print_rule();
    for (const Setting& st : gmm_settings)
      for (almc_method m : methods) {
        if (m == ALMC_METHOD_NCSN) continue;  // prior only: no posterior weights to compare
        if (st.kappa > 10 && m != ALMC_METHOD_ALMC) continue;
        const Plan pl = make_plan(m, st, gmm_chains, o.seed, q.vy, 1.0, std::min(prec_max, 50.0));
        const RunOut r = run_engine(cx, score.get(), op.get(), pl.cfg, to_f(q.y));
        Vec frac(static_cast<size_t>(g.K), 0.0);
        std::vector<std::vector<float>> parts(static_cast<size_t>(g.K));
        for (int64_t i = 0; i < gmm_chains; ++i) {
          const int k = nearest_component(mtau, &r.x[2 * i], 2);
          frac[k] += 1.0 / static_cast<double>(gmm_chains);
          parts[k].insert(parts[k].end(), &r.x[2 * i], &r.x[2 * i] + 2);
        }
        double we_tau = 0, we0 = 0, me = 0, ce = 0;
        for (int k = 0; k < g.K; ++k) {
          we_tau = std::max(we_tau, std::fabs(frac[k] - mtau.w[k]));
          we0 = std::max(we0, std::fabs(frac[k] - m0.w[k]));
          const int64_t nk = static_cast<int64_t>(parts[k].size() / 2);
          if (nk < 2) continue;
          const Gauss e = empirical(parts[k].data(), nk, 2);
          for (int i = 0; i < 2; ++i) {
            me = std::max(me, std::fabs(e.m[i] - mtau.comp[k].m[i]));
            for (int j = 0; j < 2; ++j) ce = std::max(ce, std::fabs(e.C(i, j) - mtau.comp[k].C(i, j)));
          }
        }
        std::fprintf(g_text, "%-9s %6g %7g %7lld %14.4f %14.4f %14.4f %14.4f %8.2f\n", method_name(m), st.kappa, st.delta,
                    static_cast<long long>(r.steps), we_tau, we0, me, ce, r.seconds);
        rows.push_back({{"problem", q.name}, {"method", method_name(m)}, {"kappa", st.kappa}, {"delta", st.delta},
                        {"steps", r.steps}, {"weight_err_tau", we_tau}, {"weight_err_mu0", we0},
                        {"mode_mean_err", me}, {"mode_cov_err", ce}, {"fractions", frac}, {"seconds", r.seconds}});
      }
    std::fprintf(g_text, "w_err: max_k |fraction of chains nearest mode k - w'_k| (binomial sd <= %.4f); mode errors: max\n"
                "abs error of the per-mode mean/covariance against mu_tau's component (M_k, C_k).\n",
                std::sqrt(0.25 / static_cast<double>(gmm_chains)));
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_all).count();
  std::fprintf(g_text, "\ntotal %.1f s\n", total);
  if (o.json.wanted()) {
    json j = run_json(o, cx);
    j["rows"] = rows;
    j["seconds"] = total;
    o.json.emit(j);
  }
}

// ---------------------------------------------------------------- --sweep (issue 15)

struct SweepProblem {
  std::string name, about;
  bool gaussian = false;
  LinearGaussian lg;  // gauss
  GmmProblem mix;     // the mixtures (mask empty: dense matrix operator)
  int d() const { return gaussian ? lg.d() : mix.g.d; }
  const Mat& A() const { return gaussian ? lg.A : mix.A; }
  double vy() const { return gaussian ? lg.vy : mix.vy; }
};

SweepProblem sweep_problem(const std::string& name) {
  SweepProblem p;
  p.name = name;
  if (name == "gauss") {
    p.gaussian = true;
    p.lg = validate_gauss_problem();
    p.about = "Gaussian prior, d 8, dense A 6 x 8, sigma_y 0.5";
  } else if (name == "bars") {
    p.mix = validate_bars_problem();
    p.about = "3 bars in 2-D (ALGORITHMS.md T5), y observes x2, sigma_y 0.32";
  } else if (name == "mix16") {
    p.mix = random_mixture_problem("mix16", 16, 4, 8, 1.0, 0.5, 1, 16);
    p.about = "mixture of 4 in 16-D, dense A 8 x 16, sigma_y 0.5";
  } else if (name == "mix64") {
    p.mix = random_mixture_problem("mix64", 64, 4, 32, 1.0, 0.5, 1, 64);
    p.about = "mixture of 4 in 64-D, dense A 32 x 64, sigma_y 0.5";
  } else {
    throw CliError("unknown --problems entry '" + name + "' (use gauss, bars, mix16, mix64)", 2);
  }
  return p;
}

struct SweepMethod {
  std::string name;
  almc_method method = ALMC_METHOD_ALMC;
  almc_variant variant = ALMC_VARIANT_PAPER;
  almc_schedule schedule = ALMC_SCHEDULE_DEFAULT;
};

// "almc", "almc+VARIANT", either with "@geo" (levels geometric in sigma, Sec. 8), "ald", "xgp".
SweepMethod sweep_method(const std::string& full) {
  SweepMethod m;
  m.name = full;
  std::string name = full;
  const size_t at = name.find('@');
  if (at != std::string::npos) {
    if (name.substr(at) != "@geo" || name.rfind("almc", 0) != 0)
      throw CliError("unknown --methods entry '" + full + "' (only almc and almc+VARIANT take @geo)", 2);
    m.schedule = ALMC_SCHEDULE_GEOMETRIC_SIGMA;
    name = name.substr(0, at);
  }
  if (name == "ald") {
    m.method = ALMC_METHOD_ALD;
  } else if (name == "xgp") {
    m.method = ALMC_METHOD_XGP;
  } else if (name == "almc") {
  } else if (name.rfind("almc+", 0) == 0) {
    const std::string v = name.substr(5);
    bool known = false;
    std::string all;  // the variants an entry takes (best and geo-smc are written with @geo)
    for (const auto& [n, id] : variant_names()) {
      known = known || n == v;
      if (id != ALMC_VARIANT_BEST && id != ALMC_VARIANT_GEO_SMC && id != ALMC_VARIANT_PAPER) all += (all.empty() ? "" : ", ") + n;
    }
    if (!known)
      throw CliError("unknown variant '" + v + "' in --methods entry '" + full + "' (almc+VARIANT takes " + all + ")", 2);
    m.variant = parse_variant(v);
    if (m.variant == ALMC_VARIANT_BEST) throw CliError("--methods: write almc@geo for what --variant best selects", 2);
    if (m.variant == ALMC_VARIANT_GEO_SMC) throw CliError("--methods: write almc+smc@geo for --variant geo-smc", 2);
  } else {
    throw CliError("unknown --methods entry '" + name + "' (use almc, almc+VARIANT, ald, xgp)", 2);
  }
  return m;
}

// The sweep's settings for a step budget (documented in ALGORITHMS.md Sec. 8): ALMC at delta
// 1e-3 (smaller when the stability bound needs it) with kappa = budget delta / (T_ws - tau); ALD
// and XGP with budget / 100 levels of 100 steps and the largest step their stability allows.
almc_sampler_config sweep_config(const SweepMethod& m, int64_t budget, double normsq, double vy, double prec_max,
                                 int64_t chains, uint64_t seed) {
  almc_sampler_config c = almc_sampler_config_default();
  c.method = m.method;
  c.variant = m.variant;
  c.schedule = m.schedule;
  c.chains_per_meas = chains;
  c.seed = seed;
  c.noise_std = std::sqrt(vy);
  c.t_start = kTStart;
  c.t_stop = kTau;
  const double L = normsq / vy;
  const int64_t steps = 100, levels = std::max<int64_t>(2, budget / steps);
  switch (m.method) {
    case ALMC_METHOD_ALD: {
      c.sigma_max = 20;
      c.sigma_min = std::sqrt(std::expm1(2 * kTau));
      c.n_levels = levels;
      c.steps_per_level = steps;
      c.eps = std::min(ald_eps(normsq, vy, geometric(c.sigma_max, c.sigma_min, levels)), 0.5 / prec_max);
      break;
    }
    case ALMC_METHOD_XGP:
      c.sigma_max = 1;
      c.n_levels = levels;
      c.steps_per_level = steps;
      c.eps = std::min(1e-3, 1.0 / (L + prec_max));
      break;
    default:
      c.delta = std::min(1e-3, 1.0 / (std::max(L, 1.0) + prec_max));
      c.kappa = static_cast<double>(budget) * c.delta / (kTStart - kTau);
      break;
  }
  return c;
}

// The largest change of the mode weights along an ALMC variant's path after t = tau: the level-t
// target is the mixture of T4 for the likelihood y ~ N(e^s A x, V(s)) (oracle::variant_at), its
// weights w_k(t); annealing has to undo the change w_k(t) - w_k(tau) after the modes have parted.
double path_weight_drift(const GmmProblem& q, almc_variant v, double normsq, double t_max) {
  const double g = v == ALMC_VARIANT_PAPER || v == ALMC_VARIANT_SMC ? -1 : v == ALMC_VARIANT_SCALED_Y ? q.vy : normsq;
  const Mixture ref = gmm_target(q.g, q.A, q.y, q.vy, kTau);
  double worst = 0;
  for (int i = 1; i <= 40; ++i) {
    const double t = kTau + (t_max - kTau) * i / 40.0;
    LinearGaussian lg;
    lg.A = q.A;
    lg.vy = q.vy;
    const LinearGaussian at = variant_at(lg, t, kTau, g);
    const Mixture mt = gmm_target(q.g, at.A, q.y, at.vy, t);
    for (size_t k = 0; k < ref.w.size(); ++k) worst = std::max(worst, std::fabs(mt.w[k] - ref.w[k]));
  }
  return worst;
}

void run_sweep(const ValidateOptions& o) {
  if (o.chains < 10) throw CliError("--chains must be at least 10", 2);
  if (o.chains > (int64_t(1) << 24)) throw CliError("--chains is too large (at most 16777216)", 2);
  if (!(o.max_seconds > 0) || !std::isfinite(o.max_seconds)) throw CliError("--max-seconds must be a positive finite number", 2);
  std::vector<SweepProblem> problems;
  for (const std::string& n : o.problems) problems.push_back(sweep_problem(n));
  std::vector<SweepMethod> methods;
  for (const std::string& n : o.methods) methods.push_back(sweep_method(n));
  for (int64_t b : o.budgets)
    if (b < 100 || b > 100000000) throw CliError("--budgets entries must be in [100, 1e8]", 2);
  o.json.prepare();
  g_text = o.json.on_stdout() ? stderr : stdout;
  Context ctx = make_context(o.backend, 0, true);
  almc_context_t cx = ctx.get();
  const auto t_all = std::chrono::steady_clock::now();
  std::fprintf(g_text, "almc validate --sweep: %lld chains, seed %llu, backend %s (%s); tau = %g, T_ws = %g\n",
              static_cast<long long>(o.chains), static_cast<unsigned long long>(o.seed), o.backend.c_str(),
              almc_context_device_name(cx), kTau, kTStart);
  std::fprintf(g_text, "Each figure is followed by its Monte Carlo error in brackets: the standard error (weights, means,\n"
              "covariances) or the expected bias of the plug-in KL from n samples (KL).\n");
  json rows = json::array(), pinfo = json::array();
  for (const SweepProblem& p : problems) {
    const int d = p.d();
    almc_score_t sh = nullptr;
    if (p.gaussian)
      check(almc_score_create_gaussian(cx, d, to_f(p.lg.m0).data(), to_f(p.lg.s0).data(), &sh), "prior",
            cx);
    else
      check(almc_score_create_gmm(cx, p.mix.g.K, d, to_f(p.mix.g.w).data(), to_f(p.mix.g.mu).data(),
                                  to_f(p.mix.g.var).data(), &sh),
            "prior", cx);
    Score score(sh);
    almc_operator_t oh = nullptr;
    if (p.gaussian || p.mix.mask.empty())
      check(almc_operator_create_matrix(cx, p.A().r, d, 1, to_f(p.A().a).data(), &oh), "operator",
            cx);
    else
      check(almc_operator_create_mask(cx, d, p.mix.mask.data(), &oh), "operator", cx);
    Operator op(oh);
    const double normsq = spectral_normsq(p.A());
    double prec_max = 0;
    for (double v : p.gaussian ? p.lg.s0 : p.mix.g.var) prec_max = std::max(prec_max, 1 / v);
    const Vec y = p.gaussian ? p.lg.y : p.mix.y;
    Mixture mix;
    if (p.gaussian) {
      mix.w = {1.0};
      mix.comp = {target(p.lg, kTau)};
    } else {
      mix = gmm_target(p.mix.g, p.mix.A, p.mix.y, p.mix.vy, kTau);
    }
    std::fprintf(g_text, "\nProblem %s: %s; w'(tau) =", p.name.c_str(), p.about.c_str());
    for (double w : mix.w) std::fprintf(g_text, " %.4f", w);
    json pj = {{"problem", p.name}, {"about", p.about}, {"d", d}, {"weights_tau", mix.w}};
    if (!p.gaussian) {
      std::fprintf(g_text, "\n  weight drift along the path, max_k,t<=1 |w_k(t) - w_k(tau)|:");
      for (const SweepMethod& m : methods) {
        if (m.method != ALMC_METHOD_ALMC) continue;
        const double dr = path_weight_drift(p.mix, m.variant, normsq, 1.0);
        std::fprintf(g_text, " %s %.3f", m.name.c_str(), dr);
        pj["path_weight_drift"][m.name] = dr;
      }
    }
    pinfo.push_back(pj);
    std::fprintf(g_text, "\n%-16s %8s %16s %16s %16s %16s %8s\n", "method", "steps", "KL(out||mu_tau)", "weight_err",
                "mode_mean_err", "mode_cov_err", "seconds");
    print_rule();
    for (const SweepMethod& m : methods) {
      double sec_per_step = -1;
      for (int64_t budget : o.budgets) {
        const almc_sampler_config cfg = sweep_config(m, budget, normsq, p.vy(), prec_max, o.chains, o.seed);
        json row = {{"problem", p.name}, {"method", m.name}, {"budget", budget}, {"chains", o.chains}};
        if (sec_per_step > 0 && sec_per_step * static_cast<double>(budget) > o.max_seconds) {
          std::fprintf(g_text, "%-16s %8lld   skipped: ~%.0f s expected > --max-seconds %g\n", m.name.c_str(),
                      static_cast<long long>(budget), sec_per_step * static_cast<double>(budget), o.max_seconds);
          row["skipped"] = true;
          row["expected_seconds"] = sec_per_step * static_cast<double>(budget);
          rows.push_back(row);
          continue;
        }
        const RunOut r = run_engine(cx, score.get(), op.get(), cfg, to_f(y));
        sec_per_step = r.seconds / static_cast<double>(std::max<int64_t>(1, r.steps));
        const ModeStats st = mode_stats(mix, r.x, o.chains, d);
        std::fprintf(g_text, "%-16s %8lld %8.4f[%.4f] %8.4f[%.4f] %8.4f[%.4f] %8.4f[%.4f] %8.2f%s\n", m.name.c_str(),
                    static_cast<long long>(r.steps), st.kl, st.kl_bias, st.w_err, st.w_se, st.mean_err, st.mean_se,
                    st.cov_err, st.cov_se, r.seconds, st.modes_skipped ? " (KL: modes left out)" : "");
        row.update({{"steps", r.steps}, {"kappa", cfg.kappa}, {"delta", cfg.delta}, {"eps", cfg.eps},
                    {"n_levels", cfg.n_levels}, {"steps_per_level", cfg.steps_per_level},
                    {"kl_out_tau", finite_or_nan(st.kl)}, {"kl_mc_bias", st.kl_bias}, {"weight_err", st.w_err},
                    {"weight_se", st.w_se}, {"mode_mean_err", st.mean_err}, {"mode_mean_se", st.mean_se},
                    {"mode_cov_err", st.cov_err}, {"mode_cov_se", st.cov_se}, {"fractions", st.frac},
                    {"modes_left_out_of_kl", st.modes_skipped}, {"seconds", r.seconds},
                    {"smc_resamples", r.resamples}});
        rows.push_back(row);
        std::fflush(g_text);
      }
    }
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_all).count();
  std::fprintf(g_text, "\ntotal %.1f s\n", total);
  if (o.json.wanted()) {
    json j = run_json(o, cx);
    j["sweep"] = true;
    j["problems"] = pinfo;
    j["rows"] = rows;
    j["seconds"] = total;
    o.json.emit(j);
  }
}

}  // namespace

void register_validate_command(CLI::App& app) {
  auto o = std::make_shared<ValidateOptions>();
  CLI::App* sub = app.add_subcommand(
      "validate", "Closed-form validation table: ALMC and the annealed Langevin family against exact posteriors");
  sub->add_option("--chains", o->chains, "chains per run (the mixture problems use half: a step costs them more)")->capture_default_str();
  sub->add_option("--seed", o->seed, "seed")->transform(seed_check())->capture_default_str();
  o->json.add_option(sub, "the table (or the sweep) as JSON");
  sub->add_option("--backend", o->backend, "auto | cpu | cuda")->capture_default_str();
  sub->add_flag("--quick", o->quick, "two settings per problem instead of three");
  sub->add_flag("--sweep", o->sweep,
                "accuracy against step budget: each problem x method x budget (docs/ALGORITHMS.md Sec. 8)");
  sub->add_option("--budgets", o->budgets, "--sweep: step budgets")->delimiter(',')->capture_default_str();
  sub->add_option("--problems", o->problems, "--sweep: gauss, bars, mix16, mix64")->delimiter(',')->capture_default_str();
  sub->add_option("--methods", o->methods,
                  "--sweep: almc, almc+VARIANT (noised-lik, scaled-y, smc), either with @geo (levels geometric in sigma), ald, xgp")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--max-seconds", o->max_seconds,
                  "--sweep: skip a run whose time, extrapolated from the method's smaller budgets, exceeds this")
      ->capture_default_str();
  sub->callback([o, sub]() {
    // An option of the other mode would be ignored: refuse it rather than run without it.
    for (const char* name : {"--budgets", "--problems", "--methods", "--max-seconds"})
      if (!o->sweep && sub->count(name) > 0) throw CliError(std::string(name) + " applies to --sweep only", 2);
    if (o->sweep && o->quick) throw CliError("--quick applies to the table, not to --sweep (use --budgets)", 2);
    if (o->sweep)
      run_sweep(*o);
    else
      run_validate(*o);
  });
}

}  // namespace almc::cli
