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
        Decimal v;
        switch (read_decimal(text, DecimalPolicy{}, v)) {
          case DecimalRead::not_decimal: return "must be an integer from 0 to 18446744073709551615, got '" + text + "'";
          case DecimalRead::out_of_range: return "must be at most 18446744073709551615, got '" + text + "'";
          case DecimalRead::ok: break;
        }
        text = v.str();  // decimal: CLI11 reads "010" as octal 8 (the options take it as a transform)
        return "";
      },
      "[0, 2^64-1]");  // the help's label: UINT:[0, 2^64-1]=0
}

namespace {

// The name integer_check's validators carry (check_numbers leaves options that have one alone).
const char* const kIntegerCheck = "almc-integer";

bool has_integer_check(CLI::Option& opt) {
  try {
    opt.get_validator(kIntegerCheck);
    return true;
  } catch (const CLI::OptionNotFound&) {
    return false;
  }
}

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

CLI::Validator integer_check(int64_t min, int64_t max) {
  CLI::Validator v(
      [min, max](std::string& text) -> std::string {
        // Decimal digits with an optional sign, read as decimal: CLI11 alone reads "010" as 8 and
        // "0x10" as 16, calls "1e3" or "nan" something it "could not convert", saturates values
        // beyond 64 bits to 2^63 - 1, and says "could not convert" for a value beyond an int.
        const size_t first = text.find_first_not_of(' '), last = text.find_last_not_of(' ');
        const std::string t = first == std::string::npos ? "" : text.substr(first, last - first + 1);
        Decimal d;
        switch (read_decimal(t, DecimalPolicy{true, min, uint64_t(max)}, d)) {
          case DecimalRead::not_decimal: return "'" + text + "' is not an integer";
          case DecimalRead::out_of_range: {
            const bool below = !t.empty() && t[0] == '-';
            const std::string range = min <= INT32_MIN   ? "at most " + std::to_string(max)
                                      : max >= INT32_MAX ? "at least " + std::to_string(min)
                                                         : "from " + std::to_string(min) + " to " + std::to_string(max);
            return "'" + text + "' is too " + (below ? "small" : "large") + " (" + range + ")";
          }
          case DecimalRead::ok: break;
        }
        text = d.str();
        return "";
      },
      min > INT32_MIN && max < INT32_MAX ? "[" + std::to_string(min) + ", " + std::to_string(max) + "]" : "");
  v.name(kIntegerCheck);
  return v;
}

CLI::Validator non_empty_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        // `--y ""` (an unset shell variable) read as "not given" sampled the prior with exit 0.
        return text.empty() ? "the value is empty (give one, or omit the option for its default)" : "";
      },
      "");
}

void check_numbers(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands({})) {
    check_numbers(*sub);
    for (CLI::Option* opt : sub->get_options()) {
      const std::string type = opt->get_type_name();
      if (type.rfind("TEXT", 0) == 0) opt->check(non_empty_check());
      if (type.rfind("FLOAT", 0) == 0) opt->check(finite_number_check());
      // An option given its own range (an int's, or a narrower one) keeps it.
      if (type.rfind("INT", 0) == 0 && !has_integer_check(*opt)) opt->transform(integer_check());
    }
  }
}

}  // namespace almc::cli
