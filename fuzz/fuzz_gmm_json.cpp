// Fuzz target: the Gaussian-mixture JSON reader, directly (almc::parse_gmm_json) and through the
// C API (almc_score_create_gmm_json on a CPU context, then one score evaluation when it loads).
// A malformed document must give ALMC_ERR_PARSE with a message; a crash, a sanitizer report or an
// exception escaping as ALMC_ERR_INTERNAL is a finding.
#include <almc/almc.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.hpp"
#include "host/core/error.hpp"
#include "host/core/gmm_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const almc::GmmSpec g = almc::parse_gmm_json(text);
    if (g.K <= 0 || g.d <= 0 || g.weights.size() != size_t(g.K) || g.means.size() != size_t(g.K * g.d) ||
        g.variances.size() != size_t(g.K * g.d))
      __builtin_trap();
  } catch (const almc::Error& e) {
    if (e.status() != ALMC_ERR_PARSE) __builtin_trap();
  }

  static const std::string path = almc_fuzz::scratch_dir() + "/prior.json";
  if (!almc_fuzz::write_file(path, data, size)) return 0;
  almc_context_t ctx = almc_fuzz::cpu_context();
  almc_score_t score = nullptr;
  const almc_status st = almc_score_create_gmm_json(ctx, path.c_str(), &score);
  if (st != ALMC_OK) {
    if (st == ALMC_ERR_INTERNAL || score != nullptr) __builtin_trap();
    const char* msg = almc_context_last_error(ctx);
    if (!msg || !*msg) __builtin_trap();
    return 0;
  }
  int64_t d = 0;
  if (almc_score_dim(score, &d) != ALMC_OK || d <= 0) __builtin_trap();
  if (d <= 4096) {
    std::vector<float> x(size_t(2 * d), 0.5f), s(size_t(2 * d));
    const almc_status es = almc_score_evaluate(score, x.data(), s.data(), 2, 0.1);
    if (es == ALMC_ERR_INTERNAL) __builtin_trap();
  }
  almc_score_destroy(score);
  return 0;
}
