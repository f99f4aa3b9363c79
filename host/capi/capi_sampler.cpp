// C API: samplers.
#include <almc/almc.h>

#include "host/capi/guard.hpp"
#include "host/capi/lifetime.hpp"
#include "host/samplers/sampler.hpp"
#include "host/samplers/schedule.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

using namespace almc;

namespace {

template <class F>
almc_status sampler_guarded(almc_sampler_t s, F&& body) {
  if (!s) return ALMC_ERR_NULL_POINTER;
  return guarded(&s->last_error, body);
}

// Runs in progress: which contexts are running a sampler (a backend runs one sampler at a time:
// a run started from a progress callback would share its scratch memory) and which running
// samplers were destroyed from their own callback (deleted when their run returns).
struct Running {
  std::mutex mu;
  std::unordered_set<almc_context_t> contexts;
  std::unordered_map<almc_sampler_t, bool> samplers;  // -> destroy requested
};
Running& running() {
  static Running r;
  return r;
}

void refuse_while_running(almc_sampler_t s, const char* call) {
  Running& r = running();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.samplers.count(s)) fail(ALMC_ERR_WRONG_STATE, call, " called while this sampler is running (from its progress callback?)");
}

void delete_sampler(almc_sampler_t s) {
  almc_context_t ctx = s->ctx;
  almc_score_t score = s->score;
  almc_operator_t op = s->op;
  delete s;  // frees its backend memory while the context is still alive
  release(op);
  release(score);
  release(ctx);
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

int almc_method_reads_field(almc_method method, almc_schedule schedule, const char* field) {
  // Read as ints: a C caller may pass any value, which is not a valid enumerator in C++.
  return almc::method_reads_field(almc::raw_enum(method), almc::raw_enum(schedule), field);
}

almc_status almc_sampler_create(almc_context_t ctx, almc_score_t score, almc_operator_t op,
                                const almc_sampler_config* config, almc_sampler_t* out) {
  if (out) *out = nullptr;
  if (!ctx) return ALMC_ERR_NULL_POINTER;
  return guarded(&ctx->last_error, [&] {
    require(out, "out");
    require(score, "score");
    const almc_sampler_config cfg = read_struct(config, almc_sampler_config_default(), "config");
    if (score->ctx != ctx) fail(ALMC_ERR_INVALID_ARGUMENT, "the score belongs to another context");
    if (op && op->ctx != ctx) fail(ALMC_ERR_INVALID_ARGUMENT, "the operator belongs to another context");
    auto s = std::make_unique<almc_sampler_s>();
    s->ctx = ctx;
    s->score = score;
    s->op = op;
    s->cfg = cfg;
    s->create();
    *out = s.release();
    retain(ctx);
    retain(score);
    retain(op);
  });
}

void almc_sampler_destroy(almc_sampler_t s) {
  if (!s) return;
  {
    Running& r = running();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.samplers.find(s);
    if (it != r.samplers.end()) {
      it->second = true;  // destroyed from inside its own run: deleted when the run returns
      return;
    }
  }
  delete_sampler(s);
}

almc_status almc_sampler_set_measurement(almc_sampler_t s, const float* y) {
  return sampler_guarded(s, [&] {
    refuse_while_running(s, "almc_sampler_set_measurement");
    require(y, "y");
    if (!s->op) fail(ALMC_ERR_WRONG_STATE, "the sampler has no operator, so no measurement");
    require_finite(y, s->n_meas * s->m, "y");
    s->y.upload(y, s->y.bytes());
    Fnv1a h;
    h.add_array(y, static_cast<size_t>(s->n_meas * s->m));
    s->y_digest = h.h;
    s->y_set = true;
  });
}

almc_status almc_sampler_set_state(almc_sampler_t s, const float* x) {
  return sampler_guarded(s, [&] {
    refuse_while_running(s, "almc_sampler_set_state");
    require(x, "x");
    if (s->cfg.init != ALMC_INIT_USER) fail(ALMC_ERR_WRONG_STATE, "set init = ALMC_INIT_USER to give an initial state");
    require_finite(x, s->n * s->d, "x");
    s->x0.upload(x, s->x0.bytes());
    s->state_set = true;
  });
}

almc_status almc_sampler_run(almc_sampler_t s) {
  if (!s) return ALMC_ERR_NULL_POINTER;
  Running& r = running();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (r.contexts.count(s->ctx)) {
      s->last_error = r.samplers.count(s) ? "almc_sampler_run called while this sampler is running (from its progress callback?)"
                                          : "almc_sampler_run called while another sampler of the same context is running";
      return ALMC_ERR_WRONG_STATE;
    }
    r.contexts.insert(s->ctx);
    r.samplers.emplace(s, false);
  }
  const almc_status st = sampler_guarded(s, [&] { s->run(); });
  bool destroy = false;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    r.contexts.erase(s->ctx);
    destroy = r.samplers[s];
    r.samplers.erase(s);
  }
  if (destroy) delete_sampler(s);
  return st;
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

