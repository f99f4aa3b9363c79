// Handle lifetimes: reference counts, so that destroying a handle while others still use it is safe.
//
// A context, score or operator counts one reference for the user's handle (dropped by its
// *_destroy) and one for every live handle made from it: a score or operator holds its context,
// a sampler holds its context, score and operator. An object is deleted when its count reaches
// zero, so a context destroyed before its samplers goes away after the last of them, and a sampler
// whose score was destroyed keeps running on it.
#pragma once

#include <almc/almc.h>

#include "host/core/objects.hpp"

namespace almc {

template <class T>
T* retain(T* p) {
  if (p) p->refs.fetch_add(1, std::memory_order_relaxed);
  return p;
}

inline void release(almc_context_t ctx) {
  if (ctx && ctx->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete ctx;
}

// The object's own resources (backend buffers, callbacks) are freed first, then its context.
template <class T>
void release_child(T* p) {
  if (!p || p->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  almc_context_t ctx = p->ctx;
  delete p;
  release(ctx);
}
inline void release(almc_score_t s) { release_child(s); }
inline void release(almc_operator_t op) { release_child(op); }

}  // namespace almc
