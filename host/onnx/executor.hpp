// The ONNX executor: a loaded graph, its plans (one per batch size, built on first use or up front
// for max_batch) and their buffers, and the score adapter around a run, all on one almc::Backend:
// every buffer is allocated, zeroed and filled through it, and every operator is that backend's
// (Backend::onnx_kernels(): its stream, its cuBLAS handle and workspace on CUDA). Failures are
// almc::Error with the engine's status codes.
#pragma once
#include <almc/almc.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host/backend/backend.hpp"
#include "host/core/split_trial.hpp"
#include "host/onnx/graph.hpp"
#include "host/onnx/plan.hpp"

namespace almc::onnx {

class OpKernels;

struct ExecConfig {
  bool allow_tf32 = false;
  // ALMC_PRECISION_BF16: the network's GEMMs and convolutions with BF16 products and fp32 sums
  // (use_bf16); FP32 and TF32 leave the plans as they are (TF32 is allow_tf32, CUDA only).
  int precision = ALMC_PRECISION_FP32;
  int64_t max_batch = 0;
  std::string x_input, level_input;  // empty: first input / second input
  int output = ALMC_OUTPUT_SCORE, convention = ALMC_CONV_OU, level = ALMC_LEVEL_T;
  std::vector<float> alpha_bar_table;
  bool vp_sde = false;  // continuous VP-SDE time (see AdapterParams)
  float beta_min = 0.f, beta_max = 0.f, level_scale = 1.f;
  // One sample's shape (dimensions after the batch; empty: the model's own): fills the x input's
  // dynamic dimensions after the batch (see almc_onnx_config.x_shape).
  std::vector<int64_t> x_shape;
};

// The advice for an output of twice x's values (a learned-variance model, C of its 2C channels
// to keep), in the C config's terms that the front ends rewrite: checked on the declared shapes
// before planning (capi_onnx.cpp) and on the planned ones (Executor).
std::string learned_variance_advice(int64_t channels);

// The adapter's parameters for a configuration (table: the alpha_bar table in the memory the
// adapter runs in).
AdapterParams adapter_params(const ExecConfig& c, const float* table);

class Executor {
 public:
  // The CPU backend evaluates the network in blocks of up to cpu_block() samples, one block per
  // OpenMP thread at a time, each kernel on its thread only. B depends only on the model (a power
  // of two from 1 to 64 whose activations stay within ~2 MiB); a call with fewer blocks than
  // threads halves its blocks until each thread has one, and a block of fewer samples runs as
  // pieces of powers of two, each through the plan of its size. Every kernel computes a sample
  // the same way in any block (the GEMM's
  // summation order is fixed per element: cpu_gemm.hpp), so a sample's output depends neither on
  // the batch size nor on the thread count, bit for bit.
  int64_t cpu_block() const { return cpu_block_; }
  // The global index of the next calls' row 0 (a slice of a run starts mid-way): CPU blocks are
  // aligned to global rows, block k holding global samples k*B .. (k+1)*B-1, so slices of a run
  // group samples as the whole run would. 0 by default.
  void set_row0(int64_t row0) { row0_ = row0 < 0 ? 0 : row0; }
  // Plans (and allocates) for batches up to n now, outside any graph capture, so that later
  // calls with at most n rows allocate nothing and can be captured.
  void prepare(int64_t n) { slot_for(n < 1 ? 1 : n); }

