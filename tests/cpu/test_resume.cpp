// Resumable sampler states (almc_sampler_save_state / load_state and the checkpoint callback), CPU
// backend: a run continued from its state after any number of steps gives bit for bit the samples
// of the uninterrupted run, in every phase (warm start, annealing, the average-last window), for
// XGP's per-chain measurements, with the Tweedie step, and after a cancel; a state from another
// run is refused, naming what differs.
#include <almc/almc.hpp>

#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::vector<float> ramp(size_t n, float a, float b) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = a + b * std::sin(0.9f * float(i) + 0.2f);
  return v;
}

struct Problem {
  almc::Context ctx{ALMC_BACKEND_CPU};
  int64_t d = 6, m = 4;
  almc::Score prior = almc::Score::gmm(ctx, 2, d, {0.4f, 0.6f}, ramp(size_t(2 * d), 0.f, 1.f), ramp(size_t(2 * d), 0.7f, 0.2f));
  almc::Operator op = almc::Operator::matrix(ctx, m, d, 1, ramp(size_t(m * d), 0.f, 0.6f));
  std::vector<float> y = ramp(size_t(2 * m), 0.3f, 1.f);  // two measurements
};

almc_sampler_config base_config(uint64_t seed) {
  almc_sampler_config c = almc_sampler_config_default();
  c.n_meas = 2;
  c.chains_per_meas = 3;
  c.seed = seed;
  c.noise_std = 0.3;
  c.kappa = 2;
  c.delta = 5e-3;
  c.t_start = 1.0;
  c.t_stop = 0.05;
  c.check_every = 37;  // not a divisor of anything below: checks land between checkpoints
  return c;
}

struct Captured {
  std::vector<std::vector<unsigned char>> states;
  std::vector<int64_t> steps;
};

int capture(const void* state, size_t bytes, int64_t step, void* user) {
  auto* c = static_cast<Captured*>(user);
  const auto* p = static_cast<const unsigned char*>(state);
  c->states.emplace_back(p, p + bytes);
  c->steps.push_back(step);
  return 0;
}

std::vector<float> run_whole(Problem& p, const almc_sampler_config& cfg, almc_run_info* info = nullptr) {
  almc::Sampler s(p.ctx, p.prior, p.op, cfg);
  s.set_measurement(p.y);
  s.run();
  if (info) *info = s.info();
  return s.samples();
}

std::vector<float> run_resumed(Problem& p, const almc_sampler_config& cfg, const std::vector<unsigned char>& state,
                               int64_t* start_step = nullptr) {
  almc::Sampler s(p.ctx, p.prior, p.op, cfg);
  s.set_measurement(p.y);
  s.load_state(state);
  s.run();
  if (start_step) *start_step = s.info().start_step;
  return s.samples();
}

// Every state of the run (a checkpoint after each step), resumed from a few in each phase.
void expect_resume_bitwise(Problem& p, almc_sampler_config cfg) {
  almc_run_info info{};
  const std::vector<float> whole = run_whole(p, cfg, &info);
  Captured cap;
  cfg.checkpoint_every = 1;
  cfg.checkpoint = capture;
  cfg.checkpoint_user_data = &cap;
  // Taking checkpoints does not change the run.
  EXPECT_EQ(run_whole(p, cfg), whole);
  ASSERT_EQ(int64_t(cap.states.size()), info.steps);
  for (size_t k = 0; k < cap.steps.size(); ++k) ASSERT_EQ(cap.steps[k], int64_t(k + 1));
  const int64_t total = info.steps, warm = info.warm_steps, tail = cfg.average_last;
  std::vector<int64_t> at = {1, warm - 1, warm, warm + 1, total / 2, total - 1, total};
  if (tail > 1) at.insert(at.end(), {total - tail - 1, total - tail, total - tail + 1, total - tail / 2});
  cfg.checkpoint = nullptr;
  cfg.checkpoint_every = 0;
  for (int64_t s : at) {
    if (s < 1 || s > total) continue;
    int64_t start = -1;
    const std::vector<float> resumed = run_resumed(p, cfg, cap.states[size_t(s - 1)], &start);
    EXPECT_EQ(start, s);  // it did continue (a run from scratch would give the same samples)
    ASSERT_EQ(resumed.size(), whole.size());
    EXPECT_EQ(0, std::memcmp(resumed.data(), whole.data(), whole.size() * sizeof(float)))
        << "resumed after step " << s << " of " << total << " (warm start " << warm << ")";
  }
  // And it continued from the state's x: a state whose last chain is moved ends elsewhere.
  std::vector<unsigned char> moved = cap.states[size_t(total / 2 - 1)];
  const size_t x_end = moved.size() - 4 * size_t(cfg.average_last > 1 ? whole.size() : 0) -
                       (cfg.method == ALMC_METHOD_XGP ? 4 * size_t(p.m) * whole.size() / size_t(p.d) : 0);
  float v = 0;
  std::memcpy(&v, moved.data() + x_end - 4, 4);
  v += 0.5f;
  std::memcpy(moved.data() + x_end - 4, &v, 4);
  EXPECT_NE(run_resumed(p, cfg, moved), whole);
}

