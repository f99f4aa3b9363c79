// GELU as exporters write it before opset 20 (gelu_match.cpp): the subgraphs of the erf and tanh
// forms, in the groupings and operand orders torch and hand-written modules produce, become one
// elementwise op that the GEMM before them takes as its epilogue; look-alikes (another
// approximation, a wrong constant, an intermediate read elsewhere) keep their nodes. Values
// against GELU computed here in double from the same GEMM.
#include <gtest/gtest.h>

#include <cmath>
#include <onnx/onnx_pb.h>
#include <string>
#include <vector>

#include "host/backend/backend.hpp"
#include "host/onnx/executor.hpp"
#include "host/onnx/plan.hpp"
#include "tests/cpu/test_onnx_util.hpp"

namespace {

using almc::onnx::StepKind;

constexpr int kD = 8;  // x [batch, 8] -> Gemm (8 x 8, bias) -> GELU subgraph -> out [batch, 8]

// A node of the GELU part: op, inputs, output. Inputs "#v" are scalar constants (Constant nodes
// when `as_nodes`, initializers otherwise); "g" is the GEMM's result.
struct N {
  std::string op;
  std::vector<std::string> in;
  std::string out;
};

double weight(int i, int j) { return 0.31 * std::sin(1.7 * i + 0.9 * j + 0.3); }
double bias(int j) { return 0.2 * j - 0.7; }
double ln_scale(int j) { return 1.0 + 0.3 * j; }
double ln_bias(int j) { return 0.1 * j - 0.3; }

std::string model(const std::vector<N>& nodes, bool as_nodes, const std::vector<std::string>& extra_outputs = {}) {
  ::onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("gelu");
  auto tensor_type = [](::onnx::ValueInfoProto* v, const std::string& name) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(::onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_param("batch");
    t->mutable_shape()->add_dim()->set_dim_value(kD);
  };
  tensor_type(g->add_input(), "x");
  tensor_type(g->add_output(), "out");
  for (const auto& o : extra_outputs) tensor_type(g->add_output(), o);
  auto* w = g->add_initializer();
  w->set_name("W");
  w->set_data_type(::onnx::TensorProto::FLOAT);
  w->add_dims(kD);
  w->add_dims(kD);
  for (int i = 0; i < kD; ++i)
    for (int j = 0; j < kD; ++j) w->add_float_data(float(weight(i, j)));
  auto* b = g->add_initializer();
  b->set_name("B");
  b->set_data_type(::onnx::TensorProto::FLOAT);
  b->add_dims(kD);
  for (int j = 0; j < kD; ++j) b->add_float_data(float(bias(j)));
  for (const char* name : {"S", "Z"}) {  // a LayerNorm's scale and bias
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(::onnx::TensorProto::FLOAT);
    t->add_dims(kD);
    for (int j = 0; j < kD; ++j) t->add_float_data(float(name[0] == 'S' ? ln_scale(j) : ln_bias(j)));
  }
  auto* gemm = g->add_node();
  gemm->set_op_type("Gemm");
  gemm->add_input("x");
  gemm->add_input("W");
  gemm->add_input("B");
  gemm->add_output("g");
  int k = 0;
  for (const auto& n : nodes) {
    std::vector<std::string> ins;
    for (const auto& in : n.in) {
      if (in[0] != '#') {
        ins.push_back(in);
        continue;
      }
      const std::string name = "c" + std::to_string(k++);
      ::onnx::TensorProto t;
      t.set_name(name);
      t.set_data_type(::onnx::TensorProto::FLOAT);
      t.add_float_data(std::stof(in.substr(1)));  // rank 0
      if (as_nodes) {
        auto* c = g->add_node();
        c->set_op_type("Constant");
        c->add_output(name);
        auto* a = c->add_attribute();
        a->set_name("value");
        a->set_type(::onnx::AttributeProto::TENSOR);
        *a->mutable_t() = t;
      } else {
        *g->add_initializer() = t;
      }
      ins.push_back(name);
    }
    auto* nd = g->add_node();
    nd->set_op_type(n.op);
    for (const auto& in : ins) nd->add_input(in);
    nd->add_output(n.out);
  }
  return m.SerializeAsString();
}

almc::Backend& cpu() {
  static const auto be = almc::make_cpu_backend(1);
  return *be;
}

struct Outcome {
  int ew_steps = 0;      // elementwise steps left in the plan
  int gemm_act = -1;     // the GEMM's epilogue
  int norm_act = -1;     // a normalisation's activation
  double max_err = 0.0;  // max |almc - GELU| / (1 + |GELU|) over the batch
};

// Plans and runs the model at batch 64 (rows spanning -5..5 before the GEMM's mixing); GELU is
// applied to the GEMM's result, or with `layernorm` to its LayerNorm (epsilon 1e-5, S, Z).
Outcome run(const std::string& bytes, bool tanh_form, bool layernorm = false) {
  almc::onnx::IoSpec io;
  io.x_input = "x";
  io.output = "out";
  Outcome o;
  const auto plan = almc::onnx::build_plan(almc::onnx::load_graph_from_bytes(bytes, "gelu"), io, 64);
  for (const auto& s : plan.steps) {
    if (s.kind == StepKind::Ew) ++o.ew_steps;
    if (s.kind == StepKind::Gemm) o.gemm_act = s.gemm.act;
    if (s.kind == StepKind::Norm) o.norm_act = s.norm.act;
  }
  almc::onnx::ExecConfig cfg;
  cfg.level = ALMC_LEVEL_NONE;
  almc::onnx::Executor ex(almc::onnx::load_graph_from_bytes(bytes, "gelu"), cfg, cpu());
  const int n = 64;
  std::vector<float> x(size_t(n * kD)), out(size_t(n * kD));
  for (int r = 0; r < n; ++r)
    for (int i = 0; i < kD; ++i) x[size_t(r * kD + i)] = float(-5.0 + 10.0 * ((r * 7 + i * 3) % 61) / 60.0);
  ex.run_raw(x.data(), out.data(), n, 0.f);
  for (int r = 0; r < n; ++r) {
    double row[kD], mean = 0, var = 0;
    for (int j = 0; j < kD; ++j) {
      row[j] = bias(j);
      for (int i = 0; i < kD; ++i) row[j] += double(x[size_t(r * kD + i)]) * double(float(weight(i, j)));
      mean += row[j] / kD;
    }
    for (int j = 0; j < kD; ++j) var += (row[j] - mean) * (row[j] - mean) / kD;
    for (int j = 0; j < kD; ++j) {
      const double g = layernorm ? (row[j] - mean) / std::sqrt(var + 1e-5) * ln_scale(j) + ln_bias(j) : row[j];
      const double want = tanh_form ? 0.5 * g * (1 + std::tanh(std::sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)))
                                    : 0.5 * g * (1 + std::erf(g / std::sqrt(2.0)));
      o.max_err = std::max(o.max_err, std::abs(double(out[size_t(r * kD + j)]) - want) / (1 + std::abs(want)));
    }
  }
  return o;
}

}  // namespace

