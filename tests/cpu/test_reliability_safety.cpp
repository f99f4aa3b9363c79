// Reliability (issue 13): nothing lost, nothing silently wrong. Atomic output files, regular-file
// inputs with size caps, step counts checked before they are converted or allocated, GMM JSON
// refusals. The sanitizer build runs this file too (scripts/sanitize.sh).
#include <almc/almc.h>

#include "host/core/error.hpp"
#include "host/core/gmm_json.hpp"
#include "host/io/file.hpp"
#include "host/io/image.hpp"
#include "host/samplers/schedule.hpp"
#include "tests/common/sanitized.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

// The reader sees the document as a stream of events (no tree), so key order, repeated keys and
// unknown keys must not matter, and every refusal keeps the exact text it had.
TEST(Safety, GmmJsonValuesDoNotDependOnKeyOrderOrExtraKeys) {
  // "stds" first, a mix of scalar and row stds, and unknown keys holding look-alike arrays (a
  // repeated field is refused: GmmJsonRefusalsKeepTheirExactMessages).
  const almc::GmmSpec g = almc::parse_gmm_json(
      R"({"stds": [2, [0.5, 1, 3]], "other": {"means": [[9]], "weights": [5]}, "note": [7, 7],
          "means": [[1, -2, 3e2], [0, 0.25, -0.5]], "weights": [1, 3], "note": [[[1]], "x"]})");
  EXPECT_EQ(g.K, 2);
  EXPECT_EQ(g.d, 3);
  EXPECT_EQ(g.weights, (std::vector<float>{1, 3}));
  EXPECT_EQ(g.means, (std::vector<float>{1, -2, 300, 0, 0.25f, -0.5f}));
  EXPECT_EQ(g.variances, (std::vector<float>{4, 4, 4, 0.25f, 1, 9}));
}

// The message of parse_gmm_json's refusal with ALMC_ERR_PARSE; "accepted" or "status N" otherwise.
std::string gmm_refusal(const char* text) {
  try {
    almc::parse_gmm_json(text);
  } catch (const almc::Error& e) {
    return e.status() == ALMC_ERR_PARSE ? e.what() : "status " + std::to_string(e.status());
  }
  return "accepted";
}

