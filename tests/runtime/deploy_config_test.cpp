#include <doctest/doctest.h>

#include <string>

#include "runtime/config.hpp"
#include "runtime/errors.hpp"

using namespace brd;

namespace {

const std::string nodes = R"(
[cluster]
name = "t"

[[node]]
name = "edge"
tier = "edge"
roles = ["bridge"]
host = "127.0.0.1"
port = 4801
http_port = 8801
)";

std::string parse_error(const std::string& extra) {
  auto cfg = parse_fleet_config(nodes + extra, "deploy.toml");
  REQUIRE_FALSE(cfg);
  return describe(cfg.error());
}

// One repository with one rule of role `role`; `extra` adds keys to the rule.
std::string one_rule(const std::string& extra, const std::string& role = "frontend",
                     const std::string& script = R"(["s"])") {
  return "\n[[repo]]\nname = \"acme/*\"\nremote = \"x\"\n  [[repo.rule]]\n"
         "  paths = [\"a/**\"]\n  role = \"" + role + "\"\n  script = " + script + "\n" + extra;
}

} // namespace

TEST_CASE("a fleet without deploy sections gets the defaults") {
  auto cfg = parse_fleet_config(nodes, "deploy.toml");
  REQUIRE(cfg);
  CHECK(cfg->deploy.repos.empty());
  CHECK(cfg->deploy.github.api_url == "https://api.github.com");
  CHECK(cfg->deploy.github.max_body_bytes == 25u << 20);
  CHECK(cfg->deploy.settings.keep_builds == 5);
  CHECK(cfg->deploy.settings.keep_logs == std::chrono::days{30});
}

TEST_CASE("repositories, rules and settings are read") {
  auto cfg = parse_fleet_config(nodes + R"(
[github]
api_url = "http://127.0.0.1:9999"
token_file = "token"
webhook_secret_file = "secret"
max_body_bytes = 1000

[alerts]
url = "http://127.0.0.1:9998/alerts"
long_build_s = 30

[deploy]
keep_builds = 3
max_parallel = 4
keep_logs_days = 7
nice = 5

[[repo]]
name = "acme/*"
remote = "file:///srv/git/{repo}.git"
branches = ["main", "release/*"]
on_branch_delete = "deploy"

  [[repo.rule]]
  paths = ["frontend/**", "!frontend/docs/**"]
  role = "frontend"
  script = ["scripts/build.sh", "--prod"]
  placement = "one"
  timeout_s = 60
  supersede = false
)",
                                "deploy.toml");
  REQUIRE(cfg);
  const auto& d = cfg->deploy;
  CHECK(d.github.api_url == "http://127.0.0.1:9999");
  CHECK(d.github.max_body_bytes == 1000);
  CHECK(d.alerts.long_build == std::chrono::seconds{30});
  CHECK(d.settings.max_parallel == 4);
  CHECK(d.settings.keep_logs == std::chrono::days{7});
  CHECK(d.settings.nice == 5);
  REQUIRE(d.repos.size() == 1);
  CHECK(d.repos[0].branches == std::vector<std::string>{"main", "release/*"});
  CHECK(d.repos[0].on_branch_delete == ref_policy::deploy);
  CHECK(d.repos[0].on_tag == ref_policy::ignore);
  REQUIRE(d.repos[0].rules.size() == 1);
  const auto& rule = d.repos[0].rules[0];
  CHECK(rule.paths.size() == 2);
  CHECK(rule.script == std::vector<std::string>{"scripts/build.sh", "--prod"});
  CHECK(rule.placement == placement::one);
  CHECK(rule.timeout == std::chrono::seconds{60});
  CHECK_FALSE(rule.supersede);
}

TEST_CASE("a rule whose script is a string, not an argv array, is refused") {
  auto msg = parse_error(R"(
[[repo]]
name = "acme/*"
remote = "x"
  [[repo.rule]]
  paths = ["a/**"]
  role = "frontend"
  script = "scripts/build.sh --prod"
)");
  INFO(msg);
  CHECK(msg.find("deploy.toml:19: repo[0].rule[0].script: expected an array of strings, found a string") == 0);
  CHECK(msg.find("fix:") != std::string::npos);
}

TEST_CASE("an unknown placement names the choices") {
  auto msg = parse_error(one_rule("  placement = \"some\"\n"));
  CHECK(msg.find("repo[0].rule[0].placement: unknown value \"some\"; fix: use one of all, one")
        != std::string::npos);
}

TEST_CASE("rules supersede by default, and supersede must be true or false") {
  auto cfg = parse_fleet_config(nodes + one_rule(""), "deploy.toml");
  REQUIRE(cfg);
  CHECK(cfg->deploy.repos[0].rules[0].supersede);
  auto msg = parse_error(one_rule("  supersede = \"no\"\n", "tests"));
  CHECK(msg.find("repo[0].rule[0].supersede: expected true or false, found a string")
        != std::string::npos);
}

TEST_CASE("logs are kept for at least a day") {
  auto msg = parse_error("\n[deploy]\nkeep_logs_days = 0\n");
  CHECK(msg.find("deploy.keep_logs_days") != std::string::npos);
  CHECK(msg.find("must be greater than 0") != std::string::npos);
}

TEST_CASE("builds run at nice 10 unless [deploy] nice says another value from 0 to 19") {
  auto cfg = parse_fleet_config(nodes + one_rule(""), "deploy.toml");
  REQUIRE(cfg);
  CHECK(cfg->deploy.settings.nice == 10);
  for (auto bad : {"-1", "20"}) {
    auto msg = parse_error(std::string{"\n[deploy]\nnice = "} + bad + "\n");
    CHECK(msg.find(std::string{"deploy.nice: nice is "} + bad + ", but must be between 0 and 19")
          != std::string::npos);
    CHECK(msg.find("fix: write it like nice = 10") != std::string::npos);
  }
}

TEST_CASE("a misspelt deploy key names the nearest known key") {
  auto msg = parse_error("\n[github]\napi_ulr = \"x\"\n");
  CHECK(msg.find("github.api_ulr: unknown key; fix: did you mean 'api_url'?")
        != std::string::npos);
}

TEST_CASE("a repository without a remote is refused") {
  auto msg = parse_error("\n[[repo]]\nname = \"acme/*\"\n");
  CHECK(msg.find("repo[0].remote: missing required key") != std::string::npos);
}

TEST_CASE("the shipped seed fleet routes the seed's paths") {
  const char* root = std::getenv("BRD_SOURCE_ROOT");
  if (root == nullptr) {
    MESSAGE("BRD_SOURCE_ROOT is not set; skipping the shipped-file check");
    return;
  }
  auto cfg = load_fleet_config(std::string{root} + "/config/fleet.toml");
  REQUIRE(cfg);
  REQUIRE(cfg->deploy.repos.size() == 1);
  CHECK(cfg->deploy.repos[0].rules.size() == 4);
  // Tests run for every commit; deploys may skip to the newest.
  for (const auto& rule : cfg->deploy.repos[0].rules) {
    CAPTURE(rule.role);
    CHECK(rule.supersede == (rule.role != "tests"));
  }
}
