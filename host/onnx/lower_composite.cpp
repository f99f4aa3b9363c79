// Composite lowering: ONNX ops the executor runs as a few of its other ops (each lowered as if it
// were a node of the graph, so folding, fusion and both backends come for free):
//   Einsum                 Transpose / Reshape around one batched MatMul per pair of operands
//                          (and ReduceSum for indices that only one operand has)
//   BatchNormalization     (inference) one per-channel Mul and Add with constants folded here
//   DepthToSpace, SpaceToDepth  Reshape, Transpose, Reshape
//   PRelu                  Where(x < 0, x * slope, x)
//   Sum, Mean              chains of Add (Mean then scaled)
//   ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSumExp  their elementwise parts around
//                          ReduceSum / ReduceMax
//   Gelu (opset 20)        the erf form torch exports before opset 20 (x / sqrt 2, Erf, + 1, * x,
//                          * 0.5), or the tanh form (approximate = "tanh"), which fusion then joins
//   RMSNormalization (23)  x / sqrt(ReduceMean(x * x) + epsilon) * scale over the axes from `axis`
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "host/onnx/builder.hpp"

namespace almc::onnx::planning {

namespace {
Attr ints_attr(std::vector<int64_t> v) {
  Attr a;
  a.ints = std::move(v);
  return a;
}
Attr int_attr(int64_t v) {
  Attr a;
  a.i = v;
  return a;
}
bool identity_perm(const std::vector<int64_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != int64_t(i)) return false;
  return true;
}
}  // namespace

std::string Builder::sub(const std::string& op, const std::vector<std::string>& inputs, std::map<std::string, Attr> attrs,
                         const std::string& output) {
  const Node* saved = cur_;
  const Node* saved_parent = parent_;
  if (!parent_) parent_ = cur_;
  Node n;
  n.op = op;
  n.name = parent_->name + "#" + std::to_string(tmp_count_++) + op;
  n.inputs = inputs;
  n.outputs = {output.empty() ? n.name : output};
  n.attrs = std::move(attrs);
  cur_ = &n;
  node();
  cur_ = saved;
  parent_ = saved_parent;
  return n.outputs[0];
}

std::string Builder::konst(std::vector<int64_t> shape, std::vector<double> v, DType dt) {
  auto t = std::make_shared<HostTensor>();
  t->dtype = dt;
  t->shape = std::move(shape);
  t->v = std::move(v);
  check_const(*t);
  Val c;
  c.dtype = dt;
  c.shape = t->shape;
  c.c = t;
  const std::string name = (parent_ ? parent_ : cur_)->name + "#c" + std::to_string(tmp_count_++);
  vals_[name] = std::move(c);
  return name;
}

std::string Builder::konst_ints(const std::vector<int64_t>& v) {
  return konst({int64_t(v.size())}, std::vector<double>(v.begin(), v.end()), DType::Int64);
}

void Builder::node_composite() {
  const Node& nd = *cur_;
  const std::string& op = nd.op;
  if (op == "Einsum") return composite_einsum();
  if (op == "BatchNormalization") return composite_batchnorm();
  if (op == "DepthToSpace" || op == "SpaceToDepth") return composite_depth_space(op == "DepthToSpace");
  if (op == "ReduceL1" || op == "ReduceL2" || op == "ReduceSumSquare" || op == "ReduceLogSumExp") return composite_reduce();
  if (op == "Gelu") return composite_gelu();
  if (op == "RMSNormalization") return composite_rms_norm();
  if (op == "PRelu") {
    need(0);
    need(1);
    const std::string neg = sub("Less", {nd.inputs[0], konst({}, {0.0})});
    const std::string scaled = sub("Mul", {nd.inputs[0], nd.inputs[1]});
    sub("Where", {neg, scaled, nd.inputs[0]}, {}, nd.outputs[0]);
    return;
  }
  if (op == "Sum" || op == "Mean" || op == "Max" || op == "Min") {
    std::vector<std::string> ins;
    for (size_t i = 0; i < nd.inputs.size(); ++i)
      if (!nd.inputs[i].empty()) {
        need(i);
        ins.push_back(nd.inputs[i]);
      }
    if (ins.empty()) fail("no inputs", ALMC_ERR_PARSE);
    const std::string bin = op == "Sum" || op == "Mean" ? "Add" : op;
    const bool scale = op == "Mean" && ins.size() > 1;
    std::string acc = ins[0];
    for (size_t i = 1; i < ins.size(); ++i)
      acc = sub(bin, {acc, ins[i]}, {}, i + 1 == ins.size() && !scale ? nd.outputs[0] : "");
    if (scale) sub("Mul", {acc, konst({}, {1.0 / double(ins.size())})}, {}, nd.outputs[0]);
    if (ins.size() == 1) sub("Identity", {acc}, {}, nd.outputs[0]);
    return;
  }
  fail("is not a composite op", ALMC_ERR_INTERNAL);
}

