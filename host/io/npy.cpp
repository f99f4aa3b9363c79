#include "host/io/npy.hpp"

#include "host/io/file.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>


namespace almc::io {
namespace {

constexpr unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
// NumPy itself refuses headers above 10000 bytes unless asked; 1 MiB leaves room for any real shape.
constexpr size_t kMaxHeaderLen = size_t(1) << 20;

bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

[[noreturn]] void fail(const std::string& name, const std::string& what) { throw IoError(name + ": " + what); }

// A strict reader for the Python dict literal of a .npy header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& name) : s_(text), name_(name) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{');
    skip_ws();
    while (peek() != '}') {
      const std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (have_descr) bad("duplicate key 'descr'");
        if (peek() == '[') bad("structured dtypes are not supported (need float32 or float64)");
        descr = parse_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        if (have_fortran) bad("duplicate key 'fortran_order'");
        fortran = parse_bool();
        have_fortran = true;
      } else if (key == "shape") {
        if (have_shape) bad("duplicate key 'shape'");
        shape = parse_tuple();
        have_shape = true;
      } else {
        bad("unexpected key '" + printable(key) + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        skip_ws();
      } else if (peek() != '}') {
        bad("expected ',' or '}' in the header dict");
      }
    }
    ++i_;
    // Only padding may follow: spaces and a final newline (NumPy pads with spaces, ends with '\n').
    for (; i_ < s_.size(); ++i_)
      if (s_[i_] != ' ' && s_[i_] != '\n' && s_[i_] != '\t' && s_[i_] != '\r') bad("trailing characters after the header dict");
    if (!have_descr) bad("header lacks 'descr'");
    if (!have_fortran) bad("header lacks 'fortran_order'");
    if (!have_shape) bad("header lacks 'shape'");
  }

 private:
  [[noreturn]] void bad(const std::string& what) { fail(name_, "malformed .npy header: " + what); }

  static std::string printable(const std::string& k) {
    std::string r;
    for (char c : k.substr(0, 32)) r += (c >= 32 && c < 127) ? c : '?';
    return r;
  }

  char peek() {
    if (i_ >= s_.size()) bad("unexpected end of header");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  std::string parse_string() {
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    ++i_;
    std::string out;
    while (peek() != q) {
      if (s_[i_] == '\\') bad("escapes in header strings are not supported");
      out += s_[i_++];
      if (out.size() > 64) bad("string too long");
    }
    ++i_;
    return out;
  }
  bool parse_bool() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    bad("'fortran_order' must be True or False");
  }
  std::vector<int64_t> parse_tuple() {
    expect('(');
    std::vector<int64_t> dims;
    skip_ws();
    while (peek() != ')') {
      if (peek() == '-') bad("negative dimension in 'shape'");
      if (peek() < '0' || peek() > '9') bad("'shape' must be a tuple of integers");
      int64_t v = 0;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
        const int digit = s_[i_++] - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) bad("dimension overflows 64 bits");
        v = v * 10 + digit;
      }
      if (i_ < s_.size() && s_[i_] == 'L') ++i_;  // Python 2 long suffix
      dims.push_back(v);
      if (dims.size() > 32) bad("more than 32 dimensions");
      skip_ws();
      if (peek() == ',') {
        ++i_;
        skip_ws();
      } else if (peek() != ')') {
        bad("expected ',' or ')' in 'shape'");
      }
    }
    ++i_;
    return dims;
  }

  const std::string& s_;
  const std::string& name_;
  size_t i_ = 0;
};

void byteswap(unsigned char* p, size_t elem, size_t count) {
  for (size_t k = 0; k < count; ++k, p += elem)
    for (size_t a = 0, b = elem - 1; a < b; ++a, --b) std::swap(p[a], p[b]);
}

