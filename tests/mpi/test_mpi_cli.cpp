// `mpirun almc sample` (host/cli/team.cpp): the outputs of a run spread over MPI ranks are the
// bytes of a one-process run (samples, mean, std), for the local operators, a dense A and ONNX
// priors; a --chain-range slice run under MPI merges with other slices into the one run; a failure
// on one rank (a missing input there, a diverged chain there) stops every rank with one error line
// naming that rank, and no output file. Registered by tests/CMakeLists.txt when almc is built with
// MPI; ctest sets ALMC_EXE, the build compiles in its launcher (ALMC_MPIEXEC, ALMC_MPIEXEC_FLAGS).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "host/io/npy.hpp"

namespace {

using almc::io::write_npy;

std::string env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

struct Result {
  int code = -1;
  std::string out, err;
};

class MpiCli : public ::testing::Test {
 protected:
  void SetUp() override {
    exe_ = env("ALMC_EXE");
    if (exe_.empty()) GTEST_SKIP() << "set ALMC_EXE (the almc command)";
    mpiexec_ = ALMC_MPIEXEC;
    flags_ = ALMC_MPIEXEC_FLAGS;
    // Open MPI: run as root (CI does), more ranks than cores (CI has 2), waiting ranks yield the
    // core; one OpenMP thread per rank, sleeping when idle.
    for (const char* v : {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                          "OMPI_MCA_rmaps_base_oversubscribe=1", "OMPI_MCA_mpi_yield_when_idle=1",
                          "OMP_WAIT_POLICY=passive", "OMP_NUM_THREADS=1"})
      ::putenv(const_cast<char*>(v));
    char tmpl[] = "/tmp/almc_mpi_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  Result shell(const std::string& cmd) const {
    const std::string out = path("stdout.txt"), err = path("stderr.txt");
    const int st = std::system((cmd + " >'" + out + "' 2>'" + err + "' </dev/null").c_str());
    Result r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }
  // almc alone (no launcher variables: the plain one-process path).
  Result alone(const std::string& args) const { return shell("'" + exe_ + "' " + args); }
  // The same under the MPI launcher with `ranks` ranks, one OpenMP thread each.
  Result mpi(int ranks, const std::string& args) const {
    return shell(mpiexec_ + " -n " + std::to_string(ranks) + " " + flags_ + " '" + exe_ + "' " + args);
  }
  // Two ranks, each with its own arguments (MPMD launch).
  Result mpi2(const std::string& args0, const std::string& args1) const {
    return shell(mpiexec_ + " " + flags_ + " -n 1 '" + exe_ + "' " + args0 + " : -n 1 '" + exe_ + "' " + args1);
  }

  // One run alone and under MPI with the same options: every output byte-identical.
  void expect_same_bytes(const std::string& args, int ranks = 2) {
    const std::string a = " --out " + path("a.npy") + " --mean " + path("a_m.npy") + " --std " + path("a_s.npy");
    const std::string b = " --out " + path("b.npy") + " --mean " + path("b_m.npy") + " --std " + path("b_s.npy");
    const Result r1 = alone(args + " --threads 1" + a);
    ASSERT_EQ(r1.code, 0) << r1.err;
    const Result r2 = mpi(ranks, args + " --threads 1 --json" + b);
    ASSERT_EQ(r2.code, 0) << r2.err << r2.out;
    EXPECT_EQ(nlohmann::json::parse(r2.out)["mpi_ranks"], ranks) << r2.out;
    for (const char* s : {".npy", "_m.npy", "_s.npy"}) {
      const std::string x = slurp(path(std::string("a") + s)), y = slurp(path(std::string("b") + s));
      EXPECT_GT(x.size(), 128u);
      EXPECT_TRUE(x == y) << args << ": " << s << " differs between one process and " << ranks << " ranks";
    }
  }

  // A GMM prior in d = 16 (images 1 x 4 x 4) and y for 3 measurements of each operator.
  std::string gmm16() const {
    const std::string p = path("gmm16.json");
    std::ofstream f(p);
    f << R"({"weights": [0.3, 0.7], "means": [)";
    for (int k = 0; k < 2; ++k) {
      f << (k ? ",[" : "[");
      for (int i = 0; i < 16; ++i) f << (i ? "," : "") << (k ? 0.5 : -0.5) + 0.05 * i;
      f << "]";
    }
    f << R"(], "variances": [0.2, 0.35]})";
    return p;
  }
  std::string y_file(const std::string& name, int64_t n_meas, const std::vector<int64_t>& per_meas, float scale = 1.f) const {
    int64_t m = 1;
    for (int64_t v : per_meas) m *= v;
    std::vector<float> y(static_cast<size_t>(n_meas * m));
    for (size_t i = 0; i < y.size(); ++i) y[i] = scale * (static_cast<float>((i * 7) % 13) / 6.f - 1.f);
    std::vector<int64_t> shape{n_meas};
    shape.insert(shape.end(), per_meas.begin(), per_meas.end());
    write_npy(path(name), y.data(), shape);
    return path(name);
  }

