// End-to-end tests of the almc command: they write input files, run the executable named by
// ALMC_EXE (set by ctest; else found next to this test binary) and check exit codes, messages and
// outputs. Also unit tests of the CLI's spec parsers.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
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

  Result run(const std::string& args) const {
    const std::string out = path("stdout.txt"), err = path("stderr.txt");
    const std::string cmd = "'" + exe_ + "' " + args + " >'" + out + "' 2>'" + err + "' </dev/null";
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

}  // namespace
