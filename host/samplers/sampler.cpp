#include "host/samplers/sampler.hpp"

#include "cuda/rng.cuh"
#include "host/core/error.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

using namespace almc;

namespace {

bool score_is_callback(const almc_score_s* s) { return s->kind == ScoreKind::Callback; }

}  // namespace

almc_sampler_s::~almc_sampler_s() { release_graphs(); }

void almc_sampler_s::release_graphs() noexcept {
  for (auto& kv : graphs) ctx->backend->graph_destroy(kv.second);
  graphs.clear();
}

size_t almc_sampler_s::workspace_bytes() const {
  size_t b = 0;
  for (const Buffer* buf : {&x, &x0, &sbuf, &gbuf, &rbuf, &tmp, &resp, &resp_work, &y, &ych, &pick, &out_pick, &table,
                            &cur, &counter, &norms, &flags, &smc_logw, &smc_anc, &smc_x})
    b += buf->bytes();
  return b + tables.size_bytes();
}

void almc_sampler_s::create() {
  Backend* be = ctx->backend.get();
  cfg = resolve_defaults(cfg);
  validate_config(cfg, op != nullptr);
  if (cfg.checkpoint_every < 0 || (cfg.checkpoint_every > 0 && !cfg.checkpoint))
    fail(ALMC_ERR_INVALID_ARGUMENT, "checkpoint_every = ", cfg.checkpoint_every,
         " must be >= 0, and > 0 only with a checkpoint callback");
  if (cfg.schedule == ALMC_SCHEDULE_LIST) levels.assign(cfg.levels, cfg.levels + cfg.n_levels_list);
  cfg.levels = nullptr;  // copied: the caller's array need not outlive create
  d = score->d;
  if (op && op->d != d)
    fail(ALMC_ERR_INVALID_ARGUMENT, "the operator acts on dimension ", op->d, " but the score has dimension ", d);
  m = op ? op->m : 0;
  n_meas = cfg.n_meas;
  cpm = cfg.chains_per_meas;
  chain0 = cfg.chain_start;
  n = cfg.chain_count > 0 ? cfg.chain_count : n_meas * cpm;
  has_lik = op && cfg.likelihood_weight > 0;
  if (op && op->kind == kOpMatrix && op->n_mats != 1 && op->n_mats != n_meas)
    fail(ALMC_ERR_INVALID_ARGUMENT, "the operator holds ", op->n_mats, " matrices but the batch has ", n_meas,
         " measurements (give 1 shared matrix or one per measurement)");

  smc = cfg.method == ALMC_METHOD_ALMC && cfg.variant == ALMC_VARIANT_SMC;
  if (smc && score_is_callback(score))
    fail(ALMC_ERR_UNSUPPORTED, "variant smc weighs chains by the prior's density at every level, which the score ",
         score->description, " does not give (a score network has no sound estimate of it): use a Gaussian or GMM "
         "prior, or another variant (best)");
  if (smc && (chain0 % cpm != 0 || n % cpm != 0))
    fail(ALMC_ERR_UNSUPPORTED, "variant smc resamples the chains of each measurement together: the chain range (",
         chain0, " to ", chain0 + n - 1, ") must hold whole measurements of ", cpm, " chains");

  if (smc && cfg.checkpoint_every > 0)
    fail(ALMC_ERR_UNSUPPORTED, "variant smc carries per-chain importance weights that a resumable state does not hold: "
         "snapshots and resume are not available with it");

  ScheduleInputs in;
  in.cfg = cfg;
  in.levels = levels;
  in.has_likelihood = has_lik;
  in.neg_grad = op && op->kind == kOpNegGradCallback;
  in.op_norm = op ? op->norm : -1;
  in.prior_min_var = score->kind == ScoreKind::Gmm || score->kind == ScoreKind::Gaussian ? score->min_var : -1;
  sched = build_schedule(in);
  for (const std::string& note : sched.notes) ctx->log(ALMC_LOG_WARN, note);
  if (smc && sched.warm_steps == 0)
    fail(ALMC_ERR_INVALID_ARGUMENT, "variant smc starts its weights from the warm start's target: warm_steps must be "
                                    "positive");
  if (!sched.unstable.empty()) {
    if (!cfg.force_unstable) fail(ALMC_ERR_UNSTABLE, sched.unstable, " (set force_unstable to run anyway)");
    ctx->log(ALMC_LOG_WARN, sched.unstable + " (forced)");
  }

  // Size the workspace and refuse a run that cannot fit before allocating any of it.
  const int64_t nd = checked_mul(n, d, "chains x d");
  const int64_t nm = checked_mul(n, std::max<int64_t>(m, 1), "chains x m");
  const bool need_s = score_is_callback(score) || sched.tweedie;
  const bool need_g = has_lik && !op_is_fused(op->kind);
  const bool need_r = op && op->kind != kOpNegGradCallback;
  const bool need_tmp = has_lik && op->kind == kOpNegGradCallback &&
                        (cfg.method == ALMC_METHOD_ALD || cfg.method == ALMC_METHOD_NCSN || cfg.variant != ALMC_VARIANT_PAPER);
  const int64_t steps = static_cast<int64_t>(sched.steps.size());
  // The backend's workspace for the GMM responsibilities (CUDA: partial quadratic forms per slice
  // of a row), allocated here once, never while a step runs.
  const size_t resp_work_bytes = score->kind == ScoreKind::Gmm ? be->gmm_resp_work_bytes(n, d, score->K) : 0;
  double need = 4.0 * nd * (1 + (cfg.init == ALMC_INIT_USER) + need_s + need_g + need_tmp + (sched.average_last > 1)) +
                4.0 * nm * (need_r + sched.xgp) + 4.0 * n * (score->K + 4) + sizeof(StepScalars) * (steps + 1.0) +
                4.0 * n_meas * m + (score_is_callback(score) ? 0.0 : PriorTableStorage::bytes(score->K, d)) +
                (smc ? 16.0 * n + 4.0 * nd : 0.0) + static_cast<double>(resp_work_bytes);
  const double avail = static_cast<double>(be->available_memory());
  if (need > avail) {
    std::ostringstream os;
    os.precision(3);
    os << "the run needs " << need / (1 << 20) << " MiB of " << (be->kind() == ALMC_BACKEND_CUDA ? "device" : "host")
       << " memory but only " << avail / (1 << 20) << " MiB are available; use fewer chains";
    fail(ALMC_ERR_OUT_OF_MEMORY, os.str());
  }
  x = Buffer(be, 4 * static_cast<size_t>(nd));
  if (cfg.init == ALMC_INIT_USER) x0 = Buffer(be, 4 * static_cast<size_t>(nd));
  if (need_s) sbuf = Buffer(be, 4 * static_cast<size_t>(nd));
  if (need_g) gbuf = Buffer(be, 4 * static_cast<size_t>(nd));
  if (need_tmp) tmp = Buffer(be, 4 * static_cast<size_t>(nd));
  if (need_r) rbuf = Buffer(be, 4 * static_cast<size_t>(nm));
  if (sched.xgp) ych = Buffer(be, 4 * static_cast<size_t>(nm));
  if (score->kind == ScoreKind::Gmm) {
    resp = Buffer(be, 4 * static_cast<size_t>(checked_mul(n, score->K, "chains x K")));
    resp_work = Buffer(be, resp_work_bytes);
  }
  if (!score_is_callback(score)) tables = PriorTableStorage(be, score->gmm(), d);
  tables_t = -1.f;
  if (op) y = Buffer(be, 4 * static_cast<size_t>(checked_mul(n_meas, m, "n_meas x m")));
  if (sched.average_last > 1) {
    out_pick = Buffer(be, 4 * static_cast<size_t>(nd));
    // Zeros until the average-last window fills it, so that a state saved earlier holds no
    // uninitialised bytes (two snapshots of the same run are then the same bytes).
    be->zero(out_pick.get(), out_pick.bytes());
    pick = Buffer(be, sizeof(int64_t) * static_cast<size_t>(n));
    std::vector<int64_t> h(static_cast<size_t>(n));
    for (int64_t c = 0; c < n; ++c) {
      const float u = philox_uniform4(cfg.seed, noise_stream(chain0 + c, cpm), kRngPickKey, 0).x;  // (0, 1]
      h[c] = std::min<int64_t>(sched.average_last - 1, static_cast<int64_t>((1.0f - u) * sched.average_last));
    }
    pick.upload(h.data(), pick.bytes());
  }
  if (smc) {
    smc_logw = Buffer(be, sizeof(double) * static_cast<size_t>(n));
    smc_anc = Buffer(be, sizeof(int64_t) * static_cast<size_t>(n));
    smc_x = Buffer(be, 4 * static_cast<size_t>(nd));
    smc_logw_h.assign(static_cast<size_t>(n), 0.0);
    smc_anc_h.assign(static_cast<size_t>(n), 0);
    smc_w_h.assign(static_cast<size_t>(cpm), 0.0);
  }
  table = Buffer(be, sizeof(StepScalars) * sched.steps.size());
  table.upload(sched.steps.data(), table.bytes());
  cur = Buffer(be, sizeof(StepScalars));
  counter = Buffer(be, sizeof(int64_t));
  norms = Buffer(be, 4 * static_cast<size_t>(n));
  flags = Buffer(be, 4 * static_cast<size_t>(n));
  info.struct_size = sizeof info;
  info.warm_steps = sched.warm_steps;
  info.warm_step = sched.warm_step;
  info.max_stable_delta = sched.max_stable_delta;
  info.operator_norm = op ? op->norm : -1;
  info.diverged_chain = -1;
  info.diverged_step = -1;
  info.mean_residual = std::numeric_limits<double>::quiet_NaN();
}

