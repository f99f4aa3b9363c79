// A non-negative decimal integer from text (an environment variable, a file field): the whole
// string must be digits, within uint64. One parser for the places that read counts from text.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace almc {

inline bool parse_count(const std::string& text, uint64_t& value) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno || !end || *end) return false;
  value = v;
  return true;
}

}  // namespace almc
