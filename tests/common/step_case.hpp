// One Langevin step on a backend from fixed inputs, for comparing the backends' step paths (the
// per-chain step of short rows against the multi-pass step; CUDA against the CPU). Internal API.
#pragma once

#include "host/backend/backend.hpp"
#include "tests/common/test_util.hpp"

#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace almc_test {

struct StepCase {
  int32_t prior;     // almc::PriorKind
  int32_t op;        // almc::OpKind (kOpBlur and kOpMatrix read the gradient buffer)
  bool warm;         // a warm-start step (score of N(0, I))
  int64_t d;         // row length (C H W for average pooling)
  int64_t K = 5;     // GMM components (one group of 4 in the score passes, and one more)
  int64_t C = 1, H = 1, W = 1, f = 1;  // kOpDownsample
  bool staged = false;  // prior_tables + gmm_responsibilities + fused_step instead of analytic_prior_step

  std::string name() const {
    return "prior " + std::to_string(prior) + " op " + std::to_string(op) + (warm ? " warm" : " anneal") + " d " +
           std::to_string(d) + (staged ? " staged" : "");
  }
};

// A downsampling case on a C x H x W image.
inline StepCase pool_case(int32_t prior, bool warm, int64_t C, int64_t H, int64_t W, int64_t f) {
  StepCase k{prior, almc::kOpDownsample, warm, C * H * W};
  k.C = C;
  k.H = H;
  k.W = W;
  k.f = f;
  return k;
}

// The cases every comparison runs: each prior and operator, warm and annealing steps, rows of
// 1 .. 64 coordinates (partial groups of four and of eight, one and several score passes).
inline std::vector<StepCase> step_cases() {
  std::vector<StepCase> cs;
  for (int32_t prior : {almc::kPriorBuffer, almc::kPriorGaussian, almc::kPriorGmm})
    for (bool warm : {false, true}) {
      for (int32_t op : {almc::kOpNone, almc::kOpIdentity, almc::kOpMask, almc::kOpBlur, almc::kOpMatrix})
        for (int64_t d : {1, 2, 3, 7, 13, 32, 64}) cs.push_back({prior, op, warm, d});
      cs.push_back(pool_case(prior, warm, 1, 2, 2, 2));
      cs.push_back(pool_case(prior, warm, 1, 3, 3, 3));
      cs.push_back(pool_case(prior, warm, 2, 4, 4, 2));
      cs.push_back(pool_case(prior, warm, 1, 4, 8, 4));
      cs.push_back(pool_case(prior, warm, 1, 8, 8, 2));
    }
  for (int64_t d : {2, 13, 64}) {
    StepCase k{almc::kPriorGmm, almc::kOpIdentity, false, d};
    k.staged = true;
    cs.push_back(k);
  }
  return cs;
}

struct StepOutput {
  std::vector<float> x0, x, resp;
};

// Runs a step on host memory in place of the backend's (tables already at the step's level).
using DirectStep = std::function<void(const almc::FusedStepParams& p)>;