  // The executor runs on `be` (which must outlive it): x, level and outputs below are in its memory.
  Executor(Graph g, const ExecConfig& cfg, Backend& be);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  Backend& backend() const { return be_; }
  int64_t d() const { return d_; }
  const std::string& x_name() const { return io_.x_input; }
  const std::string& level_name() const { return io_.level_input; }
  // The adapted score: x, score [n, d] in backend memory; level_dev in backend memory.
  void run_score(const float* x, float* score, int64_t n, const almc_level_device* level_dev);
  // The raw network at a raw level value: x, out [n, d] in backend memory.
  void run_raw(const float* x, float* out, int64_t n, float level);
  // The raw network with one level per sample (levels[n], backend memory; the level input must
  // hold n values).
  void run_raw_levels(const float* x, float* out, int64_t n, const float* levels);
  // Host blocks: seconds per step kind (by_node: per step, keyed "kind node") over `reps` runs at
  // batch n, each step's time being its fastest run (a profile for benchmarks on a loaded
  // machine; empty on other backends).
  std::map<std::string, double> profile_cpu(int64_t n, int reps, bool by_node = false);
  // Plan statistics for tests and benchmarks (from the planner, not from the allocations).
  size_t steps(int64_t n);
  // Steps of the model's plan that run with BF16 products (0 unless precision is BF16).
  size_t bf16_steps();
  int64_t arena_bytes(int64_t n);
  // Host blocks: the threads the last call ran on (at most the backend's host_threads()).
  int last_cpu_threads() const { return last_cpu_threads_; }
  int64_t const_bytes(int64_t n);
  // Backend buffers holding the network's constants: one when every plan (each thread's, each
  // block size's) shares one copy.
  size_t const_copies() const;

 private:
  void apply_x_shape();
  // A plan bound to its arena (and constants) in backend memory.
  // On CUDA the plan's host copy of its constants is released once they are in device memory; on
  // the CPU the plan's buffer, built in the backend's memory, is the constants.
  struct Slot {
    Plan plan;
    Buffer arena, consts;  // consts: on CUDA, the constants in device memory
    // The constants the plan is bound to: its own (in `consts`, or on the CPU its plan's own
    // buffer), or another slot's (CPU threads and sizes share them).
    const float* consts_at = nullptr;
    bool owns_consts = false;
    int64_t const_floats = 0;
  };
  Slot& slot_for(int64_t n);
  // Whether slot s's constants (in backend memory) are `host`, compared a block at a time.
  bool same_consts(const Slot& s, const ConstFloats& host);
  // The backend when its memory is host memory (plans then build their constants in it), else null.
  Backend* host_memory() const { return be_.kind() == ALMC_BACKEND_CPU ? &be_ : nullptr; }
  Slot& cpu_worker(size_t i);  // host blocks: thread i's plan for cpu_block() samples and its arena
  Slot& cpu_slot(size_t thread, int64_t b);  // host blocks: the thread's plan for the power of two >= b
  std::unique_ptr<Slot> make_slot(Plan plan, const Slot* shared);
  void run_blocks(const float* x, float* out, int64_t n, const AdapterParams& a, const almc_level_device* level_dev);
  void run_batch(const float* x, float* out, int64_t n, const AdapterParams& a, const almc_level_device* level_dev);
  void run(const float* x, float* out, int64_t n, const AdapterParams& a, const almc_level_device* level_dev);

  Backend& be_;
  OpKernels& k_;  // be_'s operators
  Graph g_;
  ExecConfig cfg_;
  IoSpec io_;
  int64_t d_ = 0;
  std::map<int64_t, std::unique_ptr<Slot>> slots_;  // batch launches: one plan per batch size
  int64_t cpu_block_ = 1;
  double cpu_flops_ = 0;  // GEMM/convolution work per sample
  double cpu_sample_s_ = 0;  // seconds per sample on one thread (run_blocks measures it)
  int timed_calls_ = 0;      // calls timed for cpu_sample_s_
  int last_cpu_threads_ = 0;
  SplitTrial split_;  // host blocks: whether splitting a call pays, per call size
  int64_t row0_ = 0;
  // Host blocks: per thread, one plan per power-of-two block size (index log2), sharing thread
  // 0's consts.
  std::vector<std::vector<std::unique_ptr<Slot>>> cpu_workers_;
  Buffer table_;  // the alpha_bar table in backend memory (level = index)
};

}  // namespace almc::onnx
