// Whether splitting a call over threads pays, measured rather than assumed. The cost of a parallel
// region differs by machine far more than a constant can say: a 2-thread split of a 64-sample
// ONNX MLP call lost ~45 us on one 2-core VM (host/core/parallel.hpp) and ~115 us on another
// (Intel Xeon VM, Dec 2026: 106 us on one thread, 222 us on two; 1.8 ms calls gained nothing
// or 1.9x from run to run). So for each call size the caller's heuristic would split, the first
// calls alternate one thread and the heuristic's count, each timed kRounds times, and the faster
// (by the best of its times) is kept for that size. Splitting never changes a result (the callers'
// contract), only who computes which part, so this choice is free to differ by machine and run.
#pragma once

#include <cstdint>
#include <limits>
#include <map>

namespace almc {

class SplitTrial {
 public:
  // Sizes tried at most; later new sizes take the heuristic's count untried.
  static constexpr size_t kMaxSizes = 64;
  // Timed calls per alternative: the best of 6 (it was 2), as a shared VM moves single calls by
  // tens of percent (2-core AVX2 EPYC VM, Dec 2026: the same ResMLP fixture benchmark ran at
  // 4000 to 8300 evaluations per second from run to run).
  static constexpr int kRounds = 6;

  // Threads for a call of `size` for which the heuristic proposes `proposed` (>= 1).
  int threads(int64_t size, int proposed) {
    if (proposed <= 1) return 1;
    auto it = sizes_.find(size);
    if (it == sizes_.end()) {
      if (sizes_.size() >= kMaxSizes) return proposed;
      it = sizes_.emplace(size, Entry{}).first;
    }
    Entry& e = it->second;
    if (e.proposed != proposed) e = Entry{proposed};  // a new proposal (other thread count): try again
    if (e.calls >= 2 * kRounds) return e.split_pays ? proposed : 1;
    return e.calls % 2 == 0 ? 1 : proposed;  // one thread first, then the split, alternating
  }

  // The time of a call made with threads(size, ...) threads.
  void record(int64_t size, int threads, double seconds) {
    auto it = sizes_.find(size);
    if (it == sizes_.end()) return;
    Entry& e = it->second;
    if (e.calls >= 2 * kRounds) return;
    if (threads == 1 && e.calls % 2 == 0) e.one = std::min(e.one, seconds);
    else if (threads == e.proposed && e.calls % 2 == 1) e.split = std::min(e.split, seconds);
    else return;
    if (++e.calls == 2 * kRounds) e.split_pays = e.split < e.one;
  }

  // Whether the trial of `size` is over, and its outcome (tests, benchmarks).
  bool decided(int64_t size) const {
    const auto it = sizes_.find(size);
    return it != sizes_.end() && it->second.calls >= 2 * kRounds;
  }
  bool split_pays(int64_t size) const {
    const auto it = sizes_.find(size);
    return it != sizes_.end() && it->second.split_pays;
  }

 private:
  struct Entry {
    int proposed = 0;
    int calls = 0;  // timed calls so far
    double one = std::numeric_limits<double>::infinity(), split = std::numeric_limits<double>::infinity();
    bool split_pays = false;
  };
  std::map<int64_t, Entry> sizes_;
};

}  // namespace almc
