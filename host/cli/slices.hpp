// Slices of a run on the command line: `almc sample --chain-range START:COUNT` writes its samples
// with a sidecar JSON (<out>.json) naming the run and the slice; `almc merge` joins the slices of
// one run back into the whole run's samples, mean and std.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace almc::cli {

// "START:COUNT" (COUNT >= 1). Throws CliError (usage, code 2).
struct ChainRange {
  int64_t start = 0, count = 0;
  bool set() const { return count > 0; }
};
ChainRange parse_chain_range(const std::string& text);

// 16 hex digits of a 64-bit FNV-1a digest of a file's bytes ("" for an empty path). Throws
// CliError when the file cannot be read.
std::string file_digest(const std::string& path, const std::string& what);
// The same digest of a string.
std::string text_digest(const std::string& text);

// What a slice's sidecar records. `run` is everything that decides the samples (options, input
// digests, seed, backend); its digest is the run's identity.
struct SliceRecord {
  nlohmann::json run;
  int64_t n_meas = 0, chains_per_meas = 0, d = 0;
  ChainRange range;
  std::vector<int64_t> sample_shape;  // one chain's sample (d, or C, H, W)
};
std::string sidecar_path(const std::string& npy_path);
void write_slice_sidecar(const std::string& npy_path, const SliceRecord& rec);

}  // namespace almc::cli
