// What a new user trips over (issue-less review of the command as a stranger uses it): outputs
// that would replace an input or another output, write-protected files, options read as their
// default, Ctrl-C while outputs are written or between the demo's tasks, help texts without
// defaults or units. Each test failed on the command before its fix.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/io/image.hpp"
#include "host/io/npy.hpp"
#include "tests/cli/cli_test_util.hpp"
#include "tests/common/sanitized.hpp"

namespace {

using almc::io::write_npy;
using almc_cli_test::expect_one_line_error;
using almc_cli_test::Result;
using almc_cli_test::slurp;

class CliUser : public almc_cli_test::Cli {
 protected:
  // Polls until `pred` holds, at most `seconds`.
  template <class Pred>
  static bool wait_until(Pred pred, double seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    while (!pred()) {
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }
  bool exists(const std::string& name) const { return ::access(path(name).c_str(), F_OK) == 0; }
  // Temporary copies left behind by an interrupted atomic write.
  static int stray_temporaries(const std::string& dir) {
    int n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
      n += e.path().filename().string().find(".tmp-") != std::string::npos;
    return n;
  }
  std::string write_y() const {
    const float y[4] = {1, 0, -0.5f, 1.5f};
    write_npy(path("y.npy"), y, {4});
    return path("y.npy");
  }
};

// `--out y.npy` with `--y y.npy` replaced the measurement with the samples (exit 0), and `--out` and
// `--mean` naming one file kept only the mean. Now both are refused before anything runs, whatever
// the spelling (a hard link, ./ and ..), and the files are left as they were.
TEST_F(CliUser, OutputsMustNotReplaceInputsOrEachOther) {
  const std::string prior = gaussian_prior();
  const std::string y = write_y(), y_bytes = slurp(y);
  const std::string base = "sample --backend cpu -q --chains 2 --kappa 1 --prior " + prior + " --y " + y + " --noise-std 0.5 ";
  Result r = run(base + "--out " + y);
  expect_one_line_error(r, "--out " + y + " is the input --y");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(slurp(y), y_bytes);
  ASSERT_EQ(::link(y.c_str(), path("y_link.npy").c_str()), 0);
  expect_one_line_error(run(base + "--mean " + path("y_link.npy")), "is the input --y");
  expect_one_line_error(run(base + "--diagnostics " + prior), "is the input --prior");
  expect_one_line_error(run(base + "--json=" + prior), "is the input --prior");
  EXPECT_EQ(slurp(y), y_bytes);
  // Two outputs naming one file, existing or not yet.
  expect_one_line_error(run(base + "--out " + path("s.npy") + " --mean " + dir_ + "/sub/../s.npy"),
                        "is the same file as --out " + path("s.npy"));
  EXPECT_FALSE(exists("s.npy"));
  std::ofstream(path("old.npy")) << "previous results";
  expect_one_line_error(run(base + "--out " + path("old.npy") + " --std " + dir_ + "/./old.npy"), "is the same file as --out");
  EXPECT_EQ(slurp(path("old.npy")), "previous results");
  // A snapshot resumed into itself is how a run is continued: allowed (tests/cli/test_cli_resume.cpp).
  // eval: --out over --x.
  const float x[4] = {0, 0, 0, 0};
  write_npy(path("x.npy"), x, {1, 4});
  const std::string x_bytes = slurp(path("x.npy"));
  expect_one_line_error(run("eval --model " + path("m.onnx") + " --x " + path("x.npy") + " --level 0.5 --out " + path("x.npy")),
                        "is the input --x");
  EXPECT_EQ(slurp(path("x.npy")), x_bytes);
  // merge: --out over one of its slices (that slice would be lost), --mean over --std.
  const std::string sbase = base + "--chains 4 --seed 2 --chain-range ";
  ASSERT_EQ(run(sbase + "0:2 --out " + path("p0.npy")).code, 0);
  ASSERT_EQ(run(sbase + "2:2 --out " + path("p1.npy")).code, 0);
  const std::string p0 = slurp(path("p0.npy"));
  expect_one_line_error(run("merge " + path("p0.npy") + " " + path("p1.npy") + " --out " + path("p0.npy")),
                        "is the input slice " + path("p0.npy"));
  EXPECT_EQ(slurp(path("p0.npy")), p0);
  expect_one_line_error(run("merge " + path("p0.npy") + " " + path("p1.npy") + " --mean " + path("ms.npy") + " --std " +
                            path("ms.npy")),
                        "is the same file as --mean");
  EXPECT_FALSE(exists("ms.npy"));
  EXPECT_EQ(run("merge " + path("p0.npy") + " " + path("p1.npy") + " -q --out " + path("all.npy")).code, 0);
}

// `--out sub/../y.npy` with sub/ missing was told apart from `--y y.npy` (the missing folder made
// the path unresolvable, so it was compared by name, not by file): the folder was created and the
// measurement replaced (exit 0). A path through missing folders now names the file it will write.
TEST_F(CliUser, OutputsThroughMissingFoldersMustNotReplaceInputs) {
  const std::string prior = gaussian_prior();
  const std::string y = write_y(), y_bytes = slurp(y);
  const std::string base = "sample --backend cpu -q --chains 2 --kappa 1 --prior " + prior + " --y " + y + " --noise-std 0.5 ";
  for (const std::string out : {dir_ + "/sub/../y.npy", dir_ + "/a/b/../../y.npy", dir_ + "/sub/./../sub2/../y.npy"}) {
    const Result r = run(base + "--out " + out);
    expect_one_line_error(r, "--out " + out + " is the input --y " + y);
    EXPECT_EQ(r.code, 2) << out;
    EXPECT_EQ(slurp(y), y_bytes) << out;
  }
  // Through a link to the folder, and the relative spelling from inside it.
  ASSERT_EQ(::symlink(dir_.c_str(), path("here").c_str()), 0);
  expect_one_line_error(run(base + "--std " + path("here/new/../y.npy")), "is the input --y");
  const Result rel = run(base + "--mean missing/../y.npy", "cd '" + dir_ + "' &&");
  expect_one_line_error(rel, "--mean missing/../y.npy is the input --y");
  EXPECT_EQ(slurp(y), y_bytes);
  EXPECT_FALSE(exists("sub"));
  EXPECT_FALSE(exists("missing"));
  // Two outputs on one existing file, one spelt through a missing folder.
  std::ofstream(path("old.npy")) << "previous results";
  expect_one_line_error(run(base + "--out " + path("old.npy") + " --mean " + path("gone/../old.npy")),
                        "--mean " + path("gone/../old.npy") + " is the same file as --out " + path("old.npy"));
  expect_one_line_error(run(base + "--out " + path("x/../here/old.npy") + " --std " + path("old.npy")),
                        "is the same file as --out");
  EXPECT_EQ(slurp(path("old.npy")), "previous results");
  // A new file spelt two ways through missing folders, and through the link.
  expect_one_line_error(run(base + "--out " + path("d/e/../n.npy") + " --std " + path("here/d/f/../n.npy")),
                        "is the same file as --out");
  EXPECT_FALSE(exists("d"));
  // Distinct files in a new folder are fine.
  ASSERT_EQ(run(base + "--out " + path("new/s.npy") + " --mean " + path("new/../new/m.npy")).code, 0);
  EXPECT_TRUE(exists("new/s.npy"));
  EXPECT_TRUE(exists("new/m.npy"));
}

// A write-protected output was silently replaced (the atomic rename needs only the folder's
// permission, and root ignores modes anyway). Now it is refused before the run and kept.
TEST_F(CliUser, WriteProtectedOutputsAreKept) {
  const std::string prior = gaussian_prior();
  std::ofstream(path("kept.npy")) << "results to keep";
  ASSERT_EQ(::chmod(path("kept.npy").c_str(), 0444), 0);
  const Result r = run("sample --backend cpu -q --chains 2 --kappa 1 --prior " + prior + " --out " + path("kept.npy"));
  expect_one_line_error(r, "kept.npy: is read-only: refusing to replace it");
  EXPECT_EQ(slurp(path("kept.npy")), "results to keep");
  // Writable again: replaced as usual, and the file keeps its mode.
  ASSERT_EQ(::chmod(path("kept.npy").c_str(), 0644), 0);
  ASSERT_EQ(run("sample --backend cpu -q --chains 2 --kappa 1 --prior " + prior + " --out " + path("kept.npy")).code, 0);
  EXPECT_EQ(almc::io::read_npy_f32(path("kept.npy")).shape, (std::vector<int64_t>{2, 4}));
}

// `--smc-ess 0` (or a negative value) ran with the engine's default 0.5, `--smc-ess 2` was refused
// in the C API's words, and `--smc-ess` without an SMC variant was ignored. `--t-start` below the
// default `--t-stop` was refused as "t_stop = 0.01 must be below t_start".
TEST_F(CliUser, SmcThresholdAndTimeOrderAreChecked) {
  const std::string base = "sample --backend cpu -q --chains 4 --kappa 1 --prior " + gaussian_prior() + " --y " + write_y() +
                           " --noise-std 0.5 ";
  for (const char* v : {"0", "-0.5", "1.5", "nan"}) {
    SCOPED_TRACE(v);
    const Result r = run(base + "--variant smc --smc-ess " + v);
    expect_one_line_error(r, v == std::string("nan") ? "--smc-ess: 'nan' is not a finite number" : "--smc-ess must be in (0, 1]");
    EXPECT_EQ(r.code, 2);
  }
  // The library's rule (the same for the C API and Python), a usage error here.
  for (const std::string variant : {"", "--variant noised-lik ", "--variant best "}) {
    const Result r = run(base + variant + "--smc-ess 0.3");
    expect_one_line_error(r, "--smc-ess 0.3 is read by variant smc or geo-smc only: the run would be the same without it");
    EXPECT_EQ(r.code, 2) << variant;
  }
  EXPECT_EQ(run(base + "--variant smc --smc-ess 1").code, 0);
  EXPECT_EQ(run(base + "--variant geo-smc --smc-ess 0.7").code, 0);
  const Result t = run(base + "--t-start 0.005");
  expect_one_line_error(t, "--t-stop 0.01 must be below --t-start 0.005");  // %g, not "0.010000"
  EXPECT_EQ(t.code, 2);
  // Ranges only the library checks are usage errors too (exit 2, as the command's own checks);
  // they exited 1 as if an input had failed.
  const Result big = run(base + "--t-start 50");
  expect_one_line_error(big, "cannot create the sampler: --t-start 50 is too large (at most 40)");
  EXPECT_EQ(big.code, 2);
  const Result neg = run(base + "--kappa -1");
  expect_one_line_error(neg, "--kappa must be positive, got -1 (omit it for the default)");
  EXPECT_EQ(neg.code, 2);
}

// A float64 value beyond float32's range was reported as "non-finite value (NaN or Inf)", which the
// user's file does not hold.
TEST_F(CliUser, Float64BeyondFloat32RangeIsNamed) {
  const double y[4] = {1.0, 1e300, 0.0, 0.0};
  write_npy(path("y64.npy"), y, {4});
  expect_one_line_error(run("sample --backend cpu -q --prior " + gaussian_prior() + " --noise-std 0.5 --y " + path("y64.npy")),
                        "a float64 value beyond float32's range of 3.4e38) at flat index 1");
}

// Ctrl-C while the outputs were written killed the command inside a file: the file's temporary
// copy stayed in the folder and the exit was a signal. Now the file being written is finished,
// the command stops before the next one (exit 130) and names what was written.
TEST_F(CliUser, InterruptWhileWritingStopsBetweenFiles) {
  // 1 x 2 x 2 images: 20000 samples -> 20000 PNG files for --png-each, each written and flushed.
  std::ofstream(path("p.json")) << R"({"weights": [1], "means": [[0, 0, 0, 0]], "stds": [1]})";
  const pid_t pid = start("sample --backend cpu -q --prior " + path("p.json") + " --shape 1,2,2 --chains 20000 --kappa 0.2 "
                          "--out " + path("s.npy") + " --png-each " + path("each") + " --mean " + path("m.npy"));
  ASSERT_GT(pid, 0);
  const bool writing = wait_until([&] { return exists("each/mean_00000.png"); }, 120);
  if (!writing) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    FAIL() << "no PNG written within 120 s: " << slurp(path("bg_err.txt"));
  }
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  const int st = wait_for(pid, 20);
  ASSERT_NE(st, -1) << "still running 20 s after Ctrl-C";
  ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  EXPECT_EQ(WEXITSTATUS(st), 130);
  const std::string err = slurp(path("bg_err.txt"));
  EXPECT_NE(err.find("interrupted while writing the outputs; written in full: " + path("s.npy") + ", " + path("m.npy")),
            std::string::npos)
      << err;
  EXPECT_EQ(stray_temporaries(dir_), 0);
  // The files named as written are whole.
  EXPECT_EQ(almc::io::read_npy_f32(path("s.npy")).shape, (std::vector<int64_t>{20000, 1, 2, 2}));
}

// `--images 0`, `--chains -2`, `--kappa 0` ran the demo with its defaults, `--show -1` and
// `--t-stop` above `--t-start` went through; a Ctrl-C during the second task (super-resolution)
// left the first task's figure and samples behind. And `--images 100` silently used the 8 bundled.
TEST_F(CliUser, DemoChecksItsOptionsAndWritesOnlyWhenBothTasksRan) {
  const char* env = std::getenv("ALMC_DEMO_DIR");
  const std::string demo = env && *env ? env : "demo";
  if (::access((demo + "/digits_score.onnx").c_str(), R_OK) != 0) GTEST_SKIP() << "demo network not found";
  const std::string base = "demo --backend cpu -q --demo-dir " + demo + " --out-dir " + path("d") + " ";
  for (const auto& [opt, needle] : std::vector<std::pair<std::string, std::string>>{
           {"--images 0", "--images must be at least 1, got 0"},
           {"--chains -2", "--chains must be at least 1, got -2"},
           {"--kappa 0", "--kappa must be a positive finite number"},
           {"--show -1", "--show must be at least 0, got -1"},
           {"--t-stop 6", "--t-stop 6 must be below --t-start 5"},
           {"--noise-std -1", "--noise-std must be a positive finite number, got -1"},
           {"--noise-std inf", "--noise-std: 'inf' is not a finite number"}}) {
    SCOPED_TRACE(opt);
    const Result r = run(base + opt, "timeout 60");
    expect_one_line_error(r, needle);
    EXPECT_EQ(r.code, 2);
  }
  EXPECT_FALSE(exists("d/demo_psnr.json"));
  // Interrupted while the second task samples: nothing of the first is written. 8 images x 4
  // chains: each task ~1.5 s on one idle core (16 chains took over 120 s in a loaded CI run).
  // A sanitized almc runs the first task several times slower (48 s in CI's ASan run): there it
  // starts at OU time 1 instead of 5 (4505 steps instead of 6505, most of them the warm start).
#ifdef ALMC_TEST_SANITIZED
  const std::string t_start = " --t-start 1";
#else
  const std::string t_start;
#endif
  const pid_t pid = start("demo --backend cpu --threads 1 --demo-dir " + demo + " --out-dir " + path("d2") +
                          " --images 100 --chains 4 --kappa 1 --delta 2e-3" + t_start);
  ASSERT_GT(pid, 0);
  const bool second = wait_until([&] { return slurp(path("bg_err.txt")).find("superres: planned") != std::string::npos; }, 120);
  if (second) ::kill(pid, SIGINT);
  const int st = wait_for(pid, second ? 20 : 1);
  ASSERT_TRUE(second) << "the second task did not start within 120 s: " << slurp(path("bg_err.txt"));
  ASSERT_NE(st, -1);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 130);
  const std::string err = slurp(path("bg_err.txt"));
  EXPECT_NE(err.find("--images 100: the demo holds 8 held-out images; using them all"), std::string::npos) << err;
  for (const char* f : {"d2/demo_inpaint.png", "d2/demo_inpaint_samples.npy", "d2/demo_superres.png", "d2/demo_psnr.json"})
    EXPECT_FALSE(exists(f)) << f << " written by an interrupted demo";
}

