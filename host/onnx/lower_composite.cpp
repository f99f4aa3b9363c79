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
//   Gelu (opset 20)        one elementwise op, EW_GELU or EW_GELU_TANH by `approximate` (the
//                          subgraphs exporters write before opset 20 become Gelu, gelu_match.cpp)
//   RMSNormalization (23)  x / sqrt(ReduceMean(x * x) + epsilon) * scale over the axes from `axis`
//   Attention (23)         per-head Transpose / Reshape (3-D inputs), Concat of the past keys and
//                          values, Expand of shared key/value heads (GQA, MQA), MatMul, the scale,
//                          softcap, masks (boolean, additive, causal) as Where / Add, Softmax, MatMul
//   Trilu                  Where(constant triangle, x, 0)
//   GatherND               a Gather along the first axis of the data reshaped so that the indexed
//                          axes are one (the linear indices computed here from constant indices)
//   CumSum                 a MatMul with a constant triangle of ones over the summed axis (moved last)
//   ScatterND, ScatterElements (constant indices: torch's in-place assignments x[:, 1] = ...)
//                          Where(written, Gather(updates, source of each written slot), data),
//                          the reduction (add, mul, max, min) applied before the Where
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
  if (op == "Attention") return composite_attention();
  if (op == "Trilu") return composite_trilu();
  if (op == "GatherND") return composite_gather_nd();
  if (op == "ScatterND" || op == "ScatterElements") return composite_scatter(op == "ScatterND");
  if (op == "CumSum") return composite_cumsum();
  if (op == "PRelu") {
    need(0);
    need(1);
    const std::string neg = sub("Less", {nd.inputs[0], konst({}, {0.0})});
    const std::string scaled = sub("Mul", {nd.inputs[0], nd.inputs[1]});
    sub("Where", {neg, scaled, nd.inputs[0]}, {}, nd.outputs[0]);
    return;
  }
  if (op == "Xor") {  // a != b on booleans: Not(Equal(Not(a), Not(b))), any nonzero being true
    need(0);
    need(1);
    const std::string a = sub("Not", {nd.inputs[0]}), b = sub("Not", {nd.inputs[1]});
    sub("Not", {sub("Equal", {a, b})}, {}, nd.outputs[0]);
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
  const std::string approx = cur_->gets("approximate", "none");
  if (approx != "none" && approx != "tanh") fail("approximate '" + approx + "' (none and tanh are defined)", ALMC_ERR_PARSE);
  node_elementwise(approx == "tanh" ? EW_GELU_TANH : EW_GELU, 1);
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

// Attention (opset 23): Y = softmax(Q K^T * scale [softcapped] + bias) V per head, where the bias
// is the sum of the mask's (a boolean mask's false entries: -inf; a float mask: added as is) and
// the causal frontier's (key j is visible to query i when j <= i + the past keys' length).
// Q, K, V are [B, heads, S, head size], or [B, S, heads * head size] with the q_num_heads and
// kv_num_heads attributes; query head h reads key/value head h / (q heads / kv heads).
void Builder::composite_attention() {
  const Node& nd = *cur_;
  const Val Q = need(0), K = need(1), V = need(2);
  const bool mask = in(3) != nullptr, mask_bool = mask && in(3)->dtype == DType::Bool;  // (sub() moves vals_)
  const bool past = in(4) != nullptr;
  if (past != (in(5) != nullptr)) fail("past_key and past_value must be given together", ALMC_ERR_PARSE);
  if (in(6)) fail("the nonpad_kv_seqlen input (opset 24) is not supported");
  if (nd.outputs.size() > 3 && !nd.outputs[3].empty()) fail("the qk_matmul_output output is not supported");
  const size_t r = Q.shape.size();
  if (r != 3 && r != 4) fail("Q of rank " + std::to_string(r) + " (3 or 4 is defined)", ALMC_ERR_PARSE);
  if (K.shape.size() != r || V.shape.size() != r) fail("Q, K and V must have the same rank", ALMC_ERR_PARSE);
  const int64_t B = Q.shape[0];
  if (K.shape[0] != B || V.shape[0] != B)
    fail("Q, K and V differ in batch: " + shape_str(Q.shape) + ", " + shape_str(K.shape) + ", " + shape_str(V.shape), ALMC_ERR_PARSE);
  std::string q = nd.inputs[0], k = nd.inputs[1], v = nd.inputs[2];
  int64_t Hq, Hkv, Sq, Skv, D, Dv;
  auto heads_first = [&](const std::string& name, int64_t S, int64_t H, int64_t hd) {
    return sub("Transpose", {sub("Reshape", {name, konst_ints({B, S, H, hd})})}, {{"perm", ints_attr({0, 2, 1, 3})}});
  };
  if (r == 3) {
    Hq = nd.geti("q_num_heads", 0);
    Hkv = nd.geti("kv_num_heads", 0);
    if (Hq <= 0 || Hkv <= 0) fail("3-D Q, K and V need positive q_num_heads and kv_num_heads attributes", ALMC_ERR_PARSE);
    if (Q.shape[2] % Hq || K.shape[2] % Hkv || V.shape[2] % Hkv)
      fail("hidden sizes " + shape_str({Q.shape[2], K.shape[2], V.shape[2]}) + " not divisible by the heads (" +
               std::to_string(Hq) + ", " + std::to_string(Hkv) + ")", ALMC_ERR_PARSE);
    Sq = Q.shape[1];
    Skv = K.shape[1];
    D = Q.shape[2] / Hq;
    Dv = V.shape[2] / Hkv;
    if (K.shape[2] / Hkv != D) fail("Q and K head sizes differ", ALMC_ERR_PARSE);
    if (V.shape[1] != Skv) fail("K and V sequence lengths differ", ALMC_ERR_PARSE);
    q = heads_first(q, Sq, Hq, D);
    k = heads_first(k, Skv, Hkv, D);
    v = heads_first(v, Skv, Hkv, Dv);
  } else {
    Hq = Q.shape[1];
    Sq = Q.shape[2];
    D = Q.shape[3];
    Hkv = K.shape[1];
    Skv = K.shape[2];
    Dv = V.shape[3];
    if (K.shape[3] != D || V.shape[1] != Hkv || V.shape[2] != Skv)
      fail("K " + shape_str(K.shape) + " and V " + shape_str(V.shape) + " do not match Q " + shape_str(Q.shape), ALMC_ERR_PARSE);
  }
  if (Hq % Hkv) fail(std::to_string(Hq) + " query heads are not a multiple of " + std::to_string(Hkv) + " key/value heads", ALMC_ERR_PARSE);
  int64_t P = 0;
  if (past) {
    const Val& PK = need(4);
    const Val& PV = need(5);
    if (PK.shape.size() != 4 || PV.shape.size() != 4 || PK.shape[0] != B || PK.shape[1] != Hkv || PK.shape[3] != D ||
        PV.shape[0] != B || PV.shape[1] != Hkv || PV.shape[2] != PK.shape[2] || PV.shape[3] != Dv)
      fail("past_key " + shape_str(PK.shape) + " / past_value " + shape_str(PV.shape) + " do not match the keys and values", ALMC_ERR_PARSE);
    P = PK.shape[2];
    k = sub("Concat", {nd.inputs[4], k}, {{"axis", int_attr(2)}});
    v = sub("Concat", {nd.inputs[5], v}, {{"axis", int_attr(2)}});
  }
  const int64_t T = Skv + P;
  if (nd.outputs.size() > 1 && !nd.outputs[1].empty()) sub("Identity", {k}, {}, nd.outputs[1]);
  if (nd.outputs.size() > 2 && !nd.outputs[2].empty()) sub("Identity", {v}, {}, nd.outputs[2]);
  if (Hq != Hkv) {  // each key/value head serves Hq / Hkv consecutive query heads
    const int64_t G = Hq / Hkv;
    auto repeat = [&](const std::string& name, int64_t hd) {
      const std::string e = sub("Expand", {sub("Reshape", {name, konst_ints({B, Hkv, 1, T, hd})}), konst_ints({B, Hkv, G, T, hd})});
      return sub("Reshape", {e, konst_ints({B, Hq, T, hd})});
    };
    k = repeat(k, D);
    v = repeat(v, Dv);
  }
  const double scale = nd.has("scale") ? double(nd.getf("scale", 1.f)) : 1.0 / std::sqrt(double(D));
  std::string s = sub("MatMul", {q, sub("Transpose", {k}, {{"perm", ints_attr({0, 1, 3, 2})}})});
  s = sub("Mul", {s, konst({}, {scale})});
  const double cap = nd.getf("softcap", 0.f);
  if (cap < 0) fail("negative softcap", ALMC_ERR_PARSE);
  if (cap > 0) s = sub("Mul", {sub("Tanh", {sub("Div", {s, konst({}, {cap})})}), konst({}, {cap})});
  const std::string minus_inf = konst({}, {-INFINITY});
  if (mask) {
    if (mask_bool) s = sub("Where", {nd.inputs[3], s, minus_inf});
    else s = sub("Add", {s, nd.inputs[3]});
  }
  if (nd.geti("is_causal", 0) != 0) {
    std::vector<double> vis(size_t(Sq * T));
    for (int64_t i = 0; i < Sq; ++i)
      for (int64_t j = 0; j < T; ++j) vis[size_t(i * T + j)] = j <= i + P ? 1.0 : 0.0;
    s = sub("Where", {konst({Sq, T}, std::move(vis), DType::Bool), s, minus_inf});
  }
  std::string p = sub("Softmax", {s}, {{"axis", int_attr(-1)}});
  // A row whose every key is masked is NaN after the softmax; the operator defines it as zeros.
  if (mask) p = sub("Where", {sub("Equal", {p, p}), p, konst({}, {0.0})});
  if (r == 4) {
    sub("MatMul", {p, v}, {}, nd.outputs[0]);
    return;
  }
  const std::string y = sub("Transpose", {sub("MatMul", {p, v})}, {{"perm", ints_attr({0, 2, 1, 3})}});
  sub("Reshape", {y, konst_ints({B, Sq, Hq * Dv})}, {}, nd.outputs[0]);
}

// Trilu: keeps x[..., i, j] where j - i >= k (upper) or j - i <= k (lower), zeros elsewhere.
void Builder::composite_trilu() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  if (r < 2) fail("input of rank " + std::to_string(r) + " (needs at least 2)", ALMC_ERR_PARSE);
  int64_t k = 0;
  if (in(1)) {
    const auto ks = const_ints(1, "k");
    if (ks.size() != 1) fail("k must be one value", ALMC_ERR_PARSE);
    k = std::clamp<int64_t>(ks[0], -kMaxAttr, kMaxAttr);
  }
  const bool upper = nd.geti("upper", 1) != 0;
  const int64_t R = X.shape[r - 2], C = X.shape[r - 1];
  const DType dt = X.dtype;  // (konst() below may move vals_)
  std::vector<double> keep(size_t(numel({R, C})));
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j) keep[size_t(i * C + j)] = (upper ? j - i >= k : j - i <= k) ? 1.0 : 0.0;
  sub("Where", {konst({R, C}, std::move(keep), DType::Bool), nd.inputs[0], konst({}, {0.0}, dt)}, {}, nd.outputs[0]);
}

