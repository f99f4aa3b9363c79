// The ONNX executor (see executor.hpp): plans, buffers, and the adapter around a run.
#include "host/onnx/executor.hpp"
#include "host/core/parallel.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "host/onnx/op_kernels.hpp"

namespace almc::onnx {

Executor::Executor(Graph g, const ExecConfig& cfg, Backend& be) : be_(be), k_(be.onnx_kernels()), g_(std::move(g)), cfg_(cfg) {
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
  apply_x_shape();
  io_.output = g_.outputs[0].name;
  // Host blocks: chunks whose im2col stays near L2 (1 MB; on the shared 2-core EPYC it cut the
  // U-Net fixture's conv time at batch 64 by roughly a third against 64 MB); batch launches on a
  // device: 64 MB, few large GEMMs.
  io_.conv_workspace = k_.host_blocks() ? int64_t(1) << 18 : int64_t(1) << 24;
  if (cfg_.level == ALMC_LEVEL_INDEX && cfg_.alpha_bar_table.empty())
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "level = ALMC_LEVEL_INDEX needs alpha_bar_table");
  if (!cfg_.alpha_bar_table.empty()) {
    table_ = Buffer(&be_, cfg_.alpha_bar_table.size() * sizeof(float));
    table_.upload(cfg_.alpha_bar_table.data(), cfg_.alpha_bar_table.size() * sizeof(float));
  }
  // Plan once now: refusals surface at load, and max_batch runs never allocate later.
  Slot& s = k_.host_blocks() ? cpu_worker(0) : slot_for(cfg_.max_batch > 0 ? cfg_.max_batch : 1);
  const int64_t n0 = s.plan.n;
  d_ = s.plan.x_count / n0;
  if (s.plan.out_count != s.plan.x_count) {
    // Twice x's values: a learned-variance output whose shape the model leaves symbolic (the
    // declared shapes are checked before planning, with the same advice: capi_onnx.cpp).
    std::string hint;
    const auto x = std::find_if(g_.inputs.begin(), g_.inputs.end(), [&](const ValueInfo& v) { return v.name == io_.x_input; });
    if (s.plan.out_count == 2 * s.plan.x_count && x != g_.inputs.end() && x->dims.size() >= 2 && x->dims[1] > 0)
      hint = learned_variance_advice(x->dims[1]);
    throw Error(ALMC_ERR_UNSUPPORTED, "the output '" + io_.output + "' has " + std::to_string(s.plan.out_count / n0) +
                                          " values per sample but x '" + io_.x_input + "' has " + std::to_string(d_) +
                                          "; a score network must map x to the same size" + hint);
  }
}

Executor::~Executor() = default;

std::string learned_variance_advice(int64_t channels) {
  return " (a learned-variance model?): keep its first channels with output channels 0 to " + std::to_string(channels) +
         " (config.output_channel_begin/end)";
}

// cfg_.x_shape into the x input's declared dimensions: a model exported with dynamic dimensions
// after the batch gets them from it. A fixed model takes a shape of another rank holding as many
// values (an image's C, H, W for a flat [n, d] input), but one of its own rank must be its shape:
// [4, 8, 8] for a [n, 1, 16, 16] input is a mistake, not a layout.
void Executor::apply_x_shape() {
  if (cfg_.x_shape.empty()) return;
  auto it = std::find_if(g_.inputs.begin(), g_.inputs.end(), [&](const ValueInfo& v) { return v.name == io_.x_input; });
  if (it == g_.inputs.end() || it->dims.empty()) return;  // the planner names these problems
  std::vector<int64_t>& dims = it->dims;
  const std::string given = "x_shape [" + [&] {
    std::string t;
    for (size_t i = 0; i < cfg_.x_shape.size(); ++i) t += (i ? ", " : "") + std::to_string(cfg_.x_shape[i]);
    return t;
  }() + "]";
  const bool dynamic = std::any_of(dims.begin() + 1, dims.end(), [](int64_t v) { return v < 0; });
  if (!dynamic) {
    int64_t model = 1, want = 1;
    for (size_t i = 1; i < dims.size(); ++i) model *= dims[i];
    for (int64_t v : cfg_.x_shape) want *= v;
    if (model != want)
      throw Error(ALMC_ERR_INVALID_ARGUMENT, given + " holds " + std::to_string(want) + " values per sample; the model's x '" +
                                                 io_.x_input + "' takes " + std::to_string(model));
    if (cfg_.x_shape.size() + 1 == dims.size())
      for (size_t i = 1; i < dims.size(); ++i)
        if (dims[i] != cfg_.x_shape[i - 1])
          throw Error(ALMC_ERR_INVALID_ARGUMENT, given + " differs from the model's fixed dimension " + std::to_string(i) +
                                                     " (" + std::to_string(dims[i]) + "): its x '" + io_.x_input + "' is [" +
                                                     [&] {
                                                       std::string t = "n";
                                                       for (size_t k = 1; k < dims.size(); ++k) t += ", " + std::to_string(dims[k]);
                                                       return t;
                                                     }() + "]");
    return;
  }
  if (cfg_.x_shape.size() + 1 != dims.size())
    throw Error(ALMC_ERR_INVALID_ARGUMENT, given + " has " + std::to_string(cfg_.x_shape.size()) + " dimensions; the model's x '" +
                                               io_.x_input + "' has " + std::to_string(dims.size() - 1) + " after the batch");
  for (size_t i = 1; i < dims.size(); ++i) {
    if (dims[i] >= 0 && dims[i] != cfg_.x_shape[i - 1])
      throw Error(ALMC_ERR_INVALID_ARGUMENT, given + " differs from the model's fixed dimension " + std::to_string(i) + " (" +
                                                 std::to_string(dims[i]) + ")");
    dims[i] = cfg_.x_shape[i - 1];
  }
}

