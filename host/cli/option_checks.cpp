// Validators for option values CLI11 would otherwise convert silently (see commands.hpp).
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>

#include "host/cli/commands.hpp"
#include "host/core/parse_count.hpp"

namespace almc::cli {

CLI::Validator seed_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        // Digits only: "-1" would wrap to 2^64 - 1 and values past 2^64 - 1 would saturate, giving
        // different seeds the same samples.
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
          return "must be an integer from 0 to 18446744073709551615, got '" + text + "'";
        uint64_t v = 0;
        if (!parse_count(text, v)) return "must be at most 18446744073709551615, got '" + text + "'";  // digits: only overflow fails
        text = std::to_string(v);  // decimal: CLI11 reads "010" as octal 8 (the options take it as a transform)
        return "";
      },
      "UINT64");
}

namespace {

// The whole of `text` read as a number (NaN and Inf included); false when it is not one or beyond
// double's range.
bool read_number(const std::string& text, double* v) {
  size_t used = 0;
  try {
    *v = std::stod(text, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used > 0 && used == text.size();
}

}  // namespace

CLI::Validator positive_finite_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        if (!read_number(text, &v) || !std::isfinite(v) || !(v > 0))
          return "must be a positive finite number, got '" + text + "'";
        return "";
      },
      "POSITIVE");
}

CLI::Validator finite_number_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double v = 0;
        if (!read_number(text, &v)) return "'" + text + "' is not a number";
        if (!std::isfinite(v)) return "'" + text + "' is not a finite number";
        return "";
      },
      "");
}

CLI::Validator integer_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        // Decimal digits with an optional sign, read as decimal: CLI11 alone reads "010" as 8 and
        // "0x10" as 16, and calls "1e3" or "nan" something it "could not convert".
        const size_t first = text.find_first_not_of(' '), last = text.find_last_not_of(' ');
        const std::string t = first == std::string::npos ? "" : text.substr(first, last - first + 1);
        const size_t digits_at = !t.empty() && (t[0] == '+' || t[0] == '-') ? 1 : 0;
        if (t.size() == digits_at || t.find_first_not_of("0123456789", digits_at) != std::string::npos)
          return "'" + text + "' is not an integer";
        // CLI11 would saturate it to 2^63 - 1 and report that number.
        uint64_t v = 0;
        if (!parse_count(t.substr(digits_at), v) || v > uint64_t(INT64_MAX))
          return "'" + text + "' is too large (at most " + std::to_string(INT64_MAX) + ")";
        text = (t[0] == '-' ? "-" : "") + std::to_string(v);
        return "";
      },
      "");
}

void check_numbers(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands({})) {
    check_numbers(*sub);
    for (CLI::Option* opt : sub->get_options()) {
      const std::string type = opt->get_type_name();
      if (type.rfind("FLOAT", 0) == 0) opt->check(finite_number_check());
      if (type.rfind("INT", 0) == 0) opt->transform(integer_check());
    }
  }
}

}  // namespace almc::cli
