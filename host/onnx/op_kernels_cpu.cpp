// The CPU backend's ONNX operators (op_kernels.hpp): the host kernels of cpu_kernels.cpp with the
// executor's own GEMM (cpu_gemm.hpp), and the score adapter as host loops. Each call runs on the
// calling thread only: the executor hands one block to each OpenMP thread.
#include "host/onnx/op_kernels.hpp"

namespace almc::onnx {
namespace {

AdapterCoef coefficients(const AdapterParams& a, const almc_level_device* ld) {
  return a.raw ? AdapterCoef{1.f, 1.f, 0.f} : adapter_coef(a.output, a.convention, ld ? ld->t : 0.f);
}

class CpuOpKernels final : public OpKernels {
 public:
  bool host_blocks() const override { return true; }
  void run_step(const Step& s, bool) override { cpu_run_step(s); }
  void adapter_in(const AdapterParams& a, const float* x, float* x_net, int64_t count, float* level, int64_t level_count,
                  const almc_level_device* ld) override {
    const AdapterCoef k = coefficients(a, ld);
    for (int64_t i = 0; i < count; ++i) x_net[i] = k.cx * x[i];
    if (!level) return;
    if (a.raw_levels) {
      for (int64_t i = 0; i < level_count; ++i) level[i] = a.raw_levels[i];
      return;
    }
    const float v = ld ? adapter_level_value(a, ld->t, ld->sigma, ld->log_sigma, ld->alpha_bar)
                       : adapter_level_value(a, 0.f, 0.f, 0.f, 0.f);
    for (int64_t i = 0; i < level_count; ++i) level[i] = v;
  }
  void adapter_out(const AdapterParams& a, const float* net, const float* x, float* out, int64_t count,
                   const almc_level_device* ld) override {
    const AdapterCoef k = coefficients(a, ld);
    for (int64_t i = 0; i < count; ++i) out[i] = k.c1 * net[i] + k.c2 * x[i];
  }
};

}  // namespace

OpKernels& cpu_op_kernels() {
  static CpuOpKernels k;
  return k;
}

}  // namespace almc::onnx
