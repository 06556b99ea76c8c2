// The options of a feed-forward kind, declared once. Each field names its JSON key (model.ffn.KEY
// of the run configuration), the member of the kind's Options struct it fills, its default (which
// may depend on the model width d), the rule a value must satisfy, and a line of help. Config
// parsing, model building, `monet table`, `--help` and the tests read these tables: the Options
// structs themselves carry no defaults, so no default can be stated twice.
//
//   const std::vector<Field<PeerOptions>> fields = {
//       int_field("sqrt_n", &PeerOptions::sqrt_n, d_over(2), 2, "√N sub-keys per half"),
//       choice_field("score", &PeerOptions::score, PeerScore::Softmax,
//                    {PeerScore::Softmax, PeerScore::Sigmoid}, peer_score_name, "s of Eq. 2"),
//   };
//   PeerOptions o = options_at(fields, 128);       // every default at d = 128
//   PeerOptions p = read_options(fields, j, 128, "model.ffn");  // JSON -> checked options
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/json_value.h"

namespace monet::moe {

// What --help and the docs show of one field.
struct FieldInfo {
  std::string key, type, default_text, rule, help;
};

template <class O>
struct Field {
  FieldInfo info;
  std::function<void(O&, int64_t d)> set_default;
  // Reads and checks one JSON value into the member; errors name `dotted`.
  std::function<void(O&, const nlohmann::json&, const std::string& dotted)> read;
  std::function<nlohmann::json(const O&)> write;
};

// An integer default: a constant, or a function of the model width d.
struct IntDefault {
  std::function<int64_t(int64_t d)> at;
  std::string text;
};
inline IntDefault fixed(int64_t v) {
  return {[v](int64_t) { return v; }, std::to_string(v)};
}
inline IntDefault d_over(int64_t k) {  // d / k
  return {[k](int64_t d) { return d / k; }, fmt::format("d/{}", k)};
}
inline IntDefault d_times(int64_t k) {  // k · d
  return {[k](int64_t d) {
            // model.d is only checked positive: a huge one made k·d overflow, undefined behaviour
            // (found by fuzz/fuzz_config.cpp).
            require_config(
                d <= INT64_MAX / k, "model.d",
                fmt::format("at most {} for the default {}·d of this ffn kind", INT64_MAX / k, k),
                d);
            return k * d;
          },
          fmt::format("{}·d", k)};
}

inline std::string at_least_text(double lo) {
  return lo == 1 ? "positive" : lo == 0 ? "non-negative" : fmt::format(">= {}", lo);
}

// An integer >= lo (lo = 1: "positive", lo = 0: "non-negative").
template <class O>
Field<O> int_field(std::string key, int64_t O::*m, IntDefault def, int64_t lo, std::string help) {
  const std::string rule = at_least_text(static_cast<double>(lo));
  return {{std::move(key), "integer", def.text, rule, std::move(help)},
          [m, at = def.at](O& o, int64_t d) { o.*m = at(d); },
          [m, lo, rule](O& o, const nlohmann::json& v, const std::string& dotted) {
            read_json_value(v, dotted, o.*m);
            require_config(o.*m >= lo, dotted, rule, o.*m);
          },
          [m](const O& o) { return nlohmann::json(o.*m); }};
}

// A number >= lo.
template <class O>
Field<O> number_field(std::string key, double O::*m, double def, double lo, std::string help) {
  const std::string rule = at_least_text(lo);
  return {{std::move(key), "number", fmt::format("{}", def), rule, std::move(help)},
          [m, def](O& o, int64_t) { o.*m = def; },
          [m, lo, rule](O& o, const nlohmann::json& v, const std::string& dotted) {
            read_json_value(v, dotted, o.*m);
            require_config(o.*m >= lo, dotted, rule, o.*m);
          },
          [m](const O& o) { return nlohmann::json(o.*m); }};
}

// A switch, written 0 or 1 in JSON (the format of the checkpoints written so far).
template <class O>
Field<O> flag_field(std::string key, bool O::*m, bool def, std::string help) {
  return {{std::move(key), "0|1", def ? "1" : "0", "0 or 1", std::move(help)},
          [m, def](O& o, int64_t) { o.*m = def; },
          [m](O& o, const nlohmann::json& v, const std::string& dotted) {
            int64_t i = 0;
            read_json_value(v, dotted, i);
            require_config(i == 0 || i == 1, dotted, "0 or 1", i);
            o.*m = i == 1;
          },
          [m](const O& o) { return nlohmann::json(o.*m ? 1 : 0); }};
}

// One of an enum's values, written as its name (`name` is the enum's one string table).
template <class O, class E>
Field<O> choice_field(std::string key, E O::*m, E def, std::vector<E> allowed,
                      std::string (*name)(E), std::string help) {
  std::vector<std::string> names(allowed.size());
  std::transform(allowed.begin(), allowed.end(), names.begin(), name);
  const std::string type = fmt::format("{}", fmt::join(names, "|"));
  return {{std::move(key), type, name(def), "one of " + type, std::move(help)},
          [m, def](O& o, int64_t) { o.*m = def; },
          [m, allowed, name, type](O& o, const nlohmann::json& v, const std::string& dotted) {
            std::string s;
            read_json_value(v, dotted, s);
            for (E e : allowed) {
              if (name(e) == s) {
                o.*m = e;
                return;
              }
            }
            require_config(false, dotted, "one of " + type, fmt::format("'{}'", s));
          },
          [m, name](const O& o) { return nlohmann::json(name(o.*m)); }};
}

// Every default at model width d (and o.d = d); members that are not fields come from `base`.
template <class O>
O options_at(const std::vector<Field<O>>& fields, int64_t d, O base = O{}) {
  O o = base;
  o.d = d;
  for (const Field<O>& f : fields) f.set_default(o, d);
  return o;
}

// The options of `given` (an object of these keys; a key not in `fields` is an error), defaults
// for the missing keys, each value checked, then the Options' own cross-field validate().
template <class O>
O read_options(const std::vector<Field<O>>& fields, const nlohmann::json& given, int64_t d,
               const std::string& path, O base = O{}) {
  MONET_CHECK(given.is_object(), "config key '{}' must be an object, got {}", path,
              json_kind(given));
  O o = options_at(fields, d, base);
  for (const auto& [k, v] : given.items()) {
    bool known = false;
    for (const Field<O>& f : fields) {
      if (f.info.key == k) {
        f.read(o, v, path + "." + k);
        known = true;
      }
    }
    MONET_CHECK(known, "unknown config key '{}.{}'", path, k);
  }
  o.validate();
  return o;
}

// Every key of `o`, in declaration order.
template <class O>
nlohmann::json write_options(const std::vector<Field<O>>& fields, const O& o) {
  nlohmann::json j = nlohmann::json::object();
  for (const Field<O>& f : fields) j[f.info.key] = f.write(o);
  return j;
}

}  // namespace monet::moe
