// Plan building: concrete shapes for one batch size, constant folding (shape arithmetic and every
// node whose inputs are constant), one kernel step per remaining node, elementwise fusion, GEMM
// epilogues, then a liveness-based arena.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>
#include <unordered_map>

#include "host/onnx/plan.hpp"

namespace almc::onnx {
namespace {

constexpr int64_t kMaxElems = int64_t(1) << 31;      // per runtime tensor
constexpr int64_t kMaxFoldElems = int64_t(1) << 26;  // per constant (held in double)
constexpr int64_t kMaxAttr = int64_t(1) << 31;       // pads, strides, dilations, kernel sizes

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::vector<int64_t> contig_strides(const std::vector<int64_t>& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = int(s.size()) - 2; i >= 0; --i) st[size_t(i)] = st[size_t(i) + 1] * s[size_t(i) + 1];
  return st;
}

int64_t to_i64(double v) {
  if (v > 4.0e18) return int64_t(4e18);
  if (v < -4.0e18) return -int64_t(4e18);
  return int64_t(v);
}

struct Val {
  DType dtype = DType::Float;
  std::vector<int64_t> shape;
  ConstPtr c;  // constant value, or null for a runtime tensor
  int sid = -1;
  int64_t off = 0;
};

struct EwOpInfo {
  EwOp op;
  int arity;
};
const std::map<std::string, EwOpInfo>& ew_ops() {
  static const std::map<std::string, EwOpInfo> m = {
      {"Identity", {EW_COPY, 1}}, {"Dropout", {EW_COPY, 1}}, {"Neg", {EW_NEG, 1}}, {"Abs", {EW_ABS, 1}},
      {"Sqrt", {EW_SQRT, 1}}, {"Reciprocal", {EW_RECIP, 1}}, {"Exp", {EW_EXP, 1}}, {"Log", {EW_LOG, 1}},
      {"Sin", {EW_SIN, 1}}, {"Cos", {EW_COS, 1}}, {"Tanh", {EW_TANH, 1}}, {"Sigmoid", {EW_SIGMOID, 1}},
      {"Relu", {EW_RELU, 1}}, {"LeakyRelu", {EW_LEAKY_RELU, 1}}, {"Elu", {EW_ELU, 1}}, {"Softplus", {EW_SOFTPLUS, 1}},
      {"Erf", {EW_ERF, 1}}, {"Floor", {EW_FLOOR, 1}}, {"Ceil", {EW_CEIL, 1}}, {"Not", {EW_NOT, 1}},
      {"Add", {EW_ADD, 2}}, {"Sub", {EW_SUB, 2}}, {"Mul", {EW_MUL, 2}}, {"Div", {EW_DIV, 2}}, {"Pow", {EW_POW, 2}},
      {"Max", {EW_MAX, 2}}, {"Min", {EW_MIN, 2}}, {"Equal", {EW_EQUAL, 2}}, {"Less", {EW_LESS, 2}},
      {"Greater", {EW_GREATER, 2}}, {"LessOrEqual", {EW_LESS_EQ, 2}}, {"GreaterOrEqual", {EW_GREATER_EQ, 2}},
      {"And", {EW_AND, 2}}, {"Or", {EW_OR, 2}}, {"Where", {EW_WHERE, 3}}, {"Clip", {EW_CLIP, 1}}};
  return m;
}

bool is_compare(EwOp op) { return (op >= EW_EQUAL && op <= EW_OR) || op == EW_NOT; }

class Builder {
 public:
  Builder(const Graph& g, const IoSpec& io, int64_t n, Plan& p) : g_(g), io_(io), n_(n), P(p) {}

  void build();

 private:
  const Graph& g_;
  const IoSpec& io_;
  int64_t n_;
  Plan& P;
  std::unordered_map<std::string, Val> vals_;
  std::map<const HostTensor*, int64_t> const_off_;
  std::vector<ConstPtr> keep_;
  const Node* cur_ = nullptr;

  [[noreturn]] void fail(const std::string& msg, almc_status st = ALMC_ERR_UNSUPPORTED) const {
    throw Error(st, "node " + (cur_ ? cur_->label() : std::string("?")) + ": " + msg);
  }