FusedStepParams almc_sampler_s::fused_params() const {
  FusedStepParams p{};
  p.x = x.f();
  p.n = n;
  p.d = d;
  p.chain0 = chain0;
  p.cpm = cpm;
  p.seed = cfg.seed;
  p.cur = cur.get<StepScalars>();
  p.prior = score->kind == ScoreKind::Callback ? kPriorBuffer : score->kind == ScoreKind::Gaussian ? kPriorGaussian : kPriorGmm;
  p.score = sbuf.f();
  p.tab = tables.view();
  p.resp = resp.f();
  p.resp_work = resp_work.f();
  p.op.kind = kOpNone;
  if (has_lik) {
    if (op_is_fused(op->kind)) {
      p.op = op->local_desc();
    } else {
      p.op.kind = op->kind;
      p.g = gbuf.f();
    }
    p.y = sched.xgp ? ych.f() : y.f();
    p.y_div = sched.xgp ? 1 : cpm;
    p.y_row0 = sched.xgp ? chain0 : 0;  // XGP: one row per chain of the slice
    p.m = m;
  }
  return p;
}

// Calls `call(r0, rows, meas0)` over the slice's rows so that each call's rows are whole
// measurements starting at measurement meas0, or part of the one measurement meas0: the user
// callbacks' contract (row r belongs to measurement meas0 + r / chains_per_meas) holds for any slice.
template <class F>
void almc_sampler_s::for_callback_rows(F&& call) const {
  int64_t r = 0;
  while (r < n) {
    const int64_t g = chain0 + r, meas = g / cpm, j = g - meas * cpm;
    int64_t rows = j != 0 ? std::min(n - r, cpm - j) : ((n - r) / cpm) * cpm;
    if (rows == 0) rows = n - r;  // the tail: part of one measurement
    call(r, rows, meas);
    r += rows;
  }
}