TEST(Resume, AlmcEveryPhaseBitwise) {
  Problem p;
  expect_resume_bitwise(p, base_config(7));
}

TEST(Resume, AverageLastWindowAndTweedieBitwise) {
  Problem p;
  almc_sampler_config c = base_config(8);
  c.average_last = 9;
  c.tweedie = 1;
  expect_resume_bitwise(p, c);
}

// Before the average-last window a state's picked-sample block (its tail: n x d floats) is zeros,
// not whatever the allocation held: two saves of the same step are the same bytes.
TEST(Resume, PickBlockIsZeroBeforeTheWindow) {
  Problem p;
  almc_sampler_config c = base_config(8);
  c.average_last = 9;
  almc_run_info info{};
  const std::vector<float> whole = run_whole(p, c, &info);  // leaves freed blocks of the same sizes
  Captured cap;
  c.checkpoint_every = 1;
  c.checkpoint = capture;
  c.checkpoint_user_data = &cap;
  run_whole(p, c);
  ASSERT_EQ(int64_t(cap.states.size()), info.steps);
  const size_t tail = 4 * whole.size();
  for (int64_t s = 1; s <= info.steps - c.average_last; ++s) {
    const std::vector<unsigned char>& st = cap.states[size_t(s - 1)];
    ASSERT_GT(st.size(), tail);
    EXPECT_TRUE(std::all_of(st.end() - std::ptrdiff_t(tail), st.end(), [](unsigned char b) { return b == 0; }))
        << "state after step " << s << " of " << info.steps;
  }
  // In the window it fills: the last state's block holds the picked samples.
  const std::vector<unsigned char>& last = cap.states.back();
  EXPECT_FALSE(std::all_of(last.end() - std::ptrdiff_t(tail), last.end(), [](unsigned char b) { return b == 0; }));
}

TEST(Resume, XgpAuxiliaryMeasurementsBitwise) {
  Problem p;
  almc_sampler_config c = base_config(9);
  c.method = ALMC_METHOD_XGP;
  c.n_levels = 7;
  c.steps_per_level = 4;
  expect_resume_bitwise(p, c);
}

TEST(Resume, SliceBitwise) {
  Problem p;
  almc_sampler_config c = base_config(10);
  c.chain_start = 2;
  c.chain_count = 3;  // across the two measurements
  expect_resume_bitwise(p, c);
}

// Cancelled by the progress callback: the state where it stopped continues to the same samples.
struct CancelAt {
  int64_t step;
};
int cancel_after(const almc_progress* pr, void* user) { return pr->step >= static_cast<CancelAt*>(user)->step ? 1 : 0; }