// Inference BatchNormalization: y = x * s[c] + b[c], s = scale / sqrt(var + eps), b = B - mean s.
void Builder::composite_batchnorm() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  for (size_t i = 1; i < nd.outputs.size(); ++i)
    if (!nd.outputs[i].empty()) fail("training-mode outputs (running mean / variance); export the model in eval mode");
  if (nd.geti("training_mode", 0) != 0) fail("training_mode 1; export the model in eval mode (model.eval())");
  if (X.shape.size() < 2) fail("input of rank " + std::to_string(X.shape.size()) + " (needs [N, C, ...])", ALMC_ERR_PARSE);
  const int64_t C = X.shape[1];
  const HostTensor& sc = need_const(1, "scale");
  const HostTensor& bi = need_const(2, "B");
  const HostTensor& mu = need_const(3, "the running mean");
  const HostTensor& var = need_const(4, "the running variance");
  if (sc.numel() != C || bi.numel() != C || mu.numel() != C || var.numel() != C)
    fail("scale, B, mean and var must have " + std::to_string(C) + " values (the channels)", ALMC_ERR_PARSE);
  const double eps = nd.getf("epsilon", 1e-5f);
  std::vector<double> s(static_cast<size_t>(C)), b(static_cast<size_t>(C));
  for (size_t c = 0; c < size_t(C); ++c) {
    s[c] = double(float(sc.v[c] / std::sqrt(double(float(var.v[c] + eps)))));
    b[c] = double(float(bi.v[c] - mu.v[c] * s[c]));
  }
  std::vector<int64_t> shape(X.shape.size() - 1, 1);
  shape[0] = C;
  const std::string m = sub("Mul", {nd.inputs[0], konst(shape, s)});
  sub("Add", {m, konst(shape, b)}, {}, nd.outputs[0]);
}

void Builder::composite_gelu() {
  const Node& nd = *cur_;
  need(0);
  const std::string& x = nd.inputs[0];
  const std::string approx = nd.gets("approximate", "none");
  if (approx == "none") {
    const std::string e = sub("Erf", {sub("Div", {x, konst({}, {std::sqrt(2.0)})})});
    const std::string h = sub("Mul", {x, sub("Add", {e, konst({}, {1.0})})});
    sub("Mul", {h, konst({}, {0.5})}, {}, nd.outputs[0]);
  } else if (approx == "tanh") {  // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    const std::string x3 = sub("Mul", {sub("Mul", {x, x}), x});
    const std::string in = sub("Add", {x, sub("Mul", {x3, konst({}, {0.044715})})});
    const std::string th = sub("Tanh", {sub("Mul", {in, konst({}, {std::sqrt(2.0 / M_PI)})})});
    const std::string h = sub("Mul", {x, sub("Add", {th, konst({}, {1.0})})});
    sub("Mul", {h, konst({}, {0.5})}, {}, nd.outputs[0]);
  } else {
    fail("approximate '" + approx + "' (none and tanh are defined)", ALMC_ERR_PARSE);
  }
}

// RMSNormalization: the mean square over axes axis .. rank - 1 (kept), then the scale, which
// broadcasts against the normalised dimensions.
void Builder::composite_rms_norm() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  need(1);
  for (size_t i = 1; i < nd.outputs.size(); ++i)
    if (!nd.outputs[i].empty()) fail("a second output (RMSNormalization has one)", ALMC_ERR_PARSE);
  const int64_t r = int64_t(X.shape.size());
  if (r == 0) fail("a scalar input", ALMC_ERR_PARSE);
  const int64_t axis = nd.geti("axis", -1);
  if (axis < -r || axis >= r) fail("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(r), ALMC_ERR_PARSE);
  std::vector<int64_t> axes;
  for (int64_t a = axis < 0 ? axis + r : axis; a < r; ++a) axes.push_back(a);
  const double eps = nd.getf("epsilon", 1e-5f);
  const std::string& x = nd.inputs[0];
  const std::string ms = sub("ReduceMean", {sub("Mul", {x, x})}, {{"axes", ints_attr(axes)}, {"keepdims", int_attr(1)}});
  const std::string rms = sub("Sqrt", {sub("Add", {ms, konst({}, {eps})})});
  sub("Mul", {sub("Div", {x, rms}), nd.inputs[1]}, {}, nd.outputs[0]);
}

