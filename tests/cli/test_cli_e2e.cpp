// End-to-end tests of the almc command: they write input files, run the executable named by
// ALMC_EXE (set by ctest; else found next to this test binary) and check exit codes, messages and
// outputs. Also unit tests of the CLI's spec parsers.
#include <gtest/gtest.h>
#include <fcntl.h>
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
#include <onnx/onnx_pb.h>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "host/cli/commands.hpp"
#include "host/io/image.hpp"
#include "host/io/npy.hpp"
#include "tests/cli/cli_test_util.hpp"

namespace {

using almc::io::write_npy;
using almc_cli_test::Cli;
using almc_cli_test::Result;
using almc_cli_test::expect_one_line_error;
using almc_cli_test::slurp;

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
  // Its text has no character the font lacks (drawn as '?'); the title's ':' is drawn as itself.
  EXPECT_EQ(almc_cli_test::count_glyph(im, '?'), 0);
  EXPECT_GE(almc_cli_test::count_glyph(im, ':'), 1);
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
  // --json=FILE: the report goes to the file, the usual text to stdout.
  const Result r = run("demo --quick --images 2 --chains 2 --kappa 0.4 --delta 4e-3 --backend cpu --json=" +
                       path("report.json") + " --out-dir " + path("demo"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("almc demo:"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(slurp(path("report.json")));
  for (const char* t : {"inpaint", "superres"}) {
    ASSERT_TRUE(j["tasks"].contains(t));
    EXPECT_EQ(j["tasks"][t]["psnr_mean"].size(), 2u);
    const auto im = almc::io::read_png(path(std::string("demo/demo_") + t + ".png"));
    // The title ("...; samples: ...") and the notes are drawn with no fallback glyph ('?').
    EXPECT_EQ(almc_cli_test::count_glyph(im, '?'), 0) << t;
    EXPECT_GE(almc_cli_test::count_glyph(im, ';'), 1) << t;
    EXPECT_GE(almc_cli_test::count_glyph(im, ':'), 1) << t;
    EXPECT_GE(almc_cli_test::count_glyph(im, '|'), 1) << t;  // "E[x0 | x_tau]"
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

// --variant: every accepted name is listed by --help and runs (the SMC ones report their
// resamplings in the diagnostics, the others none); an unknown name, a variant with another
// method and an SMC run the engine refuses each give one line naming the problem.
TEST_F(Cli, VariantNamesAreListedAcceptedAndChecked) {
  const std::string prior = gaussian_prior();
  const float y[4] = {1.0f, 0.0f, -0.5f, 1.5f};
  write_npy(path("y.npy"), y, {4});
  const std::string base = "sample --backend cpu --quiet --prior " + prior + " --y " + path("y.npy") +
                           " --noise-std 0.5 --chains 50 --kappa 0.5 --delta 1e-2 --t-start 1 --seed 2 ";
  const Result help = run("sample --help");
  ASSERT_EQ(help.code, 0) << help.err;
  for (const auto& [name, v] : almc::cli::variant_names()) {
    EXPECT_NE(help.out.find(name), std::string::npos) << "--help does not list " << name;
    const Result r = run(base + "--variant " + name + " --out " + path("s.npy") + " --diagnostics " + path("d.json"));
    ASSERT_EQ(r.code, 0) << name << ": " << r.err;
    EXPECT_EQ(almc::io::read_npy_f32(path("s.npy")).shape, (std::vector<int64_t>{50, 4})) << name;
    const auto diag = nlohmann::json::parse(slurp(path("d.json")));
    const bool smc = v == ALMC_VARIANT_SMC || v == ALMC_VARIANT_GEO_SMC;
    if (smc)
      EXPECT_GE(diag["run_info"]["smc_resamples"].get<int64_t>(), 1) << name;
    else
      EXPECT_EQ(diag["run_info"]["smc_resamples"].get<int64_t>(), 0) << name;
  }
  expect_one_line_error(run(base + "--variant bogus"), "unknown --variant 'bogus'");
  EXPECT_NE(run(base + "--variant bogus").err.find("geo-smc"), std::string::npos);
  expect_one_line_error(run(base + "--variant smc --method ald"), "applies to --method almc only");
  expect_one_line_error(run(base + "--variant smc --average-last 5"), "average_last");
  expect_one_line_error(run(base + "--variant smc --smc-ess 2"), "--smc-ess must be in (0, 1]");
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
  // 2000 chains x 4 floats = 32 kB, over a 4-block limit. The shell leaves SIGXFSZ at its default
  // (the command was killed by it, exit 153, its temporary file left behind): almc ignores it.
  const Result r = run("sample --prior " + prior + " --chains 2000 --kappa 2 --threads 1 --backend cpu -q --out " + path("s.npy"),
                       "ulimit -f 4;");
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
  expect_one_line_error(run(base + "--t-start 1e300", limit), "--t-start 1e+300 is too large");
  expect_one_line_error(run(base + "--kappa 1e-9", limit), "rounds to no annealing step");
  // sigma_y = 1e-4: the default warm start would be 10 (1 + 1e8) steps; the stability check refuses first.
  const Result w = run(base + "--y " + path("y.npy") + " --noise-std 1e-4", limit);
  expect_one_line_error(w, "above the stability bound");
  // Forced past the stability check, the warm start itself is refused by the step limit.
  const Result f = run(base + "--y " + path("y.npy") + " --noise-std 1e-4 --force", limit);
  expect_one_line_error(f, "warm start");
}

// The warm start's step has its own stability bound (identity, sigma_y = 0.5: 2 / (1 + 4) = 0.4);
// above it the run is refused, the advice naming --warm-step, instead of exiting 0 with samples of
// 1e17. The eps methods are advised to lower --eps.
TEST_F(Cli, UnstableWarmStepIsRefusedNamingIt) {
  const std::string prior = gaussian_prior();
  const float y[4] = {1, 0, -0.5f, 1.5f};
  write_npy(path("y.npy"), y, {4});
  const std::string base = "sample --prior " + prior + " --y " + path("y.npy") +
                           " --noise-std 0.5 --kappa 1 --chains 8 --backend cpu -q --out " + path("s.npy") + " ";
  const Result r = run(base + "--warm-step 0.45");
  expect_one_line_error(r, "--warm-step 0.45 is above the stability bound");
  EXPECT_NE(r.err.find("largest stable warm step is 0.4"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(lower --warm-step, or pass --force"), std::string::npos) << r.err;
  EXPECT_EQ(::access(path("s.npy").c_str(), F_OK), -1);
  const Result ok = run(base + "--warm-step 0.35");
  ASSERT_EQ(ok.code, 0) << ok.err;
  const Result e = run("sample --prior " + prior + " --y " + path("y.npy") +
                       " --noise-std 0.5 --method ald --eps 1 --chains 8 --backend cpu -q --out " + path("s.npy"));
  EXPECT_NE(e.err.find("(lower --eps, or pass --force"), std::string::npos) << e.err;
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

// A closed pipe on stdout killed the command by SIGPIPE (status 141, no message). The command
// runs here with SIGPIPE at its default action (as a shell gives it) and its stdout a pipe whose
// reader is gone.
TEST_F(Cli, SummaryToAClosedPipeIsAnError) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);  // no reader
  const std::string err = path("err.txt"), prior = gaussian_prior();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::signal(SIGPIPE, SIG_DFL);
    ::dup2(fds[1], 1);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(e, 2);
    ::execl(exe_.c_str(), exe_.c_str(), "sample", "--prior", prior.c_str(), "--chains", "4", "--kappa", "2", "--backend",
            "cpu", "--json", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  EXPECT_EQ(WEXITSTATUS(st), 1);
  EXPECT_NE(slurp(err).find("almc sample: error: cannot write to standard output: Broken pipe"), std::string::npos)
      << slurp(err);
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
  expect_one_line_error(run(base + "--threads 4000"), "--threads: '4000' is too large (from 0 to 1024)");
  // The largest seed is valid and differs from its neighbour.
  ASSERT_EQ(run(base + "--seed 18446744073709551615 --out " + path("a.npy")).code, 0);
  ASSERT_EQ(run(base + "--seed 18446744073709551614 --out " + path("b.npy")).code, 0);
  EXPECT_NE(almc::io::read_npy_f32(path("a.npy")).data, almc::io::read_npy_f32(path("b.npy")).data);
  std::ofstream(path("neg.json")) << R"({"weights": [1], "means": [[0, 0]], "stds": [-1]})";
  expect_one_line_error(run("sample --prior " + path("neg.json") + " --chains 4 --backend cpu -q"), "must be positive");
}

// OpenMP waits passively unless the user chose a policy (issue 13, item 12): GNU OpenMP's own
// report of the settings it read at start-up (OMP_DISPLAY_ENV=verbose) gives the spin count it
// uses: 0 is passive, its default is 300000. One report only: the command re-executes itself
// before libgomp starts, never after.
TEST_F(Cli, OpenMpWaitsPassivelyUnlessTheUserChose) {
  auto spin_count = [&](const std::string& env) {
    const Result r = run("--version", "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose " + env);
    EXPECT_EQ(r.code, 0) << r.err;
    const std::string key = "GOMP_SPINCOUNT = '";
    const size_t at = r.err.find(key);
    if (at == std::string::npos) return std::string("no libgomp report");
    EXPECT_EQ(r.err.find(key, at + 1), std::string::npos) << "OpenMP started twice:\n" << r.err;
    return r.err.substr(at + key.size(), r.err.find('\'', at + key.size()) - at - key.size());
  };
  const std::string by_default = spin_count("");
  if (by_default == "no libgomp report") GTEST_SKIP() << "the OpenMP runtime is not GNU OpenMP";
  EXPECT_EQ(by_default, "0");
  EXPECT_EQ(spin_count("OMP_WAIT_POLICY=active"), "30000000000");
  EXPECT_EQ(spin_count("OMP_WAIT_POLICY=passive"), "0");
  EXPECT_EQ(spin_count("GOMP_SPINCOUNT=1000"), "1000");
  // `almc info` says which policy the run has.
  EXPECT_NE(run("info", "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT").out.find("openmp waiting: passive\n"),
            std::string::npos);
  EXPECT_NE(run("info", "env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=active").out.find("openmp waiting: active\n"),
            std::string::npos);
}

// ------------------------------------------------------------------ issue 12: first-use defects

std::string fixture(const std::string& name) {
  const char* data = std::getenv("ALMC_TEST_DATA");
  return std::string(data ? data : "tests/data") + "/onnx/" + name;
}

// Item 1: --png with d not a square and no --shape used to die with SIGFPE after the whole run.
TEST_F(Cli, PngWithoutImageShapeIsRefusedBeforeSampling) {
  std::ofstream(path("p5.json")) << R"({"weights": [1], "means": [[0, 0, 0, 0, 0]], "stds": [1]})";
  const float y[5] = {0, 0, 0, 0, 0};
  write_npy(path("y5.npy"), y, {5});
  for (const std::string& extra : {" --y " + path("y5.npy") + " --noise-std 0.5", std::string()}) {
    SCOPED_TRACE(extra);
    const Result r = run("sample --backend cpu -q --prior " + path("p5.json") + extra + " --kappa 1 --chains 4 --png " +
                         path("g.png"));
    expect_one_line_error(r, "--shape");
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(::access(path("g.png").c_str(), F_OK), 0);
  }
}

// Item 3: an RGB PNG for a one-channel model became 3 measurements.
TEST_F(Cli, RgbPngForOneChannelModel) {
  std::ofstream(path("p16.json")) << R"({"weights": [1], "means": [[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]], "stds": [0.5]})";
  almc::io::Image8 gray3{4, 4, 3, {}}, colour{4, 4, 3, {}};
  for (int i = 0; i < 16; ++i)
    for (int c = 0; c < 3; ++c) {
      gray3.pixels.push_back(uint8_t(16 * i));
      colour.pixels.push_back(uint8_t(16 * i + 40 * c));
    }
  almc::io::write_png(path("gray3.png"), gray3);
  almc::io::write_png(path("colour.png"), colour);
  const std::string base = "sample --backend cpu --prior " + path("p16.json") + " --noise-std 0.1 --kappa 1 --chains 2 --json ";
  const Result ok = run(base + "--y " + path("gray3.png"));
  ASSERT_EQ(ok.code, 0) << ok.err;
  const auto j = nlohmann::json::parse(ok.out);
  EXPECT_EQ(j["n_meas"], 1);
  EXPECT_EQ(j["m"], 16);
  EXPECT_NE(ok.err.find("one channel"), std::string::npos) << ok.err;
  expect_one_line_error(run(base + "-q --y " + path("colour.png")), "colour");
}

// A network exported with a dynamic height and width: eval takes one sample's shape from --x
// ([n, C, H, W]) and matches torch; sample refuses it without --shape, naming the option, and runs
// with it.
TEST_F(Cli, DynamicHeightAndWidthFromXOrShape) {
  const std::string base = fixture("zoo_ddpm_unet_o17_dynhw");
  if (::access((base + ".onnx").c_str(), R_OK) != 0) GTEST_SKIP() << "fixture " << base << ".onnx not found";
  const auto x = almc::io::read_npy_f32(base + "_x.npy");
  const auto lv = almc::io::read_npy_f32(base + "_level.npy");
  const auto ref = almc::io::read_npy_f32(base + "_out.npy");
  const int64_t d = 2 * 12 * 16;
  write_npy(path("x0.npy"), x.data.data(), {1, 2, 12, 16});
  char level[32];
  std::snprintf(level, sizeof level, "%.9g", lv.data[0]);
  const Result r = run("eval --model " + base + ".onnx --x " + path("x0.npy") + " --level " + level + " --out " + path("o.npy") + " -q");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto o = almc::io::read_npy_f32(path("o.npy"));
  ASSERT_EQ(o.data.size(), size_t(d));
  for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(o.data[j], ref.data[j], 1e-4) << j;
  std::vector<float> y(size_t(d), 0.f);
  write_npy(path("y.npy"), y.data(), {d});
  const std::string run_args = "sample -q --backend cpu --model " + base + ".onnx --y " + path("y.npy") +
                               " --noise-std 0.5 --kappa 0.2 --chains 2 --warm-steps 2 --out " + path("s.npy");
  expect_one_line_error(run(run_args), "--shape C,H,W");
  const Result s = run(run_args + " --shape 2,12,16");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(almc::io::read_npy_f32(path("s.npy")).data.size(), size_t(2 * d));
}

// Item 2: an int64 timestep input run with the default --level t gave a wrong posterior, exit 0.
TEST_F(Cli, Int64LevelInputIsRefusedAndBindingsAreReported) {
  const float y6[6] = {0, 0, 0, 0, 0, 0};
  write_npy(path("y6.npy"), y6, {6});
  const std::string ok_y = " --y " + path("y6.npy") + " --noise-std 0.5 --kappa 0.2 --chains 2 --backend cpu";
  const std::string i64 = fixture("int64_level.onnx");
  if (::access(i64.c_str(), R_OK) != 0) GTEST_SKIP() << "fixture " << i64 << " not found";
  const Result bad = run("sample -q --model " + i64 + ok_y);
  expect_one_line_error(bad, "--level index --alpha-bar");
  EXPECT_NE(bad.err.find("'timestep' is int64"), std::string::npos) << bad.err;
  // The bindings and the level range fed, for a float level: OU t from tau = 0.01 to T = 5 as VE sigma.
  const Result r = run("sample -q --json --model " + fixture("gauss_vp_eps.onnx") + " --convention vp --output eps --level sigma" + ok_y);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto b = nlohmann::json::parse(r.out)["bindings"];
  EXPECT_EQ(b["x"], "x");
  EXPECT_EQ(b["level"], "t");
  EXPECT_NEAR(b["level_range"][0].get<double>(), std::sqrt(std::expm1(0.02)), 1e-5);
  EXPECT_NEAR(b["level_range"][1].get<double>(), std::sqrt(std::expm1(10.0)), 1e-2);
  const Result v = run("sample --verbose --model " + fixture("gauss_vp_eps.onnx") + ok_y);
  ASSERT_EQ(v.code, 0) << v.err;
  EXPECT_NE(v.err.find("level <- input 't'"), std::string::npos) << v.err;
}

// Item 6: messages in the command line's words.
TEST_F(Cli, MessagesNameOptionsAndInputs) {
  const std::string prior = gaussian_prior();
  const float y5[5] = {1, 2, 3, 4, 5}, y6[6] = {0, 0, 0, 0, 0, 0}, y8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  write_npy(path("y5.npy"), y5, {5});
  write_npy(path("y6.npy"), y6, {6});
  write_npy(path("y8.npy"), y8, {8});
  expect_one_line_error(run("sample --backend cpu -q --prior " + prior + " --y " + path("y5.npy") + " --noise-std 0.5"),
                        "the operator identity expects 4 values");
  const std::string ok_y = " --y " + path("y6.npy") + " --noise-std 0.5 --backend cpu -q";
  if (::access(fixture("level_first.onnx").c_str(), R_OK) != 0) GTEST_SKIP() << "fixtures not found";
  const Result wrong = run("sample --model " + fixture("gauss_vp_eps.onnx") + " --level-input tt" + ok_y);
  expect_one_line_error(wrong, "no input named 'tt'");
  EXPECT_NE(wrong.err.find("'x' float [?, 6], 't' float [?, 1]"), std::string::npos) << wrong.err;
  expect_one_line_error(run("sample --model " + fixture("level_first.onnx") + ok_y), "give --x-input \"x\"");
  const Result none = run("sample --model " + fixture("x_only.onnx") + " --y " + path("y8.npy") + " --noise-std 0.5 --backend cpu -q");
  expect_one_line_error(none, "--level none");
  EXPECT_EQ(none.err.find("ALMC_LEVEL"), std::string::npos) << none.err;
}

// Item 9: zero or negative values are refused, not read as "default".
TEST_F(Cli, NonPositiveValuesAreRefused) {
  const std::string base = "sample --backend cpu -q --prior " + gaussian_prior() + " --chains 2 ";
  for (const char* opt : {"--kappa 0", "--t-stop 0", "--delta -1", "--t-start 0", "--warm-step 0", "--sigma-max 0",
                          "--eps 0", "--init-scale 0", "--levels 0", "--steps-per-level 0", "--warm-steps -1",
                          "--check-every 0"}) {
    SCOPED_TRACE(opt);
    const std::string name = std::string(opt).substr(0, std::string(opt).find(' '));
    const Result r = run(base + opt);
    expect_one_line_error(r, name + " must be");
    EXPECT_EQ(r.code, 2);
  }
}

// Item 7: the ETA uses the recent rate of the current phase. A warm start of 4000 cheap steps
// (1e5 steps/s) and then 1000 steps/s: the run-long average promised an ETA of under a second
// with 4000 of 9000 steps left; the recent rate gives 4 s.
TEST(CliProgress, EtaUsesTheRecentRateOfThePhase) {
  almc::cli::RateMeter m(4000);
  double t = 0;
  for (int64_t s = 0; s <= 4000; s += 100) m.add(t = s / 1e5, s);
  for (int64_t s = 4100; s <= 5000; s += 100) m.add(t += 0.1, s);
  EXPECT_NEAR(m.rate(), 1000.0, 1.0);
  EXPECT_NEAR(m.eta(9000), 4.0, 0.01);
  // Without a phase boundary the window still forgets: 3 s of 1000 steps/s after the fast start.
  almc::cli::RateMeter w(0, 3.0);
  t = 0;
  for (int64_t s = 0; s <= 4000; s += 100) w.add(t = s / 1e5, s);
  for (int64_t s = 4100; s <= 9000; s += 100) w.add(t += 0.1, s);
  EXPECT_NEAR(w.rate(), 1000.0, 1.0);
  EXPECT_TRUE(std::isnan(almc::cli::RateMeter().rate()));
}

// Item 7: the planned number of score evaluations is printed before the run and is what runs.
TEST_F(Cli, PlannedScoreEvaluationsArePrintedFirst) {
  const float y[4] = {1, 0, -0.5f, 1.5f};
  write_npy(path("y.npy"), y, {4});
  const Result r = run("sample --backend cpu --json --prior " + gaussian_prior() + " --y " + path("y.npy") +
                       " --noise-std 0.5 --kappa 1 --chains 3 --tweedie");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  char want[160];
  std::snprintf(want, sizeof want, "planned %lld steps (%lld warm-start), %lld score evaluations on 3 chains",
                static_cast<long long>(j["steps"].get<int64_t>()), static_cast<long long>(j["warm_steps"].get<int64_t>()),
                static_cast<long long>(j["score_evals"].get<int64_t>()));
  EXPECT_NE(r.err.find(want), std::string::npos) << r.err << " wanted: " << want;
}

// Item 8: a stage below the noise is 0, never negative, and keeps its spread.
TEST(CliBench, StageDifferencesAreNeverNegative) {
  const auto neg = almc::cli::stage_difference(1.00e-3, 0.98e-3, 1.04e-3, 1.01e-3, 0.99e-3, 1.03e-3);
  EXPECT_EQ(neg.seconds, 0.0);
  EXPECT_NEAR(neg.raw, -1e-5, 1e-12);
  EXPECT_NEAR(neg.spread, 0.5 * (0.06e-3 + 0.04e-3), 1e-12);
  const auto pos = almc::cli::stage_difference(2e-3, 2e-3, 2e-3, 0.5e-3, 0.5e-3, 0.5e-3);
  EXPECT_NEAR(pos.seconds, 1.5e-3, 1e-12);
  EXPECT_EQ(pos.spread, 0.0);
}

// Item 13: `almc inspect` names inputs and outputs, the operators and their support, and guesses flags.
TEST_F(Cli, InspectDescribesModelsAndGuessesFlags) {
  if (::access(fixture("int64_level.onnx").c_str(), R_OK) != 0) GTEST_SKIP() << "fixtures not found";
  const Result r = run("inspect --json " + fixture("int64_level.onnx"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["opset"], 17);
  ASSERT_EQ(j["inputs"].size(), 2u);
  EXPECT_EQ(j["inputs"][1]["name"], "timestep");
  EXPECT_EQ(j["inputs"][1]["dtype"], "int64");
  EXPECT_EQ(j["inputs"][0]["shape"], (std::vector<std::string>{"batch", "6"}));
  EXPECT_EQ(j["outputs"][0]["name"], "out");
  EXPECT_TRUE(j["operators"]["Cast"]["supported"].get<bool>());
  const auto has_flag = [](const nlohmann::json& f, const std::string& want) {
    for (const auto& v : f)
      if (v == want) return true;
    return false;
  };
  EXPECT_TRUE(has_flag(j["guessed_flags"], "--level index")) << j["guessed_flags"];
  j = nlohmann::json::parse(run("inspect --json " + fixture("level_first.onnx")).out);
  EXPECT_TRUE(has_flag(j["guessed_flags"], "--x-input x")) << j["guessed_flags"];
  EXPECT_EQ(j["executor"], "loads and plans with these flags");
  j = nlohmann::json::parse(run("inspect --json " + fixture("unsupported_ops.onnx")).out);
  EXPECT_EQ(j["unsupported"], (std::vector<std::string>{"Hardmax", "ThresholdedRelu"}));
  EXPECT_FALSE(j["operators"]["ThresholdedRelu"]["supported"].get<bool>());
  // A second output (mlp_embed's output again, through an Identity): the one almc uses is named.
  {
    ::onnx::ModelProto m;
    std::ifstream f(fixture("mlp_embed.onnx"), std::ios::binary);
    ASSERT_TRUE(m.ParseFromIstream(&f));
    auto* g = m.mutable_graph();
    auto* id = g->add_node();
    id->set_op_type("Identity");
    id->add_input(g->output(0).name());
    id->add_output("again");
    *g->add_output() = g->output(0);
    g->mutable_output(1)->set_name("again");
    std::ofstream(path("two_out.onnx"), std::ios::binary) << m.SerializeAsString();
    j = nlohmann::json::parse(run("inspect --json " + path("two_out.onnx")).out);
    const std::string first = g->output(0).name();
    EXPECT_TRUE(has_flag(j["notes"], "the model has 2 outputs: almc uses the first, '" + first +
                                         "' (export the one you mean first, or alone)"))
        << j["notes"];
  }
  // Free dimensions torch's exporter named "<op><output>_dim_<k>" (norm_act's output through a
  // Reshape: "Reshapeeps_dim_1") are shown as unknown, not by that name.
  j = nlohmann::json::parse(run("inspect --json " + fixture("norm_act.onnx")).out);
  for (const auto& dim : j["outputs"][0]["shape"]) EXPECT_EQ(dim.get<std::string>().find("_dim_"), std::string::npos) << dim;
  EXPECT_EQ(j["outputs"][0]["shape"][1], "?") << j["outputs"][0]["shape"];
  const Result shown = run("inspect " + fixture("norm_act.onnx"));
  EXPECT_EQ(shown.out.find("Reshapeeps"), std::string::npos) << shown.out;
  const Result text = run("inspect " + fixture("gauss_vp_eps.onnx"));
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("input  't' float32 [batch, 1]"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("--level t"), std::string::npos) << text.out;
  expect_one_line_error(run("inspect " + path("none.onnx")), "none.onnx");
  // Local functions are counted expanded (the executor's view), and the model loads.
  j = nlohmann::json::parse(run("inspect --json " + fixture("zoo_functions18.onnx")).out);
  EXPECT_EQ(j["local_functions"], 2);
  EXPECT_EQ(j["operators"]["LeakyRelu"]["count"], 5);
  EXPECT_TRUE(j["unsupported"].empty()) << j["unsupported"];
  EXPECT_EQ(j["executor"], "loads and plans with these flags");
  expect_one_line_error(run("inspect " + fixture("refuse_recursive_function.onnx")), "nested deeper than 16");
  // Free height and width: the guess asks for --shape, and the executor is not tried without it.
  j = nlohmann::json::parse(run("inspect --json " + fixture("zoo_ddpm_unet_o17_dynhw.onnx")).out);
  EXPECT_TRUE(has_flag(j["guessed_flags"], "--shape C,H,W")) << j["guessed_flags"];
  EXPECT_NE(j["executor"].get<std::string>().find("needs --shape"), std::string::npos) << j["executor"];
}

// Posterior mean and std per coordinate of N(mu, s2 I) observed through the identity with noise
// sigma: the tau = 0 closed form (the tests' tolerances cover tau = 0.01 and the ULA lag).
void gauss_posterior(double mu, double s2, double y, double sigma, double* mean, double* sd) {
  const double prec = 1 / s2 + 1 / (sigma * sigma);
  *mean = (mu / s2 + y / (sigma * sigma)) / prec;
  *sd = std::sqrt(1 / prec);
}

// Items 10 and 11: a learned-variance output sliced to its first channels; a class label given as
// an extra input. Both networks are exact Gaussian eps networks (make_graphs.py), so the
// posterior is known.
TEST_F(Cli, LearnedVarianceSliceAndExtraInputs) {
  if (::access(fixture("gauss_class_eps.onnx").c_str(), R_OK) != 0) GTEST_SKIP() << "fixtures not found";
  const float y[6] = {1.0f, -0.5f, 0.25f, 0.0f, 0.8f, -1.2f};
  write_npy(path("y.npy"), y, {6});
  const int chains = 400;
  const std::string run_opts = " --y " + path("y.npy") + " --noise-std 0.5 --kappa 2 --delta 4e-3 --chains " +
                               std::to_string(chains) + " --seed 5 --backend cpu -q --mean " + path("mean.npy") + " --std " +
                               path("std.npy");
  auto check_posterior = [&](const std::vector<double>& mu, const char* what) {
    const auto mean = almc::io::read_npy_f64(path("mean.npy")), sd = almc::io::read_npy_f64(path("std.npy"));
    ASSERT_EQ(mean.data.size(), 6u) << what;
    for (int j = 0; j < 6; ++j) {
      double m, s;
      gauss_posterior(mu[j], 0.49, y[j], 0.5, &m, &s);
      // 5 standard errors plus 0.05 (tau = 0.01 and the ULA lag at kappa 2); std within 15 %.
      EXPECT_NEAR(mean.data[j], m, 5 * s / std::sqrt(double(chains)) + 0.05) << what << " coordinate " << j;
      EXPECT_NEAR(sd.data[j], s, 0.15 * s) << what << " coordinate " << j;
    }
  };
  const std::string lv = "sample --model " + fixture("gauss_eps_learned_var.onnx") + " --output eps --convention vp";
  expect_one_line_error(run(lv + run_opts), "--output-slice 0:1");
  Result r = run(lv + " --output-slice 0:1" + run_opts);
  ASSERT_EQ(r.code, 0) << r.err;
  check_posterior({0, 0, 0, 0, 0, 0}, "learned variance, first channel");
  expect_one_line_error(run(lv + " --output-slice 0:3" + run_opts), "has 2 channels");

  const std::string cl = "sample --model " + fixture("gauss_class_eps.onnx") + " --output eps --convention vp";
  expect_one_line_error(run(cl + run_opts), "--input NAME=VALUE");
  expect_one_line_error(run(cl + " --input label=1" + run_opts), "no input named 'label'");
  r = run(cl + " --input class_label=1" + run_opts);
  ASSERT_EQ(r.code, 0) << r.err;
  check_posterior({1.5, -1.0, 0.5, 2.0, -2.0, 1.0}, "class 1");
  const float two = 2.f;
  write_npy(path("label.npy"), &two, {1});
  r = run(cl + " --input class_label=" + path("label.npy") + run_opts);
  ASSERT_EQ(r.code, 0) << r.err;
  check_posterior({-1, -1, -1, -1, -1, -1}, "class 2 from a file");
}

// Item 12: a continuous VP-SDE network (score_sde, beta 0.1 .. 20) fed its time label s * 999.
// The exact Gaussian network gives the closed-form posterior only when the engine feeds the
// right s for each OU time; fed OU t itself (no --beta-*), the posterior is wrong.
TEST_F(Cli, ContinuousVpSdeWithLevelScale) {
  if (::access(fixture("gauss_vpsde_eps.onnx").c_str(), R_OK) != 0) GTEST_SKIP() << "fixtures not found";
  const float y[6] = {1.0f, -0.5f, 0.25f, 0.0f, 0.8f, -1.2f};
  write_npy(path("y.npy"), y, {6});
  const int chains = 400;
  const std::string base = "sample --model " + fixture("gauss_vpsde_eps.onnx") + " --output eps --convention vp --y " +
                           path("y.npy") + " --noise-std 0.5 --kappa 2 --delta 4e-3 --chains " + std::to_string(chains) +
                           " --seed 5 --backend cpu -q --json --mean " + path("mean.npy");
  Result r = run(base + " --beta-min 0.1 --beta-max 20 --level-scale 999");
  ASSERT_EQ(r.code, 0) << r.err;
  auto mean = almc::io::read_npy_f64(path("mean.npy"));
  double worst = 0;
  for (int j = 0; j < 6; ++j) {
    double m, sd;
    gauss_posterior(0, 0.49, y[j], 0.5, &m, &sd);
    // 5 standard errors plus 0.05 (tau = 0.01 and the ULA lag at kappa 2).
    EXPECT_NEAR(mean.data[j], m, 5 * sd / std::sqrt(double(chains)) + 0.05) << j;
  }
  // The level range fed: s(tau = 0.01) * 999 .. s(T = 5) * 999, s = 4t / (b0 + sqrt(b0^2 + 4 (b1 - b0) t)).
  const auto b = nlohmann::json::parse(r.out)["bindings"];
  auto s_of = [](double t) { return 4 * t / (0.1 + std::sqrt(0.01 + 4 * 19.9 * t)); };
  EXPECT_NEAR(b["level_range"][0].get<double>(), 999 * s_of(0.01), 0.01);
  EXPECT_NEAR(b["level_range"][1].get<double>(), 999 * s_of(5.0), 0.01);
  // Without the schedule the network sees OU times as labels: a wrong posterior (the check has teeth).
  r = run(base);
  ASSERT_EQ(r.code, 0) << r.err;
  mean = almc::io::read_npy_f64(path("mean.npy"));
  for (int j = 0; j < 6; ++j) {
    double m, sd;
    gauss_posterior(0, 0.49, y[j], 0.5, &m, &sd);
    worst = std::max(worst, std::fabs(mean.data[j] - m));
  }
  EXPECT_GT(worst, 0.1);
  expect_one_line_error(run(base + " --beta-max 20 --level sigma"), "--convention vp --level t");
}

// Item 14: every row of docs/MODELS.md, run with the flags the table gives on a small exported
// network of that family (tests/data/make_models.py: the family's inputs, dtypes, output layout and
// level parametrisation, computing the exact eps/score/denoiser of N(mu, 0.7^2 I)). The posterior
// mean and std must match the closed form; a wrong flag (level kind, schedule, slice, class) fails.
TEST_F(Cli, ModelFamiliesOfModelsMdGiveTheClosedFormPosterior) {
  if (::access(fixture("family_edm.onnx").c_str(), R_OK) != 0) GTEST_SKIP() << "fixtures not found";
  struct Row {
    std::string model, flags;
    int cls;
  };
  const std::string table = fixture("family_ddpm_alphas_cumprod.npy");
  const std::vector<Row> rows = {
      {"family_diffusers_ddpm", "--output eps --convention vp --level index --alpha-bar " + table, 0},
      {"family_guided_diffusion",
       "--output eps --convention vp --level index --alpha-bar " + table + " --output-slice 0:1 --input y=1", 1},
      {"family_score_sde_vp", "--output eps --convention vp --level t --beta-min 0.1 --beta-max 20 --level-scale 999", 0},
      {"family_score_sde_ve", "--output score --convention ve --level sigma", 0},
      {"family_edm", "--output denoiser --convention ve --level sigma", 0},
  };
  std::vector<float> y(16);
  for (int j = 0; j < 16; ++j) y[j] = 0.6f * std::cos(0.9f * float(j));
  write_npy(path("y.npy"), y.data(), {1, 4, 4});
  const int chains = 300;
  for (const auto& row : rows) {
    SCOPED_TRACE(row.model);
    const auto mu = almc::io::read_npy_f64(fixture("family_mean_" + std::to_string(row.cls) + ".npy"));
    const Result r = run("sample --model " + fixture(row.model + ".onnx") + " " + row.flags + " --y " + path("y.npy") +
                         " --noise-std 0.5 --kappa 2 --delta 4e-3 --chains " + std::to_string(chains) +
                         " --seed 9 --backend cpu -q --mean " + path("mean.npy") + " --std " + path("std.npy"));
    ASSERT_EQ(r.code, 0) << r.err;
    const auto mean = almc::io::read_npy_f64(path("mean.npy")), sd = almc::io::read_npy_f64(path("std.npy"));
    ASSERT_EQ(mean.data.size(), 16u);
    for (int j = 0; j < 16; ++j) {
      double m, s;
      gauss_posterior(mu.data[j], 0.49, y[j], 0.5, &m, &s);
      // 5 standard errors plus 0.05 (tau = 0.01, the ULA lag at kappa 2 and, for the index
      // families, the nearest alpha_bar of a 1000-step table); std within 15 %.
      EXPECT_NEAR(mean.data[j], m, 5 * s / std::sqrt(double(chains)) + 0.05) << "coordinate " << j;
      EXPECT_NEAR(sd.data[j], s, 0.15 * s) << "coordinate " << j;
    }
  }
}

// Item 15: a PNG per sample and per mean, and the data range for PNG input and output: a gray PNG
// read on [0, 1] with a nearly flat prior comes back as itself.
TEST_F(Cli, PngEachAndDataRange) {
  std::ofstream(path("flat.json")) << R"({"weights": [1], "means": [[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]], "stds": [20]})";
  almc::io::Image8 im{4, 4, 1, {}};
  for (int i = 0; i < 16; ++i) im.pixels.push_back(uint8_t(15 * i + 10));
  almc::io::write_png(path("y.png"), im);
  const std::string base = "sample --backend cpu -q --prior " + path("flat.json") + " --y " + path("y.png") +
                           " --noise-std 0.02 --kappa 1 --delta 1e-4 --t-start 0.5 --chains 16 --force --mean " +
                           path("mean.npy") + " --png-each " + path("each");
  Result r = run(base + " --data-range 0,1");
  ASSERT_EQ(r.code, 0) << r.err;
  auto mean = almc::io::read_npy_f64(path("mean.npy"));
  ASSERT_EQ(mean.data.size(), 16u);
  // Posterior mean = y within the noise (0.02 / sqrt(16) per coordinate; 0.02 allowed).
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(mean.data[i], im.pixels[i] / 255.0, 0.02) << i;
  const auto back = almc::io::read_png(path("each/mean_00.png"));
  ASSERT_EQ(back.width, 4);
  ASSERT_EQ(back.channels, 1);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(back.pixels[i], im.pixels[i], 6) << i;  // 0.02 of 255 is 5.1
  EXPECT_EQ(almc::io::read_png(path("each/sample_00_15.png")).height, 4);
  EXPECT_NE(::access(path("each/sample_00_16.png").c_str(), F_OK), 0);
  // Default range [-1, 1]: the same PNG is read as -1 + 2 v / 255.
  r = run(base);
  ASSERT_EQ(r.code, 0) << r.err;
  mean = almc::io::read_npy_f64(path("mean.npy"));
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(mean.data[i], -1 + 2 * im.pixels[i] / 255.0, 0.04) << i;
  expect_one_line_error(run(base + " --data-range 1,0"), "--data-range");
}

}  // namespace

namespace {

// Walkthrough findings (2026-12-03). `almc eval` ran a [1, 16, 16] U-Net on x of shape [3, 4, 8, 8]
// (as many values per sample) and wrote the result in that shape; a fixed model's input of the same
// rank must have its dimensions. A bench whose every case failed exited 0; an unknown variant in
// `validate --methods` was "unknown --variant", an option validate does not have.
TEST_F(Cli, EvalBenchAndValidateRefusalsSayWhatIsWrong) {
  std::vector<float> x(3 * 256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.01f * float(i % 97);
  write_npy(path("x_wrong.npy"), x.data(), {3, 4, 8, 8});
  const Result bad = run("eval --model " + fixture("unet.onnx") + " --x " + path("x_wrong.npy") + " --level 0.5 --out " +
                         path("o.npy") + " --backend cpu");
  expect_one_line_error(bad, "the sample shape [4, 8, 8] differs from the model's fixed dimension 1 (1)");
  EXPECT_FALSE(std::filesystem::exists(path("o.npy")));
  write_npy(path("x_right.npy"), x.data(), {3, 1, 16, 16});
  Result ok = run("eval --model " + fixture("unet.onnx") + " --x " + path("x_right.npy") + " --level 0.5 --out " +
                  path("o.npy") + " --backend cpu -q");
  EXPECT_EQ(ok.code, 0);
  EXPECT_EQ(ok.err.find("not finite"), std::string::npos) << ok.err;
  // Level 0 is sigma 0 for this network (log sigma, and a division by sigma): every output NaN or
  // infinite, written as computed, and said even with -q.
  ok = run("eval --model " + fixture("unet.onnx") + " --x " + path("x_right.npy") + " --level 0 --out " + path("o.npy") +
           " --backend cpu -q");
  EXPECT_EQ(ok.code, 0);
  EXPECT_NE(ok.err.find("warning: 768 of the 768 outputs are not finite (NaN or infinite) at level 0"), std::string::npos)
      << ok.err;
  // TF32 is a CUDA setting: the CPU's summary says it ran fp32.
  ok = run("eval --model " + fixture("unet.onnx") + " --x " + path("x_right.npy") + " --level 0.5 --out " + path("o.npy") +
           " --backend cpu --precision tf32");
  EXPECT_NE(ok.out.find("precision tf32 (CUDA only: the CPU ran fp32)"), std::string::npos) << ok.out;
  // Another rank holding as many values is a layout the fixed model takes (an image for a flat MLP).
  write_npy(path("x_image.npy"), x.data(), {3, 1, 4, 4});
  EXPECT_EQ(run("eval --model " + fixture("mlp_embed.onnx") + " --x " + path("x_image.npy") + " --level 0.5 --out " +
                path("o2.npy") + " --backend cpu -q")
                .code,
            0);

  const Result bench = run("bench --backend cpu --case sweep/gmm8/mask/d64/c256 --delta 10 --target 0.01 --repeats 1 --no-stages");
  EXPECT_NE(bench.code, 0);
  EXPECT_NE(bench.err.find("1 of 1 cases failed"), std::string::npos) << bench.err;
  EXPECT_NE(bench.err.find("--delta 10 is above the stability bound"), std::string::npos) << bench.err;
  EXPECT_EQ(bench.err.find("force_unstable"), std::string::npos) << bench.err;

  const Result v = run("validate --sweep --methods almc+bar --budgets 100 --backend cpu");
  expect_one_line_error(v, "unknown variant 'bar' in --methods entry 'almc+bar' (almc+VARIANT takes");
  EXPECT_EQ(v.err.find("--variant"), std::string::npos) << v.err;
}

}  // namespace

namespace {

// A network exported at a fixed image size ([n, 1, 2, 3]) without a model.json: --png said "d = 6
// is not a square: give --shape" although the model fixes the shape. Its x dimensions now give
// the figure's (and an operator's) image; the samples keep their [n, d] layout.
TEST_F(Cli, FixedShapeNetworkGivesTheFiguresImage) {
  if (::access(fixture("gauss_eps_learned_var.onnx").c_str(), R_OK) != 0) GTEST_SKIP() << "fixtures not found";
  const float y[6] = {0.1f, -0.2f, 0.3f, 0.0f, 0.5f, -0.4f};
  write_npy(path("y6.npy"), y, {6});
  const Result r = run("sample --backend cpu -q --chains 2 --kappa 1 --t-start 1 --noise-std 0.5 --model " +
                       fixture("gauss_eps_learned_var.onnx") + " --output eps --convention vp --output-slice 0:1 --y " +
                       path("y6.npy") + " --png " + path("f.png") + " --out " + path("o.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(almc::io::read_npy_f32(path("o.npy")).shape, (std::vector<int64_t>{2, 6}));
  EXPECT_GT(almc::io::read_png(path("f.png")).width, 0);
}

}  // namespace

// cli_terms rewrites the library's messages by their text: each C phrase it replaces must still be
// in a message the library can give, or the rewrite silently stops happening. The library's
// sources (host/ and cuda/ outside host/cli, include/), adjacent string literals joined, must
// contain every phrase of cli_term_table (a reworded C message fails here, naming the phrase).
TEST(CliTerms, EveryReplacedPhraseIsStillInTheLibrarysMessages) {
  namespace fs = std::filesystem;
  std::string sources;
  for (const char* dir : {"host", "cuda", "include"})
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      const std::string path = e.path().generic_string(), ext = e.path().extension().string();
      if (!e.is_regular_file() || path.rfind("host/cli/", 0) == 0) continue;
      if (ext != ".cpp" && ext != ".hpp" && ext != ".h" && ext != ".cu" && ext != ".cuh") continue;
      std::ifstream f(e.path());
      std::stringstream ss;
      ss << f.rdbuf();
      // "abc "  "def" (a literal continued on the next line) -> "abc def"
      sources += std::regex_replace(ss.str(), std::regex(R"("\s+")"), "");
      sources += '\n';
    }
  ASSERT_GT(sources.size(), 100000u) << "run from the repository root";
  for (const auto& [api, cli] : almc::cli::cli_term_table())
    EXPECT_NE(sources.find(api), std::string::npos) << "no library message contains \"" << api << "\" (cli_terms turns it into \"" << cli << "\")";
}