TEST(Resume, AfterCancel) {
  Problem p;
  almc_sampler_config c = base_config(11);
  c.average_last = 5;
  const std::vector<float> whole = run_whole(p, c);
  CancelAt at{100};
  almc_sampler_config cc = c;
  cc.progress = cancel_after;
  cc.progress_user_data = &at;
  almc::Sampler s(p.ctx, p.prior, p.op, cc);
  s.set_measurement(p.y);
  size_t bytes = 0;
  ASSERT_EQ(almc_sampler_state_size(s.get(), &bytes), ALMC_OK);
  std::vector<unsigned char> buf(bytes);
  EXPECT_EQ(almc_sampler_save_state(s.get(), buf.data(), buf.size(), nullptr), ALMC_ERR_WRONG_STATE);  // no run yet
  EXPECT_EQ(almc_sampler_run(s.get()), ALMC_ERR_CANCELLED);
  int64_t step = -1;
  const std::vector<unsigned char> state = s.save_state(&step);
  EXPECT_GE(step, 100);
  EXPECT_LT(step, 200);
  EXPECT_EQ(run_resumed(p, c, state), whole);
  // The same sampler continues too, once its state is loaded back.
  cc.progress = nullptr;
  almc::Sampler again(p.ctx, p.prior, p.op, c);
  again.set_measurement(p.y);
  again.load_state(state);
  again.run();
  EXPECT_EQ(again.samples(), whole);
  // A finished run has nothing to save (its state is the output).
  EXPECT_EQ(almc_sampler_save_state(again.get(), buf.data(), buf.size(), nullptr), ALMC_ERR_WRONG_STATE);
  EXPECT_EQ(almc_sampler_save_state(s.get(), buf.data(), 16, nullptr), ALMC_ERR_INVALID_ARGUMENT);  // too small
}

// A checkpoint callback that fails stops the run with ALMC_ERR_CALLBACK.
int refuse(const void*, size_t, int64_t, void*) { return 3; }

TEST(Resume, RefusesAnotherRunsState) {
  Problem p;
  almc_sampler_config c = base_config(12);
  Captured cap;
  almc_sampler_config cc = c;
  cc.checkpoint_every = 50;
  cc.checkpoint = capture;
  cc.checkpoint_user_data = &cap;
  run_whole(p, cc);
  ASSERT_FALSE(cap.states.empty());
  const std::vector<unsigned char>& st = cap.states.front();
  auto refused = [&](const almc_sampler_config& other, const almc::Operator& op, const std::vector<unsigned char>& state,
                     const char* needle) {
    almc::Sampler s(p.ctx, p.prior, op, other);
    s.set_measurement(p.y);
    EXPECT_EQ(almc_sampler_load_state(s.get(), state.data(), state.size()), ALMC_ERR_INVALID_ARGUMENT) << needle;
    EXPECT_NE(std::string(s.err()).find(needle), std::string::npos) << s.err();
  };
  almc_sampler_config o = c;
  o.seed = 13;
  refused(o, p.op, st, "seed");
  o = c;
  o.kappa = 3;
  refused(o, p.op, st, "schedule");
  o = c;
  o.chains_per_meas = 4;
  refused(o, p.op, st, "measurement(s) x");
  refused(c, almc::Operator::matrix(p.ctx, p.m, p.d, 1, ramp(size_t(p.m * p.d), 0.1f, 0.6f)), st, "operator");
  std::vector<unsigned char> cut(st.begin(), st.end() - 4);
  refused(c, p.op, cut, "bytes");
  std::vector<unsigned char> junk(st.size(), 'x');
  refused(c, p.op, junk, "not an almc sampler state");
  {  // a float count in the header times 4 overflowed int64 (found by fuzz_snapshot; UBSan reported
     // it in the sanitizer suite): the counts are bytes 120-143 (x, XGP's measurements, the pick)
    for (const size_t at : {size_t(120), size_t(128), size_t(136)}) {
      std::vector<unsigned char> v = st;
      const int64_t huge = int64_t(1) << 62 | 3;
      std::memcpy(v.data() + at, &huge, sizeof huge);
      refused(c, p.op, v, "the state holds");
    }
  }
  {  // chains that had run off before the checkpoint (NaN or inf in x, which follows the header)
    uint32_t header_bytes = 0;
    std::memcpy(&header_bytes, st.data() + 12, sizeof header_bytes);
    for (const float bad : {std::nanf(""), -INFINITY}) {
      std::vector<unsigned char> v = st;
      std::memcpy(v.data() + header_bytes + 4 * (p.d + 2), &bad, sizeof bad);  // row 1, coordinate 2
      refused(c, p.op, v, "the state's chains are not all finite (row 1, coordinate 2 is ");
    }
  }
  {  // the format version (bytes 8-11, after the magic): another one, and this one byte-swapped
    std::vector<unsigned char> v = st;
    v[8] ^= 0x40;
    refused(c, p.op, v, "another format");
    v = st;
    std::reverse(v.begin() + 8, v.begin() + 12);
    refused(c, p.op, v, "other byte order");
  }
  {
    almc::Score other = almc::Score::gmm(p.ctx, 2, p.d, {0.5f, 0.5f}, ramp(size_t(2 * p.d), 0.f, 1.f),
                                         ramp(size_t(2 * p.d), 0.7f, 0.2f));
    almc::Sampler s(p.ctx, other, p.op, c);
    EXPECT_EQ(almc_sampler_load_state(s.get(), st.data(), st.size()), ALMC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(s.err()).find("prior"), std::string::npos) << s.err();
  }
  {  // another measurement: refused when the run starts
    almc::Sampler s(p.ctx, p.prior, p.op, c);
    s.set_measurement(ramp(p.y.size(), 0.f, 1.f));
    s.load_state(st);
    EXPECT_EQ(almc_sampler_run(s.get()), ALMC_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(s.err()).find("measurement differs"), std::string::npos) << s.err();
  }
  cc.checkpoint = refuse;
  almc::Sampler s(p.ctx, p.prior, p.op, cc);
  s.set_measurement(p.y);
  EXPECT_EQ(almc_sampler_run(s.get()), ALMC_ERR_CALLBACK);
  EXPECT_NE(std::string(s.err()).find("checkpoint callback returned 3 at step 50"), std::string::npos) << s.err();
  almc_sampler_t h = nullptr;
  cc.checkpoint = nullptr;
  EXPECT_EQ(almc_sampler_create(p.ctx.get(), p.prior.get(), p.op.get(), &cc, &h), ALMC_ERR_INVALID_ARGUMENT);
}

