// The built-in ONNX executor on the CPU backend: fixtures against torch, batch invariance, the
// score adapter against ALGORITHMS.md Sec. 2, refusals of malformed and unsupported models.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <cstring>
#include <thread>
#include <tuple>

#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <functional>

#include <almc/almc.h>

#include "host/onnx/convt_phases.hpp"
#include "host/onnx/cpu_gemm.hpp"
#include "host/onnx/executor.hpp"
#include "host/onnx/op_table.hpp"
#include "tests/common/onnx_graph.hpp"
#include "tests/cpu/test_onnx_util.hpp"

using almc::onnx::Error;
using almc::onnx::ExecConfig;
using almc::onnx::Executor;
using onnx_test::data_dir;
using onnx_test::read_npy;
using onnx_test::rel_err;

namespace {

// The CPU backend the executors of these tests run on.
almc::Backend& cpu() {
  static const std::unique_ptr<almc::Backend> be = almc::make_cpu_backend(0);
  return *be;
}

std::unique_ptr<Executor> load(const std::string& name, ExecConfig cfg = {}) {
  return std::make_unique<Executor>(almc::onnx::load_graph(data_dir() + name + ".onnx"), cfg, cpu());
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The status and message of loading a model from bytes (or "" when it loads).
std::pair<almc_status, std::string> refusal(const std::string& bytes) {
  try {
    ExecConfig cfg;
    cfg.level = ALMC_LEVEL_NONE;  // the hand-made models take x only
    Executor ex(almc::onnx::load_graph_from_bytes(bytes, "model"), cfg, cpu());
    return {ALMC_OK, ""};
  } catch (const Error& e) {
    return {e.status(), e.what()};
  }
}

}  // namespace

// Tolerance: max|almc - torch| <= 1e-4 * max(1, max|torch|) over the whole output.
TEST(Onnx, FixturesMatchTorch) {
  for (const char* name : onnx_test::kFixtures) {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    auto ref = read_npy(data_dir() + name + "_out.npy");
    const int64_t n = x.shape[0];
    auto ex = load(name);
    std::vector<float> out(ref.v.size(), NAN);
    ex->run_raw_levels(x.v.data(), out.data(), n, lv.v.data());
    EXPECT_LE(rel_err(out, ref.v), 1e-4) << name;
  }
}

TEST(Onnx, BatchInvariantAndReplans) {
  for (const char* name : {"mlp_embed", "unet", "misc_ops"}) {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    auto ref = read_npy(data_dir() + name + "_out.npy");
    const int64_t n = x.shape[0], d = int64_t(x.v.size()) / n;
    auto ex = load(name);
    for (int64_t i = 0; i < n; ++i) {  // batch 1, one plan reused with different data
      std::vector<float> out(static_cast<size_t>(d));
      ex->run_raw(x.v.data() + i * d, out.data(), 1, lv.v[size_t(i)]);
      std::vector<float> want(ref.v.begin() + i * d, ref.v.begin() + (i + 1) * d);
      EXPECT_LE(rel_err(out, want), 1e-4) << "sample " << i;
    }
  }
}

TEST(Onnx, FusionShrinksThePlan) {
  auto ex = load("mlp_embed");
  // 3 Gemm (bias + SiLU fused), the embedding's Mul/Sin/Cos chains and the Concat copies.
  EXPECT_LE(ex->steps(4), 9u);
  auto ur = load("unet");
  EXPECT_GT(ur->arena_bytes(4), 0);
}

namespace {
// The normalisations of a fixture's plan at batch n: the activation each applies as it writes,
// and how many are still read by an elementwise program (the first later step with an operand at
// the output's offset is an Ew step) rather than by the op after the fused epilogue.
struct NormFusion {
  std::vector<int> acts;
  int read_by_ew = 0;
};
NormFusion norm_fusion(const std::string& name, const char* level, int64_t n) {
  almc::onnx::IoSpec io;
  io.x_input = "x";
  io.level_input = level;
  io.output = "out";
  const auto p = almc::onnx::build_plan(almc::onnx::load_graph(data_dir() + name + ".onnx"), io, n);
  NormFusion f;
  for (size_t k = 0; k < p.steps.size(); ++k) {
    const auto& s = p.steps[k];
    if (s.kind != almc::onnx::StepKind::Norm) continue;
    f.acts.push_back(s.norm.act);
    const int64_t out = s.refs[3].off;
    for (size_t q = k + 1; q < p.steps.size(); ++q) {
      bool touches = false;
      for (const auto& r : p.steps[q].refs) touches = touches || (r.space == almc::onnx::BufRef::Arena && r.off == out);
      if (!touches) continue;
      if (p.steps[q].kind == almc::onnx::StepKind::Ew) ++f.read_by_ew;
      break;
    }
  }
  return f;
}
}  // namespace

// fuse_norm_epilogues: torch's GroupNorm (Reshape, InstanceNormalization, Reshape, per-channel Mul
// and Add) followed by an activation, InstanceNorm / LayerNorm followed by one, and a LayerNorm
// composed with a per-channel map, each become one Norm step with the affine map and activation
// applied as it writes; programs that read another runtime tensor (norm_act's GELU, one op since
// gelu_match.cpp, shares its program with the Add after it) or whose normalisation is read twice
// stay separate (a LayerNorm + GELU: OnnxGelu.ALayerNormTakesItAsItsActivation). Accuracy: FixturesMatchTorch (the
// norm_act and unet fixtures) and the bitwise invariance test.
TEST(Onnx, NormEpiloguesFuseIntoTheNormalisation) {
  using almc::onnx::EW_COPY;
  for (int64_t n : {1, 4}) {
    const NormFusion u = norm_fusion("unet", "sigma", n);
    ASSERT_EQ(u.acts.size(), 12u);
    EXPECT_EQ(std::count(u.acts.begin(), u.acts.end(), int(almc::onnx::EW_SILU)), 11);  // all but the attention's
    EXPECT_EQ(u.read_by_ew, 0);  // the attention's GroupNorm took its affine map (no activation)
    const NormFusion m = norm_fusion("norm_act", "t", n);
    const std::vector<int> want = {almc::onnx::EW_SILU, almc::onnx::EW_RELU, almc::onnx::EW_LEAKY_RELU, almc::onnx::EW_TANH,
                                   almc::onnx::EW_ELU,  EW_COPY,              EW_COPY,                    EW_COPY};
    EXPECT_EQ(m.acts, want);
    EXPECT_EQ(m.read_by_ew, 2);  // relu(.) + x and GELU; the norm read twice is read first by its ReduceMean
  }
}

// Convolutions of one image run in bands of output rows (cpu_kernels.cpp: each band's working set
// within 128 KiB) over phase images (strides up to 8, any dilation; stride 1: the padded image),
// the GEMM's columns either output rows as segments (OW whole vectors) or one wide span, else by
// im2col: on 8 x 70 x W images, strides 1-3 and 9, dilations 1-2, 3x3, 1x1 (strided), 2x3 and 3x1
// kernels, against a direct double sum. Tolerance: 1e-5 of the sum of |terms| (at most 72 float multiply-adds per output).
TEST(Onnx, CpuConvolutionBandsMatchADirectSum) {
  using namespace almc::onnx;
  struct Case {
    int64_t stride, dil, KH, KW, pad, W, chunk = 1;
  };
  for (const Case& k : std::vector<Case>{{1, 1, 3, 3, 1, 66},
                                         {1, 1, 3, 3, 1, 64},
                                         {2, 1, 3, 3, 1, 66},
                                         {2, 1, 3, 3, 1, 32},
                                         {3, 1, 3, 3, 1, 50},
                                         {1, 2, 3, 3, 2, 40},
                                         {2, 2, 3, 3, 1, 47},
                                         {2, 1, 1, 1, 0, 66},
                                         {1, 1, 2, 3, 0, 33},
                                         {2, 1, 3, 1, 1, 48},
                                         {9, 1, 3, 3, 1, 66},  // beyond the phase images' strides: im2col
                                         {9, 1, 3, 3, 1, 66, 2}}) {  // ... of two images at once
    SCOPED_TRACE("stride " + std::to_string(k.stride) + " dilation " + std::to_string(k.dil) + " kernel " + std::to_string(k.KH) +
                 "x" + std::to_string(k.KW) + " W " + std::to_string(k.W));
    ConvParams c{};
    c.N = 2, c.C = 8, c.H = 70, c.W = k.W, c.M = 6, c.KH = k.KH, c.KW = k.KW, c.group = 1;
    c.sh = c.sw = k.stride, c.ph = c.pw = k.pad, c.dh = c.dw = k.dil;
    c.OH = (c.H + 2 * k.pad - k.dil * (k.KH - 1) - 1) / k.stride + 1;
    c.OW = (c.W + 2 * k.pad - k.dil * (k.KW - 1) - 1) / k.stride + 1;
    const int64_t KK = k.KH * k.KW, K = c.C * KK, OHW = c.OH * c.OW;
    c.chunk = k.chunk;
    c.col_elems = k.chunk * (K * OHW + c.M * OHW);  // what the planner gives `chunk` images
    c.act = EW_RELU;
    uint32_t state = 12345;
    auto rnd = [&]() { return float((state = state * 1664525u + 1013904223u) >> 8) / float(1 << 24) - 0.5f; };
    std::vector<float> x(size_t(c.N * c.C * c.H * c.W)), w(size_t(c.M * K)), bias(size_t(c.M)), col(size_t(c.col_elems));
    for (auto* v : {&x, &w, &bias})
      for (auto& e : *v) e = rnd();
    std::vector<float> y(size_t(c.N * c.M * OHW), NAN);
    c.x = x.data(), c.w = w.data(), c.bias = bias.data(), c.y = y.data(), c.col = col.data();
    Step st;
    st.kind = StepKind::Conv;
    st.conv = c;
    cpu_run_step(st);
    double worst = 0;
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t m = 0; m < c.M; ++m)
        for (int64_t oh = 0; oh < c.OH; ++oh)
          for (int64_t ow = 0; ow < c.OW; ++ow) {
            double sum = bias[size_t(m)], mag = std::abs(sum);
            for (int64_t ch = 0; ch < c.C; ++ch)
              for (int64_t kh = 0; kh < k.KH; ++kh)
                for (int64_t kw = 0; kw < k.KW; ++kw) {
                  const int64_t ih = oh * k.stride - k.pad + kh * k.dil, iw = ow * k.stride - k.pad + kw * k.dil;
                  if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                  const double t = double(w[size_t((m * c.C + ch) * KK + kh * k.KW + kw)]) *
                                   double(x[size_t(((n * c.C + ch) * c.H + ih) * c.W + iw)]);
                  sum += t;
                  mag += std::abs(t);
                }
            const double got = y[size_t((n * c.M + m) * OHW + oh * c.OW + ow)];
            const double err = std::abs(got - std::max(sum, 0.0)) / (1e-30 + mag);
            worst = std::isnan(err) ? INFINITY : std::max(worst, err);  // an output never written stays NaN
          }
    EXPECT_LE(worst, 1e-5);
  }
}

