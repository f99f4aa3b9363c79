// The ONNX executor (see executor.hpp): plans, buffers, and the adapter around a run.
#include "host/onnx/executor.hpp"

#include "host/backend/backend.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#ifdef ALMC_HAVE_CUDA
#include "cuda/onnx/kernels.hpp"
#endif

namespace almc::onnx {

Executor::Executor(Graph g, const ExecConfig& cfg) : g_(std::move(g)), cfg_(cfg) {
#ifndef ALMC_HAVE_CUDA
  if (cfg_.backend == ALMC_BACKEND_CUDA) throw Error(ALMC_ERR_NO_DEVICE, "this build has no CUDA backend");
#endif
  if (g_.inputs.empty()) throw Error(ALMC_ERR_UNSUPPORTED, "the model has no runtime input");
  io_.x_input = cfg_.x_input.empty() ? g_.inputs[0].name : cfg_.x_input;
  if (cfg_.level != ALMC_LEVEL_NONE) {
    if (!cfg_.level_input.empty()) {
      io_.level_input = cfg_.level_input;
    } else {
      for (const auto& in : g_.inputs)
        if (in.name != io_.x_input) {
          io_.level_input = in.name;
          break;
        }
      if (io_.level_input.empty())
        throw Error(ALMC_ERR_INVALID_ARGUMENT, "the model has no level input (only '" + io_.x_input +
                                                   "'); use level = ALMC_LEVEL_NONE for a network without one");
    }
    if (io_.level_input == io_.x_input) throw Error(ALMC_ERR_INVALID_ARGUMENT, "x and the level name the same input");
  }
  io_.output = g_.outputs[0].name;
  // CPU: chunks whose im2col stays near L2 (1 MB; on the shared 2-core EPYC it cut the U-Net
  // fixture's conv time at batch 64 by roughly a third against 64 MB); CUDA: 64 MB, few large GEMMs.
  io_.conv_workspace = cfg_.backend == ALMC_BACKEND_CUDA ? int64_t(1) << 24 : int64_t(1) << 18;
  if (cfg_.level == ALMC_LEVEL_INDEX && cfg_.alpha_bar_table.empty())
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "level = ALMC_LEVEL_INDEX needs alpha_bar_table");
#ifdef ALMC_HAVE_CUDA
  if (cfg_.backend == ALMC_BACKEND_CUDA) {
    blas_ = cuda::blas_create();
    if (!cfg_.alpha_bar_table.empty()) {
      dev_table_ = static_cast<float*>(cuda::device_alloc(cfg_.alpha_bar_table.size() * sizeof(float)));
      cuda::copy_to_device(dev_table_, cfg_.alpha_bar_table.data(), cfg_.alpha_bar_table.size() * sizeof(float));
    }
  }
#endif
  // Plan once now: refusals surface at load, and max_batch runs never allocate later.
  Slot& s = cfg_.backend == ALMC_BACKEND_CPU ? cpu_worker(0) : slot_for(cfg_.max_batch > 0 ? cfg_.max_batch : 1, nullptr);
  const int64_t n0 = s.plan.n;
  d_ = s.plan.x_count / n0;
  if (s.plan.out_count != s.plan.x_count)
    throw Error(ALMC_ERR_UNSUPPORTED, "the output '" + io_.output + "' has " + std::to_string(s.plan.out_count / n0) +
                                          " values per sample but x '" + io_.x_input + "' has " + std::to_string(d_) +
                                          "; a score network must map x to the same size");
}

Executor::~Executor() {
#ifdef ALMC_HAVE_CUDA
  for (auto& kv : slots_) {
    cuda::device_free(kv.second->dev_arena);
    cuda::device_free(kv.second->dev_consts);
  }
  cuda::device_free(dev_table_);
  if (blas_) cuda::blas_destroy(blas_);
#endif
}