// A state loaded for another measurement failed its run, and every later run too ("the
// measurement differs"): the pending resume was kept past the refusal, so the sampler could not
// run again until a state of its own measurement was loaded. The failed run now drops the state:
// the next run starts over, and a state loaded again after the right measurement is set resumes.
TEST(Resume, AStateRefusedForItsMeasurementIsDropped) {
  Problem p;
  almc_sampler_config c = base_config(21);
  Captured cap;
  almc_sampler_config cc = c;
  cc.checkpoint_every = 50;
  cc.checkpoint = capture;
  cc.checkpoint_user_data = &cap;
  const std::vector<float> whole = run_whole(p, cc);
  ASSERT_FALSE(cap.states.empty());
  const std::vector<unsigned char>& st = cap.states.front();
  const std::vector<float> other_y = ramp(p.y.size(), 0.f, 1.f);
  Problem q;
  q.y = other_y;
  const std::vector<float> other_whole = run_whole(q, c);

  almc::Sampler s(p.ctx, p.prior, p.op, c);
  s.set_measurement(other_y);
  s.load_state(st);
  EXPECT_EQ(almc_sampler_run(s.get()), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(s.err()).find("measurement differs"), std::string::npos) << s.err();
  EXPECT_NE(std::string(s.err()).find("the state is dropped"), std::string::npos) << s.err();
  // The next run is a whole run of the measurement set, from step 0.
  ASSERT_EQ(almc_sampler_run(s.get()), ALMC_OK) << s.err();
  EXPECT_EQ(s.info().start_step, 0);
  EXPECT_EQ(s.samples(), other_whole);
  // Loaded again with its own measurement, the state resumes.
  s.set_measurement(p.y);
  s.load_state(st);
  ASSERT_EQ(almc_sampler_run(s.get()), ALMC_OK) << s.err();
  EXPECT_EQ(s.info().start_step, cap.steps.front());
  EXPECT_EQ(s.samples(), whole);
}

}  // namespace