// Help texts give each option's default and unit: `--sigma-max FLOAT=0` and `--eps FLOAT=0`
// advertised a value the command refuses, the ALMC times did not say they are OU times.
TEST_F(CliUser, HelpStatesDefaultsAndUnits) {
  const Result r = run("sample --help");
  ASSERT_EQ(r.code, 0) << r.err;
  auto line = [&](const std::string& text, const std::string& opt) {
    const size_t at = text.find("  " + opt + " ");
    EXPECT_NE(at, std::string::npos) << opt;
    if (at == std::string::npos) return std::string();
    // CLI11 wraps a long description onto the following indented lines: take them all.
    size_t end = at;
    do end = text.find('\n', end + 1);
    while (end != std::string::npos && end + 1 < text.size() && text.compare(end + 1, 20, std::string(20, ' ')) == 0);
    return text.substr(at, end - at);
  };
  for (const std::string opt : {"--sigma-max", "--eps"}) {
    const std::string l = line(r.out, opt);
    EXPECT_EQ(l.find("FLOAT=0 "), std::string::npos) << l;
    EXPECT_NE(l.find("default"), std::string::npos) << l;
  }
  for (const std::string opt : {"--delta", "--t-start", "--t-stop", "--kappa"}) EXPECT_NE(line(r.out, opt).find("OU time"), std::string::npos) << opt;
  EXPECT_NE(line(r.out, "--noise-std").find("y's units"), std::string::npos);
  EXPECT_NE(line(r.out, "--chains").find("INT=1 "), std::string::npos);
  const Result d = run("demo --help");
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_NE(line(d.out, "--delta").find("OU time"), std::string::npos);
  EXPECT_NE(line(d.out, "--noise-std").find("[-1, 1]"), std::string::npos);
  EXPECT_NE(line(d.out, "--threads").find("INT:[0, 1024]=0 "), std::string::npos);  // the range too
  EXPECT_NE(line(d.out, "--seed").find("UINT:[0, 2^64-1]=0 "), std::string::npos);  // was UINT:UINT64=0
  EXPECT_NE(line(r.out, "--seed").find("UINT:[0, 2^64-1]=0 "), std::string::npos);
}