void almc_sampler_s::eval_score_into(float* out, const almc_level& level) {
  Backend* be = ctx->backend.get();
  if (score->kind == ScoreKind::Callback) {
    // Row 0 is global chain chain0 for the call, then back to 0 for direct evaluations.
    if (score->set_row0) score->set_row0(score->user_data, chain0);
    const int rc = score->fn(x.f(), out, n, d, &level, cur.get<almc_level_device>(), be->stream(), score->user_data);
    if (score->set_row0) score->set_row0(score->user_data, 0);
    if (rc != 0)
      fail(ALMC_ERR_CALLBACK, "the score callback (", score->description, ") returned ", rc, " at step ", level.step);
    return;
  }
  tables_t = -1.f;  // level of a final evaluation: recomputed at the next step
  eval_analytic_score(be, score->gmm(), fused_params(), out);
}

// The analytic prior's tables for the step about to run (host level t). Eager runs recompute
// them only when the level changes (NCSN-style schedules hold a level for many steps); captured
// chunks replay one body for many levels, so there they are recomputed every step.
void almc_sampler_s::update_tables(float t) {
  Backend* be = ctx->backend.get();
  if (!be->graphs_supported() && t == tables_t) return;
  be->prior_tables(score->gmm(), d, cur.get<StepScalars>(), tables.view());
  tables_t = t;
}

