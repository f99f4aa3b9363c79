// Fuzz target: the ONNX loader, checker, planner and CPU executor through the C API. The bytes are
// written to a scratch file and loaded with almc_score_create_onnx on a CPU context (adapter
// level T, and level NONE when the model has no level input); a model that loads is evaluated
// on two small inputs through the score and through almc_onnx_eval_raw. Failures must come back
// as a status other than ALMC_ERR_INTERNAL, with a message; a crash, a sanitizer report, a hang
// (-timeout) or memory beyond -rss_limit_mb is a finding.
#include <almc/almc.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.hpp"

namespace {

void check_failure(almc_context_t ctx, almc_status st) {
  // INTERNAL means an exception the loader did not anticipate: the message says which.
  if (st == ALMC_ERR_INTERNAL) __builtin_trap();
  const char* msg = almc_context_last_error(ctx);
  if (!msg || !*msg) __builtin_trap();
}

// Evaluations are bounded so that a valid but large model does not turn into a memory finding.
constexpr int64_t kMaxEvalDim = 1 << 14;

void exercise(almc_context_t ctx, const std::string& path, almc_net_level level) {
  almc_onnx_config cfg = almc_onnx_config_default();
  cfg.level = level;
  cfg.max_batch = 2;
  almc_score_t score = nullptr;
  const almc_status st = almc_score_create_onnx(ctx, path.c_str(), &cfg, &score);
  if (st != ALMC_OK) {
    if (score) __builtin_trap();
    check_failure(ctx, st);
    return;
  }
  int64_t d = 0;
  if (almc_score_dim(score, &d) != ALMC_OK || d <= 0) __builtin_trap();
  if (d <= kMaxEvalDim) {
    std::vector<float> x(size_t(2 * d)), out(size_t(2 * d));
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * float(int(i % 7) - 3);
    const almc_status es = almc_score_evaluate(score, x.data(), out.data(), 2, 0.3);
    if (es == ALMC_ERR_INTERNAL) __builtin_trap();
    const almc_status rs = almc_onnx_eval_raw(ctx, path.c_str(), &cfg, x.data(), 2, d, 0.3f, out.data());
    if (rs != ALMC_OK) check_failure(ctx, rs);
  }
  almc_score_destroy(score);
}

}  // namespace

// A valid model whose activations would need more than 1 GiB at batch 2 is refused as out of
// memory (ALMC_HOST_MEMORY_LIMIT_MB) instead of tripping -malloc_limit_mb.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("ALMC_HOST_MEMORY_LIMIT_MB", "1024", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = almc_fuzz::scratch_dir() + "/model.onnx";
  if (!almc_fuzz::write_file(path, data, size)) return 0;
  almc_context_t ctx = almc_fuzz::cpu_context();
  exercise(ctx, path, ALMC_LEVEL_T);
  exercise(ctx, path, ALMC_LEVEL_NONE);
  return 0;
}