// One step of n chains (global chains 5 .. 5 + n, 7 per measurement) of case k on backend be,
// inputs from seed: x, the prior (means, variances 0.2 .. 1.4, weights), mask, measurement rows,
// score buffer and gradient buffer. Returns x before and after the step and the responsibilities
// (GMM). With `direct` (a CPU backend), the tables come from the backend and the step from direct.
inline StepOutput run_step(almc::Backend* be, const StepCase& k, int64_t n, uint64_t seed,
                           const DirectStep& direct = nullptr) {
  using namespace almc;
  Lcg rng(seed);
  const int64_t d = k.d, K = k.prior == kPriorGmm ? k.K : 1, chain0 = 5, cpm = 7;
  const int64_t m = k.op == kOpDownsample ? k.C * (k.H / k.f) * (k.W / k.f) : d;
  const int64_t rows = (chain0 + n - 1) / cpm + 1;
  const auto x0 = rng.normals(static_cast<size_t>(n * d), 1.5);
  // Components near each other, so the responsibilities are neither 0 nor 1 and every bit counts.
  auto mu = rng.normals(static_cast<size_t>(K * d), 0.3);
  std::vector<float> var(static_cast<size_t>(K * d)), log_w(static_cast<size_t>(K)), mask(static_cast<size_t>(d));
  for (size_t i = 0; i < var.size(); ++i) var[i] = 0.2f + 1.2f * static_cast<float>(rng.uniform());
  double wsum = 0;
  std::vector<double> w(static_cast<size_t>(K));
  for (auto& v : w) wsum += (v = 0.2 + rng.uniform());
  for (int64_t i = 0; i < K; ++i) log_w[i] = static_cast<float>(std::log(w[i] / wsum));
  for (int64_t j = 0; j < d; ++j) mask[j] = rng.uniform() < 0.3 ? 0.f : static_cast<float>(0.5 + rng.uniform());
  const auto y = rng.normals(static_cast<size_t>(rows * m));
  const auto score = rng.normals(static_cast<size_t>(n * d));
  const auto grad = rng.normals(static_cast<size_t>(n * d), 2.0);

  auto upload = [&](const std::vector<float>& v) {
    Buffer b(be, 4 * v.size());
    b.upload(v.data(), 4 * v.size());
    return b;
  };
  Buffer bx = upload(x0), bmu = upload(mu), bvar = upload(var), blw = upload(log_w), bmask = upload(mask),
         by = upload(y), bscore = upload(score), bgrad = upload(grad);
  Buffer bresp(be, 4 * static_cast<size_t>(n * K));
  be->zero(bresp.get(), bresp.bytes());
  Buffer bresp_work(be, be->gmm_resp_work_bytes(n, d, K));
  const GmmPrior g{bmu.f(), bvar.f(), blw.f(), K};
  PriorTableStorage tables(be, g, d);

  StepScalars sc{};
  sc.t = 0.45f;
  sc.h = 0.013f;
  sc.noise = std::sqrt(2.f * sc.h);
  sc.lik = 3.5f;
  sc.xs = 1.25f;
  sc.neg_xs = -sc.xs;
  sc.post = 0.97f;
  sc.kind = k.warm ? kStepWarm : kStepAnneal;
  sc.aux = -1;
  sc.step = 123457;
  Buffer bcur(be, sizeof sc);
  bcur.upload(&sc, sizeof sc);

  FusedStepParams p{};
  p.x = bx.f();
  p.n = n;
  p.d = d;
  p.chain0 = chain0;
  p.cpm = cpm;
  p.seed = 0x1234abcd5678ull;
  p.cur = bcur.get<StepScalars>();
  p.prior = k.prior;
  p.score = bscore.f();
  p.tab = tables.view();
  p.resp = bresp.f();
  p.resp_work = bresp_work.f();
  p.op.kind = k.op;
  p.op.mask = bmask.f();
  p.op.C = k.C;
  p.op.H = k.H;
  p.op.W = k.W;
  p.op.f = k.f;
  p.y = k.op == kOpNone ? nullptr : by.f();
  p.y_div = cpm;
  p.y_row0 = 0;
  p.m = m;
  p.g = bgrad.f();

  const bool analytic = k.prior != kPriorBuffer;
  if (direct) {
    if (analytic) be->prior_tables(g, d, p.cur, p.tab);
    direct(p);
  } else if (analytic && !k.warm && !k.staged) {
    be->analytic_prior_step(p, &g);
  } else {
    if (analytic) be->prior_tables(g, d, p.cur, p.tab);
    if (k.prior == kPriorGmm) be->gmm_responsibilities(p.tab, p.x, n, d, p.cur, p.resp, p.resp_work);
    be->fused_step(p);
  }
  be->check("step");
  StepOutput out{x0, std::vector<float>(static_cast<size_t>(n * d)), std::vector<float>(static_cast<size_t>(n * K))};
  bx.download(out.x.data(), bx.bytes());
  bresp.download(out.resp.data(), bresp.bytes());
  return out;
}

// Sets an environment variable for the life of this object (the CPU backend reads its step-path
// settings when made), restoring the previous value after.
class EnvGuard {
 public:
  EnvGuard(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      had_ = true;
      old_ = old;
    }
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~EnvGuard() {
    if (had_)
      setenv(name_.c_str(), old_.c_str(), 1);
    else
      unsetenv(name_.c_str());
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

 private:
  std::string name_, old_;
  bool had_ = false;
};

}  // namespace almc_test
