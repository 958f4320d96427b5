#include "runtime/toml_reader.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/errors.hpp"

namespace brd::toml_reader {

void report::add(uint32_t line, std::string_view key, std::string_view what,
                 std::string_view fix) {
  entries_.emplace_back(line, cat(file_, ':', std::max(line, 1u), ": ", key,
                                  ": ", what, "; fix: ", fix));
}

caf::error report::error() {
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string text;
  for (const auto& [line, entry] : entries_)
    text += (text.empty() ? "" : "\n") + entry;
  return make_error(brd_errc::bad_config, std::move(text));
}

std::string scope::key_path(std::string_view key) const {
  return path.empty() ? std::string{key} : cat(path, '.', key);
}

std::string_view scope::example(std::string_view key) const {
  for (const auto& k : keys)
    if (k.key == key)
      return k.example;
  return "...";
}

uint32_t scope::line(std::string_view key) const {
  const auto* n = table.get(key);
  return (n ? n : &table)->source().begin.line;
}

std::string scope::write_like(std::string_view key) const {
  return cat("write it like ", key, " = ", example(key));
}

std::string_view type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

// Optimal string alignment distance: edits plus swaps of neighbours.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i)
    d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j)
    d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

bool knows(std::span<const key_spec> keys, std::string_view key) {
  return std::any_of(keys.begin(), keys.end(), [&](const auto& k) { return k.key == key; });
}

namespace {

std::string unknown_key_fix(const scope& s, std::string_view key,
                            const key_hint& hint) {
  if (hint)
    if (auto special = hint(s, key))
      return *special;
  const key_spec* best = nullptr;
  size_t best_distance = 3;
  for (const auto& k : s.keys)
    if (auto d = edit_distance(key, k.key); d < best_distance && d < key.size())
      best = &k, best_distance = d;
  if (best)
    return cat("did you mean '", best->key, "'?");
  std::string known;
  for (const auto& k : s.keys)
    known += (known.empty() ? "" : ", ") + std::string{k.key};
  return cat("remove it, or use one of ", known);
}

} // namespace

void check_keys(report& out, const scope& s, const key_hint& hint) {
  for (auto&& [key, value] : s.table)
    if (!knows(s.keys, key.str()))
      out.add(key.source().begin.line, s.key_path(key.str()), "unknown key",
              unknown_key_fix(s, key.str(), hint));
}

const toml::node* lookup(report& out, const scope& s, std::string_view key, bool required) {
  const auto* n = s.table.get(key);
  if (!n && required)
    out.add(s.table.source().begin.line, s.key_path(key), "missing required key",
            cat("add ", key, " = ", s.example(key), " to ", s.where));
  return n;
}

void wrong_type(report& out, const scope& s, std::string_view key, const toml::node& n,
                std::string_view expected) {
  out.add(n.source().begin.line, s.key_path(key),
          cat("expected ", expected, ", found ", type_name(n.type())), s.write_like(key));
}

std::optional<int64_t> get_between(report& out, const scope& s, std::string_view key,
                                   int64_t min, int64_t max) {
  auto v = get<int64_t>(out, s, key, false);
  if (!v || (*v >= min && *v <= max))
    return v;
  auto bound = max != std::numeric_limits<int64_t>::max()
                 ? cat("between ", min, " and ", max)
                 : std::string{min > 0 ? "greater than 0" : "0 or more"};
  out.add(s.line(key), s.key_path(key), cat(key, " is ", *v, ", but must be ", bound),
          s.write_like(key));
  return std::nullopt;
}

std::optional<int64_t> get_at_least(report& out, const scope& s, std::string_view key,
                                    int64_t min) {
  return get_between(out, s, key, min, std::numeric_limits<int64_t>::max());
}

void get_duration(report& out, const scope& s, std::string_view key,
                  std::chrono::milliseconds& into, int64_t min) {
  if (auto v = get_at_least(out, s, key, min))
    into = std::chrono::milliseconds{*v};
}

void get_positive(report& out, const scope& s, std::string_view key,
                  double& into) {
  const auto* n = lookup(out, s, key, false);
  if (!n)
    return;
  if (!n->is_number()) {
    wrong_type(out, s, key, *n, "a number");
    return;
  }
  double v = n->value<double>().value_or(0.0);
  if (!std::isfinite(v) || v <= 0)
    out.add(s.line(key), s.key_path(key), cat(key, " is ", v, ", but must be greater than 0"),
            s.write_like(key));
  else
    into = v;
}

void add_pair_problem(report& out, const scope& s, std::string_view first,
                      std::string_view second, std::string_view what, std::string_view fix) {
  auto key = s.table.contains(first) ? first : second;
  out.add(s.line(key), s.key_path(key), what, fix);
}

std::optional<std::vector<std::string>>
get_strings(report& out, const scope& s, std::string_view key, bool required) {
  const auto* n = lookup(out, s, key, required);
  if (!n)
    return required ? std::nullopt : std::optional{std::vector<std::string>{}};
  if (!n->is_array()) {
    wrong_type(out, s, key, *n, "an array of strings");
    return std::nullopt;
  }
  std::vector<std::string> result;
  const auto& items = *n->as_array();
  for (size_t i = 0; i < items.size(); ++i) {
    const auto* item = items.get(i)->as_string();
    if (item && !item->get().empty())
      result.push_back(item->get());
    else
      out.add(items.get(i)->source().begin.line, cat(s.key_path(key), '[', i, ']'),
              item ? "the entry is empty"
                   : cat("expected a string, found ", type_name(items.get(i)->type())),
              s.write_like(key));
  }
  if (result.size() != items.size())
    return std::nullopt;
  return result;
}

const toml::table* sub_table(report& out, const scope& parent, std::string_view key) {
  const auto* n = parent.table.get(key);
  if (n && !n->is_table())
    out.add(n->source().begin.line, parent.key_path(key),
            cat("expected a table, found ", type_name(n->type())),
            cat("write it as a [", parent.key_path(key), "] section"));
  return n ? n->as_table() : nullptr;
}

} // namespace brd::toml_reader
