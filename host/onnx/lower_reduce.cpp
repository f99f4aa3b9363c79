// Lowering of ReduceSum/Mean/Max/Min, GlobalAverage/MaxPool, Softmax/LogSoftmax and the normalisations.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cuda/onnx/ops.cuh"
#include "host/onnx/builder.hpp"

namespace almc::onnx::planning {

void Builder::node_reduce() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  std::vector<int64_t> axes;
  bool keep = nd.geti("keepdims", 1) != 0;
  const bool mean = nd.op == "ReduceMean" || nd.op == "GlobalAveragePool";
  const int extreme = nd.op == "ReduceMax" || nd.op == "GlobalMaxPool" ? 1 : nd.op == "ReduceMin" ? -1 : 0;
  if (nd.op == "GlobalAveragePool" || nd.op == "GlobalMaxPool") {
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
  p.extreme = extreme;
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
  const bool prod = nd.op == "ReduceProd";
  if (X.c) {  // folded (in double): shape arithmetic such as torch's element counts for var / std
    auto t = std::make_shared<HostTensor>();
    t->dtype = X.dtype;
    t->shape = oshape;
    t->v.assign(size_t(p.out_total), 0.0);
    for (int64_t o = 0; o < p.out_total; ++o) {
      const int64_t base = strided_offset(o, p.ondim, p.oshape, p.ostride);
      double acc = prod ? 1.0 : extreme ? -INFINITY * extreme : 0.0;
      for (int64_t k = 0; k < p.red_total; ++k) {
        const double v = X.c->v[size_t(base + strided_offset(k, p.rndim, p.rshape, p.rstride))];
        acc = prod ? acc * v : extreme > 0 ? std::max(acc, v) : extreme < 0 ? std::min(acc, v) : acc + v;
      }
      if (mean) acc /= double(p.red_total);
      t->v[size_t(o)] = X.dtype == DType::Float ? double(float(acc)) : acc;
    }
    return set_const(0, t);
  }
  if (prod) fail("ReduceProd of a runtime tensor (only constant shape arithmetic is supported)");
  push_unary(StepKind::Reduce, X, oshape).reduce = p;
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
  push_unary(StepKind::Softmax, X, X.shape).softmax = p;
}

void Builder::node_norm() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  NormParams p{};
  p.eps = nd.getf("epsilon", 1e-5f);
  p.act = EW_COPY;  // fuse_norm_epilogues may set it
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
    p.seg = 1;  // column i's own scale
    p.nch = p.len;
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
    // GroupNormalization from opset 21 (and InstanceNormalization) scales per channel: row r
    // (group r % groups) runs over channels (r % groups) * C / groups onwards, `spatial` elements
    // each. GroupNormalization 18 scales per group: one (scale, bias) per row.
    const bool per_channel = nd.op != "GroupNormalization" || g_.opset >= 21;
    p.seg = per_channel ? spatial : p.len;
    p.nch = per_channel ? C : groups;
    if (!scale || !bias || numel(scale->shape) != p.nch || numel(bias->shape) != p.nch)
      fail("scale and bias must have " + std::to_string(p.nch) + " values" +
               (nd.op == "GroupNormalization" ? (per_channel ? " (one per channel from opset 21)" : " (one per group before opset 21)") : ""),
           ALMC_ERR_PARSE);
  }
  const Val& o = def(0, X.shape);
  Step& s = push(StepKind::Norm);
  s.norm = p;
  BufRef none;
  none.id = -2;
  s.refs = {ref(X), scale ? ref(*scale) : none, bias ? ref(*bias) : none, out_ref(o)};
}

}  // namespace almc::onnx::planning