// SMC at the start of annealing step `host_step` (ALGORITHMS.md Sec. 9), tables at its level t_i:
// each chain's log weight gains log p_{t_i}(x) (the previous level's log-density was subtracted
// after the previous move), then every measurement whose effective sample size fell below the
// threshold (every one at the last step) is resampled systematically, with one uniform keyed by
// (seed, measurement, step), and its weights reset. Only the measurement's own chains are involved,
// so the result does not depend on how measurements are batched or sliced.
void almc_sampler_s::smc_reweight(int64_t host_step, bool last) {
  Backend* be = ctx->backend.get();
  be->add_log_density(tables.view(), cur.get<StepScalars>(), x.f(), n, d, 1.0, smc_logw.get<double>());
  smc_logw.download(smc_logw_h.data(), smc_logw.bytes());
  bool reset = false, moved = false;
  for (int64_t c = 0; c < n; ++c) smc_anc_h[c] = c;
  std::vector<double>& w = smc_w_h;  // sized once in the constructor
  for (int64_t q0 = 0; q0 < n; q0 += cpm) {
    double* lw = smc_logw_h.data() + q0;
    double mx = -INFINITY;
    for (int64_t j = 0; j < cpm; ++j) mx = std::isnan(lw[j]) ? mx : std::max(mx, lw[j]);
    const int64_t meas = (chain0 + q0) / cpm;
    if (!(mx > -INFINITY) || mx == INFINITY)
      fail(ALMC_ERR_DIVERGED, "variant smc: the weights of measurement ", meas, " are not finite at step ", host_step,
           " (a chain became NaN or Inf? try a smaller delta)");
    double sum = 0, sum2 = 0;
    for (int64_t j = 0; j < cpm; ++j) {
      w[j] = std::isnan(lw[j]) ? 0.0 : std::exp(lw[j] - mx);
      sum += w[j];
      sum2 += w[j] * w[j];
    }
    if (!last && sum * sum >= cfg.smc_ess_threshold * static_cast<double>(cpm) * sum2) continue;
    // Systematic resampling: chain j takes the ancestor k whose cumulative weight interval holds
    // (u + j) / cpm, u in [0, 1).
    const double u = 1.0 - philox_uniform4(cfg.seed, static_cast<uint64_t>(meas) << 32, kRngSmcKey,
                                           static_cast<uint64_t>(host_step)).x;
    double cum = w[0];
    int64_t k = 0;
    for (int64_t j = 0; j < cpm; ++j) {
      const double pos = (u + static_cast<double>(j)) / static_cast<double>(cpm) * sum;
      while (k + 1 < cpm && cum <= pos) cum += w[++k];
      smc_anc_h[q0 + j] = q0 + k;
      moved |= k != j;
      lw[j] = 0.0;
    }
    ++info.smc_resamples;
    reset = true;
  }
  if (reset) smc_logw.upload(smc_logw_h.data(), smc_logw.bytes());
  if (!moved) return;
  smc_anc.upload(smc_anc_h.data(), smc_anc.bytes());
  be->gather_rows(x.f(), smc_x.f(), smc_anc.get<int64_t>(), n, d);
  be->copy(x.get(), smc_x.get(), x.bytes(), CopyKind::BackendToBackend);
}

// R = y - xs A x for the linear operators (y per chain for XGP).
void almc_sampler_s::residuals_into_r(const StepScalars* c) {
  Backend* be = ctx->backend.get();
  if (op->kind == kOpLinearCallback) {
    for_callback_rows([&](int64_t r0, int64_t rows, int64_t meas0) {
      const int rc = op->forward(x.f() + r0 * d, rbuf.f() + r0 * m, rows, meas0, cpm, be->stream(), op->user_data);
      if (rc != 0) fail(ALMC_ERR_CALLBACK, "the operator's forward callback returned ", rc);
    });
  } else {
    be->op_forward(op->local_desc(), op->matrix(), x.f(), rbuf.f(), n, d, m, chain0, cpm);
  }
  // XGP's per-chain rows are the slice's own (row c: chain c); y holds every measurement.
  if (sched.xgp)
    be->residual_rows(rbuf.f(), ych.f(), 1, n, m, 0, c);
  else
    be->residual_rows(rbuf.f(), y.f(), cpm, n, m, chain0, c);
}

