// Fuzz target: snapshot files, the saved state that `almc sample --resume`, the Python package's
// resume= and almc_sampler_load_state read. The bytes go through almc_snapshot_parse (format line,
// JSON record, the state's header); a snapshot that parses is read back through the rest of the
// handle's API, written with almc_snapshot_set + _write and read again (same state, step and run),
// then loaded into a small sampler and run, as a resume would. The seed corpus holds that sampler's
// own states, so mutations get past the run's digests to the sizes, step and chains behind them.
//
// Findings: a crash, a sanitizer report, a status outside the documented ones (parse: ALMC_ERR_PARSE
// or ALMC_ERR_INVALID_ARGUMENT; load: ALMC_ERR_INVALID_ARGUMENT; a resumed run: OK, ALMC_ERR_DIVERGED
// or, for a state of another measurement, ALMC_ERR_INVALID_ARGUMENT), a failure without a message, a failed parse that changes the snapshot held
// before it, or a snapshot that does not survive being written and read back.
//
// Seed corpus (fuzz/corpus/snapshot/): ALMC_FUZZ_WRITE_SEEDS=DIR build-fuzz/fuzz/fuzz_snapshot
// writes this sampler's states in DIR (containers mid-run and at the end, a bare state, a record
// without a run) and exits; cli_gmm.snap was written by `almc sample --prior GMM --y Y
// --noise-std 0.5 --chains 2 --seed 3 --kappa 1 --delta 0.02 --t-start 1 --t-stop 0.1 --snapshot
// cli_gmm.snap --snapshot-every 10` (a two-component mixture in d = 3) for the command's run record.
#include <almc/almc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.hpp"