TEST(Safety, GmmJsonRefusalsKeepTheirExactMessages) {
  const auto refusal = gmm_refusal;
  const std::pair<const char*, const char*> cases[] = {
      {R"({"means":[[0]],"variances":[1]})", "GMM JSON: missing \"weights\""},
      {R"({"weights":[1],"variances":[1]})", "GMM JSON: missing \"means\""},
      {R"({"weights":[1],"means":[[0]],"variances":[1],"stds":[1]})",
       "GMM JSON: give exactly one of \"variances\" and \"stds\""},
      {R"({"weights":{},"means":[[0]],"stds":[1]})", "GMM JSON: \"weights\" must be a non-empty array"},
      {R"({"weights":[],"means":[[0]],"stds":[1]})", "GMM JSON: \"weights\" must be a non-empty array"},
      {R"({"weights":[1,[2]],"means":[[0],[1]],"stds":[1,1]})", "GMM JSON: weights[1] is not a number"},
      {R"({"weights":[1,-2,1e39],"means":[[0],[1],[2]],"stds":[1,1,1]})",
       "GMM JSON: weights[1] = -2 is negative"},
      {R"({"weights":[1,1e39,-2],"means":[[0],[1],[2]],"stds":[1,1,1]})",
       "GMM JSON: weights[1] is not a finite float"},
      {R"({"weights":[0,0],"means":[[0],[1]],"stds":[1,1]})", "GMM JSON: the weights sum to zero"},
      {R"({"weights":[1],"means":5,"stds":[1]})", "GMM JSON: \"means\" must be an array"},
      {R"({"weights":[1,1],"means":[[0]],"stds":[1,1]})", "GMM JSON: \"means\" has 1 entries but \"weights\" has 2"},
      {R"({"weights":[1,1],"means":[[0],3],"stds":[1,1]})",
       "GMM JSON: means[1] must be a non-empty array of numbers"},
      {R"({"weights":[1,1],"means":[[0],[]],"stds":[1,1]})",
       "GMM JSON: means[1] must be a non-empty array of numbers"},
      {R"({"weights":[1,1],"means":[[0,"a"],[1]],"stds":[1,1]})",
       "GMM JSON: means[1] has length 1 but the dimension is 2"},
      {R"({"weights":[1,1],"means":[[0,1],[1,[2]]],"stds":[1,1]})", "GMM JSON: means[1][1] is not a number"},
      {R"({"weights":[1,1],"means":[[0,4e38],[1,null]],"stds":[1,1]})",
       "GMM JSON: means[0][1] is not a finite float"},
      {R"({"weights":[1],"means":[[0,1]],"stds":[[1]]})", "GMM JSON: stds[0] has length 1 but the dimension is 2"},
      {R"({"weights":[1,1],"means":[[0],[1]],"variances":[1,"x"]})",
       "GMM JSON: variances[1] must be a non-empty array of numbers"},
      {R"({"weights":[1,1],"means":[[0],[1]],"variances":[1,[true]]})", "GMM JSON: variances[1][0] is not a number"},
      {R"({"weights":[1,1],"means":[[0],[1]],"stds":[-3e38,1]})", "GMM JSON: std of component 0, coordinate 0 must be positive"},
      {R"({"weights":[1],"means":[[0,1]],"variances":[[1,0]]})", "GMM JSON: variance of component 0, coordinate 1 must be positive"},
      {R"({"weights":[1],"means":[[0]],"stds":[1],"means":[[5]]})",
       "GMM JSON: \"means\" is given more than once; give each field once"},
      {R"({"weights":[1],"weights":[2],"means":[[0]],"stds":[1],"stds":[1]})",
       "GMM JSON: \"weights\" is given more than once; give each field once"},
      {R"({"weights":[1],"means":[[0]],"stds":[1],"note":1,"note":2})", "accepted"},
      {R"("weights")", "GMM JSON: the top level must be an object"},
      {R"([{"weights":[1],"means":[[0]],"stds":[1]}])", "GMM JSON: the top level must be an object"},
  };
  for (const auto& [text, message] : cases) EXPECT_EQ(refusal(text), message) << text;
  // Syntax errors anywhere win over content errors before them, with nlohmann's text less its
  // class name ("[json.exception.parse_error.101] parse error at ...").
  EXPECT_EQ(refusal(R"({"weights":[-1],"means":[[0,1e999]],"stds":[1]})"), "GMM JSON: means[0][1] = 1e999 is beyond the range of numbers");
  for (const char* text : {R"({"weights":[-1],"means":[[0]],"stds":[1])", R"([1] [2])"}) {
    EXPECT_EQ(refusal(text).rfind("GMM JSON: not valid JSON: at line 1, column ", 0), 0u) << refusal(text);
    EXPECT_EQ(refusal(text).find("json.exception"), std::string::npos) << refusal(text);
  }
}

// NaN and Infinity (which Python's json.dump writes) were "not valid JSON: [json.exception.parse_error.101]
// ... invalid literal; last read: '[[0, N'": now the value and where it is.
TEST(Safety, GmmJsonNamesNanAndInfinityWhereTheyAre) {
  const auto refusal = gmm_refusal;
  const std::string tail = ", which is not a number JSON can hold: every weight, mean and variance must be a finite number";
  const std::pair<const char*, const char*> cases[] = {
      {R"({"weights":[1,1,1],"means":[[0,0],[0,0],[0,1, NaN]],"stds":[1,1,1]})", "means[2][2] is NaN"},
      {R"({"weights":[1,1],"means":[[0],[1]],"stds":[1,Infinity]})", "stds[1] is Infinity"},
      {R"({"weights":[1,1],"means":[[0],[1]],"variances":[[1],[-Infinity]]})", "variances[1][0] is -Infinity"},
      {R"({"weights":[nan],"means":[[0]],"stds":[1]})", "weights[0] is nan"},
      {R"({"weights":[1],"means":[[0]],"stds":inf})", "stds is inf"},
      {R"({"note":NaN,"weights":[1],"means":[[0]],"stds":[1]})", "a value is NaN"},
      {R"({"weights":[1],"means":[[0]], NaN:1})", "a value is NaN"},
  };
  for (const auto& [text, where] : cases) EXPECT_EQ(refusal(text), "GMM JSON: " + std::string(where) + tail) << text;
}