// The index tuple idx[0 .. depth-1] into axes of sizes dims[0 .. depth-1] as one row-major linear
// index (negative entries count from the end; out of range is refused): GatherND, ScatterND and
// ScatterElements's constant indices.
int64_t Builder::linear_index(const double* idx, const int64_t* dims, int64_t depth) const {
  int64_t l = 0;
  for (int64_t j = 0; j < depth; ++j) {
    const int64_t dim = dims[j], v = to_i64(idx[j]);
    if (v < -dim || v >= dim) fail("index " + std::to_string(v) + " out of range for an axis of " + std::to_string(dim), ALMC_ERR_PARSE);
    l = l * dim + (v < 0 ? v + dim : v);
  }
  return l;
}

// GatherND: out[b.., i.., rest] = data[b.., idx[b.., i.., :], rest] with batch_dims leading batch
// axes. The indexed axes (batch and the idx's depth) are flattened into one, so one Gather along
// axis 0 does it; constant indices become linear indices here. Runtime indices are taken when
// they address one axis (batch_dims 0, depth 1), which is a Gather as it stands.
void Builder::composite_gather_nd() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const Val& I = need(1);
  const int64_t b = nd.geti("batch_dims", 0);
  const int64_t r = int64_t(X.shape.size()), qr = int64_t(I.shape.size());
  if (qr < 1) fail("indices of rank 0", ALMC_ERR_PARSE);
  const int64_t depth = I.shape.back();
  if (b < 0 || b >= std::min(r, qr)) fail("batch_dims " + std::to_string(b) + " out of range", ALMC_ERR_PARSE);
  if (depth < 1 || b + depth > r)
    fail("index depth " + std::to_string(depth) + " does not fit data " + shape_str(X.shape) + " with batch_dims " + std::to_string(b),
         ALMC_ERR_PARSE);
  for (int64_t i = 0; i < b; ++i)
    if (I.shape[size_t(i)] != X.shape[size_t(i)]) fail("indices " + shape_str(I.shape) + " and data " + shape_str(X.shape) + " differ in batch", ALMC_ERR_PARSE);
  std::vector<int64_t> lead(I.shape.begin(), I.shape.end() - 1), flat = {1};
  for (int64_t i = 0; i < b + depth; ++i) flat[0] *= X.shape[size_t(i)];
  flat.insert(flat.end(), X.shape.begin() + b + depth, X.shape.end());
  if (!I.c) {
    if (b != 0 || depth != 1) fail("runtime indices (not computable when the model is loaded) with batch_dims or an index depth above 1");
    const std::string idx = sub("Reshape", {nd.inputs[1], konst_ints(lead)});
    sub("Gather", {nd.inputs[0], idx}, {{"axis", int_attr(0)}}, nd.outputs[0]);
    return;
  }
  const int64_t n = numel(lead);
  int64_t per_batch = 1;  // the positions of the index tuples within one batch entry
  for (int64_t i = b; i < qr - 1; ++i) per_batch *= I.shape[size_t(i)];
  int64_t block = 1;  // data entries per batch entry along the indexed axes
  for (int64_t i = b; i < b + depth; ++i) block *= X.shape[size_t(i)];
  if (flat[0] > kMaxIndex) fail("indexed axes of " + std::to_string(flat[0]) + " entries (the executor indexes up to 2^24)");
  std::vector<double> lin(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    lin[size_t(t)] = double((t / per_batch) * block + linear_index(I.c->v.double_data() + t * depth, X.shape.data() + b, depth));
  }
  const std::string data = sub("Reshape", {nd.inputs[0], konst_ints(flat)});
  sub("Gather", {data, konst(lead, std::move(lin), DType::Int64)}, {{"axis", int_attr(0)}}, nd.outputs[0]);
}

