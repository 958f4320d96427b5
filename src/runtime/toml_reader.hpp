// A reader for TOML tables that collects problems instead of stopping at
// the first: each problem is one line "FILE:LINE: KEY: WHAT; fix: HOW".
// The fleet config (runtime/config.cpp) describes its tables with key_specs
// and reads them through these helpers. Internal to src/runtime.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <toml++/toml.h>

namespace brd::toml_reader {

// A key a table accepts, with the example that fixes show.
struct key_spec {
  std::string_view key;
  std::string_view example;
};

template <class... Ts>
std::string cat(const Ts&... xs) {
  std::ostringstream out;
  (out << ... << xs);
  return out.str();
}

// Collects problems; one line each, in the documented format.
class report {
public:
  explicit report(std::string file) : file_(std::move(file)) {}

  void add(uint32_t line, std::string_view key, std::string_view what,
           std::string_view fix);
  size_t size() const { return entries_.size(); }
  // All problems, sorted by line, as one bad_config error.
  caf::error error();

private:
  std::string file_;
  std::vector<std::pair<uint32_t, std::string>> entries_;
};

// One TOML table being read: its path for messages and the keys it accepts.
struct scope {
  const toml::table& table;
  std::string path;   // "cluster", "node[2]"; empty for the root
  std::span<const key_spec> keys;
  std::string where;  // how a fix names the table: "[cluster]", "this [[node]]"

  std::string key_path(std::string_view key) const;
  std::string_view example(std::string_view key) const;
  uint32_t line(std::string_view key) const;
  std::string write_like(std::string_view key) const;
};

std::string_view type_name(toml::node_type t);

// Optimal string alignment distance: edits plus swaps of neighbours.
size_t edit_distance(std::string_view a, std::string_view b);

bool knows(std::span<const key_spec> keys, std::string_view key);

// A fix for an unknown key that the caller knows better than "did you
// mean" (e.g. "move it under [cluster]"); nullopt to use the default.
using key_hint = std::function<std::optional<std::string>(const scope&, std::string_view)>;

// Reports every key of the table that the scope does not accept, with the
// nearest known key or the list of known keys as the fix.
void check_keys(report& out, const scope& s, const key_hint& hint = {});

const toml::node* lookup(report& out, const scope& s, std::string_view key,
                         bool required);

void wrong_type(report& out, const scope& s, std::string_view key,
                const toml::node& n, std::string_view expected);

// The value of `key` if it has type T (std::string, int64_t or bool).
template <class T>
std::optional<T> get(report& out, const scope& s, std::string_view key, bool required) {
  const auto* n = lookup(out, s, key, required);
  if (n && n->is<T>())
    return n->as<T>()->get();
  if (n)
    wrong_type(out, s, key, *n,
               std::is_same_v<T, std::string> ? "a string"
               : std::is_same_v<T, bool>      ? "true or false"
                                              : "an integer");
  return std::nullopt;
}

// A list of non-empty strings; an absent optional key is an empty list.
std::optional<std::vector<std::string>>
get_strings(report& out, const scope& s, std::string_view key, bool required);

// A sub-table of `parent`; reports it when it has the wrong type.
const toml::table* sub_table(report& out, const scope& parent, std::string_view key);

// An optional integer value of at least `min` (0 or 1).
std::optional<int64_t> get_at_least(report& out, const scope& s,
                                    std::string_view key, int64_t min);

// An optional integer value from `min` to `max`.
std::optional<int64_t> get_between(report& out, const scope& s, std::string_view key,
                                   int64_t min, int64_t max);

void get_duration(report& out, const scope& s, std::string_view key,
                  std::chrono::milliseconds& into, int64_t min = 1);

// An optional positive number (integer or float).
void get_positive(report& out, const scope& s, std::string_view key, double& into);

// A problem between two keys, reported at the one the file sets (the first
// when it sets both).
void add_pair_problem(report& out, const scope& s, std::string_view first,
                      std::string_view second, std::string_view what,
                      std::string_view fix);

} // namespace brd::toml_reader
