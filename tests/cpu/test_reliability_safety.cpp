// Reliability (issue 13): nothing lost, nothing silently wrong. Atomic output files, regular-file
// inputs with size caps, step counts checked before they are converted or allocated, GMM JSON
// refusals. The sanitizer build runs this file too (scripts/sanitize.sh).
#include <almc/almc.h>

#include "host/core/error.hpp"
#include "host/core/gmm_json.hpp"
#include "host/io/file.hpp"
#include "host/io/image.hpp"
#include "host/samplers/schedule.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace io = almc::io;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/almc_safety_XXXXXX";
    path = ::mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string io_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const io::IoError& e) {
    return e.what();
  }
  return "";
}

// ------------------------------------------------------------------ outputs

TEST(Safety, AtomicWriteReplacesAndKeepsPermissionsAndLeavesNoScratch) {
  TempDir t;
  ASSERT_FALSE(t.path.empty());
  const std::string p = t / "out.bin";
  { std::ofstream(p) << "old"; }
  ASSERT_EQ(::chmod(p.c_str(), 0640), 0);
  io::write_file_atomic(p, "new content", 11);
  EXPECT_EQ(slurp(p), "new content");
  struct stat st;
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  // Through a link: the target is replaced, the link stays a link.
  const std::string link = t / "link.bin";
  ASSERT_EQ(::symlink(p.c_str(), link.c_str()), 0);
  io::write_file_atomic(link, "via link", 8);
  EXPECT_EQ(slurp(p), "via link");
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(t.path)) {
    ++entries;
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
  EXPECT_EQ(entries, 2);
}

TEST(Safety, NonRegularOutputsAreNeverTouched) {
  TempDir t;
  const std::string fifo = t / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(io_error([&] { io::write_file_atomic(fifo, "x", 1); }).find("a FIFO, not a regular file"), std::string::npos);
  EXPECT_NE(io_error([&] { io::prepare_output(fifo); }).find("a FIFO"), std::string::npos);
  struct stat st;
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_NE(io_error([&] { io::write_file_atomic("/dev/null", "x", 1); }).find("a character device"), std::string::npos);
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_NE(io_error([&] { io::write_file_atomic(t.path, "x", 1); }).find("a directory"), std::string::npos);
  EXPECT_NE(io_error([&] { io::prepare_output(t / "sub/"); }).find("is a directory"), std::string::npos);
}