// ScatterND (indices [..., k] address the slices data[i_0, .., i_k-1, ...]) and ScatterElements
// (indices shaped like updates, each replacing the coordinate `axis` of its own position): the
// data is viewed as [slots, rest...] (ScatterND: slots = the first k axes; ScatterElements: every
// element), the slot each update writes is computed here from the constant indices, and
//   out = Where(written, Gather(updates, source), data)   (reduction none: the last write wins)
//   out = Where(written, data OP Gather(updates, source), data)   (add, mul, max, min: each slot
//                                                                  written at most once)
void Builder::composite_scatter(bool nd_form) {
  const Node& nd = *cur_;
  const Val X = need(0), I = need(1), U = need(2);
  if (!I.c) fail("runtime indices (not computable when the model is loaded)");
  const std::string red = nd.gets("reduction", "none");
  const char* red_op = red == "add" ? "Add" : red == "mul" ? "Mul" : red == "max" ? "Max" : red == "min" ? "Min" : nullptr;
  if (red != "none" && !red_op) fail("reduction '" + red + "'", ALMC_ERR_PARSE);
  const int64_t r = int64_t(X.shape.size());
  std::vector<int64_t> slot_shape, rest;  // data as [slots, rest...]
  std::vector<int64_t> target;            // the slot of each update (slice or element), in order
  if (nd_form) {
    if (I.shape.empty()) fail("indices of rank 0", ALMC_ERR_PARSE);
    const int64_t k = I.shape.back();
    if (k < 1 || k > r) fail("index depth " + std::to_string(k) + " for data of rank " + std::to_string(r), ALMC_ERR_PARSE);
    std::vector<int64_t> want(I.shape.begin(), I.shape.end() - 1);
    want.insert(want.end(), X.shape.begin() + k, X.shape.end());
    if (U.shape != want) fail("updates " + shape_str(U.shape) + " (expected " + shape_str(want) + ")", ALMC_ERR_PARSE);
    rest.assign(X.shape.begin() + k, X.shape.end());
    int64_t slots = 1;
    for (int64_t a = 0; a < k; ++a) slots *= X.shape[size_t(a)];
    slot_shape = {slots};
    const int64_t n = numel(I.shape) / k;
    for (int64_t t = 0; t < n; ++t) {
      target.push_back(linear_index(I.c->v.double_data() + t * k, X.shape.data(), k));
    }
  } else {
    const int64_t axis = axis_norm(nd.geti("axis", 0), size_t(r));
    if (I.shape != U.shape || int64_t(I.shape.size()) != r)
      fail("indices " + shape_str(I.shape) + " and updates " + shape_str(U.shape) + " must have one shape, of data's rank", ALMC_ERR_PARSE);
    for (int64_t a = 0; a < r; ++a)
      if (I.shape[size_t(a)] > X.shape[size_t(a)]) fail("indices " + shape_str(I.shape) + " larger than data " + shape_str(X.shape), ALMC_ERR_PARSE);
    slot_shape = {numel(X.shape)};
    const auto ds = contig_strides(X.shape), is = contig_strides(I.shape);
    const int64_t n = numel(I.shape), dim = X.shape[size_t(axis)];
    for (int64_t e = 0; e < n; ++e) {
      int64_t l = 0;
      for (int64_t a = 0; a < r; ++a) {
        int64_t c = (e / is[size_t(a)]) % I.shape[size_t(a)];
        if (a == axis) c = linear_index(I.c->v.double_data() + e, &dim, 1);
        l += c * ds[size_t(a)];
      }
      target.push_back(l);
    }
  }
  const int64_t slots = slot_shape[0];
  if (slots > kMaxIndex || int64_t(target.size()) > kMaxIndex)
    fail("scattering " + std::to_string(target.size()) + " updates into " + std::to_string(slots) + " slots (the executor indexes up to 2^24)");
  std::vector<double> source(size_t(slots), 0.0), written(size_t(slots), 0.0);
  for (size_t j = 0; j < target.size(); ++j) {
    const size_t t = size_t(target[j]);
    if (red_op && written[t] != 0.0) fail("reduction '" + red + "' with an index written twice");
    written[t] = 1.0;
    source[t] = double(j);
  }
  if (target.empty()) {
    sub("Identity", {nd.inputs[0]}, {}, nd.outputs[0]);
    return;
  }
  std::vector<int64_t> data2 = slot_shape, upd2 = {int64_t(target.size())}, mask_shape = slot_shape;
  data2.insert(data2.end(), rest.begin(), rest.end());
  upd2.insert(upd2.end(), rest.begin(), rest.end());
  mask_shape.resize(data2.size(), 1);
  const std::string data = sub("Reshape", {nd.inputs[0], konst_ints(data2)});
  std::string got = sub("Gather", {sub("Reshape", {nd.inputs[2], konst_ints(upd2)}), konst({slots}, std::move(source), DType::Int64)},
                        {{"axis", int_attr(0)}});
  if (red_op) got = sub(red_op, {data, got});
  const std::string out = sub("Where", {konst(mask_shape, std::move(written), DType::Bool), got, data});
  sub("Reshape", {out, konst_ints(X.shape)}, {}, nd.outputs[0]);
}