// ConvTranspose on the CPU (cpu_kernels.cpp): by stride phases (convt_phases.hpp) when the plan
// packed the phases' weights (cpu_pack_weights: fp32, a constant weight), else by the column
// matrix and col2im's gather; both against a direct double sum over every (c, kh, kw), for
// strides 1-3 (also unequal), pads, output padding, dilation 1-2, groups 1-2, a 1x1 stride-2
// kernel (phases no tap reaches: the bias alone), 1-D, phase widths that are whole vectors (GEMM
// segments) or not (the wide span), phase rows in several GEMMs (a workspace for 3 rows), one or
// two images per chunk. Tolerance: 1e-5 of the sum of |terms|.
TEST(Onnx, CpuConvTransposeMatchesADirectSum) {
  using namespace almc::onnx;
  struct Case {
    int64_t C, M, group, H, W, KH, KW, sh, sw, pt, pl, pb, pr, oph, opw, dh, dw, chunk, rows_cap;
  };
  const std::vector<Case> cases = {
      // C  M  g  H   W  KH KW sh sw pt pl pb pr op op dh dw ch cap
      {6, 4, 1, 8, 8, 4, 4, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0},     // 8x8 -> 16x16 (phase width 8)
      {6, 4, 1, 8, 8, 4, 4, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 2, 0},     // two images per chunk
      {6, 4, 1, 8, 8, 4, 4, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, 3},     // 3 phase rows per GEMM
      {5, 3, 1, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0},     // output padding, odd sizes
      {4, 6, 2, 6, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0},     // groups
      {4, 3, 1, 5, 6, 3, 3, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0},     // stride 1, no padding
      {4, 3, 1, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0},     // stride 1, padded
      {3, 5, 1, 6, 5, 3, 3, 3, 3, 1, 0, 2, 1, 2, 1, 1, 1, 1, 0},     // stride 3, uneven pads
      {3, 4, 1, 6, 7, 3, 2, 2, 3, 0, 1, 1, 0, 1, 2, 2, 1, 1, 0},     // unequal strides, dilation
      {4, 4, 1, 5, 5, 3, 3, 2, 2, 2, 2, 2, 2, 0, 0, 2, 2, 1, 0},     // dilation 2 both ways
      {4, 3, 1, 6, 6, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0},     // 1x1 stride 2: empty phases
      {4, 3, 1, 6, 6, 2, 2, 3, 3, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0},     // kernel < stride
      {6, 4, 1, 1, 16, 1, 4, 1, 2, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0},    // 1-D: 16 -> 32
      {8, 8, 1, 20, 20, 4, 4, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, 4},   // phase width 20, 4 rows
      {3, 2, 1, 4, 4, 5, 5, 2, 2, 4, 4, 4, 4, 1, 1, 1, 1, 1, 0},     // pads as large as the kernel
  };
  for (const Case& k : cases)
    for (bool phases : {true, false}) {
      const std::string what = "C " + std::to_string(k.C) + " M " + std::to_string(k.M) + " g " + std::to_string(k.group) +
                               " " + std::to_string(k.H) + "x" + std::to_string(k.W) + " k " + std::to_string(k.KH) + "x" +
                               std::to_string(k.KW) + " s " + std::to_string(k.sh) + "," + std::to_string(k.sw) + " d " +
                               std::to_string(k.dh) + "," + std::to_string(k.dw) + " chunk " + std::to_string(k.chunk) +
                               " cap " + std::to_string(k.rows_cap) + (phases ? " phases" : " columns");
      SCOPED_TRACE(what);
      ConvParams c{};
      c.N = 3, c.C = k.C, c.H = k.H, c.W = k.W, c.M = k.M, c.KH = k.KH, c.KW = k.KW, c.group = k.group;
      c.sh = k.sh, c.sw = k.sw, c.ph = k.pt, c.pw = k.pl, c.dh = k.dh, c.dw = k.dw;
      c.OH = c.sh * (c.H - 1) + k.oph + (c.KH - 1) * c.dh + 1 - k.pt - k.pb;
      c.OW = c.sw * (c.W - 1) + k.opw + (c.KW - 1) * c.dw + 1 - k.pl - k.pr;
      ASSERT_GT(c.OH, 0);
      ASSERT_GT(c.OW, 0);
      const int64_t G = c.group, Cg = c.C / G, Mg = c.M / G, KK = c.KH * c.KW, OHW = c.OH * c.OW;
      c.chunk = k.chunk;
      const ConvTPhases ph(c);
      // What the planner gives (lower_gemm_conv.cpp), or room for rows_cap phase rows.
      c.col_elems = std::max(k.chunk * (Cg * c.H * c.W + Mg * KK * c.H * c.W), ph.floats(c, 1));
      if (k.rows_cap && phases) c.col_elems = ph.floats(c, k.rows_cap);
      c.act = EW_RELU;
      uint32_t state = 4242u;
      auto rnd = [&]() { return float((state = state * 1664525u + 1013904223u) >> 8) / float(1 << 24) - 0.5f; };
      std::vector<float> x(size_t(c.N * c.C * c.H * c.W)), w(size_t(c.C * Mg * KK)), bias(size_t(c.M)), col(size_t(c.col_elems));
      for (auto* v : {&x, &w, &bias})
        for (auto& e : *v) e = rnd();
      std::vector<float> y(size_t(c.N * c.M * OHW), NAN);
      Plan plan;
      plan.consts.assign(w.begin(), w.end());
      Step st;
      st.kind = StepKind::ConvT;
      st.conv = c;
      st.refs = {BufRef{}, BufRef{BufRef::Const, -1, 0}};
      if (phases) {
        plan.steps = {st};
        cpu_pack_weights(plan);
        st = plan.steps[0];
        ASSERT_GE(st.bp_off, int64_t(w.size()));
        st.bp = plan.consts.data() + st.bp_off;
        std::fill(plan.consts.begin(), plan.consts.begin() + int64_t(w.size()), NAN);  // read only as packed
      }
      st.conv.x = x.data(), st.conv.w = plan.consts.data(), st.conv.bias = bias.data(), st.conv.y = y.data();
      st.conv.col = col.data();
      cpu_run_step(st);
      double worst = 0;
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t mo = 0; mo < c.M; ++mo)
          for (int64_t oh = 0; oh < c.OH; ++oh)
            for (int64_t ow = 0; ow < c.OW; ++ow) {
              const int64_t g = mo / Mg, m = mo % Mg;
              double sum = bias[size_t(mo)], mag = std::abs(sum);
              for (int64_t ci = g * Cg; ci < (g + 1) * Cg; ++ci)
                for (int64_t kh = 0; kh < c.KH; ++kh)
                  for (int64_t kw = 0; kw < c.KW; ++kw) {
                    // oh = ih*sh - ph + kh*dh, ow likewise
                    const int64_t th = oh + c.ph - kh * c.dh, tw = ow + c.pw - kw * c.dw;
                    if (th < 0 || tw < 0 || th % c.sh || tw % c.sw || th / c.sh >= c.H || tw / c.sw >= c.W) continue;
                    const int64_t ih = th / c.sh, iw = tw / c.sw;
                    const double t = double(w[size_t(((ci * Mg + m) * c.KH + kh) * c.KW + kw)]) *
                                     double(x[size_t(((n * c.C + ci) * c.H + ih) * c.W + iw)]);
                    sum += t;
                    mag += std::abs(t);
                  }
              const double got = y[size_t((n * c.M + mo) * OHW + oh * c.OW + ow)];
              const double err = std::abs(got - std::max(sum, 0.0)) / (1e-30 + mag);
              worst = std::isnan(err) ? INFINITY : std::max(worst, err);  // an output never written stays NaN
            }
      EXPECT_LE(worst, 1e-5);
    }
}

// A Gemm step whose B rows are 4 KiB or more apart (a wide Linear layer) runs in parts along k,
// reading B as panels (cpu_kernels.cpp, gemm_packed_b): copied as it runs (16 rows or more) or
// packed once in the plan (cpu_pack_weights, any rows: in place of B unless another step reads
// B). Both give the bits of the kernel on B in place, for 1..40 rows, column counts that leave a partial last panel, a row bias and ReLU.
TEST(Onnx, CpuGemmOfAWideBIsTheKernelsBits) {
  using namespace almc::onnx;
  for (int64_t M : {1, 5, 16, 23, 40})
    for (int64_t N : {1024, 1100}) {
      const int64_t K = 300;  // two parts along k (cpu_kernels.cpp: kKc = 256)
      uint32_t state = 777u + uint32_t(M * N);
      auto rnd = [&]() { return float((state = state * 1664525u + 1013904223u) >> 8) / float(1 << 24) - 0.5f; };
      std::vector<float> A(size_t(M * K)), B(size_t(K * N)), bias(static_cast<size_t>(N)), got(size_t(M * N), NAN);
      std::vector<float> want(got.size(), NAN);
      for (auto* v : {&A, &B, &bias})
        for (auto& e : *v) e = rnd();
      Step st;
      st.kind = StepKind::Gemm;
      GemmParams& p = st.gemm;
      p = GemmParams{};
      p.M = M, p.N = N, p.K = K, p.alpha = 1.25f, p.beta = 0.5f;
      p.A = A.data(), p.B = B.data(), p.C = got.data(), p.lda = K, p.ldb = N, p.ldc = N;
      p.batch = 1, p.batch_ndim = 0;
      p.bias_kind = BIAS_ROW, p.bias = bias.data();
      p.act = EW_RELU;
      cpu_run_step(st);
      // The same step in a plan whose constant buffer holds B, packed once: in place when only
      // such steps read B (two here, packed once for both), appended when another step reads
      // it too (B then unchanged for that reader).
      Step packed = st;
      packed.refs = {BufRef{}, BufRef{BufRef::Const, -1, 0}};
      Plan plan;
      plan.consts.assign(B.begin(), B.end());
      plan.steps = {packed, packed};
      cpu_pack_weights(plan);
      EXPECT_EQ(plan.steps[0].bp_off, 0);
      EXPECT_EQ(plan.steps[1].bp_off, 0);
      EXPECT_EQ(plan.consts.size(), B.size()) << "packed in place";
      for (int64_t at : {int64_t(0), int64_t(7)}) {  // another step reads B, or a part of it
        Plan shared;
        shared.consts.assign(B.begin(), B.end());
        Step reader;
        reader.kind = StepKind::Copy;
        reader.refs = {BufRef{BufRef::Const, -1, at}, BufRef{}};
        shared.steps = {packed, reader};
        cpu_pack_weights(shared);
        ASSERT_GE(shared.steps[0].bp_off, int64_t(B.size()));
        EXPECT_EQ(std::memcmp(shared.consts.data(), B.data(), B.size() * sizeof(float)), 0) << "B itself kept";
        EXPECT_EQ(std::memcmp(shared.consts.data() + shared.steps[0].bp_off, plan.consts.data(), B.size() * sizeof(float)), 0)
            << "the same panels";
      }
      std::vector<float> got_packed(got.size(), NAN);
      packed = plan.steps[1];
      packed.gemm.B = plan.consts.data();
      packed.bp = plan.consts.data() + packed.bp_off;
      packed.gemm.C = got_packed.data();
      cpu_run_step(packed);
      GemmView g;
      g.M = M, g.N = N, g.K = K;
      g.A = A.data(), g.a_rs = K, g.a_ks = 1;
      g.B = B.data(), g.ldb = N;
      g.C = want.data(), g.ldc = N;
      g.alpha = 1.25f, g.beta = 0.5f;
      g.bias = bias.data(), g.bias_rs = 0, g.bias_cs = 1;
      gemm_all(g);
      for (float& v : want) v = v > 0.f ? v : 0.f;  // ReLU (max(x, 0) for these finite values)
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << M << " x " << N;
      EXPECT_EQ(std::memcmp(got_packed.data(), want.data(), got.size() * sizeof(float)), 0) << M << " x " << N << " packed";
    }
}

