// The ONNX executor's operators on one backend. Each almc::Backend provides one OpKernels
// (Backend::onnx_kernels()): the CPU backend the host kernels of cpu_kernels.cpp and its own
// GEMM, the CUDA backend the launchers of cuda/onnx/kernels.cu on its stream with its cuBLAS
// handle and workspace. Pointers are in the backend's memory; failures throw almc::Error with
// the engine's status codes. The executor chooses nothing by build flags: it calls these.
#pragma once
#include <almc/almc.h>

#include <cstdint>

#include "host/onnx/plan.hpp"

namespace almc::onnx {

class OpKernels {
 public:
  virtual ~OpKernels() = default;
  // True: the executor evaluates a batch in fixed blocks of host rows, one OpenMP thread per
  // block (the CPU; bitwise batch invariance, executor.hpp). False: one plan per batch size whose
  // steps are issued in order on the backend's stream (CUDA; capturable into a graph).
  virtual bool host_blocks() const = 0;
  // One bound plan step. allow_tf32: tensor-core TF32 GEMMs allowed (CUDA; ignored on the CPU).
  virtual void run_step(const Step& s, bool allow_tf32) = 0;
  // x_net[i] = cx x[i] for i < count, and the level tensor's level_count values (level null: the
  // plan has no level input). level_dev may be null when the adapter is raw. The coefficients are
  // read from level_dev where the kernels run, so no host value is baked into a captured graph.
  virtual void adapter_in(const AdapterParams& a, const float* x, float* x_net, int64_t count, float* level,
                          int64_t level_count, const almc_level_device* level_dev) = 0;
  // out[i] = c1 net[i] + c2 x[i].
  virtual void adapter_out(const AdapterParams& a, const float* net, const float* x, float* out, int64_t count,
                           const almc_level_device* level_dev) = 0;
};

// The CPU backend's operators (stateless; safe to call from several threads at once).
OpKernels& cpu_op_kernels();

}  // namespace almc::onnx