almc_status almc_chain_mean_std(const float* x, int64_t n_meas, int64_t chains_per_meas, int64_t d, float* mean,
                                float* std) {
  return guarded(unbound_last_error(), [&] {
    require(x, "x");
    if (!mean && !std) fail(ALMC_ERR_NULL_POINTER, "mean and std are both NULL");
    if (n_meas <= 0 || chains_per_meas <= 0 || d <= 0)
      fail(ALMC_ERR_INVALID_ARGUMENT, "n_meas, chains_per_meas and d must be positive");
    checked_mul(checked_mul(n_meas, chains_per_meas, "chains"), d, "chains x d");
    // The host backend's reduction (the functor both backends share), on the caller's arrays.
    make_cpu_backend(0)->mean_std(x, n_meas, chains_per_meas, d, mean, std);
  });
}

almc_status almc_chain_block(int64_t start, int64_t count, int64_t parts, int64_t part, int64_t* block_start,
                             int64_t* block_count) {
  return guarded(unbound_last_error(), [&] {
    require(block_start, "block_start");
    require(block_count, "block_count");
    if (start < 0 || count < 0 || parts < 1 || part < 0 || part >= parts)
      fail(ALMC_ERR_INVALID_ARGUMENT, "need start >= 0, count >= 0 and 0 <= part < parts");
    // Every block then starts and ends within start .. start + count: no sum below can overflow.
    if (start > INT64_MAX - count)
      fail(ALMC_ERR_INVALID_ARGUMENT, "the range start ", start, " + count ", count, " is beyond int64");
    const int64_t base = count / parts, extra = count % parts;
    *block_count = base + (part < extra ? 1 : 0);
    *block_start = start + part * base + std::min(part, extra);
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

almc_status almc_sampler_state_size(almc_sampler_t s, size_t* bytes) {
  return sampler_guarded(s, [&] {
    require(bytes, "bytes");
    *bytes = s->state_bytes();
  });
}

almc_status almc_sampler_save_state(almc_sampler_t s, void* state, size_t bytes, int64_t* step) {
  return sampler_guarded(s, [&] {
    refuse_while_running(s, "almc_sampler_save_state");
    require(state, "state");
    if (s->stopped_at < 0)
      fail(ALMC_ERR_WRONG_STATE, "no stopped run to save: a state is saved after a run cancelled by its progress "
                                 "callback (or taken during a run with the checkpoint callback)");
    s->save_state(state, bytes, s->stopped_at);
    if (step) *step = s->stopped_at;
  });
}

almc_status almc_sampler_load_state(almc_sampler_t s, const void* state, size_t bytes) {
  return sampler_guarded(s, [&] {
    refuse_while_running(s, "almc_sampler_load_state");
    require(state, "state");
    s->load_state(state, bytes);
  });
}

almc_status almc_sampler_run_info(almc_sampler_t s, almc_run_info* out) {
  return sampler_guarded(s, [&] {
    write_struct(out, s->info, "out");
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