// Strided copies that transpose go by tiles (cpu_kernels.cpp): the last two dims of [3, 70, 130]
// swapped (several tiles along both, partial ones at the edges), in float and in double (constant
// folding), against the element-by-element definition. Exact.
TEST(Onnx, CpuTransposeCopiesByTiles) {
  using namespace almc::onnx;
  const int64_t B = 3, R = 70, C = 130;
  CopyParams p{};
  p.ndim = 3;
  const int64_t shape[3] = {B, C, R}, in_st[3] = {R * C, 1, C}, out_st[3] = {C * R, R, 1};
  for (int d = 0; d < 3; ++d) p.shape[d] = shape[d], p.in_stride[d] = in_st[d], p.out_stride[d] = out_st[d];
  p.total = B * R * C;
  std::vector<float> in(size_t(p.total)), out(size_t(p.total), NAN);
  std::vector<double> ind(size_t(p.total)), outd(size_t(p.total), NAN);
  for (size_t i = 0; i < in.size(); ++i) in[i] = float(i), ind[i] = double(i) + 0.5;
  cpu_copy<float>(p, in.data(), out.data());
  cpu_copy<double>(p, ind.data(), outd.data());
  int64_t bad = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < R; ++r) {
        const size_t o = size_t((b * C + c) * R + r), i = size_t((b * R + r) * C + c);
        bad += !(out[o] == in[i]) + !(outd[o] == ind[i]);
      }
  EXPECT_EQ(bad, 0);
}

// Adapter: score = c1 net(cx x, level) + c2 x, checked against the formulas of ALGORITHMS.md Sec. 2
// on the Gaussian denoiser fixture (its raw output is known in closed form).
TEST(Onnx, AdapterConversions) {
  const double s0 = 0.7, t = 0.37;
  const double ab = std::exp(-2 * t), sig2 = std::expm1(2 * t), sig = std::sqrt(sig2);
  almc_level_device ld{float(t), float(sig), float(ab), float(std::log(sig))};
  std::vector<float> x = {0.3f, -1.2f, 2.0f, 0.1f, -0.4f, 0.9f, 1.5f, -2.2f, 0.0f, 0.6f, 0.25f, -0.75f};
  const int64_t n = 2;
  // The fixture's raw network: D(z, sigma_in) = s0^2 / (s0^2 + sigma_in^2) z.
  auto raw = [&](double z, double level_in) { return s0 * s0 / (s0 * s0 + level_in * level_in) * z; };
  for (int conv = 0; conv <= 2; ++conv)
    for (int outk = 0; outk <= 3; ++outk)
      for (int lk : {0, 1, 2}) {
        SCOPED_TRACE("conv " + std::to_string(conv) + " out " + std::to_string(outk) + " level " + std::to_string(lk));
        ExecConfig cfg;
        cfg.convention = conv;
        cfg.output = outk;
        cfg.level = lk;
        auto ex = load("gauss_ve_denoiser", cfg);
        std::vector<float> s(x.size());
        ex->run_score(x.data(), s.data(), n, &ld);
        const double lvl = lk == 0 ? t : lk == 1 ? sig : std::log(sig);
        for (size_t i = 0; i < x.size(); ++i) {
          double want;
          if (conv == 2) {
            const double xv = std::exp(t) * x[i], o = raw(xv, lvl);
            if (outk == 0) want = std::exp(t) * o;
            else if (outk == 1) want = std::exp(t) * (-o / sig);
            else want = std::exp(t) * (o - xv) / sig2;
          } else {
            const double o = raw(x[i], lvl);
            if (outk == 0) want = o;
            else if (outk == 1) want = -o / std::sqrt(1 - ab);
            else want = (std::sqrt(ab) * o - x[i]) / (1 - ab);
          }
          EXPECT_NEAR(s[i], want, 1e-5 * std::max(1.0, std::abs(want)));
        }
      }
}

// End to end against the exact OU score of N(0, s0^2 I): -x / (e^{-2t} s0^2 + 1 - e^{-2t}).
TEST(Onnx, GaussianNetworksGiveTheExactOUScore) {
  const double s0 = 0.7;
  std::vector<float> x = {0.3f, -1.2f, 2.0f, 0.1f, -0.4f, 0.9f};
  for (double t : {0.01, 0.3, 1.5}) {
    almc_level_device ld{float(t), float(std::sqrt(std::expm1(2 * t))), float(std::exp(-2 * t)),
                         float(0.5 * std::log(std::expm1(2 * t)))};
    const double var = std::exp(-2 * t) * s0 * s0 + 1 - std::exp(-2 * t);
    ExecConfig vp;
    vp.convention = ALMC_CONV_VP;
    vp.output = ALMC_OUTPUT_EPS;
    vp.level = ALMC_LEVEL_T;
    ExecConfig ve;
    ve.convention = ALMC_CONV_VE;
    ve.output = ALMC_OUTPUT_DENOISER;
    ve.level = ALMC_LEVEL_SIGMA;
    for (auto& [name, cfg] : std::vector<std::pair<std::string, ExecConfig>>{{"gauss_vp_eps", vp}, {"gauss_ve_denoiser", ve}}) {
      auto ex = load(name, cfg);
      std::vector<float> s(x.size());
      ex->run_score(x.data(), s.data(), 1, &ld);
      for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(s[i], -x[i] / var, 2e-5 * std::max(1.0, std::abs(x[i] / var))) << name << " t " << t;
    }
  }
}

TEST(Onnx, IndexLevelPicksTheNearestAlphaBar) {
  ExecConfig cfg;
  cfg.level = ALMC_LEVEL_INDEX;
  cfg.alpha_bar_table = {0.99f, 0.9f, 0.5f, 0.1f};
  auto ex = load("gauss_ve_denoiser", cfg);  // output = x * s0^2 / (s0^2 + k^2) with k the index
  const double t = 0.5 * -std::log(0.55);    // alpha_bar 0.55: nearest index 2
  almc_level_device ld{float(t), 0.f, 0.55f, 0.f};
  std::vector<float> x = {1, 1, 1, 1, 1, 1}, s(6);
  ex->run_score(x.data(), s.data(), 1, &ld);
  EXPECT_NEAR(s[0], 0.49 / (0.49 + 4.0), 1e-6);
}

TEST(Onnx, RefusesUnsupportedOpsNamingEveryOne) {
  auto r = refusal(read_bytes(data_dir() + "unsupported_ops.onnx"));
  EXPECT_EQ(r.first, ALMC_ERR_UNSUPPORTED);
  for (const char* w : {"Hardmax", "hardmax_node", "ThresholdedRelu", "thresholded_node"}) EXPECT_NE(r.second.find(w), std::string::npos) << r.second;
  EXPECT_EQ(r.second.find("relu0"), std::string::npos) << r.second;
}

// Opsets past the supported range and forms the executor does not implement are refused by name
// (tests/data/make_opset_models.py writes these models).
TEST(Onnx, RefusesNewerFormsItDoesNotImplement) {
  struct Case {
    const char* file;
    almc_status status;
    const char* needle;
  };
  for (const Case& c : {Case{"refuse_opset26", ALMC_ERR_UNSUPPORTED, "uses opset 26; the executor supports 7 to 25"},
                        Case{"refuse_antialias", ALMC_ERR_UNSUPPORTED, "antialiased linear downsampling"},
                        Case{"refuse_gelu_approx", ALMC_ERR_PARSE, "approximate 'fast'"},
                        Case{"refuse_attention_qk", ALMC_ERR_UNSUPPORTED, "the qk_matmul_output output is not supported"},
                        Case{"refuse_recursive_function", ALMC_ERR_PARSE, "function calls nested deeper than 16"},
                        Case{"refuse_gathernd_runtime", ALMC_ERR_UNSUPPORTED, "runtime indices"}}) {
    SCOPED_TRACE(c.file);
    auto r = refusal(read_bytes(data_dir() + c.file + ".onnx"));
    EXPECT_EQ(r.first, c.status) << r.second;
    EXPECT_NE(r.second.find(c.needle), std::string::npos) << r.second;
  }
}

