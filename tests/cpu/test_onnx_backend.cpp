// The ONNX executor on almc::Backend: everything it allocates comes from the backend it runs on,
// its operators are the backend's (the batch-launch run loop of CUDA, exercised here on the CPU's
// operators), a capture allocates nothing, and its failures reach the caller with the engine's
// status codes, through the C API too.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include "host/core/objects.hpp"
#include "host/onnx/executor.hpp"
#include "tests/common/counting_backend.hpp"
#include "tests/cpu/test_onnx_util.hpp"

using almc::onnx::ExecConfig;
using almc::onnx::Executor;
using almc_test::CountingBackend;
using onnx_test::data_dir;
using onnx_test::read_npy;
using onnx_test::rel_err;

namespace {

std::unique_ptr<CountingBackend> counting_cpu() {
  return std::make_unique<CountingBackend>(almc::make_cpu_backend(0));
}

almc::onnx::Graph graph(const std::string& name) { return almc::onnx::load_graph(data_dir() + name + ".onnx"); }

}  // namespace

// Every operand the operators see (arena, constants, im2col workspace) lies in an allocation of
// the executor's backend, those allocations hold at least what the planner asked for, and all of
// them are returned when the executor goes. Both run loops: host blocks on 2 threads, and batch
// launches (one plan per batch size, CUDA's loop) on the CPU's operators, which must also match
// torch like the fixture tests (max|almc - torch| <= 1e-4 max(1, max|torch|)).
TEST(OnnxBackend, AllocatesOnlyThroughItsBackend) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  for (bool batch : {false, true}) {
    for (const char* name : {"mlp_embed", "unet", "misc_ops"}) {
      SCOPED_TRACE(std::string(name) + (batch ? ", batch launches" : ", host blocks"));
      auto be = counting_cpu();
      be->batch_launches = batch;
      auto x = read_npy(data_dir() + name + "_x.npy");
      auto lv = read_npy(data_dir() + name + "_level.npy");
      auto ref = read_npy(data_dir() + name + "_out.npy");
      const int64_t n = x.shape[0];
      {
        Executor ex(graph(name), ExecConfig{}, *be);
        const int64_t planned = batch ? n : ex.cpu_block();
        almc::Buffer dx(be.get(), x.v.size() * 4), dl(be.get(), lv.v.size() * 4), dy(be.get(), ref.v.size() * 4);
        dx.upload(x.v.data(), x.v.size() * 4);
        dl.upload(lv.v.data(), lv.v.size() * 4);
        ex.run_raw_levels(dx.f(), dy.f(), n, dl.f());
        std::vector<float> out(ref.v.size());
        dy.download(out.data(), out.size() * 4);
        EXPECT_LE(rel_err(out, ref.v), 1e-4);
        EXPECT_GT(be->checked_operands.load(), size_t(0));
        EXPECT_EQ(be->foreign_operands.load(), size_t(0)) << "of " << be->checked_operands.load() << " operands";
        const size_t io = dx.bytes() + dl.bytes() + dy.bytes();
        EXPECT_GE(be->live_bytes(), io + size_t(ex.arena_bytes(planned) + ex.const_bytes(planned)));
      }
      EXPECT_EQ(be->live_blocks(), size_t(0));
      EXPECT_EQ(be->live_bytes(), size_t(0));
    }
  }
  omp_set_num_threads(saved);
}

// Host blocks run plans of several sizes (a block and the power-of-two pieces of a short one) on
// several threads: all of them read one copy of the network's constants (each size's plan held
// its own before, 16 MiB each for one 2048-wide Linear layer), and the results still match torch.
TEST(OnnxBackend, PlansOfEverySizeShareOneCopyOfTheConstants) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  for (const char* name : {"mlp_embed", "resmlp", "unet", "norm_act"}) {
    SCOPED_TRACE(name);
    auto be = counting_cpu();
    Executor ex(graph(name), ExecConfig{}, *be);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    auto ref = read_npy(data_dir() + name + "_out.npy");
    const int64_t d = int64_t(x.v.size()) / x.shape[0], n = x.shape[0], big = 127;  // 64 + 32 + ... + 1
    std::vector<float> xs(size_t(big * d)), ls(static_cast<size_t>(big)), out(xs.size());
    for (int64_t i = 0; i < big; ++i) {
      std::memcpy(xs.data() + i * d, x.v.data() + (i % n) * d, size_t(d) * 4);
      ls[size_t(i)] = lv.v[size_t(i % n)];
    }
    ex.run_raw_levels(xs.data(), out.data(), big, ls.data());
    EXPECT_EQ(ex.const_copies(), 1u);
    std::vector<float> first(out.begin(), out.begin() + n * d);
    EXPECT_LE(rel_err(first, ref.v), 1e-4);
    for (int64_t i = n; i < big; ++i)  // a repeated sample is the same bits in any piece
      EXPECT_EQ(std::memcmp(out.data() + i * d, out.data() + (i % n) * d, size_t(d) * 4), 0) << "sample " << i;
  }
  omp_set_num_threads(saved);
}

