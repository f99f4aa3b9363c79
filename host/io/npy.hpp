// NumPy .npy files: float32 and float64, C order, versions 1.0, 2.0 and 3.0.
//
// The reader validates the header strictly (magic, version, a dict with exactly 'descr',
// 'fortran_order' and 'shape', a supported dtype, non-negative dimensions whose product and byte
// size fit in 63 bits, a data section of exactly the announced size) before it allocates, so a
// truncated, garbage or hostile file fails with an IoError carrying a one-line message and never
// triggers a huge allocation. Big-endian data are byte-swapped on reading.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace almc::io {

// Every failure in host/io: the message is one line, starts with the file name when there is one.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class DType { F32, F64 };

struct NpyHeader {
  DType dtype = DType::F32;
  bool big_endian = false;
  std::vector<int64_t> shape;
  int64_t count = 1;          // product of the shape
  size_t data_offset = 0;     // bytes before the data section
};

// Parse and validate the header of an in-memory .npy image of `size` bytes. `name` prefixes messages.
NpyHeader parse_npy_header(const void* bytes, size_t size, const std::string& name);

// An array read from disk, converted to the element type asked for. Values are kept as they are:
// NaN and Inf are the caller's business (see all_finite).
template <typename T>
struct Array {
  std::vector<int64_t> shape;
  std::vector<T> data;
  DType stored = DType::F32;  // the dtype in the file
  int64_t size() const { return static_cast<int64_t>(data.size()); }
};

// Read a .npy file (float32 or float64) and convert to T (float or double). float64 values outside
// the float32 range become +-Inf when T = float.
Array<float> read_npy_f32(const std::string& path);
Array<double> read_npy_f64(const std::string& path);
// The same from memory (used by the fuzzer and tests).
Array<float> parse_npy_f32(const void* bytes, size_t size, const std::string& name);
Array<double> parse_npy_f64(const void* bytes, size_t size, const std::string& name);

// Write a C-order little-endian array; shape may be empty (a scalar). data holds prod(shape) values.
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const double* data, const std::vector<int64_t>& shape);
// The bytes write_npy would write.
std::vector<unsigned char> encode_npy(const void* data, DType dtype, const std::vector<int64_t>& shape);

// "(2, 3, 4)" as NumPy prints shapes.
std::string shape_string(const std::vector<int64_t>& shape);
// Product of dims; throws IoError on a negative dim or overflow past INT64_MAX.
int64_t checked_product(const std::vector<int64_t>& shape);

template <typename T>
bool all_finite(const std::vector<T>& v, int64_t* first_bad = nullptr);

}  // namespace almc::io
