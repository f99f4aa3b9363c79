// Fuzz target: the .npy reader (header parser, dtype conversion, size checks), from memory and
// through a file. Every malformed input must end in almc::io::IoError; anything else (a crash,
// a sanitizer report, another exception type, a huge allocation) is a finding.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_common.hpp"
#include "host/io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace almc::io;
  try {
    const NpyHeader h = parse_npy_header(data, size, "fuzz.npy");
    if (h.count < 0) __builtin_trap();
  } catch (const IoError&) {
  }
  try {
    const Array<float> a = parse_npy_f32(data, size, "fuzz.npy");
    // A successful read must agree with itself: shape product = element count.
    if (checked_product(a.shape) != a.size()) __builtin_trap();
    int64_t bad = -1;
    (void)all_finite(a.data, &bad);
  } catch (const IoError&) {
  }
  try {
    const Array<double> a = parse_npy_f64(data, size, "fuzz.npy");
    if (checked_product(a.shape) != a.size()) __builtin_trap();
  } catch (const IoError&) {
  }
  // The file path: the same bytes through read_npy_f32 (stat, short reads).
  static const std::string path = almc_fuzz::scratch_dir() + "/in.npy";
  if (almc_fuzz::write_file(path, data, size)) {
    try {
      (void)read_npy_f32(path);
    } catch (const IoError&) {
    }
  }
  return 0;
}
