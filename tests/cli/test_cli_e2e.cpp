// End-to-end tests of the almc command: they write input files, run the executable named by
// ALMC_EXE (set by ctest; else found next to this test binary) and check exit codes, messages and
// outputs. Also unit tests of the CLI's spec parsers.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <csignal>
#include <thread>
#include <filesystem>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "host/cli/commands.hpp"
#include "host/io/image.hpp"
#include "host/io/npy.hpp"

namespace {

using almc::io::write_npy;

std::string almc_exe() {
  if (const char* e = std::getenv("ALMC_EXE"); e && *e) return e;
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    buf[n] = 0;
    std::string p(buf);
    p = p.substr(0, p.rfind('/')) + "/almc";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct Result {
  int code = -1;
  std::string out, err;
};

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    exe_ = almc_exe();
    if (exe_.empty()) GTEST_SKIP() << "almc executable not found (set ALMC_EXE)";
    char tmpl[] = "/tmp/almc_cli_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // shell: run through `sh -c` with this prefix before the command (limits, traps, timeout).
  Result run(const std::string& args, const std::string& shell = "") const {
    const std::string out = path("stdout.txt"), err = path("stderr.txt");
    const std::string exec = "'" + exe_ + "' " + args + " >'" + out + "' 2>'" + err + "' </dev/null";
    const std::string cmd = shell.empty() ? exec : "sh -c \"" + shell + " " + exec + "\"";
    const int st = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  // A 1-component Gaussian prior N(m, s2 I) in d = 4 as GMM JSON.
  std::string gaussian_prior() const {
    const std::string p = path("prior.json");
    std::ofstream f(p);
    f << R"({"weights": [1.0], "means": [[0.5, -1.0, 0.0, 2.0]], "variances": [[0.25, 0.25, 0.25, 0.25]]})";
    return p;
  }

  std::string exe_, dir_;
};

// A failure must be: non-zero exit, no crash (exit code < 128), exactly one line on stderr
// mentioning `needle`.
void expect_one_line_error(const Result& r, const std::string& needle) {
  EXPECT_NE(r.code, 0) << r.err;
  EXPECT_LT(r.code, 128) << "crashed or killed: " << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "message lacks '" << needle << "': " << r.err;
}

const double kM[4] = {0.5, -1.0, 0.0, 2.0};
const double kS2 = 0.25;

// Mean and variance of mu_tau = N(M, C) per coordinate for the prior above, identity operator,
// noise sigma (ALGORITHMS.md T1); tau = 0 gives the exact posterior.
void posterior_tau(double m, double y, double sigma, double tau, double* mean, double* var) {
  const double a = std::exp(-2 * tau), St = a * kS2 + (1 - a);
  const double C = 1.0 / (1.0 / St + 1.0 / (sigma * sigma));
  *var = C;
  *mean = C * (std::exp(-tau) * m / St + y / (sigma * sigma));
}

TEST_F(Cli, GaussianPosteriorMeanMatchesClosedForm) {
  const std::string prior = gaussian_prior();
  const float y[4] = {1.0f, 0.0f, -0.5f, 1.5f};
  write_npy(path("y.npy"), y, {4});
  const double sigma = 0.5, tau = 0.01;
  const int chains = 1000;
  const Result r = run("sample --prior " + prior + " --y " + path("y.npy") + " --noise-std 0.5 --operator identity" +
                       " --kappa 5 --delta 2e-3 --t-start 5 --t-stop 0.01 --chains " + std::to_string(chains) +
                       " --seed 3 --backend cpu --out " + path("s.npy") + " --mean " + path("mean.npy") + " --std " +
                       path("std.npy") + " --diagnostics " + path("diag.json") + " --json --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto mean = almc::io::read_npy_f64(path("mean.npy"));
  const auto sd = almc::io::read_npy_f64(path("std.npy"));
  const auto s = almc::io::read_npy_f32(path("s.npy"));
  ASSERT_EQ(mean.shape, (std::vector<int64_t>{1, 4}));
  ASSERT_EQ(s.shape, (std::vector<int64_t>{chains, 4}));
  for (int j = 0; j < 4; ++j) {
    double mt, vt, m0, v0;
    posterior_tau(kM[j], y[j], sigma, tau, &mt, &vt);
    posterior_tau(kM[j], y[j], sigma, 0.0, &m0, &v0);
    // Monte Carlo: 5 standard errors (0.056); plus 0.05 for ULA tracking lag at kappa 5, delta 2e-3
    // (the lag in OU time is about 1 / (kappa * precision) = 0.025, times |dM/dt| < 2).
    const double tol = 5 * std::sqrt(vt) / std::sqrt(double(chains)) + 0.05;
    EXPECT_NEAR(mean.data[j], mt, tol) << "coordinate " << j << " (mu_0 mean " << m0 << ")";
    // The posterior mean of mu_0 itself: (m/s^2 + y/sigma^2) / (1/s^2 + 1/sigma^2); mu_tau differs by O(tau).
    EXPECT_NEAR(mean.data[j], (kM[j] / kS2 + y[j] / (sigma * sigma)) / (1 / kS2 + 1 / (sigma * sigma)),
                tol + std::fabs(mt - m0));
    // Std: ULA's stationary variance is 1 / (lambda (1 - delta lambda / 2)), within 1 % here; 10 % tolerance.
    EXPECT_NEAR(sd.data[j], std::sqrt(vt), 0.1 * std::sqrt(vt)) << "coordinate " << j;
  }
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_EQ(summary["n_meas"], 1);
  EXPECT_EQ(summary["chains_per_meas"], chains);
  const auto diag = nlohmann::json::parse(slurp(path("diag.json")));
  EXPECT_EQ(diag["residuals"].size(), size_t(chains));
  EXPECT_GT(diag["run_info"]["steps"].get<int64_t>(), 12000);
}

TEST_F(Cli, SeveralMeasurementsInOneBatch) {
  const std::string prior = gaussian_prior();
  const float y[3][4] = {{1, 0, -0.5f, 1.5f}, {0, 0, 0, 0}, {-1, 2, 1, 0}};
  write_npy(path("y.npy"), &y[0][0], {3, 4});
  const int chains = 300;
  const Result r = run("sample --prior " + prior + " --y " + path("y.npy") +
                       " --noise-std 0.5 --kappa 5 --delta 2e-3 --chains " + std::to_string(chains) + " --backend cpu --out " +
                       path("s.npy") + " --mean " + path("mean.npy") + " --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto mean = almc::io::read_npy_f64(path("mean.npy"));
  ASSERT_EQ(mean.shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(almc::io::read_npy_f32(path("s.npy")).shape, (std::vector<int64_t>{3 * chains, 4}));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      double mt, vt;
      posterior_tau(kM[j], y[i][j], 0.5, 0.01, &mt, &vt);
      // 5 standard errors plus 0.05 for tracking lag at kappa 5, delta 2e-3.
      EXPECT_NEAR(mean.data[i * 4 + j], mt, 5 * std::sqrt(vt / chains) + 0.05) << i << "," << j;
    }
}

TEST_F(Cli, ImageOutputsAndPng) {
  // d = 16 as a 4x4 image; truth gives the shape; downsample:2 needs it.
  std::ofstream(path("prior.json")) << R"({"weights": [1], "means": [[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]], "stds": [0.5]})";
  std::vector<float> truth(16), y(4);
  for (int i = 0; i < 16; ++i) truth[i] = 0.1f * float(i % 5) - 0.2f;
  for (int i = 0; i < 4; ++i) y[i] = 0.05f;
  write_npy(path("truth.npy"), truth.data(), {1, 4, 4});
  write_npy(path("y.npy"), y.data(), {1, 2, 2});
  const Result r = run("sample --prior " + path("prior.json") + " --y " + path("y.npy") +
                       " --operator downsample:2 --noise-std 0.1 --kappa 2 --delta 2e-3 --chains 6 --backend cpu --truth " +
                       path("truth.npy") + " --out " + path("s.npy") + " --png " + path("fig.png") + " --json -q");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(almc::io::read_npy_f32(path("s.npy")).shape, (std::vector<int64_t>{6, 1, 4, 4}));
  const auto im = almc::io::read_png(path("fig.png"));
  EXPECT_GT(im.width, 7 * 4 * 8);  // measurement, 4 samples, mean, std, truth
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["image_shape"], (std::vector<int64_t>{1, 4, 4}));
  EXPECT_EQ(j["psnr_mean"].size(), 1u);
  EXPECT_EQ(j["m"], 4);
}

TEST_F(Cli, PriorOnlyAndInfo) {
  const Result r = run("sample --prior " + gaussian_prior() + " --chains 200 --kappa 5 --delta 2e-3 --backend cpu --mean " +
                       path("mean.npy") + " -q");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto mean = almc::io::read_npy_f64(path("mean.npy"));
  // A plumbing check (no likelihood: the noised prior's mean e^{-tau} m); the engine's own tests
  // check accuracy. 5 standard errors plus 0.15 for ULA tracking lag at kappa 5.
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(mean.data[j], std::exp(-0.01) * kM[j], 5 * 0.5 / std::sqrt(200.0) + 0.15);
  const Result info = run("info --json");
  ASSERT_EQ(info.code, 0) << info.err;
  const auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["version"], almc_version());
  EXPECT_TRUE(j.contains("cuda_devices"));
}

TEST_F(Cli, EvalMatchesTorchFixture) {
  const char* data = std::getenv("ALMC_TEST_DATA");
  const std::string base = std::string(data ? data : "tests/data") + "/onnx/gauss_vp_eps";
  if (::access((base + ".onnx").c_str(), R_OK) != 0) GTEST_SKIP() << "fixture " << base << ".onnx not found";
  const auto x = almc::io::read_npy_f32(base + "_x.npy");
  const auto lv = almc::io::read_npy_f32(base + "_level.npy");
  const auto ref = almc::io::read_npy_f32(base + "_out.npy");
  const int64_t d = x.shape[1];
  write_npy(path("x0.npy"), x.data.data(), {1, d});
  char level[32];
  std::snprintf(level, sizeof level, "%.9g", lv.data[0]);
  const Result r = run("eval --model " + base + ".onnx --x " + path("x0.npy") + " --level " + level + " --out " +
                       path("o.npy") + " -q");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto o = almc::io::read_npy_f32(path("o.npy"));
  ASSERT_EQ(o.shape, (std::vector<int64_t>{1, d}));
  for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(o.data[j], ref.data[j], 1e-4);
}

TEST_F(Cli, BadArgumentsGiveOneLineErrors) {
  const std::string prior = gaussian_prior();
  const float y4[4] = {1, 0, -0.5f, 1.5f}, y5[5] = {1, 2, 3, 4, 5}, ynan[4] = {1, NAN, 0, 0};
  write_npy(path("y.npy"), y4, {4});
  write_npy(path("y5.npy"), y5, {5});
  write_npy(path("ynan.npy"), ynan, {4});
  std::ofstream(path("trunc.npy")) << std::string("\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', ", 26);
  std::ofstream(path("garbage.onnx")) << "this is not an onnx model";
  std::ofstream(path("bad.json")) << R"({"weights": [1], "means": [[0, 0]], "variances": [[1]]})";
  write_npy(path("mat.npy"), y5, {1, 5});
  const std::string base = "sample --backend cpu --quiet --prior " + prior + " ";
  const std::string ok_y = "--y " + path("y.npy") + " --noise-std 0.5 ";
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"sample --prior /nonexistent/prior.json", "/nonexistent/prior.json"},
      {base + "--y /nonexistent/y.npy --noise-std 0.5", "/nonexistent/y.npy"},
      {base + "--y " + path("y5.npy") + " --noise-std 0.5", "expects 4 values"},
      {base + "--y " + path("ynan.npy") + " --noise-std 0.5", "non-finite"},
      {base + "--y " + path("trunc.npy") + " --noise-std 0.5", "truncated"},
      {base + ok_y + "--method magic", "unknown --method"},
      {base + "--y " + path("y.npy") + " --noise-std -1", "--noise-std"},
      {base + "--y " + path("y.npy") + " --noise-std nan", "--noise-std"},
      {base + "--y " + path("y.npy"), "--noise-std"},
      {base + ok_y + "--chains 0", "--chains"},
      {base + ok_y + "--operator fourier", "unknown --operator"},
      {base + ok_y + "--operator downsample:3", "downsample"},
      {base + ok_y + "--operator mask:" + path("y5.npy"), "mask"},
      {base + ok_y + "--operator matrix:" + path("mat.npy"), "columns"},
      {base + "--operator identity", "needs a measurement"},
      {base + ok_y + "--backend tpu", "unknown backend"},
      {base + ok_y + "--shape 3,3", "--shape"},
      {base + ok_y + "--truth " + path("y5.npy"), "--truth"},
      {"sample --backend cpu -q " + ok_y, "--model"},
      {"sample --backend cpu -q --model " + path("garbage.onnx") + " " + ok_y, "garbage.onnx"},
      {"sample --backend cpu -q --model /nonexistent/m.onnx " + ok_y, "/nonexistent/m.onnx"},
      {"sample --backend cpu -q --prior " + path("bad.json") + " " + ok_y, "bad.json"},
      {"sample --no-such-option", "no-such-option"},
      {"frobnicate", "frobnicate"},
      {"", "subcommand"},
      {"eval --model /nonexistent/m.onnx --x " + path("y.npy") + " --level 0.5 --out " + path("o.npy"), "m.onnx"},
      {"demo --demo-dir /nonexistent", "/nonexistent"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE("almc " + c.args);
    expect_one_line_error(run(c.args), c.needle);
  }
}

TEST_F(Cli, DemoQuickRuns) {
  const char* env = std::getenv("ALMC_DEMO_DIR");
  const std::string demo = env && *env ? env : "demo";  // ctest runs these from the repository root
  if (::access((demo + "/digits_score.onnx").c_str(), R_OK) != 0)
    GTEST_SKIP() << "demo network not found (ALMC_DEMO_DIR or ./demo)";
  // A very short run: checks the plumbing (files, figures, report), not the quality.
  const Result r = run("demo --quick --images 2 --chains 2 --kappa 0.4 --delta 4e-3 --backend cpu --json --out-dir " + path("demo"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* t : {"inpaint", "superres"}) {
    ASSERT_TRUE(j["tasks"].contains(t));
    EXPECT_EQ(j["tasks"][t]["psnr_mean"].size(), 2u);
    EXPECT_NO_THROW(almc::io::read_png(path(std::string("demo/demo_") + t + ".png")));
  }
}

// Slices + merge: the merged samples, mean and std are the single run's bytes; merge refuses
// overlapping, missing and foreign slices (and leaves no output); sample refuses bad ranges.
TEST_F(Cli, SlicesMergeToTheSingleRun) {
  const std::string prior = gaussian_prior();
  const float y[3][4] = {{1, 0, -0.5f, 1.5f}, {0, 0, 0, 0}, {-1, 2, 1, 0}};
  write_npy(path("y.npy"), &y[0][0], {3, 4});
  const std::string base = "sample --prior " + prior + " --y " + path("y.npy") +
                           " --noise-std 0.5 --kappa 2 --delta 4e-3 --t-start 1 --t-stop 0.05 --chains 5 --backend cpu --quiet";
  Result r = run(base + " --seed 4 --out " + path("whole.npy") + " --mean " + path("m1.npy") + " --std " + path("s1.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<std::pair<std::string, std::string>> parts = {{"p0", "0:4"}, {"p1", "4:7"}, {"p2", "11:4"}};
  for (const auto& [name, rng] : parts) {
    r = run(base + " --seed 4 --chain-range " + rng + " --out " + path(name + ".npy"));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(almc::io::read_npy_f32(path(name + ".npy")).shape[0], std::stoll(rng.substr(rng.find(':') + 1)));
  }
  const auto rec = nlohmann::json::parse(slurp(path("p1.npy.json")));
  EXPECT_EQ(rec["chain_start"], 4);
  EXPECT_EQ(rec["chain_count"], 7);
  EXPECT_EQ(rec["total_chains"], 15);
  r = run("merge " + path("p2.npy") + " " + path("p0.npy") + " " + path("p1.npy") + " --out " + path("all.npy") +
          " --mean " + path("m2.npy") + " --std " + path("s2.npy") + " --quiet");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(path("all.npy")), slurp(path("whole.npy")));
  EXPECT_EQ(slurp(path("m2.npy")), slurp(path("m1.npy")));
  EXPECT_EQ(slurp(path("s2.npy")), slurp(path("s1.npy")));
  EXPECT_EQ(slurp(path("all.npy")).size(), 128u + 15 * 4 * 4);

  // Refusals: each leaves no output file.
  r = run(base + " --seed 5 --chain-range 11:4 --out " + path("foreign.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run(base + " --seed 4 --chain-range 3:8 --out " + path("over.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string m = " --out " + path("bad.npy") + " --mean " + path("bad_m.npy") + " --quiet";
  expect_one_line_error(run("merge " + path("p0.npy") + " " + path("p1.npy") + m), "chains 11 to 14 are missing");
  expect_one_line_error(run("merge " + path("p0.npy") + " " + path("p2.npy") + m), "chains 4 to 10 are missing");
  expect_one_line_error(run("merge " + path("p0.npy") + " " + path("over.npy") + " " + path("p1.npy") + " " + path("p2.npy") + m),
                        "overlaps");
  expect_one_line_error(run("merge " + path("p0.npy") + " " + path("p0.npy") + " " + path("p1.npy") + " " + path("p2.npy") + m),
                        "overlaps");
  expect_one_line_error(run("merge " + path("p0.npy") + " " + path("p1.npy") + " " + path("foreign.npy") + m), "another run");
  expect_one_line_error(run("merge " + path("whole.npy") + m), "no slice record");
  struct stat st;
  EXPECT_NE(::stat(path("bad.npy").c_str(), &st), 0);
  EXPECT_NE(::stat(path("bad_m.npy").c_str(), &st), 0);

  expect_one_line_error(run(base + " --chain-range 12:4 --out " + path("x.npy")), "ends past the run's 15 chains");
  expect_one_line_error(run(base + " --chain-range 2 --out " + path("x.npy")), "START:COUNT");
  expect_one_line_error(run(base + " --chain-range 2:0 --out " + path("x.npy")), "START:COUNT");
  expect_one_line_error(run(base + " --chain-range 0:5 --out " + path("x.npy") + " --mean " + path("xm.npy")), "almc merge");
  expect_one_line_error(run(base + " --chain-range 0:5"), "needs --out");
  EXPECT_NE(::stat(path("x.npy").c_str(), &st), 0);
}

TEST(CliParsers, ShapesAndOperatorSpecs) {
  using namespace almc::cli;
  const ImageShape s = parse_shape("3,8,8");
  EXPECT_EQ(s.C, 3);
  EXPECT_EQ(s.size(), 192);
  EXPECT_EQ(parse_shape("16,16").C, 1);
  EXPECT_THROW(parse_shape("16"), CliError);
  EXPECT_THROW(parse_shape("0,4,4"), CliError);
  EXPECT_THROW(parse_shape("a,b"), CliError);
  EXPECT_THROW(parse_shape("99999999999999,1"), CliError);
  EXPECT_EQ(parse_operator_spec("identity").kind, "identity");
  EXPECT_EQ(parse_operator_spec("downsample:4").factor, 4);
  EXPECT_EQ(parse_operator_spec("mask:m.npy").file, "m.npy");
  EXPECT_THROW(parse_operator_spec("downsample:0"), CliError);
  EXPECT_THROW(parse_operator_spec("downsample:-2"), CliError);
  EXPECT_THROW(parse_operator_spec("mask"), CliError);
  EXPECT_THROW(parse_operator_spec("fft"), CliError);
  const ImageShape y = measurement_shape(parse_operator_spec("downsample:2"), {1, 16, 16});
  EXPECT_EQ(y.H, 8);
  EXPECT_FALSE(measurement_shape(parse_operator_spec("matrix:a.npy"), {1, 16, 16}).known());
}

// ------------------------------------------------------------------ nothing lost, nothing silently wrong (issue 13)

// Error messages are read after the failing call (they used to be read before it, from memory the
// failure then freed: a garbage byte instead of the message).
TEST_F(Cli, EngineErrorMessagesAreReadAfterTheCall) {
  const float x[4] = {0, 0, 0, 0};
  write_npy(path("x.npy"), x, {1, 4});
  const Result r = run("eval --model /nonexistent/model.onnx --x " + path("x.npy") + " --level 0.5 --out " + path("o.npy"));
  expect_one_line_error(r, "/nonexistent/model.onnx: cannot open: No such file or directory");
  std::ofstream(path("garbage.onnx")) << "this is not an onnx model";
  const Result g = run("eval --model " + path("garbage.onnx") + " --x " + path("x.npy") + " --level 0.5 --out " + path("o.npy"));
  expect_one_line_error(g, "garbage.onnx");
  EXPECT_NE(g.err.find("ONNX model"), std::string::npos) << g.err;
}

// A failed write (here: the file-size limit, as a full disk would) keeps the previous file intact,
// reports the system's reason and exits non-zero; no temporary file is left behind.
TEST_F(Cli, FailedWritesKeepThePreviousFile) {
  const std::string prior = gaussian_prior();
  const std::string old_content = "previous results";
  std::ofstream(path("s.npy")) << old_content;
  // 2000 chains x 4 floats = 32 kB, over a 4-block limit; SIGXFSZ ignored so write() fails with EFBIG.
  const Result r = run("sample --prior " + prior + " --chains 2000 --kappa 2 --threads 1 --backend cpu -q --out " + path("s.npy"),
                       "trap '' XFSZ; ulimit -f 4;");
  expect_one_line_error(r, "File too large");
  EXPECT_EQ(slurp(path("s.npy")), old_content);
  for (const auto& e : std::filesystem::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << "left behind: " << e.path();
  // Without the limit the same command replaces the file with the samples.
  const Result ok = run("sample --prior " + prior + " --chains 2000 --kappa 2 --threads 1 --backend cpu -q --out " + path("s.npy"));
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(almc::io::read_npy_f32(path("s.npy")).shape, (std::vector<int64_t>{2000, 4}));
}

// Outputs that are not regular files are refused before the run and left alone (a device node, a
// FIFO, a directory); the FIFO run must not hang waiting for a reader.
TEST_F(Cli, NonRegularOutputsAreRefusedAndLeftAlone) {
  const std::string prior = gaussian_prior();
  const std::string base = "sample --prior " + prior + " --chains 4 --kappa 2 --backend cpu -q ";
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  const Result f = run(base + "--png " + path("fifo"), "timeout 60");
  expect_one_line_error(f, "a FIFO, not a regular file");
  struct stat st;
  ASSERT_EQ(::stat(path("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ::mkdir(path("folder").c_str(), 0700);
  expect_one_line_error(run(base + "--out " + path("folder")), "a directory");
  // A character device like /dev/null (made here, so the real one is never at risk).
  if (::mknod(path("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    const Result c = run(base + "--png " + path("null"));
    expect_one_line_error(c, "a character device");
    ASSERT_EQ(::stat(path("null").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }
}

// Output paths are checked (and their folders created) before sampling: a path that cannot be
// written fails at once, not after the run.
TEST_F(Cli, OutputPathsAreCheckedBeforeTheRun) {
  const std::string prior = gaussian_prior();
  std::ofstream(path("plain")) << "x";
  // About 2e10 chain-steps: minutes on a CPU, so a quick failure proves nothing ran.
  const auto t0 = std::chrono::steady_clock::now();
  const Result r = run("sample --prior " + prior + " --chains 100000 --backend cpu -q --mean " + path("mean.npy") +
                       " --out " + path("plain/sub/x.npy"));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  expect_one_line_error(r, "Not a directory");
  EXPECT_LT(secs, 20.0) << "the bad path was found only after sampling";
  EXPECT_EQ(::access(path("mean.npy").c_str(), F_OK), -1) << "nothing is written when an output is unusable";
  // Missing folders are created.
  const Result ok = run("sample --prior " + prior + " --chains 4 --kappa 2 --backend cpu -q --out " + path("a/b/x.npy") +
                        " --diagnostics " + path("c/d.json"));
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(almc::io::read_npy_f32(path("a/b/x.npy")).shape, (std::vector<int64_t>{4, 4}));
  EXPECT_NO_THROW(nlohmann::json::parse(slurp(path("c/d.json"))));
}

// A 3 GB address-space limit for a command (so a huge allocation fails instead of taking the
// machine); none under AddressSanitizer, which reserves terabytes of address space for itself.
std::string address_limit() { return std::getenv("ASAN_OPTIONS") ? "" : "ulimit -v 3000000;"; }

// Step counts that overflow or would need huge tables are refused with a message naming the
// option, never run as warm-start noise with exit 0. The address-space limit makes any large
// allocation fail, so a refusal that came after building the table would show up.
TEST_F(Cli, AbsurdStepCountsAreRefusedBeforeAllocating) {
  const std::string prior = gaussian_prior();
  const float y[4] = {1, 0, -0.5f, 1.5f};
  write_npy(path("y.npy"), y, {4});
  const std::string base = "sample --prior " + prior + " --chains 2 --backend cpu -q --out " + path("s.npy") + " ";
  const std::string limit = address_limit();
  const std::pair<const char*, const char*> cases[] = {
      {"--kappa 1e300", "kappa t_start / delta = 5e+303 is too large"},
      {"--kappa 1e18", "kappa t_start / delta = 5e+21 is too large"},
      {"--delta 1e-300", "kappa t_start / delta = 5e+301 is too large"},
      {"--kappa 39000", "above the limit of 33554432 steps per run"},
      {"--method ald --levels 10000 --steps-per-level 100000", "above the limit of 33554432 steps per run"}};
  for (const auto& [opt, message] : cases) {
    const Result r = run(base + opt, limit);
    expect_one_line_error(r, message);
    EXPECT_EQ(::access(path("s.npy").c_str(), F_OK), -1) << opt;
  }
  expect_one_line_error(run(base + "--t-start 1e300", limit), "t_start = 1e+300 is too large");
  expect_one_line_error(run(base + "--kappa 1e-9", limit), "rounds to no annealing step");
  // sigma_y = 1e-4: the default warm start would be 10 (1 + 1e8) steps; the stability check refuses first.
  const Result w = run(base + "--y " + path("y.npy") + " --noise-std 1e-4", limit);
  expect_one_line_error(w, "above the stability bound");
  // Forced past the stability check, the warm start itself is refused by the step limit.
  const Result f = run(base + "--y " + path("y.npy") + " --noise-std 1e-4 --force", limit);
  expect_one_line_error(f, "warm start");
}

// Inputs must be regular files: devices and FIFOs are refused at once (not read until memory runs
// out, not waited on), a directory is named as such.
TEST_F(Cli, NonRegularInputsAreRefused) {
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  const std::string tail = " --chains 2 --backend cpu -q";
  const std::string limit = address_limit() + " timeout 60";
  expect_one_line_error(run("sample --prior /dev/zero" + tail, limit), "a character device, not a regular file");
  expect_one_line_error(run("sample --prior " + path("fifo") + tail, limit), "a FIFO, not a regular file");
  expect_one_line_error(run("sample --model " + path("fifo") + tail, limit), "a FIFO, not a regular file");
  expect_one_line_error(run("sample --prior " + dir_ + tail, limit), "a directory, not a regular file");
  const float x[4] = {0, 0, 0, 0};
  write_npy(path("x.npy"), x, {1, 4});
  expect_one_line_error(run("eval --model /dev/zero --x " + path("x.npy") + " --level 0.5 --out " + path("o.npy"), limit),
                        "a character device, not a regular file");
}

// A summary that cannot reach stdout is an error, not exit 0.
TEST_F(Cli, SummaryToAFullStdoutIsAnError) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  const std::string cmd = "'" + exe_ + "' sample --prior " + gaussian_prior() +
                          " --chains 4 --kappa 2 --backend cpu --json >/dev/full 2>'" + path("err.txt") + "'";
  const int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_NE(WEXITSTATUS(st), 0);
  EXPECT_NE(slurp(path("err.txt")).find("cannot write to standard output: No space left on device"), std::string::npos)
      << slurp(path("err.txt"));
}

// Ctrl-C stops a run within about a second whatever --check-every is, and writes nothing.
TEST_F(Cli, InterruptStopsPromptlyWithALargeCheckEvery) {
  const std::string cmd = "exec '" + exe_ + "' sample --prior " + gaussian_prior() +
                          " --chains 100000 --check-every 100000000 --backend cpu --verbose --out " + path("s.npy") + " >'" +
                          path("out.txt") + "' 2>'" + path("err.txt") + "' </dev/null";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait for the engine's first log line (the context exists), then let it get well into sampling
  // (about 2e10 chain-steps: minutes) and interrupt.
  for (int k = 0; k < 600 && slurp(path("err.txt")).find("backend") == std::string::npos; ++k)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  int st = 0;
  // Poll for the exit up to 20 s; SIGKILL after that so the test never hangs.
  pid_t done = 0;
  while ((done = ::waitpid(pid, &st, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (done == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    FAIL() << "still running 20 s after SIGINT";
  }
  ASSERT_TRUE(WIFEXITED(st)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(st), 130) << slurp(path("err.txt"));
  // The sampler polls every 0.2 s; a loaded 2-core machine can add a little to one step.
  EXPECT_LT(secs, 3.0) << "took " << secs << " s to stop";
  EXPECT_NE(slurp(path("err.txt")).find("interrupted"), std::string::npos);
  EXPECT_EQ(::access(path("s.npy").c_str(), F_OK), -1) << "a cancelled run must not write its outputs";
}

// Option values that used to be converted silently are refused in one line.
TEST_F(Cli, SeedsPsnrRangesThreadsAndStdsAreChecked) {
  const std::string base = "sample --prior " + gaussian_prior() + " --chains 4 --kappa 2 --backend cpu -q ";
  expect_one_line_error(run(base + "--seed -1"), "--seed");
  expect_one_line_error(run(base + "--seed 18446744073709551616"), "at most 18446744073709551615");
  expect_one_line_error(run(base + "--seed 99999999999999999999999"), "at most 18446744073709551615");
  for (const char* v : {"0", "nan", "inf", "-1"})
    expect_one_line_error(run(base + "--psnr-range " + v), "positive finite");
  expect_one_line_error(run(base + "--threads 4000"), "--threads 4000 is above the limit of 1024");
  // The largest seed is valid and differs from its neighbour.
  ASSERT_EQ(run(base + "--seed 18446744073709551615 --out " + path("a.npy")).code, 0);
  ASSERT_EQ(run(base + "--seed 18446744073709551614 --out " + path("b.npy")).code, 0);
  EXPECT_NE(almc::io::read_npy_f32(path("a.npy")).data, almc::io::read_npy_f32(path("b.npy")).data);
  std::ofstream(path("neg.json")) << R"({"weights": [1], "means": [[0, 0]], "stds": [-1]})";
  expect_one_line_error(run("sample --prior " + path("neg.json") + " --chains 4 --backend cpu -q"), "must be positive");
}

}  // namespace