void Builder::composite_depth_space(bool to_space) {
  const Node& nd = *cur_;
  const Val& X = need(0);
  if (X.shape.size() != 4) fail("input of rank " + std::to_string(X.shape.size()) + " (needs [N, C, H, W])", ALMC_ERR_PARSE);
  const int64_t b = nd.geti("blocksize", 0);
  const int64_t N = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3];
  if (b <= 0) fail("blocksize must be positive", ALMC_ERR_PARSE);
  std::vector<int64_t> s6, perm, out;
  if (to_space) {
    if (C % (b * b)) fail("channels not divisible by blocksize^2", ALMC_ERR_PARSE);
    const bool crd = nd.gets("mode", "DCR") == "CRD";
    if (crd) {
      s6 = {N, C / (b * b), b, b, H, W};
      perm = {0, 1, 4, 2, 5, 3};
    } else {
      s6 = {N, b, b, C / (b * b), H, W};
      perm = {0, 3, 4, 1, 5, 2};
    }
    out = {N, C / (b * b), H * b, W * b};
  } else {
    if (H % b || W % b) fail("height or width not divisible by blocksize", ALMC_ERR_PARSE);
    s6 = {N, C, H / b, b, W / b, b};
    perm = {0, 3, 5, 1, 2, 4};
    out = {N, C * b * b, H / b, W / b};
  }
  const std::string r = sub("Reshape", {nd.inputs[0], konst_ints(s6)});
  const std::string t = sub("Transpose", {r}, {{"perm", ints_attr(perm)}});
  sub("Reshape", {t, konst_ints(out)}, {}, nd.outputs[0]);
}

void Builder::composite_reduce() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  std::map<std::string, Attr> ra;
  std::vector<int64_t> axes;
  if (nd.has("axes")) axes = nd.getints("axes");
  else if (in(1)) axes = const_ints(1, "the reduction axes");
  const bool keep = nd.geti("keepdims", 1) != 0;
  if (axes.empty() && nd.geti("noop_with_empty_axes", 0)) {
    // Nothing reduced: the elementwise part alone.
    if (nd.op == "ReduceL1") sub("Abs", {nd.inputs[0]}, {}, nd.outputs[0]);
    else if (nd.op == "ReduceL2") sub("Abs", {nd.inputs[0]}, {}, nd.outputs[0]);
    else if (nd.op == "ReduceSumSquare") sub("Mul", {nd.inputs[0], nd.inputs[0]}, {}, nd.outputs[0]);
    else sub("Identity", {nd.inputs[0]}, {}, nd.outputs[0]);
    return;
  }
  if (axes.empty())
    for (size_t i = 0; i < X.shape.size(); ++i) axes.push_back(int64_t(i));
  ra["axes"] = ints_attr(axes);
  ra["keepdims"] = int_attr(keep ? 1 : 0);
  const std::string& x = nd.inputs[0];
  const std::string& y = nd.outputs[0];
  if (nd.op == "ReduceL1") {
    sub("ReduceSum", {sub("Abs", {x})}, ra, y);
  } else if (nd.op == "ReduceSumSquare") {
    sub("ReduceSum", {sub("Mul", {x, x})}, ra, y);
  } else if (nd.op == "ReduceL2") {
    sub("Sqrt", {sub("ReduceSum", {sub("Mul", {x, x})}, ra)}, {}, y);
  } else {  // ReduceLogSumExp: m + log(sum(exp(x - m))), m the maximum (kept dims)
    std::map<std::string, Attr> rk = ra;
    rk["keepdims"] = int_attr(1);
    const std::string m = sub("ReduceMax", {x}, rk);
    const std::string s = sub("Log", {sub("ReduceSum", {sub("Exp", {sub("Sub", {x, m})})}, ra)});
    const std::string mo = keep ? m : sub("Reshape", {m, konst_ints(vals_.at(s).shape)});
    sub("Add", {s, mo}, {}, y);
  }
}