// Tolerance 1e-5 relative: float GEMM (8 terms) and the fused op's erf/exp (a few ulp).
TEST(OnnxGelu, ExportedFormsBecomeOneOpAndAGemmEpilogue) {
  struct Form {
    const char* what;
    bool tanh_form;
    std::vector<N> nodes;
  };
  const std::vector<Form> forms = {
      {"torch erf: x / sqrt2, Erf, + 1, x *, * 0.5", false,
       {{"Div", {"g", "#1.4142135"}, "u"}, {"Erf", {"u"}, "e"}, {"Add", {"e", "#1"}, "p"},
        {"Mul", {"g", "p"}, "q"}, {"Mul", {"q", "#0.5"}, "out"}}},
      {"erf: Mul by 1/sqrt2 first, (0.5 x) (1 + erf)", false,
       {{"Mul", {"#0.70710677", "g"}, "u"}, {"Erf", {"u"}, "e"}, {"Mul", {"g", "#0.5"}, "h"},
        {"Add", {"#1", "e"}, "p"}, {"Mul", {"h", "p"}, "out"}}},
      {"erf: x ((1 + erf) / 2)", false,
       {{"Div", {"g", "#1.4142135"}, "u"}, {"Erf", {"u"}, "e"}, {"Add", {"e", "#1"}, "p"},
        {"Div", {"p", "#2"}, "q"}, {"Mul", {"g", "q"}, "out"}}},
      {"torch tanh: Pow(x, 3)", true,
       {{"Pow", {"g", "#3"}, "x3"}, {"Mul", {"x3", "#0.044715"}, "k"}, {"Add", {"g", "k"}, "s"},
        {"Mul", {"s", "#0.7978846"}, "z"}, {"Tanh", {"z"}, "t"}, {"Add", {"t", "#1"}, "p"},
        {"Mul", {"g", "#0.5"}, "h"}, {"Mul", {"h", "p"}, "out"}}},
      {"tanh: x * x * x, constants first", true,
       {{"Mul", {"g", "g"}, "x2"}, {"Mul", {"x2", "g"}, "x3"}, {"Mul", {"#0.044715", "x3"}, "k"},
        {"Add", {"k", "g"}, "s"}, {"Mul", {"#0.7978846", "s"}, "z"}, {"Tanh", {"z"}, "t"},
        {"Add", {"#1", "t"}, "p"}, {"Mul", {"p", "g"}, "q"}, {"Mul", {"#0.5", "q"}, "out"}}},
  };
  for (const auto& f : forms)
    for (bool as_nodes : {true, false}) {
      SCOPED_TRACE(std::string(f.what) + (as_nodes ? ", Constant nodes" : ", initializers"));
      const Outcome o = run(model(f.nodes, as_nodes), f.tanh_form);
      EXPECT_EQ(o.ew_steps, 0);
      EXPECT_EQ(o.gemm_act, f.tanh_form ? almc::onnx::EW_GELU_TANH : almc::onnx::EW_GELU);
      EXPECT_LE(o.max_err, 1e-5);
    }
}

