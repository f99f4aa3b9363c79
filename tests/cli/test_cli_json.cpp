// `--json` is one option with one meaning in every subcommand (issue 12, item 9): alone it prints
// the command's JSON report on stdout (one line, and nothing else there); `--json=FILE` (and
// `--json FILE` where no positional argument could be meant) writes the report to FILE and keeps
// the usual text on stdout; a path that cannot be written is refused before any work.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/cli/cli_test_util.hpp"

namespace {

using almc_cli_test::Cli;
using almc_cli_test::expect_one_line_error;
using almc_cli_test::Result;
using almc_cli_test::slurp;

std::string fixture(const std::string& name) {
  const char* data = std::getenv("ALMC_TEST_DATA");
  return std::string(data && *data ? data : "tests/data") + "/onnx/" + name;
}

// stdout is exactly one JSON line.
nlohmann::json one_json_line(const Result& r) {
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  return nlohmann::json::parse(r.out);
}

class CliJson : public Cli {
 protected:
  // For each form: stdout report, file report (=FILE), and, where allowed, the space form.
  // every_form: also --json=- and --json=FILE (a long command checks --json and --json FILE only).
  void check_forms(const std::string& args, const std::string& text_marker, const char* key, bool space_form = true,
                   bool every_form = true) {
    SCOPED_TRACE(args);
    Result r = run(args + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const nlohmann::json a = one_json_line(r);
    EXPECT_TRUE(a.contains(key)) << r.out;
    EXPECT_EQ(r.out.find(text_marker), std::string::npos) << "text mixed into the JSON on stdout";
    if (every_form) {
      r = run(args + " --json=-");
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_TRUE(one_json_line(r).contains(key));
      r = run(args + " --json=" + path("r1.json"));
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_NE(r.out.find(text_marker), std::string::npos) << "the text is missing with --json=FILE: " << r.out;
      EXPECT_TRUE(nlohmann::json::parse(slurp(path("r1.json"))).contains(key));
    }
    if (space_form) {
      r = run(args + " --json " + path("sub/r2.json"));  // folders are created, as for every output
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_NE(r.out.find(text_marker), std::string::npos) << r.out;
      EXPECT_TRUE(nlohmann::json::parse(slurp(path("sub/r2.json"))).contains(key));
    }
    // A path that cannot be a file is refused before any work.
    expect_one_line_error(run(args + " --json=" + dir_), "--json");
  }
};

TEST_F(CliJson, Sample) {
  check_forms("sample --prior " + gaussian_prior() + " --chains 3 --kappa 1 --t-start 1 --backend cpu", "almc sample:",
              "steps");
  // --json before other options does not swallow them.
  const Result r = run("sample --json --prior " + gaussian_prior() + " --chains 3 --kappa 1 --t-start 1 --backend cpu -q");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(one_json_line(r)["chains_per_meas"], 3);
}

TEST_F(CliJson, Info) { check_forms("info", "backends usable:", "version"); }

TEST_F(CliJson, InspectKeepsItsModelAfterJson) {
  const std::string model = fixture("gauss_vp_eps.onnx");
  if (::access(model.c_str(), R_OK) != 0) GTEST_SKIP() << model << " not found";
  // Only =FILE names a file here: the word after a bare --json is the model.
  check_forms("inspect " + model, "guessed flags:", "inputs", false);
  Result r = run("inspect --json " + model);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(one_json_line(r)["model"], model);
  r = run("inspect --json=" + path("i.json") + " " + model);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(slurp(path("i.json")))["model"], model);
}

TEST_F(CliJson, ValidateSweep) {
  // The smallest sweep: one problem, one method, one budget; its table goes to stderr when the
  // report takes stdout.
  const std::string args = "validate --sweep --problems gauss --methods almc --budgets 100 --chains 10 --backend cpu";
  check_forms(args, "almc validate --sweep", "rows");
  const Result r = run(args + " --json");
  EXPECT_NE(r.err.find("almc validate --sweep"), std::string::npos) << r.err;
}

TEST_F(CliJson, Bench) {
  Result r = run("bench --list --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json list = one_json_line(r);
  ASSERT_FALSE(list["cases"].empty());
  const std::string one = list["cases"][0].get<std::string>();
  r = run("bench --list");
  EXPECT_NE(r.out.find(one), std::string::npos);
  const std::string args = "bench --backend cpu --threads 1 --no-stages --repeats 1 --target 0.01 --case '" + one + "'";
  check_forms(args, "# almc bench", "cases", true, false);  // each run measures a 2^24-element roofline
}

// The demo's file form is checked by Cli.DemoQuickRuns; here a path that cannot be written is
// refused before the network is even loaded.
TEST_F(CliJson, DemoRefusesAnUnwritableReportBeforeRunning) {
  const auto t0 = std::chrono::steady_clock::now();
  expect_one_line_error(run("demo --quick --backend cpu --out-dir " + path("d") + " --json=" + dir_), "--json");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_FALSE(std::ifstream(path("d/demo_psnr.json")).good());
}

}  // namespace
