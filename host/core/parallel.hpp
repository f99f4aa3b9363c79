// When a parallel region pays: waking OpenMP's sleeping threads can cost more than splitting small
// work saves. GNU OpenMP with OMP_WAIT_POLICY=passive (what the almc CLI sets, and what a loaded
// machine needs) puts idle threads to sleep at once, so every region starts with futex wake-ups.
// Measured on the 2-core development VM (Dec 2026): 6-45 us per empty region passive against 0.5 us
// spinning, and ~70 us lost by a 2-thread split of an ONNX MLP call (1 thread: 48 us for 64
// samples, 2 threads: 93 us; 256 samples: 192 us against 165 us). Work splitters give each thread
// at least kPassiveThreadSeconds of work when threads sleep.
#pragma once

#include <cstdlib>
#include <cstring>
#include <strings.h>

namespace almc {

// True when OpenMP's idle threads sleep rather than spin (OMP_WAIT_POLICY=passive, or a zero
// GOMP_SPINCOUNT), read once. ALMC_CPU_SPLIT=eager makes it false: small work is then split as
// for spinning threads (the tests that check results do not depend on the thread count set it,
// so their small problems do run on several threads).
inline bool openmp_waits_passively() {
  static const bool passive = [] {
    const char* e = std::getenv("ALMC_CPU_SPLIT");
    if (e && std::strcmp(e, "eager") == 0) return false;
    const char* p = std::getenv("OMP_WAIT_POLICY");
    if (p && strcasecmp(p, "passive") == 0) return true;
    const char* s = std::getenv("GOMP_SPINCOUNT");
    return s && std::strcmp(s, "0") == 0;
  }();
  return passive;
}

// The least work, in seconds of one thread, worth waking a sleeping thread for: about twice what
// the split above lost.
constexpr double kPassiveThreadSeconds = 70e-6;

}  // namespace almc
