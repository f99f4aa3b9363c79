// Lowering of Gemm, MatMul, Conv and ConvTranspose.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/onnx/builder.hpp"
#include "host/onnx/convt_phases.hpp"

namespace almc::onnx::planning {

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
  s.refs = {ref(A)};
  if (!(tb && B.c)) s.refs.push_back(ref(B));
  if (tb && B.c) {
    // A constant transposed B (a Linear layer's weight [N, K]) is stored transposed once here
    // (only so: the weight as given is not kept as well): the CPU GEMM reads B by rows of N and
    // would otherwise transpose it on every call.
    s.refs.push_back(ref_transposed(B.c, N, K));
    p.trans_b = false;
    p.ldb = N;
  }
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
  const auto out_pad = nd.getints("output_padding");
  const size_t dims = one_d ? 1 : 2;
  if ((!strides.empty() && strides.size() != dims) || (!dil.empty() && dil.size() != dims) ||
      (!out_pad.empty() && out_pad.size() != dims) || (one_d && !pads.empty() && pads.size() != 2))
    fail("strides, dilations, pads or output_padding of the wrong length", ALMC_ERR_PARSE);
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
  // The CPU's ConvTranspose by stride phases needs at least one image padded and one phase row
  // of its GEMM (host/onnx/convt_phases.hpp).
  if (transpose) c.col_elems = std::max(c.col_elems, ConvTPhases(c).floats(c, 1));
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

}  // namespace almc::onnx::planning