Executor::Slot& Executor::slot_for(int64_t n, void* stream) {
  auto it = slots_.find(n);
  if (it != slots_.end()) return *it->second;
#ifdef ALMC_HAVE_CUDA
  if (cfg_.backend == ALMC_BACKEND_CUDA && stream && cuda::stream_capturing(stream)) {
    // No allocation during capture: run a larger plan with the extra rows as padding.
    for (auto& kv : slots_)
      if (kv.first >= n) return *kv.second;
    throw Error(ALMC_ERR_WRONG_STATE, "the ONNX network was called with batch " + std::to_string(n) +
                                          " inside a CUDA graph capture before it was planned; set max_batch");
  }
#endif
  if (cfg_.backend == ALMC_BACKEND_CPU) return cpu_worker(0);
  auto slot = std::make_unique<Slot>();
  slot->plan = build_plan(g_, io_, n);
  Plan& p = slot->plan;
  if (p.level_used != !io_.level_input.empty()) throw Error(ALMC_ERR_INTERNAL, "level input bookkeeping");
#ifdef ALMC_HAVE_CUDA
  slot->dev_arena = static_cast<float*>(cuda::device_alloc(size_t(std::max<int64_t>(p.arena_floats, 1)) * sizeof(float)));
  cuda::memset_device(slot->dev_arena, size_t(std::max<int64_t>(p.arena_floats, 1)) * sizeof(float));
  slot->dev_consts = static_cast<float*>(cuda::device_alloc(std::max<size_t>(p.consts.size(), 1) * sizeof(float)));
  if (!p.consts.empty()) cuda::copy_to_device(slot->dev_consts, p.consts.data(), p.consts.size() * sizeof(float));
  bind_plan(p, slot->dev_arena, slot->dev_consts);
#endif
  return *slots_.emplace(n, std::move(slot)).first->second;
}

namespace {

// GEMM and convolution work of a plan (its other steps are memory passes of similar count).
double plan_flops(const Plan& p) {
  double flops = 0;
  for (const auto& s : p.steps) {
    if (s.kind == StepKind::Gemm) flops += 2.0 * double(s.gemm.batch) * double(s.gemm.M) * double(s.gemm.N) * double(s.gemm.K);
    const ConvParams& c = s.conv;
    if (s.kind == StepKind::Conv) flops += 2.0 * double(c.N * c.OH * c.OW) * double(c.M) * double(c.C / c.group * c.KH * c.KW);
    if (s.kind == StepKind::ConvT) flops += 2.0 * double(c.N * c.H * c.W) * double(c.C) * double(c.M / c.group * c.KH * c.KW);
  }
  return flops;
}

// Samples per CPU block for a model of `flops` per sample: the largest power of two up to 16
// whose block stays within ~24 MFLOP. Small networks get blocks large enough for efficient GEMMs;
// large ones (a U-Net) run one sample per block, with no padding.
int64_t block_size(double flops) {
  int64_t b = 1;
  while (b < 16 && double(2 * b) * flops <= 24.0e6) b *= 2;
  return b;
}

}  // namespace

Executor::Slot& Executor::cpu_slot(size_t thread, int64_t b) {
  size_t level = 0;
  while ((int64_t(1) << level) < b) ++level;
  // Thread 0's plan of this size owns the constants; the other threads' copies read them.
  Slot* first = thread == 0 ? nullptr : &cpu_slot(0, b);
  if (cpu_workers_.size() <= thread) cpu_workers_.resize(thread + 1);
  auto& sizes = cpu_workers_[thread];
  if (sizes.size() <= level) sizes.resize(level + 1);
  if (sizes[level]) return *sizes[level];
  auto w = std::make_unique<Slot>();
  if (!first) {
    w->plan = build_plan(g_, io_, int64_t(1) << level);
    if (w->plan.level_used != !io_.level_input.empty()) throw Error(ALMC_ERR_INTERNAL, "level input bookkeeping");
    w->host_consts = w->plan.consts;
  } else {
    w->plan = first->plan;  // rebound below to this thread's arena
  }
  w->host_arena.assign(size_t(std::max<int64_t>(w->plan.arena_floats, 1)), 0.f);
  bind_plan(w->plan, w->host_arena.data(), first ? first->host_consts.data() : w->host_consts.data());
  sizes[level] = std::move(w);
  return *sizes[level];
}

Executor::Slot& Executor::cpu_worker(size_t i) {
  if (cpu_workers_.empty()) {  // the model's block size, from its work per sample
    cpu_flops_ = plan_flops(cpu_slot(0, 1).plan);
    cpu_block_ = block_size(cpu_flops_);
  }
  return cpu_slot(i, cpu_block_);
}

