// GELU recognised in the graph: before opset 20 ONNX has no Gelu op, so exporters write it out as
// five to nine elementwise nodes (torch: x / sqrt(2), Erf, + 1, * x, * 0.5; the tanh form with
// x^3, 0.044715, sqrt(2/pi), Tanh). Each such subgraph becomes one Gelu node, which lowers to one
// elementwise op (EW_GELU / EW_GELU_TANH): one pass instead of five or more, and one a GEMM or
// convolution can take as its epilogue.
//
// No pattern per exporter: from every Erf or Tanh node the candidate region is grown through
// scalar elementwise nodes whose results nothing else reads, up to one common variable input x,
// and accepted when it computes GELU (either form) to 1e-6 at points spanning both tails and the
// bend. The grouping, the order of operands, Div by sqrt 2 or Mul by its inverse, Pow(x, 3) or
// x * x * x: all the same to the test. Anything else (another approximation such as
// x sigmoid(1.702 x), a region some other node reads into) keeps its nodes.
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "host/onnx/builder.hpp"
#include "host/onnx/op_table.hpp"

namespace almc::onnx::planning {

namespace {

// Elementwise ops a GELU subgraph may be written with.
bool gelu_part(const std::string& op) {
  static const std::set<std::string> ops = {"Add", "Sub", "Mul", "Div", "Pow", "Erf", "Tanh",
                                            "Neg", "Sqrt", "Reciprocal", "Exp", "Identity"};
  return ops.count(op) != 0;
}

class GeluMatcher {
 public:
  explicit GeluMatcher(const Graph& g) : g_(g) {
    for (const auto& o : g.outputs) graph_out_.insert(o.name);
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& nd = g.nodes[i];
      for (const auto& in : nd.inputs)
        if (!in.empty()) ++uses_[in];
      for (const auto& out : nd.outputs) producer_[out] = i;
      if (nd.op == "Constant" && nd.outputs.size() == 1) add_scalar(nd.outputs[0], constant_value(nd));
    }
    for (const auto& kv : g.initializers) add_scalar(kv.first, kv.second);
  }

  // The nodes with every recognised GELU replaced by one Gelu node (at its last node's place).
  std::vector<Node> rewrite() {
    std::vector<bool> dead(g_.nodes.size(), false);
    std::map<size_t, Node> replaced;
    for (size_t s = 0; s < g_.nodes.size(); ++s) {
      const std::string& op = g_.nodes[s].op;
      if ((op != "Erf" && op != "Tanh") || dead[s]) continue;
      Region r;
      if (!match(s, r)) continue;
      bool fresh = true;  // no node of an earlier match
      for (size_t k : r.nodes) fresh = fresh && !dead[k] && !replaced.count(k);
      if (!fresh) continue;
      for (size_t k : r.nodes) dead[k] = k != r.last;
      Node gelu;
      gelu.name = g_.nodes[r.last].name;
      gelu.op = "Gelu";
      gelu.inputs = {r.x};
      gelu.outputs = {g_.nodes[r.last].outputs[0]};
      Attr a;
      a.s = r.tanh ? "tanh" : "none";
      gelu.attrs["approximate"] = a;
      replaced[r.last] = std::move(gelu);
      dead[r.last] = false;
    }
    std::vector<Node> out;
    out.reserve(g_.nodes.size());
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      if (dead[i]) continue;
      const auto it = replaced.find(i);
      out.push_back(it != replaced.end() ? it->second : g_.nodes[i]);
    }
    return out;
  }

 private:
  struct Region {
    std::set<size_t> nodes;
    std::string x;
    size_t last = 0;
    bool tanh = false;
  };

  // A float constant of one element that broadcasts without changing a shape (rank 0 or [1]).
  void add_scalar(const std::string& name, const ConstPtr& t) {
    if (t && t->dtype == DType::Float && t->numel() == 1 && t->shape.size() <= 1) scalar_[name] = t->v[0];
  }

  int uses(const std::string& name) const {
    const auto it = uses_.find(name);
    return it == uses_.end() ? 0 : it->second;
  }
  // A node of the region: a one-output scalar elementwise node.
  bool part(size_t k) const {
    const Node& nd = g_.nodes[k];
    return gelu_part(nd.op) && nd.outputs.size() == 1 && !nd.inputs.empty() && nd.inputs.size() <= 2;
  }
  // An intermediate result the region may absorb: read by one node only, not a graph output.
  bool private_value(const std::string& v) const { return uses(v) == 1 && !graph_out_.count(v); }

