// Errors inside the library are exceptions carrying a status; every C entry point catches them
// and returns the status, keeping the message as the handle's last error.
#pragma once

#include <almc/almc.h>

#include <cstring>
#include <sstream>
#include <type_traits>
#include <stdexcept>
#include <string>

namespace almc {

class Error : public std::runtime_error {
 public:
  Error(almc_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  almc_status status() const { return status_; }

 private:
  almc_status status_;
};

// Build a message from streamable parts: fail(ALMC_ERR_INVALID_ARGUMENT, "d = ", d, " must be > 0").
// The parts written one after another, as a stream writes them.
template <class... Args>
std::string concat(const Args&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

template <class... Args>
[[noreturn]] void fail(almc_status status, const Args&... parts) {
  throw Error(status, concat(parts...));
}

// Multiply sizes, refusing products that overflow or exceed `limit`.
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0) fail(ALMC_ERR_INVALID_ARGUMENT, what, ": negative size");
  if (a != 0 && b > INT64_MAX / a) fail(ALMC_ERR_INVALID_ARGUMENT, what, ": size overflows 64 bits (", a, " x ", b, ")");
  return a * b;
}

// The integer a C caller stored in an enum field: C allows any int there, but in C++ loading an
// enum object whose value lies outside its enumerators' range is undefined (UBSan: -fsanitize=enum),
// so validation reads the bytes.
template <class E>
int raw_enum(const E& e) {
  std::underlying_type_t<E> v;
  std::memcpy(&v, &e, sizeof v);
  return static_cast<int>(v);
}

}  // namespace almc
