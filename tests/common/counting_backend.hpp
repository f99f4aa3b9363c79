// A test backend around a real one: it forwards everything, and records every allocation (live
// blocks, bytes), can refuse allocations beyond a byte budget (as the real ones fail: an almc
// error with ALMC_ERR_OUT_OF_MEMORY), can pretend a graph capture is in progress, and hands out
// the inner backend's ONNX operators wrapped so that a test can switch the executor to batch
// launches (the CUDA run loop) on the CPU and inject an operator failure.
#pragma once

#include <almc/almc.h>

#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <utility>

#include "host/backend/backend.hpp"
#include "host/core/error.hpp"
#include "host/onnx/op_kernels.hpp"

namespace almc_test {

class CountingBackend final : public almc::Backend {
 public:
  explicit CountingBackend(std::unique_ptr<almc::Backend> inner) : inner_(std::move(inner)), ops_(this) {}
  ~CountingBackend() override = default;

  // Statistics and knobs.
  size_t live_blocks() const { return live_.size(); }
  size_t live_bytes() const { return live_bytes_; }
  size_t allocations() const { return allocations_; }
  size_t budget = SIZE_MAX;        // allocations beyond this many live bytes fail
  bool pretend_capturing = false;  // capturing() returns true
  bool batch_launches = false;     // the ONNX operators report host_blocks() == false
  almc_status fail_steps = ALMC_OK;  // not OK: every ONNX step throws this status
  // Operands the ONNX operators were handed that lie outside this backend's live allocations:
  // the adapter's network input and output (arena), and every GEMM and convolution operand
  // (arena, constants, im2col workspace). Counted, checked by the tests.
  std::atomic<size_t> foreign_operands{0};
  std::atomic<size_t> checked_operands{0};
  // True when [p, p + bytes) lies inside one live allocation of this backend.
  bool owns(const void* p, size_t bytes) const {
    auto it = live_.upper_bound(static_cast<const char*>(p));
    if (it == live_.begin()) return false;
    --it;
    const char* c = static_cast<const char*>(p);
    return c >= it->first && c + bytes <= it->first + it->second;
  }
  almc::Backend& inner() { return *inner_; }

  almc_backend kind() const override { return inner_->kind(); }
  std::string device_name() const override { return inner_->device_name(); }
  void* stream() const override { return inner_->stream(); }
  int host_threads() const override { return inner_->host_threads(); }
  void* alloc(size_t bytes) override {
    if (bytes > budget || live_bytes_ > budget - bytes)
      almc::fail(ALMC_ERR_OUT_OF_MEMORY, "test backend: allocation of ", bytes, " bytes beyond the budget");
    void* p = inner_->alloc(bytes);
    if (p) {
      live_[static_cast<const char*>(p)] = bytes;
      live_bytes_ += bytes;
      ++allocations_;
    }
    return p;
  }
  void dealloc(void* p) noexcept override {
    auto it = live_.find(static_cast<const char*>(p));
    if (it != live_.end()) {
      live_bytes_ -= it->second;
      live_.erase(it);
    }
    inner_->dealloc(p);
  }
  void copy(void* dst, const void* src, size_t bytes, almc::CopyKind kind) override { inner_->copy(dst, src, bytes, kind); }
  void zero(void* p, size_t bytes) override { inner_->zero(p, bytes); }
  void sync() override { inner_->sync(); }
  size_t available_memory() const override { return inner_->available_memory(); }
  void begin_step(const almc::StepScalars* table, int64_t* counter, almc::StepScalars* cur) override {
    inner_->begin_step(table, counter, cur);
  }
  void prior_tables(const almc::GmmPrior& prior, int64_t d, const almc::StepScalars* cur,
                    const almc::PriorTables& out) override {
    inner_->prior_tables(prior, d, cur, out);
  }
  void gmm_responsibilities(const almc::PriorTables& tab, const float* x, int64_t n, int64_t d,
                            const almc::StepScalars* cur, float* resp, float* work) override {
    inner_->gmm_responsibilities(tab, x, n, d, cur, resp, work);
  }
  size_t gmm_resp_work_bytes(int64_t n, int64_t d, int64_t K) const override {
    return inner_->gmm_resp_work_bytes(n, d, K);
  }
  void fused_step(const almc::FusedStepParams& p) override { inner_->fused_step(p); }
  void analytic_score(const almc::FusedStepParams& p, float* out) override { inner_->analytic_score(p, out); }
  void op_forward(const almc::LocalOp& op, const almc::MatrixOp& mat, const float* x, float* out, int64_t n, int64_t d,
                  int64_t m, int64_t chain0, int64_t cpm) override {
    inner_->op_forward(op, mat, x, out, n, d, m, chain0, cpm);
  }
  void op_adjoint(const almc::LocalOp& op, const almc::MatrixOp& mat, const float* v, float* out, int64_t n, int64_t d,
                  int64_t m, int64_t chain0, int64_t cpm) override {
    inner_->op_adjoint(op, mat, v, out, n, d, m, chain0, cpm);
  }
  void residual_rows(float* R, const float* y, int64_t y_div, int64_t n, int64_t m, int64_t chain0,
                     const almc::StepScalars* cur) override {
    inner_->residual_rows(R, y, y_div, n, m, chain0, cur);
  }
  void scale_by_xs(const float* x, float* out, int64_t count, const almc::StepScalars* cur) override {
    inner_->scale_by_xs(x, out, count, cur);
  }
  void row_norms_and_flags(const float* R, int64_t m, const float* x, int64_t d, int64_t n, float* norms,
                           int32_t* flags) override {
    inner_->row_norms_and_flags(R, m, x, d, n, norms, flags);
  }
  void fill_random(float* x, int64_t n, int64_t d, int64_t chain0, int64_t cpm, uint64_t seed, uint64_t key, float scale,
                   bool uniform) override {
    inner_->fill_random(x, n, d, chain0, cpm, seed, key, scale, uniform);
  }
  void axpby_tweedie(float* x, const float* s, int64_t count, float a, float b) override {
    inner_->axpby_tweedie(x, s, count, a, b);
  }
  void copy_picked(const float* x, float* out, const int64_t* pick, int64_t first_step, int64_t n, int64_t d,
                   const almc::StepScalars* cur) override {
    inner_->copy_picked(x, out, pick, first_step, n, d, cur);
  }
  void xgp_step_aux(float* ych, int64_t n, int64_t m, int64_t chain0, int64_t cpm, uint64_t seed,
                    const almc::StepScalars* cur) override {
    inner_->xgp_step_aux(ych, n, m, chain0, cpm, seed, cur);
  }
  void add_log_density(const almc::PriorTables& tab, const almc::StepScalars* cur, const float* x, int64_t n, int64_t d,
                       double sign, double* acc) override {
    inner_->add_log_density(tab, cur, x, n, d, sign, acc);
  }
  void gather_rows(const float* src, float* dst, const int64_t* idx, int64_t n, int64_t d) override {
    inner_->gather_rows(src, dst, idx, n, d);
  }
  void mean_std(const float* x, int64_t n_meas, int64_t cpm, int64_t d, float* mean, float* std) override {
    inner_->mean_std(x, n_meas, cpm, d, mean, std);
  }
  bool graphs_supported() const override { return inner_->graphs_supported(); }
  void capture_begin() override { inner_->capture_begin(); }
  almc::GraphHandle* capture_end() override { return inner_->capture_end(); }
  void graph_launch(almc::GraphHandle* h) override { inner_->graph_launch(h); }
  void graph_destroy(almc::GraphHandle* h) noexcept override { inner_->graph_destroy(h); }
  void check(const char* what) override { inner_->check(what); }
  bool capturing() const override { return pretend_capturing || inner_->capturing(); }
  almc::onnx::OpKernels& onnx_kernels() override { return ops_; }

