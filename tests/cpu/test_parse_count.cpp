// The one decimal-integer reader (host/core/parse_count.hpp) behind the CLI's integer options, its
// seeds, --chain-range and the counts read from environment variables and files.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "host/core/parse_count.hpp"

namespace {

using almc::Decimal;
using almc::DecimalPolicy;
using almc::DecimalRead;

DecimalRead read(const std::string& text, const DecimalPolicy& p, std::string* value = nullptr) {
  Decimal d;
  const DecimalRead r = almc::read_decimal(text, p, d);
  if (value && r == DecimalRead::ok) *value = d.str();
  return r;
}

TEST(ParseCount, DigitsOnlyWithinUint64) {
  uint64_t v = 7;
  EXPECT_TRUE(almc::parse_count("0", v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(almc::parse_count("010", v));
  EXPECT_EQ(v, 10u);  // decimal, not octal
  EXPECT_TRUE(almc::parse_count("18446744073709551615", v));
  EXPECT_EQ(v, UINT64_MAX);
  for (const char* bad : {"", "18446744073709551616", "-1", "+1", " 1", "1 ", "0x10", "1e3", "nan", "1.5"})
    EXPECT_FALSE(almc::parse_count(bad, v)) << bad;
}

TEST(ParseCount, SignAndRangeArePolicy) {
  const DecimalPolicy any{true, INT64_MIN, uint64_t(INT64_MAX)}, threads{true, 0, 1024}, no_sign{false, 0, 100};
  std::string v;
  EXPECT_EQ(read("-9223372036854775808", any, &v), DecimalRead::ok);
  EXPECT_EQ(v, "-9223372036854775808");
  EXPECT_EQ(read("-9223372036854775809", any), DecimalRead::out_of_range);
  EXPECT_EQ(read("9223372036854775808", any), DecimalRead::out_of_range);
  EXPECT_EQ(read("99999999999999999999999", any), DecimalRead::out_of_range);
  EXPECT_EQ(read("99999999999999999999999x", any), DecimalRead::not_decimal);  // a non-digit named as such
  EXPECT_EQ(read("+010", any, &v), DecimalRead::ok);
  EXPECT_EQ(v, "10");
  EXPECT_EQ(read("-0", threads, &v), DecimalRead::ok);
  EXPECT_EQ(v, "0");
  EXPECT_EQ(read("-1", threads), DecimalRead::out_of_range);
  EXPECT_EQ(read("1025", threads), DecimalRead::out_of_range);
  EXPECT_EQ(read("99999999999", threads), DecimalRead::out_of_range);
  EXPECT_EQ(read("1024", threads), DecimalRead::ok);
  EXPECT_EQ(read("+5", no_sign), DecimalRead::not_decimal);
  EXPECT_EQ(read("-", any), DecimalRead::not_decimal);
  EXPECT_EQ(read("101", no_sign), DecimalRead::out_of_range);
  const DecimalPolicy from_three{false, 3, 10};
  EXPECT_EQ(read("2", from_three), DecimalRead::out_of_range);
  EXPECT_EQ(read("3", from_three), DecimalRead::ok);
}

}  // namespace