  int64_t numel(const std::vector<int64_t>& s) const {
    int64_t n = 1;
    for (auto d : s) {
      if (d < 0) fail("negative dimension in shape " + shape_str(s), ALMC_ERR_PARSE);
      if (d != 0 && n > kMaxElems / d) fail("tensor of shape " + shape_str(s) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
      n *= d;
    }
    if (n > kMaxElems) fail("tensor of shape " + shape_str(s) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
    return n;
  }

  // Constants are folded on the host in double: bound their rank and size.
  void check_const(const HostTensor& c) const {
    if (c.shape.size() > size_t(kMaxDims)) fail("rank " + std::to_string(c.shape.size()) + " above the executor's limit of 8");
    if (numel(c.shape) > kMaxFoldElems) fail("constant of shape " + shape_str(c.shape) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
  }
  // Attribute values that enter index arithmetic.
  void check_attr(const std::vector<int64_t>& v, const char* what) const {
    for (auto x : v)
      if (x < -kMaxAttr || x > kMaxAttr) fail(std::string(what) + " value " + std::to_string(x) + " is out of range", ALMC_ERR_PARSE);
  }
  void check_nonempty(const std::vector<int64_t>& s) const {
    for (auto d : s)
      if (d == 0) fail("empty tensor of shape " + shape_str(s) + " (zero-size operands are not supported)");
  }

  const Val* in(size_t i) const {
    if (i >= cur_->inputs.size() || cur_->inputs[i].empty()) return nullptr;
    auto it = vals_.find(cur_->inputs[i]);
    if (it == vals_.end()) fail("input '" + cur_->inputs[i] + "' is not defined", ALMC_ERR_PARSE);
    return &it->second;
  }
  const Val& need(size_t i) const {
    const Val* v = in(i);
    if (!v) fail("missing input " + std::to_string(i), ALMC_ERR_PARSE);
    return *v;
  }
  const HostTensor& need_const(size_t i, const char* what) const {
    const Val& v = need(i);
    if (!v.c) fail(std::string(what) + " must be a constant (computable when the model is loaded)");
    return *v.c;
  }
  std::vector<int64_t> const_ints(size_t i, const char* what) const {
    const HostTensor& t = need_const(i, what);
    std::vector<int64_t> r;
    for (double v : t.v) r.push_back(to_i64(v));
    return r;
  }
  int64_t axis_norm(int64_t a, size_t rank) const {
    const int64_t r = int64_t(rank);
    if (a < -r || a >= r) fail("axis " + std::to_string(a) + " out of range for rank " + std::to_string(r), ALMC_ERR_PARSE);
    return a < 0 ? a + r : a;
  }

  void set_const(size_t out_i, ConstPtr c) {
    check_const(*c);
    Val v;
    v.dtype = c->dtype;
    v.shape = c->shape;
    v.c = std::move(c);
    vals_[cur_->outputs.at(out_i)] = std::move(v);
  }
  Val& def(size_t out_i, const std::vector<int64_t>& shape, DType dt = DType::Float) {
    if (int(shape.size()) > kMaxDims) fail("rank " + std::to_string(shape.size()) + " above the executor's limit of 8");
    Storage s;
    s.size = std::max<int64_t>(1, numel(shape));
    P.storages.push_back(s);
    Val v;
    v.dtype = dt;
    v.shape = shape;
    v.sid = int(P.storages.size()) - 1;
    Val& r = vals_[cur_->outputs.at(out_i)];
    r = std::move(v);
    return r;
  }
  void alias(size_t out_i, const Val& src, const std::vector<int64_t>& shape) {
    if (numel(shape) != numel(src.shape)) fail("cannot view " + shape_str(src.shape) + " as " + shape_str(shape), ALMC_ERR_PARSE);
    Val v = src;
    v.shape = shape;
    vals_[cur_->outputs.at(out_i)] = v;
  }
  BufRef ref(const Val& v) {
    BufRef r;
    if (v.c) {
      r.space = BufRef::Const;
      auto it = const_off_.find(v.c.get());
      if (it == const_off_.end()) {
        int64_t off = int64_t(P.consts.size());
        off = (off + 15) / 16 * 16;
        P.consts.resize(size_t(off));
        for (double x : v.c->v) P.consts.push_back(float(x));
        it = const_off_.emplace(v.c.get(), off).first;
        keep_.push_back(v.c);
      }
      r.off = it->second;
    } else {
      r.id = v.sid;
      r.off = v.off;
    }
    return r;
  }
  int temp(int64_t floats) {
    Storage s;
    s.size = std::max<int64_t>(1, floats);
    P.storages.push_back(s);
    return int(P.storages.size()) - 1;
  }
  Step& push(StepKind k) {
    P.steps.emplace_back();
    P.steps.back().kind = k;
    P.steps.back().node = cur_->name;
    return P.steps.back();
  }

  static std::vector<int64_t> bcast(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const Builder* self) {
    std::vector<int64_t> r(std::max(a.size(), b.size()), 1);
    for (size_t i = 0; i < r.size(); ++i) {
      int64_t da = i < r.size() - a.size() ? 1 : a[i - (r.size() - a.size())];
      int64_t db = i < r.size() - b.size() ? 1 : b[i - (r.size() - b.size())];
      if (da != db && da != 1 && db != 1)
        self->fail("shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast", ALMC_ERR_PARSE);
      r[i] = da == 1 ? db : da;
    }
    return r;
  }
  static std::vector<int64_t> bstrides(const std::vector<int64_t>& in, const std::vector<int64_t>& out) {
    std::vector<int64_t> st(out.size(), 0), cs = contig_strides(in);
    for (size_t i = 0; i < in.size(); ++i) {
      size_t o = out.size() - in.size() + i;
      st[o] = in[i] == 1 ? 0 : cs[i];
    }
    return st;
  }

  // ---- constant folding
  ConstPtr fold_ew(EwOp op, const std::vector<ConstPtr>& ins, float alpha, float beta, DType out_dt) {
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
  ConstPtr fold_copy(const CopyParams& cp, const HostTensor& src, int64_t in_off, std::vector<int64_t> shape) {
    auto out = std::make_shared<HostTensor>();
    out->dtype = src.dtype;
    out->shape = std::move(shape);
    if (numel(out->shape) > kMaxFoldElems) fail("constant of shape " + shape_str(out->shape) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
    out->v.resize(size_t(numel(out->shape)));
    cpu_copy<double>(cp, src.v.data() + in_off, out->v.data());
    return out;
  }

  // ---- emission helpers
  void emit_ew(EwOp op, const std::vector<const Val*>& ins, size_t out_i, float alpha, float beta, DType out_dt) {
    std::vector<int64_t> shape;
    for (auto* v : ins) shape = bcast(shape, v->shape, this);
    Val& o = def(out_i, shape, out_dt);
    Step& s = push(StepKind::Ew);
    s.ew_shape = shape;
    EwParams& p = s.ew;
    p.ndim = int(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) p.shape[d] = shape[d];
    p.n_in = int(ins.size());
    for (size_t k = 0; k < ins.size(); ++k) {
      auto st = bstrides(ins[k]->shape, shape);
      for (size_t d = 0; d < st.size(); ++d) p.stride[k][d] = st[d];
      s.refs.push_back(ref(*ins[k]));
    }
    EwInstr in{};
    in.op = uint8_t(op);
    in.dst = uint8_t(ins.size());
    in.alpha = alpha;
    in.beta = beta;
    if (op == EW_WHERE) {
      in.c = 0;
      in.a = 1;
      in.b = 2;
    } else {
      in.a = 0;
      in.b = ins.size() > 1 ? 1 : 0;
    }
    p.instr[0] = in;
    p.n_instr = 1;
    p.out_reg = int(ins.size());
    BufRef r;
    r.id = o.sid;
    s.refs.push_back(r);
  }
  void emit_copy(const CopyParams& cp, const Val& src, int64_t in_off, int out_sid, int64_t out_off) {
    Step& s = push(StepKind::Copy);
    s.copy = cp;
    BufRef a = ref(src);
    a.off += in_off;
    s.refs.push_back(a);
    BufRef b;
    b.id = out_sid;
    b.off = out_off;
    s.refs.push_back(b);
  }
  static CopyParams make_copy(const std::vector<int64_t>& shape, const std::vector<int64_t>& in_st,
                              const std::vector<int64_t>& out_st) {
    if (shape.size() > size_t(kMaxDims)) throw Error(ALMC_ERR_UNSUPPORTED, "rank above the executor's limit of 8");
    CopyParams c{};
    c.ndim = int(shape.size());
    c.total = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      c.shape[d] = shape[d];
      c.in_stride[d] = in_st[d];
      c.out_stride[d] = out_st[d];
      c.total *= shape[d];
    }
    return c;
  }

  void node();
  void node_elementwise(const EwOpInfo& info);
  void node_gemm();
  void node_matmul();
  void node_conv(bool transpose);
  void node_pool();
  void node_resize();
  void node_pad();
  void node_reduce();
  void node_softmax();
  void node_norm();
  void node_slice_like();

  void finalize();
};

void Builder::build() {
  // Graph inputs: x, the level, and nothing else.
  for (const auto& vi : g_.inputs) {
    const bool is_x = vi.name == io_.x_input, is_level = vi.name == io_.level_input;
    if (!is_x && !is_level)
      throw Error(ALMC_ERR_UNSUPPORTED, "graph input '" + vi.name + "' is neither x ('" + io_.x_input +
                                            "') nor the level" + (io_.level_input.empty() ? "" : " ('" + io_.level_input + "')"));
    std::vector<int64_t> shape = vi.dims;
    if (is_x) {
      if (shape.empty()) throw Error(ALMC_ERR_UNSUPPORTED, "input x '" + vi.name + "' must have a batch dimension first");
      shape[0] = n_;
      for (size_t d = 1; d < shape.size(); ++d)
        if (shape[d] < 0)
          throw Error(ALMC_ERR_UNSUPPORTED, "input x '" + vi.name + "' has a dynamic dimension " + std::to_string(d) +
                                                "; only the first (batch) dimension may be dynamic");
    } else {
      for (size_t d = 0; d < shape.size(); ++d)
        if (shape[d] < 0) {
          if (d != 0)
            throw Error(ALMC_ERR_UNSUPPORTED, "level input '" + vi.name + "' has a dynamic dimension " + std::to_string(d));
          shape[d] = n_;
        }
      // A level shaped [N] with a fixed N equal to... keep what the model says, batch when dynamic.
    }
    Node fake;
    fake.name = vi.name;
    fake.op = "input";
    fake.outputs = {vi.name};
    cur_ = &fake;
    if (int64_t(shape.size()) > kMaxDims) fail("rank above 8");
    Val& v = def(0, shape);
    P.storages[size_t(v.sid)].pinned_start = true;
    BufRef r;
    r.id = v.sid;
    if (is_x) {
      P.x = r;
      P.x_count = numel(shape);
    } else {
      P.level = r;
      P.level_count = numel(shape);
      P.level_used = true;
    }
    cur_ = nullptr;
  }
  if (!vals_.count(io_.x_input)) throw Error(ALMC_ERR_INVALID_ARGUMENT, "the model has no input named '" + io_.x_input + "'");
  if (!io_.level_input.empty() && !vals_.count(io_.level_input))
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "the model has no input named '" + io_.level_input + "'");
  for (const auto& kv : g_.initializers) {
    if (kv.second->shape.size() > size_t(kMaxDims))
      throw Error(ALMC_ERR_UNSUPPORTED, "initializer '" + kv.first + "' has rank above the executor's limit of 8");
    Val v;
    v.dtype = kv.second->dtype;
    v.shape = kv.second->shape;
    v.c = kv.second;
    vals_[kv.first] = v;
  }
  for (const auto& nd : g_.nodes) {
    cur_ = &nd;
    node();
  }
  cur_ = nullptr;
  auto it = vals_.find(io_.output);
  if (it == vals_.end()) throw Error(ALMC_ERR_PARSE, "graph output '" + io_.output + "' was not computed");
  const Val& o = it->second;
  if (o.shape.empty() || o.shape[0] != n_)
    throw Error(ALMC_ERR_UNSUPPORTED, "graph output '" + io_.output + "' has shape " + shape_str(o.shape) +
                                          "; its first dimension must be the batch (" + std::to_string(n_) + ")");
  P.out_count = numel(o.shape);
  if (o.c || o.sid == P.x.id || (P.level_used && o.sid == P.level.id)) {
    // The output must be its own arena storage: copy a constant or an input through.
    Node fake;
    fake.name = "output_copy";
    fake.op = "Identity";
    fake.inputs = {io_.output};
    fake.outputs = {io_.output + "#copy"};
    cur_ = &fake;
    node_elementwise({EW_COPY, 1});
    cur_ = nullptr;
    P.out = ref(vals_[io_.output + "#copy"]);
  } else {
    P.out = ref(o);
  }
  P.storages[size_t(P.out.id)].pinned_end = true;
  finalize();
}

void Builder::node() {
  const Node& nd = *cur_;
  const std::string& op = nd.op;
  auto ew = ew_ops().find(op);
  if (op == "Constant") {
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
  if (op == "Cast") {
    const Val& x = need(0);
    int to = int(nd.geti("to", 1));
    DType dt = to == 1 ? DType::Float : (to == 7 || to == 6) ? DType::Int64 : to == 9 ? DType::Bool : DType::Float;
    if (to != 1 && to != 6 && to != 7 && to != 9) fail("Cast to data type " + std::to_string(to) + " (only float32, int32/64, bool)");
    if (x.c) {
      auto t = std::make_shared<HostTensor>(*x.c);
      t->dtype = dt;
      for (auto& v : t->v) v = dt == DType::Float ? double(float(v)) : dt == DType::Bool ? (v != 0 ? 1.0 : 0.0) : std::trunc(v);
      set_const(0, t);
      return;
    }
    if (dt != DType::Float && x.dtype == DType::Float)
      fail("a runtime cast from float32 to an integer type is not supported");
    Val v = x;
    v.dtype = dt;
    vals_[nd.outputs[0]] = v;
    return;
  }
  if (ew != ew_ops().end()) {
    node_elementwise(ew->second);
    return;
  }
  if (op == "Gemm") return node_gemm();
  if (op == "MatMul") return node_matmul();
  if (op == "Conv") return node_conv(false);
  if (op == "ConvTranspose") return node_conv(true);
  if (op == "AveragePool" || op == "MaxPool") return node_pool();
  if (op == "Resize") return node_resize();
  if (op == "Pad") return node_pad();
  if (op == "ReduceMean" || op == "ReduceSum" || op == "GlobalAveragePool") return node_reduce();
  if (op == "Softmax" || op == "LogSoftmax") return node_softmax();
  if (op == "LayerNormalization" || op == "InstanceNormalization" || op == "GroupNormalization") return node_norm();
  node_slice_like();
}

void Builder::node_elementwise(const EwOpInfo& info) {
  const Node& nd = *cur_;
  std::vector<const Val*> ins;
  for (size_t i = 0; i < nd.inputs.size(); ++i)
    if (!nd.inputs[i].empty()) ins.push_back(&need(i));
  float alpha = nd.getf("alpha", info.op == EW_LEAKY_RELU ? 0.01f : 1.0f), beta = 0.f;
  EwOp op = info.op;
  if (op == EW_CLIP) {
    alpha = -3.4e38f;
    beta = 3.4e38f;
    if (const Val* lo = in(1)) {
      if (!lo->c || lo->c->v.size() != 1) fail("Clip bounds must be constant scalars");
      alpha = float(lo->c->v[0]);
    }
    if (const Val* hi = in(2)) {
      if (!hi->c || hi->c->v.size() != 1) fail("Clip bounds must be constant scalars");
      beta = float(hi->c->v[0]);
    }
    ins.resize(1);
  }
  if (op == EW_MAX || op == EW_MIN) {
    if (ins.size() != 2) fail("Max/Min with " + std::to_string(ins.size()) + " inputs (2 supported)");
  }
  if (int(ins.size()) != info.arity) fail("expects " + std::to_string(info.arity) + " inputs", ALMC_ERR_PARSE);
  DType out_dt = is_compare(op) ? DType::Bool : (op == EW_WHERE ? ins[1]->dtype : ins[0]->dtype);
  bool all_const = true;
  for (auto* v : ins) all_const = all_const && v->c;
  if (all_const) {
    std::vector<ConstPtr> cs;
    for (auto* v : ins) cs.push_back(v->c);
    set_const(0, fold_ew(op, cs, alpha, beta, out_dt));
    return;
  }
  if (op == EW_COPY) {  // Identity / Dropout: a view
    alias(0, *ins[0], ins[0]->shape);
    return;
  }
  emit_ew(op, ins, 0, alpha, beta, out_dt);
}

void Builder::node_gemm() {
  const Node& nd = *cur_;
  const Val& A = need(0);
  const Val& B = need(1);
  const Val* C = in(2);
  if (A.shape.size() != 2 || B.shape.size() != 2) fail("Gemm operands must be matrices", ALMC_ERR_PARSE);
  check_nonempty(A.shape);
  check_nonempty(B.shape);
  const bool ta = nd.geti("transA", 0) != 0, tb = nd.geti("transB", 0) != 0;
  const int64_t M = ta ? A.shape[1] : A.shape[0], K = ta ? A.shape[0] : A.shape[1];
  const int64_t K2 = tb ? B.shape[1] : B.shape[0], N = tb ? B.shape[0] : B.shape[1];
  if (K != K2) fail("inner dimensions differ: " + shape_str(A.shape) + " x " + shape_str(B.shape), ALMC_ERR_PARSE);
  Val& o = def(0, {M, N});
  Step& s = push(StepKind::Gemm);
  GemmParams& p = s.gemm;
  p.trans_a = ta;
  p.trans_b = tb;
  p.M = M;
  p.N = N;
  p.K = K;
  p.alpha = nd.getf("alpha", 1.f);
  p.beta = nd.getf("beta", 1.f);
  p.lda = A.shape[1];
  p.ldb = B.shape[1];
  p.ldc = N;
  p.batch = 1;
  p.act = EW_COPY;
  p.bias_kind = BIAS_NONE;
  s.refs = {ref(A), ref(B)};
  BufRef oref;
  oref.id = o.sid;
  s.refs.push_back(oref);
  if (C) {
    const auto& cs = C->shape;
    const int64_t cn = numel(cs);
    if (cn == N && (cs.size() == 1 || (cs.size() == 2 && cs[0] == 1))) p.bias_kind = BIAS_ROW;
    else if (cs.size() == 2 && cs[0] == M && cs[1] == 1) p.bias_kind = BIAS_COL;
    else if (cs.size() == 2 && cs[0] == M && cs[1] == N) {
      p.bias_kind = BIAS_FULL;
      p.bias_ld = N;
    } else if (cn == 1) {
      p.bias_kind = BIAS_FULL;
      p.bias_ld = 0;  // one value: row and column strides 0 handled below
      p.bias_kind = BIAS_ROW;
      // A scalar bias: expand it to a row of N values.
      auto t = std::make_shared<HostTensor>();
      if (!C->c) fail("a runtime scalar Gemm bias");
      t->shape = {N};
      t->v.assign(size_t(N), C->c->v[0]);
      Val tv;
      tv.c = t;
      tv.shape = t->shape;
      s.refs.push_back(ref(tv));
      return;
    } else {
      fail("Gemm bias of shape " + shape_str(cs) + " does not broadcast to " + shape_str({M, N}), ALMC_ERR_PARSE);
    }
    s.refs.push_back(ref(*C));
  }
}

void Builder::node_matmul() {
  const Val& A = need(0);
  const Val& B = need(1);
  std::vector<int64_t> a = A.shape, b = B.shape;
  if (a.empty() || b.empty()) fail("MatMul of a scalar", ALMC_ERR_PARSE);
  check_nonempty(a);
  check_nonempty(b);
  const bool a1 = a.size() == 1, b1 = b.size() == 1;
  if (a1) a.insert(a.begin(), 1);
  if (b1) b.push_back(1);
  const int64_t M = a[a.size() - 2], K = a.back(), K2 = b[b.size() - 2], N = b.back();
  if (K != K2) fail("inner dimensions differ: " + shape_str(A.shape) + " x " + shape_str(B.shape), ALMC_ERR_PARSE);
  std::vector<int64_t> ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  std::vector<int64_t> batch = bcast(ab, bb, this);
  std::vector<int64_t> oshape = batch;
  if (!a1) oshape.push_back(M);
  if (!b1) oshape.push_back(N);
  Val& o = def(0, oshape);
  Step& s = push(StepKind::Gemm);
  GemmParams& p = s.gemm;
  p.M = M;
  p.N = N;
  p.K = K;
  p.alpha = 1.f;
  p.beta = 1.f;
  p.lda = K;
  p.ldb = N;
  p.ldc = N;
  p.act = EW_COPY;
  p.bias_kind = BIAS_NONE;
  const int64_t nb = numel(batch);
  if (bb.empty() || numel(bb) == 1) {
    // B shared by every batch entry: fold A's batch into M (A is contiguous).
    p.M = M * nb;
    p.batch = 1;
    p.batch_ndim = 0;
  } else {
    if (int(batch.size()) > kMaxDims) fail("rank too large");
    p.batch_ndim = int(batch.size());
    p.batch = nb;
    auto sa = bstrides(ab, batch), sb = bstrides(bb, batch), sc = contig_strides(batch);
    for (size_t d = 0; d < batch.size(); ++d) {
      p.batch_shape[d] = batch[d];
      p.batch_stride_a[d] = sa[d] * M * K;
      p.batch_stride_b[d] = sb[d] * K * N;
      p.batch_stride_c[d] = sc[d] * M * N;
    }
  }
  BufRef oref;
  oref.id = o.sid;
  s.refs = {ref(A), ref(B), oref};
}

void Builder::node_conv(bool transpose) {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const Val& Wt = need(1);
  const Val* Bv = in(2);
  const bool one_d = X.shape.size() == 3;
  if (X.shape.size() != 4 && !one_d) fail("only 1-D and 2-D convolutions are supported (input " + shape_str(X.shape) + ")");
  if (Wt.shape.size() != X.shape.size()) fail("weight rank differs from input rank", ALMC_ERR_PARSE);
  auto sp = [&](const std::vector<int64_t>& v, size_t i, int64_t def) -> int64_t {
    if (v.empty()) return def;
    return one_d ? (i == 0 ? def : v[0]) : v.at(i);
  };
  ConvParams c{};
  c.N = X.shape[0];
  c.C = X.shape[1];
  c.H = one_d ? 1 : X.shape[2];
  c.W = X.shape.back();
  c.KH = one_d ? 1 : Wt.shape[2];
  c.KW = Wt.shape.back();
  c.group = nd.geti("group", 1);
  auto strides = nd.getints("strides"), dil = nd.getints("dilations"), pads = nd.getints("pads");
  check_attr(strides, "strides");
  check_attr(dil, "dilations");
  check_attr(pads, "pads");
  check_attr(nd.getints("output_padding"), "output_padding");
  check_nonempty(X.shape);
  check_nonempty(Wt.shape);
  if ((one_d && ((!strides.empty() && strides.size() != 1) || (!dil.empty() && dil.size() != 1) || (!pads.empty() && pads.size() != 2))) ||
      (!one_d && ((!strides.empty() && strides.size() != 2) || (!dil.empty() && dil.size() != 2))))
    fail("strides, dilations or pads of the wrong length", ALMC_ERR_PARSE);
  c.sh = sp(strides, 0, 1);
  c.sw = sp(strides, 1, 1);
  c.dh = sp(dil, 0, 1);
  c.dw = sp(dil, 1, 1);
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  if (!pads.empty()) {
    if (one_d) {
      pl = pads.at(0);
      pr = pads.at(1);
    } else {
      if (pads.size() != 4) fail("pads must have 4 values", ALMC_ERR_PARSE);
      pt = pads[0];
      pl = pads[1];
      pb = pads[2];
      pr = pads[3];
    }
  }
  const std::string auto_pad = nd.gets("auto_pad", "NOTSET");
  if (c.group <= 0 || c.sh <= 0 || c.sw <= 0 || c.dh <= 0 || c.dw <= 0 || pt < 0 || pl < 0 || pb < 0 || pr < 0)
    fail("invalid group, strides, dilations or pads", ALMC_ERR_PARSE);
  if (auto_pad != "NOTSET" && auto_pad != "VALID") {
    if (transpose) fail("ConvTranspose with auto_pad " + auto_pad);
    auto same = [&](int64_t in, int64_t k, int64_t s, int64_t d, int64_t& b, int64_t& e) {
      int64_t out = (in + s - 1) / s;
      int64_t tot = std::max<int64_t>(0, (out - 1) * s + (k - 1) * d + 1 - in);
      b = auto_pad == "SAME_UPPER" ? tot / 2 : tot - tot / 2;
      e = tot - b;
    };
    same(c.H, c.KH, c.sh, c.dh, pt, pb);
    same(c.W, c.KW, c.sw, c.dw, pl, pr);
  }
  c.ph = pt;
  c.pw = pl;
  if (c.C % c.group) fail("channels not divisible by group", ALMC_ERR_PARSE);
  std::vector<int64_t> oshape;
  if (!transpose) {
    c.M = Wt.shape[0];
    if (Wt.shape[1] * c.group != c.C || c.M % c.group) fail("weight shape " + shape_str(Wt.shape) + " does not match input", ALMC_ERR_PARSE);
    const int64_t eh = c.H + pt + pb - c.dh * (c.KH - 1) - 1, ew = c.W + pl + pr - c.dw * (c.KW - 1) - 1;
    if (eh < 0 || ew < 0) fail("kernel larger than the padded input", ALMC_ERR_PARSE);
    c.OH = eh / c.sh + 1;
    c.OW = ew / c.sw + 1;
  } else {
    if (Wt.shape[0] != c.C) fail("weight shape " + shape_str(Wt.shape) + " does not match input", ALMC_ERR_PARSE);
    c.M = Wt.shape[1] * c.group;
    auto op = nd.getints("output_padding");
    if (nd.has("output_shape")) fail("ConvTranspose with output_shape (use pads and output_padding)");
    const int64_t oph = sp(op, 0, 0), opw = sp(op, 1, 0);
    c.OH = c.sh * (c.H - 1) + oph + (c.KH - 1) * c.dh + 1 - pt - pb;
    c.OW = c.sw * (c.W - 1) + opw + (c.KW - 1) * c.dw + 1 - pl - pr;
    if (c.OH <= 0 || c.OW <= 0) fail("empty output", ALMC_ERR_PARSE);
  }
  if (Bv && numel(Bv->shape) != c.M) fail("bias size differs from the output channels", ALMC_ERR_PARSE);
  oshape = one_d ? std::vector<int64_t>{c.N, c.M, c.OW} : std::vector<int64_t>{c.N, c.M, c.OH, c.OW};
  Val& o = def(0, oshape);
  // Workspace for `chunk` images at a time. Conv: im2col [C/g*KH*KW, chunk*OH*OW] and the GEMM
  // result [M/g, chunk*OH*OW]; ConvTranspose: x regrouped [C/g, chunk*H*W] and the columns
  // [M/g*KH*KW, chunk*H*W] before col2im.
  const int64_t per_img = transpose ? (c.C / c.group) * c.H * c.W + (c.M / c.group) * c.KH * c.KW * c.H * c.W
                                    : (c.C / c.group) * c.KH * c.KW * c.OH * c.OW + (c.M / c.group) * c.OH * c.OW;
  c.chunk = std::min<int64_t>(c.N, std::max<int64_t>(1, io_.conv_workspace / std::max<int64_t>(1, per_img)));
  c.col_elems = c.chunk * per_img;
  c.act = EW_COPY;
  Step& s = push(transpose ? StepKind::ConvT : StepKind::Conv);
  s.conv = c;
  BufRef oref;
  oref.id = o.sid;
  BufRef cref;
  cref.id = temp(c.col_elems);
  BufRef none;
  none.id = -2;
  s.refs = {ref(X), ref(Wt), Bv ? ref(*Bv) : none, oref, cref};
}

void Builder::node_pool() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  if (X.shape.size() != 4) fail("only 2-D pooling on [N, C, H, W] is supported");
  PoolParams p{};
  p.max = nd.op == "MaxPool";
  if (cur_->outputs.size() > 1 && !cur_->outputs[1].empty()) fail("MaxPool indices output");
  auto k = nd.getints("kernel_shape"), st = nd.getints("strides"), pads = nd.getints("pads"), dil = nd.getints("dilations");
  if (k.size() != 2) fail("kernel_shape must have 2 values", ALMC_ERR_PARSE);
  check_attr(k, "kernel_shape");
  check_attr(st, "strides");
  check_attr(pads, "pads");
  check_attr(dil, "dilations");
  if ((!st.empty() && st.size() != 2) || (!dil.empty() && dil.size() != 2) || (!pads.empty() && pads.size() != 4))
    fail("strides, dilations or pads of the wrong length", ALMC_ERR_PARSE);
  if (nd.gets("auto_pad", "NOTSET") != "NOTSET" && nd.gets("auto_pad", "NOTSET") != "VALID") fail("pooling with auto_pad SAME");
  p.NC = X.shape[0] * X.shape[1];
  p.H = X.shape[2];
  p.W = X.shape[3];
  p.KH = k[0];
  p.KW = k[1];
  p.sh = st.empty() ? 1 : st[0];
  p.sw = st.empty() ? 1 : st[1];
  p.dh = dil.empty() ? 1 : dil[0];
  p.dw = dil.empty() ? 1 : dil[1];
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  if (pads.size() == 4) {
    pt = pads[0];
    pl = pads[1];
    pb = pads[2];
    pr = pads[3];
  }
  if (p.KH <= 0 || p.KW <= 0 || p.sh <= 0 || p.sw <= 0 || p.dh <= 0 || p.dw <= 0 || pt < 0 || pl < 0)
    fail("invalid pooling attributes", ALMC_ERR_PARSE);
  p.ph = pt;
  p.pw = pl;
  p.count_include_pad = nd.geti("count_include_pad", 0) != 0;
  const bool ceil_mode = nd.geti("ceil_mode", 0) != 0;
  auto out_len = [&](int64_t in, int64_t b, int64_t e, int64_t kk, int64_t s, int64_t d) {
    const int64_t span = in + b + e - ((kk - 1) * d + 1);
    if (span < 0) fail("pooling window larger than the input", ALMC_ERR_PARSE);
    int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + b) --o;
    return o;
  };
  p.OH = out_len(p.H, pt, pb, p.KH, p.sh, p.dh);
  p.OW = out_len(p.W, pl, pr, p.KW, p.sw, p.dw);
  Val& o = def(0, {X.shape[0], X.shape[1], p.OH, p.OW});
  Step& s = push(StepKind::Pool);
  s.pool = p;
  BufRef oref;
  oref.id = o.sid;
  s.refs = {ref(X), oref};
}

void Builder::node_resize() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  if (r < 2 || r > 4) fail("Resize of rank " + std::to_string(r) + " (2 to 4 supported)");
  std::vector<double> scales(r, 1.0);
  std::vector<int64_t> oshape = X.shape;
  const Val* sc = in(2);
  const Val* sz = in(3);
  if (sz && numel(sz->shape) > 0) {
    auto s = const_ints(3, "Resize sizes");
    if (s.size() != r) fail("sizes has the wrong length", ALMC_ERR_PARSE);
    for (size_t i = 0; i < r; ++i) {
      oshape[i] = s[i];
      scales[i] = X.shape[i] ? double(s[i]) / double(X.shape[i]) : 1.0;
    }
  } else if (sc && numel(sc->shape) > 0) {
    const auto& t = need_const(2, "Resize scales");
    if (t.v.size() != r) fail("scales has the wrong length", ALMC_ERR_PARSE);
    for (size_t i = 0; i < r; ++i) {
      scales[i] = double(float(t.v[i]));
      if (!(scales[i] > 0) || scales[i] > 1e6) fail("invalid scale", ALMC_ERR_PARSE);
      oshape[i] = int64_t(std::floor(double(X.shape[i]) * scales[i]));
    }
  } else {
    fail("Resize needs scales or sizes", ALMC_ERR_PARSE);
  }
  for (size_t i = 0; i + 2 < r; ++i)
    if (oshape[i] != X.shape[i]) fail("Resize of the batch or channel dimensions");
  const std::string mode = nd.gets("mode", "nearest");
  if (mode != "nearest" && mode != "linear") fail("Resize mode '" + mode + "' (nearest and linear supported)");
  const std::string ctm = nd.gets("coordinate_transformation_mode", "half_pixel");
  const std::string nm = nd.gets("nearest_mode", "round_prefer_floor");
  ResizeParams p{};
  p.linear = mode == "linear";
  p.nearest_mode = nm == "round_prefer_ceil" ? NEAREST_ROUND_PREFER_CEIL : nm == "floor" ? NEAREST_FLOOR : nm == "ceil" ? NEAREST_CEIL : NEAREST_ROUND_PREFER_FLOOR;
  const int64_t H = r >= 3 ? X.shape[r - 2] : 1, W = X.shape[r - 1];
  const int64_t OH = r >= 3 ? oshape[r - 2] : 1, OW = oshape[r - 1];
  p.NC = 1;
  for (size_t i = 0; i + 2 < r; ++i) p.NC *= X.shape[i];
  if (r == 2) p.NC = X.shape[0];
  p.H = H;
  p.W = W;
  p.OH = OH;
  p.OW = OW;
  auto coef = [&](int64_t in_len, int64_t out_len, double scale, double& a, double& b) {
    if (ctm == "align_corners") {
      a = out_len > 1 ? double(in_len - 1) / double(out_len - 1) : 0.0;
      b = 0;
    } else if (ctm == "asymmetric") {
      a = 1.0 / scale;
      b = 0;
    } else if (ctm == "half_pixel" || ctm == "pytorch_half_pixel") {
      a = 1.0 / scale;
      b = 0.5 / scale - 0.5;
      if (ctm == "pytorch_half_pixel" && out_len <= 1) a = b = 0;
    } else if (ctm == "tf_half_pixel_for_nn") {
      a = 1.0 / scale;
      b = 0.5 / scale;
    } else {
      fail("coordinate_transformation_mode '" + ctm + "'");
    }
  };
  coef(H, OH, r >= 3 ? scales[r - 2] : 1.0, p.ah, p.bh);
  coef(W, OW, scales[r - 1], p.aw, p.bw);
  if (r == 2) {
    p.NC = X.shape[0];
    p.H = 1;
    p.OH = 1;
    p.ah = 0;
    p.bh = 0;
  }
  Val& o = def(0, oshape);
  Step& s = push(StepKind::Resize);
  s.resize = p;
  BufRef oref;
  oref.id = o.sid;
  s.refs = {ref(X), oref};
}

void Builder::node_pad() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  auto pads = const_ints(1, "Pad pads");
  if (in(3)) fail("Pad with axes");
  if (pads.size() != 2 * r) fail("pads has " + std::to_string(pads.size()) + " values for rank " + std::to_string(r), ALMC_ERR_PARSE);
  check_attr(pads, "pads");
  float value = 0.f;
  if (const Val* cv = in(2)) {
    if (!cv->c || cv->c->v.size() != 1) fail("constant_value must be a constant scalar");
    value = float(cv->c->v[0]);
  }
  const std::string mode = nd.gets("mode", "constant");
  PadParams p{};
  p.ndim = int(r);
  p.mode = mode == "constant" ? 0 : mode == "reflect" ? 1 : mode == "edge" ? 2 : -1;
  if (p.mode < 0) fail("Pad mode '" + mode + "'");
  p.value = value;
  std::vector<int64_t> oshape(r);
  for (size_t i = 0; i < r; ++i) {
    p.ishape[i] = X.shape[i];
    p.begin[i] = pads[i];
    oshape[i] = X.shape[i] + pads[i] + pads[i + r];
    if (oshape[i] < 0) fail("negative padded size", ALMC_ERR_PARSE);
    if (p.mode == 1 && (pads[i] >= X.shape[i] || pads[i + r] >= X.shape[i]) && (pads[i] > 0 || pads[i + r] > 0))
      fail("reflect padding wider than the input", ALMC_ERR_PARSE);
    p.oshape[i] = oshape[i];
  }
  Val& o = def(0, oshape);
  p.total = numel(oshape);
  Step& s = push(StepKind::Pad);
  s.pad = p;
  BufRef oref;
  oref.id = o.sid;
  s.refs = {ref(X), oref};
}

void Builder::node_reduce() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  std::vector<int64_t> axes;
  bool keep = nd.geti("keepdims", 1) != 0;
  const bool mean = nd.op != "ReduceSum";
  if (nd.op == "GlobalAveragePool") {
    for (size_t i = 2; i < r; ++i) axes.push_back(int64_t(i));
    keep = true;
  } else if (nd.has("axes")) {
    axes = nd.getints("axes");
  } else if (in(1)) {
    axes = const_ints(1, "the reduction axes");
  }
  if (axes.empty()) {
    if (nd.geti("noop_with_empty_axes", 0)) {
      alias(0, X, X.shape);
      return;
    }
    for (size_t i = 0; i < r; ++i) axes.push_back(int64_t(i));
  }
  std::vector<bool> red(r, false);
  for (auto a : axes) red[size_t(axis_norm(a, r))] = true;
  ReduceParams p{};
  p.mean = mean;
  std::vector<int64_t> oshape;
  auto cs = contig_strides(X.shape);
  p.out_total = 1;
  p.red_total = 1;
  for (size_t i = 0; i < r; ++i) {
    if (red[i]) {
      p.rshape[p.rndim] = X.shape[i];
      p.rstride[p.rndim++] = cs[i];
      p.red_total *= X.shape[i];
      if (keep) oshape.push_back(1);
    } else {
      p.oshape[p.ondim] = X.shape[i];
      p.ostride[p.ondim++] = cs[i];
      p.out_total *= X.shape[i];
      oshape.push_back(X.shape[i]);
    }
  }
  Val& o = def(0, oshape);
  Step& s = push(StepKind::Reduce);
  s.reduce = p;
  BufRef oref;
  oref.id = o.sid;
  s.refs = {ref(X), oref};
}