 private:
  // The inner backend's operators, with the knobs above.
  class Ops final : public almc::onnx::OpKernels {
   public:
    explicit Ops(CountingBackend* be) : be_(be) {}
    bool host_blocks() const override { return !be_->batch_launches && inner().host_blocks(); }
    void run_step(const almc::onnx::Step& s, bool tf32) override {
      if (be_->fail_steps != ALMC_OK) almc::fail(be_->fail_steps, "test backend: step ", s.node, " failed");
      if (s.kind == almc::onnx::StepKind::Gemm) {
        for (const float* p : {s.gemm.A, s.gemm.B, static_cast<const float*>(s.gemm.C), s.gemm.bias}) operand(p);
      } else if (s.kind == almc::onnx::StepKind::Conv || s.kind == almc::onnx::StepKind::ConvT) {
        for (const float* p : {s.conv.x, s.conv.w, s.conv.bias, static_cast<const float*>(s.conv.y),
                               static_cast<const float*>(s.conv.col)})
          operand(p);
      }
      inner().run_step(s, tf32);
    }
    void adapter_in(const almc::onnx::AdapterParams& a, const float* x, float* x_net, int64_t count, float* level,
                    int64_t level_count, const almc_level_device* ld) override {
      operand(x_net, count);
      operand(level, level_count);
      inner().adapter_in(a, x, x_net, count, level, level_count, ld);
    }
    void adapter_out(const almc::onnx::AdapterParams& a, const float* net, const float* x, float* out, int64_t count,
                     const almc_level_device* ld) override {
      operand(net, count);
      inner().adapter_out(a, net, x, out, count, ld);
    }

   private:
    almc::onnx::OpKernels& inner() const { return be_->inner_->onnx_kernels(); }
    void operand(const float* p, int64_t count = 1) {
      if (!p) return;
      ++be_->checked_operands;
      if (!be_->owns(p, sizeof(float) * static_cast<size_t>(count > 0 ? count : 1))) ++be_->foreign_operands;
    }
    CountingBackend* be_;
  };

  std::unique_ptr<almc::Backend> inner_;
  Ops ops_;
  std::map<const char*, size_t> live_;
  size_t live_bytes_ = 0, allocations_ = 0;
};

}  // namespace almc_test