// Weights in an external data file (tests/data/onnx/external/, written by make_opset_models.py
// from mlp_embed.onnx): the same outputs, bit for bit, as the model with its weights inside.
// A missing or short data file, a location outside the model's folder and a model given as bytes
// (no folder to look in) are refused with one message naming the problem.
TEST(Onnx, ExternalDataWeights) {
  const std::string ext_path = data_dir() + "external/mlp_embed_ext.onnx";
  auto x = read_npy(data_dir() + "mlp_embed_x.npy");
  auto lv = read_npy(data_dir() + "mlp_embed_level.npy");
  const int64_t n = x.shape[0];
  std::vector<float> inside(x.v.size()), outside(x.v.size(), NAN);
  load("mlp_embed")->run_raw_levels(x.v.data(), inside.data(), n, lv.v.data());
  Executor ext(almc::onnx::load_graph(ext_path), ExecConfig{}, cpu());
  ext.run_raw_levels(x.v.data(), outside.data(), n, lv.v.data());
  EXPECT_EQ(outside, inside);

  auto status_of = [](const std::function<void()>& f) -> std::pair<almc_status, std::string> {
    try {
      f();
      return {ALMC_OK, ""};
    } catch (const Error& e) {
      return {e.status(), e.what()};
    }
  };
  const std::string model = read_bytes(ext_path), data = read_bytes(ext_path + ".data");
  ASSERT_GT(data.size(), 1000u);
  char tmpl[] = "/tmp/almc_ext_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
  };
  write("m.onnx", model);  // no data file next to it
  auto r = status_of([&] { almc::onnx::load_graph(dir + "/m.onnx"); });
  EXPECT_EQ(r.first, ALMC_ERR_IO) << r.second;
  EXPECT_NE(r.second.find("mlp_embed_ext.onnx.data"), std::string::npos) << r.second;
  write("mlp_embed_ext.onnx.data", data.substr(0, data.size() / 2));  // short
  r = status_of([&] { almc::onnx::load_graph(dir + "/m.onnx"); });
  EXPECT_EQ(r.first, ALMC_ERR_PARSE) << r.second;
  EXPECT_NE(r.second.find("reach past its end"), std::string::npos) << r.second;
  ::onnx::ModelProto mp;
  ASSERT_TRUE(mp.ParseFromString(model));
  for (auto& kv : *mp.mutable_graph()->mutable_initializer(0)->mutable_external_data())
    if (kv.key() == "location") kv.set_value("../mlp_embed_ext.onnx.data");
  write("escape.onnx", mp.SerializeAsString());
  r = status_of([&] { almc::onnx::load_graph(dir + "/escape.onnx"); });
  EXPECT_EQ(r.first, ALMC_ERR_PARSE) << r.second;
  EXPECT_NE(r.second.find("not a relative path inside the model's folder"), std::string::npos) << r.second;
  r = status_of([&] { almc::onnx::load_graph_from_bytes(model, "model"); });
  EXPECT_EQ(r.first, ALMC_ERR_UNSUPPORTED) << r.second;
  EXPECT_NE(r.second.find("needs the model loaded from its file"), std::string::npos) << r.second;
  for (const char* f : {"m.onnx", "escape.onnx", "mlp_embed_ext.onnx.data"}) std::remove((dir + "/" + f).c_str());
  ::rmdir(dir.c_str());
}

// Xor (booleans: a != b) and EyeLike (ones on diagonal k of a matrix shaped like its input),
// in a hand-made model on x [n, 4]: out = Cast(Xor(x > 0, x < 0.5)) + x EyeLike(W, k), against
// values computed here: exact (0/1 and sums of one product by 1).
TEST(Onnx, XorAndEyeLikeMatchTheirDefinitions) {
  for (int k : {1, -2, 0}) {
    SCOPED_TRACE(k);
    ::onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(17);
    auto* g = m.mutable_graph();
    g->set_name("xor_eyelike");
    g->add_input()->set_name("x");
    g->add_output()->set_name("out");
    for (auto* v : {g->mutable_input(0), g->mutable_output(0)}) {
      auto* t = v->mutable_type()->mutable_tensor_type();
      t->set_elem_type(::onnx::TensorProto::FLOAT);
      t->mutable_shape()->add_dim()->set_dim_param("n");
      t->mutable_shape()->add_dim()->set_dim_value(4);
    }
    auto konst = [&](const char* name, std::vector<float> v, std::vector<int64_t> dims) {
      auto* t = g->add_initializer();
      t->set_name(name);
      t->set_data_type(::onnx::TensorProto::FLOAT);
      for (auto d : dims) t->add_dims(d);
      for (float f : v) t->add_float_data(f);
    };
    konst("zero", {0.f}, {});
    konst("half", {0.5f}, {});
    konst("W", std::vector<float>(16, 7.f), {4, 4});  // values unread: only the shape
    auto node = [&](const char* op, std::vector<std::string> in, const char* out) {
      auto* nd = g->add_node();
      nd->set_op_type(op);
      for (auto& i : in) nd->add_input(i);
      nd->add_output(out);
      return nd;
    };
    node("Greater", {"x", "zero"}, "a");
    node("Less", {"x", "half"}, "b");
    node("Xor", {"a", "b"}, "xo");
    auto* cast = node("Cast", {"xo"}, "xf");
    auto* to = cast->add_attribute();
    to->set_name("to");
    to->set_type(::onnx::AttributeProto::INT);
    to->set_i(1);
    auto* eye = node("EyeLike", {"W"}, "e");
    auto* ka = eye->add_attribute();
    ka->set_name("k");
    ka->set_type(::onnx::AttributeProto::INT);
    ka->set_i(k);
    node("MatMul", {"x", "e"}, "shifted");
    node("Add", {"xf", "shifted"}, "out");
    ExecConfig cfg;
    cfg.level = ALMC_LEVEL_NONE;
    Executor ex(almc::onnx::load_graph_from_bytes(m.SerializeAsString(), "model"), cfg, cpu());
    const std::vector<float> x = {-1.f, 0.f, 0.25f, 0.5f, 2.f, -0.5f, 0.75f, 0.1f};  // two rows
    std::vector<float> out(x.size(), NAN);
    ex.run_raw(x.data(), out.data(), 2, 0.f);
    for (int r = 0; r < 2; ++r)
      for (int j = 0; j < 4; ++j) {
        const float v = x[size_t(4 * r + j)];
        const float xo = (v > 0.f) != (v < 0.5f) ? 1.f : 0.f;  // x <= 0 or x >= 0.5
        // (x E)[j] = sum_i x[i] E[i, j], E[i, j] = 1 when j = i + k.
        const int i = j - k;
        const float shifted = i >= 0 && i < 4 ? x[size_t(4 * r + i)] : 0.f;
        EXPECT_EQ(out[size_t(4 * r + j)], xo + shifted) << "row " << r << " column " << j;
      }
  }
}

// Einsum whose batch index is not the first of an operand's indices shared by both operands: a
// per-channel, per-column or per-feature scale ('bchw,c->bchw', 'bnd,d->bnd'), a contraction
// leaving a later index as a MatMul batch ('bchw,hc->bhw'), the constant first, and x with
// itself. Each is checked against the sum its equation defines, over every index (sizes 2..5, so
// a mixed-up axis shows), within float32 rounding; the result is flattened per sample and padded
// with zeros to x's size (the executor's output has x's shape).
TEST(Onnx, EinsumBatchIndicesAnywhereInAnOperand) {
  struct Case {
    const char* eq;
    std::vector<int64_t> xdims;  // one sample's
    std::vector<int64_t> wdims;  // the constant's; empty: the second operand is x
    bool w_first;
  };
  const std::vector<Case> cases = {
      {"bchw,c->bchw", {3, 4, 5}, {3}, false},      {"bchw,w->bchw", {3, 4, 5}, {5}, false},
      {"bnd,d->bnd", {4, 5}, {5}, false},           {"bchw,hc->bhw", {3, 4, 5}, {4, 3}, false},
      {"bchw,cw->bhc", {3, 4, 5}, {3, 5}, false},   {"h,bchw->bcw", {3, 4, 5}, {4}, true},
      {"bchw,bchw->bhw", {3, 4, 5}, {}, false},      {"bchw,bchw->bcw", {3, 4, 5}, {}, false},
      {"bchw,hw,c->bch", {3, 4, 5}, {4, 5}, false},  {"bchw,cd->bdhw", {3, 4, 5}, {3, 2}, false},
  };
  const int64_t n = 3;
  for (const auto& cs : cases) {
    SCOPED_TRACE(cs.eq);
    const std::string eq = cs.eq;
    const std::string lhs = eq.substr(0, eq.find("->")), out_term = eq.substr(eq.find("->") + 2);
    std::vector<std::string> terms;
    for (size_t a = 0;;) {
      const size_t c = lhs.find(',', a);
      terms.push_back(lhs.substr(a, c == std::string::npos ? std::string::npos : c - a));
      if (c == std::string::npos) break;
      a = c + 1;
    }
    // Operand names in equation order: x, the constant "w" (or x again), and for a third term a
    // constant "v" over the x term's second index.
    const std::string xt = terms[cs.w_first ? 1 : 0];
    std::map<char, int64_t> size;
    size[xt[0]] = n;
    for (size_t d = 1; d < xt.size(); ++d) size[xt[d]] = cs.xdims[d - 1];
    const std::string wt = terms[cs.w_first ? 0 : 1];
    for (size_t d = 0; d < wt.size(); ++d)
      if (!cs.wdims.empty()) size[wt[d]] = cs.wdims[d];
    ::onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(17);
    auto* g = m.mutable_graph();
    g->set_name("einsum");
    onnx_graph::float_value(g->add_input(), "x", cs.xdims, "batch");
    auto* o = g->add_output();
    o->set_name("out");
    o->mutable_type()->mutable_tensor_type()->set_elem_type(::onnx::TensorProto::FLOAT);
    for (int i = 0; i < 2; ++i)
      o->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_param("o" + std::to_string(i));
    int64_t per = 1, out_count = 1;
    for (int64_t d : cs.xdims) per *= d;
    for (char ch : out_term) out_count *= ch == xt[0] ? 1 : size.at(ch);
    std::map<std::string, std::vector<float>> consts;
    auto konst = [&](const std::string& name, const std::string& term) {
      auto* t = g->add_initializer();
      t->set_name(name);
      t->set_data_type(::onnx::TensorProto::FLOAT);
      int64_t count = 1;
      for (char ch : term) {
        t->add_dims(size.at(ch));
        count *= size.at(ch);
      }
      for (int64_t i = 0; i < count; ++i) {
        consts[name].push_back(0.25f * float((i * 7 + 3) % 11) - 1.f);
        t->add_float_data(consts[name].back());
      }
    };
    std::vector<std::string> names;
    for (size_t k = 0; k < terms.size(); ++k) {
      if (terms[k] == xt && (k == (cs.w_first ? 1u : 0u) || cs.wdims.empty())) {
        names.push_back("x");
      } else {
        names.push_back(k == 2 ? "v" : "w");
        konst(names.back(), terms[k]);
      }
    }
    auto* a = onnx_graph::node(g, "Einsum", names, "e")->add_attribute();
    a->set_name("equation");
    a->set_type(::onnx::AttributeProto::STRING);
    a->set_s(eq);
    onnx_graph::node(g, "Flatten", {"e"}, "ef");
    onnx_graph::node(g, "Pad", {"ef", "pads"}, "out");
    onnx_graph::ints(g, "pads", {0, 0, 0, per - out_count});
    ExecConfig cfg;
    cfg.level = ALMC_LEVEL_NONE;
    Executor ex(almc::onnx::load_graph_from_bytes(m.SerializeAsString(), "model"), cfg, cpu());
    std::vector<float> x(size_t(n * per));
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.125f * float((i * 5 + 1) % 13) - 0.75f;
    // The reference: every assignment of the indices, summed into the output's element.
    std::string letters;
    for (const auto& kv : size) letters += kv.first;
    auto offset = [&](const std::string& term, const std::map<char, int64_t>& at) {
      int64_t off = 0;
      for (char ch : term) off = off * size.at(ch) + at.at(ch);
      return off;
    };
    std::vector<double> ref(size_t(n * per), 0.0);
    std::map<char, int64_t> at;
    for (char ch : letters) at[ch] = 0;
    while (true) {
      double p = 1.0;
      for (size_t k = 0; k < terms.size(); ++k) {
        const std::vector<float>& src = names[k] == "x" ? x : consts.at(names[k]);
        p *= double(src[size_t(offset(terms[k], at))]);
      }
      const int64_t o_in = offset(out_term.substr(1), at);  // out_term leads with the batch index
      ref[size_t(at.at(out_term[0]) * per + o_in)] += p;
      size_t i = 0;
      for (; i < letters.size(); ++i) {
        if (++at[letters[i]] < size.at(letters[i])) break;
        at[letters[i]] = 0;
      }
      if (i == letters.size()) break;
    }
    ASSERT_EQ(ex.d(), per);
    std::vector<float> out(ref.size(), NAN), expect(ref.begin(), ref.end());
    ex.run_raw(x.data(), out.data(), n, 0.f);
    EXPECT_LE(rel_err(out, expect), 1e-6);
  }
}

