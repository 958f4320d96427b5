// The push-to-deploy part of the fleet config: where GitHub's API is, which
// repositories deploy, and how their changed paths route to roles.
//
//   [github]   api_url, token_file, webhook_secret_file, max_body_bytes,
//              delivery_ttl_hours, public_url
//   [alerts]   url, long_build_s
//   [deploy]   workspace, keep_builds, max_parallel, keep_logs_days,
//              keep_history_days, nice (0-19, of git and the role scripts)
//   [[repo]]   name (glob on owner/repo), remote ("{repo}" -> owner/repo),
//              branches (globs), on_tag, on_branch_delete ("ignore"|"deploy")
//   [[repo.rule]] paths (globs, "!" negates), role, script (argv array),
//              placement ("all"|"one"), timeout_s, supersede
//
// Secrets are never in the file itself, only the paths of files holding them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace brd {

enum class placement : uint8_t {
  all, // every live node of the role
  one, // the least-loaded healthy node of the role
};

enum class ref_policy : uint8_t { ignore, deploy };

struct route_rule {
  std::vector<std::string> paths;  // globs; a leading '!' excludes
  std::string role;
  std::vector<std::string> script; // argv, run in the checkout; never a shell string
  brd::placement placement = placement::all;
  std::chrono::seconds timeout{600};
  // A newer push of the same repository and ref replaces this role's task
  // still queued on a node, or still waiting on the edge to be sent to it
  // ("superseded", counted as success). False for
  // roles whose every commit must run, such as tests: an untested commit
  // must not get a green status.
  bool supersede = true;
};

struct repo_config {
  std::string name;                 // glob on "owner/repo"
  std::string remote;               // fetch URL; "{repo}" -> owner/repo
  std::vector<std::string> branches{"*"}; // globs on branch names
  ref_policy on_tag = ref_policy::ignore;
  ref_policy on_branch_delete = ref_policy::ignore;
  std::vector<route_rule> rules;
};

struct github_config {
  std::string api_url = "https://api.github.com";
  std::string token_file;           // empty: statuses are not posted
  std::string webhook_secret_file;  // required on nodes with the "bridge" role
  size_t max_body_bytes = 25u << 20; // GitHub's own cap
  std::chrono::hours delivery_ttl{72};
  std::string public_url;           // base of target_url; empty: the node's HTTP address
};

struct alerts_config {
  std::string url;                  // Slack-compatible JSON POST; empty: store only
  std::chrono::seconds long_build{300};
};

struct deploy_settings {
  std::string workspace = "workspace"; // relative paths resolve in the data dir
  size_t keep_builds = 5;
  size_t max_parallel = 2;          // repositories building at once per node
  std::chrono::days keep_logs{30};  // task logs older than this are removed
  std::chrono::days keep_history{90}; // and records (actors/retention.hpp)
  // The niceness (0-19) of git and the role scripts: a build that takes
  // every core must not starve the node's heartbeats and replication.
  int nice = 10;
};

struct deploy_config {
  github_config github;
  alerts_config alerts;
  deploy_settings settings;
  std::vector<repo_config> repos;
};

std::string to_string(placement p);

} // namespace brd
