// Push-to-deploy routing as pure functions: which repository config a push
// belongs to, whether its ref deploys, which roles its changed paths touch,
// and which nodes run each role. No actors, no clock, no I/O; the
// dispatcher (actors/dispatcher.hpp) feeds in the push, the membership rows
// and the rolled-back marks, and carries out the plan.
//
// Also the key conventions of the `deployments` and `tasks` tables (see
// io/deploy_records.hpp for who writes what).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "io/deploy_records.hpp"
#include "io/github_webhook.hpp"
#include "runtime/config.hpp"
#include "runtime/deploy_messages.hpp"
#include "runtime/messages.hpp"

namespace brd {

// -- keys ------------------------------------------------------------------------

// "deployments" keys: deployment records are "d-<13-digit ms>-<8 hex>", so
// key order is creation order; delivery ids and rollback marks live under
// their own prefixes.
inline constexpr std::string_view deployment_prefix = "d-";
inline constexpr std::string_view delivery_prefix = "delivery/";
inline constexpr std::string_view rollback_prefix = "rollback/";

std::string delivery_key(std::string_view delivery_id);
std::string rollback_key(std::string_view repo, std::string_view sha);
// "tasks" key of a task: "<deploy_id>/<task_id>".
std::string task_key(std::string_view deploy_id, std::string_view task_id);

// "<role>@<node>", "<role>@<node>.<attempt>" from the second attempt on,
// "<role>@unassigned" without a node. Characters of the role outside
// [A-Za-z0-9._-] become '_' so the id is safe in keys and file names.
std::string make_task_id(std::string_view role, std::string_view node, uint32_t attempt);

// The parts of a task id from make_task_id: the role as it appears there, the
// node ("" for "unassigned"; node names have no '.') and the attempt. None
// for a string without '@'.
struct task_id_parts {
  std::string role, node;
  uint32_t attempt = 1;
};
std::optional<task_id_parts> parse_task_id(std::string_view task_id);

// Task `task_id` of deployment `rec` as far as the id and the record tell
// (state "queued", no node's word yet): for a task without a row. None when
// the id has no node part.
std::optional<io::task_record> task_of_record(const io::deployment_record& rec,
                                              std::string_view task_id);

// The row of task `t` on `node`, state "queued", before it has a queue time
// or a log.
io::task_record task_record_of(const deploy_task& t, std::string node);

// -- the repository and the ref ----------------------------------------------------

// The first [[repo]] whose name glob matches `full_name` (case-insensitive),
// or nullptr.
const repo_config* find_repo(const deploy_config& cfg, std::string_view full_name);

// The fetch URL of `repo_name` under `repo`: "{repo}" replaced by owner/name.
std::string remote_url(const repo_config& repo, std::string_view repo_name);

struct ref_decision {
  bool deploy = false;
  std::string sha;    // the commit to deploy (when deploy)
  std::string reason; // why not (when !deploy), one short sentence
};

// Branch pushes deploy when the branch matches one of the repo's `branches`
// globs (the whole name, as io::repo_match matches: '*' stops at '/', "**"
// crosses it, case is ignored);
// branch deletions follow on_branch_delete (deploying the last commit of the
// deleted branch, `before`), tag pushes on_tag; any other ref is ignored.
ref_decision decide_ref(const repo_config& repo, const io::push_event& push);

// True when the changed paths must come from `git diff before..after`: the
// payload's commit list was truncated, the push was forced, or a new ref
// came with no commit list at all.
bool needs_git_diff(const io::push_event& push);

// -- roles and nodes ------------------------------------------------------------

// One configured node as routing sees it: its roles from the fleet config and
// its liveness and load from the membership rows.
struct route_member {
  node_name node;
  brd::tier tier = tier::pi;
  std::vector<std::string> roles;
  bool live = false;    // membership state alive
  bool has_load = false;
  double load1 = 0;

  bool holds(std::string_view role) const;
};

// Joins the fleet config with membership rows (nodes without a row are not
// live).
std::vector<route_member> route_members(const fleet_config& fleet,
                                        const std::vector<member_view>& rows);

// The rules whose path globs take any of `changed`, one per role: when two
// rules name the same role, the first (in config order) wins.
std::vector<route_rule> rules_for(const repo_config& repo,
                                  const std::vector<std::string>& changed);

// The first rule naming `role`, or nullptr.
const route_rule* rule_for_role(const repo_config& repo, std::string_view role);

// Deploy tasks of one line: both deploys of the same repository, ref and
// role (another branch's commit is no successor). Under a rule with
// `supersede` (the default), the newer deployment's task of a line makes an
// older one still waiting pointless: the dispatcher's hand-over queue and
// the deployer's queue both go by this.
bool same_line(const deploy_task& a, const deploy_task& b);
// A key naming a task's line: repository, ref and role.
std::string line_key(const deploy_task& t);

// The nodes that run `rule`: every live node holding the role (placement
// all) or the least-loaded one (placement one; no load sample counts as the
// highest load, ties go to the name first in order). Nodes in `exclude` are
// skipped. Empty when no live node holds the role.
std::vector<node_name> targets_for(const route_rule& rule,
                                   const std::vector<route_member>& members,
                                   const std::set<node_name>& exclude = {});

struct planned_task {
  route_rule rule;
  node_name node; // empty: unassigned (no live node holds the role)
};

// One task per (role, target node); a role with no target gives one
// unassigned task. In rule order, nodes in name order.
std::vector<planned_task> plan_tasks(const std::vector<route_rule>& rules,
                                     const std::vector<route_member>& members);

// -- rollback ------------------------------------------------------------------

// One node's step of a rollback: re-activate `to_sha`, leaving `from_sha`.
struct rollback_step {
  node_name node;
  std::string role;     // of the node's latest successful task of the repo
  std::string from_sha; // the build active now (its latest success)
  std::string to_sha;
};

// Plans a rollback of `repo` on `nodes` from the task history (rows of any
// repository and state; only succeeded rows of `repo` count, ordered by
// finish time). `sha` is a commit id, or "previous": on each node, the
// latest success before the current one with another sha that is not in
// `rolled_back` (so repeated rollbacks keep going back). Nodes without a
// successful deploy of the repo are skipped. Errors (brd_errc::refused)
// name the problem: no node has anything to roll back, a node already runs
// that sha, a node never built it.
caf::expected<std::vector<rollback_step>>
plan_rollback(const std::vector<io::task_record>& history, std::string_view repo,
              const std::vector<node_name>& nodes, std::string_view sha,
              const std::set<std::string>& rolled_back = {});

} // namespace brd
