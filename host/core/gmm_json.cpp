#include "host/core/gmm_json.hpp"

#include "host/core/error.hpp"
#include "host/io/file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

// The document is read with nlohmann's SAX interface straight into float arrays: a DOM of a large
// prior costs tens of bytes per number (a 60 MB file peaked at 1.75 GB), these arrays four. What
// the events leave behind (the Field records below) is enough to run the same checks in the same
// order as a DOM walk would, so every message is the one the DOM reader gave.

namespace almc {
namespace {

using json = nlohmann::json;

constexpr int64_t kMaxGmmElements = int64_t(1) << 31;

// What a field's entry (a row, or a weight) is: a number, an array (its length, >= 0), or else.
constexpr int64_t kEntryNumber = -1, kEntryOther = -2;

// One of the four top-level arrays. Every number met in it, as an entry or inside an array entry,
// takes one slot of `values` in document order (0 for one that is not a finite float: the first
// such position is kept, and the checks stop there).
struct Field {
  bool present = false, is_array = false;
  std::vector<int64_t> entries;  // kEntryNumber, kEntryOther or the length of an array entry
  std::vector<float> values;
  int64_t bad_k = -1, bad_j = -1;  // first value that is not a finite float (bad_j -1: the entry itself)
  bool bad_is_number = false;      // it was a number (too large or not finite), not some other value

  void reset(bool array) {
    *this = Field();
    present = true;
    is_array = array;
  }
  // A value at entry k, column j: `x` when it is a number, nullptr when it is anything else.
  void value(const double* x, int64_t k, int64_t j) {
    const bool ok = x && std::isfinite(*x) && std::fabs(*x) <= 3.0e38;
    if (!ok && bad_k < 0) {
      bad_k = k;
      bad_j = j;
      bad_is_number = x != nullptr;
    }
    values.push_back(ok ? static_cast<float>(*x) : 0.f);
  }
};

// "GMM JSON: <where> is not a number" or "... is not a finite float", for the field's bad value.
[[noreturn]] void fail_value(const Field& f, const std::string& where) {
  fail(ALMC_ERR_PARSE, "GMM JSON: ", where, f.bad_is_number ? " is not a finite float" : " is not a number");
}

// Collects the four fields; ignores every other key. Nesting is tracked by depth only: level 1 is
// inside the top-level object, 2 inside a field's array, 3 inside one of its array entries.
class Reader final : public nlohmann::json_sax<json> {
 public:
  Field weights, means, variances, stds;
  bool top_is_object = false;
  std::string duplicate;  // the first of the four keys met twice (JSON leaves which one counts open)
  std::string syntax_error;

