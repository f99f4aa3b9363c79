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
  std::string json_path;
  std::string backend = "cpu";
  bool quick = false;
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

void print_rule() { std::printf("%s\n", std::string(112, '-').c_str()); }

void run_validate(const ValidateOptions& o) {
  if (o.chains < 10) throw CliError("--chains must be at least 10", 2);
  prepare_outputs({{"--json", &o.json_path}});
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
  std::printf("almc validate: %lld chains, seed %llu, backend %s (%s); tau = %g, T_ws = %g\n",
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
    std::printf("\nProblem gauss: Gaussian prior N(m0, diag s0), d = %d, dense A %d x %d, sigma_y = %.2f\n", d, p.A.r, d,
                std::sqrt(p.vy));
    std::printf("%-9s %6s %7s %7s %14s %14s %13s %13s %8s\n", "method", "kappa", "delta", "steps", "KL(out||tgt)",
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
        std::printf("%-9s %6g %7g %7lld %14.4f %14.4f %13.4f %13.4f %8.2f\n", method_name(m), st.kappa, st.delta,
                    static_cast<long long>(r.steps), k_out, k_law, k0, f0, r.seconds);
        rows.push_back({{"problem", "gauss"}, {"method", method_name(m)}, {"kappa", st.kappa}, {"delta", st.delta},
                        {"steps", r.steps}, {"kl_out_target", finite_or_nan(k_out)}, {"kl_law_target", finite_or_nan(k_law)},
                        {"kl_out_mu0", finite_or_nan(k0)}, {"fisher_out_mu0", finite_or_nan(f0)}, {"seconds", r.seconds}});
      }
    std::printf("KL(law||tgt): the exact law of each method's discretised chain (its own step list) against its target;\n"
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
    std::printf("\nProblem %s: %d-component GMM prior in 2-D, y observes x2, sigma_y = %.2f, %lld chains; w'(tau) =",
                q.name, g.K, std::sqrt(q.vy), static_cast<long long>(gmm_chains));
    for (double w : mtau.w) std::printf(" %.4f", w);
    std::printf(", prior w =");
    for (double w : g.w) std::printf(" %.2f", w);
    std::printf("\n%-9s %6s %7s %7s %14s %14s %14s %14s %8s\n", "method", "kappa", "delta", "steps", "w_err(tau)",
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
        std::printf("%-9s %6g %7g %7lld %14.4f %14.4f %14.4f %14.4f %8.2f\n", method_name(m), st.kappa, st.delta,
                    static_cast<long long>(r.steps), we_tau, we0, me, ce, r.seconds);
        rows.push_back({{"problem", q.name}, {"method", method_name(m)}, {"kappa", st.kappa}, {"delta", st.delta},
                        {"steps", r.steps}, {"weight_err_tau", we_tau}, {"weight_err_mu0", we0},
                        {"mode_mean_err", me}, {"mode_cov_err", ce}, {"fractions", frac}, {"seconds", r.seconds}});
      }
    std::printf("w_err: max_k |fraction of chains nearest mode k - w'_k| (binomial sd <= %.4f); mode errors: max\n"
                "abs error of the per-mode mean/covariance against mu_tau's component (M_k, C_k).\n",
                std::sqrt(0.25 / static_cast<double>(gmm_chains)));
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_all).count();
  std::printf("\ntotal %.1f s\n", total);
  if (!o.json_path.empty()) {
    json j;
    j["chains"] = o.chains;
    j["seed"] = o.seed;
    j["backend"] = o.backend;
    j["device"] = almc_context_device_name(cx);
    j["tau"] = kTau;
    j["t_start"] = kTStart;
    j["rows"] = rows;
    j["seconds"] = total;
    write_text_file("--json", o.json_path, j.dump(1) + "\n");
  }
}

}  // namespace

void register_validate_command(CLI::App& app) {
  auto o = std::make_shared<ValidateOptions>();
  CLI::App* sub = app.add_subcommand(
      "validate", "Closed-form validation table: ALMC and the annealed Langevin family against exact posteriors");
  sub->add_option("--chains", o->chains, "chains per run")->capture_default_str();
  sub->add_option("--seed", o->seed, "seed")->check(seed_check())->capture_default_str();
  sub->add_option("--json", o->json_path, "also write the table as JSON to this file");
  sub->add_option("--backend", o->backend, "auto | cpu | cuda")->capture_default_str();
  sub->add_flag("--quick", o->quick, "two settings per problem instead of three");
  sub->callback([o]() { run_validate(*o); });
}

}  // namespace almc::cli
