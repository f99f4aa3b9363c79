// JSON documents read from files (snapshot records, slice records, model.json): parsed with a limit
// on nesting. nlohmann's parser is iterative, but copying, comparing and dumping a value recurse once
// per level, so a document nested ~100k deep (200 KB of brackets) would overflow the stack later.
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace almc::io {

// Deeper than any document almc reads or writes (its records nest 3 levels).
constexpr int kMaxJsonDepth = 128;

struct JsonTooDeep : std::runtime_error {
  JsonTooDeep()
      : std::runtime_error("JSON nested more than " + std::to_string(kMaxJsonDepth) + " levels deep") {}
};

// json::parse over [begin, end) refusing nesting beyond kMaxJsonDepth (JsonTooDeep); other errors
// are nlohmann's exceptions, as from json::parse.
template <class It>
nlohmann::json parse_json_limited(It begin, It end) {
  const nlohmann::json::parser_callback_t limit = [](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    if (depth >= kMaxJsonDepth && (event == nlohmann::json::parse_event_t::object_start ||
                                   event == nlohmann::json::parse_event_t::array_start))
      throw JsonTooDeep();
    return true;
  };
  return nlohmann::json::parse(begin, end, limit);
}

}  // namespace almc::io
