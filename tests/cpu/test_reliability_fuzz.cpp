// Inputs found by the fuzzers (scripts/fuzz.sh), kept in tests/data/fuzz_regressions/<target>/,
// and the fuzzers' seed corpora (fuzz/corpus/<target>/), fed through the same entry points as the
// fuzz targets in the normal build: each must load or fail with a status and a message, never
// crash, and never fail as ALMC_ERR_INTERNAL (an exception nobody anticipated).
#include <almc/almc.h>

#include "host/io/npy.hpp"
#include "tests/common/test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// Files of one target: saved regressions first, then the seed corpus.
std::vector<std::string> inputs(const std::string& target) {
  std::vector<std::string> files;
  const std::string data = almc_test::data_dir();
  for (const std::string& dir : {data + "/fuzz_regressions/" + target, data + "/../../fuzz/corpus/" + target}) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<std::string> here;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file()) here.push_back(e.path().string());
    std::sort(here.begin(), here.end());
    files.insert(files.end(), here.begin(), here.end());
  }
  return files;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct CpuCtx {
  almc_context_t h = nullptr;
  CpuCtx() {
    almc_context_config c = almc_context_config_default();
    c.backend = ALMC_BACKEND_CPU;
    c.n_threads = 1;
    EXPECT_EQ(almc_context_create(&c, &h), ALMC_OK);
  }
  ~CpuCtx() { almc_context_destroy(h); }
};

TEST(FuzzRegressions, Npy) {
  const auto files = inputs("npy");
  if (files.empty()) GTEST_SKIP() << "no inputs under " << almc_test::data_dir() << "/fuzz_regressions/npy";
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    const std::string bytes = read_bytes(path);
    try {
      const auto a = almc::io::parse_npy_f32(bytes.data(), bytes.size(), path);
      EXPECT_EQ(almc::io::checked_product(a.shape), a.size());
    } catch (const almc::io::IoError& e) {
      EXPECT_NE(std::string(e.what()), "");
    }
    try {
      (void)almc::io::read_npy_f64(path);
    } catch (const almc::io::IoError& e) {
      EXPECT_NE(std::string(e.what()), "");
    }
  }
}

TEST(FuzzRegressions, GmmJson) {
  const auto files = inputs("gmm_json");
  if (files.empty()) GTEST_SKIP() << "no inputs";
  CpuCtx ctx;
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    almc_score_t s = nullptr;
    const almc_status st = almc_score_create_gmm_json(ctx.h, path.c_str(), &s);
    if (st == ALMC_OK) {
      int64_t d = 0;
      ASSERT_EQ(almc_score_dim(s, &d), ALMC_OK);
      std::vector<float> x(static_cast<size_t>(d), 0.5f), out(static_cast<size_t>(d));
      EXPECT_NE(almc_score_evaluate(s, x.data(), out.data(), 1, 0.1), ALMC_ERR_INTERNAL) << almc_score_last_error(s);
      almc_score_destroy(s);
    } else {
      EXPECT_NE(st, ALMC_ERR_INTERNAL) << almc_context_last_error(ctx.h);
      EXPECT_STRNE(almc_context_last_error(ctx.h), "");
      EXPECT_EQ(s, nullptr);
    }
  }
}

TEST(FuzzRegressions, Onnx) {
  const auto files = inputs("onnx");
  if (files.empty()) GTEST_SKIP() << "no inputs";
  CpuCtx ctx;
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    for (almc_net_level level : {ALMC_LEVEL_T, ALMC_LEVEL_NONE}) {
      almc_onnx_config cfg = almc_onnx_config_default();
      cfg.level = level;
      cfg.max_batch = 2;
      almc_score_t s = nullptr;
      const almc_status st = almc_score_create_onnx(ctx.h, path.c_str(), &cfg, &s);
      if (st != ALMC_OK) {
        EXPECT_NE(st, ALMC_ERR_INTERNAL) << almc_context_last_error(ctx.h);
        EXPECT_STRNE(almc_context_last_error(ctx.h), "");
        continue;
      }
      int64_t d = 0;
      ASSERT_EQ(almc_score_dim(s, &d), ALMC_OK);
      if (d <= (1 << 14)) {
        std::vector<float> x(static_cast<size_t>(2 * d), 0.25f), out(static_cast<size_t>(2 * d));
        EXPECT_NE(almc_score_evaluate(s, x.data(), out.data(), 2, 0.3), ALMC_ERR_INTERNAL) << almc_score_last_error(s);
        EXPECT_NE(almc_onnx_eval_raw(ctx.h, path.c_str(), &cfg, x.data(), 2, d, 0.3f, out.data()), ALMC_ERR_INTERNAL)
            << almc_context_last_error(ctx.h);
      }
      almc_score_destroy(s);
    }
  }
}

// A 50 kB model whose nodes fold a 2^25-element ConstantOfShape through Mul, Equal and Where into
// an Expand shape of rank 2^25, eight times over: the loader held more than 2 GB (fuzz_onnx's memory
// limit). Folded constants are now bounded in total and a shape's rank is checked before use.
TEST(FuzzRegressions, OnnxFoldingIsBoundedInMemory) {
  CpuCtx ctx;
  const std::string path = almc_test::data_dir() + "/fuzz_regressions/onnx/fold_chain_of_constantofshape_2e25";
  almc_onnx_config cfg = almc_onnx_config_default();
  cfg.max_batch = 2;
  almc_score_t s = nullptr;
  EXPECT_EQ(almc_score_create_onnx(ctx.h, path.c_str(), &cfg, &s), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(almc_context_last_error(ctx.h)).find("the constants folded while loading exceed"),
            std::string::npos)
      << almc_context_last_error(ctx.h);
  EXPECT_EQ(s, nullptr);
}

// Snapshot files: parsed from memory and read from the file; what parses is a state whose step
// lies within its run.
TEST(FuzzRegressions, Snapshot) {
  const auto files = inputs("snapshot");
  if (files.empty()) GTEST_SKIP() << "no inputs";
  almc_snapshot_t snap = nullptr;
  ASSERT_EQ(almc_snapshot_create(&snap), ALMC_OK);
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    const std::string bytes = read_bytes(path);
    for (const bool from_file : {false, true}) {
      const almc_status st = from_file ? almc_snapshot_read(snap, path.c_str())
                                       : almc_snapshot_parse(snap, bytes.data(), bytes.size());
      if (st != ALMC_OK) {
        EXPECT_TRUE(st == ALMC_ERR_PARSE || st == ALMC_ERR_INVALID_ARGUMENT) << almc_snapshot_last_error(snap);
        EXPECT_STRNE(almc_snapshot_last_error(snap), "");
        continue;
      }
      size_t n = 0;
      int64_t step = -1, total = -1;
      ASSERT_EQ(almc_snapshot_state(snap, nullptr, &n, &step, &total), ALMC_OK);
      EXPECT_LE(n, bytes.size());
      EXPECT_STRNE(almc_snapshot_run(snap), "");
    }
  }
  almc_snapshot_destroy(snap);
}

}  // namespace
