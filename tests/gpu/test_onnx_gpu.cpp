// The built-in ONNX executor on the CUDA backend: fixtures against torch, GPU against CPU, the
// adapted score through the C API, a captured CUDA graph replayed at a new level, and the executor
// on its backend (every operand in the backend's allocations, failures with the engine's status).
// Every test skips, saying why, without a CUDA build or device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "host/core/objects.hpp"
#include "host/onnx/executor.hpp"
#include "tests/common/counting_backend.hpp"
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

// The CUDA backend executors run on, or a skip reason.
struct Gpu {
  std::unique_ptr<almc::Backend> be;
  std::string why;
  Gpu() {
    if (almc::cuda_device_count() == 0) {
      why = "no CUDA device (or a build without CUDA)";
      return;
    }
    try {
      be = almc::make_cuda_backend(0, nullptr);
    } catch (const almc::Error& e) {
      why = std::string("cannot create the CUDA backend: ") + e.what();
    }
  }
};

// A device buffer of floats on a backend (copies wait for the backend's stream).
struct Dev {
  almc::Backend& be;
  almc::Buffer buf;
  float* p;
  Dev(almc::Backend& b, size_t n) : be(b), buf(&b, n * sizeof(float)), p(buf.f()) {}
  void put(const std::vector<float>& v) { buf.upload(v.data(), v.size() * sizeof(float)); }
  std::vector<float> get(size_t n) {
    std::vector<float> v(n);
    be.sync();
    buf.download(v.data(), n * sizeof(float));
    return v;
  }
};

std::unique_ptr<Executor> load(const std::string& name, ExecConfig cfg, almc::Backend& be) {
  return std::make_unique<Executor>(almc::onnx::load_graph(data_dir() + name + ".onnx"), cfg, be);
}

}  // namespace

// Tolerance as on the CPU: max|almc - torch| <= 1e-4 * max(1, max|torch|) (TF32 off).
TEST(OnnxGpu, FixturesMatchTorch) {
  Gpu g;
  if (!g.be) GTEST_SKIP() << g.why;
  for (const char* name : onnx_test::kFixtures) {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    auto ref = read_npy(data_dir() + name + "_out.npy");
    auto ex = load(name, ExecConfig{}, *g.be);
    Dev dx(*g.be, x.v.size()), dl(*g.be, lv.v.size()), dy(*g.be, ref.v.size());
    dx.put(x.v);
    dl.put(lv.v);
    ex->run_raw_levels(dx.p, dy.p, x.shape[0], dl.p);
    EXPECT_LE(rel_err(dy.get(ref.v.size()), ref.v), 1e-4);
  }
}

// The zoo of exported architectures on CUDA, at the batch of its fixtures, with the CPU test's
// tolerance (tests/cpu/test_onnx.cpp, OnnxZoo). Not yet run on a device.
TEST(OnnxGpu, ZooMatchesTorch) {
  Gpu g;
  if (!g.be) GTEST_SKIP() << g.why;
  for (const char* name : onnx_test::kZoo) try {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    auto ref = read_npy(data_dir() + name + "_out.npy");
    auto graph = almc::onnx::load_graph(data_dir() + name + ".onnx");
    const bool scalar_level = graph.inputs.size() > 1 && graph.inputs[1].dims.empty();
    ExecConfig cfg;
    cfg.x_input = "x";
    cfg.level_input = "t";
    Executor ex(std::move(graph), cfg, *g.be);
    Dev dx(*g.be, x.v.size()), dl(*g.be, lv.v.size()), dy(*g.be, ref.v.size());
    dx.put(x.v);
    dl.put(lv.v);
    if (scalar_level) ex.run_raw(dx.p, dy.p, x.shape[0], lv.v[0]);
    else ex.run_raw_levels(dx.p, dy.p, x.shape[0], dl.p);
    EXPECT_LE(rel_err(dy.get(ref.v.size()), ref.v), 1e-4);
  } catch (const std::exception& e) {
    ADD_FAILURE() << name << ": " << e.what();
  }
}