// bench ran with `--noise-std 0`, `--delta -1` or `--target inf` (for ever) and read a negative
// `--max-elements` as the default; validate --sweep took `--max-seconds inf`.
TEST_F(CliUser, BenchAndValidateRefuseBadNumbers) {
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {"bench --backend cpu --quick --noise-std 0", "--noise-std must be a positive finite number"},
           {"bench --backend cpu --quick --delta -1", "--delta must be a positive finite number"},
           {"bench --backend cpu --quick --target inf", "--target: 'inf' is not a finite number"},
           {"bench --backend cpu --quick --target 0", "--target must be a positive finite number of seconds"},
           {"bench --backend cpu --quick --max-elements -5", "--max-elements must be >= 0"},
           {"validate --sweep --max-seconds inf --budgets 100 --problems gauss --methods almc", "--max-seconds"}}) {
    SCOPED_TRACE(args);
    const Result r = run(args, "timeout 30");
    expect_one_line_error(r, needle);
    EXPECT_EQ(r.code, 2);
  }
}

// ALMC_GPU_GMM_RESP is read when a CUDA context is made; a bad value is named in the one error
// line (the context that failed has no handle to carry the reason, so the command adds it).
TEST_F(CliUser, BadGpuSettingIsNamed) {
  if (run("info --json").out.find("cuda (architectures") == std::string::npos)
    GTEST_SKIP() << "a build without the CUDA backend does not read GPU settings";
  const Result r = run("bench --backend cuda --case sweep/gmm8/identity/d64/c1 --no-stages", "env ALMC_GPU_GMM_RESP=blocks");
  expect_one_line_error(r, "ALMC_GPU_GMM_RESP=blocks is not a GMM responsibilities mode (split or block)");
}

// `almc inspect` read its model with a plain stream: /dev/zero was read until memory ran out, a
// FIFO blocked for ever, a directory was "not an ONNX model". Inputs must be regular files, as in
// every other command.
TEST_F(CliUser, InspectRefusesNonRegularFiles) {
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  const std::string limit = std::string(std::getenv("ASAN_OPTIONS") ? "" : "ulimit -v 3000000;") + " timeout 60";
  expect_one_line_error(run("inspect /dev/zero", limit), "/dev/zero: is a character device, not a regular file");
  expect_one_line_error(run("inspect " + path("fifo"), limit), "is a FIFO, not a regular file");
  expect_one_line_error(run("inspect " + dir_, limit), "is a directory, not a regular file");
  expect_one_line_error(run("inspect " + path("missing.onnx")), "missing.onnx: cannot open: No such file or directory");
}

// SIGTERM (kill, a batch system's time limit) killed the run at once: with --snapshot the state
// since the last periodic snapshot was lost. Now it stops the run as Ctrl-C does: the state is
// saved, no output is written, exit 143 = 128 + SIGTERM.
TEST_F(CliUser, SigtermStopsTheRunAndSavesItsState) {
  const pid_t pid = start("sample --backend cpu --prior " + gaussian_prior() + " --chains 100000 --check-every 100000000 " +
                          "--snapshot " + path("run.snap") + " --out " + path("s.npy"));
  ASSERT_GT(pid, 0);
  const bool running = wait_until([&] { return slurp(path("bg_err.txt")).find("planned") != std::string::npos; }, 60);
  if (running) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ::kill(pid, SIGTERM);
  const int st = wait_for(pid, 20);
  ASSERT_TRUE(running) << slurp(path("bg_err.txt"));
  ASSERT_NE(st, -1) << "still running 20 s after SIGTERM";
  ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  EXPECT_EQ(WEXITSTATUS(st), 143);
  const std::string err = slurp(path("bg_err.txt"));
  EXPECT_NE(err.find("terminated (SIGTERM) at step"), std::string::npos) << err;
  EXPECT_NE(err.find("--resume " + path("run.snap")), std::string::npos) << err;
  EXPECT_TRUE(exists("run.snap"));
  EXPECT_FALSE(exists("s.npy"));
}

