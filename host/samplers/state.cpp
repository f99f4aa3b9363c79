// A run's resumable state (almc_sampler_save_state / load_state, the checkpoint callback): a
// header naming the run, then the chains' x, XGP's per-chain measurements and the average-last
// pick buffer, as they are after a whole number of steps. Everything else a step reads is either
// rebuilt from the configuration (the schedule, the pick indices, the prior's tables) or recomputed
// from x by the step itself, so continuing from the state replays the remaining steps exactly.
#include "host/samplers/sampler.hpp"
#include "host/samplers/state.hpp"

#include "host/core/digest.hpp"
#include "host/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

using namespace almc;

namespace {

constexpr char kMagic[8] = {'A', 'L', 'M', 'C', 'S', 'T', 'A', 'T'};
// 2: the prior, matrix and measurement digests are taken from the inputs as given (at creation /
// set_measurement), no longer read back from the backend.
constexpr uint32_t kVersion = 2;

struct StateHeader {
  char magic[8];
  uint32_t version, header_bytes;
  uint64_t seed;
  uint64_t schedule, prior, op, y;  // digests
  int64_t step, total;
  int64_t n, d, m, chain0, n_meas, cpm;
  int64_t x_floats, aux_floats, pick_floats;
};

// Everything build_schedule decided, field by field (StepScalars has padding).
uint64_t schedule_digest(const Schedule& s, const almc_sampler_config& cfg) {
  Fnv1a h;
  h.add_value(static_cast<uint64_t>(s.steps.size()));
  for (const StepScalars& c : s.steps) {
    for (const float v : {c.t, c.sigma, c.alpha_bar, c.log_sigma, c.h, c.noise, c.lik, c.xs, c.neg_xs, c.post, c.aux_scale})
      h.add_value(v);
    h.add_value(c.kind);
    h.add_value(c.aux);
    h.add_value(c.step);
  }
  h.add_value(s.warm_steps);
  h.add_value(s.init_scale);
  h.add_value(s.coord_factor);
  h.add_value(s.init_uniform);
  h.add_value(s.tweedie);
  h.add_value(s.tweedie_t);
  h.add_value(s.average_last);
  h.add_value(s.xgp);
  h.add_vector(s.xgp_scales);
  h.add_value(raw_enum(cfg.method));
  h.add_value(raw_enum(cfg.init));
  return h.h;
}

uint64_t prior_digest(const almc_score_s& s) {
  Fnv1a h;
  h.add_value(static_cast<int>(s.kind));
  h.add_value(s.d);
  h.add_value(s.K);
  h.add_value(s.params_digest);  // the K x d parameters, digested at creation
  h.add_string(s.description);
  return h.h;
}

uint64_t operator_digest(const almc_operator_s* op, bool has_lik) {
  Fnv1a h;
  h.add_value(has_lik);
  if (op) {
    h.add_value(op->kind);
    h.add_value(op->m);
    h.add_value(op->d);
    h.add_value(op->n_mats);
    h.add_value(op->norm);
    h.add_value(op->tf32);
    h.add_vector(op->h_mask);
    h.add_vector(op->h_kernel);
    h.add_string(op->description);
    h.add_value(op->A_digest);  // dense matrices, digested at creation
  }
  return h.h;
}

// The header of a state, once it is known to be one of this format (magic, byte order, version).
StateHeader checked_header(const void* in, size_t bytes) {
  StateHeader hd;
  if (bytes < sizeof hd) fail(ALMC_ERR_INVALID_ARGUMENT, "not an almc sampler state (", bytes, " bytes)");
  std::memcpy(&hd, in, sizeof hd);
  if (std::memcmp(hd.magic, kMagic, sizeof kMagic) != 0) fail(ALMC_ERR_INVALID_ARGUMENT, "not an almc sampler state");
  if (hd.version == __builtin_bswap32(kVersion))
    fail(ALMC_ERR_INVALID_ARGUMENT, "a sampler state written on a machine of the other byte order (states hold the "
         "chains in the writer's native layout)");
  if (hd.version != kVersion || hd.header_bytes != sizeof hd)
    fail(ALMC_ERR_INVALID_ARGUMENT, "a sampler state of another format (version ", hd.version, "; this library reads ", kVersion, ")");
  return hd;
}

}  // namespace

bool almc::has_state_magic(const void* data, size_t bytes) {
  return bytes >= sizeof kMagic && std::memcmp(data, kMagic, sizeof kMagic) == 0;
}

almc::StateHead almc::read_state_head(const void* data, size_t bytes) {
  if (has_state_magic(data, bytes) && bytes < sizeof(StateHeader))
    fail(ALMC_ERR_PARSE, "the state is truncated (", bytes, " bytes, shorter than its header of ", sizeof(StateHeader), ")");
  const StateHeader hd = checked_header(data, bytes);
  // The header's counts give the state's whole size: a state cut short (or with bytes after it)
  // is damaged, not a shorter run's. Counts are input: bounded before they are added.
  constexpr int64_t kMaxFloats = int64_t(1) << 50;
  for (const int64_t c : {hd.x_floats, hd.aux_floats, hd.pick_floats})
    if (c < 0 || c > kMaxFloats) fail(ALMC_ERR_PARSE, "the state's header is damaged (a buffer of ", c, " floats)");
  const uint64_t said = sizeof hd + 4 * static_cast<uint64_t>(hd.x_floats + hd.aux_floats + hd.pick_floats);
  if (said != bytes)
    fail(ALMC_ERR_PARSE, "the state is truncated or padded (", bytes, " bytes, its header says ", said, ")");
  return {hd.step, hd.total};
}