namespace {
// A hand-made model: inputs (name, elem type, dims: -1 a dimension named "batch", -2 one named
// "other"), one output of rank out_rank with every dimension symbolic (its shape known only once
// planned), and nodes (op, inputs, output, int attributes).
struct HandNode {
  std::string op;
  std::vector<std::string> in;
  std::string out;
  std::vector<std::pair<std::string, int64_t>> ints;
};
std::string hand_model(const std::vector<std::tuple<std::string, int, std::vector<int64_t>>>& inputs,
                       const std::vector<HandNode>& nodes, const std::string& output, int out_rank) {
  ::onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("hand");
  for (const auto& [name, type, dims] : inputs) {
    auto* v = g->add_input();
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(type);
    for (int64_t d : dims) {
      auto* dim = t->mutable_shape()->add_dim();
      if (d >= 0) dim->set_dim_value(d);
      else dim->set_dim_param(d == -1 ? "batch" : "other");
    }
  }
  auto* o = g->add_output();
  o->set_name(output);
  o->mutable_type()->mutable_tensor_type()->set_elem_type(::onnx::TensorProto::FLOAT);
  for (int i = 0; i < out_rank; ++i)
    o->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_param("out" + std::to_string(i));
  for (const auto& n : nodes) {
    auto* nd = g->add_node();
    nd->set_op_type(n.op);
    for (const auto& i : n.in) nd->add_input(i);
    nd->add_output(n.out);
    for (const auto& [k, v] : n.ints) {
      auto* a = nd->add_attribute();
      a->set_name(k);
      a->set_type(::onnx::AttributeProto::INT);
      a->set_i(v);
    }
  }
  return m.SerializeAsString();
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}
}  // namespace

// A further input that shares x's batch dimension, given one sample's value, serves every sample:
// a conditioning image concatenated with x along channels (SR3-style), through the C API.
// out = ReduceSum over channels of Concat(x, cond) = x + cond[0] + cond[1], exact here (sums of
// three small integers). A value of several samples is refused, naming the input; an input whose
// first dimension is named otherwise keeps the plain rule (its given size, broadcasting).
TEST(Onnx, ConditioningInputGivenOnceServesEverySample) {
  using T = ::onnx::TensorProto;
  for (const char* first : {"batch", "other"}) {
    SCOPED_TRACE(first);
    const int64_t cond_batch = first[0] == 'b' ? -1 : -2;
    ::onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(hand_model({{"x", T::FLOAT, {-1, 1, 2, 2}}, {"cond", T::FLOAT, {cond_batch, 2, 2, 2}}},
                   {{"Concat", {"x", "cond"}, "cat", {{"axis", 1}}}, {"ReduceSum", {"cat", "axes"}, "out", {{"keepdims", 1}}}},
                   "out", 4)));
    auto* axes = m.mutable_graph()->add_initializer();
    axes->set_name("axes");
    axes->set_data_type(::onnx::TensorProto::INT64);
    axes->add_dims(1);
    axes->add_int64_data(1);
    const std::string path = write_temp(std::string("cond_") + first + ".onnx", m.SerializeAsString());
    almc_context_config cc = almc_context_config_default();
    cc.backend = ALMC_BACKEND_CPU;
    almc_context_t ctx = nullptr;
    ASSERT_EQ(almc_context_create(&cc, &ctx), ALMC_OK);
    const std::vector<float> cond = {1, 2, 3, 4, 10, 20, 30, 40};  // [1, 2, 2, 2]
    const int64_t cond_shape[4] = {1, 2, 2, 2};
    almc_onnx_input in{"cond", cond.data(), cond_shape, 4};
    almc_onnx_config cfg = almc_onnx_config_default();
    cfg.level = ALMC_LEVEL_NONE;
    cfg.inputs = &in;
    cfg.n_inputs = 1;
    const int n = 3;
    std::vector<float> x(size_t(4 * n)), out(x.size(), NAN);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i);
    const almc_status st = almc_onnx_eval_raw(ctx, path.c_str(), &cfg, x.data(), n, 4, 0.f, out.data());
    if (first[0] == 'b') {
      ASSERT_EQ(st, ALMC_OK) << almc_context_last_error(ctx);
      for (int r = 0; r < n; ++r)
        for (int j = 0; j < 4; ++j)
          EXPECT_EQ(out[size_t(4 * r + j)], x[size_t(4 * r + j)] + cond[size_t(j)] + cond[size_t(4 + j)]) << r << ", " << j;
      const std::vector<float> three(24, 1.f);
      const int64_t three_shape[4] = {3, 2, 2, 2};
      almc_onnx_input per_sample{"cond", three.data(), three_shape, 4};
      cfg.inputs = &per_sample;
      EXPECT_EQ(almc_onnx_eval_raw(ctx, path.c_str(), &cfg, x.data(), n, 4, 0.f, out.data()), ALMC_ERR_INVALID_ARGUMENT);
      const std::string msg = almc_context_last_error(ctx);
      EXPECT_NE(msg.find("input 'cond' holds 3 samples"), std::string::npos) << msg;
    } else {
      EXPECT_NE(st, ALMC_OK) << "a [1, ...] value of another dimension does not concatenate with x";
    }
    almc_context_destroy(ctx);
    std::remove(path.c_str());
  }
}

// An int64 level (a timestep index) keeps its type: Div truncates, as ONNX's integer division,
// and Mod with fmod = 0 (Python's %) runs: torch's floor division t // k with rounding_mode floor
// exports Div, Mod, Less, Xor, And and Where (here written by hand the same way). out = x + [t / 7
// truncated, t mod 7 (Python's), floor(t / 7)] for t = 23 and -23: exact.
TEST(Onnx, Int64LevelDividesAsAnInteger) {
  using T = ::onnx::TensorProto;
  ::onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(hand_model(
      {{"x", T::FLOAT, {-1, 3}}, {"t", T::INT64, {-1}}},
      {{"Div", {"t", "seven"}, "q"}, {"Mod", {"t", "seven"}, "r", {{"fmod", 0}}}, {"Less", {"t", "zero"}, "neg"},
       {"Xor", {"neg", "no"}, "sx"}, {"Equal", {"r", "zero"}, "rz"}, {"Not", {"rz"}, "nz"}, {"And", {"sx", "nz"}, "fix"},
       {"Sub", {"q", "one"}, "q1"}, {"Where", {"fix", "q1", "q"}, "fl"},
       {"Unsqueeze", {"q", "ax"}, "q2"}, {"Unsqueeze", {"r", "ax"}, "r2"}, {"Unsqueeze", {"fl", "ax"}, "f2"},
       {"Concat", {"q2", "r2", "f2"}, "cat", {{"axis", 1}}}, {"Cast", {"cat"}, "catf", {{"to", 1}}}, {"Add", {"x", "catf"}, "out"}},
      "out", 2)));
  auto* g = m.mutable_graph();
  auto konst = [&](const char* name, int type, double v, bool vector) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    if (vector) t->add_dims(1);
    if (type == T::INT64) t->add_int64_data(int64_t(v));
    else t->add_int32_data(int(v));
  };
  konst("seven", T::INT64, 7, false);
  konst("zero", T::INT64, 0, false);
  konst("one", T::INT64, 1, false);
  konst("no", T::BOOL, 0, false);  // the divisor's sign (7 < 0: false), xored with t's
  konst("ax", T::INT64, 1, true);
  const std::string path = write_temp("int64_level.onnx", m.SerializeAsString());
  almc_context_config cc = almc_context_config_default();
  cc.backend = ALMC_BACKEND_CPU;
  almc_context_t ctx = nullptr;
  ASSERT_EQ(almc_context_create(&cc, &ctx), ALMC_OK);
  almc_onnx_config cfg = almc_onnx_config_default();
  cfg.level = ALMC_LEVEL_INDEX;
  const float table[2] = {0.9f, 0.5f};
  cfg.alpha_bar_table = table;
  cfg.alpha_bar_len = 2;
  for (int t : {23, -23}) {
    const std::vector<float> x = {0.5f, 0.25f, 0.125f};
    std::vector<float> out(3, NAN);
    ASSERT_EQ(almc_onnx_eval_raw(ctx, path.c_str(), &cfg, x.data(), 1, 3, float(t), out.data()), ALMC_OK)
        << almc_context_last_error(ctx);
    const int q = t / 7, r = ((t % 7) + 7) % 7;  // C++ truncates; Python's % (fmod 0) is >= 0 for 7
    const int fl = int(std::floor(double(t) / 7.0));
    EXPECT_EQ(out[0], 0.5f + float(q)) << t;
    EXPECT_EQ(out[1], 0.25f + float(r)) << t;
    EXPECT_EQ(out[2], 0.125f + float(fl)) << t;
  }
  almc_context_destroy(ctx);
  std::remove(path.c_str());
}

