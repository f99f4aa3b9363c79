// The planner's graph builder (internal to host/onnx): the state that turns a Graph into a Plan
// for one batch size, shared by the planner's passes, each in its own file:
//   planner.cpp            graph building (inputs, node order, the output) and dispatch by op_table()
//   fold.cpp               constant folding (Constant, Shape, Size, ConstantOfShape, Range, Cast and
//                          every node whose inputs are all constant)
//   lower_elementwise.cpp  elementwise ops       lower_gemm_conv.cpp  Gemm, MatMul, Conv, ConvTranspose
//   lower_image.cpp        pooling, Resize, Pad  lower_reduce.cpp     reductions, Softmax, normalisations
//   lower_layout.cpp       data movement (Concat, Split, Reshape, Transpose, Gather, Slice, ...)
//                          and the tensor-sequence ops
//   fusion.cpp             elementwise fusion, normalisation and GEMM/conv epilogues, dimension
//                          collapsing
//   arena.cpp              liveness, arena placement, binding
#pragma once
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "host/onnx/op_table.hpp"
#include "host/onnx/plan.hpp"

namespace almc::onnx::planning {

constexpr int64_t kMaxElems = int64_t(1) << 31;      // per runtime tensor
constexpr int64_t kMaxFoldElems = int64_t(1) << 26;  // per constant (held in double)
constexpr int64_t kMaxFoldedExpand = int64_t(1) << 20;  // elements of an Expand of a constant folded while planning
constexpr int64_t kMaxAttr = int64_t(1) << 31;       // pads, strides, dilations, kernel sizes
constexpr int64_t kMaxIndex = int64_t(1) << 24;      // a Gather index computed here (runtime indices are float32)

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

inline std::vector<int64_t> contig_strides(const std::vector<int64_t>& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = int(s.size()) - 2; i >= 0; --i) st[size_t(i)] = st[size_t(i) + 1] * s[size_t(i) + 1];
  return st;
}

