// Lowering of the data-movement ops: views where the layout allows, strided copies otherwise.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/onnx/builder.hpp"

namespace almc::onnx::planning {

void Builder::emit_copy(const CopyParams& cp, const Val& src, int64_t in_off, int out_sid, int64_t out_off) {
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

void Builder::node_layout() {
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
  if (op == "Tile") {
    // Output axis i of length reps[i] * d_i splits into (repeat, j), the repeat major: a copy of
    // shape [r_0, d_0, r_1, d_1, ...] reading strides [0, cs_0, 0, cs_1, ...] into contiguous output.
    auto reps = const_ints(1, "Tile repeats");
    if (reps.size() != r) fail("repeats has " + std::to_string(reps.size()) + " values for rank " + std::to_string(r), ALMC_ERR_PARSE);
    check_attr(reps, "repeats");
    std::vector<int64_t> shape, ist, s;
    for (size_t i = 0; i < r; ++i) {
      if (reps[i] < 0) fail("negative repeat", ALMC_ERR_PARSE);
      if (reps[i] != 1) {
        shape.push_back(reps[i]);
        ist.push_back(0);
      }
      shape.push_back(X.shape[i]);
      ist.push_back(cs[i]);
      s.push_back(X.shape[i] * reps[i]);
    }
    numel(s);
    if (shape.size() > size_t(kMaxDims)) fail("Tile of rank " + std::to_string(r) + " repeating more than " + std::to_string(kMaxDims - r) + " axes");
    CopyParams cp = make_copy(shape, ist, contig_strides(shape));
    if (X.c) return set_const(0, fold_copy(cp, *X.c, 0, s));
    Val& o = def(0, s, X.dtype);
    if (numel(s) == 0) return;
    return emit_copy(cp, X, 0, o.sid, 0);
  }
  if (op == "Expand") {
    auto target = const_ints(1, "the Expand shape");
    auto s = bcast(X.shape, target, this);
    CopyParams cp = make_copy(s, bstrides(X.shape, s), contig_strides(s));
    // A constant is expanded while planning unless the result is large (a conditioning input
    // given once and expanded to the batch: capi_onnx.cpp), which is copied at run time instead.
    if (X.c && numel(s) <= kMaxFoldedExpand) return set_const(0, fold_copy(cp, *X.c, 0, s));
    Val& o = def(0, s, X.dtype);
    return emit_copy(cp, X, 0, o.sid, 0);
  }
  if (op == "Slice") {
    const bool attrs = nd.has("starts");  // attributes up to opset 9, inputs after
    auto starts = attrs ? nd.getints("starts") : const_ints(1, "Slice starts");
    auto ends = attrs ? nd.getints("ends") : const_ints(2, "Slice ends");
    std::vector<int64_t> axes, steps;
    if (attrs && nd.has("axes")) axes = nd.getints("axes");
    else if (!attrs && in(3)) axes = const_ints(3, "Slice axes");
    else
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(int64_t(i));
    if (!attrs && in(4)) steps = const_ints(4, "Slice steps");
    else steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
      fail("starts, ends, axes and steps differ in length", ALMC_ERR_PARSE);
    std::vector<int64_t> s = X.shape, ist = cs;
    int64_t off = 0;
    for (size_t k = 0; k < axes.size(); ++k) {
      auto i = size_t(axis_norm(axes[k], r));
      const int64_t dim = X.shape[i];
      if (steps[k] == 0) fail("Slice step 0", ALMC_ERR_PARSE);
      // A step longer than the axis takes at most one element: as a step of dim + 1, which keeps
      // the count and the stride below within int64 (a step of 2^61 overflowed both: fuzz_onnx).
      const int64_t st = std::clamp<int64_t>(steps[k], -(dim + 1), dim + 1);
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
      if (all_const) {
        const std::vector<double> src(v->c->v.begin(), v->c->v.end());  // set_const stores float32 results as such
        cpu_copy<double>(cp, src.data(), t->v.data() + off);
      }
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
      const std::vector<double> table(X.c->v.begin(), X.c->v.end());  // set_const stores float32 results as such
      cpu_gather<double>(p, table.data(), I.c->v.double_data(), t->v.data());
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

// Tensor sequences (opset 11): a sequence is the list of its tensors' names, resolved here, so
// every position must be a constant; SequenceAt and ConcatFromSequence then read tensors as
// usual. torch 2.x's exporter writes SplitToSequence / SequenceAt for torch.split and chunk when
// the graph is not optimised (optimize=False).
void Builder::node_sequence() {
  const Node& nd = *cur_;
  const std::string& op = nd.op;
  auto seq_in = [&](size_t i) -> const std::vector<std::string>& {
    if (i >= nd.inputs.size() || nd.inputs[i].empty()) fail("missing input " + std::to_string(i), ALMC_ERR_PARSE);
    auto it = seqs_.find(nd.inputs[i]);
    if (it == seqs_.end()) fail("input '" + nd.inputs[i] + "' is not a tensor sequence", ALMC_ERR_PARSE);
    return it->second;
  };
  auto attr_int = [](int64_t v) {
    Attr a;
    a.i = v;
    return a;
  };
  auto attr_ints = [](std::vector<int64_t> v) {
    Attr a;
    a.ints = std::move(v);
    return a;
  };
  // A position: a constant scalar in [-n, n) (or [-n, n] where `n_ok`, to insert at the end).
  auto position = [&](size_t i, int64_t n, bool n_ok) {
    const auto p = const_ints(i, "a sequence position");
    if (p.size() != 1) fail("a sequence position must be one value", ALMC_ERR_PARSE);
    const int64_t hi = n_ok ? n : n - 1;
    if (p[0] < -n || p[0] > hi) fail("position " + std::to_string(p[0]) + " out of range for a sequence of " + std::to_string(n), ALMC_ERR_PARSE);
    return p[0] < 0 ? p[0] + n : p[0];
  };
  if (nd.outputs.empty() || nd.outputs[0].empty()) fail("no output", ALMC_ERR_PARSE);
  const std::string& out = nd.outputs[0];
  if (op == "SequenceEmpty") {
    seqs_[out] = {};
  } else if (op == "SequenceConstruct") {
    std::vector<std::string> names;
    for (size_t i = 0; i < nd.inputs.size(); ++i) {
      need(i);
      names.push_back(nd.inputs[i]);
    }
    seqs_[out] = std::move(names);
  } else if (op == "SequenceLength") {
    auto t = std::make_shared<HostTensor>();
    t->dtype = DType::Int64;
    t->v = {double(seq_in(0).size())};
    set_const(0, t);
  } else if (op == "SequenceAt") {
    const auto& names = seq_in(0);
    const std::string name = names[size_t(position(1, int64_t(names.size()), false))];
    sub("Identity", {name}, {}, out);
  } else if (op == "SequenceInsert") {
    std::vector<std::string> names = seq_in(0);
    need(1);
    const int64_t p = in(2) ? position(2, int64_t(names.size()), true) : int64_t(names.size());
    names.insert(names.begin() + p, nd.inputs[1]);
    seqs_[out] = std::move(names);
  } else if (op == "SequenceErase") {
    std::vector<std::string> names = seq_in(0);
    if (names.empty()) fail("erasing from an empty sequence", ALMC_ERR_PARSE);
    const int64_t p = in(1) ? position(1, int64_t(names.size()), false) : int64_t(names.size()) - 1;
    names.erase(names.begin() + p);
    seqs_[out] = std::move(names);
  } else if (op == "ConcatFromSequence") {
    const std::vector<std::string> names = seq_in(0);
    if (names.empty()) fail("concatenating an empty sequence", ALMC_ERR_PARSE);
    const bool new_axis = nd.geti("new_axis", 0) != 0;
    const int64_t axis = nd.geti("axis", 0);
    std::vector<std::string> parts = names;
    if (new_axis) {
      const size_t r = vals_.at(names[0]).shape.size();
      const int64_t a = axis_norm(axis, r + 1);
      for (auto& n : parts) n = sub("Unsqueeze", {n}, {{"axes", attr_ints({a})}});
    }
    sub("Concat", parts, {{"axis", attr_int(axis)}}, out);
  } else if (op == "SplitToSequence") {
    const Val X = need(0);
    const int64_t axis = axis_norm(nd.geti("axis", 0), X.shape.size());
    const int64_t len = X.shape[size_t(axis)];
    std::vector<int64_t> sizes;
    bool squeeze = false;
    if (!in(1)) {  // chunks of 1, squeezed unless keepdims
      sizes.assign(size_t(len), 1);
      squeeze = nd.geti("keepdims", 1) == 0;
    } else {
      const Val& S = need(1);
      const auto v = const_ints(1, "split");
      if (S.shape.empty()) {  // one size: equal chunks, the last one shorter
        if (v.size() != 1 || v[0] <= 0) fail("split must be positive", ALMC_ERR_PARSE);
        for (int64_t at = 0; at < len; at += v[0]) sizes.push_back(std::min(v[0], len - at));
      } else {
        int64_t sum = 0;
        for (auto x : v) {
          if (x < 0) fail("negative split size", ALMC_ERR_PARSE);
          sum += x;
        }
        if (sum != len) fail("split sizes add up to " + std::to_string(sum) + ", not the axis' " + std::to_string(len), ALMC_ERR_PARSE);
        sizes = v;
      }
    }
    if (sizes.size() > 4096) fail("a sequence of " + std::to_string(sizes.size()) + " tensors (the executor takes 4096)");
    std::vector<std::string> names;
    int64_t at = 0;
    for (int64_t n : sizes) {
      std::string piece = sub("Slice", {nd.inputs[0], konst_ints({at}), konst_ints({at + n}), konst_ints({axis})});
      if (squeeze) piece = sub("Squeeze", {piece}, {{"axes", attr_ints({axis})}});
      names.push_back(piece);
      at += n;
    }
    seqs_[out] = std::move(names);
  } else {
    fail("is not a sequence op", ALMC_ERR_INTERNAL);
  }
}

// Elementwise fusion, GEMM epilogues, dimension collapsing, then the arena.

}  // namespace almc::onnx::planning
