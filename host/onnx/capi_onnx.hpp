// What the ONNX score adapter tells its callers beyond the public API (the almc command uses it
// to report which graph inputs it binds and the level values it feeds). Internal: not installed.
#pragma once
#include <almc/almc.h>

#include <string>

#include "host/onnx/graph.hpp"

namespace almc::onnx {

struct Bindings {
  std::string x, level;  // graph input names; level empty: no level input
  std::string inputs;    // every runtime input: "'x' float [?, 6], 't' int64 [?]"
};

// "'name' dtype [dims], ..." for each runtime input of g.
std::string describe_inputs(const Graph& g);
// The bindings of a score made by almc_score_create_onnx; false for any other score.
bool score_bindings(almc_score_t score, Bindings* out);
// The value the network's level input receives at OU time t (false: not an ONNX score, or no level).
bool score_level_value(almc_score_t score, double t, double* value);

}  // namespace almc::onnx