// A run without any output file computed its samples and dropped them without a word.
TEST_F(CliUser, RunWithoutOutputFilesIsNoted) {
  const std::string base = "sample --backend cpu --chains 2 --kappa 1 --prior " + gaussian_prior();
  const Result r = run(base);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("note: no output file given"), std::string::npos) << r.err;
  const Result w = run(base + " --out " + path("s.npy"));
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_EQ(w.err.find("no output file"), std::string::npos) << w.err;
  EXPECT_EQ(run(base + " -q").err, "");
}

// The command copied the samples to the host only after the run: a run whose engine buffers fit but
// whose results did not sampled for minutes, then failed with "out of memory" and kept nothing. The
// results' memory is now taken before the sampler is made, so the refusal comes at once. A 1 GB
// address-space limit: the engine's 512 MiB state fits, the same again for the results does not.
TEST_F(CliUser, ResultsThatCannotFitAreRefusedBeforeSampling) {
  if (std::getenv("ASAN_OPTIONS")) GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space";
  std::string means;
  for (int k = 0; k < 64; ++k) means += k ? ",0" : "0";
  std::ofstream(path("p64.json")) << R"({"weights": [1], "means": [[)" << means << R"(]], "stds": [1]})";
  // 2^21 chains x 64 = 512 MiB per copy; about 500 steps (minutes of sampling on one thread).
  const auto t0 = std::chrono::steady_clock::now();
  const Result r = run("sample --backend cpu --threads 1 -q --prior " + path("p64.json") + " --chains 2097152 --kappa 0.1 --out " +
                           path("s.npy"),
                       "ulimit -v 1000000; timeout 120");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  expect_one_line_error(r, "use fewer chains");
  EXPECT_LT(secs, 30.0) << "refused only after sampling";
  EXPECT_FALSE(exists("s.npy"));
}