// A slot for `plan`: its arena (zeroed) in backend memory, bound to its own constants (uploaded
// to backend memory) or to those of `shared` (another slot of the same plan).
std::unique_ptr<Executor::Slot> Executor::make_slot(Plan plan, const Slot* shared) {
  auto s = std::make_unique<Slot>();
  s->plan = std::move(plan);
  Plan& p = s->plan;
  if (p.level_used != !io_.level_input.empty()) throw Error(ALMC_ERR_INTERNAL, "level input bookkeeping");
  const size_t arena = size_t(std::max<int64_t>(p.arena_floats, 1)) * sizeof(float);
  // Constants built in the backend's memory (the CPU's) are allocated already: only the arena is new.
  const bool in_place = p.consts.get_allocator().backend == &be_;
  const size_t consts = shared || in_place ? 0 : p.consts.size() * sizeof(float), avail = be_.available_memory();
  if (arena + consts > avail) {
    char text[160];
    std::snprintf(text, sizeof text, "the network at batch %lld needs %.0f MiB of %s memory (activations%s) but %.0f MiB are available",
                  static_cast<long long>(p.n), double(arena + consts) / 1048576.0,
                  be_.kind() == ALMC_BACKEND_CUDA ? "device" : "host", consts ? " and weights" : "", double(avail) / 1048576.0);
    throw Error(ALMC_ERR_OUT_OF_MEMORY, std::string(text) + "; use fewer chains");
  }
  s->arena = Buffer(&be_, arena);
  be_.zero(s->arena.get(), arena);
  s->const_floats = shared ? shared->const_floats : int64_t(p.consts.size());
  if (shared) {
    s->consts_at = shared->consts_at;
  } else if (in_place) {
    s->owns_consts = true;  // built in the backend's (host) memory: the plan's buffer is the constants
    s->consts_at = p.consts.data();
  } else {
    s->consts = Buffer(&be_, std::max<size_t>(p.consts.size(), 1) * sizeof(float));
    s->consts.upload(p.consts.data(), p.consts.size() * sizeof(float));
    s->consts_at = s->consts.f();
    s->owns_consts = true;
  }
  bind_plan(p, s->arena.f(), s->consts_at);
  if (s->consts_at != p.consts.data()) ConstFloats().swap(p.consts);  // in backend memory now (a 2048-wide Linear: 16 MiB each)
  return s;
}

Executor::Slot& Executor::slot_for(int64_t n) {
  if (k_.host_blocks()) return cpu_worker(0);
  auto it = slots_.find(n);
  if (it != slots_.end()) return *it->second;
  if (be_.capturing()) {
    // No allocation during capture: run a larger plan with the extra rows as padding.
    for (auto& kv : slots_)
      if (kv.first >= n) return *kv.second;
    throw Error(ALMC_ERR_WRONG_STATE, "the ONNX network was called with batch " + std::to_string(n) +
                                          " inside a CUDA graph capture before it was planned; set max_batch");
  }
  Plan p = build_plan(g_, io_, n, host_memory());
  if (cfg_.precision == ALMC_PRECISION_BF16) use_bf16(p, true);
  // Another batch size's plan usually holds the same constants: one copy in device memory serves
  // both (each size held its own: a second run at another chain count doubled a model's weights).
  const Slot* share = nullptr;
  for (const auto& kv : slots_)
    if (!share && kv.second->owns_consts && same_consts(*kv.second, p.consts)) share = kv.second.get();
  return *slots_.emplace(n, make_slot(std::move(p), share)).first->second;
}