TEST(Safety, PrepareOutputCreatesFoldersAndTruncatesNothing) {
  TempDir t;
  const std::string keep = t / "keep.npy";
  { std::ofstream(keep) << "precious"; }
  io::prepare_output(keep);
  EXPECT_EQ(slurp(keep), "precious");
  io::prepare_output(t / "a/b/c/new.npy");
  struct stat st;
  ASSERT_EQ(::stat((t / "a/b/c").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(::access((t / "a/b/c/new.npy").c_str(), F_OK), -1) << "only the folder is made, not the file";
  EXPECT_NE(io_error([&] { io::prepare_output(keep + "/x.npy"); }).find("is not a directory"), std::string::npos);
}

// ------------------------------------------------------------------ inputs

TEST(Safety, InputsMustBeRegularFilesUnderTheCap) {
  TempDir t;
  const std::string fifo = t / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Must return at once (no writer): the open does not block.
  EXPECT_NE(io_error([&] { io::read_regular_file(fifo, 100); }).find("a FIFO, not a regular file"), std::string::npos);
  EXPECT_NE(io_error([&] { io::read_regular_file("/dev/zero", 100); }).find("a character device"), std::string::npos);
  EXPECT_NE(io_error([&] { io::read_regular_file(t.path, 100); }).find("a directory"), std::string::npos);
  EXPECT_NE(io_error([&] { io::read_regular_file(t / "missing", 100); }).find("No such file"), std::string::npos);
  const std::string f = t / "ten.bin";
  { std::ofstream(f) << "0123456789"; }
  EXPECT_EQ(io::read_regular_file(f, 10).size(), 10u);
  EXPECT_NE(io_error([&] { io::read_regular_file(f, 9); }).find("the file has 10 bytes, over the limit of 9 bytes"),
            std::string::npos);
  // The same refusals through the readers built on it.
  EXPECT_NE(io_error([&] { io::read_npy_f32(fifo); }).find("a FIFO"), std::string::npos);
  EXPECT_NE(io_error([&] { io::read_png("/dev/zero"); }).find("a character device"), std::string::npos);
}

TEST(Safety, GmmJsonFromNonRegularFilesAndNegativeStds) {
  TempDir t;
  almc_context_config c = almc_context_config_default();
  c.backend = ALMC_BACKEND_CPU;
  c.n_threads = 1;
  almc_context_t ctx = nullptr;
  ASSERT_EQ(almc_context_create(&c, &ctx), ALMC_OK);
  almc_score_t s = nullptr;
  EXPECT_EQ(almc_score_create_gmm_json(ctx, "/dev/zero", &s), ALMC_ERR_IO);
  EXPECT_NE(std::string(almc_context_last_error(ctx)).find("a character device, not a regular file"), std::string::npos)
      << almc_context_last_error(ctx);
  EXPECT_EQ(almc_score_create_gmm_json(ctx, t.path.c_str(), &s), ALMC_ERR_IO);
  EXPECT_NE(std::string(almc_context_last_error(ctx)).find("a directory"), std::string::npos);
  almc_context_destroy(ctx);
  // A negative std is refused like a negative variance (it used to be squared first).
  for (const char* text : {R"({"weights":[1],"means":[[0,0]],"stds":[-1]})",
                           R"({"weights":[1],"means":[[0,0]],"stds":[[0.5,-0.5]]})",
                           R"({"weights":[1],"means":[[0,0]],"variances":[-1]})"}) {
    try {
      almc::parse_gmm_json(text);
      ADD_FAILURE() << "accepted " << text;
    } catch (const almc::Error& e) {
      EXPECT_EQ(e.status(), ALMC_ERR_PARSE);
      EXPECT_NE(std::string(e.what()).find("must be positive"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(almc::parse_gmm_json(R"({"weights":[1],"means":[[0,0]],"stds":[0.5]})"));
}

// ------------------------------------------------------------------ step counts

almc::ScheduleInputs almc_inputs() {
  almc::ScheduleInputs in;
  in.cfg = almc::resolve_defaults(almc_sampler_config_default());
  return in;
}

almc_status schedule_status(const almc::ScheduleInputs& in, std::string* msg) {
  try {
    almc::validate_config(in.cfg, in.has_likelihood);
    almc::build_schedule(in);
    return ALMC_OK;
  } catch (const almc::Error& e) {
    *msg = e.what();
    return e.status();
  }
}

TEST(Safety, StepCountsAreCheckedInDoubleBeforeConverting) {
  struct Case {
    const char* name;
    void (*set)(almc_sampler_config&);
    const char* message;
  };
  const Case cases[] = {
      {"kappa 1e300", [](almc_sampler_config& c) { c.kappa = 1e300; }, "kappa t_start / delta"},
      {"kappa 1e18", [](almc_sampler_config& c) { c.kappa = 1e18; }, "kappa t_start / delta = 5e+21 is too large"},
      {"delta 1e-300", [](almc_sampler_config& c) { c.delta = 1e-300; }, "kappa t_start / delta"},
      {"kappa 39000", [](almc_sampler_config& c) { c.kappa = 39000; }, "above the limit of 33554432 steps per run"},
      {"t_start 1e300", [](almc_sampler_config& c) { c.t_start = 1e300; }, "t_start = 1e+300 is too large"},
      {"kappa 1e-9", [](almc_sampler_config& c) { c.kappa = 1e-9; }, "rounds to no annealing step"},
      {"ald 1e4 x 1e5", [](almc_sampler_config& c) {
         c.method = ALMC_METHOD_ALD;
         c.n_levels = 10000;
         c.steps_per_level = 100000;
       }, "levels x steps_per_level gives 1e+09 steps"},
      {"langevin 1e4 x 1e5", [](almc_sampler_config& c) {
         c.method = ALMC_METHOD_LANGEVIN;
         c.n_levels = 10000;
         c.steps_per_level = 100000;
       }, "levels x steps_per_level"},
      {"geometric", [](almc_sampler_config& c) {
         c.schedule = ALMC_SCHEDULE_GEOMETRIC_SIGMA;
         c.kappa = 1e12;
       }, "steps per run"},
  };
  for (const Case& k : cases) {
    almc::ScheduleInputs in = almc_inputs();
    k.set(in.cfg);
    std::string msg;
    EXPECT_EQ(schedule_status(in, &msg), ALMC_ERR_INVALID_ARGUMENT) << k.name;
    EXPECT_NE(msg.find(k.message), std::string::npos) << k.name << ": " << msg;
  }
  // The defaults still build: 10 warm steps + kappa (T - tau) / delta = 49900 annealing steps.
  const almc::Schedule s = almc::build_schedule(almc_inputs());
  EXPECT_EQ(s.steps.size(), 10u + 49900u);
}

TEST(Safety, StabilityIsCheckedBeforeTheTableIsBuilt) {
  // sigma_y = 1e-4, ||A|| = 1: L = 1e8, the default warm start would be ~1e9 steps (64 GB).
  almc::ScheduleInputs in = almc_inputs();
  in.has_likelihood = true;
  in.op_norm = 1;
  in.cfg.noise_std = 1e-4;
  const almc::Schedule s = almc::build_schedule(in);
  EXPECT_FALSE(s.unstable.empty());
  EXPECT_TRUE(s.steps.empty()) << "the table was built before the stability refusal";
  // Forced: the warm start itself is over the limit and refused with a hint.
  in.cfg.force_unstable = 1;
  std::string msg;
  EXPECT_EQ(schedule_status(in, &msg), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("warm start"), std::string::npos) << msg;
  EXPECT_NE(msg.find("set warm_steps"), std::string::npos) << msg;
  // With an explicit short warm start the forced run builds.
  in.cfg.warm_steps = 5;
  EXPECT_EQ(schedule_status(in, &msg), ALMC_OK) << msg;
}

// ------------------------------------------------------------------ handle lifetimes and re-entrancy

almc_context_t cpu_context() {
  almc_context_config c = almc_context_config_default();
  c.backend = ALMC_BACKEND_CPU;
  c.n_threads = 1;
  almc_context_t h = nullptr;
  EXPECT_EQ(almc_context_create(&c, &h), ALMC_OK);
  return h;
}

// Prior N(2, 0.25 I) in d = 3, identity operator, y = 0, sigma_y = 0.5, 400 chains, one thread.
struct Problem {
  almc_context_t ctx = cpu_context();
  almc_score_t score = nullptr;
  almc_operator_t op = nullptr;
  almc_sampler_t s = nullptr;
  explicit Problem(almc_sampler_config cfg = almc_sampler_config_default()) {
    const float mean[3] = {2, 2, 2}, var[3] = {0.25f, 0.25f, 0.25f}, y[3] = {0, 0, 0};
    EXPECT_EQ(almc_score_create_gaussian(ctx, 3, mean, var, &score), ALMC_OK);
    EXPECT_EQ(almc_operator_create_identity(ctx, 3, &op), ALMC_OK);
    cfg.chains_per_meas = 400;
    cfg.noise_std = 0.5;
    cfg.kappa = 4;
    cfg.delta = 4e-3;
    cfg.seed = 11;
    EXPECT_EQ(almc_sampler_create(ctx, score, op, &cfg, &s), ALMC_OK) << almc_context_last_error(ctx);
    EXPECT_EQ(almc_sampler_set_measurement(s, y), ALMC_OK);
  }
  std::vector<float> samples() const {
    std::vector<float> x(400 * 3);
    EXPECT_EQ(almc_sampler_get_samples(s, x.data()), ALMC_OK) << almc_sampler_last_error(s);
    return x;
  }
  void destroy_all() {
    almc_sampler_destroy(s);
    almc_operator_destroy(op);
    almc_score_destroy(score);
    almc_context_destroy(ctx);
  }
};

// The samples of the same problem run in the ordinary way (same seed, one thread: bitwise equal).
std::vector<float> reference_samples() {
  Problem p;
  EXPECT_EQ(almc_sampler_run(p.s), ALMC_OK);
  std::vector<float> x = p.samples();
  p.destroy_all();
  return x;
}

TEST(Safety, ContextAndScoreDestroyedBeforeTheirSamplerStayAlive) {
  Problem p;
  // Every parent handle dropped first: the sampler still holds them.
  almc_context_destroy(p.ctx);
  almc_score_destroy(p.score);
  almc_operator_destroy(p.op);
  EXPECT_EQ(almc_sampler_run(p.s), ALMC_OK) << almc_sampler_last_error(p.s);
  EXPECT_EQ(p.samples(), reference_samples()) << "the run did not use the live score and operator";
  almc_sampler_destroy(p.s);  // the last reference: everything goes now (ASan checks for leaks)
}

struct Reentry {
  almc_sampler_t s = nullptr;
  int calls = 0;
  almc_status inner_run = ALMC_OK, inner_set = ALMC_OK;
  std::string message;
  bool destroy = false;
};

int reenter(const almc_progress*, void* user) {
  auto* r = static_cast<Reentry*>(user);
  if (r->calls++ == 0) {
    r->inner_run = almc_sampler_run(r->s);
    r->message = almc_sampler_last_error(r->s);
    const float y[3] = {0, 0, 0};
    r->inner_set = almc_sampler_set_measurement(r->s, y);
    if (r->destroy) almc_sampler_destroy(r->s);
  }
  return 0;
}

TEST(Safety, RunFromItsOwnProgressCallbackIsRefused) {
  Reentry r;
  almc_sampler_config cfg = almc_sampler_config_default();
  cfg.progress = reenter;
  cfg.progress_user_data = &r;
  cfg.check_every = 1000;
  Problem p(cfg);
  r.s = p.s;
  EXPECT_EQ(almc_sampler_run(p.s), ALMC_OK) << almc_sampler_last_error(p.s);
  EXPECT_GT(r.calls, 0);
  EXPECT_EQ(r.inner_run, ALMC_ERR_WRONG_STATE);
  EXPECT_NE(r.message.find("while this sampler is running"), std::string::npos) << r.message;
  EXPECT_EQ(r.inner_set, ALMC_ERR_WRONG_STATE);
  EXPECT_EQ(p.samples(), reference_samples()) << "the refused calls disturbed the run";
  // Another sampler of the same context is refused too; one of another context runs.
  almc_sampler_t other = nullptr;
  almc_sampler_config plain = almc_sampler_config_default();
  plain.kappa = 1;
  ASSERT_EQ(almc_sampler_create(p.ctx, p.score, nullptr, &plain, &other), ALMC_OK);
  struct Nested {
    almc_sampler_t other;
    almc_status st = ALMC_OK;
  } nested{other};
  almc_sampler_config cb = cfg;
  cb.progress = [](const almc_progress*, void* u) {
    auto* n = static_cast<Nested*>(u);
    if (n->st == ALMC_OK) n->st = almc_sampler_run(n->other);
    return 0;
  };
  cb.progress_user_data = &nested;
  almc_sampler_t outer = nullptr;
  ASSERT_EQ(almc_sampler_create(p.ctx, p.score, nullptr, &cb, &outer), ALMC_OK);
  EXPECT_EQ(almc_sampler_run(outer), ALMC_OK);
  EXPECT_EQ(nested.st, ALMC_ERR_WRONG_STATE);
  EXPECT_EQ(almc_sampler_run(other), ALMC_OK) << "refused only while the other one runs";
  almc_sampler_destroy(outer);
  almc_sampler_destroy(other);
  almc_sampler_destroy(p.s);
  almc_operator_destroy(p.op);
  almc_score_destroy(p.score);
  almc_context_destroy(p.ctx);
}

TEST(Safety, SamplerDestroyedFromItsOwnCallbackGoesWhenTheRunReturns) {
  Reentry r;
  r.destroy = true;
  almc_sampler_config cfg = almc_sampler_config_default();
  cfg.progress = reenter;
  cfg.progress_user_data = &r;
  Problem p(cfg);
  r.s = p.s;
  EXPECT_EQ(almc_sampler_run(p.s), ALMC_OK);  // p.s is gone now (ASan checks the run finished on live memory)
  almc_operator_destroy(p.op);
  almc_score_destroy(p.score);
  almc_context_destroy(p.ctx);
}

}  // namespace