std::map<std::string, double> Executor::profile_cpu(int64_t n, int reps, bool by_node) {
  static const char* names[] = {"Ew", "Gemm", "Conv", "ConvT", "Copy", "Gather", "Softmax", "Norm", "Reduce", "Pool", "Resize", "Pad", "Fill"};
  std::map<std::string, double> t;
  if (cfg_.backend != ALMC_BACKEND_CPU) return t;
  Slot& s = cpu_worker(0);
  const int64_t blocks = (n + cpu_block_ - 1) / cpu_block_;  // one thread's share when it runs them all
  // Each step's fastest of reps * blocks runs, times the blocks: robust to a loaded machine, where
  // a sum picks up every preemption.
  std::vector<double> best(s.plan.steps.size(), 1e30);
  for (int64_t r = 0; r < reps * blocks; ++r)
    for (size_t k = 0; k < s.plan.steps.size(); ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      cpu_run_step(s.plan.steps[k]);
      best[k] = std::min(best[k], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  for (size_t k = 0; k < s.plan.steps.size(); ++k) {
    const Step& st = s.plan.steps[k];
    t[by_node ? std::string(names[int(st.kind)]) + " " + st.node : names[int(st.kind)]] += best[k] * double(blocks * reps);
  }
  return t;
}

void Executor::prepare(int64_t n) { slot_for(n, nullptr); }

size_t Executor::steps(int64_t n) { return slot_for(n, nullptr).plan.steps.size(); }
int64_t Executor::arena_bytes(int64_t n) { return slot_for(n, nullptr).plan.arena_floats * 4; }

void Executor::run(const float* x, float* out, int64_t n, const AdapterParams& a, const almc_level_device* level_dev,
                   void* stream) {
  if (n <= 0) throw Error(ALMC_ERR_INVALID_ARGUMENT, "batch size must be positive");
  if (cfg_.backend == ALMC_BACKEND_CPU) return run_cpu(x, out, n, a, level_dev);
  run_cuda(x, out, n, a, level_dev, stream);
}

void Executor::run_cuda(const float* x, float* out, int64_t n, const AdapterParams& a, const almc_level_device* level_dev,
                        void* stream) {
#ifdef ALMC_HAVE_CUDA
  Slot& s = slot_for(n, stream);
  const Plan& p = s.plan;
  const int64_t count = n * d_;
  float* arena = s.dev_arena;
  cuda::adapter_in(a, x, arena + p.x.off, count, p.level_used ? arena + p.level.off : nullptr, p.level_count, level_dev,
                   stream);
  for (const auto& st : p.steps) cuda::run_step(st, blas_, cfg_.allow_tf32, stream);
  cuda::adapter_out(a, arena + p.out.off, x, out, count, level_dev, stream);
#else
  throw Error(ALMC_ERR_NO_DEVICE, "this build has no CUDA backend");
#endif
}

void Executor::run_cpu(const float* x, float* out, int64_t n, const AdapterParams& a, const almc_level_device* level_dev) {
  cpu_worker(0);  // plans the model's block size on first use
  // Call row r is global sample row0_ + r; blocks are aligned to global samples, block k holding
  // global samples k*B .. (k+1)*B-1 (fewer at the call's ends). A block runs the plan of the
  // smallest power of two that holds its rows, padded with copies of its last row: no plan
  // computes a row differently from another (cpu_gemm.hpp), so this only saves the padding.
  // Threads from the work: waking a thread costs tens of microseconds on a loaded machine, so each
  // gets at least ~2 MFLOP (the split never changes a result, only who computes which block).
  const int64_t by_work = std::max<int64_t>(1, int64_t(double(n) * cpu_flops_ / 2.0e6));
  const int64_t want = std::min<int64_t>(std::max(1, omp_get_max_threads()), by_work);
  // Blocks halved until every wanted thread has one (many cores, a moderate batch).
  int64_t B = cpu_block_;
  while (B > 1 && (n + B - 1) / B < want) B /= 2;
  const int64_t lead = row0_ % B, blocks = (lead + n + B - 1) / B, d = d_;
  const int threads = int(std::min<int64_t>(want, blocks));
  auto block_rows = [&](int64_t blk, int64_t& c0, int64_t& rows, int64_t& size) {
    const int64_t start = blk * B - lead;
    c0 = std::max<int64_t>(start, 0);
    rows = std::min(start + B, n) - c0;
    size = 1;
    while (size < rows) size *= 2;
  };
  // Allocate every plan this call needs before the parallel region (only the first and the last
  // block can be short).
  for (int64_t blk : {int64_t(0), std::min<int64_t>(1, blocks - 1), blocks - 1}) {
    int64_t c0, rows, size;
    block_rows(blk, c0, rows, size);
    for (int i = 0; i < threads; ++i) cpu_slot(size_t(i), size);
  }
  if (a.raw_levels && cpu_worker(0).plan.level_count != cpu_block_)
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "per-sample levels need a level input of n values");
  const float t = level_dev ? level_dev->t : 0.f;
  const AdapterCoef k = a.raw ? AdapterCoef{1.f, 1.f, 0.f} : adapter_coef(a.output, a.convention, t);
  const float lv = level_dev ? adapter_level_value(a, level_dev->t, level_dev->sigma, level_dev->log_sigma, level_dev->alpha_bar)
                             : adapter_level_value(a, 0.f, 0.f, 0.f, 0.f);
  // Block blk of the call on thread `thread`.
  auto run_block = [&](size_t thread, int64_t blk) {
    int64_t c0, rows, size;
    block_rows(blk, c0, rows, size);
    const Plan& p = cpu_slot(thread, size).plan;
    float* arena = cpu_slot(thread, size).host_arena.data();
    const float* xb = x + c0 * d;
    float* xn = arena + p.x.off;
    for (int64_t i = 0; i < rows * d; ++i) xn[i] = k.cx * xb[i];
    for (int64_t r = rows; r < size; ++r) std::memcpy(xn + r * d, xn + (rows - 1) * d, size_t(d) * sizeof(float));
    if (p.level_used) {
      float* lvl = arena + p.level.off;
      if (a.raw_levels) {
        for (int64_t r = 0; r < size; ++r) lvl[r] = a.raw_levels[c0 + std::min(r, rows - 1)];
      } else {
        std::fill(lvl, lvl + p.level_count, lv);
      }
    }
    for (const auto& st : p.steps) cpu_run_step(st);
    const float* net = arena + p.out.off;
    float* ob = out + c0 * d;
    for (int64_t i = 0; i < rows * d; ++i) ob[i] = k.c1 * net[i] + k.c2 * xb[i];
  };
  if (threads == 1) {
    for (int64_t blk = 0; blk < blocks; ++blk) run_block(0, blk);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const size_t thread = size_t(omp_get_thread_num());
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) run_block(thread, blk);
  }
}