bool Executor::same_consts(const Slot& s, const ConstFloats& host) {
  if (s.const_floats != int64_t(host.size())) return false;
  constexpr size_t kBlock = size_t(1) << 22;  // floats compared per copy (16 MiB)
  std::vector<float> buf(std::min(kBlock, host.size()));
  for (size_t off = 0; off < host.size(); off += kBlock) {
    const size_t len = std::min(kBlock, host.size() - off);
    be_.copy(buf.data(), s.consts_at + off, len * sizeof(float), CopyKind::BackendToHost);
    if (std::memcmp(buf.data(), host.data() + off, len * sizeof(float)) != 0) return false;
  }
  return true;
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

// Samples per CPU block for a model whose one-sample plan has `arena_floats` of activations: the
// largest power of two up to 64 whose activations stay within ~2 MiB (L2 and a bit). A block reads
// every weight once, so an MLP's GEMMs do 2 * B flops per weight read: blocks of 64 rather than
// the former 16 (or fewer, by a 24 MFLOP cap) measured, one thread of the 2-core AVX2 EPYC, batch
// 64: mlp_embed 28.2k -> 37.5k evaluations/s, resmlp 7.9k -> 9.2k, the demo's digits MLP 669 ->
// 826, a 2048-wide Linear 16 -> 62 (before packing its weight: run_gemm). Convolution networks
// run image by image inside a block (cpu_kernels.cpp), so their block size barely matters: the
// U-Net fixture (0.5 MiB per sample) gets 2, a 64x64 U-Net 1.
int64_t block_size(int64_t arena_floats) {
  constexpr double kBlockBytes = 2.0 * 1024 * 1024;
  int64_t b = 1;
  while (b < 64 && double(2 * b) * double(arena_floats) * 4.0 <= kBlockBytes) b *= 2;
  return b;
}

}  // namespace

Executor::Slot& Executor::cpu_slot(size_t thread, int64_t b) {
  size_t level = 0;
  while ((int64_t(1) << level) < b) ++level;
  // Thread 0's plan of this size holds (or shares) the constants; the other threads' copies read them.
  Slot* first = thread == 0 ? nullptr : &cpu_slot(0, b);
  if (cpu_workers_.size() <= thread) cpu_workers_.resize(thread + 1);
  auto& sizes = cpu_workers_[thread];
  if (sizes.size() <= level) sizes.resize(level + 1);
  if (sizes[level]) return *sizes[level];
  Plan p;
  if (first) {  // its steps, not its constants (on the CPU the plan's buffer is them)
    ConstFloats held(first->plan.consts.get_allocator());
    held.swap(first->plan.consts);
    p = first->plan;
    first->plan.consts.swap(held);
  } else {
    p = build_plan(g_, io_, int64_t(1) << level, host_memory());
  }
  if (!first && cfg_.precision == ALMC_PRECISION_BF16) use_bf16(p, false);
  if (!first) cpu_pack_weights(p);
  // Thread 0's plans of other sizes usually hold the same constants (host memory: compared in
  // place): one copy then serves every size.
  const Slot* share = first;
  for (const auto& other : sizes)
    if (!share && other && other->const_floats == int64_t(p.consts.size()) &&
        (p.consts.empty() || std::memcmp(other->consts_at, p.consts.data(), p.consts.size() * sizeof(float)) == 0))
      share = other.get();
  auto w = make_slot(std::move(p), share);  // a copy is rebound
  sizes[level] = std::move(w);
  return *sizes[level];
}

Executor::Slot& Executor::cpu_worker(size_t i) {
  if (cpu_workers_.empty()) {  // the model's block size, from its activations per sample
    cpu_flops_ = plan_flops(cpu_slot(0, 1).plan);
    cpu_block_ = block_size(cpu_slot(0, 1).plan.arena_floats);
  }
  return cpu_slot(i, cpu_block_);
}