// A LayerNorm followed by GELU: one normalisation step that applies GELU as it writes.
TEST(OnnxGelu, ALayerNormTakesItAsItsActivation) {
  const std::vector<N> nodes = {{"LayerNormalization", {"g", "S", "Z"}, "h"}, {"Div", {"h", "#1.4142135"}, "u"},
                                {"Erf", {"u"}, "e"}, {"Add", {"e", "#1"}, "p"}, {"Mul", {"h", "p"}, "q"},
                                {"Mul", {"q", "#0.5"}, "out"}};
  const Outcome o = run(model(nodes, true), false, true);
  EXPECT_EQ(o.ew_steps, 0);
  EXPECT_EQ(o.norm_act, almc::onnx::EW_GELU);
  EXPECT_LE(o.max_err, 1e-5);
}

// Subgraphs that are not GELU, or whose parts something else reads, stay as they are (and still
// compute what they say).
TEST(OnnxGelu, LookAlikesKeepTheirNodes) {
  const std::vector<N> torch_erf = {{"Div", {"g", "#1.4142135"}, "u"}, {"Erf", {"u"}, "e"}, {"Add", {"e", "#1"}, "p"},
                                    {"Mul", {"g", "p"}, "q"}, {"Mul", {"q", "#0.5"}, "out"}};
  {
    SCOPED_TRACE("0.49 instead of 0.5");
    auto nodes = torch_erf;
    nodes[4].in[1] = "#0.49";
    const Outcome o = run(model(nodes, true), false);
    EXPECT_GE(o.ew_steps, 1);
    EXPECT_EQ(o.gemm_act, almc::onnx::EW_COPY);
    EXPECT_GT(o.max_err, 1e-3);  // it computes 0.98 GELU, as written
  }
  {
    SCOPED_TRACE("the sigmoid approximation x sigmoid(1.702 x)");
    const std::vector<N> nodes = {{"Mul", {"g", "#1.702"}, "u"}, {"Sigmoid", {"u"}, "s"}, {"Mul", {"g", "s"}, "out"}};
    const Outcome o = run(model(nodes, true), false);
    EXPECT_NE(o.gemm_act, almc::onnx::EW_GELU);
    EXPECT_GT(o.max_err, 1e-3);
    EXPECT_LT(o.max_err, 0.05);  // the approximation it is
  }
  {
    SCOPED_TRACE("Erf's result is also a graph output");
    const Outcome o = run(model(torch_erf, true, {"e"}), false);
    EXPECT_GE(o.ew_steps, 1);
    EXPECT_NE(o.gemm_act, almc::onnx::EW_GELU);
    EXPECT_LE(o.max_err, 1e-5);
  }
  {
    SCOPED_TRACE("1 + erf is read by another node too");
    auto nodes = torch_erf;
    nodes[4] = {"Mul", {"q", "#0.5"}, "h"};
    nodes.push_back({"Add", {"h", "p"}, "out"});  // GELU + (1 + erf): not GELU at its end either
    const Outcome o = run(model(nodes, true), false);
    EXPECT_NE(o.gemm_act, almc::onnx::EW_GELU);
  }
}