  // Grows the region up from value v: absorbs its producer when v is private and the producer a
  // part, else v is a leaf (a scalar constant or the variable, which must be one name).
  bool grow_up(const std::string& v, Region& r) const {
    if (scalar_.count(v)) return true;
    const auto p = producer_.find(v);
    if (p != producer_.end() && private_value(v) && part(p->second)) {
      if (!r.nodes.insert(p->second).second) return true;
      for (const auto& in : g_.nodes[p->second].inputs)
        if (in.empty() || !grow_up(in, r)) return false;
      return true;
    }
    if (r.x.empty()) r.x = v;
    return r.x == v;
  }

  // The region's value at x = xv for node k's output.
  double eval(size_t k, double xv, const Region& r) const {
    const Node& nd = g_.nodes[k];
    double a[2] = {0, 0};
    for (size_t i = 0; i < nd.inputs.size(); ++i) {
      const std::string& v = nd.inputs[i];
      const auto p = producer_.find(v);
      if (v == r.x) a[i] = xv;
      else if (p != producer_.end() && r.nodes.count(p->second)) a[i] = eval(p->second, xv, r);
      else a[i] = scalar_.at(v);
    }
    const OpInfo* info = find_op(nd.op);
    return ew_apply<double>(info->ew, a[0], a[1], 0.0, 1.f, 0.f);
  }

  // Which GELU node k's output computes: 1 exact, 2 tanh form, 0 neither.
  int computes_gelu(size_t k, const Region& r) const {
    static const double xs[] = {-6, -4, -2.6, -1.9, -1.2, -0.8, -0.3, -0.01, 0, 0.01, 0.25, 0.7, 1.3, 2, 3, 5};
    bool exact = true, tanh_form = true;
    for (double x : xs) {
      const double v = eval(k, x, r);
      const double ge = 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
      const double gt = 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
      exact = exact && std::abs(v - ge) <= 1e-6 * (1 + std::abs(ge));
      tanh_form = tanh_form && std::abs(v - gt) <= 1e-6 * (1 + std::abs(gt));
    }
    return exact ? 1 : tanh_form ? 2 : 0;
  }

  // From seed s (Erf or Tanh): the region up to the variable, then down through the single reader
  // of each result (with what that reader's other operand needs) until it computes GELU.
  bool match(size_t s, Region& r) const {
    if (!part(s)) return false;
    r.nodes.insert(s);
    for (const auto& in : g_.nodes[s].inputs)
      if (in.empty() || !grow_up(in, r)) return false;
    if (r.x.empty()) return false;
    size_t cur = s;
    for (int depth = 0; depth < 8; ++depth) {
      if (depth > 0) {
        if (const int form = computes_gelu(cur, r)) {
          r.last = cur;
          r.tanh = form == 2;
          return true;
        }
      }
      const std::string& out = g_.nodes[cur].outputs[0];
      if (!private_value(out)) return false;
      size_t next = g_.nodes.size();
      for (size_t k = cur + 1; k < g_.nodes.size() && next == g_.nodes.size(); ++k)
        for (const auto& in : g_.nodes[k].inputs)
          if (in == out) next = k;
      if (next == g_.nodes.size() || !part(next)) return false;
      r.nodes.insert(next);
      for (const auto& in : g_.nodes[next].inputs)
        if (in != out && (in.empty() || !grow_up(in, r))) return false;
      cur = next;
    }
    return false;
  }

  const Graph& g_;
  std::set<std::string> graph_out_;
  std::map<std::string, int> uses_;
  std::map<std::string, size_t> producer_;
  std::map<std::string, double> scalar_;
};

}  // namespace

std::vector<Node> recognise_gelu(const Graph& g) {
  bool any = false;
  for (const auto& nd : g.nodes) any = any || nd.op == "Erf" || nd.op == "Tanh";
  return any ? GeluMatcher(g).rewrite() : g.nodes;
}

}  // namespace almc::onnx::planning