std::map<std::string, double> Executor::profile_cpu(int64_t n, int reps, bool by_node) {
  static const char* names[] = {"Ew", "Gemm", "Conv", "ConvT", "Copy", "Gather", "Softmax", "Norm", "Reduce", "Pool", "Resize", "Pad", "Fill"};
  std::map<std::string, double> t;
  if (!k_.host_blocks()) return t;
  Slot& s = cpu_worker(0);
  const int64_t blocks = (n + cpu_block_ - 1) / cpu_block_;  // one thread's share when it runs them all
  // Each step's fastest of reps * blocks runs, times the blocks: robust to a loaded machine, where
  // a sum picks up every preemption.
  std::vector<double> best(s.plan.steps.size(), 1e30);
  for (int64_t r = 0; r < reps * blocks; ++r)
    for (size_t k = 0; k < s.plan.steps.size(); ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      k_.run_step(s.plan.steps[k], cfg_.allow_tf32);
      best[k] = std::min(best[k], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  for (size_t k = 0; k < s.plan.steps.size(); ++k) {
    const Step& st = s.plan.steps[k];
    t[by_node ? std::string(names[int(st.kind)]) + " " + st.node : names[int(st.kind)]] += best[k] * double(blocks * reps);
  }
  return t;
}

size_t Executor::steps(int64_t n) { return slot_for(n).plan.steps.size(); }
int64_t Executor::arena_bytes(int64_t n) { return slot_for(n).plan.arena_floats * 4; }
int64_t Executor::const_bytes(int64_t n) { return slot_for(n).const_floats * 4; }

size_t Executor::const_copies() const {
  size_t n = 0;
  for (const auto& kv : slots_) n += kv.second->owns_consts ? 1 : 0;
  for (const auto& sizes : cpu_workers_)
    for (const auto& s : sizes) n += s && s->owns_consts ? 1 : 0;
  return n;
}

size_t Executor::bf16_steps() {
  const auto& steps = slot_for(k_.host_blocks() ? 1 : std::max<int64_t>(cfg_.max_batch, 1)).plan.steps;
  return size_t(std::count_if(steps.begin(), steps.end(), [](const Step& s) { return s.bf16; }));
}

// The run loop: the backend's operators decide how a batch is split (host blocks on OpenMP
// threads, or one plan per batch size on the backend's stream); the steps are theirs either way.
void Executor::run(const float* x, float* out, int64_t n, const AdapterParams& a, const almc_level_device* level_dev) {
  if (n <= 0) throw Error(ALMC_ERR_INVALID_ARGUMENT, "batch size must be positive");
  if (k_.host_blocks()) return run_blocks(x, out, n, a, level_dev);
  run_batch(x, out, n, a, level_dev);
}

void Executor::run_batch(const float* x, float* out, int64_t n, const AdapterParams& a, const almc_level_device* level_dev) {
  Slot& s = slot_for(n);
  const Plan& p = s.plan;
  const int64_t count = n * d_;
  float* arena = s.arena.f();
  // Per-sample levels fill the call's n rows (a larger plan run during a capture pads the rest).
  k_.adapter_in(a, x, arena + p.x.off, count, p.level_used ? arena + p.level.off : nullptr,
                a.raw_levels ? n : p.level_count, level_dev);
  for (const auto& st : p.steps) k_.run_step(st, cfg_.allow_tf32);
  k_.adapter_out(a, arena + p.out.off, x, out, count, level_dev);
}

void Executor::run_blocks(const float* x, float* out, int64_t n, const AdapterParams& a, const almc_level_device* level_dev) {
  cpu_worker(0);  // plans the model's block size on first use
  // Call row r is global sample row0_ + r; blocks are aligned to global samples, block k holding
  // global samples k*B .. (k+1)*B-1 (fewer at the call's ends). A block of fewer than B rows runs
  // as pieces of powers of two (37 rows: 32, 4, 1), each through the plan of its size: no plan
  // computes a row differently from another (cpu_gemm.hpp), and nothing is padded.
  // Threads from the work (the split never changes a result, only who computes which block).
  // Spinning threads wake in a microsecond: each gets at least ~2 MFLOP of GEMM work. Sleeping
  // ones (passive OpenMP, host/core/parallel.hpp) take tens of microseconds, and FLOPs misjudge
  // networks with much elementwise work: each thread gets kPassiveThreadSeconds of this model's
  // measured time per sample (the first two calls run on one thread and are timed; the faster
  // counts). What the heuristic proposes is then tried against one thread, per call size, and
  // kept only where it is faster (SplitTrial: wake-up costs differ by machine).
  const bool passive = openmp_waits_passively();
  const double per_thread = passive ? double(n) * cpu_sample_s_ / kPassiveThreadSeconds : double(n) * cpu_flops_ / 2.0e6;
  const int64_t by_work = passive && timed_calls_ < 2 ? 1 : std::max<int64_t>(1, int64_t(per_thread));
  const int64_t want = std::min<int64_t>(std::max(1, be_.host_threads()), by_work);
  // Blocks halved until every thread has one (many cores, a moderate batch).
  auto block_size = [&](int64_t t) {
    int64_t b = cpu_block_;
    while (b > 1 && (n + b - 1) / b < t) b /= 2;
    return b;
  };
  auto blocks_of = [&](int64_t b) { return (row0_ % b + n + b - 1) / b; };
  const int proposed = int(std::min<int64_t>(want, blocks_of(block_size(want))));
  // Whether the split pays on this machine: measured per call size (host/core/split_trial.hpp).
  const int threads = split_.threads(n, proposed);
  const int64_t B = block_size(threads);
  const int64_t lead = row0_ % B, blocks = blocks_of(B), d = d_;
  last_cpu_threads_ = threads;
  auto block_rows = [&](int64_t blk, int64_t& c0, int64_t& rows) {
    const int64_t start = blk * B - lead;
    c0 = std::max<int64_t>(start, 0);
    rows = std::min(start + B, n) - c0;
  };
  // The largest power of two <= rows: the next piece of a block.
  auto piece = [](int64_t rows) {
    int64_t size = 1;
    while (2 * size <= rows) size *= 2;
    return size;
  };
  // Allocate every plan this call needs before the parallel region (only the first and the last
  // block can be short).
  for (int64_t blk : {int64_t(0), std::min<int64_t>(1, blocks - 1), blocks - 1}) {
    int64_t c0, rows;
    block_rows(blk, c0, rows);
    for (int64_t left = rows; left > 0; left -= piece(left))
      for (int i = 0; i < threads; ++i) cpu_slot(size_t(i), piece(left));
  }
  if (a.raw_levels && cpu_worker(0).plan.level_count != cpu_block_)
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "per-sample levels need a level input of n values");
  // Block blk of the call on thread `thread`, piece by piece: the adapter's input for the piece's
  // rows, the steps, the adapter's output.
  auto run_block = [&](size_t thread, int64_t blk) {
    int64_t c0, rows;
    block_rows(blk, c0, rows);
    for (int64_t size; rows > 0; c0 += size, rows -= size) {
      size = piece(rows);
      Slot& s = cpu_slot(thread, size);
      const Plan& p = s.plan;
      float* arena = s.arena.f();
      const float* xb = x + c0 * d;
      float* lvl = p.level_used ? arena + p.level.off : nullptr;
      AdapterParams ab = a;
      if (a.raw_levels) ab.raw_levels = a.raw_levels + c0;
      k_.adapter_in(ab, xb, arena + p.x.off, size * d, lvl, a.raw_levels ? size : p.level_count, level_dev);
      for (const auto& st : p.steps) k_.run_step(st, cfg_.allow_tf32);
      k_.adapter_out(a, arena + p.out.off, xb, out + c0 * d, size * d, level_dev);
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  if (threads == 1) {
    for (int64_t blk = 0; blk < blocks; ++blk) run_block(0, blk);
  } else {
#pragma omp parallel num_threads(threads)
    {
      const size_t thread = size_t(omp_get_thread_num());
#pragma omp for schedule(static)
      for (int64_t blk = 0; blk < blocks; ++blk) run_block(thread, blk);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  split_.record(n, threads, secs);
  if (threads == 1 && passive && timed_calls_ < 2) {
    const double s = secs / double(n);
    cpu_sample_s_ = timed_calls_++ == 0 ? s : std::min(cpu_sample_s_, s);
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

void Executor::run_score(const float* x, float* score, int64_t n, const almc_level_device* level_dev) {
  const AdapterParams a = adapter_params(cfg_, table_.f());
  if (!level_dev) throw Error(ALMC_ERR_NULL_POINTER, "no level");
  run(x, score, n, a, level_dev);
}

void Executor::run_raw(const float* x, float* out, int64_t n, float level) {
  AdapterParams a{};
  a.raw = true;
  a.raw_level = level;
  run(x, out, n, a, nullptr);
}

void Executor::run_raw_levels(const float* x, float* out, int64_t n, const float* levels) {
  AdapterParams a{};
  a.raw = true;
  a.raw_levels = levels;
  const Plan& p = slot_for(n).plan;
  if (p.level_count != p.n) throw Error(ALMC_ERR_INVALID_ARGUMENT, "per-sample levels need a level input of n values");
  run(x, out, n, a, nullptr);
}

}  // namespace almc::onnx