// Peak memory of loading a large prior (it was a tree of 16-byte JSON values per number, plus two
// copies of the text and a host copy of the arrays: a 60 MB file peaked at 1.75 GB). Measured in a
// child process (fork) whose high-water mark is reset first (/proc/self/clear_refs, "5"), so the
// test process's own history does not count.
TEST(Safety, LargeGmmJsonLoadsInBoundedMemory) {
#ifdef ALMC_TEST_SANITIZED
  GTEST_SKIP() << "sanitizer allocators keep freed memory (quarantine): peak RSS means nothing here";
#else
  TempDir t;
  const std::string path = t / "large.json";
  // 40 components in d = 100000: one-digit means (the tree costs most per byte for short numbers)
  // and three-character stds, ~14 MB of text for 8M numbers.
  const int64_t K = 40, d = 100000;
  {
    std::string text = "{\"weights\": [";
    for (int64_t k = 0; k < K; ++k) text += k ? ",1" : "1";
    text += "],\n\"means\": [";
    uint32_t state = 12345;
    for (int64_t k = 0; k < K; ++k) {
      text += k ? ",[" : "[";
      for (int64_t j = 0; j < d; ++j) {
        state = state * 1664525u + 1013904223u;
        if (j) text += ',';
        text += char('0' + (state >> 28) % 10);
      }
      text += ']';
    }
    text += "],\n\"stds\": [";
    for (int64_t k = 0; k < K; ++k) {
      text += k ? ",[" : "[";
      for (int64_t j = 0; j < d; ++j) text += j ? ",0.5" : "0.5";
      text += ']';
    }
    text += "]}\n";
    std::ofstream(path, std::ios::binary) << text;
  }
  const double file_mb = double(std::filesystem::file_size(path)) / (1 << 20);
  const double arrays_mb = double(2 * K * d * sizeof(float)) / (1 << 20);  // means and variances
  auto status_kb = [](const char* key) {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key)));
    return -1L;
  };
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: no gtest assertions, no OpenMP; report the growth (kB) through the pipe.
    long growth = -1;
    almc_context_config c = almc_context_config_default();
    c.backend = ALMC_BACKEND_CPU;
    c.n_threads = 1;
    almc_context_t ctx = nullptr;
    almc_score_t s = nullptr;
    std::ofstream("/proc/self/clear_refs") << "5";
    if (almc_context_create(&c, &ctx) == ALMC_OK) {
      const long before = status_kb("VmRSS:");
      std::ofstream("/proc/self/clear_refs") << "5";
      if (almc_score_create_gmm_json(ctx, path.c_str(), &s) == ALMC_OK) growth = status_kb("VmHWM:") - before;
    }
    ssize_t w = ::write(fds[1], &growth, sizeof growth);
    ::_exit(w == sizeof growth ? 0 : 1);
  }
  ::close(fds[1]);
  long growth_kb = -1;
  const ssize_t got = ::read(fds[0], &growth_kb, sizeof growth_kb);
  ::close(fds[0]);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  ASSERT_EQ(got, ssize_t(sizeof growth_kb));
  ASSERT_GT(growth_kb, 0) << "the child could not load the prior";
  // What loading must hold at some point: the file's text, then the parsed arrays and the score's
  // copy of them. Allowed: the file plus 2.5 times the arrays (the parsed and the score's copies,
  // and room for the allocator). The tree-based reader with its copies peaked at 192 MB here.
  const double growth_mb = double(growth_kb) / 1024, bound_mb = file_mb + 2.5 * arrays_mb;
  EXPECT_LT(growth_mb, bound_mb) << "file " << file_mb << " MB, arrays " << arrays_mb << " MB";
  std::printf("[ info     ] %.1f MB prior file, %.1f MB of arrays: peak growth %.1f MB (bound %.1f MB)\n", file_mb,
              arrays_mb, growth_mb, bound_mb);
#endif
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
  EXPECT_NE(msg.find("give warm_steps = N explicitly"), std::string::npos) << msg;
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

