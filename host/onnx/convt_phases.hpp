// ConvTranspose as stride phases (the CPU's path, host/onnx/cpu_kernels.cpp; the planner sizes its
// workspace with it). Output row oh = a + sh*i (row phase a < sh, phase row i) receives tap kh
// exactly when a + ph - kh*dh is a multiple of sh, from input row ih = i + off, off = (a + ph -
// kh*dh) / sh; likewise the columns. So output phase (a, b) is an ordinary unit-stride
// convolution of the input, zero-padded by padT rows and padL columns, with the taps of that
// phase: one GEMM [Mg, Cg*taps] x [Cg*taps, rows*Wp] per phase reading shifted views of the padded
// image (GemmView::b_koff), no column matrix and no scatter. Every tap kh belongs to exactly one
// row phase, so the phases' weights together are the weight, reordered (packed once per plan).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda/onnx/params.hpp"

namespace almc::onnx {

struct ConvTPhases {
  struct Tap {
    int64_t k, off;  // kernel index, input offset (phase row i reads input row i + off)
  };
  std::vector<std::vector<Tap>> th, tw;  // taps of each row phase a < sh, column phase b < sw
  std::vector<int64_t> hq, wq;           // phase rows / columns of each phase
  int64_t padT = 0, padL = 0, Hp = 0, Wp = 0;
  int64_t wq_max = 0;

  static void axis(int64_t in, int64_t out, int64_t k, int64_t s, int64_t pad, int64_t d, std::vector<std::vector<Tap>>& t,
                   std::vector<int64_t>& q, int64_t& lo, int64_t& len) {
    t.assign(size_t(s), {});
    q.assign(size_t(s), 0);
    int64_t mn = 0, mx = in;  // rows [mn, mx) of the padded input relative to input row 0
    for (int64_t a = 0; a < s; ++a) {
      q[size_t(a)] = a < out ? (out - a + s - 1) / s : 0;
      for (int64_t kk = 0; kk < k; ++kk) {
        const int64_t r = a + pad - kk * d;
        if (((r % s) + s) % s) continue;
        const int64_t off = (r - (((r % s) + s) % s)) / s;  // exact: r is a multiple of s
        t[size_t(a)].push_back({kk, off});
        if (q[size_t(a)] > 0) {
          mn = std::min(mn, off);
          mx = std::max(mx, q[size_t(a)] + off);
        }
      }
    }
    lo = -mn;
    len = mx - mn;
  }

  explicit ConvTPhases(const ConvParams& p) {
    axis(p.H, p.OH, p.KH, p.sh, p.ph, p.dh, th, hq, padT, Hp);
    axis(p.W, p.OW, p.KW, p.sw, p.pw, p.dw, tw, wq, padL, Wp);
    for (int64_t w : wq) wq_max = std::max(wq_max, w);
  }
  // Slack after the padded image: the wide span's last columns (rounded up to whole register
  // panels, at most this many) read zeros there.
  static constexpr int64_t kSlack = 128;
  int64_t image_floats(const ConvParams& p) const { return (p.C / p.group) * Hp * Wp + kSlack; }
  // The padded image and the GEMM result of `rows` phase rows (an upper bound of its padding).
  int64_t floats(const ConvParams& p, int64_t rows) const {
    return image_floats(p) + (p.M / p.group) * ((rows - 1) * Wp + wq_max + kSlack);
  }
};

}  // namespace almc::onnx