void Builder::node_softmax() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  if (r == 0) fail("Softmax of a scalar", ALMC_ERR_PARSE);
  const int64_t ax = axis_norm(nd.geti("axis", g_.opset >= 13 ? -1 : 1), r);
  SoftmaxParams p{};
  p.log = nd.op == "LogSoftmax";
  p.outer = 1;
  p.inner = 1;
  p.len = X.shape[size_t(ax)];
  if (g_.opset >= 13) {
    for (int64_t i = 0; i < ax; ++i) p.outer *= X.shape[size_t(i)];
    for (size_t i = size_t(ax) + 1; i < r; ++i) p.inner *= X.shape[i];
  } else {  // opset < 13: flatten to 2-D at axis
    for (int64_t i = 0; i < ax; ++i) p.outer *= X.shape[size_t(i)];
    p.len = 1;
    for (size_t i = size_t(ax); i < r; ++i) p.len *= X.shape[i];
  }
  Val& o = def(0, X.shape);
  Step& s = push(StepKind::Softmax);
  s.softmax = p;
  BufRef oref;
  oref.id = o.sid;
  s.refs = {ref(X), oref};
}

void Builder::node_norm() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  NormParams p{};
  p.eps = nd.getf("epsilon", 1e-5f);
  p.act = EW_COPY;
  const Val* scale = in(1);
  const Val* bias = in(2);
  if (nd.op == "LayerNormalization") {
    for (size_t i = 1; i < nd.outputs.size(); ++i)
      if (!nd.outputs[i].empty()) fail("LayerNormalization's Mean / InvStdDev outputs");
    const int64_t ax = axis_norm(nd.geti("axis", -1), r);
    p.rows = 1;
    p.len = 1;
    for (int64_t i = 0; i < ax; ++i) p.rows *= X.shape[size_t(i)];
    for (size_t i = size_t(ax); i < r; ++i) p.len *= X.shape[i];
    p.affine = AFFINE_COLUMN;
    if (!scale || numel(scale->shape) != p.len) fail("LayerNormalization scale must have the normalised size", ALMC_ERR_PARSE);
    if (bias && numel(bias->shape) != p.len) fail("LayerNormalization bias must have the normalised size", ALMC_ERR_PARSE);
  } else {
    if (r < 3) fail("normalisation input must be [N, C, ...]", ALMC_ERR_PARSE);
    const int64_t C = X.shape[1];
    int64_t groups = C;
    if (nd.op == "GroupNormalization") groups = nd.geti("num_groups", 0);
    if (groups <= 0 || C % groups) fail("num_groups must divide the channels", ALMC_ERR_PARSE);
    int64_t spatial = 1;
    for (size_t i = 2; i < r; ++i) spatial *= X.shape[i];
    p.rows = X.shape[0] * groups;
    p.len = (C / groups) * spatial;
    p.channels = groups;
    p.affine = AFFINE_CHANNEL;
    if (!scale || !bias || numel(scale->shape) != groups || numel(bias->shape) != groups)
      fail("scale and bias must have " + std::to_string(groups) + " values", ALMC_ERR_PARSE);
  }
  Val& o = def(0, X.shape);
  Step& s = push(StepKind::Norm);
  s.norm = p;
  BufRef oref;
  oref.id = o.sid;
  BufRef none;
  none.id = -2;
  s.refs = {ref(X), scale ? ref(*scale) : none, bias ? ref(*bias) : none, oref};
}

