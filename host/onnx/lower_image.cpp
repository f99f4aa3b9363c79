// Lowering of pooling, Resize and Pad.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/onnx/builder.hpp"

namespace almc::onnx::planning {

void Builder::node_pool() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  if (X.shape.size() != 4 && X.shape.size() != 3) fail("only 1-D and 2-D pooling ([N, C, W], [N, C, H, W]) is supported");
  PoolParams p{};
  p.max = nd.op == "MaxPool";
  if (cur_->outputs.size() > 1 && !cur_->outputs[1].empty()) fail("MaxPool indices output");
  auto k = nd.getints("kernel_shape"), st = nd.getints("strides"), pads = nd.getints("pads"), dil = nd.getints("dilations");
  const bool one_d = X.shape.size() == 3;
  if (one_d) {  // as 2-D pooling of [N, C, 1, W]
    if (k.size() != 1 || (!st.empty() && st.size() != 1) || (!dil.empty() && dil.size() != 1) || (!pads.empty() && pads.size() != 2))
      fail("kernel_shape, strides, dilations or pads of the wrong length", ALMC_ERR_PARSE);
    k.insert(k.begin(), 1);
    if (!st.empty()) st.insert(st.begin(), 1);
    if (!dil.empty()) dil.insert(dil.begin(), 1);
    if (!pads.empty()) pads = {0, pads[0], 0, pads[1]};
  }
  if (k.size() != 2) fail("kernel_shape must have 2 values", ALMC_ERR_PARSE);
  check_attr(k, "kernel_shape");
  check_attr(st, "strides");
  check_attr(pads, "pads");
  check_attr(dil, "dilations");
  if ((!st.empty() && st.size() != 2) || (!dil.empty() && dil.size() != 2) || (!pads.empty() && pads.size() != 4))
    fail("strides, dilations or pads of the wrong length", ALMC_ERR_PARSE);
  if (nd.gets("auto_pad", "NOTSET") != "NOTSET" && nd.gets("auto_pad", "NOTSET") != "VALID") fail("pooling with auto_pad SAME");
  p.NC = X.shape[0] * X.shape[1];
  p.H = one_d ? 1 : X.shape[2];
  p.W = X.shape.back();
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
  push_unary(StepKind::Pool, X, one_d ? std::vector<int64_t>{X.shape[0], X.shape[1], p.OW}
                                       : std::vector<int64_t>{X.shape[0], X.shape[1], p.OH, p.OW}).pool = p;
}

void Builder::node_resize() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  if (r < 2 || r > 4) fail("Resize of rank " + std::to_string(r) + " (2 to 4 supported)");
  std::vector<double> scales(r, 1.0);
  std::vector<int64_t> oshape = X.shape;
  // Upsample (to opset 9) and Resize-10 take (X, scales) and map coordinates asymmetrically.
  const bool legacy = nd.op == "Upsample" || g_.opset < 11;
  const size_t sc_i = legacy ? 1 : 2;
  const Val* sc = in(sc_i);
  const Val* sz = legacy ? nullptr : in(3);
  // Opset 18: scales / sizes may list some axes only (the others keep scale 1), and sizes may keep
  // the aspect ratio (one scale for the listed axes, the smallest or the largest of size / input).
  std::vector<size_t> axes;
  if (nd.has("axes")) {
    for (auto a : nd.getints("axes")) {
      const size_t ax = size_t(axis_norm(a, r));
      if (std::find(axes.begin(), axes.end(), ax) != axes.end()) fail("axis " + std::to_string(a) + " listed twice", ALMC_ERR_PARSE);
      axes.push_back(ax);
    }
  } else {
    for (size_t i = 0; i < r; ++i) axes.push_back(i);
  }
  if (sz && numel(sz->shape) > 0) {
    auto s = const_ints(3, "Resize sizes");
    check_attr(s, "sizes");
    if (s.size() != axes.size()) fail("sizes has " + std::to_string(s.size()) + " values for " + std::to_string(axes.size()) + " axes", ALMC_ERR_PARSE);
    const std::string policy = nd.gets("keep_aspect_ratio_policy", "stretch");
    if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
      fail("keep_aspect_ratio_policy '" + policy + "'", ALMC_ERR_PARSE);
    double keep = policy == "not_larger" ? 1e300 : 0.0;
    for (size_t k = 0; k < axes.size(); ++k) {
      if (s[k] < 0 || X.shape[axes[k]] == 0) fail("invalid Resize sizes", ALMC_ERR_PARSE);
      const double q = double(s[k]) / double(X.shape[axes[k]]);
      keep = policy == "not_larger" ? std::min(keep, q) : std::max(keep, q);
    }
    for (size_t k = 0; k < axes.size(); ++k) {
      const size_t i = axes[k];
      if (policy == "stretch") {
        oshape[i] = s[k];
        scales[i] = double(s[k]) / double(X.shape[i]);
      } else {  // the one scale, and sizes rounded from it (half to even, as the reference does)
        scales[i] = keep;
        oshape[i] = int64_t(std::nearbyint(keep * double(X.shape[i])));
      }
    }
  } else if (sc && numel(sc->shape) > 0) {
    const auto& t = need_const(sc_i, "Resize scales");
    if (t.v.size() != axes.size()) fail("scales has " + std::to_string(t.v.size()) + " values for " + std::to_string(axes.size()) + " axes", ALMC_ERR_PARSE);
    for (size_t k = 0; k < axes.size(); ++k) {
      const size_t i = axes[k];
      scales[i] = double(float(t.v[k]));
      if (!(scales[i] > 0) || scales[i] > 1e6) fail("invalid scale", ALMC_ERR_PARSE);
      oshape[i] = int64_t(std::floor(double(X.shape[i]) * scales[i]));
    }
  } else {
    fail("Resize needs scales or sizes", ALMC_ERR_PARSE);
  }
  for (size_t i = 0; i + 2 < r; ++i)
    if (oshape[i] != X.shape[i]) fail("Resize of the batch or channel dimensions");
  std::string mode = nd.gets("mode", "nearest");
  if (legacy && mode == "bilinear") mode = "linear";
  if (legacy && mode == "bicubic") mode = "cubic";
  if (mode != "nearest" && mode != "linear" && mode != "cubic") fail("Resize mode '" + mode + "' (nearest, linear and cubic supported)");
  if (mode != "nearest" && nd.geti("antialias", 0) != 0)
    for (size_t i = 0; i < r; ++i)
      if (scales[i] < 1) fail("antialiased " + mode + " downsampling (antialias = 1 with a scale below 1)");
  const std::string ctm = legacy ? "asymmetric" : nd.gets("coordinate_transformation_mode", "half_pixel");
  const std::string nm = legacy ? "floor" : nd.gets("nearest_mode", "round_prefer_floor");
  ResizeParams p{};
  p.linear = mode == "linear";
  p.cubic = mode == "cubic";
  p.cubic_a = nd.getf("cubic_coeff_a", -0.75f);
  p.exclude_outside = nd.geti("exclude_outside", 0) != 0;
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
  // The source coordinates are computed as the runtime does, in float32 from the float32 scale
  // (ops.cuh resize_source).
  if (ctm == "half_pixel") p.coord = COORD_HALF_PIXEL;
  else if (ctm == "pytorch_half_pixel") p.coord = COORD_PYTORCH_HALF_PIXEL;
  else if (ctm == "half_pixel_symmetric") p.coord = COORD_HALF_PIXEL_SYMMETRIC;
  else if (ctm == "align_corners") p.coord = COORD_ALIGN_CORNERS;
  else if (ctm == "asymmetric") p.coord = COORD_ASYMMETRIC;
  else if (ctm == "tf_half_pixel_for_nn") p.coord = COORD_TF_HALF_PIXEL_FOR_NN;
  else fail("coordinate_transformation_mode '" + ctm + "'");
  p.scale_h = r >= 3 ? float(scales[r - 2]) : 1.f;
  p.scale_w = float(scales[r - 1]);
  if (r == 2) {  // [N, W]: one row per sample, which every mode maps to itself
    p.NC = X.shape[0];
    p.H = 1;
    p.OH = 1;
    p.scale_h = 1.f;
  }
  push_unary(StepKind::Resize, X, oshape).resize = p;
}

