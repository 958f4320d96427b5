// Fleet file loader. Every problem found becomes one line of the form
//   FILE:LINE: KEY: WHAT; fix: HOW
// (a TOML syntax error is FILE:LINE:COLUMN: ...). All problems of a file are
// reported at once, sorted by line, joined by '\n' in one bad_config error.
// KEY is a toml++ path: node[3] is the fourth [[node]] (indexes start at 0).
#include "runtime/config.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <utility>

#include <toml++/toml.h>

#include "runtime/deploy_config_reader.hpp"
#include "runtime/toml_reader.hpp"

#include "runtime/errors.hpp"

namespace brd {
namespace {

using namespace toml_reader;

constexpr key_spec root_keys[] = {
  {"cluster", "[cluster]"}, {"tls", "[tls]"},       {"node", "[[node]]"},
  {"github", "[github]"},   {"alerts", "[alerts]"}, {"deploy", "[deploy]"},
  {"repo", "[[repo]]"}};
constexpr key_spec cluster_keys[] = {
  {"name", "\"blackroad\""},       {"heartbeat_interval_ms", "200"},
  {"sample_interval_ms", "1000"},  {"phi_suspect", "3.0"},
  {"phi_threshold", "8.0"},        {"min_std_dev_ms", "100"},
  {"acceptable_pause_ms", "300"},  {"window", "100"},
  {"connect_timeout_ms", "1000"},  {"backoff_min_ms", "100"},
  {"backoff_max_ms", "5000"},       {"log_keep", "100000"},
  {"replication_backlog", "1024"}};
constexpr key_spec tls_keys[] = {
  {"ca", "\"certs/ca.pem\""}, {"cert", "\"certs/{name}.pem\""}, {"key", "\"certs/{name}.key\""}};
constexpr key_spec node_keys[] = {
  {"name", "\"lucidia\""}, {"tier", "\"pi\""},  {"roles", "[\"ops\"]"},
  {"host", "\"192.168.4.38\""}, {"port", "4801"}, {"http_port", "8801"}};

// Keys that belong to another table get a "move it" fix.
std::optional<std::string> misplaced_key(const scope& s, std::string_view key) {
  if (s.path.empty() && knows(cluster_keys, key))
    return cat("move it under [cluster]");
  if (s.path.empty() && knows(node_keys, key))
    return cat("move it into a [[node]] section");
  return std::nullopt;
}

void read_detector(report& out, const scope& s, detector_config& d) {
  get_duration(out, s, "heartbeat_interval_ms", d.heartbeat_interval);
  get_duration(out, s, "sample_interval_ms", d.sample_interval);
  get_duration(out, s, "min_std_dev_ms", d.min_std_dev);
  get_duration(out, s, "acceptable_pause_ms", d.acceptable_pause, 0);
  get_duration(out, s, "connect_timeout_ms", d.connect_timeout);
  if (auto v = get_at_least(out, s, "window", 1))
    d.window = static_cast<size_t>(*v);
  auto before = out.size();
  get_duration(out, s, "backoff_min_ms", d.backoff_min);
  get_duration(out, s, "backoff_max_ms", d.backoff_max);
  if (out.size() == before && d.backoff_min > d.backoff_max)
    add_pair_problem(out, s, "backoff_min_ms", "backoff_max_ms",
                     cat("backoff_min_ms (", d.backoff_min.count(),
                         ") is above backoff_max_ms (", d.backoff_max.count(), ")"),
                     "make backoff_min_ms at most backoff_max_ms");
  before = out.size();
  get_positive(out, s, "phi_suspect", d.phi_suspect);
  get_positive(out, s, "phi_threshold", d.phi_threshold);
  if (out.size() == before && d.phi_suspect >= d.phi_threshold)
    add_pair_problem(out, s, "phi_suspect", "phi_threshold",
                     cat("phi_suspect (", d.phi_suspect, ") is not below phi_threshold (",
                         d.phi_threshold, ")"),
                     "make phi_suspect smaller than phi_threshold, e.g. 3.0 and 8.0");
}

bool is_valid_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

std::optional<std::string> get_name(report& out, const scope& s) {
  auto name = get<std::string>(out, s, "name", true);
  if (!name || is_valid_name(*name))
    return name;
  out.add(s.line("name"), s.key_path("name"), cat("\"", *name, "\" is not a valid name"),
          "use only lowercase letters a-z, digits and '-'");
  return std::nullopt;
}

void read_cluster(report& out, const scope& root, fleet_config& fleet) {
  const auto* table = sub_table(out, root, "cluster");
  if (!table) {
    if (!root.table.contains("cluster"))
      out.add(root.table.source().begin.line, "cluster", "missing section [cluster]",
              "add a [cluster] section with name = \"blackroad\"");
    return;
  }
  scope s{*table, "cluster", cluster_keys, "[cluster]"};
  check_keys(out, s, misplaced_key);
  if (auto name = get_name(out, s))
    fleet.cluster = *name;
  read_detector(out, s, fleet.detector);
  if (auto keep = get_at_least(out, s, "log_keep", 1))
    fleet.log_keep = static_cast<uint64_t>(*keep);
  if (auto backlog = get_at_least(out, s, "replication_backlog", 0))
    fleet.replication_backlog = static_cast<uint64_t>(*backlog);
}

void check_placeholders(report& out, const scope& s, std::string_view key,
                        std::string_view value) {
  for (auto open = value.find('{'); open != std::string_view::npos;
       open = value.find('{', open + 1)) {
    auto close = value.find('}', open);
    auto word = value.substr(open, close == std::string_view::npos ? close : close - open + 1);
    if (word != "{name}")
      out.add(s.line(key), s.key_path(key), cat("unknown placeholder \"", word, "\""),
              "use {name}, which becomes each node's name");
  }
}

void read_tls(report& out, const scope& root, tls_config& tls) {
  const auto* table = sub_table(out, root, "tls");
  if (!table)
    return;
  scope s{*table, "tls", tls_keys, "[tls]"};
  check_keys(out, s, misplaced_key);
  std::string* fields[] = {&tls.ca, &tls.cert, &tls.key};
  std::vector<std::string_view> given, missing;
  for (size_t i = 0; i < 3; ++i) {
    auto key = tls_keys[i].key;
    (s.table.contains(key) ? given : missing).push_back(key);
    auto value = get<std::string>(out, s, key, false);
    if (value && value->empty())
      out.add(s.line(key), s.key_path(key), "the path is empty", s.write_like(key));
    if (value && !value->empty()) {
      check_placeholders(out, s, key, *value);
      *fields[i] = *value;
    }
  }
  if (given.empty())
    return;
  for (auto key : missing)
    out.add(table->source().begin.line, s.key_path(key),
            cat("[tls] sets ", given.front(), " but not ", key),
            "set all three of ca, cert and key, or remove [tls] to run without TLS");
}

std::optional<tier> get_tier(report& out, const scope& s) {
  auto text = get<std::string>(out, s, "tier", true);
  if (!text)
    return std::nullopt;
  for (auto t : {tier::edge, tier::backup, tier::pi})
    if (*text == to_string(t))
      return t;
  out.add(s.line("tier"), s.key_path("tier"), cat("unknown tier \"", *text, "\""),
          "use one of edge, backup, pi");
  return std::nullopt;
}

std::optional<std::vector<std::string>> get_roles(report& out, const scope& s) {
  return get_strings(out, s, "roles", false);
}

std::optional<uint16_t> get_port(report& out, const scope& s, std::string_view key) {
  auto port = get<int64_t>(out, s, key, true);
  if (port && (*port < 1 || *port > 65535)) {
    out.add(s.line(key), s.key_path(key), cat("port ", *port, " is out of range"),
            "use a port between 1 and 65535");
    return std::nullopt;
  }
  return port ? std::optional{static_cast<uint16_t>(*port)} : std::nullopt;
}

// A node that passed every per-field check, kept with its table for messages.
struct node_entry {
  node_config config;
  const toml::table* table;
  std::string path;
};

std::optional<node_entry> read_node(report& out, const toml::table& table, size_t index) {
  scope s{table, cat("node[", index, ']'), node_keys, "this [[node]]"};
  auto before = out.size();
  check_keys(out, s, misplaced_key);
  auto name = get_name(out, s);
  auto t = get_tier(out, s);
  auto roles = get_roles(out, s);
  auto host = get<std::string>(out, s, "host", true);
  if (host && (host->empty() || host->find_first_of(" \t") != std::string::npos))
    out.add(s.line("host"), s.key_path("host"), cat("\"", *host, "\" is not a host"),
            s.write_like("host"));
  auto port = get_port(out, s, "port");
  auto http_port = get_port(out, s, "http_port");
  if (out.size() != before)
    return std::nullopt;
  return node_entry{{*name, *t, *roles, *host, *port, *http_port}, &table, s.path};
}

std::vector<node_entry> read_nodes(report& out, const scope& root) {
  const auto* n = root.table.get("node");
  const auto* items = n ? n->as_array() : nullptr;
  if (!n || (items && items->empty())) {
    out.add(n ? n->source().begin.line : root.table.source().begin.line, "node",
            "the fleet has no nodes",
            "add a [[node]] section with name, tier, host, port and http_port for each machine");
    return {};
  }
  if (!items || !items->is_array_of_tables()) {
    out.add(n->source().begin.line, "node",
            cat("expected [[node]] sections, found ", type_name(n->type())),
            "write each machine as its own [[node]] section, with double brackets");
    return {};
  }
  std::vector<node_entry> nodes;
  for (size_t i = 0; i < items->size(); ++i)
    if (auto entry = read_node(out, *items->get(i)->as_table(), i))
      nodes.push_back(std::move(*entry));
  return nodes;
}

uint32_t line_of(const node_entry& e, std::string_view key) {
  return e.table->get(key)->source().begin.line;
}

void check_duplicates(report& out, const std::vector<node_entry>& nodes) {
  std::map<std::string, const node_entry*> names;
  std::map<std::pair<std::string, uint16_t>, std::pair<const node_entry*, std::string_view>> ports;
  for (const auto& e : nodes) {
    auto [first, fresh] = names.emplace(e.config.name, &e);
    if (!fresh)
      out.add(line_of(e, "name"), e.path + ".name",
              cat("duplicate node name \"", e.config.name, "\", already used by ",
                  first->second->path, " at line ", line_of(*first->second, "name")),
              "give every node its own name");
    for (std::string_view key : {"port", "http_port"}) {
      auto number = key == "port" ? e.config.port : e.config.http_port;
      auto [other, free] = ports.try_emplace({e.config.host, number}, &e, key);
      if (free)
        continue;
      const auto& [owner, owner_key] = other->second;
      auto who = owner == &e ? cat("node \"", e.config.name, "\" uses")
                             : cat("nodes \"", e.config.name, "\" and \"", owner->config.name,
                                   "\" both use");
      out.add(line_of(e, key), cat(e.path, '.', key),
              cat(who, " port ", number, " on ", e.config.host, " (", owner->path, '.',
                  owner_key, " at line ", line_of(*owner, owner_key), ")"),
              "give each port and http_port on one host its own number");
    }
  }
}

caf::error syntax_error(const std::string& origin, const toml::parse_error& err) {
  const auto& where = err.source().begin;
  return make_error(brd_errc::bad_config,
                    cat(origin, ':', where.line, ':', where.column,
                        ": TOML syntax error: ", err.description(),
                        "; fix: correct the TOML at line ", where.line, ", column ",
                        where.column));
}

} // namespace

std::string to_string(tier t) {
  switch (t) {
    case tier::edge: return "edge";
    case tier::backup: return "backup";
    case tier::pi: return "pi";
  }
  return "unknown";
}

const node_config* fleet_config::find(const node_name& name) const {
  auto i = std::find_if(nodes.begin(), nodes.end(),
                        [&](const node_config& n) { return n.name == name; });
  return i == nodes.end() ? nullptr : &*i;
}

caf::expected<fleet_config> parse_fleet_config(const std::string& text,
                                               const std::string& origin) {
  toml::table root;
#if TOML_EXCEPTIONS
  try {
    root = toml::parse(std::string_view{text}, std::string_view{origin});
  } catch (const toml::parse_error& err) {
    return syntax_error(origin, err);
  }
#else
  toml::parse_result result = toml::parse(std::string_view{text}, std::string_view{origin});
  if (!result)
    return syntax_error(origin, result.error());
  root = std::move(result).table();
#endif
  report out{origin};
  scope top{root, "", root_keys, "the file"};
  check_keys(out, top, misplaced_key);
  fleet_config fleet;
  fleet.file = origin;
  read_cluster(out, top, fleet);
  read_tls(out, top, fleet.tls);
  auto nodes = read_nodes(out, top);
  check_duplicates(out, nodes);
  read_deploy_config(out, top, fleet.deploy);
  if (out.size() > 0)
    return out.error();
  for (auto& e : nodes)
    fleet.nodes.push_back(std::move(e.config));
  return fleet;
}

caf::expected<fleet_config> load_fleet_config(const std::string& path) {
  auto unreadable = [&](std::string_view why) {
    return make_error(brd_errc::bad_config,
                      cat(path, ": cannot read the fleet file: ", why,
                          "; fix: pass the path of a readable .toml file with --config or "
                          "BRNODE_CONFIG"));
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return unreadable("it is a directory");
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return unreadable(std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return unreadable(std::strerror(errno));
  return parse_fleet_config(text.str(), path);
}

tls_config resolve_tls(const fleet_config& fleet, const node_name& self) {
  if (!fleet.tls.enabled())
    return {};
  auto dir = std::filesystem::path{fleet.file}.parent_path();
  auto resolve = [&](std::string p) {
    for (auto at = p.find("{name}"); at != std::string::npos; at = p.find("{name}", at))
      p.replace(at, 6, self), at += self.size();
    std::filesystem::path path{p};
    return (path.is_relative() ? dir / path : path).lexically_normal().string();
  };
  return {resolve(fleet.tls.ca), resolve(fleet.tls.cert), resolve(fleet.tls.key)};
}

} // namespace brd