// An output of twice x's values whose shape the model leaves undeclared (known only once planned)
// is refused with the learned-variance advice naming x's channel count.
TEST(Onnx, LearnedVarianceAdviceOnPlannedShapes) {
  using T = ::onnx::TensorProto;
  const std::string bytes =
      hand_model({{"x", T::FLOAT, {-1, 3, 2, 2}}}, {{"Concat", {"x", "x"}, "out", {{"axis", 1}}}}, "out", 4);
  auto r = refusal(bytes);
  EXPECT_EQ(r.first, ALMC_ERR_UNSUPPORTED) << r.second;
  EXPECT_NE(r.second.find("output channels 0 to 3 (config.output_channel_begin/end)"), std::string::npos) << r.second;
}

TEST(Onnx, RefusesMalformedModels) {
  const std::string good = read_bytes(data_dir() + "mlp_embed.onnx");
  ASSERT_GT(good.size(), 1000u);
  struct Case {
    std::string what, bytes;
    almc_status status;
    std::string needle;
  };
  std::vector<Case> cases = {
      {"truncated", good.substr(0, good.size() / 2), ALMC_ERR_PARSE, "not a valid ONNX model"},
      {"truncated tail", good.substr(0, good.size() - 7), ALMC_ERR_PARSE, "ONNX"},
      {"empty", "", ALMC_ERR_PARSE, "empty"},
      {"garbage", std::string(300, '\x7f'), ALMC_ERR_PARSE, "ONNX"},
      {"cycle", read_bytes(data_dir() + "cycle.onnx"), ALMC_ERR_PARSE, "cycle"},
      {"missing input", read_bytes(data_dir() + "missing_input.onnx"), ALMC_ERR_PARSE, "'ghost'"},
      {"absurd shape", read_bytes(data_dir() + "absurd_shape.onnx"), ALMC_ERR_INVALID_ARGUMENT, "too large"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto r = refusal(c.bytes);
    EXPECT_EQ(r.first, c.status) << r.second;
    EXPECT_NE(r.second.find(c.needle), std::string::npos) << r.second;
  }
  // Every prefix length of a small model is refused cleanly or loads; nothing crashes.
  const std::string small = read_bytes(data_dir() + "gauss_vp_eps.onnx");
  for (size_t len = 0; len < small.size(); len += 7) refusal(small.substr(0, len));
  // Flipped bytes likewise.
  for (size_t i = 0; i < small.size(); i += 11) {
    std::string b = small;
    b[i] = char(b[i] ^ 0x5a);
    refusal(b);
  }
}

TEST(Onnx, MissingFileIsAnIoError) {
  try {
    almc::onnx::load_graph(data_dir() + "does_not_exist.onnx");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), ALMC_ERR_IO);
  }
}

// A float64 stretch of a graph (x cast to float64, a float64 weight added, cast back) runs in
// float32: y = x + float(w), w = k / 7 (double_weight.onnx, make_graphs.py).
TEST(Onnx, Float64CastsRunInFloat32) {
  ExecConfig cfg;
  cfg.level = ALMC_LEVEL_NONE;
  Executor ex(almc::onnx::load_graph(data_dir() + "double_weight.onnx"), cfg, cpu());
  ASSERT_EQ(ex.d(), 8);
  std::vector<float> x(16), y(16, NAN);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * float(i) - 1.f;
  ex.run_raw(x.data(), y.data(), 2, 0.f);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(y[i], x[i] + float(double(i % 8) / 7.0)) << i;
}

// The CPU's vectorised activations (vtanh, vlog, and Elu, Softplus and Mish by params.hpp's
// formulas around vexp, vlog1p and vtanh) against the op's definition in double, over [-30, 30]
// (Log of |x|, Elu with alpha 0.7): within 4 ulp of the result plus 2^-24 (Elu's e^x - 1 and
// Mish's product round near 0 as the shared formula does on every backend).
TEST(Onnx, CpuVectorActivationsMatchTheirDefinitions) {
  using T = ::onnx::TensorProto;
  const int64_t n = 2, d = 6001;
  std::vector<float> x(size_t(n * d));
  for (size_t i = 0; i < x.size(); ++i) x[i] = -30.f + 60.f * float(i) / float(x.size() - 1);
  struct Op {
    const char* name;
    double (*ref)(double);
  };
  const Op ops[] = {{"Tanh", [](double v) { return std::tanh(v); }},
                    {"Log", [](double v) { return std::log(std::fabs(v)); }},
                    {"Elu", [](double v) { return v >= 0 ? v : 0.7 * std::expm1(v); }},
                    {"Softplus", [](double v) { return v > 20 ? v : std::log1p(std::exp(v)); }},
                    {"Mish", [](double v) { return v * std::tanh(v > 20 ? v : std::log1p(std::exp(v))); }}};
  for (const Op& op : ops) {
    SCOPED_TRACE(op.name);
    const bool log = std::string(op.name) == "Log";
    std::vector<HandNode> nodes;
    if (log) nodes = {{"Abs", {"x"}, "a"}, {"Log", {"a"}, "out"}};
    else nodes = {{op.name, {"x"}, "out"}};
    ::onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(hand_model({{"x", T::FLOAT, {-1, d}}}, nodes, "out", 2)));
    m.mutable_opset_import(0)->set_version(18);  // Mish is opset 18's
    if (std::string(op.name) == "Elu") {
      auto* a = m.mutable_graph()->mutable_node(0)->add_attribute();
      a->set_name("alpha");
      a->set_type(::onnx::AttributeProto::FLOAT);
      a->set_f(0.7f);
    }
    ExecConfig cfg;
    cfg.level = ALMC_LEVEL_NONE;
    Executor ex(almc::onnx::load_graph_from_bytes(m.SerializeAsString(), "model"), cfg, cpu());
    std::vector<float> out(x.size(), NAN);
    ex.run_raw(x.data(), out.data(), n, 0.f);
    int bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      if (log && x[i] == 0.f) continue;
      const double r = op.ref(double(x[i]));
      const double ulp = std::nextafter(std::fabs(float(r)), INFINITY) - std::fabs(float(r));
      if (!(std::fabs(double(out[i]) - r) <= 4 * ulp + 0x1p-24) && ++bad <= 3)
        ADD_FAILURE() << op.name << "(" << x[i] << ") = " << out[i] << ", want " << r;
    }
  }
}

// Graph inputs declared float64 (x and the level, as a model traced with double inputs declares
// them) are fed float32 values, and a float64 output is read as float32: out = x * t (per sample),
// exact in float32, with the output cast back to float or left float64. Before, the loader
// refused the model ("graph input 't' has data type float64").
TEST(Onnx, Float64GraphInputsAreFedFloat32) {
  using T = ::onnx::TensorProto;
  for (bool cast_out : {true, false}) {
    SCOPED_TRACE(cast_out ? "float output" : "float64 output");
    std::vector<HandNode> nodes = {{"Unsqueeze", {"t", "ax"}, "t1"}, {"Mul", {"x", "t1"}, cast_out ? "m" : "out"}};
    if (cast_out) nodes.push_back({"Cast", {"m"}, "out", {{"to", T::FLOAT}}});
    ::onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(hand_model({{"x", T::DOUBLE, {-1, 3}}, {"t", T::DOUBLE, {-1}}}, nodes, "out", 2)));
    if (!cast_out) m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(T::DOUBLE);
    auto* ax = m.mutable_graph()->add_initializer();
    ax->set_name("ax");
    ax->set_data_type(T::INT64);
    ax->add_dims(1);
    ax->add_int64_data(1);
    ExecConfig cfg;
    cfg.x_input = "x";
    cfg.level_input = "t";
    Executor ex(almc::onnx::load_graph_from_bytes(m.SerializeAsString(), "model"), cfg, cpu());
    ASSERT_EQ(ex.d(), 3);
    const std::vector<float> x = {0.5f, -1.25f, 3.f, 2.f, 0.125f, -0.75f}, levels = {0.3f, 1.7f};
    std::vector<float> out(x.size(), NAN);
    ex.run_raw_levels(x.data(), out.data(), 2, levels.data());
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(out[i], x[i] * levels[i / 3]) << i;
  }
}

// A model exported with a dynamic height and width (make_zoo.py's ddpm_unet, exported at 8x8, its
// fixture at 12x16): refused without one sample's shape, naming how to give it; run with it, it
// matches torch (tolerance as for the zoo). A shape of the wrong rank or against a fixed dimension
// is refused by name.
TEST(Onnx, DynamicHeightAndWidthTakeTheSampleShape) {
  const std::string name = "zoo_ddpm_unet_o17_dynhw";
  auto x = read_npy(data_dir() + name + "_x.npy");
  auto lv = read_npy(data_dir() + name + "_level.npy");
  auto ref = read_npy(data_dir() + name + "_out.npy");
  ASSERT_EQ(x.shape, (std::vector<int64_t>{7, 2, 12, 16}));
  ExecConfig cfg;
  cfg.x_input = "x";
  cfg.level_input = "t";
  try {
    Executor ex(almc::onnx::load_graph(data_dir() + name + ".onnx"), cfg, cpu());
    FAIL() << "planned without the sample shape";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dynamic dimension 2: give one sample's shape"), std::string::npos) << e.what();
  }
  for (const auto& bad : {std::vector<int64_t>{2, 12}, std::vector<int64_t>{3, 12, 16}}) {
    ExecConfig b = cfg;
    b.x_shape = bad;
    EXPECT_THROW(Executor(almc::onnx::load_graph(data_dir() + name + ".onnx"), b, cpu()), Error);
  }
  cfg.x_shape = {2, 12, 16};
  Executor ex(almc::onnx::load_graph(data_dir() + name + ".onnx"), cfg, cpu());
  ASSERT_EQ(ex.d(), 2 * 12 * 16);
  std::vector<float> out(ref.v.size(), NAN);
  ex.run_raw_levels(x.v.data(), out.data(), 7, lv.v.data());
  EXPECT_LE(rel_err(out, ref.v), 1e-4);
}

