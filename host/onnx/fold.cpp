// Constant folding: ops computed when the model is loaded, and the folds of elementwise ops and
// copies whose inputs are all constant.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/onnx/builder.hpp"

namespace almc::onnx::planning {

namespace {
// v rounded to nearest-even in a binary format of `digits` significant bits whose smallest step
// (subnormal spacing) is 2^min_q and largest finite value max_finite; beyond it, infinity.
double round_to_format(double v, int digits, int min_q, double max_finite) {
  if (!std::isfinite(v) || v == 0) return v;
  int e = 0;
  std::frexp(v, &e);  // |v| = m 2^e, m in [0.5, 1)
  const double q = std::ldexp(1.0, std::max(e - digits, min_q));
  const double r = std::nearbyint(v / q) * q;
  return std::fabs(r) > max_finite ? std::copysign(double(INFINITY), v) : r;
}
double round_to_half(double v) { return round_to_format(v, 11, -24, 65504.0); }
double round_to_bf16(double v) { return round_to_format(v, 8, -133, 3.3895313892515355e38); }
}  // namespace

ConstPtr Builder::fold_ew(EwOp op, const std::vector<ConstPtr>& ins, float alpha, float beta, DType out_dt) {
  std::vector<int64_t> shape;
  for (auto& c : ins) shape = bcast(shape, c->shape, this);
  auto out = std::make_shared<HostTensor>();
  out->dtype = out_dt;
  out->shape = shape;
  const int64_t total = numel(shape);
  if (total > kMaxFoldElems) fail("constant of shape " + shape_str(shape) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
  out->v.resize(size_t(total));
  std::vector<std::vector<int64_t>> st;
  for (auto& c : ins) st.push_back(bstrides(c->shape, shape));
  std::vector<int64_t> idx(shape.size(), 0);
  const bool integer = out_dt != DType::Float && !is_compare(op);
  for (int64_t i = 0; i < total; ++i) {
    double a[3] = {0, 0, 0};
    for (size_t k = 0; k < ins.size(); ++k) {
      int64_t o = 0;
      for (size_t d = 0; d < shape.size(); ++d) o += idx[d] * st[k][d];
      a[k] = ins[k]->v[size_t(o)];
    }
    double r;
    if (op == EW_WHERE) r = a[0] != 0 ? a[1] : a[2];
    else r = ew_apply<double>(op, a[0], a[1], 0.0, alpha, beta);
    if (integer && op == EW_DIV) r = std::trunc(r);
    if (out_dt == DType::Float) r = double(float(r));
    out->v[size_t(i)] = r;
    for (int d = int(shape.size()) - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < shape[size_t(d)]) break;
      idx[size_t(d)] = 0;
    }
  }
  return out;
}

ConstPtr Builder::fold_copy(const CopyParams& cp, const HostTensor& src, int64_t in_off, std::vector<int64_t> shape) {
  auto out = std::make_shared<HostTensor>();
  out->dtype = src.dtype;
  out->shape = std::move(shape);
  if (numel(out->shape) > kMaxFoldElems) fail("constant of shape " + shape_str(out->shape) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
  if (const float* f = src.v.floats()) {  // float32 stays float32 (a transposed weight: no double copy)
    std::vector<float> o(size_t(numel(out->shape)));
    cpu_copy<float>(cp, f + in_off, o.data());
    out->v = Values::of_floats(std::move(o));
  } else {
    out->v.resize(size_t(numel(out->shape)));
    cpu_copy<double>(cp, src.v.double_data() + in_off, out->v.data());
  }
  return out;
}

ConstPtr constant_value(const Node& nd) {
  ConstPtr c;
  if (nd.has("value")) c = nd.attrs.at("value").t;
  auto t = std::make_shared<HostTensor>();
  if (nd.has("value_float")) {
    t->v = {double(nd.getf("value_float", 0))};
    c = t;
  } else if (nd.has("value_floats")) {
    for (float f : nd.attrs.at("value_floats").floats) t->v.push_back(f);
    t->shape = {int64_t(t->v.size())};
    c = t;
  } else if (nd.has("value_int")) {
    t->dtype = DType::Int64;
    t->v = {double(nd.geti("value_int", 0))};
    c = t;
  } else if (nd.has("value_ints")) {
    t->dtype = DType::Int64;
    for (auto i : nd.getints("value_ints")) t->v.push_back(double(i));
    t->shape = {int64_t(t->v.size())};
    c = t;
  }
  return c;
}

void Builder::node_constant() {
  const Node& nd = *cur_;
  const std::string& op = nd.op;
  if (op == "Constant") {
    const ConstPtr c = constant_value(nd);
    if (!c) fail("Constant without a supported value attribute");
    set_const(0, c);
    return;
  }
  if (op == "Shape") {
    const Val& x = need(0);
    int64_t r = int64_t(x.shape.size());
    int64_t s = nd.geti("start", 0), e = nd.geti("end", r);
    if (s < 0) s += r;
    if (e < 0) e += r;
    s = std::clamp<int64_t>(s, 0, r);
    e = std::clamp<int64_t>(e, 0, r);
    auto t = std::make_shared<HostTensor>();
    t->dtype = DType::Int64;
    for (int64_t i = s; i < e; ++i) t->v.push_back(double(x.shape[size_t(i)]));
    t->shape = {int64_t(t->v.size())};
    set_const(0, t);
    return;
  }
  if (op == "Size") {
    auto t = std::make_shared<HostTensor>();
    t->dtype = DType::Int64;
    t->v = {double(numel(need(0).shape))};
    set_const(0, t);
    return;
  }
  if (op == "ConstantOfShape") {
    auto shape = const_ints(0, "the shape");
    auto t = std::make_shared<HostTensor>();
    double value = 0;
    if (nd.has("value")) {
      if (!nd.attrs.at("value").t) fail("value attribute is not a tensor", ALMC_ERR_PARSE);
      const auto& vt = *nd.attrs.at("value").t;
      if (vt.v.size() != 1) fail("value must hold one element", ALMC_ERR_PARSE);
      value = vt.v[0];
      t->dtype = vt.dtype;
    }
    t->shape = shape;
    if (numel(shape) > kMaxFoldElems) fail("constant of shape " + shape_str(shape) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
    t->v.assign(size_t(numel(shape)), value);
    set_const(0, t);
    return;
  }
  if (op == "EyeLike") {  // ones on the k-th diagonal of a matrix shaped like input 0 (its values unread)
    const Val& x = need(0);
    if (x.shape.size() != 2) fail("input of rank " + std::to_string(x.shape.size()) + " (EyeLike takes a matrix)", ALMC_ERR_PARSE);
    const int64_t rows = x.shape[0], cols = x.shape[1], k = nd.geti("k", 0);
    if (numel(x.shape) > kMaxFoldElems) fail("constant of shape " + shape_str(x.shape) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
    auto t = std::make_shared<HostTensor>();
    const int64_t to = nd.geti("dtype", -1);
    t->dtype = to < 0 ? x.dtype : (to == 7 || to == 6) ? DType::Int64 : to == 9 ? DType::Bool : DType::Float;
    t->shape = x.shape;
    t->v.assign(size_t(rows * cols), 0.0);
    for (int64_t i = 0; i < rows; ++i)
      if (i + k >= 0 && i + k < cols) t->v[size_t(i * cols + i + k)] = 1.0;
    set_const(0, t);
    return;
  }
  if (op == "Range") {
    const auto& a = need_const(0, "start");
    const auto& b = need_const(1, "limit");
    const auto& c = need_const(2, "delta");
    if (a.v.size() != 1 || b.v.size() != 1 || c.v.size() != 1 || c.v[0] == 0) fail("invalid Range operands", ALMC_ERR_PARSE);
    double cnt = std::ceil((b.v[0] - a.v[0]) / c.v[0]);
    if (!(cnt < double(kMaxFoldElems))) fail("Range too large", ALMC_ERR_INVALID_ARGUMENT);
    auto t = std::make_shared<HostTensor>();
    t->dtype = a.dtype;
    int64_t n = std::max<int64_t>(0, int64_t(cnt));
    for (int64_t i = 0; i < n; ++i) t->v.push_back(a.v[0] + double(i) * c.v[0]);
    t->shape = {n};
    set_const(0, t);
    return;
  }
  if (op == "Cast" || op == "CastLike") {
    const Val& x = need(0);
    int to = int(nd.geti("to", 1));
    if (op == "CastLike") {  // the data type of input 1 (float64 constants are held as Float too)
      const DType like = need(1).dtype;
      to = like == DType::Int64 ? 7 : like == DType::Bool ? 9 : 1;
    }
    // Constants are folded in double; at run time the executor computes in float32, so a cast to
    // float64 (torch 1.13 writes one before IsInf in nan_to_num) keeps float32, and float16 and
    // bfloat16 (a model exported in half precision) are float32 too; a constant cast to those two
    // is rounded to their precision, the value the model holds.
    const bool half = to == 10 || to == 16;
    DType dt = (to == 1 || to == 11 || half) ? DType::Float : (to == 7 || to == 6) ? DType::Int64 : to == 9 ? DType::Bool : DType::Float;
    if (to != 1 && to != 11 && to != 6 && to != 7 && to != 9 && !half)
      fail("Cast to data type " + std::to_string(to) + " (only float32, float64/float16/bfloat16 (run as float32), int32/64, bool)");
    if (x.c) {
      auto t = std::make_shared<HostTensor>(*x.c);
      t->dtype = dt;
      for (auto& v : t->v)
        v = to == 10 ? round_to_half(v) : to == 16 ? round_to_bf16(v) : dt == DType::Float ? double(float(v)) : dt == DType::Bool ? (v != 0 ? 1.0 : 0.0) : std::trunc(v);
      set_const(0, t);
      return;
    }
    if (dt == DType::Int64 && x.dtype == DType::Float) {  // toward zero; integers are held as floats
      emit_ew(EW_TRUNC, {&x}, 0, 0.f, 0.f, DType::Int64);
      return;
    }
    if (dt == DType::Bool && x.dtype != DType::Bool) {
      const std::string z = konst({}, {0.0}, x.dtype);
      sub("Not", {sub("Equal", {nd.inputs[0], z})}, {}, nd.outputs[0]);
      return;
    }
    Val v = x;
    v.dtype = dt;
    vals_[nd.outputs[0]] = v;
    return;
  }
  fail("is not a constant op", ALMC_ERR_INTERNAL);
}

}  // namespace almc::onnx::planning
