// The built-in ONNX executor on the CUDA backend: fixtures against torch, GPU against CPU, the
// adapted score through the C API, and a captured CUDA graph replayed at a new level.
// Every test skips, saying why, without a CUDA build or device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "host/onnx/executor.hpp"
#include "tests/cpu/test_onnx_util.hpp"


using almc::onnx::ExecConfig;
using almc::onnx::Executor;
using onnx_test::data_dir;
using onnx_test::read_npy;
using onnx_test::rel_err;

namespace {

// A CUDA context, or a skip reason.
struct GpuCtx {
  almc_context_t ctx = nullptr;
  std::string why;
  GpuCtx() {
    int n = 0;
    if (almc_cuda_device_count(&n) != ALMC_OK || n == 0) {
      why = "no CUDA device (or a build without CUDA)";
      return;
    }
    almc_context_config c = almc_context_config_default();
    c.backend = ALMC_BACKEND_CUDA;
    if (almc_context_create(&c, &ctx) != ALMC_OK) {
      why = "cannot create a CUDA context";
      ctx = nullptr;
    }
  }
  ~GpuCtx() { almc_context_destroy(ctx); }
};

// A device buffer through the context.
struct Dev {
  almc_context_t ctx;
  float* p = nullptr;
  Dev(almc_context_t c, size_t n) : ctx(c) {
    void* q = nullptr;
    if (almc_malloc(c, n * sizeof(float), &q) == ALMC_OK) p = static_cast<float*>(q);
  }
  ~Dev() { almc_free(ctx, p); }
  void put(const std::vector<float>& v) { almc_memcpy(ctx, p, v.data(), v.size() * sizeof(float), 0); }
  std::vector<float> get(size_t n) {
    std::vector<float> v(n);
    almc_synchronize(ctx);
    almc_memcpy(ctx, v.data(), p, n * sizeof(float), 1);
    return v;
  }
};

std::unique_ptr<Executor> load(const std::string& name, ExecConfig cfg) {
  return std::make_unique<Executor>(almc::onnx::load_graph(data_dir() + name + ".onnx"), cfg);
}

}  // namespace

// Tolerance as on the CPU: max|almc - torch| <= 1e-4 * max(1, max|torch|) (TF32 off).
TEST(OnnxGpu, FixturesMatchTorch) {
  GpuCtx g;
  if (!g.ctx) GTEST_SKIP() << g.why;
  for (const char* name : onnx_test::kFixtures) {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    auto ref = read_npy(data_dir() + name + "_out.npy");
    ExecConfig cfg;
    cfg.backend = ALMC_BACKEND_CUDA;
    auto ex = load(name, cfg);
    Dev dx(g.ctx, x.v.size()), dl(g.ctx, lv.v.size()), dy(g.ctx, ref.v.size());
    dx.put(x.v);
    dl.put(lv.v);
    ex->run_raw_levels(dx.p, dy.p, x.shape[0], dl.p, nullptr);
    EXPECT_LE(rel_err(dy.get(ref.v.size()), ref.v), 1e-4);
  }
}

TEST(OnnxGpu, MatchesCpuAtBatch64) {
  GpuCtx g;
  if (!g.ctx) GTEST_SKIP() << g.why;
  for (const char* name : {"unet", "mlp_embed", "misc_ops", "resmlp"}) {
    SCOPED_TRACE(name);
    auto x1 = read_npy(data_dir() + std::string(name) + "_x.npy");
    const int64_t n = 64, d = int64_t(x1.v.size()) / x1.shape[0];
    std::vector<float> x(static_cast<size_t>(n * d)), lv(static_cast<size_t>(n));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.37 * double(i)) * 1.3);
    for (size_t i = 0; i < lv.size(); ++i) lv[i] = 0.1f + 0.05f * float(i);
    ExecConfig cpu_cfg, gpu_cfg;
    gpu_cfg.backend = ALMC_BACKEND_CUDA;
    auto cpu = load(name, cpu_cfg);
    auto gpu = load(name, gpu_cfg);
    std::vector<float> want(x.size());
    cpu->run_raw_levels(x.data(), want.data(), n, lv.data(), nullptr);
    Dev dx(g.ctx, x.size()), dl(g.ctx, lv.size()), dy(g.ctx, x.size());
    dx.put(x);
    dl.put(lv);
    gpu->run_raw_levels(dx.p, dy.p, n, dl.p, nullptr);
    EXPECT_LE(rel_err(dy.get(x.size()), want), 1e-4);
  }
}

TEST(OnnxGpu, ScoreThroughTheCApi) {
  GpuCtx g;
  if (!g.ctx) GTEST_SKIP() << g.why;
  almc_onnx_config cfg = almc_onnx_config_default();
  cfg.convention = ALMC_CONV_VE;
  cfg.output = ALMC_OUTPUT_DENOISER;
  cfg.level = ALMC_LEVEL_SIGMA;
  cfg.max_batch = 8;
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_onnx(g.ctx, (data_dir() + "gauss_ve_denoiser.onnx").c_str(), &cfg, &s), ALMC_OK)
      << almc_context_last_error(g.ctx);
  std::vector<float> x(18), out(18);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::cos(double(i)) * 1.5);
  const double t = 0.8, var = std::exp(-2 * t) * 0.49 + 1 - std::exp(-2 * t);
  ASSERT_EQ(almc_score_evaluate(s, x.data(), out.data(), 3, t), ALMC_OK) << almc_score_last_error(s);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(out[i], -x[i] / var, 1e-5);
  std::vector<float> r(6);
  ASSERT_EQ(almc_onnx_eval_raw(g.ctx, (data_dir() + "gauss_ve_denoiser.onnx").c_str(), &cfg, x.data(), 1, 6, 2.0f, r.data()),
            ALMC_OK);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(r[i], x[i] * 0.49 / (0.49 + 4.0), 1e-6);
  almc_score_destroy(s);
}