// Einsum: the equation's operands contracted pairwise from the left. For a pair, indices in both
// operands and in what is kept are batch dimensions, those of one operand only are its rows or
// columns, those of both and not kept are summed by the MatMul; an index of one operand that
// nothing else needs is summed first (ReduceSum).
void Builder::composite_einsum() {
  const Node& nd = *cur_;
  std::string eq;
  for (char ch : nd.gets("equation", "")) {
    if (ch != ' ') eq += ch;
  }
  std::vector<std::string> terms;
  std::string out_term;
  const size_t arrow = eq.find("->");
  const std::string lhs = arrow == std::string::npos ? eq : eq.substr(0, arrow);
  {
    size_t a = 0;
    while (true) {
      const size_t c = lhs.find(',', a);
      terms.push_back(lhs.substr(a, c == std::string::npos ? std::string::npos : c - a));
      if (c == std::string::npos) break;
      a = c + 1;
    }
  }
  std::vector<const Val*> ops;
  for (size_t i = 0; i < nd.inputs.size(); ++i) ops.push_back(&need(i));
  if (ops.size() != terms.size())
    fail("equation '" + eq + "' has " + std::to_string(terms.size()) + " operands, the node " + std::to_string(ops.size()),
         ALMC_ERR_PARSE);
  // Ellipses become the letters '0', '1', ... (the same count in every operand).
  int ell = -1;
  for (size_t i = 0; i < terms.size(); ++i) {
    const size_t e = terms[i].find("...");
    if (e == std::string::npos) continue;
    const int k = int(ops[i]->shape.size()) - int(terms[i].size() - 3);
    if (k < 0) fail("equation '" + eq + "' does not match the rank of operand " + std::to_string(i), ALMC_ERR_PARSE);
    if (ell >= 0 && ell != k) fail("ellipses covering different ranks (broadcast ellipsis) in '" + eq + "'");
    ell = k;
    std::string rep;
    for (int j = 0; j < k; ++j) rep += char('0' + j);
    terms[i] = terms[i].substr(0, e) + rep + terms[i].substr(e + 3);
  }
  std::map<char, int64_t> size;
  std::map<char, int> count;
  for (size_t i = 0; i < terms.size(); ++i) {
    const std::string& t = terms[i];
    if (t.size() != ops[i]->shape.size())
      fail("equation '" + eq + "' gives operand " + std::to_string(i) + " rank " + std::to_string(t.size()) + ", it has " +
               std::to_string(ops[i]->shape.size()),
           ALMC_ERR_PARSE);
    std::set<char> seen;
    for (size_t d = 0; d < t.size(); ++d) {
      const char ch = t[d];
      if (!std::isalnum(static_cast<unsigned char>(ch))) fail("equation '" + eq + "' is malformed", ALMC_ERR_PARSE);
      if (!seen.insert(ch).second) fail("index '" + std::string(1, ch) + "' repeated in one operand (a diagonal) in '" + eq + "'");
      const int64_t n = ops[i]->shape[d];
      auto it = size.find(ch);
      if (it != size.end() && it->second != n && it->second != 1 && n != 1)
        fail("index '" + std::string(1, ch) + "' has sizes " + std::to_string(it->second) + " and " + std::to_string(n),
             ALMC_ERR_PARSE);
      if (it == size.end() || it->second == 1) size[ch] = n;
      ++count[ch];
    }
  }
  if (arrow != std::string::npos) {
    out_term = eq.substr(arrow + 2);
    const size_t e = out_term.find("...");
    if (e != std::string::npos) {
      std::string rep;
      for (int j = 0; j < std::max(ell, 0); ++j) rep += char('0' + j);
      out_term = out_term.substr(0, e) + rep + out_term.substr(e + 3);
    }
    std::set<char> seen;
    for (char ch : out_term)
      if (!size.count(ch) || !seen.insert(ch).second) fail("output index '" + std::string(1, ch) + "' of '" + eq + "'", ALMC_ERR_PARSE);
  } else {  // implicit output: the ellipsis, then the indices seen once, in alphabetical order
    for (int j = 0; j < std::max(ell, 0); ++j) out_term += char('0' + j);
    for (const auto& kv : count)
      if (kv.second == 1 && !std::isdigit(static_cast<unsigned char>(kv.first))) out_term += kv.first;
  }
  // Sum away the indices of operand i that neither the output nor another operand has.
  auto needed_elsewhere = [&](char ch, size_t skip, size_t from) {
    if (out_term.find(ch) != std::string::npos) return true;
    for (size_t j = from; j < terms.size(); ++j)
      if (j != skip && terms[j].find(ch) != std::string::npos) return true;
    return false;
  };
  auto reduce_private = [&](std::string name, std::string& term, size_t self, size_t from, const std::string& partner) {
    std::vector<int64_t> axes;
    std::string kept;
    for (size_t d = 0; d < term.size(); ++d) {
      if (needed_elsewhere(term[d], self, from) || partner.find(term[d]) != std::string::npos) kept += term[d];
      else axes.push_back(int64_t(d));
    }
    if (axes.empty()) return name;
    term = kept;
    return sub("ReduceSum", {name}, {{"axes", ints_attr(axes)}, {"keepdims", int_attr(0)}});
  };
  auto transpose_to = [&](const std::string& name, const std::string& term, const std::string& order,
                          const std::string& output = "") {
    std::vector<int64_t> perm;
    for (char ch : order) perm.push_back(int64_t(term.find(ch)));
    if (identity_perm(perm)) return output.empty() ? name : sub("Identity", {name}, {}, output);
    return sub("Transpose", {name}, {{"perm", ints_attr(perm)}}, output);
  };
  std::string acc = nd.inputs[0];
  std::string acc_term = terms[0];
  acc = reduce_private(acc, acc_term, 0, 1, "");
  for (size_t i = 1; i < terms.size(); ++i) {
    std::string b = nd.inputs[i], bt = terms[i];
    b = reduce_private(b, bt, i, i + 1, acc_term);
    // What the result of this pair keeps: indices of the output or of later operands.
    auto keep = [&](char ch) { return needed_elsewhere(ch, size_t(-1), i + 1); };
    std::string batch, rows, cols, inner;
    for (char ch : acc_term) {
      const bool in_b = bt.find(ch) != std::string::npos;
      if (in_b && keep(ch)) batch += ch;
      else if (in_b) inner += ch;
      else rows += ch;
    }
    for (char ch : bt)
      if (acc_term.find(ch) == std::string::npos) cols += ch;
    auto dims = [&](const std::string& term, const std::string& name) {
      std::vector<int64_t> s;
      const auto& shape = vals_.at(name).shape;
      for (char ch : term) s.push_back(shape[term.find(ch)]);
      return s;
    };
    auto prod = [&](const std::string& letters, const std::string& term, const std::string& name) {
      int64_t p = 1;
      const auto& shape = vals_.at(name).shape;
      for (char ch : letters) p *= shape[term.find(ch)];
      return p;
    };
    const int64_t M = prod(rows, acc_term, acc), K = prod(inner, acc_term, acc), K2 = prod(inner, bt, b), N = prod(cols, bt, b);
    if (K != K2) fail("summed indices '" + inner + "' differ in size between operands", ALMC_ERR_PARSE);
    std::vector<int64_t> sa = dims(batch, acc), sb = dims(batch, b);
    const std::string at = transpose_to(acc, acc_term, batch + rows + inner);
    const std::string btt = transpose_to(b, bt, batch + inner + cols);
    std::vector<int64_t> ra = sa, rb = sb;
    ra.push_back(M);
    ra.push_back(K);
    rb.push_back(K);
    rb.push_back(N);
    const std::string mm = sub("MatMul", {sub("Reshape", {at, konst_ints(ra)}), sub("Reshape", {btt, konst_ints(rb)})});
    std::vector<int64_t> rs;
    for (size_t d = 0; d < batch.size(); ++d) rs.push_back(std::max(sa[d], sb[d]));
    for (char ch : rows) rs.push_back(vals_.at(acc).shape[acc_term.find(ch)]);
    for (char ch : cols) rs.push_back(vals_.at(b).shape[bt.find(ch)]);
    acc = sub("Reshape", {mm, konst_ints(rs)});
    acc_term = batch + rows + cols;
  }
  // The last result holds exactly the output's indices (the others were summed): order them.
  if (acc_term.size() != out_term.size()) fail("internal: Einsum result indices '" + acc_term + "'", ALMC_ERR_INTERNAL);
  transpose_to(acc, acc_term, out_term, nd.outputs[0]);
}

}  // namespace almc::onnx::planning
