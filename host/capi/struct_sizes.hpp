// The versioned structs of the C API (struct_size, see almc.h): which sizes this library accepts
// and how a caller's older layout becomes this library's. The first released layout of each struct
// is known in one place, the ALMC_*_MIN_SIZE macros of almc.h; everything here works from them.
#pragma once

#include <almc/almc.h>

#include <cstddef>
#include <cstring>
#include <string>

namespace almc {

template <class T>
struct FirstLayout;
template <>
struct FirstLayout<almc_context_config> {
  static constexpr size_t size = ALMC_CONTEXT_CONFIG_MIN_SIZE;
};
template <>
struct FirstLayout<almc_onnx_config> {
  static constexpr size_t size = ALMC_ONNX_CONFIG_MIN_SIZE;
};
template <>
struct FirstLayout<almc_sampler_config> {
  static constexpr size_t size = ALMC_SAMPLER_CONFIG_MIN_SIZE;
};
template <>
struct FirstLayout<almc_run_info> {
  static constexpr size_t size = ALMC_RUN_INFO_MIN_SIZE;
};

// Empty when `size` is a struct_size this library accepts for T, else the one-line reason
// (`name` is how the message calls the struct).
template <class T>
std::string struct_size_problem(size_t size, const char* name) {
  constexpr size_t lo = FirstLayout<T>::size, hi = sizeof(T), align = alignof(T);
  static_assert(lo % align == 0 && lo <= hi, "a first layout must be a whole prefix of the struct");
  if (size >= lo && size <= hi && size % align == 0) return {};
  std::string why = std::string(name) + "->struct_size is " + std::to_string(size) + ": this library accepts " +
                    std::to_string(lo) + " (its first layout) to " + std::to_string(hi) + " in multiples of " +
                    std::to_string(align);
  if (size > hi && size % align == 0 && size < (size_t(1) << 20))
    why += " (a program built against a newer almc header than this library: link the library of that version)";
  else
    why += " (initialise the struct with its almc_*_default() function)";
  return why;
}

// The caller's struct (of an accepted struct_size) in this library's layout: its struct_size
// bytes, then the remaining fields from `defaults`; struct_size becomes sizeof(T).
template <class T>
T widen_struct(const T* given, const T& defaults) {
  T out = defaults;
  std::memcpy(static_cast<void*>(&out), given, given->struct_size);
  out.struct_size = sizeof(T);
  return out;
}

// Copies `value` into the caller's output struct `out` (of an accepted struct_size) up to its
// struct_size, which stays as the caller set it.
template <class T>
void narrow_struct(T* out, const T& value) {
  const size_t n = out->struct_size;
  std::memcpy(static_cast<void*>(out), &value, n);
  out->struct_size = n;
}

}  // namespace almc