  bool null() override { return scalar(nullptr); }
  bool boolean(bool) override { return scalar(nullptr); }
  bool number_integer(number_integer_t v) override { return number(static_cast<double>(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(static_cast<double>(v)); }
  bool number_float(number_float_t v, const string_t&) override { return number(v); }
  bool string(string_t&) override { return scalar(nullptr); }
  bool binary(binary_t&) override { return scalar(nullptr); }
  bool start_object(std::size_t) override {
    open(false);
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override {
    open(true);
    return true;
  }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    if (depth_ == 1 && top_is_object) {
      current_ = k == "weights" ? &weights : k == "means" ? &means : k == "variances" ? &variances
               : k == "stds"    ? &stds
                                : nullptr;
      current_name_ = current_ ? k : std::string();
      awaiting_field_ = current_ != nullptr;
      if (current_ && current_->present && duplicate.empty()) duplicate = k;
    }
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    syntax_error = e.what();
    error_position = position;
    return false;
  }
  // Where the value being read goes ("means[2][5]", "weights[1]", "stds"), empty when outside the
  // four fields.
  std::string value_place() const {
    if (!current_) return "";
    if (depth_ == 1 && top_is_object) return awaiting_field_ ? current_name_ : "";
    if (depth_ == 2 && in_field_array_) return current_name_ + "[" + std::to_string(current_->entries.size()) + "]";
    if (depth_ == 3 && in_entry_array_)
      return current_name_ + "[" + std::to_string(current_->entries.size() - 1) + "][" +
             std::to_string(current_->entries.back()) + "]";
    return "";
  }
  std::size_t error_position = 0;

 private:
  Field* current_ = nullptr;  // the field whose value is being read (level >= 1)
  std::string current_name_;
  bool awaiting_field_ = false;  // a field's key was read, not yet its value
  bool in_field_array_ = false, in_entry_array_ = false;
  int64_t depth_ = 0;

  bool number(double x) { return scalar(&x); }
  // A value that is not a container: a number (x) or anything else (nullptr).
  bool scalar(const double* x) {
    if (depth_ == 1 && top_is_object) {
      if (current_) current_->reset(false);
      awaiting_field_ = false;
    } else if (depth_ == 2 && in_field_array_) {
      Field& f = *current_;
      f.entries.push_back(x ? kEntryNumber : kEntryOther);
      if (x) f.value(x, int64_t(f.entries.size()) - 1, -1);
    } else if (depth_ == 3 && in_entry_array_) {
      Field& f = *current_;
      f.value(x, int64_t(f.entries.size()) - 1, f.entries.back()++);
    }
    return true;
  }
  void open(bool array) {
    if (depth_ == 0) {
      top_is_object = !array;
    } else if (depth_ == 1 && top_is_object) {
      if (current_) current_->reset(array);
      awaiting_field_ = false;
      in_field_array_ = current_ && array;
    } else if (depth_ == 2 && in_field_array_) {
      current_->entries.push_back(array ? 0 : kEntryOther);
      in_entry_array_ = array;
    } else if (depth_ == 3 && in_entry_array_) {
      Field& f = *current_;
      f.value(nullptr, int64_t(f.entries.size()) - 1, f.entries.back()++);
    }
    ++depth_;
  }
  bool close() {
    --depth_;
    if (depth_ == 1) in_field_array_ = false;
    if (depth_ == 2) in_entry_array_ = false;
    return true;
  }
};

// Checks a field of K entries, each a non-empty array of d numbers (or, when allow_scalar, a
// number broadcast to d), and returns its K x d values; d is set by the first field read.
std::vector<float> read_rows(Field& f, const char* name, int64_t K, int64_t& d, bool allow_scalar) {
  if (!f.is_array) fail(ALMC_ERR_PARSE, "GMM JSON: \"", name, "\" must be an array");
  if (static_cast<int64_t>(f.entries.size()) != K)
    fail(ALMC_ERR_PARSE, "GMM JSON: \"", name, "\" has ", f.entries.size(), " entries but \"weights\" has ", K);
  bool any_scalar = false;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t e = f.entries[size_t(k)];
    if (allow_scalar && e == kEntryNumber) {
      any_scalar = true;
      continue;
    }
    if (e <= 0) fail(ALMC_ERR_PARSE, "GMM JSON: ", name, "[", k, "] must be a non-empty array of numbers");
    if (d < 0) d = e;
    if (e != d) fail(ALMC_ERR_PARSE, "GMM JSON: ", name, "[", k, "] has length ", e, " but the dimension is ", d);
  }
  if (d < 0) fail(ALMC_ERR_PARSE, "GMM JSON: cannot tell the dimension from \"", name, "\"");
  if (K * d > kMaxGmmElements) fail(ALMC_ERR_PARSE, "GMM JSON: K x d = ", K, " x ", d, " is too large");
  if (f.bad_k >= 0) {
    fail_value(f, std::string(name) + "[" + std::to_string(f.bad_k) + "]" +
                      (f.bad_j < 0 ? "" : "[" + std::to_string(f.bad_j) + "]"));
  }
  if (!any_scalar) return std::move(f.values);
  std::vector<float> out(static_cast<size_t>(K * d));
  const float* v = f.values.data();
  for (int64_t k = 0; k < K; ++k) {
    const bool scalar = f.entries[size_t(k)] == kEntryNumber;
    for (int64_t j = 0; j < d; ++j) out[size_t(k * d + j)] = scalar ? v[0] : v[j];
    v += scalar ? 1 : d;
  }
  return out;
}

// The word around byte `at` of [begin, end): letters, digits, signs and dots.
std::string word_at(const char* begin, const char* end, size_t at) {
  const auto part = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.'; };
  const size_t n = static_cast<size_t>(end - begin);
  size_t a = std::min(at, n), b = a;
  while (a > 0 && part(begin[a - 1])) --a;
  while (b < n && part(begin[b])) ++b;
  return std::string(begin + a, begin + b);
}

void read_events(const char* begin, const char* end, Reader& r) {
  if (json::sax_parse(begin, end, &r)) return;
  // Python's json.dump and others write NaN and Infinity, which JSON has no words for: name the
  // value and where it is rather than the parser's "invalid literal".
  const std::string word = word_at(begin, end, r.error_position > 0 ? r.error_position - 1 : 0);
  std::string lower;
  for (char c : word) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string bare = !lower.empty() && (lower[0] == '-' || lower[0] == '+') ? lower.substr(1) : lower;
  if (bare == "nan" || bare == "inf" || bare == "infinity") {
    const std::string place = r.value_place();
    fail(ALMC_ERR_PARSE, "GMM JSON: ", place.empty() ? "a value" : place, " is ", word,
         ", which is not a number JSON can hold: every weight, mean and variance must be a finite number");
  }
  if (r.syntax_error.find("number overflow") != std::string::npos) {
    const std::string place = r.value_place();
    fail(ALMC_ERR_PARSE, "GMM JSON: ", place.empty() ? "a value" : place, " = ", word, " is beyond the range of numbers");
  }
  // The parser's message without its class name: "at line L, column C: <what>".
  std::string why = r.syntax_error;
  if (why.rfind("[json.exception.", 0) == 0 && why.find("] ") != std::string::npos) why.erase(0, why.find("] ") + 2);
  if (why.rfind("parse error ", 0) == 0) why.erase(0, std::strlen("parse error "));
  fail(ALMC_ERR_PARSE, "GMM JSON: not valid JSON: ", why);
}

// The checks, in the order a walk of the document's tree makes them, then the spec.
GmmSpec build(Reader& r) {
  if (!r.top_is_object) fail(ALMC_ERR_PARSE, "GMM JSON: the top level must be an object");
  if (!r.duplicate.empty())
    fail(ALMC_ERR_PARSE, "GMM JSON: \"", r.duplicate, "\" is given more than once; give each field once");
  for (const Field* f : {&r.weights, &r.means})
    if (!f->present) fail(ALMC_ERR_PARSE, "GMM JSON: missing \"", f == &r.weights ? "weights" : "means", "\"");
  const bool has_var = r.variances.present, has_std = r.stds.present;
  if (has_var == has_std) fail(ALMC_ERR_PARSE, "GMM JSON: give exactly one of \"variances\" and \"stds\"");
  GmmSpec g;
  Field& w = r.weights;
  if (!w.is_array || w.entries.empty()) fail(ALMC_ERR_PARSE, "GMM JSON: \"weights\" must be a non-empty array");
  g.K = static_cast<int64_t>(w.entries.size());
  double total = 0;
  const float* wv = w.values.data();
  for (int64_t k = 0; k < g.K; ++k) {
    const int64_t e = w.entries[size_t(k)];
    const std::string where = "weights[" + std::to_string(k) + "]";
    if (e != kEntryNumber || k == w.bad_k) {
      if (e != kEntryNumber) fail(ALMC_ERR_PARSE, "GMM JSON: ", where, " is not a number");
      fail_value(w, where);
    }
    const float v = *wv;
    if (v < 0) fail(ALMC_ERR_PARSE, "GMM JSON: weights[", k, "] = ", v, " is negative");
    g.weights.push_back(v);
    total += v;
    ++wv;  // every entry before the first one that is not a number took exactly one slot
  }
  if (!(total > 0)) fail(ALMC_ERR_PARSE, "GMM JSON: the weights sum to zero");
  int64_t d = -1;
  g.means = read_rows(r.means, "means", g.K, d, false);
  g.variances = read_rows(has_var ? r.variances : r.stds, has_var ? "variances" : "stds", g.K, d, true);
  g.d = d;
  for (size_t i = 0; i < g.variances.size(); ++i) {
    float& v = g.variances[i];
    // Checked before squaring: a negative std is as wrong as a negative variance.
    if (v > 0 && has_std) v = v * v;
    if (!(v > 0))
      fail(ALMC_ERR_PARSE, "GMM JSON: ", has_var ? "variance" : "std", " of component ", i / d, ", coordinate ",
           i % d, " must be positive");
  }
  return g;
}

}  // namespace

GmmSpec parse_gmm_json(const std::string& text) {
  Reader r;
  read_events(text.data(), text.data() + text.size(), r);
  return build(r);
}

GmmSpec read_gmm_json(const std::string& path) {
  Reader r;
  try {
    std::vector<unsigned char> bytes;
    try {
      bytes = io::read_regular_file(path, io::kMaxJsonFileBytes);
    } catch (const io::IoError& e) {
      fail(ALMC_ERR_IO, e.what());  // "<path>: <why>", like every other message here
    }
    const char* text = reinterpret_cast<const char*>(bytes.data());
    read_events(text, text + bytes.size(), r);
  } catch (const Error& e) {
    if (e.status() == ALMC_ERR_IO) throw;
    fail(e.status(), path, ": ", e.what());
  }
  // The file's bytes are gone before the arrays are checked and copied.
  try {
    return build(r);
  } catch (const Error& e) {
    fail(e.status(), path, ": ", e.what());
  }
}

}  // namespace almc