// Progress (documented): a line updated in place on stderr when it is a terminal, nothing when it
// is a file or a pipe, nothing with --quiet. `script` gives the command a terminal.
TEST_F(CliUser, ProgressOnATerminalOnly) {
  if (::access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/script to make a terminal";
  const std::string args = "sample --backend cpu --prior " + gaussian_prior() + " --chains 20 --kappa 1 --out " + path("s.npy");
  auto on_tty = [&](const std::string& extra) {
    const std::string cmd = "script -qec \"'" + exe_ + "' " + args + extra + "\" '" + path("tty.txt") + "' >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return slurp(path("tty.txt"));
  };
  const std::string tty = on_tty("");
  EXPECT_NE(tty.find("\rsample: step "), std::string::npos) << tty;
  EXPECT_NE(tty.find("(100%)"), std::string::npos) << tty;
  EXPECT_EQ(on_tty(" -q").find("sample: step "), std::string::npos);
  const Result r = run(args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("sample: step "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("planned"), std::string::npos) << r.err;
}

// A network's options given with a GMM --prior (`--input label=3`, `--output x0`, `--level sigma`,
// ...) were ignored without a word (and those with defaults still were when given their default
// value, `--output eps`), and a 2-D --levels-file was read flattened.
TEST_F(CliUser, OptionsThatWouldBeIgnoredAreRefused) {
  const std::string base = "sample --backend cpu -q --chains 2 --kappa 1 --prior " + gaussian_prior() + " ";
  for (const std::string opt : {"--input label=3", "--output x0", "--convention ve", "--level sigma", "--x-input x",
                                "--level-input t", "--output-slice 0:1", "--level-scale 999", "--beta-max 20",
                                "--output eps", "--convention vp", "--level t"}) {
    SCOPED_TRACE(opt);
    const Result r = run(base + opt);
    expect_one_line_error(r, opt.substr(0, opt.find(' ')) + " applies to a --model network, not to a --prior");
    EXPECT_EQ(r.code, 2);
  }
  const double levels[4] = {1.0, 0.5, 0.2, 0.1};
  write_npy(path("levels.npy"), levels, {2, 2});
  const std::string langevin = "sample --backend cpu -q --chains 2 --prior " + gaussian_prior() + " --method langevin ";
  expect_one_line_error(run(langevin + "--levels-file " + path("levels.npy")),
                        "must be 1-D (a list of OU times), got shape (2, 2)");
  write_npy(path("levels.npy"), levels, {4, 1});
  EXPECT_EQ(run(langevin + "--levels-file " + path("levels.npy")).code, 0);
  // A step-size or level option the method never reads ran without it (exit 0): ALMC's own with
  // another method, and the other methods' with ALMC, and level options a level list replaces.
  for (const std::string opt : {"--kappa 1", "--warm-steps 5", "--warm-step 0.1", "--levels 7", "--t-stop 0.1"}) {
    SCOPED_TRACE(opt);
    const Result r = run(langevin + "--levels-file " + path("levels.npy") + " " + opt);
    expect_one_line_error(r, opt.substr(0, opt.find(' ')) + " is not read by --method langevin with --levels-file");
    EXPECT_EQ(r.code, 2);
  }
  expect_one_line_error(run(base + "--method ald"), "--kappa is not read by --method ald");
  const std::string prior = "sample --backend cpu -q --chains 2 --prior " + gaussian_prior() + " ";
  for (const auto& [cmd, needle] : std::vector<std::pair<std::string, std::string>>{
           {"--eps 1e-4", "--eps is not read by --method almc"},
           {"--levels 20", "--levels is not read by --method almc"},
           {"--steps-per-level 3", "--steps-per-level is not read by --method almc"},
           {"--sigma-max 10", "--sigma-max is not read by --method almc"},
           {"--method ncsn --delta 1e-3", "--delta is not read by --method ncsn"},
           {"--method ncsn --t-start 2", "--t-start is not read by --method ncsn"},
           {"--method ncsn --schedule uniform-t --sigma-min 0.1", "--sigma-min is not read by --method ncsn with --schedule uniform-t"},
           {"--method langevin --sigma-max 10", "--sigma-max is not read by --method langevin"},
           {"--method almc --levels-file " + path("levels.npy") + " --kappa 2", "--kappa is not read by --method almc with --levels-file"}}) {
    SCOPED_TRACE(cmd);
    const Result r = run(prior + cmd);
    expect_one_line_error(r, needle);
    EXPECT_EQ(r.code, 2);
  }
  // What each method does read still runs (and the last reads the list's own levels).
  for (const std::string cmd : {"--method ncsn --levels 3 --steps-per-level 2 --sigma-max 5 --sigma-min 0.1 --eps 1e-5",
                                "--method ncsn --schedule uniform-t --levels 3 --t-start 2 --t-stop 0.1 --steps-per-level 1",
                                "--method langevin --levels 3 --t-start 2 --t-stop 0.1 --delta 1e-3 --steps-per-level 1",
                                "--kappa 1 --delta 2e-3 --t-start 1 --t-stop 0.1 --warm-steps 3 --warm-step 0.1"}) {
    SCOPED_TRACE(cmd);
    EXPECT_EQ(run(prior + cmd).code, 0);
  }
  EXPECT_EQ(run(prior + "--levels-file " + path("levels.npy") + " --delta 1e-3 --t-start 2 --warm-steps 2").code, 0);
  // Without --y the prior is sampled: a --noise-std was read by nothing.
  const Result noise = run(prior + "--noise-std 0.5");
  expect_one_line_error(noise, "--noise-std needs a measurement: --y FILE.npy (without --y the prior is sampled)");
  EXPECT_EQ(noise.code, 2);
}

}  // namespace

// A demo folder's model.json with image_shape [1, 0, 16] (or 1e300) crashed the demo (a division by
// zero, SIGFPE), [1, 16.7, 16] was truncated to 16 and a string shape was silently replaced by the
// default; a field of the wrong type was reported in nlohmann's words. Now each is one line naming
// the file and the field, before anything is written.
TEST_F(CliUser, DemoModelJsonFieldsAreChecked) {
  const char* env = std::getenv("ALMC_DEMO_DIR");
  const std::string demo = env && *env ? env : "demo";
  if (::access((demo + "/digits_score.onnx").c_str(), R_OK) != 0) GTEST_SKIP() << "demo network not found";
  const std::string dm = path("dm");
  std::filesystem::create_directory(dm);
  for (const char* f : {"digits_score.onnx", "test_images.npy"})
    std::filesystem::create_symlink(std::filesystem::absolute(demo + "/" + f), dm + "/" + f);
  for (const auto& [json, needle] : std::vector<std::pair<std::string, std::string>>{
           {R"({"image_shape": [1, 0, 16]})", "\"image_shape\" must be [C, H, W], three positive integers, got [1,0,16]"},
           {R"({"image_shape": [1, 1e300, 16]})", "\"image_shape\" must be [C, H, W]"},
           {R"({"image_shape": [1, 16.7, 16]})", "\"image_shape\" must be [C, H, W]"},
           {R"({"image_shape": "16x16"})", "\"image_shape\" must be [C, H, W]"},
           {R"({"output_kind": 3})", "\"output_kind\" must be a string, got 3"},
           {R"([1, 16, 16])", "not a JSON object"},
           {std::string(200000, '[') + std::string(200000, ']'), "JSON nested more than 128 levels deep"}}) {
    SCOPED_TRACE(json.substr(0, 40));
    std::ofstream(dm + "/model.json") << json;
    const Result r = run("demo --backend cpu -q --quick --demo-dir " + dm + " --out-dir " + path("out"), "timeout 60");
    expect_one_line_error(r, dm + "/model.json: " + needle);
    EXPECT_FALSE(exists("out/demo_psnr.json"));
  }
  std::filesystem::remove(dm + "/model.json");
  std::filesystem::create_directory(dm + "/model.json");
  expect_one_line_error(run("demo --backend cpu -q --quick --demo-dir " + dm + " --out-dir " + path("out"), "timeout 60"),
                        "model.json: is a directory");
}

// A value fed to the network as float32 but beyond its range became inf (`--input c=1e39`, `almc
// eval --level 1e39`: a finite double, cast to float); now refused by name.
TEST_F(CliUser, NetworkValuesBeyondFloat32AreRefused) {
  const float x[4] = {0, 0, 0, 0};
  write_npy(path("x.npy"), x, {1, 4});
  std::ofstream(path("m.onnx")) << "not read: the values are checked first";
  expect_one_line_error(run("eval --model " + path("m.onnx") + " --x " + path("x.npy") + " --level 1e39 --out " +
                            path("o.npy")),
                        "--level 1e+39 is beyond float32's range");
  EXPECT_FALSE(exists("o.npy"));
  const Result r = run("sample --backend cpu -q --model " + path("m.onnx") + " --input label=-1e39 --chains 1");
  expect_one_line_error(r, "--input label: the value must be finite and within float32's range");
  EXPECT_EQ(r.code, 2);
}

// Records nested ~10^5-10^6 levels deep (a damaged or hostile file of a few MB) made the command
// crash with a stack overflow while copying or comparing them: a snapshot given to --resume and the
// slice records merged by almc merge. Now they are refused as damaged, one line, exit 1.
TEST_F(CliUser, DeeplyNestedRecordsAreRefused) {
  const std::string prior = gaussian_prior();
  const std::string y = write_y();
  const std::string base = "sample --backend cpu -q --prior " + prior + " --y " + y +
                           " --noise-std 0.5 --chains 2 --kappa 1 --delta 0.02 --t-start 1 --t-stop 0.1 ";
  ASSERT_EQ(run(base + "--snapshot " + path("s.snap") + " --snapshot-every 5 --out " + path("s.npy")).code, 0);
  // The snapshot's record with a deep value in its run description.
  const std::string deep = "\"deep\":" + std::string(2000000, '[') + std::string(2000000, ']') + ",";
  std::string snap = slurp(path("s.snap"));
  const size_t run_at = snap.find("\"run\":{");
  ASSERT_NE(run_at, std::string::npos);
  snap.insert(run_at + 7, deep);
  std::ofstream(path("deep.snap"), std::ios::binary) << snap;
  expect_one_line_error(run(base + "--resume " + path("deep.snap") + " --out " + path("r.npy")),
                        "--resume " + path("deep.snap") + ": the snapshot's record: JSON nested more than 128 levels deep");
  EXPECT_FALSE(exists("r.npy"));
  // Two slices whose records both carry the deep value.
  for (const char* part : {"0:1", "1:1"}) {
    const std::string out = path(std::string("p") + part[0] + ".npy");
    ASSERT_EQ(run(base + "--chain-range " + part + " --out " + out).code, 0);
    std::string rec = slurp(out + ".json");
    const size_t at = rec.find("\"run\": {");
    ASSERT_NE(at, std::string::npos) << rec;
    rec.insert(at + 8, deep);  // "run": {"deep": [[...]], "adapter": ...
    std::ofstream(out + ".json") << rec;
  }
  expect_one_line_error(run("merge " + path("p0.npy") + " " + path("p1.npy") + " --out " + path("all.npy")),
                        "p0.npy.json: JSON nested more than 128 levels deep");
  EXPECT_FALSE(exists("all.npy"));
}

// A number option given NaN, Inf or text was reported as missing (`eval --level nan`: "--level L (a
// finite number) is required"; `sample --y Y --noise-std nan`: "--y needs --noise-std S"). Every
// floating-point option of every command now names the value given.
TEST_F(CliUser, NumberOptionsNameTheValueGiven) {
  const std::string prior = gaussian_prior(), y = write_y();
  const float x[2][4] = {};
  write_npy(path("x.npy"), &x[0][0], {2, 4});
  const std::string eval = "eval --model " + path("m.onnx") + " --x " + path("x.npy") + " --out " + path("o.npy");
  const std::string sample = "sample -q --prior " + prior + " --out " + path("o.npy");
  const std::pair<std::string, std::string> cases[] = {
      {eval + " --level nan", "--level: 'nan' is not a finite number"},
      {eval + " --level=-inf", "--level: '-inf' is not a finite number"},
      {eval + " --level 1e999", "--level: '1e999' is not a number"},
      {sample + " --y " + y + " --noise-std nan", "--noise-std: 'nan' is not a finite number"},
      {sample + " --kappa abc", "--kappa: 'abc' is not a number"},
      {sample + " --delta 1e-3x", "--delta: '1e-3x' is not a number"},
      {sample + " --beta-max inf", "--beta-max: 'inf' is not a finite number"},
      {"demo --out-dir " + path("o") + " --delta -inf", "--delta: '-inf' is not a finite number"},
      {"bench --target NaN", "--target: 'NaN' is not a finite number"},
      {"validate --max-seconds infinity", "--max-seconds: 'infinity' is not a finite number"},
      {sample + " --chains 1e3", "--chains: '1e3' is not an integer"},
      {sample + " --chains nan", "--chains: 'nan' is not an integer"},
      {sample + " --chains 0x10", "--chains: '0x10' is not an integer"},
      {sample + " --chains 99999999999999999999", "--chains: '99999999999999999999' is too large (at most 9223372036854775807)"},
      {"validate --sweep --budgets 100,2.5", "--budgets: '2.5' is not an integer"},
      {sample + " --png-range nan,1", "--png-range must be LO,HI with finite numbers (within float32's range), got 'nan,1'"},
      {sample + " --data-range 0,inf", "--data-range must be LO,HI with finite numbers (within float32's range), got '0,inf'"},
  };
  for (const auto& [args, message] : cases) {
    const Result r = run(args);
    expect_one_line_error(r, message);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err.find("required"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("needs"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(exists("o.npy"));
  EXPECT_FALSE(exists("o"));
  // An integer with leading zeros is decimal (CLI11 alone read "010" as octal 8).
  const Result r = run("sample --backend cpu -q --kappa 1 --prior " + prior + " --chains 010 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["chains_per_meas"], 10) << r.out;
  const Result seed = run("sample --backend cpu -q --kappa 1 --prior " + prior + " --seed 010 --json");
  ASSERT_EQ(seed.code, 0) << seed.err;
  EXPECT_EQ(nlohmann::json::parse(seed.out)["seed"], 10) << seed.out;
}

// A GMM prior with NaN in it (Python's json.dump writes NaN) was "--prior P: P: GMM JSON: not valid
// JSON: [json.exception.parse_error.101] parse error at line 1, column 52: syntax error while
// parsing value - invalid literal; last read: '[0, N'": the path twice and the parser's words. Now
// the file once, the field and the problem; so for every --prior and --model error.
TEST_F(CliUser, PriorErrorsNameTheFileOnceAndTheField) {
  const std::string y = write_y(), p = path("nan.json");
  std::ofstream(p) << R"({"weights": [1, 1, 1], "means": [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, NaN]], "stds": [1, 1, 1]})";
  const std::string tail = " --y " + y + " --noise-std 0.5 --chains 2 --kappa 1 --backend cpu -q --out " + path("o.npy");
  const auto count = [](const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
  };
  Result r = run("sample --prior " + p + tail);
  expect_one_line_error(r, "--prior " + p + ": GMM JSON: means[2][3] is NaN, which is not a number JSON can hold");
  EXPECT_EQ(count(r.err, p), 1u) << r.err;
  std::ofstream(path("str.json")) << R"({"weights": [1], "means": [[0, 0, "1", 0]], "stds": [1]})";
  r = run("sample --prior " + path("str.json") + tail);
  expect_one_line_error(r, "--prior " + path("str.json") + ": GMM JSON: means[0][2] is not a number");
  EXPECT_EQ(count(r.err, path("str.json")), 1u) << r.err;
  std::ofstream(path("cut.json")) << R"({"weights": [1], "means": [[0, 0)";
  r = run("sample --prior " + path("cut.json") + tail);
  expect_one_line_error(r, "--prior " + path("cut.json") + ": GMM JSON: not valid JSON: at line 1, column ");
  EXPECT_EQ(r.err.find("json.exception"), std::string::npos) << r.err;
  EXPECT_EQ(count(r.err, path("cut.json")), 1u) << r.err;
  r = run("sample --prior " + dir_ + tail);
  expect_one_line_error(r, "--prior " + dir_ + ": is a directory");
  EXPECT_EQ(count(r.err, dir_), 1u) << r.err;
  // --model likewise ("--model P: ONNX model P: is a directory", "... ONNX model 'P' is not ...").
  r = run("sample --model " + dir_ + tail);
  expect_one_line_error(r, "--model " + dir_ + ": is a directory");
  EXPECT_EQ(count(r.err, dir_), 1u) << r.err;
  r = run("sample --model " + p + tail);
  expect_one_line_error(r, "--model " + p + ": is not a valid ONNX model");
  EXPECT_EQ(count(r.err, p), 1u) << r.err;
  r = run("eval --model " + path("none.onnx") + " --x " + y + " --level 1 --out " + path("o.npy"));
  expect_one_line_error(r, "--model " + path("none.onnx") + ": cannot open");
  EXPECT_EQ(count(r.err, path("none.onnx")), 1u) << r.err;
  EXPECT_FALSE(exists("o.npy"));
}

// `validate --budgets 100` (a --sweep option without --sweep) ran the whole table ignoring it, and
// `bench --data /typo` ran every case but the folder's with only a note; counts past the limit said
// "--chains is too large" without the limit.
TEST_F(CliUser, IgnoredOptionsMissingFoldersAndLimitsAreNamed) {
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {"validate --budgets 100", "--budgets applies to --sweep only"},
           {"validate --problems gauss", "--problems applies to --sweep only"},
           {"validate --methods almc", "--methods applies to --sweep only"},
           {"validate --max-seconds 5", "--max-seconds applies to --sweep only"},
           {"validate --sweep --quick --budgets 100", "--quick applies to the table, not to --sweep"},
           {"bench --backend cpu --data " + path("none"), "--data: Directory does not exist: " + path("none")},
           {"bench --backend cpu --demo-dir " + path("none"), "--demo-dir: Directory does not exist"},
           {"sample -q --prior " + gaussian_prior() + " --chains 100000000", "--chains 100000000 is too large (at most 2^24 = 16777216)"},
           {"demo --out-dir " + path("d") + " --chains 100000000", "--chains 100000000 is too large (at most 2^24"}}) {
    SCOPED_TRACE(args);
    const Result r = run(args, "timeout 20");
    expect_one_line_error(r, needle);
    EXPECT_EQ(r.code, 2);
  }
  EXPECT_FALSE(exists("d"));
}

// A text file given as a PNG was "cannot read PNG: read beyond end of data" (libpng's words).
TEST_F(CliUser, AFileThatIsNotAPngIsSaidToBeNone) {
  std::ofstream(path("y.png")) << "not an image";
  const Result r = run("sample --backend cpu -q --prior " + gaussian_prior() + " --noise-std 0.5 --y " + path("y.png") +
                       " --out " + path("o.npy"));
  expect_one_line_error(r, "--y " + path("y.png") + ": not a PNG file (it does not start with the PNG signature)");
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(exists("o.npy"));
}

// `almc inspect m.onnx --json=m.onnx` replaced the model with its report (exit 0).
TEST_F(CliUser, InspectReportMustNotReplaceTheModel) {
  const char* data = std::getenv("ALMC_TEST_DATA");
  const std::string fixture = std::string(data && *data ? data : "tests/data") + "/onnx/gauss_vp_eps.onnx";
  if (::access(fixture.c_str(), R_OK) != 0) GTEST_SKIP() << fixture << " not found";
  const std::string model = path("m.onnx");
  std::ofstream(model, std::ios::binary) << slurp(fixture);
  const std::string bytes = slurp(model);
  const Result r = run("inspect " + model + " --json=" + dir_ + "/./m.onnx");
  expect_one_line_error(r, "--json " + dir_ + "/./m.onnx is the input model " + model);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(slurp(model), bytes);
}

// `almc bench --json=F` with F a network the cases read replaced the network with the report.
TEST_F(CliUser, BenchReportMustNotReplaceANetwork) {
  const char* data = std::getenv("ALMC_TEST_DATA");
  const std::string fixture = std::string(data && *data ? data : "tests/data") + "/onnx/mlp_embed.onnx";
  if (::access(fixture.c_str(), R_OK) != 0) GTEST_SKIP() << fixture << " not found";
  ASSERT_EQ(::mkdir(path("onnx").c_str(), 0755), 0);
  const std::string net = path("onnx/mlp_embed.onnx");
  std::ofstream(net, std::ios::binary) << slurp(fixture);
  const std::string bytes = slurp(net);
  const Result r = run("bench --backend cpu --threads 1 --no-stages --repeats 1 --target 0.01 --case mlp_embed --data " +
                       dir_ + " --json=" + net);
  EXPECT_NE(r.err.find("almc bench: error: --json " + net + " is the input mlp_embed's network " + net), std::string::npos)
      << r.err;
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(slurp(net), bytes);
}

// `--threads 99999999999` was CLI11's "Could not convert: --threads = 99999999999" (the value beyond
// an int). Every option bound to an int now names the value and the range allowed; so do the
// other integer readers (--seed, --chain-range), which share one decimal reader.
TEST_F(CliUser, IntegerOptionsNameTheirRange) {
  const std::string big = "99999999999";
  const std::pair<std::string, std::string> cases[] = {
      {"sample --threads " + big, "--threads: '99999999999' is too large (from 0 to 1024)"},
      {"sample --threads -1", "--threads: '-1' is too small (from 0 to 1024)"},
      {"eval --threads " + big, "--threads: '99999999999' is too large (from 0 to 1024)"},
      {"demo --threads " + big, "--threads: '99999999999' is too large (from 0 to 1024)"},
      {"bench --threads " + big, "--threads: '99999999999' is too large (from 0 to 1024)"},
      {"demo --images " + big, "--images: '99999999999' is too large (at most 2147483647)"},
      {"demo --chains " + big, "--chains: '99999999999' is too large (at most 2147483647)"},
      {"demo --show " + big, "--show: '99999999999' is too large (at most 2147483647)"},
      {"sample --png-samples " + big, "--png-samples: '99999999999' is too large (at most 2147483647)"},
      {"bench --repeats " + big, "--repeats: '99999999999' is too large (at most 2147483647)"},
      {"sample --seed +5", "--seed: must be an integer from 0 to 18446744073709551615, got '+5'"},
      {"sample --seed 18446744073709551616", "--seed: must be at most 18446744073709551615, got '18446744073709551616'"},
      {"sample --prior p.json --chain-range ' 1:2'", "--chain-range ' 1:2' must be START:COUNT"},
      {"sample --prior p.json --chain-range +1:2", "--chain-range '+1:2' must be START:COUNT"},
      {"sample --prior p.json --chain-range 1:99999999999999999999", "--chain-range '1:99999999999999999999' must be START:COUNT"},
  };
  for (const auto& [args, message] : cases) {
    SCOPED_TRACE(args);
    const Result r = run(args);
    expect_one_line_error(r, message);
    EXPECT_EQ(r.code, 2);
  }
  // No integer option of any command says only "Could not convert".
  int checked = 0;
  for (const char* command : {"sample", "eval", "demo", "bench", "validate", "inspect", "merge", "info"}) {
    const std::string help = run(std::string(command) + " --help").out;
    std::istringstream lines(help);
    std::string line;
    while (std::getline(lines, line)) {
      const size_t at = line.find("--");
      if (at == std::string::npos || line.find(" INT", at) == std::string::npos) continue;
      const std::string name = line.substr(at, line.find_first_of(" =", at) - at);
      SCOPED_TRACE(std::string(command) + " " + name);
      ++checked;
      const Result r = run(std::string(command) + " " + name + " " + big + "0000000000");
      EXPECT_EQ(r.err.find("Could not convert"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find(name + ": '"), std::string::npos) << r.err;
    }
  }
  EXPECT_GT(checked, 10);
}

// `almc bench` printed "<network> not found, its cases are skipped" notes, for networks --case did
// not even select, before its error: the error now comes alone, naming the networks not found when
// they are why no case matched.
TEST_F(CliUser, BenchErrorComesAlone) {
  const std::string missing = " --backend cpu --data " + path("none") + " --demo-dir " + path("none");
  ASSERT_EQ(::mkdir(path("none").c_str(), 0755), 0);
  Result r = run("bench --case nosuch" + missing);
  expect_one_line_error(r, "no case matches --case");
  EXPECT_EQ(r.err.find("not found"), std::string::npos) << r.err;
  r = run("bench --case digits_mlp" + missing);
  expect_one_line_error(r, "no case matches --case (the networks " + path("none") + "/digits_score.onnx were not found");
  r = run("bench --case sweep --list" + missing);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("not found"), std::string::npos) << r.err;
}

namespace {

// Second walkthrough (2026-12-03). A mask given as a PNG was mapped onto [-1, 1] like an image, so
// its black (hidden) pixels became -1: observed, with the measurement's sign flipped. Other
// arrays (a blur kernel, a matrix, a level list, an alpha_bar table) were read from PNGs the same
// way; --png-each was refused with --chain-range only after sampling and could write over an
// input; --data-range 0,1 left the PSNR's range at 2 (6 dB too high); a reversed alpha_bar table
// fed the wrong step index at every level; options of an absent output were ignored.
TEST_F(CliUser, PngMasksAndOutputOptionsMeanWhatTheySay) {
  const std::string prior = gaussian_prior();  // d = 4
  const float y[4] = {0.3f, -0.4f, 0.8f, 1.5f};
  write_npy(path("y.npy"), y, {1, 2, 2});
  almc::io::Image8 mask_png;
  mask_png.width = 2;
  mask_png.height = 2;
  mask_png.channels = 1;
  mask_png.pixels = {255, 0, 255, 0};  // white observed, black hidden
  almc::io::write_png(path("mask.png"), mask_png);
  const float mask01[4] = {1, 0, 1, 0};
  write_npy(path("mask.npy"), mask01, {1, 2, 2});
  const std::string base = "sample --backend cpu -q --chains 4 --seed 3 --kappa 1 --delta 2e-3 --t-start 1 --prior " + prior +
                           " --y " + path("y.npy") + " --noise-std 0.5 ";
  ASSERT_EQ(run(base + "--operator mask:" + path("mask.png") + " --out " + path("a.npy")).code, 0);
  ASSERT_EQ(run(base + "--operator mask:" + path("mask.npy") + " --out " + path("b.npy")).code, 0);
  EXPECT_EQ(slurp(path("a.npy")), slurp(path("b.npy"))) << "a PNG mask is not the 0/1 mask it draws";

  const std::string plain = "sample --backend cpu -q --chains 2 --prior " + prior + " --y " + path("y.npy") + " --noise-std 0.5 ";
  for (const std::string op : {"--operator blur:" + path("mask.png"), "--operator matrix:" + path("mask.png"),
                               "--method langevin --levels-file " + path("mask.png")}) {
    SCOPED_TRACE(op);
    const Result r = run(plain + op);
    expect_one_line_error(r, "a PNG holds an image, not this array's numbers: give a .npy file");
    EXPECT_EQ(r.code, 2);
  }

  expect_one_line_error(run(base + "--chain-range 0:2 --out " + path("s.npy") + " --png-each " + path("pe")),
                        "--png-each needs every chain");
  std::filesystem::create_directories(path("pe"));
  almc::io::write_png(path("pe/mean_0.png"), mask_png);
  const std::string before = slurp(path("pe/mean_0.png"));
  const Result over = run("sample --backend cpu -q --chains 2 --kappa 1 --t-start 1 --prior " + prior + " --y " +
                          path("pe/mean_0.png") + " --noise-std 0.5 --png-each " + path("pe"));
  expect_one_line_error(over, "would write over --y");
  EXPECT_EQ(slurp(path("pe/mean_0.png")), before);

  // PSNR on the data's range: [0, 1] data peak to peak is 1, not 2.
  const float truth[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  write_npy(path("truth.npy"), truth, {1, 2, 2});
  auto psnr_range = [&](const std::string& extra) {
    const Result r = run(base + "--truth " + path("truth.npy") + " --json " + extra);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out.empty() ? "{}" : r.out).value("psnr_range", -1.0);
  };
  EXPECT_EQ(psnr_range(""), 2.0);
  EXPECT_EQ(psnr_range("--data-range 0,1"), 1.0);
  EXPECT_EQ(psnr_range("--data-range 0,1 --psnr-range 4"), 4.0);

  for (const auto& [opt, needle] : std::vector<std::pair<std::string, std::string>>{
           {"--png-samples 3", "--png-samples applies to --png FILE.png"},
           {"--png-range 0,1", "--png-range applies to --png FILE.png"},
           {"--psnr-range 1", "--psnr-range applies with --truth"},
           {"--data-range 0,1", "--data-range applies to PNG inputs"}}) {
    SCOPED_TRACE(opt);
    const Result r = run(base + opt);
    expect_one_line_error(r, needle);
    EXPECT_EQ(r.code, 2);
  }
}

}  // namespace


namespace {

// An image-shaped --y or --truth was taken in any layout holding as many values: a 3 x 4 image
// with --shape 1,4,3 (or a 1 x 2 x 3 downsampled measurement of a 1 x 6 x 4 image, whose
// measurement is 1 x 3 x 2) was silently re-laid out; with no image shape, a [12, 1] y was one
// measurement by its count.
TEST_F(CliUser, ImageInputsMustHaveTheImagesLayout) {
  std::vector<float> y(12), y6(6);
  for (size_t i = 0; i < y.size(); ++i) y[i] = -1.f + float(i) / 6.f;
  write_npy(path("y34.npy"), y.data(), {1, 3, 4});
  write_npy(path("y23.npy"), y6.data(), {1, 2, 3});
  write_npy(path("y12.npy"), y.data(), {12});
  write_npy(path("y12x1.npy"), y.data(), {12, 1});
  std::vector<float> a(144, 0.f);
  for (int i = 0; i < 12; ++i) a[size_t(13 * i)] = 1.f;  // the identity as a matrix
  write_npy(path("a.npy"), a.data(), {12, 12});
  std::ofstream(path("p12.json")) << R"({"weights": [1], "means": [[0,0,0,0,0,0,0,0,0,0,0,0]], "variances": [1]})";
  std::ofstream(path("p24.json")) << R"({"weights": [1], "means": [[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]], "variances": [1]})";
  const std::string base = "sample --backend cpu -q --chains 2 --kappa 1 --t-start 1 --noise-std 0.5 ";
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {"--prior " + path("p12.json") + " --y " + path("y34.npy") + " --shape 1,4,3",
            "has shape (1, 3, 4) but the measurement's image is [1, 4, 3] (--shape)"},
           {"--prior " + path("p12.json") + " --y " + path("y12.npy") + " --truth " + path("y34.npy") + " --shape 2,3,2",
            "has shape (1, 3, 4) but the image is [2, 3, 2] (--shape)"},
           {"--prior " + path("p24.json") + " --y " + path("y23.npy") + " --operator downsample:2 --shape 1,6,4",
            "has shape (1, 2, 3) but the measurement's image is [1, 3, 2] (--shape)"},
           // No image shape at all (a matrix operator's measurement): a transposed [m] is not one.
           {"--prior " + path("p12.json") + " --y " + path("y12x1.npy") + " --operator matrix:" + path("a.npy"),
            "--y " + path("y12x1.npy") + " has shape (12, 1); with no image shape (give --shape C,H,W) it must be flat: [12] "
            "for one, [n_meas, 12] for several"}}) {
    SCOPED_TRACE(args);
    const Result r = run(base + args);
    expect_one_line_error(r, needle);
    EXPECT_EQ(r.code, 2);
  }
  // The matching layouts, a flat y and the shape from y itself run.
  for (const std::string args : {"--prior " + path("p12.json") + " --y " + path("y34.npy") + " --shape 1,3,4",
                                 "--prior " + path("p12.json") + " --y " + path("y34.npy"),
                                 "--prior " + path("p12.json") + " --y " + path("y12.npy") + " --shape 1,4,3",
                                 "--prior " + path("p24.json") + " --y " + path("y23.npy") + " --operator downsample:2 --shape 1,4,6",
                                 "--prior " + path("p12.json") + " --y " + path("y12.npy") + " --operator matrix:" + path("a.npy")}) {
    SCOPED_TRACE(args);
    EXPECT_EQ(run(base + args).code, 0) << run(base + args).err;
  }
}

// A flat --y is one measurement of m values. With m = 1 (a 1 x 2 x 2 image pooled by 2) a flat
// [4] satisfied "shape[0] x m values" and ran as 4 measurements; it is now refused, naming m and
// the shape several measurements take.
TEST_F(CliUser, AFlatYIsOneMeasurement) {
  const float v[4] = {0.5f, -0.25f, 1.f, 0.f};
  write_npy(path("y4.npy"), v, {4});
  write_npy(path("y4x1.npy"), v, {4, 1});
  write_npy(path("y1.npy"), v, {1});
  const std::string base = "sample --backend cpu -q --chains 2 --kappa 1 --prior " + gaussian_prior() +
                           " --operator downsample:2 --shape 1,2,2 --noise-std 0.5 --out " + path("s.npy") + " --y ";
  const Result r = run(base + path("y4.npy"));
  expect_one_line_error(r, "--y " + path("y4.npy") + " is flat with 4 values; the operator downsample:2 expects 1 values "
                           "per measurement, and a flat --y is one measurement (give several as [n_meas, 1])");
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(exists("s.npy"));
  ASSERT_EQ(run(base + path("y4x1.npy")).code, 0);
  EXPECT_EQ(almc::io::read_npy_f32(path("s.npy")).shape, (std::vector<int64_t>{4 * 2, 1, 2, 2}));
  ASSERT_EQ(run(base + path("y1.npy")).code, 0);
  EXPECT_EQ(almc::io::read_npy_f32(path("s.npy")).shape, (std::vector<int64_t>{2, 1, 2, 2}));
}

}  // namespace
