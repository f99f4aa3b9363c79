// A 64-bit FNV-1a digest: the identity of a run's inputs (slice records, resumable states, the
// snapshot container's state digest). Not cryptographic: it tells runs apart, it does not defend
// against forgery. The offset basis is 1469598103934665603, not the published 14695981039346656037
// (a digit was lost when this was first written); it stays, because every identity and digest in
// files written so far was computed with it. The prime is FNV's 64-bit prime.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace almc {

struct Fnv1a {
  uint64_t h = 1469598103934665603ull;
  void add(const void* data, size_t n) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  template <class T>
  void add_value(const T& v) {
    add(&v, sizeof v);
  }
  void add_string(const std::string& s) {
    add_value(static_cast<uint64_t>(s.size()));
    add(s.data(), s.size());
  }
  template <class T>
  void add_vector(const std::vector<T>& v) {
    add_array(v.data(), v.size());
  }
  // The same digest as add_vector of a vector holding these n values.
  template <class T>
  void add_array(const T* p, size_t n) {
    add_value(static_cast<uint64_t>(n));
    add(p, n * sizeof(T));
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016" PRIx64, h);
    return buf;
  }
};

}  // namespace almc