namespace {

#define CHECK(cond) \
  do {              \
    if (!(cond)) {  \
      std::fprintf(stderr, "fuzz_snapshot: check failed: %s (line %d)\n", #cond, __LINE__); \
      __builtin_trap(); \
    }               \
  } while (0)

constexpr int64_t kD = 3;

almc_sampler_config sampler_config() {
  almc_sampler_config c = almc_sampler_config_default();
  c.chains_per_meas = 2;
  c.seed = 5;
  c.noise_std = 0.5;
  c.kappa = 1;
  c.delta = 0.05;
  c.t_start = 1.0;
  c.t_stop = 0.1;
  c.average_last = 3;  // the state then holds the average-last pick buffer too
  c.tweedie = 1;
  return c;
}

// The sampler the corpus' states belong to: a Gaussian prior, the identity, one measurement.
struct Problem {
  almc_score_t prior = nullptr;
  almc_operator_t op = nullptr;
  almc_sampler_t sampler = nullptr;
  std::vector<float> y = {0.4f, -0.2f, 1.1f};
  std::vector<unsigned char> reference;  // a state of this run (the snapshot held before each input)
  std::string reference_run = "{\"held\":\"before\"}";

  Problem() {
    almc_context_t ctx = almc_fuzz::cpu_context();
    const std::vector<float> mean = {0.5f, -1.0f, 0.25f}, var = {1.0f, 0.5f, 2.0f};
    CHECK(almc_score_create_gaussian(ctx, kD, mean.data(), var.data(), &prior) == ALMC_OK);
    CHECK(almc_operator_create_identity(ctx, kD, &op) == ALMC_OK);
    sampler = make(nullptr, nullptr, 0);
    states(1);
    CHECK(!captured.empty());
    reference = captured.front().bytes;
  }

  almc_sampler_t make(almc_checkpoint_fn fn, void* user, int64_t every) {
    almc_sampler_config c = sampler_config();
    c.checkpoint = fn;
    c.checkpoint_user_data = user;
    c.checkpoint_every = every;
    almc_sampler_t s = nullptr;
    CHECK(almc_sampler_create(almc_fuzz::cpu_context(), prior, op, &c, &s) == ALMC_OK);
    CHECK(almc_sampler_set_measurement(s, y.data()) == ALMC_OK);
    return s;
  }

  struct State {
    std::vector<unsigned char> bytes;
    int64_t step;
  };
  std::vector<State> captured;

  static int keep(const void* state, size_t bytes, int64_t step, void* user) {
    auto* self = static_cast<Problem*>(user);
    const auto* p = static_cast<const unsigned char*>(state);
    self->captured.push_back({std::vector<unsigned char>(p, p + bytes), step});
    return 0;
  }

  // Runs the whole run once, keeping its state every `every` steps in `captured`.
  void states(int64_t every) {
    captured.clear();
    almc_sampler_t s = make(&keep, this, every);
    CHECK(almc_sampler_run(s) == ALMC_OK);
    almc_sampler_destroy(s);
  }
};

Problem& problem() {
  static Problem p;
  return p;
}

std::vector<unsigned char> held_state(almc_snapshot_t snap, int64_t* step = nullptr) {
  const void* p = nullptr;
  size_t n = 0;
  CHECK(almc_snapshot_state(snap, &p, &n, step, nullptr) == ALMC_OK);
  CHECK(n == 0 || p != nullptr);
  const auto* b = static_cast<const unsigned char*>(p);
  return std::vector<unsigned char>(b, b + n);
}

// Writes this sampler's states as seeds in `dir`.
void write_seeds(const std::string& dir) {
  Problem& p = problem();
  p.states(7);
  CHECK(p.captured.size() >= 3);
  almc_snapshot_t snap = nullptr;
  CHECK(almc_snapshot_create(&snap) == ALMC_OK);
  const auto container = [&](const Problem::State& s, const char* run, const std::string& name) {
    CHECK(almc_snapshot_set(snap, s.bytes.data(), s.bytes.size(), run) == ALMC_OK);
    CHECK(almc_snapshot_write(snap, (dir + "/" + name).c_str()) == ALMC_OK);
  };
  const char* run = "{\"written_by\":\"fuzz_snapshot\",\"seed\":5,\"chains\":2,\"d\":3,\"average_last\":3,"
                    "\"tweedie\":true,\"slice\":null,\"levels\":[1.0,0.5,0.1]}";
  container(p.captured[1], run, "mid_run.snap");
  container(p.captured.back(), run, "end.snap");
  container(p.captured.front(), nullptr, "no_run.snap");
  const Problem::State& bare = p.captured[2];
  CHECK(almc_fuzz::write_file(dir + "/bare_state.bin", bare.bytes.data(), bare.bytes.size()));
  almc_snapshot_destroy(snap);
  std::fprintf(stderr, "fuzz_snapshot: wrote 4 seeds in %s (%zu states of %zu bytes)\n", dir.c_str(),
               p.captured.size(), p.captured.front().bytes.size());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("ALMC_FUZZ_WRITE_SEEDS")) {
    write_seeds(dir);
    std::exit(0);
  }
  (void)problem();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Problem& p = problem();
  static almc_snapshot_t snap = [] {
    almc_snapshot_t h = nullptr;
    CHECK(almc_snapshot_create(&h) == ALMC_OK);
    return h;
  }();
  CHECK(almc_snapshot_set(snap, p.reference.data(), p.reference.size(), p.reference_run.c_str()) == ALMC_OK);
  const std::string reference_run = almc_snapshot_run(snap);

  const almc_status st = almc_snapshot_parse(snap, data, size);
  if (st != ALMC_OK) {
    CHECK(st == ALMC_ERR_PARSE || st == ALMC_ERR_INVALID_ARGUMENT);
    const char* msg = almc_snapshot_last_error(snap);
    CHECK(msg && *msg);
    // A failure keeps what the handle held.
    CHECK(held_state(snap) == p.reference);
    CHECK(reference_run == almc_snapshot_run(snap));
    return 0;
  }

  int64_t step = -1, total = -1;
  const void* state_ptr = nullptr;
  size_t bytes = 0;
  CHECK(almc_snapshot_state(snap, &state_ptr, &bytes, &step, &total) == ALMC_OK);
  CHECK(bytes <= size);
  const std::vector<unsigned char> state = held_state(snap);
  const std::string run = almc_snapshot_run(snap);
  CHECK(!run.empty());
  CHECK(almc_snapshot_check_run(snap, run.c_str()) == ALMC_OK);

  // Written and read back: the same state, step and run.
  static const std::string path = almc_fuzz::scratch_dir() + "/state.snap";
  almc_snapshot_t copy = nullptr;
  CHECK(almc_snapshot_create(&copy) == ALMC_OK);
  CHECK(almc_snapshot_set(copy, state.data(), state.size(), run.c_str()) == ALMC_OK);
  CHECK(almc_snapshot_write(copy, path.c_str()) == ALMC_OK);
  almc_snapshot_t back = nullptr;
  CHECK(almc_snapshot_create(&back) == ALMC_OK);
  CHECK(almc_snapshot_read(back, path.c_str()) == ALMC_OK);
  int64_t back_step = -1;
  CHECK(held_state(back, &back_step) == state);
  CHECK(back_step == step);
  CHECK(run == almc_snapshot_run(back));
  almc_snapshot_destroy(back);
  almc_snapshot_destroy(copy);

  // Resumed as a run would be: refused (another run, or sizes that do not match) or continued.
  const almc_status ls = almc_sampler_load_state(p.sampler, state.data(), state.size());
  if (ls != ALMC_OK) {
    CHECK(ls == ALMC_ERR_INVALID_ARGUMENT);
    const char* msg = almc_sampler_last_error(p.sampler);
    CHECK(msg && *msg);
    return 0;
  }
  // A state of another measurement is refused when the run starts (INVALID_ARGUMENT); x may diverge.
  const almc_status rs = almc_sampler_run(p.sampler);
  CHECK(rs == ALMC_OK || rs == ALMC_ERR_DIVERGED || rs == ALMC_ERR_INVALID_ARGUMENT);
  if (rs != ALMC_OK) {
    const char* msg = almc_sampler_last_error(p.sampler);
    CHECK(msg && *msg);
  }
  if (rs == ALMC_OK) {
    almc_run_info info{};
    info.struct_size = sizeof info;
    CHECK(almc_sampler_run_info(p.sampler, &info) == ALMC_OK);
    CHECK(info.start_step == step);
    std::vector<float> x(size_t(2 * kD));
    CHECK(almc_sampler_get_samples(p.sampler, x.data()) == ALMC_OK);
  }
  return 0;
}