// CumSum along a constant axis: out[.., j, ..] = sum of x[.., i, ..] over i <= j (exclusive: i < j;
// reverse: i >= j, or i > j), as x (axis moved last) times a constant [L, L] triangle of ones.
void Builder::composite_cumsum() {
  const Node& nd = *cur_;
  const Val X = need(0);
  const auto ax = const_ints(1, "the CumSum axis");
  if (ax.size() != 1) fail("the axis must be one value", ALMC_ERR_PARSE);
  const int64_t r = int64_t(X.shape.size());
  const int64_t a = axis_norm(ax[0], size_t(r));
  const int64_t L = X.shape[size_t(a)];
  if (L > 4096) fail("a cumulative sum over " + std::to_string(L) + " entries (the executor takes up to 4096)");
  const bool excl = nd.geti("exclusive", 0) != 0, rev = nd.geti("reverse", 0) != 0;
  std::vector<double> tri(size_t(L * L));
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < L; ++j) tri[size_t(i * L + j)] = (rev ? (excl ? i > j : i >= j) : (excl ? i < j : i <= j)) ? 1.0 : 0.0;
  std::vector<int64_t> perm, inv(static_cast<size_t>(r));
  for (int64_t d = 0; d < r; ++d)
    if (d != a) perm.push_back(d);
  perm.push_back(a);
  for (int64_t d = 0; d < r; ++d) inv[size_t(perm[size_t(d)])] = d;
  const bool last = a == r - 1;
  const std::string moved = last ? nd.inputs[0] : sub("Transpose", {nd.inputs[0]}, {{"perm", ints_attr(perm)}});
  const std::string tri_name = konst({L, L}, std::move(tri));
  if (last) {
    sub("MatMul", {moved, tri_name}, {}, nd.outputs[0]);
    return;
  }
  sub("Transpose", {sub("MatMul", {moved, tri_name})}, {{"perm", ints_attr(inv)}}, nd.outputs[0]);
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
    // The sizes of `letters` in operand `name`, whose indices are `term` (the letters sit anywhere
    // in it: a batch index need not lead).
    auto dims = [&](const std::string& letters, const std::string& term, const std::string& name) {
      std::vector<int64_t> s;
      const auto& shape = vals_.at(name).shape;
      for (char ch : letters) s.push_back(shape[term.find(ch)]);
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
    std::vector<int64_t> sa = dims(batch, acc_term, acc), sb = dims(batch, bt, b);
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
