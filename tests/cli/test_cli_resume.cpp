// `almc sample --snapshot FILE --snapshot-every N` and `--resume FILE` (issue 12, item 16): a run
// killed after a snapshot, or stopped by Ctrl-C, continues from its snapshot to the very bytes of
// the uninterrupted run; a snapshot of another run, or a damaged one, is refused in one line.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "host/io/npy.hpp"
#include "tests/cli/cli_test_util.hpp"
#include "tests/common/sanitized.hpp"

namespace {

using almc_cli_test::Cli;
using almc_cli_test::expect_one_line_error;
using almc_cli_test::Result;
using almc_cli_test::slurp;

class CliResume : public Cli {
 protected:
  void SetUp() override {
    Cli::SetUp();
    if (exe_.empty()) return;
    const float y[2][4] = {{1.0f, 0.0f, -0.5f, 1.5f}, {0.2f, 0.4f, 0.1f, -1.0f}};
    almc::io::write_npy(path("y.npy"), &y[0][0], {2, 4});
    base_ = "sample --prior " + gaussian_prior() + " --y " + path("y.npy") +
            " --noise-std 0.5 --chains 100 --kappa 4 --delta 1e-3 --average-last 50 --tweedie --seed 3 --backend cpu "
            "--threads 1 ";
  }

  bool exists(const std::string& name) const { return ::access(path(name).c_str(), F_OK) == 0; }
  nlohmann::json record(const std::string& snap) const {
    std::ifstream f(path(snap), std::ios::binary);
    std::string first, second;
    std::getline(f, first);
    std::getline(f, second);
    return nlohmann::json::parse(second);
  }