AdapterParams adapter_params(const ExecConfig& c, const float* table) {
  AdapterParams a{};
  a.output = c.output;
  a.convention = c.convention;
  a.level_kind = c.level;
  a.table = table;
  a.table_len = int64_t(c.alpha_bar_table.size());
  a.raw = false;
  a.vp_sde = c.vp_sde;
  a.beta_min = c.beta_min;
  a.beta_d = c.beta_max - c.beta_min;
  a.level_scale = c.level_scale;
  return a;
}

void Executor::run_score(const float* x, float* score, int64_t n, const almc_level_device* level_dev, void* stream) {
  const AdapterParams a = adapter_params(cfg_, cfg_.backend == ALMC_BACKEND_CUDA ? dev_table_ : cfg_.alpha_bar_table.data());
  if (!level_dev) throw Error(ALMC_ERR_NULL_POINTER, "no level");
  run(x, score, n, a, level_dev, stream);
}

void Executor::run_raw(const float* x, float* out, int64_t n, float level, void* stream) {
  AdapterParams a{};
  a.raw = true;
  a.raw_level = level;
  run(x, out, n, a, nullptr, stream);
}

void Executor::run_raw_levels(const float* x, float* out, int64_t n, const float* levels, void* stream) {
  AdapterParams a{};
  a.raw = true;
  a.raw_levels = levels;
  const Plan& p = slot_for(n, stream).plan;
  if (p.level_count != p.n) throw Error(ALMC_ERR_INVALID_ARGUMENT, "per-sample levels need a level input of n values");
  run(x, out, n, a, nullptr, stream);
}

namespace devtools {
#ifdef ALMC_HAVE_CUDA
void* stream_create() { return cuda::stream_create(); }
void stream_destroy(void* s) { cuda::stream_destroy(s); }
void synchronize(void* s) { cuda::synchronize(s); }
void capture_begin(void* s) { cuda::capture_begin(s); }
void* capture_end(void* s) { return cuda::capture_end(s); }
void graph_launch(void* g, void* s) { cuda::graph_launch(g, s); }
void graph_destroy(void* g) { cuda::graph_destroy(g); }
#else
[[noreturn]] static void no_cuda() { throw Error(ALMC_ERR_NO_DEVICE, "this build has no CUDA backend"); }
void* stream_create() { no_cuda(); }
void stream_destroy(void*) {}
void synchronize(void*) { no_cuda(); }
void capture_begin(void*) { no_cuda(); }
void* capture_end(void*) { no_cuda(); }
void graph_launch(void*, void*) { no_cuda(); }
void graph_destroy(void*) {}
#endif
}  // namespace devtools

}  // namespace almc::onnx