// Batch launches (CUDA's path, run here on the CPU) plan each batch size once; the sizes share one
// copy of the constants in backend memory (each held its own: a run at another chain count
// doubled the model's weights on the device), and every size still matches torch.
TEST(OnnxBackend, BatchSizesShareOneCopyOfTheConstants) {
  for (const char* name : {"mlp_embed", "unet"}) {
    SCOPED_TRACE(name);
    auto be = counting_cpu();
    be->batch_launches = true;
    Executor ex(graph(name), ExecConfig{}, *be);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    auto ref = read_npy(data_dir() + name + "_out.npy");
    const int64_t n = x.shape[0], d = int64_t(x.v.size()) / n;
    for (int64_t k = n; k >= 1; k -= 2) {  // batches n, n - 2, ...: a plan each
      std::vector<float> out(size_t(k * d));
      ex.run_raw_levels(x.v.data(), out.data(), k, lv.v.data());
      EXPECT_LE(rel_err(out, std::vector<float>(ref.v.begin(), ref.v.begin() + k * d)), 1e-4) << "batch " << k;
    }
    EXPECT_EQ(ex.const_copies(), 1u);
  }
}

// During a capture (pretended here on the CPU's batch launches) a call allocates nothing: a batch
// up to the planned size runs the larger plan with padding rows, a larger one is refused with
// ALMC_ERR_WRONG_STATE before anything runs.
TEST(OnnxBackend, CaptureAllocatesNothing) {
  auto be = counting_cpu();
  be->batch_launches = true;
  ExecConfig cfg;
  cfg.max_batch = 8;
  Executor ex(graph("mlp_embed"), cfg, *be);
  const int64_t d = ex.d(), n = 5;
  std::vector<float> x(static_cast<size_t>(n * d)), eager(x.size()), captured(x.size(), NAN);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.3 * double(i)));
  ex.run_raw(x.data(), eager.data(), n, 0.7f);  // plans (and allocates) batch 5
  const size_t before = be->allocations();
  be->pretend_capturing = true;
  ex.run_raw(x.data(), captured.data(), 3, 0.7f);  // unplanned 3: runs the plan of 5 or 8
  EXPECT_EQ(be->allocations(), before);
  EXPECT_LE(rel_err(std::vector<float>(captured.begin(), captured.begin() + 3 * d),
                    std::vector<float>(eager.begin(), eager.begin() + 3 * d)),
            1e-6);
  try {
    std::vector<float> big(size_t(9 * d)), out(big.size());
    ex.run_raw(big.data(), out.data(), 9, 0.7f);
    ADD_FAILURE() << "batch 9 during a capture ran";
  } catch (const almc::Error& e) {
    EXPECT_EQ(e.status(), ALMC_ERR_WRONG_STATE) << e.what();
  }
  EXPECT_EQ(be->allocations(), before);
}

// An executor failure is the engine's error with the backend's status: an allocation the backend
// refuses is ALMC_ERR_OUT_OF_MEMORY, and a failing operator (as a CUDA launch would fail) keeps
// its status through almc_score_evaluate and almc_sampler_run instead of becoming a generic
// callback failure.
TEST(OnnxBackend, ErrorsCarryTheEngineStatus) {
  {
    auto be = counting_cpu();
    be->budget = 4096;  // less than the network's constants
    try {
      Executor ex(graph("mlp_embed"), ExecConfig{}, *be);
      ADD_FAILURE() << "the executor was made beyond the backend's budget";
    } catch (const almc::Error& e) {
      EXPECT_EQ(e.status(), ALMC_ERR_OUT_OF_MEMORY) << e.what();
    }
    EXPECT_EQ(be->live_bytes(), size_t(0));  // nothing kept from the failed construction
  }
  for (almc_status injected : {ALMC_ERR_CUDA, ALMC_ERR_OUT_OF_MEMORY}) {
    SCOPED_TRACE(almc_status_string(injected));
    almc_context_config cc = almc_context_config_default();
    cc.backend = ALMC_BACKEND_CPU;
    almc_context_t ctx = nullptr;
    ASSERT_EQ(almc_context_create(&cc, &ctx), ALMC_OK);
    auto* be = new CountingBackend(std::move(ctx->backend));
    ctx->backend.reset(be);
    almc_onnx_config oc = almc_onnx_config_default();
    oc.convention = ALMC_CONV_VE;
    oc.output = ALMC_OUTPUT_DENOISER;
    oc.level = ALMC_LEVEL_SIGMA;
    almc_score_t s = nullptr;
    ASSERT_EQ(almc_score_create_onnx(ctx, (data_dir() + "gauss_ve_denoiser.onnx").c_str(), &oc, &s), ALMC_OK)
        << almc_context_last_error(ctx);
    std::vector<float> x(12, 0.5f), out(12);
    ASSERT_EQ(almc_score_evaluate(s, x.data(), out.data(), 2, 0.5), ALMC_OK) << almc_score_last_error(s);
    almc_sampler_config sc = almc_sampler_config_default();
    sc.chains_per_meas = 4;
    sc.seed = 3;
    almc_sampler_t sm = nullptr;
    ASSERT_EQ(almc_sampler_create(ctx, s, nullptr, &sc, &sm), ALMC_OK) << almc_context_last_error(ctx);
    be->fail_steps = injected;
    EXPECT_EQ(almc_score_evaluate(s, x.data(), out.data(), 2, 0.5), injected);
    EXPECT_NE(std::string(almc_score_last_error(s)).find("test backend: step"), std::string::npos)
        << almc_score_last_error(s);
    EXPECT_EQ(almc_sampler_run(sm), injected) << almc_sampler_last_error(sm);
    almc_sampler_destroy(sm);
    almc_score_destroy(s);
    almc_context_destroy(ctx);
  }
}