void Builder::node_slice_like() {
  const Node& nd = *cur_;
  const std::string& op = nd.op;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  auto out_view = [&](const std::vector<int64_t>& shape) {
    if (X.c) {
      auto t = std::make_shared<HostTensor>(*X.c);
      t->shape = shape;
      if (numel(shape) != numel(X.shape)) fail("cannot reshape " + shape_str(X.shape) + " to " + shape_str(shape), ALMC_ERR_PARSE);
      set_const(0, t);
    } else {
      alias(0, X, shape);
    }
  };
  if (op == "Reshape") {
    auto s = const_ints(1, "the target shape");
    const bool allowzero = nd.geti("allowzero", 0) != 0;
    int64_t known = 1, neg = -1;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == 0 && !allowzero) {
        if (i >= r) fail("0 in the target shape beyond the input rank", ALMC_ERR_PARSE);
        s[i] = X.shape[i];
      }
      if (s[i] == -1) {
        if (neg >= 0) fail("two -1 in the target shape", ALMC_ERR_PARSE);
        neg = int64_t(i);
      } else if (s[i] < 0) {
        fail("negative dimension in the target shape", ALMC_ERR_PARSE);
      } else {
        if (s[i] && known > kMaxElems / s[i]) fail("target shape too large", ALMC_ERR_INVALID_ARGUMENT);
        known *= s[i];
      }
    }
    const int64_t total = numel(X.shape);
    if (neg >= 0) {
      if (known == 0 || total % known) fail("cannot reshape " + shape_str(X.shape) + " to " + shape_str(s), ALMC_ERR_PARSE);
      s[size_t(neg)] = total / known;
    }
    return out_view(s);
  }
  if (op == "Flatten") {
    int64_t ax = nd.geti("axis", 1);
    if (ax < 0) ax += int64_t(r);
    if (ax < 0 || ax > int64_t(r)) fail("axis out of range", ALMC_ERR_PARSE);
    int64_t a = 1, b = 1;
    for (size_t i = 0; i < r; ++i) (int64_t(i) < ax ? a : b) *= X.shape[i];
    return out_view({a, b});
  }
  if (op == "Squeeze" || op == "Unsqueeze") {
    std::vector<int64_t> axes = nd.has("axes") ? nd.getints("axes") : (in(1) ? const_ints(1, "axes") : std::vector<int64_t>{});
    std::vector<int64_t> s;
    if (op == "Squeeze") {
      std::vector<bool> drop(r, false);
      if (axes.empty())
        for (size_t i = 0; i < r; ++i) drop[i] = X.shape[i] == 1;
      for (auto a : axes) {
        auto i = size_t(axis_norm(a, r));
        if (X.shape[i] != 1) fail("squeezing a dimension of size " + std::to_string(X.shape[i]), ALMC_ERR_PARSE);
        drop[i] = true;
      }
      for (size_t i = 0; i < r; ++i)
        if (!drop[i]) s.push_back(X.shape[i]);
    } else {
      const size_t orank = r + axes.size();
      std::vector<bool> ins(orank, false);
      for (auto a : axes) {
        auto i = size_t(axis_norm(a, orank));
        if (ins[i]) fail("repeated axis", ALMC_ERR_PARSE);
        ins[i] = true;
      }
      size_t k = 0;
      for (size_t i = 0; i < orank; ++i) s.push_back(ins[i] ? 1 : X.shape[k++]);
    }
    return out_view(s);
  }
  auto cs = contig_strides(X.shape);
  if (op == "Transpose") {
    auto perm = nd.getints("perm");
    if (perm.empty())
      for (size_t i = 0; i < r; ++i) perm.push_back(int64_t(r - 1 - i));
    if (perm.size() != r) fail("perm has the wrong length", ALMC_ERR_PARSE);
    std::vector<int64_t> s(r), ist(r);
    std::vector<bool> seen(r, false);
    for (size_t i = 0; i < r; ++i) {
      auto p = size_t(axis_norm(perm[i], r));
      if (seen[p]) fail("perm is not a permutation", ALMC_ERR_PARSE);
      seen[p] = true;
      s[i] = X.shape[p];
      ist[i] = cs[p];
    }
    CopyParams cp = make_copy(s, ist, contig_strides(s));
    if (X.c) return set_const(0, fold_copy(cp, *X.c, 0, s));
    Val& o = def(0, s, X.dtype);
    return emit_copy(cp, X, 0, o.sid, 0);
  }
  if (op == "Expand") {
    auto target = const_ints(1, "the Expand shape");
    auto s = bcast(X.shape, target, this);
    CopyParams cp = make_copy(s, bstrides(X.shape, s), contig_strides(s));
    if (X.c) return set_const(0, fold_copy(cp, *X.c, 0, s));
    Val& o = def(0, s, X.dtype);
    return emit_copy(cp, X, 0, o.sid, 0);
  }
  if (op == "Slice") {
    auto starts = const_ints(1, "Slice starts"), ends = const_ints(2, "Slice ends");
    std::vector<int64_t> axes, steps;
    if (in(3)) axes = const_ints(3, "Slice axes");
    else
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(int64_t(i));
    if (in(4)) steps = const_ints(4, "Slice steps");
    else steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
      fail("starts, ends, axes and steps differ in length", ALMC_ERR_PARSE);
    std::vector<int64_t> s = X.shape, ist = cs;
    int64_t off = 0;
    for (size_t k = 0; k < axes.size(); ++k) {
      auto i = size_t(axis_norm(axes[k], r));
      const int64_t dim = X.shape[i], st = steps[k];
      if (st == 0) fail("Slice step 0", ALMC_ERR_PARSE);
      int64_t b = starts[k], e = ends[k];
      if (b < 0) b += dim;
      if (e < 0) e += dim;
      int64_t cnt;
      if (st > 0) {
        b = std::clamp<int64_t>(b, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
        cnt = e > b ? (e - b + st - 1) / st : 0;
      } else {
        b = std::clamp<int64_t>(b, 0, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
        cnt = b > e ? (b - e + (-st) - 1) / (-st) : 0;
      }
      s[i] = cnt;
      ist[i] = cs[i] * st;
      if (cnt > 0) off += b * cs[i];
    }
    CopyParams cp = make_copy(s, ist, contig_strides(s));
    if (X.c) return set_const(0, fold_copy(cp, *X.c, off, s));
    Val& o = def(0, s, X.dtype);
    if (numel(s) == 0) return;
    return emit_copy(cp, X, off, o.sid, 0);
  }
  if (op == "Split") {
    const int64_t ax = axis_norm(nd.geti("axis", 0), r);
    std::vector<int64_t> sizes;
    if (in(1)) sizes = const_ints(1, "Split sizes");
    else if (nd.has("split")) sizes = nd.getints("split");
    else {
      const int64_t parts = int64_t(nd.outputs.size());
      const int64_t len = X.shape[size_t(ax)];
      const int64_t each = (len + parts - 1) / parts;
      for (int64_t i = 0; i < parts; ++i) sizes.push_back(std::min(each, len - i * each));
    }
    if (sizes.size() != nd.outputs.size()) fail("split sizes do not match the outputs", ALMC_ERR_PARSE);
    int64_t start = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      std::vector<int64_t> s = X.shape;
      s[size_t(ax)] = sizes[k];
      if (sizes[k] < 0 || start + sizes[k] > X.shape[size_t(ax)]) fail("split sizes exceed the axis", ALMC_ERR_PARSE);
      CopyParams cp = make_copy(s, cs, contig_strides(s));
      const int64_t off = start * cs[size_t(ax)];
      start += sizes[k];
      if (nd.outputs[k].empty()) continue;
      if (X.c) {
        set_const(k, fold_copy(cp, *X.c, off, s));
        continue;
      }
      Val& o = def(k, s, X.dtype);
      if (numel(s)) emit_copy(cp, X, off, o.sid, 0);
    }
    if (start != X.shape[size_t(ax)]) fail("split sizes do not sum to the axis length", ALMC_ERR_PARSE);
    return;
  }
  if (op == "Concat") {
    std::vector<const Val*> ins;
    for (size_t i = 0; i < nd.inputs.size(); ++i)
      if (!nd.inputs[i].empty()) ins.push_back(&need(i));
    if (ins.empty()) fail("Concat without inputs", ALMC_ERR_PARSE);
    const size_t rr = ins[0]->shape.size();
    const int64_t ax = axis_norm(nd.geti("axis", 0), rr);
    std::vector<int64_t> s = ins[0]->shape;
    s[size_t(ax)] = 0;
    bool all_const = true;
    for (auto* v : ins) {
      if (v->shape.size() != rr) fail("inputs of different ranks", ALMC_ERR_PARSE);
      for (size_t d = 0; d < rr; ++d)
        if (d != size_t(ax) && v->shape[d] != s[d]) fail("inputs of incompatible shapes", ALMC_ERR_PARSE);
      s[size_t(ax)] += v->shape[size_t(ax)];
      all_const = all_const && v->c;
    }
    auto ocs = contig_strides(s);
    std::shared_ptr<HostTensor> t;
    int osid = -1;
    if (all_const) {
      if (numel(s) > kMaxFoldElems) fail("constant of shape " + shape_str(s) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
      t = std::make_shared<HostTensor>();
      t->dtype = ins[0]->dtype;
      t->shape = s;
      t->v.resize(size_t(numel(s)));
    } else {
      osid = def(0, s, ins[0]->dtype).sid;
    }
    int64_t pos = 0;
    for (auto* v : ins) {
      CopyParams cp = make_copy(v->shape, contig_strides(v->shape), ocs);
      const int64_t off = pos * ocs[size_t(ax)];
      pos += v->shape[size_t(ax)];
      if (numel(v->shape) == 0) continue;
      if (all_const) cpu_copy<double>(cp, v->c->v.data(), t->v.data() + off);
      else emit_copy(cp, *v, 0, osid, off);
    }
    if (all_const) set_const(0, t);
    return;
  }
  if (op == "Gather") {
    const Val& I = need(1);
    const int64_t ax = axis_norm(nd.geti("axis", 0), r);
    GatherParams p{};
    p.outer = 1;
    p.inner = 1;
    for (int64_t i = 0; i < ax; ++i) p.outer *= X.shape[size_t(i)];
    for (size_t i = size_t(ax) + 1; i < r; ++i) p.inner *= X.shape[i];
    p.axis_len = X.shape[size_t(ax)];
    p.n_idx = numel(I.shape);
    std::vector<int64_t> s(X.shape.begin(), X.shape.begin() + ax);
    s.insert(s.end(), I.shape.begin(), I.shape.end());
    s.insert(s.end(), X.shape.begin() + ax + 1, X.shape.end());
    if (I.c)
      for (double v : I.c->v)
        if (v < -double(p.axis_len) || v >= double(p.axis_len)) fail("Gather index " + std::to_string(int64_t(v)) + " out of range", ALMC_ERR_PARSE);
    if (X.c && I.c) {
      if (numel(s) > kMaxFoldElems) fail("constant of shape " + shape_str(s) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
      auto t = std::make_shared<HostTensor>();
      t->dtype = X.dtype;
      t->shape = s;
      t->v.resize(size_t(numel(s)));
      cpu_gather<double>(p, X.c->v.data(), I.c->v.data(), t->v.data());
      return set_const(0, t);
    }
    Val& o = def(0, s, X.dtype);
    Step& st = push(StepKind::Gather);
    st.gather = p;
    BufRef oref;
    oref.id = o.sid;
    st.refs = {ref(X), ref(I), oref};
    return;
  }
  fail("operator not implemented by the planner");
}

// Elementwise fusion, GEMM epilogues, dimension collapsing, then the arena.
void Builder::finalize() {
  // Consumers per storage (fusion needs single-consumer intermediates).
  auto is_output = [](const Step& s, size_t k) {
    switch (s.kind) {
      case StepKind::Ew: return k == size_t(s.ew.n_in);
      case StepKind::Gemm: return k == 2;
      case StepKind::Conv:
      case StepKind::ConvT: return k >= 3;
      case StepKind::Gather: return k == 2;
      case StepKind::Norm: return k == 3;
      case StepKind::Fill: return true;
      default: return k == 1;
    }
  };
  auto consumers = [&](int sid) {
    int c = 0;
    for (const auto& s : P.steps)
      for (size_t k = 0; k < s.refs.size(); ++k)
        if (!is_output(s, k) && s.refs[k].space == BufRef::Arena && s.refs[k].id == sid) ++c;
    return c;
  };
  auto out_sid = [&](const Step& s) -> int { return s.refs.empty() ? -1 : s.refs[size_t(s.ew.n_in)].id; };
  std::vector<bool> dead(P.steps.size(), false);
  // Fuse producer k into consumer j when k's result is read only by j (once) and shapes agree.
  for (size_t j = 0; j < P.steps.size(); ++j) {
    Step& sj = P.steps[j];
    if (sj.kind != StepKind::Ew) continue;
    bool changed = true;
    while (changed) {
      changed = false;
      for (int i = 0; i < sj.ew.n_in; ++i) {
        const BufRef r = sj.refs[size_t(i)];
        if (r.space != BufRef::Arena || r.off != 0) continue;
        const Storage& st = P.storages[size_t(r.id)];
        if (st.pinned_start || st.pinned_end) continue;
        int k = -1;
        for (int q = int(j) - 1; q >= 0; --q)
          if (!dead[size_t(q)] && P.steps[size_t(q)].kind == StepKind::Ew && out_sid(P.steps[size_t(q)]) == r.id) {
            k = q;
            break;
          }
        if (k < 0) continue;
        Step& sk = P.steps[size_t(k)];
        if (sk.ew_shape != sj.ew_shape) continue;
        bool contiguous = true;
        auto cs = contig_strides(sj.ew_shape);
        for (int d = 0; d < sj.ew.ndim; ++d)
          if (sj.ew.shape[d] != 1 && sj.ew.stride[i][d] != cs[size_t(d)]) contiguous = false;
        if (!contiguous || consumers(r.id) != 1) continue;
        if (sj.ew.n_in - 1 + sk.ew.n_in > kMaxEwIn || sj.ew.n_instr + sk.ew.n_instr > kMaxEwInstr) continue;
        // New register file: j's inputs without i, then k's inputs, then k's temps, then j's temps.
        EwParams a = sj.ew, b = sk.ew;
        std::vector<BufRef> refs;
        EwParams m = a;
        m.n_in = 0;
        std::vector<int> map_a(size_t(kMaxEwRegs) + 8, -1), map_b(size_t(kMaxEwRegs) + 8, -1);
        auto add_input = [&](const EwParams& src, int idx, const BufRef& rf) {
          for (int q = 0; q < m.n_in; ++q) {
            bool same = refs[size_t(q)].space == rf.space && refs[size_t(q)].id == rf.id && refs[size_t(q)].off == rf.off;
            for (int d = 0; d < m.ndim && same; ++d) same = m.stride[q][d] == src.stride[idx][d];
            if (same) return q;
          }
          for (int d = 0; d < m.ndim; ++d) m.stride[m.n_in][d] = src.stride[idx][d];
          refs.push_back(rf);
          return m.n_in++;
        };
        for (int q = 0; q < a.n_in; ++q)
          if (q != i) map_a[size_t(q)] = add_input(a, q, sj.refs[size_t(q)]);
        for (int q = 0; q < b.n_in; ++q) map_b[size_t(q)] = add_input(b, q, sk.refs[size_t(q)]);
        int next = m.n_in;
        m.n_instr = 0;
        bool ok = true;
        for (int q = 0; q < b.n_instr; ++q) {
          EwInstr in = b.instr[q];
          in.a = uint8_t(map_b[in.a]);
          in.b = uint8_t(map_b[in.b]);
          in.c = uint8_t(map_b[in.c]);
          map_b[in.dst] = next;
          in.dst = uint8_t(next++);
          m.instr[m.n_instr++] = in;
        }
        map_a[size_t(i)] = map_b[size_t(b.out_reg)];
        for (int q = 0; q < a.n_instr; ++q) {
          EwInstr in = a.instr[q];
          in.a = uint8_t(map_a[in.a]);
          in.b = uint8_t(map_a[in.b]);
          in.c = uint8_t(map_a[in.c]);
          map_a[in.dst] = next;
          in.dst = uint8_t(next++);
          m.instr[m.n_instr++] = in;
        }
        if (next > kMaxEwRegs) ok = false;
        if (!ok) continue;
        m.out_reg = map_a[size_t(a.out_reg)];
        refs.push_back(sj.refs[size_t(a.n_in)]);
        sj.ew = m;
        sj.refs = refs;
        dead[size_t(k)] = true;
        sk.refs.clear();
        changed = true;
        break;
      }
    }
  }
  // GEMM / conv epilogue: an activation program reading only the GEMM result.
  for (size_t j = 0; j < P.steps.size(); ++j) {
    Step& sj = P.steps[j];
    if (dead[j] || sj.kind != StepKind::Ew) continue;
    const EwParams& e = sj.ew;
    int act = -1;
    if (e.n_in == 1 && e.n_instr == 1 && e.instr[0].op <= EW_ELU && e.instr[0].op != EW_COPY) act = e.instr[0].op;
    if (e.n_in == 1 && e.n_instr == 2 && e.instr[0].op == EW_SIGMOID && e.instr[0].a == 0 && e.instr[1].op == EW_MUL &&
        ((e.instr[1].a == 0 && e.instr[1].b == 1) || (e.instr[1].a == 1 && e.instr[1].b == 0)))
      act = EW_SILU;
    if (act < 0) continue;
    const BufRef r = sj.refs[0];
    if (r.space != BufRef::Arena || r.off != 0 || P.storages[size_t(r.id)].pinned_end || consumers(r.id) != 1) continue;
    for (int q = int(j) - 1; q >= 0; --q) {
      Step& sk = P.steps[size_t(q)];
      if (dead[size_t(q)]) continue;
      int oidx = sk.kind == StepKind::Gemm ? 2 : (sk.kind == StepKind::Conv || sk.kind == StepKind::ConvT) ? 3 : -1;
      if (oidx < 0 || sk.refs[size_t(oidx)].id != r.id) continue;
      int& a = sk.kind == StepKind::Gemm ? sk.gemm.act : sk.conv.act;
      if (a != EW_COPY) break;
      a = act;
      (sk.kind == StepKind::Gemm ? sk.gemm.act_alpha : sk.conv.act_alpha) = e.instr[0].alpha;
      sk.refs[size_t(oidx)] = sj.refs[1];
      dead[j] = true;
      sj.refs.clear();
      break;
    }
  }
  std::vector<Step> kept;
  for (size_t j = 0; j < P.steps.size(); ++j)
    if (!dead[j]) kept.push_back(std::move(P.steps[j]));
  P.steps = std::move(kept);

  // Collapse elementwise dimensions and mark contiguous / scalar inputs.
  for (auto& s : P.steps) {
    if (s.kind != StepKind::Ew) continue;
    EwParams& e = s.ew;
    EwParams c = e;
    c.ndim = 0;
    for (int d = 0; d < e.ndim; ++d) {
      if (e.shape[d] == 1) continue;
      bool merge = c.ndim > 0;
      for (int k = 0; k < e.n_in && merge; ++k)
        merge = c.stride[k][c.ndim - 1] == e.stride[k][d] * e.shape[d];
      if (merge) {
        c.shape[c.ndim - 1] *= e.shape[d];
        for (int k = 0; k < e.n_in; ++k) c.stride[k][c.ndim - 1] = e.stride[k][d];
      } else {
        c.shape[c.ndim] = e.shape[d];
        for (int k = 0; k < e.n_in; ++k) c.stride[k][c.ndim] = e.stride[k][d];
        ++c.ndim;
      }
    }
    c.total = 1;
    for (int d = 0; d < c.ndim; ++d) c.total *= c.shape[d];
    for (int k = 0; k < c.n_in; ++k) {
      c.scalar[k] = true;
      c.contiguous[k] = true;
      int64_t want = 1;
      for (int d = c.ndim - 1; d >= 0; --d) {
        if (c.stride[k][d] != 0) c.scalar[k] = false;
        if (c.stride[k][d] != want) c.contiguous[k] = false;
        want *= c.shape[d];
      }
      if (c.scalar[k]) c.contiguous[k] = false;
    }
    e = c;
  }

  // Liveness and a best-fit arena.
  for (size_t j = 0; j < P.steps.size(); ++j)
    for (const auto& r : P.steps[j].refs)
      if (r.space == BufRef::Arena && r.id >= 0) {
        Storage& st = P.storages[size_t(r.id)];
        st.first = std::min(st.first, int(j));
        st.last = std::max(st.last, int(j));
      }
  const int end = int(P.steps.size()) + 1;
  for (auto& st : P.storages) {
    if (st.pinned_start) st.first = -1;
    if (st.pinned_end) st.last = end;
  }
  std::vector<int> order;
  for (size_t i = 0; i < P.storages.size(); ++i)
    if (P.storages[i].last >= P.storages[i].first) order.push_back(int(i));
  std::sort(order.begin(), order.end(), [&](int a, int b) { return P.storages[size_t(a)].size > P.storages[size_t(b)].size; });
  std::vector<int> placed;
  P.arena_floats = 0;
  for (int id : order) {
    Storage& s = P.storages[size_t(id)];
    const int64_t sz = (s.size + 63) / 64 * 64;
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int q : placed) {
      const Storage& o = P.storages[size_t(q)];
      if (o.first <= s.last && s.first <= o.last) busy.push_back({o.offset, o.offset + (o.size + 63) / 64 * 64});
    }
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (auto& b : busy) {
      if (off + sz <= b.first) break;
      off = std::max(off, b.second);
    }
    s.offset = off;
    placed.push_back(id);
    P.arena_floats = std::max(P.arena_floats, off + sz);
  }
  auto resolve = [&](BufRef& r) {
    if (r.space == BufRef::Arena && r.id >= 0) {
      r.off += P.storages[size_t(r.id)].offset;
      r.id = -1;
    }
  };
  for (auto& s : P.steps)
    for (auto& r : s.refs) resolve(r);
  resolve(P.x);
  resolve(P.out);
  if (P.level_used) resolve(P.level);
}

}  // namespace