template <typename T>
Array<T> decode(const void* bytes, size_t size, const std::string& name) {
  const NpyHeader h = parse_npy_header(bytes, size, name);
  Array<T> out;
  out.shape = h.shape;
  out.stored = h.dtype;
  const size_t elem = h.dtype == DType::F32 ? 4 : 8;
  const unsigned char* src = static_cast<const unsigned char*>(bytes) + h.data_offset;
  out.data.resize(static_cast<size_t>(h.count));
  const bool swap = h.big_endian == host_is_little_endian();
  unsigned char tmp[8];
  for (int64_t k = 0; k < h.count; ++k) {
    std::memcpy(tmp, src + static_cast<size_t>(k) * elem, elem);
    if (swap) byteswap(tmp, elem, 1);
    if (h.dtype == DType::F32) {
      float v;
      std::memcpy(&v, tmp, 4);
      out.data[k] = static_cast<T>(v);
    } else {
      double v;
      std::memcpy(&v, tmp, 8);
      out.data[k] = static_cast<T>(v);  // out-of-range doubles become +-Inf in float (IEEE conversion)
    }
  }
  return out;
}

template <typename T>
void write_impl(const std::string& path, const T* data, DType dt, const std::vector<int64_t>& shape) {
  const std::vector<unsigned char> bytes = encode_npy(data, dt, shape);
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

int64_t checked_product(const std::vector<int64_t>& shape) {
  int64_t p = 1;
  for (int64_t d : shape) {
    if (d < 0) throw IoError("negative dimension in shape " + shape_string(shape));
    if (d != 0 && p > std::numeric_limits<int64_t>::max() / d)
      throw IoError("shape " + shape_string(shape) + " overflows 64 bits");
    p *= d;
  }
  return p;
}

NpyHeader parse_npy_header(const void* bytes, size_t size, const std::string& name) {
  const unsigned char* b = static_cast<const unsigned char*>(bytes);
  if (size < 10) fail(name, "not a .npy file (too short: " + std::to_string(size) + " bytes)");
  if (std::memcmp(b, kMagic, 6) != 0) fail(name, "not a .npy file (bad magic)");
  const int major = b[6], minor = b[7];
  size_t header_len, prefix;
  if (major == 1 && minor == 0) {
    header_len = size_t(b[8]) | (size_t(b[9]) << 8);
    prefix = 10;
  } else if ((major == 2 || major == 3) && minor == 0) {
    if (size < 12) fail(name, "truncated .npy header");
    header_len = size_t(b[8]) | (size_t(b[9]) << 8) | (size_t(b[10]) << 16) | (size_t(b[11]) << 24);
    prefix = 12;
  } else {
    fail(name, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
  }
  if (header_len > kMaxHeaderLen) fail(name, "malformed .npy header: header length " + std::to_string(header_len) + " too large");
  if (header_len > size - prefix)
    fail(name, "truncated .npy file: header needs " + std::to_string(header_len) + " bytes, " +
                   std::to_string(size - prefix) + " present");
  const std::string text(reinterpret_cast<const char*>(b + prefix), header_len);
  for (unsigned char c : text)
    if (c == 0 || c >= 128) fail(name, "malformed .npy header: non-ASCII byte");

  std::string descr;
  bool fortran = false;
  NpyHeader h;
  HeaderParser(text, name).parse(descr, fortran, h.shape);
  if (fortran) fail(name, "Fortran-order arrays are not supported (save with np.ascontiguousarray)");
  if (descr.size() != 3 || (descr[0] != '<' && descr[0] != '>' && descr[0] != '=') ||
      (descr.substr(1) != "f4" && descr.substr(1) != "f8")) {
    std::string shown;
    for (char c : descr) shown += (c >= 32 && c < 127) ? c : '?';
    fail(name, "unsupported dtype '" + shown + "' (need float32 '<f4' or float64 '<f8'; convert with a.astype(np.float32))");
  }
  h.dtype = descr.substr(1) == "f4" ? DType::F32 : DType::F64;
  h.big_endian = descr[0] == '>' || (descr[0] == '=' && !host_is_little_endian());
  h.data_offset = prefix + header_len;
  try {
    h.count = checked_product(h.shape);
  } catch (const IoError& e) {
    fail(name, e.what());
  }
  const int64_t elem = h.dtype == DType::F32 ? 4 : 8;
  if (h.count > std::numeric_limits<int64_t>::max() / elem) fail(name, "shape " + shape_string(h.shape) + " overflows 64-bit byte count");
  const uint64_t need = static_cast<uint64_t>(h.count) * elem;
  const uint64_t have = size - h.data_offset;
  if (have < need)
    fail(name, "truncated .npy file: shape " + shape_string(h.shape) + " needs " + std::to_string(need) +
                   " data bytes, " + std::to_string(have) + " present");
  if (have > need)
    fail(name, "malformed .npy file: " + std::to_string(have - need) + " bytes after the data of shape " +
                   shape_string(h.shape));
  return h;
}

Array<float> parse_npy_f32(const void* bytes, size_t size, const std::string& name) { return decode<float>(bytes, size, name); }
Array<double> parse_npy_f64(const void* bytes, size_t size, const std::string& name) { return decode<double>(bytes, size, name); }

Array<float> read_npy_f32(const std::string& path) {
  const auto buf = read_regular_file(path, kMaxArrayFileBytes);
  return decode<float>(buf.data(), buf.size(), path);
}
Array<double> read_npy_f64(const std::string& path) {
  const auto buf = read_regular_file(path, kMaxArrayFileBytes);
  return decode<double>(buf.data(), buf.size(), path);
}

std::vector<unsigned char> encode_npy(const void* data, DType dtype, const std::vector<int64_t>& shape) {
  const int64_t count = checked_product(shape);
  const size_t elem = dtype == DType::F32 ? 4 : 8;
  std::string dict = std::string("{'descr': '<") + (dtype == DType::F32 ? "f4" : "f8") +
                     "', 'fortran_order': False, 'shape': " + shape_string(shape) + ", }";
  // Pad with spaces so that magic + version + length + header is a multiple of 64, end with '\n'.
  size_t prefix = 10;
  size_t total = prefix + dict.size() + 1;
  if (dict.size() + 1 + 63 > 65535) {
    prefix = 12;
    total = prefix + dict.size() + 1;
  }
  const size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  const size_t hlen = dict.size();
  std::vector<unsigned char> out;
  out.reserve(prefix + hlen + static_cast<size_t>(count) * elem);
  out.insert(out.end(), kMagic, kMagic + 6);
  out.push_back(prefix == 10 ? 1 : 2);
  out.push_back(0);
  out.push_back(static_cast<unsigned char>(hlen & 0xff));
  out.push_back(static_cast<unsigned char>((hlen >> 8) & 0xff));
  if (prefix == 12) {
    out.push_back(static_cast<unsigned char>((hlen >> 16) & 0xff));
    out.push_back(static_cast<unsigned char>((hlen >> 24) & 0xff));
  }
  out.insert(out.end(), dict.begin(), dict.end());
  const size_t data_start = out.size();
  const unsigned char* src = static_cast<const unsigned char*>(data);
  out.insert(out.end(), src, src + static_cast<size_t>(count) * elem);
  if (!host_is_little_endian()) byteswap(out.data() + data_start, elem, static_cast<size_t>(count));
  return out;
}

void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  write_impl(path, data, DType::F32, shape);
}
void write_npy(const std::string& path, const double* data, const std::vector<int64_t>& shape) {
  write_impl(path, data, DType::F64, shape);
}

template <typename T>
bool all_finite(const std::vector<T>& v, int64_t* first_bad) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) {
      if (first_bad) *first_bad = static_cast<int64_t>(i);
      return false;
    }
  return true;
}
template bool all_finite<float>(const std::vector<float>&, int64_t*);
template bool all_finite<double>(const std::vector<double>&, int64_t*);

}  // namespace almc::io
