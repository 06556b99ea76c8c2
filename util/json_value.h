// Typed reading of one JSON value of a configuration, with errors that name the dotted key:
//   config key 'run.steps' must be an integer, got string
// Shared by the run configuration (train/config.cpp) and the option tables of the feed-forward
// kinds (monet/options.h), so every config key reads and complains the same way.
#pragma once
#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
#include <string_view>

#include "core/error.h"

namespace monet {

// JSON text, parsed with its nesting limited to kMaxJsonDepth levels (monet::Error beyond). The
// parser itself is iterative, but copying, comparing and dumping a value recurse once per level:
// a config or a safetensors header nested a few thousand levels deep (a 20 KB file) overflowed
// the stack, a crash instead of an error (found by fuzz/). Our files nest four levels at most;
// 128 is the default limit of serde_json, the JSON reader of the reference safetensors.
constexpr int kMaxJsonDepth = 128;
template <class Json = nlohmann::json>
Json parse_json(std::string_view text, bool allow_exceptions = true) {
  typename Json::parser_callback_t limit = [](int depth, typename Json::parse_event_t, Json&) {
    MONET_CHECK(depth <= kMaxJsonDepth, "JSON nested more than {} levels deep", kMaxJsonDepth);
    return true;
  };
  return Json::parse(text, limit, allow_exceptions);
}

// "integer" for whole numbers, JSON's own type name otherwise ("number", "string", "array", ...).
inline std::string json_kind(const nlohmann::json& v) {
  return v.is_number_integer() ? "integer" : v.type_name();
}

inline void read_json_value(const nlohmann::json& v, const std::string& key, int64_t& out) {
  MONET_CHECK(v.is_number_integer(), "config key '{}' must be an integer, got {}", key,
              json_kind(v));
  MONET_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() <= INT64_MAX,
              "config key '{}' is out of range, got {}", key, v.dump());
  out = v.get<int64_t>();
}
inline void read_json_value(const nlohmann::json& v, const std::string& key, uint64_t& out) {
  MONET_CHECK(v.is_number_integer(), "config key '{}' must be an integer, got {}", key,
              json_kind(v));
  MONET_CHECK(v.is_number_unsigned(), "config key '{}' must be non-negative, got {}", key,
              v.dump());
  out = v.get<uint64_t>();
}
inline void read_json_value(const nlohmann::json& v, const std::string& key, double& out) {
  MONET_CHECK(v.is_number(), "config key '{}' must be a number, got {}", key, json_kind(v));
  out = v.get<double>();
}
inline void read_json_value(const nlohmann::json& v, const std::string& key, bool& out) {
  MONET_CHECK(v.is_boolean(), "config key '{}' must be true or false, got {}", key, json_kind(v));
  out = v.get<bool>();
}
inline void read_json_value(const nlohmann::json& v, const std::string& key, std::string& out) {
  MONET_CHECK(v.is_string(), "config key '{}' must be a string, got {}", key, json_kind(v));
  out = v.get<std::string>();
}

// The rule a value broke: "config key 'model.ffn.topk' must be positive, got 0".
template <class T>
void require_config(bool ok, std::string_view key, std::string_view rule, const T& got) {
  MONET_CHECK(ok, "config key '{}' must be {}, got {}", key, rule, got);
}

// JSON text → value, refusing what nlohmann::json accepts silently: a key given twice in one
// object (json::parse keeps the last). Errors start with `what` (a file name): "config
// 'run.json': duplicated key 'run.steps'", "... invalid JSON: <parser message>".
inline nlohmann::json parse_json_strict(const std::string& text, const std::string& what) {
  std::vector<std::vector<std::string>> keys;  // the keys seen in each open object
  std::vector<std::string> path;               // the key of each open object, for the message
  std::string last_key;
  auto check = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    MONET_CHECK(depth <= kMaxJsonDepth, "{}: JSON nested more than {} levels deep", what,
                kMaxJsonDepth);
    if (event == E::object_start) {
      keys.emplace_back();
      path.push_back(last_key);
    } else if (event == E::object_end) {
      keys.pop_back();
      path.pop_back();
    } else if (event == E::key) {
      last_key = parsed.get<std::string>();
      auto& seen = keys.back();
      if (std::find(seen.begin(), seen.end(), last_key) != seen.end()) {
        std::string dotted;
        for (const std::string& p : path)
          if (!p.empty()) dotted += p + ".";
        throw Error(fmt::format("{}: duplicated key '{}'", what, dotted + last_key));
      }
      seen.push_back(last_key);
    } else if (event == E::array_start) {
      last_key.clear();  // objects inside arrays are named by their array's key alone
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, check);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: invalid JSON: {}", what, e.what()));
  }
}

}  // namespace monet
