// Decimal integers from text (an option value, an environment variable, a file field): one reader
// for every place that reads an integer from text, the sign and range allowed given by the caller.
// Only decimal digits count: no blanks, no "0x" prefix, no exponent, no fraction; leading zeros are
// decimal ("010" is 10, not octal 8).
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace almc {

// What a reader accepts: a leading '+' or '-' (when sign), and values in [min, max].
struct DecimalPolicy {
  bool sign = false;
  int64_t min = 0;
  uint64_t max = std::numeric_limits<uint64_t>::max();
};

enum class DecimalRead {
  ok,
  not_decimal,   // empty, a sign where none is allowed, or a character other than a digit
  out_of_range,  // digits, but beyond [min, max] (or beyond 64 bits)
};

// A value read: its sign and magnitude ("-0" is 0, not negative).
struct Decimal {
  bool negative = false;
  uint64_t magnitude = 0;
  // Within [INT64_MIN, INT64_MAX] when the policy's range is.
  int64_t as_int64() const { return negative ? int64_t(0 - magnitude) : int64_t(magnitude); }
  std::string str() const { return (negative ? "-" : "") + std::to_string(magnitude); }
};

inline DecimalRead read_decimal(const std::string& text, const DecimalPolicy& policy, Decimal& value) {
  size_t at = 0;
  bool negative = false;
  if (policy.sign && !text.empty() && (text[0] == '+' || text[0] == '-')) {
    negative = text[0] == '-';
    at = 1;
  }
  if (at == text.size()) return DecimalRead::not_decimal;
  uint64_t v = 0;
  bool overflow = false;
  for (size_t i = at; i < text.size(); ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return DecimalRead::not_decimal;
    const uint64_t digit = uint64_t(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) overflow = true;  // keep checking the characters
    v = v * 10 + digit;
  }
  if (overflow) return DecimalRead::out_of_range;
  negative = negative && v > 0;
  // min <= value <= max with min signed and max unsigned.
  if (negative) {
    if (policy.min >= 0 || v > uint64_t(0) - uint64_t(policy.min)) return DecimalRead::out_of_range;
  } else if ((policy.min > 0 && v < uint64_t(policy.min)) || v > policy.max) {
    return DecimalRead::out_of_range;
  }
  value.negative = negative;
  value.magnitude = v;
  return DecimalRead::ok;
}

// A non-negative decimal integer within uint64 (digits only): counts read from text.
inline bool parse_count(const std::string& text, uint64_t& value) {
  Decimal d;
  if (read_decimal(text, DecimalPolicy{}, d) != DecimalRead::ok) return false;
  value = d.magnitude;
  return true;
}

}  // namespace almc