TEST(OnnxGpu, MatchesCpuAtBatch64) {
  Gpu g;
  if (!g.be) GTEST_SKIP() << g.why;
  auto cpu_be = almc::make_cpu_backend(0);
  for (const char* name : {"unet", "mlp_embed", "misc_ops", "resmlp"}) {
    SCOPED_TRACE(name);
    auto x1 = read_npy(data_dir() + std::string(name) + "_x.npy");
    const int64_t n = 64, d = int64_t(x1.v.size()) / x1.shape[0];
    std::vector<float> x(static_cast<size_t>(n * d)), lv(static_cast<size_t>(n));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.37 * double(i)) * 1.3);
    for (size_t i = 0; i < lv.size(); ++i) lv[i] = 0.1f + 0.05f * float(i);
    auto cpu = load(name, ExecConfig{}, *cpu_be);
    auto gpu = load(name, ExecConfig{}, *g.be);
    std::vector<float> want(x.size());
    cpu->run_raw_levels(x.data(), want.data(), n, lv.data());
    Dev dx(*g.be, x.size()), dl(*g.be, lv.size()), dy(*g.be, x.size());
    dx.put(x);
    dl.put(lv);
    gpu->run_raw_levels(dx.p, dy.p, n, dl.p);
    EXPECT_LE(rel_err(dy.get(x.size()), want), 1e-4);
  }
}

// BF16 precision on CUDA (cuBLAS BF16 GEMMs, fp32 compute) against the CPU's fp32 at batch 64,
// with the CPU BF16 test's tolerance (tests/cpu/test_bf16.cpp): relative L2 error
// <= 2 * 2^-9 * sqrt(GEMM/conv steps), and above zero (the BF16 path ran). Not yet run on a device.
TEST(OnnxGpu, Bf16WithinToleranceOfFp32) {
  Gpu g;
  if (!g.be) GTEST_SKIP() << g.why;
  auto cpu_be = almc::make_cpu_backend(0);
  for (const char* name : {"unet", "mlp_embed", "resmlp"}) {
    SCOPED_TRACE(name);
    auto x1 = read_npy(data_dir() + std::string(name) + "_x.npy");
    const int64_t n = 64, d = int64_t(x1.v.size()) / x1.shape[0];
    std::vector<float> x(static_cast<size_t>(n * d)), lv(static_cast<size_t>(n));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.37 * double(i)) * 1.3);
    for (size_t i = 0; i < lv.size(); ++i) lv[i] = 0.1f + 0.05f * float(i);
    ExecConfig bf;
    bf.precision = ALMC_PRECISION_BF16;
    auto cpu = load(name, ExecConfig{}, *cpu_be);
    auto gpu = load(name, bf, *g.be);
    std::vector<float> want(x.size());
    cpu->run_raw_levels(x.data(), want.data(), n, lv.data());
    Dev dx(*g.be, x.size()), dl(*g.be, lv.size()), dy(*g.be, x.size());
    dx.put(x);
    dl.put(lv);
    gpu->run_raw_levels(dx.p, dy.p, n, dl.p);
    const auto got = dy.get(x.size());
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
      den += double(want[i]) * want[i];
    }
    const double err = std::sqrt(num / den), tol = 2 * 0x1p-9 * std::sqrt(double(gpu->bf16_steps()));
    EXPECT_LE(err, tol);
    EXPECT_GT(err, 0.0);
  }
}

