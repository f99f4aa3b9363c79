// C API: samplers.
#include <almc/almc.h>

#include "host/capi/guard.hpp"
#include "host/samplers/sampler.hpp"

#include <cstring>
#include <memory>

using namespace almc;

namespace {

template <class F>
almc_status sampler_guarded(almc_sampler_t s, F&& body) {
  if (!s) return ALMC_ERR_NULL_POINTER;
  return guarded(&s->last_error, body);
}

}  // namespace

extern "C" {

almc_sampler_config almc_sampler_config_default(void) {
  almc_sampler_config c;
  std::memset(&c, 0, sizeof c);
  c.struct_size = sizeof c;
  c.method = ALMC_METHOD_ALMC;
  c.n_meas = 1;
  c.chains_per_meas = 1;
  c.seed = 0;
  c.noise_std = 0;
  c.likelihood_weight = 1;
  c.kappa = 10;
  c.delta = 1e-3;
  c.t_start = 5;
  c.t_stop = 0.01;
  c.warm_steps = -1;
  c.warm_step = 0;
  c.average_last = 0;
  c.schedule = ALMC_SCHEDULE_DEFAULT;
  c.n_levels = 100;
  c.sigma_max = 0;  // method default: 50 (NCSN/ALD), 1 (XGP)
  c.sigma_min = 0.01;
  c.steps_per_level = 5;
  c.eps = 0;        // method default: 2e-5 (NCSN/ALD), 1e-3 (XGP)
  c.init = ALMC_INIT_GAUSSIAN;
  c.init_scale = 1;
  c.use_graphs = 1;
  c.graph_chunk = 50;
  c.check_every = 100;
  return c;
}

almc_status almc_sampler_create(almc_context_t ctx, almc_score_t score, almc_operator_t op,
                                const almc_sampler_config* config, almc_sampler_t* out) {
  if (out) *out = nullptr;
  if (!ctx) return ALMC_ERR_NULL_POINTER;
  return guarded(&ctx->last_error, [&] {
    require(out, "out");
    require(score, "score");
    require_struct(config, "config");
    if (score->ctx != ctx) fail(ALMC_ERR_INVALID_ARGUMENT, "the score belongs to another context");
    if (op && op->ctx != ctx) fail(ALMC_ERR_INVALID_ARGUMENT, "the operator belongs to another context");
    auto s = std::make_unique<almc_sampler_s>();
    s->ctx = ctx;
    s->score = score;
    s->op = op;
    s->cfg = *config;
    s->create();
    *out = s.release();
  });
}

void almc_sampler_destroy(almc_sampler_t s) { delete s; }

almc_status almc_sampler_set_measurement(almc_sampler_t s, const float* y) {
  return sampler_guarded(s, [&] {
    require(y, "y");
    if (!s->op) fail(ALMC_ERR_WRONG_STATE, "the sampler has no operator, so no measurement");
    require_finite(y, s->n_meas * s->m, "y");
    s->y.upload(y, s->y.bytes());
    s->y_set = true;
  });
}

almc_status almc_sampler_set_state(almc_sampler_t s, const float* x) {
  return sampler_guarded(s, [&] {
    require(x, "x");
    if (s->cfg.init != ALMC_INIT_USER) fail(ALMC_ERR_WRONG_STATE, "set init = ALMC_INIT_USER to give an initial state");
    require_finite(x, s->n * s->d, "x");
    s->x0.upload(x, s->x0.bytes());
    s->state_set = true;
  });
}

almc_status almc_sampler_run(almc_sampler_t s) {
  return sampler_guarded(s, [&] { s->run(); });
}

almc_status almc_sampler_get_samples(almc_sampler_t s, float* out) {
  return sampler_guarded(s, [&] {
    require(out, "out");
    if (!s->ran) fail(ALMC_ERR_WRONG_STATE, "no completed run: call almc_sampler_run first");
    s->x.download(out, s->x.bytes());
  });
}

almc_status almc_sampler_get_mean_std(almc_sampler_t s, float* mean, float* std) {
  return sampler_guarded(s, [&] {
    if (!mean && !std) fail(ALMC_ERR_NULL_POINTER, "mean and std are both NULL");
    if (!s->ran) fail(ALMC_ERR_WRONG_STATE, "no completed run: call almc_sampler_run first");
    s->mean_std(mean, std);
  });
}

almc_status almc_sampler_get_residuals(almc_sampler_t s, float* out) {
  return sampler_guarded(s, [&] {
    require(out, "out");
    if (!s->ran) fail(ALMC_ERR_WRONG_STATE, "no completed run: call almc_sampler_run first");
    std::memcpy(out, s->final_norms.data(), sizeof(float) * s->final_norms.size());
  });
}

almc_status almc_sampler_state_pointer(almc_sampler_t s, float** out) {
  return sampler_guarded(s, [&] {
    require(out, "out");
    *out = s->x.f();
  });
}

almc_status almc_sampler_snapshot_count(almc_sampler_t s, int64_t* count) {
  return sampler_guarded(s, [&] {
    require(count, "count");
    *count = static_cast<int64_t>(s->snapshot_steps.size());
  });
}

almc_status almc_sampler_get_snapshots(almc_sampler_t s, float* out, int64_t* steps) {
  return sampler_guarded(s, [&] {
    if (s->snapshot_steps.empty()) return;
    require(out, "out");
    std::memcpy(out, s->snapshots.data(), sizeof(float) * s->snapshots.size());
    if (steps) std::memcpy(steps, s->snapshot_steps.data(), sizeof(int64_t) * s->snapshot_steps.size());
  });
}

almc_status almc_sampler_run_info(almc_sampler_t s, almc_run_info* out) {
  return sampler_guarded(s, [&] {
    require_struct(out, "out");
    *out = s->info;
  });
}

almc_status almc_sampler_workspace_bytes(almc_sampler_t s, size_t* out) {
  return sampler_guarded(s, [&] {
    require(out, "out");
    *out = s->workspace_bytes();
  });
}

const char* almc_sampler_last_error(almc_sampler_t s) { return s ? s->last_error.c_str() : "sampler is NULL"; }

}  // extern "C"