void almc_sampler_s::likelihood_into_g() {
  Backend* be = ctx->backend.get();
  if (op->kind == kOpNegGradCallback) {
    const float* xin = x.f();
    if (tmp.get()) {
      be->scale_by_xs(x.f(), tmp.f(), n * d, cur.get<StepScalars>());
      xin = tmp.f();
    }
    for_callback_rows([&](int64_t r0, int64_t rows, int64_t meas0) {
      const float* yin = sched.xgp ? ych.f() + r0 * m : y.f() + meas0 * m;
      const int rc = op->neg_grad(xin + r0 * d, yin, gbuf.f() + r0 * d, rows, d, sched.xgp ? 1 : cpm, be->stream(),
                                  op->user_data);
      if (rc != 0) fail(ALMC_ERR_CALLBACK, "the likelihood callback returned ", rc);
    });
    return;
  }
  residuals_into_r(cur.get<StepScalars>());
  if (op->kind == kOpLinearCallback) {
    for_callback_rows([&](int64_t r0, int64_t rows, int64_t meas0) {
      const int rc = op->adjoint(rbuf.f() + r0 * m, gbuf.f() + r0 * d, rows, meas0, cpm, be->stream(), op->user_data);
      if (rc != 0) fail(ALMC_ERR_CALLBACK, "the operator's adjoint callback returned ", rc);
    });
  } else {
    be->op_adjoint(op->local_desc(), op->matrix(), rbuf.f(), gbuf.f(), n, d, m, chain0, cpm);
  }
}

// One step: the same launches for every step of a segment, so a chunk can be captured once.
void almc_sampler_s::step_body(Segment seg, int64_t host_step) {
  Backend* be = ctx->backend.get();
  be->begin_step(table.get<StepScalars>(), counter.get<int64_t>(), cur.get<StepScalars>());
  if (sched.xgp) be->xgp_step_aux(ych.f(), n, m, chain0, cpm, cfg.seed, cur.get<StepScalars>());
  // An analytic prior's tables, responsibilities and update go to the backend as one call (the CPU
  // runs them in one parallel region); the tables are computed there unless already current.
  const bool analytic = seg != kWarm && score->kind != ScoreKind::Callback;
  GmmPrior prior{};
  bool tables_due = false;
  if (seg != kWarm) {
    if (score->kind == ScoreKind::Callback) {
      const StepScalars& hs = sched.steps[static_cast<size_t>(host_step)];
      const almc_level level{hs.t, hs.sigma, hs.alpha_bar, host_step};
      eval_score_into(sbuf.f(), level);
    } else if (smc) {
      update_tables(sched.steps[static_cast<size_t>(host_step)].t);
      smc_reweight(host_step, host_step + 1 == static_cast<int64_t>(sched.steps.size()));
    } else {
      const float t = sched.steps[static_cast<size_t>(host_step)].t;
      tables_due = be->graphs_supported() || t != tables_t;  // as update_tables decides
      if (tables_due) {
        prior = score->gmm();
        tables_t = t;
      }
    }
  }
  if (has_lik && !op_is_fused(op->kind)) likelihood_into_g();
  if (analytic)
    be->analytic_prior_step(fused_params(), tables_due ? &prior : nullptr);
  else
    be->fused_step(fused_params());
  // SMC: the next annealing step's weight is log p_{t_next}(x) - log p_{t_this}(x) at this state
  // (the warm start's prior is N(0, I)); the second half is taken now, while the tables hold t_this.
  if (smc && host_step + 1 >= sched.warm_steps && host_step + 1 < static_cast<int64_t>(sched.steps.size()))
    be->add_log_density(tables.view(), cur.get<StepScalars>(), x.f(), n, d, -1.0, smc_logw.get<double>());
  if (seg == kPick)
    be->copy_picked(x.f(), out_pick.f(), pick.get<int64_t>(), static_cast<int64_t>(sched.steps.size()) - sched.average_last,
                    n, d, cur.get<StepScalars>());
}