TEST(Onnx, WrongInputNames) {
  ExecConfig cfg;
  cfg.x_input = "nope";
  EXPECT_THROW(load("mlp_embed", cfg), Error);
  ExecConfig none;
  none.level = ALMC_LEVEL_NONE;
  try {
    load("mlp_embed", none);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'t'"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- C API

namespace {
struct Ctx {
  almc_context_t ctx = nullptr;
  Ctx() {
    almc_context_config c = almc_context_config_default();
    c.backend = ALMC_BACKEND_CPU;
    if (almc_context_create(&c, &ctx) != ALMC_OK) ctx = nullptr;
  }
  ~Ctx() { almc_context_destroy(ctx); }
};
}  // namespace

TEST(OnnxCApi, EvalRawMatchesTorch) {
  Ctx c;
  ASSERT_NE(c.ctx, nullptr);
  auto x = read_npy(data_dir() + "resmlp_x.npy");
  auto lv = read_npy(data_dir() + "resmlp_level.npy");
  auto ref = read_npy(data_dir() + "resmlp_out.npy");
  const int64_t d = 24;
  almc_onnx_config cfg = almc_onnx_config_default();
  std::vector<float> out(static_cast<size_t>(d));
  ASSERT_EQ(almc_onnx_eval_raw(c.ctx, (data_dir() + "resmlp.onnx").c_str(), &cfg, x.v.data() + d, 1, d, lv.v[1], out.data()),
            ALMC_OK)
      << almc_context_last_error(c.ctx);
  std::vector<float> want(ref.v.begin() + d, ref.v.begin() + 2 * d);
  EXPECT_LE(rel_err(out, want), 1e-4);
  EXPECT_EQ(almc_onnx_eval_raw(c.ctx, (data_dir() + "resmlp.onnx").c_str(), &cfg, x.v.data(), 1, 23, 0.f, out.data()),
            ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(almc_onnx_eval_raw(c.ctx, nullptr, &cfg, x.v.data(), 1, d, 0.f, out.data()), ALMC_ERR_NULL_POINTER);
}

TEST(OnnxCApi, CreateRefusalsSetTheContextError) {
  Ctx c;
  ASSERT_NE(c.ctx, nullptr);
  almc_onnx_config cfg = almc_onnx_config_default();
  almc_score_t s = nullptr;
  EXPECT_EQ(almc_score_create_onnx(c.ctx, (data_dir() + "unsupported_ops.onnx").c_str(), &cfg, &s), ALMC_ERR_UNSUPPORTED);
  EXPECT_EQ(s, nullptr);
  EXPECT_NE(std::string(almc_context_last_error(c.ctx)).find("hardmax_node"), std::string::npos);
  EXPECT_EQ(almc_score_create_onnx(c.ctx, (data_dir() + "nothing.onnx").c_str(), &cfg, &s), ALMC_ERR_IO);
  almc_onnx_config bad = cfg;
  bad.struct_size = 3;
  EXPECT_EQ(almc_score_create_onnx(c.ctx, (data_dir() + "mlp_embed.onnx").c_str(), &bad, &s), ALMC_ERR_STRUCT_SIZE);
  bad = cfg;
  bad.level = ALMC_LEVEL_INDEX;
  EXPECT_EQ(almc_score_create_onnx(c.ctx, (data_dir() + "mlp_embed.onnx").c_str(), &bad, &s), ALMC_ERR_INVALID_ARGUMENT);
  // An alpha_bar table saved in reverse (increasing), or of one entry, fed a wrong step index at
  // every level without a word; the decreasing table is taken.
  const float reversed[3] = {0.1f, 0.5f, 0.99f}, one[1] = {0.5f}, right[3] = {0.99f, 0.5f, 0.1f};
  bad.alpha_bar_table = reversed;
  bad.alpha_bar_len = 3;
  EXPECT_EQ(almc_score_create_onnx(c.ctx, (data_dir() + "gauss_ve_denoiser.onnx").c_str(), &bad, &s), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(almc_context_last_error(c.ctx)).find("must decrease with the step index"), std::string::npos)
      << almc_context_last_error(c.ctx);
  bad.alpha_bar_table = one;
  bad.alpha_bar_len = 1;
  EXPECT_EQ(almc_score_create_onnx(c.ctx, (data_dir() + "gauss_ve_denoiser.onnx").c_str(), &bad, &s), ALMC_ERR_INVALID_ARGUMENT);
  bad.alpha_bar_table = right;
  bad.alpha_bar_len = 3;
  ASSERT_EQ(almc_score_create_onnx(c.ctx, (data_dir() + "gauss_ve_denoiser.onnx").c_str(), &bad, &s), ALMC_OK)
      << almc_context_last_error(c.ctx);
  almc_score_destroy(s);
  s = nullptr;
}

TEST(OnnxCApi, ScoreEvaluateGivesTheExactGaussianScore) {
  Ctx c;
  ASSERT_NE(c.ctx, nullptr);
  almc_onnx_config cfg = almc_onnx_config_default();
  cfg.convention = ALMC_CONV_VP;
  cfg.output = ALMC_OUTPUT_EPS;
  cfg.level = ALMC_LEVEL_T;
  almc_score_t s = nullptr;
  ASSERT_EQ(almc_score_create_onnx(c.ctx, (data_dir() + "gauss_vp_eps.onnx").c_str(), &cfg, &s), ALMC_OK)
      << almc_context_last_error(c.ctx);
  int64_t d = 0;
  ASSERT_EQ(almc_score_dim(s, &d), ALMC_OK);
  EXPECT_EQ(d, 6);
  std::vector<float> x(18), out(18);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(double(i)) * 1.5);
  const double t = 0.42, var = std::exp(-2 * t) * 0.49 + 1 - std::exp(-2 * t);
  ASSERT_EQ(almc_score_evaluate(s, x.data(), out.data(), 3, t), ALMC_OK) << almc_score_last_error(s);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(out[i], -x[i] / var, 1e-5);
  almc_score_destroy(s);
}

// An ALMC run end to end with an ONNX prior: the exact VP eps network of N(0, s0^2 I), observed
// through the identity with noise sigma_y. The posterior is Gaussian per coordinate with
// precision 1/s0^2 + 1/sigma_y^2; the chains' mean and variance must land near it (ULA bias and
// tracking lag are small at these settings; the tolerance covers them and the Monte Carlo error).
TEST(OnnxCApi, AlmcRunWithAnOnnxPrior) {
  Ctx c;
  ASSERT_NE(c.ctx, nullptr);
  almc_onnx_config cfg = almc_onnx_config_default();
  cfg.convention = ALMC_CONV_VP;
  cfg.output = ALMC_OUTPUT_EPS;
  cfg.level = ALMC_LEVEL_T;
  cfg.max_batch = 128;
  almc_score_t score = nullptr;
  ASSERT_EQ(almc_score_create_onnx(c.ctx, (data_dir() + "gauss_vp_eps.onnx").c_str(), &cfg, &score), ALMC_OK)
      << almc_context_last_error(c.ctx);
  almc_operator_t op = nullptr;
  ASSERT_EQ(almc_operator_create_identity(c.ctx, 6, &op), ALMC_OK);
  almc_sampler_config sc = almc_sampler_config_default();
  sc.method = ALMC_METHOD_ALMC;
  sc.n_meas = 1;
  sc.chains_per_meas = 128;
  sc.seed = 7;
  sc.noise_std = 0.5;
  sc.kappa = 2;
  sc.delta = 4e-3;
  sc.t_start = 1.5;
  almc_sampler_t s = nullptr;
  ASSERT_EQ(almc_sampler_create(c.ctx, score, op, &sc, &s), ALMC_OK) << almc_context_last_error(c.ctx);
  const std::vector<float> y = {1.0f, -0.5f, 0.0f, 0.8f, -1.2f, 0.3f};
  ASSERT_EQ(almc_sampler_set_measurement(s, y.data()), ALMC_OK) << almc_sampler_last_error(s);
  ASSERT_EQ(almc_sampler_run(s), ALMC_OK) << almc_sampler_last_error(s);
  std::vector<float> mean(6), sd(6);
  ASSERT_EQ(almc_sampler_get_mean_std(s, mean.data(), sd.data()), ALMC_OK);
  const double prec = 1 / 0.49 + 1 / 0.25, var = 1 / prec;
  for (int i = 0; i < 6; ++i) {
    EXPECT_NEAR(mean[size_t(i)], var * y[size_t(i)] / 0.25, 0.15) << i;  // MC sd of the mean: 0.036
    EXPECT_NEAR(sd[size_t(i)], std::sqrt(var), 0.1) << i;                // MC sd of the sd: 0.025
  }
  almc_sampler_destroy(s);
  almc_operator_destroy(op);
  almc_score_destroy(score);
}

// ---------------------------------------------------------------- determinism and threads
// The CPU backend evaluates blocks of samples, each on one thread, a short block through a
// smaller plan (Executor::cpu_block()): a sample's output is the same bits whatever the batch
// size and the thread count (batches 1 to 130 mix blocks of up to 64 and pieces of 1 to 32).

namespace {
std::vector<float> tiled(const std::vector<float>& v, size_t count) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = v[i % v.size()] * (1.f + 0.01f * float(i / v.size()));
  return out;
}
}  // namespace

TEST(Onnx, CpuRowsBitwiseIndependentOfBatchAndThreads) {
  const int saved = omp_get_max_threads();
  // misc_ops: a dilated grouped convolution run per image (padded-image path) in short blocks and
  // over several images (im2col) in full ones.
  for (const char* name : {"mlp_embed", "resmlp", "unet", "misc_ops", "norm_act"}) {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    // The U-Net's blocks are of 2 samples (its activations): 41 exercise them; the MLPs' are of 64.
    const bool unet = std::string(name) == "unet";
    const int64_t d = int64_t(x.v.size()) / x.shape[0], N = unet ? 41 : 130;
    const auto xs = tiled(x.v, size_t(N * d)), ls = tiled(lv.v, size_t(N));
    auto ex = load(name);
    auto eval = [&](int64_t n, int threads) {
      omp_set_num_threads(threads);
      std::vector<float> out(size_t(n * d), NAN);
      ex->run_raw_levels(xs.data(), out.data(), n, ls.data());
      return out;
    };
    const auto ref = eval(N, 1);
    for (auto [n, threads] :
         std::vector<std::pair<int64_t, int>>{{1, 1}, {4, 2}, {17, 2}, {33, 3}, {41, 2}, {41, 4}, {64, 1}, {100, 2}, {130, 3}}) {
      if (n > N) continue;
      const auto out = eval(n, threads);
      EXPECT_EQ(std::memcmp(out.data(), ref.data(), out.size() * sizeof(float)), 0) << "batch " << n << ", " << threads << " threads";
    }
  }
  omp_set_num_threads(saved);
}

// The network runs on no more threads than its backend was given: `--threads 1` (a CPU backend of
// one thread) ran the score network on every core OpenMP offered, and two such runs side by side
// (ctest -j2) slowed each other ~20x. A backend left at 0 follows OpenMP's default.
TEST(Onnx, CpuBlocksUseTheBackendsThreads) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  auto x = read_npy(data_dir() + std::string("unet_x.npy"));
  auto lv = read_npy(data_dir() + std::string("unet_level.npy"));
  const int64_t d = int64_t(x.v.size()) / x.shape[0], N = 256;  // ~0.2 s of U-Net work on one core
  const auto xs = tiled(x.v, size_t(N * d)), ls = tiled(lv.v, size_t(N));
  std::vector<float> out(size_t(N * d));
  // The most threads any of the first 6 calls ran on: 2 timed single-thread calls, then the split
  // trial's alternation of one thread and the proposed split.
  auto threads_used = [&](almc::Backend& be) {
    Executor ex(almc::onnx::load_graph(data_dir() + "unet.onnx"), ExecConfig{}, be);
    int most = 0;
    for (int call = 0; call < 6; ++call) {
      ex.run_raw_levels(xs.data(), out.data(), N, ls.data());
      most = std::max(most, ex.last_cpu_threads());
    }
    return most;
  };
  const auto one = almc::make_cpu_backend(1), dflt = almc::make_cpu_backend(0);
  EXPECT_EQ(one->host_threads(), 1);
  EXPECT_EQ(dflt->host_threads(), 2);
  EXPECT_EQ(threads_used(*one), 1);
  EXPECT_EQ(threads_used(*dflt), 2);  // the same work is split (at least on trial) when the backend allows it
  omp_set_num_threads(saved);
}

