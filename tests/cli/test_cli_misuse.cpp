// Misuse of `almc sample`'s file options as scripts make it: an option given an empty value (an
// unset shell variable, `--y "$Y"`) is refused before any work, never read as the option left out
// (which sampled the prior for `--y ""` and started over for `--resume ""`, both with exit 0).
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "host/io/npy.hpp"
#include "tests/cli/cli_test_util.hpp"

namespace {

using almc_cli_test::Cli;
using almc_cli_test::expect_one_line_error;
using almc_cli_test::Result;

class CliMisuse : public Cli {};

TEST_F(CliMisuse, EmptyValuesAreRefusedNotTakenForAnOptionLeftOut) {
  const float y[4] = {1.0f, 0.0f, -0.5f, 1.5f};
  almc::io::write_npy(path("y.npy"), y, {4});
  const std::string base = "sample --prior " + gaussian_prior() + " --noise-std 0.5 --chains 2 --kappa 2 --backend cpu -q ";
  const std::string out = " --out " + path("s.npy");
  for (const std::string opt : {"--y", "--resume", "--snapshot", "--levels-file", "--truth", "--operator",
                                "--chain-range", "--mean", "--diagnostics", "--shape", "--precision"}) {
    const Result r = run(base + "--y " + path("y.npy") + out + " " + opt + " ''");
    expect_one_line_error(r, opt + ": the value is empty");
    EXPECT_EQ(r.code, 2) << opt;
    EXPECT_EQ(::access(path("s.npy").c_str(), F_OK), -1) << opt << ": nothing runs, nothing is written";
  }
  // The measurement itself: `--y ""` sampled the prior (exit 0) although --noise-std was given.
  expect_one_line_error(run(base + "--y ''" + out), "--y: the value is empty");
  expect_one_line_error(run(base + "--out ''"), "--out: the value is empty");
  // Every subcommand's text options and positionals alike.
  expect_one_line_error(run("merge '' --out " + path("m.npy")), "parts: the value is empty");
  expect_one_line_error(run("eval --model '' --x " + path("y.npy") + " --level 0.5 --out " + path("o.npy")),
                        "--model: the value is empty");
  // A value given is still read as before.
  const Result ok = run(base + "--y " + path("y.npy") + out);
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(almc::io::read_npy_f32(path("s.npy")).shape, (std::vector<int64_t>{2, 4}));
}

}  // namespace