// The fixtures' GELUs: resmlp's two (torch's erf form after a Gemm) become the Gemms' epilogues;
// the Fourier MLP's tanh form (zoo, opset 14) and norm_act's erf form after a GroupNorm are each
// one op of the fused program that also adds another tensor.
// Their values against torch: Onnx.FixturesMatchTorch and the zoo tests.
TEST(OnnxGelu, FixturesRunTheirGelusAsOneOp) {
  using onnx_test::data_dir;
  struct Want {
    const char* name;
    int gemm_gelu, gemm_gelu_tanh, ew_gelu, ew_gelu_tanh;
  };
  for (const Want w : {Want{"resmlp", 2, 0, 0, 0}, Want{"zoo_fourier_mlp_o14", 0, 0, 0, 1}, Want{"norm_act", 0, 0, 1, 0}}) {
    SCOPED_TRACE(w.name);
    const auto g = almc::onnx::load_graph(data_dir() + w.name + ".onnx");
    almc::onnx::IoSpec io;
    io.x_input = g.inputs[0].name;
    io.level_input = g.inputs.size() > 1 ? g.inputs[1].name : "";
    io.output = g.outputs[0].name;
    const auto p = almc::onnx::build_plan(g, io, 4);
    int gemm_gelu = 0, gemm_gelu_tanh = 0, ew_gelu = 0, ew_gelu_tanh = 0, ew_erf = 0;
    for (const auto& s : p.steps) {
      if (s.kind == StepKind::Gemm) {
        gemm_gelu += s.gemm.act == almc::onnx::EW_GELU;
        gemm_gelu_tanh += s.gemm.act == almc::onnx::EW_GELU_TANH;
      }
      if (s.kind == StepKind::Ew)
        for (int q = 0; q < s.ew.n_instr; ++q) {
          ew_gelu += s.ew.instr[q].op == almc::onnx::EW_GELU;
          ew_gelu_tanh += s.ew.instr[q].op == almc::onnx::EW_GELU_TANH;
          ew_erf += s.ew.instr[q].op == almc::onnx::EW_ERF;
        }
    }
    EXPECT_EQ(gemm_gelu, w.gemm_gelu);
    EXPECT_EQ(gemm_gelu_tanh, w.gemm_gelu_tanh);
    EXPECT_EQ(ew_gelu, w.ew_gelu);
    EXPECT_EQ(ew_gelu_tanh, w.ew_gelu_tanh);
    EXPECT_EQ(ew_erf, 0);
  }
}