void Builder::node_pad() {
  const Node& nd = *cur_;
  const Val& X = need(0);
  const size_t r = X.shape.size();
  // pads and value are attributes up to opset 10, inputs after.
  auto pads = nd.has("pads") ? nd.getints("pads") : const_ints(1, "Pad pads");
  if (!nd.has("pads") && in(3)) {  // opset 18: pads for the listed axes only (begins, then ends)
    const auto axes = const_ints(3, "Pad axes");
    if (pads.size() != 2 * axes.size())
      fail("pads has " + std::to_string(pads.size()) + " values for " + std::to_string(axes.size()) + " axes", ALMC_ERR_PARSE);
    std::vector<int64_t> full(2 * r, 0);
    std::vector<bool> seen(r, false);
    for (size_t k = 0; k < axes.size(); ++k) {
      const int64_t a = axis_norm(axes[k], r);
      if (seen[size_t(a)]) fail("axis " + std::to_string(axes[k]) + " listed twice", ALMC_ERR_PARSE);
      seen[size_t(a)] = true;
      full[size_t(a)] = pads[k];
      full[size_t(a) + r] = pads[k + axes.size()];
    }
    pads = full;
  }
  if (pads.size() != 2 * r) fail("pads has " + std::to_string(pads.size()) + " values for rank " + std::to_string(r), ALMC_ERR_PARSE);
  check_attr(pads, "pads");
  float value = nd.getf("value", 0.f);
  if (const Val* cv = nd.has("pads") ? nullptr : in(2)) {
    if (!cv->c || cv->c->v.size() != 1) fail("constant_value must be a constant scalar");
    value = float(cv->c->v[0]);
  }
  const std::string mode = nd.gets("mode", "constant");
  PadParams p{};
  p.ndim = int(r);
  p.mode = mode == "constant" ? 0 : mode == "reflect" ? 1 : mode == "edge" ? 2 : mode == "wrap" ? 3 : -1;
  if (p.mode < 0) fail("Pad mode '" + mode + "' (constant, reflect, edge and wrap supported)");
  p.value = value;
  std::vector<int64_t> oshape(r);
  for (size_t i = 0; i < r; ++i) {
    p.ishape[i] = X.shape[i];
    p.begin[i] = pads[i];
    oshape[i] = X.shape[i] + pads[i] + pads[i + r];
    if (oshape[i] < 0) fail("negative padded size", ALMC_ERR_PARSE);
    if (p.mode != 0 && X.shape[i] == 0 && (pads[i] > 0 || pads[i + r] > 0))
      fail("Pad mode '" + mode + "' of an empty axis", ALMC_ERR_PARSE);
    if (p.mode == 1 && (pads[i] >= X.shape[i] || pads[i + r] >= X.shape[i]) && (pads[i] > 0 || pads[i + r] > 0))
      fail("reflect padding wider than the input", ALMC_ERR_PARSE);
    p.oshape[i] = oshape[i];
  }
  p.total = numel(oshape);
  push_unary(StepKind::Pad, X, oshape).pad = p;
}

}  // namespace almc::onnx::planning
