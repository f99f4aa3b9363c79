// Validators for option values CLI11 would otherwise convert silently (see commands.hpp).
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>

#include "host/cli/commands.hpp"

namespace almc::cli {

CLI::Validator seed_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        // Digits only: "-1" would wrap to 2^64 - 1 and values past 2^64 - 1 would saturate, giving
        // different seeds the same samples.
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
          return "must be an integer from 0 to 18446744073709551615, got '" + text + "'";
        const std::string max = "18446744073709551615";
        const std::string digits = text.substr(std::min(text.find_first_not_of('0'), text.size() - 1));
        if (digits.size() > max.size() || (digits.size() == max.size() && digits > max))
          return "must be at most 18446744073709551615, got '" + text + "'";
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

void check_numbers(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands({})) {
    check_numbers(*sub);
    for (CLI::Option* opt : sub->get_options())
      if (opt->get_type_name().rfind("FLOAT", 0) == 0) opt->check(finite_number_check());
  }
}

}  // namespace almc::cli