// The stability bound counts an analytic prior's own curvature, 1/S_t at the smallest level, not
// 1: a Gaussian of variance 1e-4 at t = 1e-4 has 3300. Counted as 1, delta = 1e-3 passed the
// guard and the run returned values of 1e16 with a success status (a held-out audit).
TEST(Safety, StabilityCountsThePriorsCurvature) {
  almc_context_t ctx = cpu_context();
  const float mean[2] = {1.f, -0.5f}, var[2] = {1e-4f, 1e-4f}, y[2] = {0.9f, -0.4f};
  almc_score_t score = nullptr;
  almc_operator_t op = nullptr;
  ASSERT_EQ(almc_score_create_gaussian(ctx, 2, mean, var, &score), ALMC_OK);
  ASSERT_EQ(almc_operator_create_identity(ctx, 2, &op), ALMC_OK);
  auto config = [](double delta, int force) {
    almc_sampler_config c = almc_sampler_config_default();
    c.chains_per_meas = 64;
    c.noise_std = 0.5;
    c.kappa = 0.5;
    c.t_stop = 1e-4;
    c.variant = ALMC_VARIANT_BEST;  // geometric levels down to t_stop itself
    c.delta = delta;
    c.force_unstable = force;
    c.seed = 3;
    return c;
  };
  // 1/S_t at t = 1e-4: S = e^{-2t} 1e-4 + 1 - e^{-2t} = 2.9996e-4; with L = 4 the bound on delta
  // is 2 / (4 + 3333.8) = 5.992e-4.
  almc_sampler_t s = nullptr;
  almc_sampler_config c = config(1e-3, 0);
  EXPECT_EQ(almc_sampler_create(ctx, score, op, &c, &s), ALMC_ERR_UNSTABLE);
  const std::string msg = almc_context_last_error(ctx);
  EXPECT_NE(msg.find("1/S_t = 3333"), std::string::npos) << msg;
  EXPECT_NE(msg.find("largest stable delta is 0.000599"), std::string::npos) << msg;
  // Forced, the same run does blow up: the bound is real, not a margin.
  c = config(1e-3, 1);
  ASSERT_EQ(almc_sampler_create(ctx, score, op, &c, &s), ALMC_OK) << almc_context_last_error(ctx);
  ASSERT_EQ(almc_sampler_set_measurement(s, y), ALMC_OK);
  const almc_status forced = almc_sampler_run(s);
  std::vector<float> x(64 * 2);
  float worst = 0;
  if (forced == ALMC_OK) {
    ASSERT_EQ(almc_sampler_get_samples(s, x.data()), ALMC_OK);
    for (float v : x) worst = std::max(worst, std::fabs(v));
  }
  EXPECT_TRUE(forced == ALMC_ERR_DIVERGED || worst > 1e3f) << "status " << forced << ", max |x| " << worst;
  almc_sampler_destroy(s);
  // Just inside the bound the chains stay near the posterior (mean 0.9998 / -0.4998 at t_stop).
  c = config(5.5e-4, 0);
  ASSERT_EQ(almc_sampler_create(ctx, score, op, &c, &s), ALMC_OK) << almc_context_last_error(ctx);
  ASSERT_EQ(almc_sampler_set_measurement(s, y), ALMC_OK);
  ASSERT_EQ(almc_sampler_run(s), ALMC_OK) << almc_sampler_last_error(s);
  ASSERT_EQ(almc_sampler_get_samples(s, x.data()), ALMC_OK);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_LT(std::fabs(x[i] - mean[i % 2]), 0.5f) << "sample value " << i;
  almc_sampler_destroy(s);
  almc_operator_destroy(op);
  almc_score_destroy(score);
  almc_context_destroy(ctx);
}

// Levels delta / kappa apart cannot end at a t_stop below that spacing: the run says where it ends.
TEST(Safety, ALastLevelFarAboveTStopIsNoted) {
  almc::ScheduleInputs in = almc_inputs();
  in.cfg.t_stop = 1e-4;
  in.cfg.kappa = 0.5;  // delta 1e-3: levels 2e-3 apart, the last at (round(0.05) + 1) 2e-3
  almc::Schedule s = almc::build_schedule(in);
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NE(s.notes[0].find("the last is t = 0.002, not t_stop = 0.0001"), std::string::npos) << s.notes[0];
  in.cfg.t_stop = 1e-2;  // the defaults: the last level 1e-2 + 1e-4, nothing to say
  in.cfg.kappa = 10;
  EXPECT_TRUE(almc::build_schedule(in).notes.empty());
}