void almc_sampler_s::check_chains(int64_t steps_done, bool final) {
  Backend* be = ctx->backend.get();
  if (rbuf.get() && has_lik) residuals_into_r(final ? nullptr : cur.get<StepScalars>());
  be->row_norms_and_flags(rbuf.get() && has_lik ? rbuf.f() : nullptr, m, x.f(), d, n, norms.f(), flags.get<int32_t>());
  be->check("diagnostics");
  std::vector<int32_t> hf(static_cast<size_t>(n));
  final_norms.resize(static_cast<size_t>(n));
  flags.download(hf.data(), flags.bytes());
  norms.download(final_norms.data(), norms.bytes());
  double sum = 0;
  for (float v : final_norms) sum += v;
  info.mean_residual = sum / static_cast<double>(n);
  for (int64_t c = 0; c < n; ++c)
    if (hf[c]) {
      info.diverged_chain = chain0 + c;
      info.diverged_step = steps_done;
      fail(ALMC_ERR_DIVERGED, "chain ", chain0 + c, " became NaN or Inf by step ", steps_done, " of ", sched.steps.size(),
           score_is_callback(score)
               // A user's score function (or network) may be the cause: say so before the step size.
               ? " (did the score return NaN or Inf for a finite x? otherwise the step size is too large for this "
                 "score or likelihood: try a smaller delta/eps)"
               : " (step size too large for this score or likelihood? try a smaller delta/eps)",
           // Without the operator's norm the warm start's default step assumed ||A|| <= 1.
           has_lik && op && op->norm < 0 && sched.warm_steps > 0 && cfg.warm_step <= 0
               ? "; the operator's norm is unknown and the warm start's default step assumed ||A|| <= 1: give the "
                 "operator's norm (the bound then sets the steps) or a smaller warm_step"
               : "");
    }
}