  std::string exe_, mpiexec_, flags_, dir_;
};

const char* kFast = " --backend cpu --kappa 1 --delta 4e-3 --t-start 1 --t-stop 0.05 --seed 9 -q";

TEST_F(MpiCli, LocalOperatorsGiveTheBytesOfOneProcess) {
  const std::string prior = gmm16();
  std::vector<float> mask(16), kernel(9);
  for (int i = 0; i < 16; ++i) mask[i] = (i % 3) ? 1.f : 0.f;
  for (int i = 0; i < 9; ++i) kernel[i] = (i == 4 ? 0.5f : 0.0625f);
  write_npy(path("mask.npy"), mask.data(), {16});
  write_npy(path("kernel.npy"), kernel.data(), {3, 3});
  const std::string common = "sample --prior " + prior + " --noise-std 0.3 --chains 5 --shape 1,4,4" + kFast;
  expect_same_bytes(common + " --operator identity --y " + y_file("y_id.npy", 3, {1, 4, 4}));
  expect_same_bytes(common + " --operator mask:" + path("mask.npy") + " --y " + y_file("y_mask.npy", 3, {16}));
  expect_same_bytes(common + " --operator downsample:2 --y " + y_file("y_ds.npy", 3, {1, 2, 2}));
  // Three ranks, 3 x 7 chains: blocks of 7 chains that cut measurements.
  expect_same_bytes("sample --prior " + prior + " --noise-std 0.3 --chains 7 --shape 1,4,4 --operator blur:" +
                        path("kernel.npy") + " --y " + y_file("y_blur.npy", 3, {1, 4, 4}) + kFast, 3);
  // The prior alone (no y).
  expect_same_bytes("sample --prior " + prior + " --chains 5" + kFast);
}

TEST_F(MpiCli, DenseMatrixGivesTheBytesOfOneProcess) {
  const std::string prior = gmm16();
  const int64_t n_meas = 3, m = 6, d = 16;
  std::vector<float> A(static_cast<size_t>(n_meas * m * d));
  for (size_t i = 0; i < A.size(); ++i) A[i] = static_cast<float>((i * 29) % 17) / 17.f - 0.5f;
  write_npy(path("A3.npy"), A.data(), {n_meas, m, d});
  write_npy(path("A1.npy"), A.data(), {m, d});
  const std::string y = y_file("y_mat.npy", n_meas, {m});
  // 3 x 11 chains: blocks of 17 and 16 chains cut a measurement and the 16-row GEMM blocks.
  expect_same_bytes("sample --prior " + prior + " --noise-std 0.3 --chains 11 --operator matrix:" + path("A3.npy") +
                    " --y " + y + kFast);
  expect_same_bytes("sample --prior " + prior + " --noise-std 0.3 --chains 11 --operator matrix:" + path("A1.npy") +
                    " --y " + y + kFast);
}

TEST_F(MpiCli, OnnxPriorsGiveTheBytesOfOneProcess) {
  const std::string data = env("ALMC_TEST_DATA", "tests/data");
  const std::string fixture = data + "/onnx/gauss_vp_eps.onnx";
  if (::access(fixture.c_str(), R_OK) != 0) GTEST_SKIP() << fixture << " not found";
  expect_same_bytes("sample --model " + fixture + " --noise-std 0.4 --chains 5 --y " + y_file("y6.npy", 3, {6}) + kFast);
  // The demo's digit network (d = 256, blocks of samples through the executor), 2x super-resolution.
  const std::string demo = env("ALMC_DEMO_DIR", "demo") + "/digits_score.onnx";
  if (::access(demo.c_str(), R_OK) != 0) GTEST_SKIP() << demo << " not found";
  expect_same_bytes("sample --model " + demo + " --operator downsample:2 --shape 1,16,16 --noise-std 0.05 --chains 3 --y " +
                    y_file("y8.npy", 2, {1, 8, 8}, 0.8f) + " --backend cpu --kappa 0.3 --delta 4e-3 --seed 2 -q");
}

TEST_F(MpiCli, SliceUnderMpiMergesIntoTheOneRun) {
  const std::string prior = gmm16();
  const std::string base = "sample --prior " + prior + " --noise-std 0.3 --chains 5 --operator identity --shape 1,4,4 --y " +
                           y_file("y.npy", 3, {1, 4, 4}) + kFast + " --threads 1";
  Result r = alone(base + " --out " + path("whole.npy") + " --mean " + path("m1.npy") + " --std " + path("s1.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  // Chains 3 .. 12 on two ranks (blocks 3..7 and 8..12), the rest alone.
  r = mpi(2, base + " --chain-range 3:10 --out " + path("mid.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto rec = nlohmann::json::parse(slurp(path("mid.npy.json")));
  EXPECT_EQ(rec["chain_start"], 3);
  EXPECT_EQ(rec["chain_count"], 10);
  r = alone(base + " --chain-range 0:3 --out " + path("head.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = alone(base + " --chain-range 13:2 --out " + path("tail.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  r = alone("merge -q " + path("tail.npy") + " " + path("mid.npy") + " " + path("head.npy") + " --out " + path("all.npy") +
            " --mean " + path("m2.npy") + " --std " + path("s2.npy"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(slurp(path("all.npy")) == slurp(path("whole.npy")));
  EXPECT_TRUE(slurp(path("m2.npy")) == slurp(path("m1.npy")));
  EXPECT_TRUE(slurp(path("s2.npy")) == slurp(path("s1.npy")));
}

// The error is rank 0's single line "almc sample: error: rank R: ..."; the launcher may add its own
// lines about the exit status, which are not almc's.
void expect_one_error(const Result& r, int rank, const std::string& needle) {
  EXPECT_NE(r.code, 0) << r.err;
  size_t lines = 0, at = 0;
  std::string line;
  for (size_t p = r.err.find("almc sample: error:"); p != std::string::npos; p = r.err.find("almc sample: error:", p + 1)) {
    ++lines;
    at = p;
  }
  ASSERT_EQ(lines, 1u) << "want exactly one almc error line:\n" << r.err;
  line = r.err.substr(at, r.err.find('\n', at) - at);
  EXPECT_NE(line.find("rank " + std::to_string(rank) + ":"), std::string::npos) << line;
  EXPECT_NE(line.find(needle), std::string::npos) << "lacks '" << needle << "': " << line;
}

TEST_F(MpiCli, AFailingRankStopsEveryRankWithOneErrorAndNoOutput) {
  const std::string prior = gmm16();
  const std::string y = y_file("y.npy", 3, {1, 4, 4});
  const std::string base = "sample --prior " + prior + " --noise-std 0.3 --chains 5 --shape 1,4,4" + kFast + " --threads 1";
  const std::string outs = " --out " + path("o.npy") + " --mean " + path("o_m.npy") + " --diagnostics " + path("o.json");
  // Rank 1's input is missing (a file absent on its node).
  Result r = mpi2(base + " --y " + y + outs, base + " --y " + path("absent.npy") + outs);
  expect_one_error(r, 1, "absent.npy");
  EXPECT_FALSE(exists(path("o.npy")) || exists(path("o_m.npy")) || exists(path("o.json")));

  // A chain diverges on rank 1 only: measurement 2's y is so large that its chains overflow (rank 1
  // holds chains 8 .. 14); rank 0's chains are fine.
  std::vector<float> big(48, 0.25f);
  for (int i = 32; i < 48; ++i) big[i] = 3e38f;
  write_npy(path("ybig.npy"), big.data(), {3, 1, 4, 4});
  const Result whole = alone(base + " --y " + path("ybig.npy") + outs);
  ASSERT_NE(whole.code, 0) << "the fixture must diverge: " << whole.err;
  r = mpi(2, base + " --y " + path("ybig.npy") + outs);
  expect_one_error(r, 1, "NaN or Inf");
  EXPECT_FALSE(exists(path("o.npy")) || exists(path("o_m.npy")) || exists(path("o.json")));
  // Bad options are the same on every rank: said once, by rank 0.
  r = mpi(2, base + " --y " + y + " --chains 0" + outs);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.find("almc sample: error:"), r.err.rfind("almc sample: error:")) << r.err;
  EXPECT_NE(r.err.find("--chains must be at least 1"), std::string::npos) << r.err;
}

}  // namespace