inline int64_t to_i64(double v) {
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

inline bool is_compare(EwOp op) { return (op >= EW_EQUAL && op <= EW_OR) || op == EW_NOT || op == EW_ISNAN || op == EW_ISINF; }

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
  // Tensor sequences (SplitToSequence, SequenceConstruct, ...): the names of their tensors, known
  // while planning (positions must be constants), so a sequence is never a runtime object.
  std::unordered_map<std::string, std::vector<std::string>> seqs_;
  std::map<const HostTensor*, int64_t> const_off_;
  std::map<const HostTensor*, int64_t> const_t_off_;  // ref_transposed's placements
  std::vector<ConstPtr> keep_;
  const Node* cur_ = nullptr;
  // Elements of the constants folded so far, and their bound: kMaxFoldElems plus twice the
  // elements the file holds (initializers, added by build(), and Constant nodes).
  int64_t folded_ = 0;
  int64_t fold_budget_ = kMaxFoldElems;

  // The graph node being lowered when cur_ is a node lower_composite.cpp made up for it: messages
  // name the graph's node.
  const Node* parent_ = nullptr;
  int64_t tmp_count_ = 0;

  [[noreturn]] void fail(const std::string& msg, almc_status st = ALMC_ERR_UNSUPPORTED) const {
    const Node* n = parent_ ? parent_ : cur_;
    throw Error(st, "node " + (n ? n->label() : std::string("?")) + ": " + msg);
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

  // Every shape the plan holds has at most kMaxDims dimensions.
  void check_rank(size_t rank) const {
    if (rank > size_t(kMaxDims))
      fail("rank " + std::to_string(rank) + " above the executor's limit of " + std::to_string(kMaxDims));
  }
  // Constants are folded on the host in double: bound their rank and size.
  void check_const(const HostTensor& c) const {
    check_rank(c.shape.size());
    if (numel(c.shape) > kMaxFoldElems) fail("constant of shape " + shape_str(c.shape) + " is too large", ALMC_ERR_INVALID_ARGUMENT);
  }
  // A folded float32 constant stored as double (folding computes in double) whose values are all
  // float32 values, stored as float32: half the memory for a weight folded from the model's own
  // (a transpose, a scaled or concatenated copy). Small ones and those holding a value float32
  // cannot (a float64 initializer's) are kept as they are.
  static ConstPtr compact(ConstPtr c) {
    if (c->dtype != DType::Float || c->v.floats() || c->v.size() < 64) return c;
    std::vector<float> f(c->v.size());
    for (size_t i = 0; i < f.size(); ++i) {
      const double x = c->v[i];
      f[i] = float(x);
      if (double(f[i]) != x && !std::isnan(x)) return c;
    }
    auto t = std::make_shared<HostTensor>();
    t->dtype = c->dtype;
    t->shape = c->shape;
    t->v = Values::of_floats(std::move(f));
    return t;
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
    c = compact(std::move(c));
    // All that folding holds at once is bounded too: a few nodes of a small file (ConstantOfShape
    // of 2^25, then Mul, Equal, Where on it) made the loader hold gigabytes (fuzz_onnx). The bound
    // grows with the model's own weights (folding a Transpose of every weight stays allowed).
    const int64_t elems = numel(c->shape);
    if (cur_->op == "Constant") fold_budget_ += 2 * elems;  // weights stored as Constant nodes: the file's data
    folded_ += elems;
    if (folded_ > fold_budget_)
      fail("the constants folded while loading exceed " + std::to_string(fold_budget_) +
               " elements (the model computes more at load time than its weights hold)",
           ALMC_ERR_INVALID_ARGUMENT);
    Val v;
    v.dtype = c->dtype;
    v.shape = c->shape;
    v.c = std::move(c);
    vals_[cur_->outputs.at(out_i)] = std::move(v);
  }
  Val& def(size_t out_i, const std::vector<int64_t>& shape, DType dt = DType::Float) {
    check_rank(shape.size());
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
        const int64_t off = append_consts(P, int64_t(v.c->v.size()));
        if (const float* f = v.c->v.floats())
          std::copy(f, f + v.c->v.size(), P.consts.begin() + off);
        else
          std::transform(v.c->v.begin(), v.c->v.end(), P.consts.begin() + off, [](double x) { return float(x); });
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
  // A constant [rows, cols] matrix transposed, as floats straight into the constant buffer, once
  // per constant (no transposed copy of it in double).
  BufRef ref_transposed(const ConstPtr& c, int64_t rows, int64_t cols) {
    BufRef r;
    r.space = BufRef::Const;
    auto it = const_t_off_.find(c.get());
    if (it == const_t_off_.end()) {
      const int64_t off = append_consts(P, rows * cols);
      float* t = P.consts.data() + off;
      const float* f = c->v.floats();
      // In 64 x 64 tiles: a row-by-row transpose of a large weight writes a new cache line for
      // every element (3.5 s of a 0.5 GB model's 9 s load).
      constexpr int64_t kTile = 16;
      for (int64_t i0 = 0; i0 < rows; i0 += kTile)
        for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
          const int64_t i1 = std::min(rows, i0 + kTile), j1 = std::min(cols, j0 + kTile);
          for (int64_t j = j0; j < j1; ++j)
            for (int64_t i = i0; i < i1; ++i)
              t[j * rows + i] = f ? f[i * cols + j] : float(c->v[size_t(i * cols + j)]);
        }
      it = const_t_off_.emplace(c.get(), off).first;
      keep_.push_back(c);
    }
    r.off = it->second;
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
  // The arena reference of a runtime value (an output def() made).
  static BufRef out_ref(const Val& o) {
    BufRef r;
    r.id = o.sid;
    return r;
  }
  // A step of one input X and the node's output 0 of `shape`: refs {X, output}.
  Step& push_unary(StepKind k, const Val& X, const std::vector<int64_t>& shape) {
    const Val& o = def(0, shape);
    Step& s = push(k);
    s.refs = {ref(X), out_ref(o)};
    return s;
  }

  static std::vector<int64_t> bcast(const std::vector<int64_t>& a, const std::vector<int64_t>& b, const Builder* self) {
    // A shape read from a constant may be 2^25 long (fuzz_onnx): the rank first, before allocating.
    self->check_rank(std::max(a.size(), b.size()));
    std::vector<int64_t> r(std::max(a.size(), b.size()), 1);
    for (size_t i = 0; i < r.size(); ++i) {
      int64_t da = i < r.size() - a.size() ? 1 : a[i - (r.size() - a.size())];
      int64_t db = i < r.size() - b.size() ? 1 : b[i - (r.size() - b.size())];
      if (da != db && da != 1 && db != 1)
        self->fail("shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast", ALMC_ERR_PARSE);
      r[i] = da == 1 ? db : da;
    }
    self->numel(r);  // negative or too large (an Expand to 2^61 overflowed the strides: fuzz_onnx)
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

  // ---- constant folding (fold.cpp)
  ConstPtr fold_ew(EwOp op, const std::vector<ConstPtr>& ins, float alpha, float beta, DType out_dt);
  ConstPtr fold_copy(const CopyParams& cp, const HostTensor& src, int64_t in_off, std::vector<int64_t> shape);

  // ---- emission helpers
  void emit_ew(EwOp op, const std::vector<const Val*>& ins, size_t out_i, float alpha, float beta, DType out_dt);  // lower_elementwise.cpp
  void emit_copy(const CopyParams& cp, const Val& src, int64_t in_off, int out_sid, int64_t out_off);  // lower_layout.cpp
  // A strided copy of `shape`, its dimensions collapsed: size-1 dimensions dropped, and a
  // dimension merged into the one before it where both strides continue it (a Concat along
  // channels becomes one contiguous run per sample instead of one per image row).
  static CopyParams make_copy(const std::vector<int64_t>& shape, const std::vector<int64_t>& in_st,
                              const std::vector<int64_t>& out_st) {
    if (shape.size() > size_t(kMaxDims)) throw Error(ALMC_ERR_UNSUPPORTED, "rank above the executor's limit of 8");
    CopyParams c{};
    c.ndim = 0;
    c.total = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      c.total *= shape[d];
      if (shape[d] == 1) continue;
      const int k = c.ndim - 1;
      if (k >= 0 && c.in_stride[k] == in_st[d] * shape[d] && c.out_stride[k] == out_st[d] * shape[d]) {
        c.shape[k] *= shape[d];
        c.in_stride[k] = in_st[d];
        c.out_stride[k] = out_st[d];
        continue;
      }
      c.shape[c.ndim] = shape[d];
      c.in_stride[c.ndim] = in_st[d];
      c.out_stride[c.ndim] = out_st[d];
      ++c.ndim;
    }
    return c;
  }

  // Lowering, one ONNX node (cur_) at a time, dispatched through op_table().
  void node();                                  // planner.cpp
  void node_constant();                         // fold.cpp
  void node_elementwise(EwOp op, int arity);    // lower_elementwise.cpp
  void node_gemm();                             // lower_gemm_conv.cpp
  void node_matmul();
  void node_conv(bool transpose);
  void node_pool();                             // lower_image.cpp
  void node_resize();
  void node_pad();
  void node_reduce();                           // lower_reduce.cpp
  void node_softmax();
  void node_norm();
  void node_layout();                           // lower_layout.cpp
  void node_tile();
  void node_sequence();
  void node_composite();                        // lower_composite.cpp

  // Composite lowering (lower_composite.cpp): an op rewritten as nodes of other ops, each lowered
  // as if it were in the graph. sub() lowers one such node and returns its output's name;
  // konst() names a new constant.
  std::string sub(const std::string& op, const std::vector<std::string>& inputs, std::map<std::string, Attr> attrs = {},
                  const std::string& output = "");
  std::string konst(std::vector<int64_t> shape, std::vector<double> v, DType dt = DType::Float);
  std::string konst_ints(const std::vector<int64_t>& v);
  void composite_einsum();
  void composite_batchnorm();
  void composite_depth_space(bool to_space);
  void composite_reduce();
  void composite_gelu();
  void composite_rms_norm();
  void composite_attention();
  void composite_trilu();
  int64_t linear_index(const double* idx, const int64_t* dims, int64_t depth) const;
  void composite_gather_nd();
  void composite_scatter(bool nd_form);
  void composite_cumsum();
};

// A Constant node's value (value, value_float(s), value_int(s)), or null (fold.cpp).
ConstPtr constant_value(const Node& nd);

// The graph's nodes with each GELU that exporters write out (Erf or Tanh form) as one Gelu node
// (gelu_match.cpp); the planner lowers these instead of g.nodes.
std::vector<Node> recognise_gelu(const Graph& g);

// Passes over a lowered plan (fusion.cpp, arena.cpp).
void fuse_elementwise(Plan& p);
void fuse_norm_epilogues(Plan& p);
void fuse_epilogues(Plan& p);
void collapse_elementwise(Plan& p);
void place_arena(Plan& p);

}  // namespace almc::onnx::planning