void almc_sampler_s::run() {
  Backend* be = ctx->backend.get();
  const auto scope = be->device_scope();  // the score and operator callbacks find the context's device current
  if (has_lik && !y_set) fail(ALMC_ERR_WRONG_STATE, "set the measurement (almc_sampler_set_measurement) before running");
  // A loaded state (load_state) continues its run: x and the auxiliary buffers hold it already.
  const int64_t resume = resume_from;
  if (cfg.init == ALMC_INIT_USER && !state_set && resume < 0)
    fail(ALMC_ERR_WRONG_STATE, "init is ALMC_INIT_USER: set the state (almc_sampler_set_state) before running");
  if (resume >= 0 && measurement_digest() != resume_y) {
    // The loaded state is refused as load_state refuses a state of another run: dropped, so the
    // next run starts over (it kept failing until a state was loaded again).
    resume_from = -1;
    fail(ALMC_ERR_INVALID_ARGUMENT, "the measurement differs from the one of the run whose state was loaded (the "
                                    "state is dropped: load it again after setting its measurement)");
  }
  resume_from = -1;
  stopped_at = -1;
  info.start_step = std::max<int64_t>(resume, 0);
  const auto t0 = std::chrono::steady_clock::now();
  ran = false;
  info.diverged_chain = info.diverged_step = -1;
  snapshots.clear();
  snapshot_steps.clear();

  // Initial state.
  if (resume >= 0) {
    tables_t = -1.f;
  } else if (cfg.init == ALMC_INIT_USER) {
    be->copy(x.get(), x0.get(), x.bytes(), CopyKind::BackendToBackend);
    if (sched.coord_factor != 1.f) {
      StepScalars sc{};
      sc.xs = sched.coord_factor;
      be->copy(cur.get(), &sc, sizeof sc, CopyKind::HostToBackend);
      be->scale_by_xs(x.f(), x.f(), n * d, cur.get<StepScalars>());
    }
  } else {
    be->fill_random(x.f(), n, d, chain0, cpm, cfg.seed, kRngInitKey, sched.init_scale, sched.init_uniform);
  }
  if (sched.xgp && resume < 0) {
    // y_1 = y + sum_k sqrt(eta_k^2 - eta_{k+1}^2) xi_k; each later stage subtracts its xi_k again.
    // Each measurement's y into its first chain's row, then doubled: log2(chains) copies per
    // measurement, not one per chain (65536 device copies at 65536 chains).
    for (int64_t c = 0; c < n;) {
      const int64_t q = (chain0 + c) / cpm, rows = std::min(n, (q + 1) * cpm - chain0) - c;
      float* base = ych.f() + c * m;
      be->copy(base, y.f() + q * m, 4 * static_cast<size_t>(m), CopyKind::BackendToBackend);
      for (int64_t have = 1; have < rows; have *= 2)
        be->copy(base + have * m, base, 4 * static_cast<size_t>(m * std::min(have, rows - have)), CopyKind::BackendToBackend);
      c += rows;
    }
    for (size_t k = 0; k < sched.xgp_scales.size(); ++k) {
      StepScalars sc{};
      sc.aux = static_cast<int32_t>(k);
      sc.aux_scale = -sched.xgp_scales[k];
      be->copy(cur.get(), &sc, sizeof sc, CopyKind::HostToBackend);
      be->xgp_step_aux(ych.f(), n, m, chain0, cpm, cfg.seed, cur.get<StepScalars>());
    }
  }
  const int64_t first = std::max<int64_t>(resume, 0);
  be->copy(counter.get(), &first, sizeof first, CopyKind::HostToBackend);

  const int64_t total = static_cast<int64_t>(sched.steps.size());
  const int64_t warm_end = sched.warm_steps;
  const int64_t pick_start = sched.average_last > 1 ? total - sched.average_last : total;
  if (smc) {
    // SMC reads the weights on the host at every annealing step: no graphs.
    std::fill(smc_logw_h.begin(), smc_logw_h.end(), 0.0);
    smc_logw.upload(smc_logw_h.data(), smc_logw.bytes());
    info.smc_resamples = 0;
  }
  const bool op_graph_ok = !(op && (op->kind == kOpLinearCallback || op->kind == kOpNegGradCallback));
  bool score_graph_ok = !score_is_callback(score) || (score->flags & ALMC_SCORE_GRAPH_SAFE);
  if (!score_graph_ok && score->prepare && cfg.use_graphs && be->graphs_supported() && op_graph_ok) {
    score->prepare(score->user_data, n, be->stream());  // plan for this run's rows: graph-safe after
    score_graph_ok = true;
  }
  const bool graph_ok = !smc && cfg.use_graphs && be->graphs_supported() && score_graph_ok && op_graph_ok;
  info.used_graphs = graph_ok;
  // The progress callback (which may cancel) runs at every check and, whatever check_every is, at
  // least every kPollSeconds of wall time, polled between steps and graph chunks: a cancel takes
  // effect within that plus one step or chunk.
  constexpr double kPollSeconds = 0.2;
  auto last_report = t0;
  auto report = [&](int64_t step, std::chrono::steady_clock::time_point now) {
    last_report = now;
    const double secs = std::chrono::duration<double>(now - t0).count();
    almc_progress pr{step, total, secs > 0 ? static_cast<double>(step) / secs : 0.0, secs, info.mean_residual};
    if (cfg.progress(&pr, cfg.progress_user_data) != 0) {
      stopped_at = step;  // called between steps: the state is that after `step` steps
      fail(ALMC_ERR_CANCELLED, "stopped by the progress callback at step ", step, " of ", total);
    }
  };
  auto poll = [&](int64_t step) {
    if (!cfg.progress) return;
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_report).count() < kPollSeconds) return;
    be->sync();  // the backend must not run far ahead of a cancel (CUDA queues asynchronously)
    report(step, now);
  };
  int64_t i = first;
  auto next_multiple = [&](int64_t every) { return every > 0 ? (i / every + 1) * every : total + 1; };
  int64_t next_check = std::min(total, next_multiple(cfg.check_every));
  int64_t next_snap = next_multiple(cfg.snapshot_every);
  int64_t next_state = cfg.checkpoint ? next_multiple(cfg.checkpoint_every) : total + 1;
  while (i < total) {
    const Segment seg = i < warm_end ? kWarm : i < pick_start ? kAnneal : kPick;
    const int64_t seg_end = seg == kWarm ? warm_end : seg == kAnneal ? pick_start : total;
    const int64_t stop = std::min({seg_end, next_check, next_snap, next_state});
    int64_t len = stop - i;
    if (graph_ok) {
      // Replay captured chunks of graph_chunk steps; capture each (segment, length) once.
      while (len > 0) {
        const int64_t chunk = std::min(len, cfg.graph_chunk);
        const auto key = std::make_pair(static_cast<int>(seg), chunk);
        auto it = graphs.find(key);
        if (it == graphs.end()) {
          be->capture_begin();
          try {
            for (int64_t k = 0; k < chunk; ++k) step_body(seg, i + k);
          } catch (...) {
            try {  // end the capture (the stream stays usable) and free what it made
              if (GraphHandle* partial = be->capture_end()) be->graph_destroy(partial);
            } catch (...) {
            }
            throw;
          }
          GraphHandle* made = be->capture_end();
          try {
            it = graphs.emplace(key, made).first;
          } catch (...) {
            be->graph_destroy(made);
            throw;
          }
        }
        be->graph_launch(it->second);
        i += chunk;
        len -= chunk;
        if (len > 0) poll(i);
      }
    } else {
      for (; len > 0; --len, ++i) {
        step_body(seg, i);
        if (len > 1) poll(i + 1);
      }
    }
    be->check("step");
    if (i == next_snap) {
      be->sync();
      const size_t old = snapshots.size();
      snapshots.resize(old + static_cast<size_t>(n * d));
      x.download(snapshots.data() + old, x.bytes());
      snapshot_steps.push_back(i);
      next_snap += cfg.snapshot_every;
    }
    if (i == next_check || i == total) {
      check_chains(i, false);
      next_check = std::min(total, next_check + cfg.check_every);
      if (cfg.progress) report(i, std::chrono::steady_clock::now());
    }
    if (i == next_state) {
      state_buf.resize(state_bytes());
      save_state(state_buf.data(), state_buf.size(), i);
      const int rc = cfg.checkpoint(state_buf.data(), state_buf.size(), i, cfg.checkpoint_user_data);
      if (rc != 0) fail(ALMC_ERR_CALLBACK, "the checkpoint callback returned ", rc, " at step ", i);
      next_state += cfg.checkpoint_every;
    }
  }

  if (sched.average_last > 1) be->copy(x.get(), out_pick.get(), x.bytes(), CopyKind::BackendToBackend);
  int64_t evals = total - warm_end;  // the warm start uses the N(0, I) score, not the prior's
  if (sched.tweedie) {
    // E[X_0 | X_t = x] = e^t (x + (1 - e^{-2t}) s(x, t)) at the last level.
    StepScalars sc = sched.steps.back();
    const double t = sched.tweedie_t;
    sc.t = static_cast<float>(t);
    sc.kind = kStepAnneal;
    be->copy(cur.get(), &sc, sizeof sc, CopyKind::HostToBackend);
    const almc_level level{t, std::sqrt(std::expm1(2 * t)), std::exp(-2 * t), total};
    eval_score_into(sbuf.f(), level);
    be->axpby_tweedie(x.f(), sbuf.f(), n * d, static_cast<float>(std::exp(t)), static_cast<float>(-std::expm1(-2 * t)));
    ++evals;
  }
  check_chains(total, true);
  be->sync();
  info.steps = total;
  info.score_evals = evals;
  info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ran = true;
}

void almc_sampler_s::mean_std(float* mean, float* std) {
  Backend* be = ctx->backend.get();
  if (chain0 % cpm != 0 || n % cpm != 0)
    fail(ALMC_ERR_UNSUPPORTED, "the slice (chains ", chain0, " to ", chain0 + n - 1,
         ") splits a measurement's chains: merge the slices' samples for the mean and std");
  const int64_t meas = n / cpm;
  const size_t bytes = 4 * static_cast<size_t>(meas * d);
  Buffer dm(be, bytes), ds(be, bytes);
  be->mean_std(x.f(), meas, cpm, d, dm.f(), ds.f());
  be->check("mean_std");
  if (mean) dm.download(mean, bytes);
  if (std) ds.download(std, bytes);
}