// The checks of tests/cpu/test_onnx_backend.cpp on the CUDA backend: every GEMM/convolution
// operand and the adapter's arena pointers lie in the backend's allocations, all returned at the
// end; a refused allocation is ALMC_ERR_OUT_OF_MEMORY; a failing operator keeps its status
// through almc_score_evaluate.
TEST(OnnxGpu, AllocatesOnlyThroughItsBackend) {
  Gpu g;
  if (!g.be) GTEST_SKIP() << g.why;
  almc_test::CountingBackend be(std::move(g.be));
  for (const char* name : {"mlp_embed", "unet", "misc_ops"}) {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    auto ref = read_npy(data_dir() + name + "_out.npy");
    const int64_t n = x.shape[0];
    {
      auto ex = load(name, ExecConfig{}, be);
      Dev dx(be, x.v.size()), dl(be, lv.v.size()), dy(be, ref.v.size());
      dx.put(x.v);
      dl.put(lv.v);
      ex->run_raw_levels(dx.p, dy.p, n, dl.p);
      EXPECT_LE(rel_err(dy.get(ref.v.size()), ref.v), 1e-4);
      EXPECT_GT(be.checked_operands.load(), size_t(0));
      EXPECT_EQ(be.foreign_operands.load(), size_t(0)) << "of " << be.checked_operands.load() << " operands";
      EXPECT_GE(be.live_bytes(), (x.v.size() + lv.v.size() + ref.v.size()) * 4 + size_t(ex->arena_bytes(n) + ex->const_bytes(n)));
    }
    EXPECT_EQ(be.live_blocks(), size_t(0));
  }
  be.budget = 4096;
  try {
    load("mlp_embed", ExecConfig{}, be);
    ADD_FAILURE() << "the executor was made beyond the backend's budget";
  } catch (const almc::Error& e) {
    EXPECT_EQ(e.status(), ALMC_ERR_OUT_OF_MEMORY) << e.what();
  }
}

TEST(OnnxGpu, ErrorsCarryTheEngineStatus) {
  GpuCtx g;
  if (!g.ctx) GTEST_SKIP() << g.why;
  auto* be = new almc_test::CountingBackend(std::move(g.ctx->backend));
  g.ctx->backend.reset(be);
  almc_onnx_config oc = almc_onnx_config_default();
  oc.convention = ALMC_CONV_VE;
  oc.output = ALMC_OUTPUT_DENOISER;
  oc.level = ALMC_LEVEL_SIGMA;
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_onnx(g.ctx, (data_dir() + "gauss_ve_denoiser.onnx").c_str(), &oc, &s), ALMC_OK)
      << almc_context_last_error(g.ctx);
  std::vector<float> x(12, 0.5f), out(12);
  ASSERT_EQ(almc_score_evaluate(s, x.data(), out.data(), 2, 0.5), ALMC_OK) << almc_score_last_error(s);
  be->fail_steps = ALMC_ERR_CUDA;
  EXPECT_EQ(almc_score_evaluate(s, x.data(), out.data(), 2, 0.5), ALMC_ERR_CUDA) << almc_score_last_error(s);
  almc_score_destroy(s);
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
  Gpu g;
  if (!g.be) GTEST_SKIP() << g.why;
  almc::Backend& be = *g.be;
  ExecConfig cfg;
  cfg.convention = ALMC_CONV_VE;
  cfg.output = ALMC_OUTPUT_SCORE;
  cfg.level = ALMC_LEVEL_LOG_SIGMA;
  cfg.max_batch = 16;
  auto ex = load("unet", cfg, be);
  const int64_t n = 16, d = 256;
  std::vector<float> x(static_cast<size_t>(n * d));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.11 * double(i)));
  Dev dx(be, x.size()), dy(be, x.size()), dz(be, x.size()), dlev(be, 4);
  dx.put(x);
  auto level_at = [](double t) {
    const double s2 = std::expm1(2 * t);
    return std::vector<float>{float(t), float(std::sqrt(s2)), float(std::exp(-2 * t)), float(0.5 * std::log(s2))};
  };
  auto* ld = reinterpret_cast<const almc_level_device*>(dlev.p);
  dlev.put(level_at(0.3));
  be.capture_begin();
  ex->run_score(dx.p, dy.p, n, ld);
  almc::GraphHandle* graph = be.capture_end();
  dlev.put(level_at(1.1));  // a new level, same graph
  be.graph_launch(graph);
  be.sync();
  ex->run_score(dx.p, dz.p, n, ld);  // eager at the same level
  be.sync();
  auto a = dy.get(x.size()), b = dz.get(x.size());
  EXPECT_LE(rel_err(a, b), 1e-6);
  be.graph_destroy(graph);
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