// The adapted network captured once and replayed at another level gives the eager result.
TEST(OnnxGpu, GraphReplayReadsTheLevelFromDevice) {
  GpuCtx g;
  if (!g.ctx) GTEST_SKIP() << g.why;
  ExecConfig cfg;
  cfg.backend = ALMC_BACKEND_CUDA;
  cfg.convention = ALMC_CONV_VE;
  cfg.output = ALMC_OUTPUT_SCORE;
  cfg.level = ALMC_LEVEL_LOG_SIGMA;
  cfg.max_batch = 16;
  auto ex = load("unet", cfg);
  const int64_t n = 16, d = 256;
  std::vector<float> x(static_cast<size_t>(n * d));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.11 * double(i)));
  Dev dx(g.ctx, x.size()), dy(g.ctx, x.size()), dz(g.ctx, x.size()), dlev(g.ctx, 4);
  dx.put(x);
  auto level_at = [](double t) {
    const double s2 = std::expm1(2 * t);
    return std::vector<float>{float(t), float(std::sqrt(s2)), float(std::exp(-2 * t)), float(0.5 * std::log(s2))};
  };
  auto* ld = reinterpret_cast<const almc_level_device*>(dlev.p);
  namespace dt = almc::onnx::devtools;
  void* st = dt::stream_create();
  dlev.put(level_at(0.3));
  dt::capture_begin(st);
  ex->run_score(dx.p, dy.p, n, ld, st);
  void* graph = dt::capture_end(st);
  dlev.put(level_at(1.1));  // a new level, same graph
  dt::graph_launch(graph, st);
  dt::synchronize(st);
  ex->run_score(dx.p, dz.p, n, ld, st);  // eager at the same level
  dt::synchronize(st);
  auto a = dy.get(x.size()), b = dz.get(x.size());
  EXPECT_LE(rel_err(a, b), 1e-6);
  dt::graph_destroy(graph);
  dt::stream_destroy(st);
}

// Without max_batch a sampler plans the network for its chain count itself, so the whole step
// (network + update) is captured by default, and the replayed run equals the eager one bit for bit.
TEST(OnnxGpu, SamplerCapturesTheNetworkWithoutMaxBatch) {
  auto run = [](almc_context_t ctx, int graphs, almc_run_info* info) {
    almc_onnx_config oc = almc_onnx_config_default();
    oc.convention = ALMC_CONV_VE;
    oc.output = ALMC_OUTPUT_DENOISER;
    oc.level = ALMC_LEVEL_SIGMA;  // max_batch stays 0
    almc_score_t s = nullptr;
    EXPECT_EQ(almc_score_create_onnx(ctx, (data_dir() + "gauss_ve_denoiser.onnx").c_str(), &oc, &s), ALMC_OK)
        << almc_context_last_error(ctx);
    almc_sampler_config c = almc_sampler_config_default();
    c.chains_per_meas = 24;
    c.seed = 5;
    c.kappa = 2;
    c.use_graphs = graphs;
    almc_sampler_t sm = nullptr;
    EXPECT_EQ(almc_sampler_create(ctx, s, nullptr, &c, &sm), ALMC_OK) << almc_context_last_error(ctx);
    EXPECT_EQ(almc_sampler_run(sm), ALMC_OK) << almc_sampler_last_error(sm);
    std::vector<float> x(24 * 6);
    EXPECT_EQ(almc_sampler_get_samples(sm, x.data()), ALMC_OK);
    EXPECT_EQ(almc_sampler_run_info(sm, info), ALMC_OK);
    almc_sampler_destroy(sm);
    almc_score_destroy(s);
    return x;
  };
  // The CPU half first: the setup works everywhere.
  almc_context_config cc = almc_context_config_default();
  cc.backend = ALMC_BACKEND_CPU;
  almc_context_t cpu = nullptr;
  ASSERT_EQ(almc_context_create(&cc, &cpu), ALMC_OK);
  almc_run_info ci{};
  ci.struct_size = sizeof ci;
  const auto xc = run(cpu, 1, &ci);
  almc_context_destroy(cpu);
  EXPECT_FALSE(ci.used_graphs);
  GpuCtx g;
  if (!g.ctx) GTEST_SKIP() << g.why;
  almc_run_info a{}, b{};
  a.struct_size = b.struct_size = sizeof a;
  const auto xa = run(g.ctx, 1, &a), xb = run(g.ctx, 0, &b);
  EXPECT_TRUE(a.used_graphs);
  EXPECT_FALSE(b.used_graphs);
  EXPECT_EQ(0, std::memcmp(xa.data(), xb.data(), xa.size() * sizeof(float)));
  for (size_t i = 0; i < xc.size(); ++i) ASSERT_NEAR(xa[i], xc[i], 2e-3f * (1 + std::fabs(xc[i]))) << i;
}