uint64_t almc_sampler_s::measurement_digest() const { return op && y_set ? y_digest : 0; }

size_t almc_sampler_s::state_bytes() const { return sizeof(StateHeader) + x.bytes() + ych.bytes() + out_pick.bytes(); }

void almc_sampler_s::save_state(void* out, size_t bytes, int64_t step) const {
  if (smc)
    fail(ALMC_ERR_UNSUPPORTED, "variant smc carries per-chain importance weights that a resumable state does not hold: "
         "snapshots and resume are not available with it");
  if (bytes < state_bytes()) fail(ALMC_ERR_INVALID_ARGUMENT, "the state needs ", state_bytes(), " bytes, the buffer has ", bytes);
  StateHeader hd;
  std::memset(&hd, 0, sizeof hd);
  std::memcpy(hd.magic, kMagic, sizeof kMagic);
  hd.version = kVersion;
  hd.header_bytes = sizeof hd;
  hd.seed = cfg.seed;
  hd.schedule = schedule_digest(sched, cfg);
  hd.prior = prior_digest(*score);
  hd.op = operator_digest(op, has_lik);
  hd.y = measurement_digest();
  hd.step = step;
  hd.total = static_cast<int64_t>(sched.steps.size());
  hd.n = n;
  hd.d = d;
  hd.m = m;
  hd.chain0 = chain0;
  hd.n_meas = n_meas;
  hd.cpm = cpm;
  hd.x_floats = static_cast<int64_t>(x.bytes() / 4);
  hd.aux_floats = static_cast<int64_t>(ych.bytes() / 4);
  hd.pick_floats = static_cast<int64_t>(out_pick.bytes() / 4);
  unsigned char* p = static_cast<unsigned char*>(out);
  std::memcpy(p, &hd, sizeof hd);
  p += sizeof hd;
  for (const Buffer* b : {&x, &ych, &out_pick}) {
    b->download(p, b->bytes());
    p += b->bytes();
  }
}

void almc_sampler_s::load_state(const void* in, size_t bytes) {
  if (smc)
    fail(ALMC_ERR_UNSUPPORTED, "variant smc carries per-chain importance weights that a resumable state does not hold: "
         "snapshots and resume are not available with it");
  const StateHeader hd = checked_header(in, bytes);
  const int64_t total = static_cast<int64_t>(sched.steps.size());
  if (hd.n != n || hd.d != d || hd.m != m || hd.chain0 != chain0 || hd.n_meas != n_meas || hd.cpm != cpm)
    fail(ALMC_ERR_INVALID_ARGUMENT, "the state is from another run: ", hd.n_meas, " measurement(s) x ", hd.cpm,
         " chains (rows ", hd.chain0, " + ", hd.n, "), d = ", hd.d, ", m = ", hd.m, "; this sampler has ", n_meas, " x ",
         cpm, " (rows ", chain0, " + ", n, "), d = ", d, ", m = ", m);
  if (hd.seed != cfg.seed) fail(ALMC_ERR_INVALID_ARGUMENT, "the state is from another run: seed ", hd.seed, ", this sampler's is ", cfg.seed);
  if (hd.prior != prior_digest(*score)) fail(ALMC_ERR_INVALID_ARGUMENT, "the state is from another run: its prior differs");
  if (hd.op != operator_digest(op, has_lik))
    fail(ALMC_ERR_INVALID_ARGUMENT, "the state is from another run: its operator differs");
  if (hd.total != total || hd.schedule != schedule_digest(sched, cfg))
    fail(ALMC_ERR_INVALID_ARGUMENT, "the state is from another run: its method or schedule differs (", hd.total,
         " steps; this sampler's: ", total, ")");
  if (hd.step < 0 || hd.step > total) fail(ALMC_ERR_INVALID_ARGUMENT, "the state's step ", hd.step, " is outside the run's ", total);
  // Counts compared with the buffers' sizes / 4 (a count times 4 could overflow: the header is input).
  if (hd.x_floats != static_cast<int64_t>(x.bytes() / 4) || hd.aux_floats != static_cast<int64_t>(ych.bytes() / 4) ||
      hd.pick_floats != static_cast<int64_t>(out_pick.bytes() / 4) || bytes != state_bytes())
    fail(ALMC_ERR_INVALID_ARGUMENT, "the state holds ", bytes, " bytes, a state of this run ", state_bytes());
  const unsigned char* p = static_cast<const unsigned char*>(in) + sizeof hd;
  // A checkpoint can be taken between two divergence checks (every check_every steps), after a
  // chain has run off: continuing it would only diverge again, blamed on the step size or score.
  // (The pick buffer is not checked: before the average-last window it holds nothing yet.)
  float v[256];
  for (int64_t i0 = 0; i0 < hd.x_floats; i0 += 256) {
    const int64_t len = std::min<int64_t>(256, hd.x_floats - i0);
    std::memcpy(v, p + 4 * i0, static_cast<size_t>(4 * len));  // the caller's bytes need not be aligned
    for (int64_t i = 0; i < len; ++i)
      if (!std::isfinite(v[i]))
        fail(ALMC_ERR_INVALID_ARGUMENT, "the state's chains are not all finite (row ", chain0 + (i0 + i) / d,
             ", coordinate ", (i0 + i) % d, " is ", v[i], "): the run that saved it had diverged; resume from an "
             "earlier state or start the run again");
  }
  for (Buffer* b : {&x, &ych, &out_pick}) {
    b->upload(p, b->bytes());
    p += b->bytes();
  }
  resume_from = hd.step;
  resume_y = hd.y;
}