Plan build_plan(const Graph& g, const IoSpec& io, int64_t n) {
  if (n <= 0 || n > kMaxElems) throw Error(ALMC_ERR_INVALID_ARGUMENT, "batch size " + std::to_string(n) + " out of range");
  Plan p;
  p.n = n;
  Builder b(g, io, n, p);
  b.build();
  return p;
}

void bind_plan(Plan& p, float* arena, const float* consts) {
  auto R = [&](const BufRef& r) -> float* {
    if (r.id == -2) return nullptr;  // an absent optional operand
    return r.space == BufRef::Const ? const_cast<float*>(consts) + r.off : arena + r.off;
  };
  for (auto& s : p.steps) {
    auto& f = s.refs;
    switch (s.kind) {
      case StepKind::Ew:
        for (int k = 0; k < s.ew.n_in; ++k) s.ew.in[k] = R(f[size_t(k)]);
        s.ew.out = R(f[size_t(s.ew.n_in)]);
        break;
      case StepKind::Gemm:
        s.gemm.A = R(f[0]);
        s.gemm.B = R(f[1]);
        s.gemm.C = R(f[2]);
        s.gemm.bias = f.size() > 3 ? R(f[3]) : nullptr;
        break;
      case StepKind::Conv:
      case StepKind::ConvT:
        s.conv.x = R(f[0]);
        s.conv.w = R(f[1]);
        s.conv.bias = R(f[2]);
        s.conv.y = R(f[3]);
        s.conv.col = R(f[4]);
        break;
      case StepKind::Copy:
        s.copy.in = R(f[0]);
        s.copy.out = R(f[1]);
        break;
      case StepKind::Gather:
        s.gather.data = R(f[0]);
        s.gather.idx = R(f[1]);
        s.gather.out = R(f[2]);
        break;
      case StepKind::Softmax:
        s.softmax.x = R(f[0]);
        s.softmax.y = R(f[1]);
        break;
      case StepKind::Norm:
        s.norm.x = R(f[0]);
        s.norm.scale = R(f[1]);
        s.norm.bias = R(f[2]);
        s.norm.y = R(f[3]);
        break;
      case StepKind::Reduce:
        s.reduce.x = R(f[0]);
        s.reduce.y = R(f[1]);
        break;
      case StepKind::Pool:
        s.pool.x = R(f[0]);
        s.pool.y = R(f[1]);
        break;
      case StepKind::Resize:
        s.resize.x = R(f[0]);
        s.resize.y = R(f[1]);
        break;
      case StepKind::Pad:
        s.pad.x = R(f[0]);
        s.pad.y = R(f[1]);
        break;
      case StepKind::Fill:
        s.fill_ptr = R(f[0]);
        break;
    }
  }
}

}  // namespace almc::onnx
