// The deployer: runs the deploy tasks sent to this node (one per node,
// registered with health as service "deployer").
//
// Contract:
// - (deploy_atom, task) replies with the task id once the task is queued, or
//   brd_errc::refused with a sentence for a malformed task (io::task_problem:
//   an unknown kind, a sha that is not 40 lowercase hex digits, a repo that
//   is not owner/name, ids unusable as file names, control characters in ref
//   or role; for "deploy" also no remote, no script, a script program that is
//   absolute or climbs out with "..", timeout_s 0). A task whose
//   (deploy_id, task_id) is already queued or running here is acknowledged
//   and not queued again. (deploy_atom, tasks) takes a batch the same way,
//   in order, and replies per task: "" once queued, else the refusal.
// - Tasks of one repository run one at a time, in arrival order; different
//   repositories run in parallel, up to deploy.max_parallel (the longest
//   waiting first). Each running task has a detached worker of its own that
//   does the blocking work (io/task_runner.hpp), so the deployer never blocks.
// - "deploy": fetch, check out `sha` into a fresh build directory, run
//   `script` there (argv, never a shell) with the BLACKROAD_* environment and
//   `timeout_s` as the limit for the whole process group; on success the
//   build becomes active and the newest deploy.keep_builds builds are kept.
//   "rollback": re-activate the kept build of `sha`, fetching and running
//   nothing; it fails when that build is not kept here. The workspace layout,
//   with the active link at builds/<owner>/<name>/active, is in
//   io/workspace.hpp.
// - Progress is written to `state` as task records (io/deploy_records.hpp),
//   table "tasks", key "<deploy_id>/<task_id>": queued when accepted (a task
//   that has to wait: within 50 ms, unless superseded first), running when
//   started, then succeeded, failed (reason "exit code N", "killed by
//   signal N", or the git or file system error) or timed_out, with the last
//   4 KB of output. A deploy task still waiting when a newer deploy of the
//   same repository and role arrives ends "superseded" (reason "superseded
//   by <sha12> (<deploy_id>)") without running; running tasks are never
//   cancelled. A deploy task older (by deployment id, which grows with time)
//   than one of the same repository, ref and role taken here before ends
//   superseded by that one as it arrives (one handed over again after the
//   edge restarted, or placed here again after its node was lost): an older
//   commit never becomes active over a newer one. Neither applies to rules
//   with supersede = false. A task running longer than alerts.long_build
//   gets one alert record (kind "long_build") in table "alerts", key
//   "<at_ms, 13 digits>/<id>".
// - At start, what a killed previous run of this node left is cleaned up:
//   the process groups of its scripts (<workspace>/running/) are killed, and
//   its task rows still queued or running fail with reason "node lost".
// - Metrics: brnode_deploy_tasks_total{state}, brnode_deploy_task_seconds,
//   brnode_deploy_running.
//
// A script still running when the node stops keeps its worker (and so the
// actor system's shutdown) waiting until the script ends or times out; a
// node killed outright takes its scripts along (io/process.hpp).
#pragma once

#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "runtime/config.hpp"
#include "runtime/deploy_messages.hpp"
#include "runtime/messages.hpp"

namespace brd {

namespace io {
class metrics_registry;
}

using deployer_actor = caf::typed_actor<
  caf::replies_to<deploy_atom, deploy_task>::with<std::string>,
  // The dispatcher's hand-over: a batch of tasks for this node, in order.
  // Per task an empty string once it is queued (or was taken before), else
  // why it was refused.
  caf::replies_to<deploy_atom, std::vector<deploy_task>>::with<std::vector<std::string>>,
  // Timer: looks for tasks that run longer than alerts.long_build.
  caf::reacts_to<tick_atom>>;

struct deployer_options {
  fleet_config fleet; // [deploy] and [alerts] settings
  node_name self;
  std::string data_dir; // the workspace lives here unless configured absolute
  // Where task and alert records go: (put_atom, table, key, value) ->
  // write_ack. The state actor in a node. An invalid handle drops them.
  caf::actor state;
  std::shared_ptr<io::metrics_registry> metrics; // may be null
};

deployer_actor spawn_deployer(caf::actor_system& sys, deployer_options opts);

} // namespace brd
