#include "runtime/deploy_config.hpp"

#include "runtime/deploy_config_reader.hpp"

namespace brd {

std::string to_string(placement p) {
  return p == placement::one ? "one" : "all";
}

namespace {

using namespace toml_reader;

constexpr key_spec github_keys[] = {
  {"api_url", "\"https://api.github.com\""},
  {"token_file", "\"secrets/github-token\""},
  {"webhook_secret_file", "\"secrets/webhook-secret\""},
  {"max_body_bytes", "26214400"},
  {"delivery_ttl_hours", "72"},
  {"public_url", "\"https://edge.example.net:8801\""}};
constexpr key_spec alerts_keys[] = {
  {"url", "\"https://hooks.slack.com/services/...\""}, {"long_build_s", "300"}};
constexpr key_spec settings_keys[] = {
  {"workspace", "\"workspace\""}, {"keep_builds", "5"}, {"max_parallel", "2"},
  {"keep_logs_days", "30"}, {"keep_history_days", "90"}, {"nice", "10"}};
constexpr key_spec repo_keys[] = {
  {"name", "\"blackroad/*\""},
  {"remote", "\"https://github.com/{repo}.git\""},
  {"branches", "[\"main\"]"},
  {"on_tag", "\"ignore\""},
  {"on_branch_delete", "\"ignore\""},
  {"rule", "[[repo.rule]]"}};
constexpr key_spec rule_keys[] = {
  {"paths", "[\"frontend/**\"]"}, {"role", "\"frontend\""},
  {"script", "[\"scripts/deploy.sh\", \"--prod\"]"},
  {"placement", "\"all\""},       {"timeout_s", "600"},
  {"supersede", "false"}};

void get_string(report& out, const scope& s, std::string_view key,
                std::string& into, bool required = false) {
  if (auto v = get<std::string>(out, s, key, required))
    into = *v;
}

template <class Enum>
void get_choice(report& out, const scope& s, std::string_view key, Enum& into,
                std::initializer_list<std::pair<std::string_view, Enum>> choices) {
  auto text = get<std::string>(out, s, key, false);
  if (!text)
    return;
  std::string names;
  for (auto& [name, value] : choices) {
    if (*text == name) {
      into = value;
      return;
    }
    names += (names.empty() ? "" : ", ") + std::string{name};
  }
  out.add(s.line(key), s.key_path(key), cat("unknown value \"", *text, "\""),
          cat("use one of ", names));
}

void read_github(report& out, const scope& root, github_config& g) {
  const auto* table = sub_table(out, root, "github");
  if (!table)
    return;
  scope s{*table, "github", github_keys, "[github]"};
  check_keys(out, s);
  get_string(out, s, "api_url", g.api_url);
  get_string(out, s, "token_file", g.token_file);
  get_string(out, s, "webhook_secret_file", g.webhook_secret_file);
  get_string(out, s, "public_url", g.public_url);
  if (auto v = get_at_least(out, s, "max_body_bytes", 1))
    g.max_body_bytes = static_cast<size_t>(*v);
  if (auto v = get_at_least(out, s, "delivery_ttl_hours", 1))
    g.delivery_ttl = std::chrono::hours{*v};
}

void read_alerts(report& out, const scope& root, alerts_config& a) {
  const auto* table = sub_table(out, root, "alerts");
  if (!table)
    return;
  scope s{*table, "alerts", alerts_keys, "[alerts]"};
  check_keys(out, s);
  get_string(out, s, "url", a.url);
  if (auto v = get_at_least(out, s, "long_build_s", 1))
    a.long_build = std::chrono::seconds{*v};
}

void read_settings(report& out, const scope& root, deploy_settings& d) {
  const auto* table = sub_table(out, root, "deploy");
  if (!table)
    return;
  scope s{*table, "deploy", settings_keys, "[deploy]"};
  check_keys(out, s);
  get_string(out, s, "workspace", d.workspace);
  if (auto v = get_at_least(out, s, "keep_builds", 1))
    d.keep_builds = static_cast<size_t>(*v);
  if (auto v = get_at_least(out, s, "max_parallel", 1))
    d.max_parallel = static_cast<size_t>(*v);
  if (auto v = get_at_least(out, s, "keep_logs_days", 1))
    d.keep_logs = std::chrono::days{*v};
  if (auto v = get_at_least(out, s, "keep_history_days", 1))
    d.keep_history = std::chrono::days{*v};
  if (auto v = get_between(out, s, "nice", 0, 19))
    d.nice = static_cast<int>(*v);
}

std::optional<route_rule> read_rule(report& out, const toml::table& table,
                                    std::string path) {
  scope s{table, std::move(path), rule_keys, "this [[repo.rule]]"};
  auto before = out.size();
  check_keys(out, s);
  route_rule rule;
  if (auto paths = get_strings(out, s, "paths", true))
    rule.paths = *paths;
  get_string(out, s, "role", rule.role, true);
  if (auto script = get_strings(out, s, "script", true)) {
    rule.script = *script;
    if (script->empty())
      out.add(s.line("script"), s.key_path("script"), "the script is empty",
              s.write_like("script"));
  }
  get_choice(out, s, "placement", rule.placement,
             {{"all", placement::all}, {"one", placement::one}});
  if (auto v = get_at_least(out, s, "timeout_s", 1))
    rule.timeout = std::chrono::seconds{*v};
  if (auto v = get<bool>(out, s, "supersede", false))
    rule.supersede = *v;
  if (out.size() != before)
    return std::nullopt;
  return rule;
}

std::optional<repo_config> read_repo(report& out, const toml::table& table,
                                     size_t index) {
  scope s{table, cat("repo[", index, ']'), repo_keys, "this [[repo]]"};
  auto before = out.size();
  check_keys(out, s);
  repo_config repo;
  get_string(out, s, "name", repo.name, true);
  get_string(out, s, "remote", repo.remote, true);
  if (auto branches = get_strings(out, s, "branches", false); branches && !branches->empty())
    repo.branches = *branches;
  get_choice(out, s, "on_tag", repo.on_tag,
             {{"ignore", ref_policy::ignore}, {"deploy", ref_policy::deploy}});
  get_choice(out, s, "on_branch_delete", repo.on_branch_delete,
             {{"ignore", ref_policy::ignore}, {"deploy", ref_policy::deploy}});
  const auto* rules = table.get("rule");
  const auto* items = rules ? rules->as_array() : nullptr;
  if (rules && (!items || !items->is_array_of_tables()))
    out.add(rules->source().begin.line, s.key_path("rule"),
            "expected [[repo.rule]] sections",
            "write each rule as its own [[repo.rule]] section, with double brackets");
  else if (items)
    for (size_t i = 0; i < items->size(); ++i)
      if (auto rule = read_rule(out, *items->get(i)->as_table(),
                                cat(s.path, ".rule[", i, ']')))
        repo.rules.push_back(std::move(*rule));
  if (out.size() != before)
    return std::nullopt;
  return repo;
}

} // namespace

namespace toml_reader {

void read_deploy_config(report& out, const scope& root, deploy_config& cfg) {
  read_github(out, root, cfg.github);
  read_alerts(out, root, cfg.alerts);
  read_settings(out, root, cfg.settings);
  const auto* n = root.table.get("repo");
  if (!n)
    return;
  const auto* items = n->as_array();
  if (!items || !items->is_array_of_tables()) {
    out.add(n->source().begin.line, "repo", "expected [[repo]] sections",
            "write each repository as its own [[repo]] section, with double brackets");
    return;
  }
  for (size_t i = 0; i < items->size(); ++i)
    if (auto repo = read_repo(out, *items->get(i)->as_table(), i))
      cfg.repos.push_back(std::move(*repo));
}

} // namespace toml_reader

} // namespace brd
