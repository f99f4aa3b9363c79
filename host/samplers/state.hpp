// The header of a resumable state (host/samplers/state.cpp), read without a sampler: the snapshot
// container (host/capi/capi_snapshot.cpp) records the step and total it holds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace almc {

struct StateHead {
  int64_t step = 0, total = 0;
};

// Checks that `bytes` at `data` begin with the header of a sampler state of this library's format
// (magic, byte order, version) and returns its step and total. Throws Error(ALMC_ERR_INVALID_ARGUMENT)
// naming what is wrong, or Error(ALMC_ERR_PARSE) when `bytes` is not the size its header gives (a
// truncated or padded state); does not check that the state belongs to any particular run.
StateHead read_state_head(const void* data, size_t bytes);
// Whether `bytes` at `data` begin with a sampler state's magic (of any version or byte order).
bool has_state_magic(const void* data, size_t bytes);

}  // namespace almc