  std::string base_;
};

// Killed (SIGKILL, no chance to clean up) right after its first periodic snapshot, then resumed:
// the same samples, mean and std as the run that was never interrupted, byte for byte.
TEST_F(CliResume, KilledRunResumesToTheUninterruptedBytes) {
  const std::string outs = " --out " + path("a.npy") + " --mean " + path("am.npy") + " --std " + path("as.npy");
  Result r = run(base_ + "-q" + outs);
  ASSERT_EQ(r.code, 0) << r.err;

  const std::string snap = " --snapshot " + path("run.snap") + " --snapshot-every 2000";
  const std::string outs_b = " --out " + path("b.npy") + " --mean " + path("bm.npy") + " --std " + path("bs.npy");
  const pid_t pid = start(base_ + "-q" + snap + outs_b);
  ASSERT_GT(pid, 0);
  const auto t0 = std::chrono::steady_clock::now();
  while (!exists("run.snap") && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  const int st = wait_for(pid, 20);
  ASSERT_TRUE(WIFSIGNALED(st)) << "the run ended before it could be killed: " << slurp(path("bg_err.txt"));
  ASSERT_TRUE(exists("run.snap"));
  EXPECT_FALSE(exists("b.npy")) << "a killed run wrote its samples";
  const auto rec = record("run.snap");
  const int64_t step = rec["step"].get<int64_t>(), total = rec["total"].get<int64_t>();
  EXPECT_EQ(step % 2000, 0) << step;
  EXPECT_GT(step, 0);
  EXPECT_LT(step, total);

  r = run(base_ + "-q" + snap + outs_b + " --resume " + path("run.snap"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(path("b.npy")), slurp(path("a.npy")));
  EXPECT_EQ(slurp(path("bm.npy")), slurp(path("am.npy")));
  EXPECT_EQ(slurp(path("bs.npy")), slurp(path("as.npy")));
  EXPECT_EQ(slurp(path("b.npy")).size(), 128u + 200 * 4 * 4);
  // The snapshot kept advancing after the resume (same file, later step).
  EXPECT_GT(record("run.snap")["step"].get<int64_t>(), step);
}

// The text summary of a resumed run gave the run's total steps as if it had run them all; it now
// says the step it resumed after, as the JSON summary's resumed_after_step does.
TEST_F(CliResume, TheSummarySaysWhereTheRunResumed) {
  const std::string base = base_ + "--chains 4 ";
  ASSERT_EQ(run(base + "-q --snapshot " + path("s.snap") + " --snapshot-every 3000").code, 0);
  const int64_t step = record("s.snap")["step"].get<int64_t>();
  ASSERT_GT(step, 0);
  const Result r = run(base + "--out " + path("b.npy") + " --resume " + path("s.snap"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(" steps (resumed after step " + std::to_string(step) + ") in "), std::string::npos) << r.out;
  const Result fresh = run(base + "--out " + path("c.npy"));
  ASSERT_EQ(fresh.code, 0) << fresh.err;
  EXPECT_EQ(fresh.out.find("resumed"), std::string::npos) << fresh.out;
}

// Ctrl-C with --snapshot saves the state where the run stopped (exit 130, no outputs), and
// --resume continues it to the uninterrupted bytes; the summary says where it resumed.
TEST_F(CliResume, InterruptSavesTheStateAndResumes) {
  // 20 times the fixture's chains: the run must last well past the 150 ms the test waits before
  // Ctrl-C, also on machines much faster than this one (with 100 chains it took ~0.1 s once the
  // CPU step got faster, and ended first in CI; 5000 chains took 153 s for the three runs in a
  // loaded CI run, 2000 take ~2 s each on one idle core here). The ASan build of almc is ~17x
  // slower per step (500 chains: 11.9 s against 0.7 s), so 200 chains last longer there than 2000
  // do in a release build (the test took 75 s in CI's ASan run with 2000).
#ifdef ALMC_TEST_SANITIZED
  const std::string chains = "--chains 200 ";
#else
  const std::string chains = "--chains 2000 ";
#endif
  std::string base = base_;
  const size_t at = base.find("--chains 100 ");
  ASSERT_NE(at, std::string::npos);
  base.replace(at, 13, chains);
  Result r = run(base + "-q --out " + path("a.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  const pid_t pid = start(base + " --snapshot " + path("int.snap") + " --out " + path("b.npy"));
  ASSERT_GT(pid, 0);
  // Into the sampling: the plan line is printed just before the run starts.
  const auto t0 = std::chrono::steady_clock::now();
  while (slurp(path("bg_err.txt")).find("planned") == std::string::npos &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  const int st = wait_for(pid, 20);
  ASSERT_TRUE(WIFEXITED(st)) << "killed";
  ASSERT_EQ(WEXITSTATUS(st), 130) << "the run ended before Ctrl-C: " << slurp(path("bg_err.txt"));
  const std::string err = slurp(path("bg_err.txt"));
  EXPECT_NE(err.find("interrupted at step"), std::string::npos) << err;
  EXPECT_NE(err.find("--resume " + path("int.snap")), std::string::npos) << err;
  EXPECT_FALSE(exists("b.npy"));
  ASSERT_TRUE(exists("int.snap"));
  const int64_t step = record("int.snap")["step"].get<int64_t>();
  EXPECT_GT(step, 0);

  r = run(base + " --json --out " + path("b.npy") + " --resume " + path("int.snap"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming " + path("int.snap") + " after step " + std::to_string(step)), std::string::npos) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["resumed_after_step"], step);
  EXPECT_EQ(slurp(path("b.npy")), slurp(path("a.npy")));
}

// A snapshot of another run (seed, options, inputs, slice), or a damaged file, is refused before
// sampling in one line; so are --snapshot-every without --snapshot and non-positive periods.
TEST_F(CliResume, RefusesForeignAndDamagedSnapshots) {
  const std::string small = "sample --prior " + gaussian_prior() + " --y " + path("y.npy") +
                            " --noise-std 0.5 --chains 3 --kappa 2 --delta 4e-3 --t-start 1 --backend cpu -q";
  Result r = run(small + " --seed 1 --snapshot " + path("s.snap") + " --snapshot-every 100 --out " + path("a.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(exists("s.snap"));
  const std::string res = " --resume " + path("s.snap") + " --out " + path("x.npy");
  // The same run resumes (from its last snapshot) to the same bytes.
  r = run(small + " --seed 1" + res);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(path("x.npy")), slurp(path("a.npy")));
  std::remove(path("x.npy").c_str());

  expect_one_line_error(run(small + " --seed 2" + res),
                        "is a snapshot of another run (config differs); options set differently: --seed:");
  expect_one_line_error(run(small + " --seed 1 --kappa 3" + res), "config differs); options set differently: --kappa:");
  expect_one_line_error(run(small + " --seed 3 --warm-steps 7" + res), "options set differently: --seed, --warm-steps:");
  expect_one_line_error(run(small + " --seed 1 --chain-range 0:3" + res), "chain_range differs");
  const float y2[2][4] = {{1.0f, 0.0f, -0.5f, 1.5f}, {0.2f, 0.4f, 0.1f, -1.5f}};
  almc::io::write_npy(path("y.npy"), &y2[0][0], {2, 4});
  expect_one_line_error(run(small + " --seed 1" + res), "likelihood differs");
  EXPECT_FALSE(exists("x.npy"));

  std::ofstream(path("junk.snap")) << "not a snapshot";
  expect_one_line_error(run(small + " --seed 1 --resume " + path("junk.snap")), "not an almc snapshot");
  const std::string whole = slurp(path("s.snap"));
  std::ofstream(path("cut.snap"), std::ios::binary) << whole.substr(0, whole.size() - 5);
  expect_one_line_error(run(small + " --seed 1 --resume " + path("cut.snap")), "truncated");
  const size_t state_at = whole.find('\n', whole.find('\n') + 1) + 1;
  // One flipped bit in the chains resumed into other samples with exit 0.
  std::string flipped = whole;
  flipped[whole.size() - 3] = static_cast<char>(flipped[whole.size() - 3] ^ 0x04);
  std::ofstream(path("flip.snap"), std::ios::binary) << flipped;
  r = run(small + " --seed 1 --resume " + path("flip.snap") + " --out " + path("x.npy"));
  expect_one_line_error(r, "does not match the digest in its record (the file is damaged)");
  EXPECT_FALSE(exists("x.npy"));
  // The bare state inside (no run record) said "is a snapshot of another run (its record differ)".
  std::ofstream(path("bare.state"), std::ios::binary) << whole.substr(state_at);
  r = run(small + " --seed 1 --resume " + path("bare.state") + " --out " + path("x.npy"));
  expect_one_line_error(r, "--resume " + path("bare.state") + " is a bare sampler state, without the record of the run");
  EXPECT_NE(r.err.find("resume from the file that --snapshot wrote"), std::string::npos) << r.err;
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(exists("x.npy"));
  // A snapshot of the Python package listed every key of both records as differing.
  const size_t record_at = whole.find('\n') + 1;
  nlohmann::json rec = nlohmann::json::parse(whole.substr(record_at, state_at - 1 - record_at));
  rec["run"] = {{"written_by", "almc Python package 0.1.0"}, {"seed", 1}};
  std::ofstream(path("py.snap"), std::ios::binary) << whole.substr(0, record_at) << rec.dump() << "\n"
                                                   << whole.substr(state_at);
  r = run(small + " --seed 1 --resume " + path("py.snap") + " --out " + path("x.npy"));
  expect_one_line_error(r, "--resume " + path("py.snap") + " was written by the Python package (almc Python package "
                           "0.1.0): resume it in Python with Sampler.run(resume=...)");
  EXPECT_EQ(r.err.find(" differ"), std::string::npos) << r.err;
  EXPECT_FALSE(exists("x.npy"));
  expect_one_line_error(run(small + " --seed 1 --resume " + path("none.snap")), "none.snap");
  expect_one_line_error(run(small + " --snapshot-every 10"), "--snapshot-every needs --snapshot");
  expect_one_line_error(run(small + " --snapshot " + path("t.snap") + " --snapshot-every 0"), "at least 1");
}

}  // namespace
