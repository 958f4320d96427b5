// Messages of push-to-deploy (issue 4): what the dispatcher on an edge node
// sends to the deployer on a target node. Task progress does not travel as
// messages: the executing node writes its task record into the replicated
// `tasks` table and the dispatcher follows that table (see
// io/deploy_records.hpp and docs/ARCHITECTURE.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

namespace brd {

using deploy_atom = caf::atom_constant<caf::atom("deploy")>;
using rollback_atom = caf::atom_constant<caf::atom("rollback")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;

// One unit of work for one node: fetch `sha` of `repo`, run `script` for
// `role`, report through the task record `task_id` of deployment `deploy_id`.
// kind "rollback": re-activate the kept build of `sha` without running
// anything.
struct deploy_task {
  std::string deploy_id;
  std::string task_id;
  std::string kind = "deploy"; // "deploy" | "rollback"
  std::string repo;            // owner/name
  std::string remote;          // fetch URL, from the config
  std::string sha;             // 40 hex digits
  std::string ref;             // refs/heads/main
  std::string role;
  std::vector<std::string> script; // argv, relative to the checkout
  uint32_t timeout_s = 600;
  uint32_t attempt = 1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deploy_task& x) {
  return f(caf::meta::type_name("deploy_task"), x.deploy_id, x.task_id, x.kind,
           x.repo, x.remote, x.sha, x.ref, x.role, x.script, x.timeout_s,
           x.attempt);
}

} // namespace brd