namespace {
// The final chains of a short NCSN run with a fixture network as an ONNX prior on its own CPU
// context (fixed seed): the TinyUNet (d = 256, level sigma) or the sinusoidal MLP (d = 16, t).
std::vector<float> onnx_prior_run(bool unet, int64_t chains, uint64_t seed, int threads) {
  const int64_t d = unet ? 256 : 16;
  almc_context_config cc = almc_context_config_default();
  cc.backend = ALMC_BACKEND_CPU;
  cc.n_threads = threads;
  almc_context_t ctx = nullptr;
  if (almc_context_create(&cc, &ctx) != ALMC_OK) return {};
  almc_onnx_config cfg = almc_onnx_config_default();
  cfg.convention = ALMC_CONV_VP;
  cfg.output = ALMC_OUTPUT_EPS;
  cfg.level = unet ? ALMC_LEVEL_SIGMA : ALMC_LEVEL_T;
  almc_score_t score = nullptr;
  almc_operator_t op = nullptr;
  almc_sampler_t s = nullptr;
  std::vector<float> out;
  almc_sampler_config sc = almc_sampler_config_default();
  sc.method = ALMC_METHOD_NCSN;
  sc.n_meas = 1;
  sc.chains_per_meas = chains;
  sc.seed = seed;
  sc.n_levels = 4;
  sc.steps_per_level = 2;
  sc.sigma_max = 1.0;
  sc.sigma_min = 0.1;
  sc.noise_std = 0.5;
  const std::vector<float> y(size_t(d), 0.5f);
  if (almc_score_create_onnx(ctx, (data_dir() + (unet ? "unet.onnx" : "mlp_embed.onnx")).c_str(), &cfg, &score) != ALMC_OK ||
      almc_operator_create_identity(ctx, d, &op) != ALMC_OK || almc_sampler_create(ctx, score, op, &sc, &s) != ALMC_OK) {
    ADD_FAILURE() << almc_context_last_error(ctx);
  } else if (almc_sampler_set_measurement(s, y.data()) != ALMC_OK || almc_sampler_run(s) != ALMC_OK) {
    ADD_FAILURE() << almc_sampler_last_error(s);
  } else {
    out.assign(size_t(chains * d), NAN);
    if (almc_sampler_get_samples(s, out.data()) != ALMC_OK) out.clear();
  }
  almc_sampler_destroy(s);
  almc_operator_destroy(op);
  almc_score_destroy(score);
  almc_context_destroy(ctx);
  return out;
}
}  // namespace

TEST(OnnxCApi, ChainRowsBitwiseIndependentOfChainCount) {
  for (bool unet : {false, true}) {
    SCOPED_TRACE(unet ? "unet" : "mlp_embed");
    const size_t d = unet ? 256 : 16;
    const int64_t most = unet ? 12 : 64;
    const auto many = onnx_prior_run(unet, most, 11, 2);
    ASSERT_EQ(many.size(), size_t(most) * d);
    EXPECT_NE(std::memcmp(many.data(), many.data() + d, d * sizeof(float)), 0);  // chains do differ
    for (auto [chains, threads] : std::vector<std::pair<int64_t, int>>{{4, 1}, {5, 2}, {most, 1}, {most - 1, 2}}) {
      const auto few = onnx_prior_run(unet, chains, 11, threads);
      ASSERT_EQ(few.size(), size_t(chains) * d);
      EXPECT_EQ(std::memcmp(few.data(), many.data(), few.size() * sizeof(float)), 0) << chains << " chains, " << threads << " threads";
    }
  }
}

// Eight contexts on eight threads at once, each with its own ONNX prior: the same bits as the
// same eight runs one after the other.
TEST(OnnxCApi, ConcurrentContextsMatchSequentialRuns) {
  constexpr int kJobs = 8;
  std::vector<std::vector<float>> sequential(kJobs), concurrent(kJobs);
  // Four U-Nets at 40 chains: enough work for the old per-context OpenBLAS thread toggling to
  // show (this failed before it went).
  auto job = [](int j) { return onnx_prior_run(j % 2 == 0, 40, 100 + uint64_t(j), 1 + j % 2); };
  for (int j = 0; j < kJobs; ++j) sequential[size_t(j)] = job(j);
  std::vector<std::thread> pool;
  for (int j = 0; j < kJobs; ++j) pool.emplace_back([&, j] { concurrent[size_t(j)] = job(j); });
  for (auto& t : pool) t.join();
  for (int j = 0; j < kJobs; ++j) {
    ASSERT_EQ(sequential[size_t(j)].size(), size_t(40 * (j % 2 == 0 ? 256 : 16))) << j;
    EXPECT_EQ(concurrent[size_t(j)], sequential[size_t(j)]) << "job " << j;
  }
}

// ---------------------------------------------------------------- networks as users export them

// Score networks exported from PyTorch as users do (tests/data/make_zoo.py --fixtures; what each
// covers is in its FIXTURES), each of which the executor refused before, with torch's outputs; and
// zoo_ops, a hand-made graph of the ops those exports do not emit (make_zoo.py's ops_graph), with
// onnxruntime's outputs.
namespace {
}  // namespace

// Tolerance: max|almc - ref| <= 1e-4 * max(1, max|ref|), per output tensor: fp32 evaluation
// of networks of a few thousand multiply-adds per output, whose sums the reference orders differently
// (observed errors are 1e-7 to 1e-6 relative; a wrong op gives 1e-2 or more). The whole batch at
// once (odd size 7, per-sample levels), then every sample alone (batch 1: another plan).
TEST(OnnxZoo, MatchesTorchAtBatchSevenAndOne) {
  for (const char* name : onnx_test::kZoo) try {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    auto ref = read_npy(data_dir() + name + "_out.npy");
    const int64_t n = x.shape[0], d = int64_t(x.v.size()) / n, od = int64_t(ref.v.size()) / n;
    ASSERT_EQ(d, od) << "the executor's outputs have x's size";
    auto g = almc::onnx::load_graph(data_dir() + name + ".onnx");
    const bool scalar_level = g.inputs.size() > 1 && g.inputs[1].dims.empty();
    ExecConfig cfg;
    cfg.x_input = "x";
    cfg.level_input = "t";
    Executor ex(std::move(g), cfg, cpu());
    std::vector<float> out(ref.v.size(), NAN);
    if (scalar_level) ex.run_raw(x.v.data(), out.data(), n, lv.v[0]);  // one level for the batch
    else ex.run_raw_levels(x.v.data(), out.data(), n, lv.v.data());
    EXPECT_LE(rel_err(out, ref.v), 1e-4) << name << " at batch " << n;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> one(static_cast<size_t>(d), NAN);
      ex.run_raw(x.v.data() + i * d, one.data(), 1, lv.v[size_t(i)]);
      std::vector<float> want(ref.v.begin() + i * d, ref.v.begin() + (i + 1) * d);
      EXPECT_LE(rel_err(one, want), 1e-4) << name << " sample " << i << " at batch 1";
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << name << ": " << e.what();
  }
}

// ---------------------------------------------------------------- the supported-op table

// The README's list of supported ops (the backquoted names of its "Supported ops" paragraph) is
// exactly the table the loader and the planner read, and the loader accepts every op in it.
TEST(Onnx, ReadmeListsExactlyTheSupportedOps) {
  std::ifstream f(data_dir() + "../../../README.md");
  ASSERT_TRUE(f.good()) << "README.md not found from " << data_dir();
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  const size_t a = text.find("Supported ops ("), b = text.find("A model with anything else", a);
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  std::set<std::string> listed, table;
  for (size_t p = text.find('`', a); p < b; p = text.find('`', p + 1)) {
    const size_t q = text.find('`', p + 1);
    const std::string name = text.substr(p + 1, q - p - 1);
    if (name.find_first_of("/.") == std::string::npos) listed.insert(name);
    p = q;
  }
  for (const auto& o : almc::onnx::op_table()) {
    table.insert(o.name);
    EXPECT_TRUE(almc::onnx::op_supported(o.name)) << o.name;
  }
  EXPECT_EQ(listed, table);
  EXPECT_FALSE(almc::onnx::op_supported("Hardmax"));
}

// A model's float32 weights are held as float32 once loaded (they were doubles: a 0.5 GB model
// took 2.2 GB to load), read back exactly as double; integer constants keep double storage, and
// writing through a non-const accessor widens the store without changing a value.
TEST(Onnx, WeightsAreHeldAsFloat32) {
  const auto g = almc::onnx::load_graph(data_dir() + "mlp_embed.onnx");
  int64_t float_weights = 0;
  for (const auto& kv : g.initializers) {
    const auto& t = *kv.second;
    if (t.dtype != almc::onnx::DType::Float) {
      EXPECT_EQ(t.v.floats(), nullptr) << kv.first;
      continue;
    }
    ASSERT_NE(t.v.floats(), nullptr) << kv.first;
    float_weights += t.numel();
    for (size_t i = 0; i < t.v.size(); ++i) ASSERT_EQ(t.v[i], double(t.v.floats()[i])) << kv.first;
  }
  EXPECT_GT(float_weights, 1000);

  almc::onnx::Values v = almc::onnx::Values::of_floats({1.5f, -2.25f, 3.0e-8f});
  const almc::onnx::Values& cv = v;
  EXPECT_EQ(std::vector<double>(cv.begin(), cv.end()), (std::vector<double>{1.5, -2.25, double(3.0e-8f)}));
  v[1] = 0.1;  // a double that float32 cannot hold: stored as written
  EXPECT_EQ(v.floats(), nullptr);
  EXPECT_EQ(cv[0], 1.5);
  EXPECT_EQ(cv[1], 0.1);
  EXPECT_EQ(cv[2], double(3.0e-8f));
  EXPECT_EQ(cv.size(), 3u);
}
