// Runs one deploy task on this node, blocking the calling thread: the
// deployer calls it on a detached worker per task (actors/deployer.hpp has
// the behavior as other nodes see it).
//
// "deploy": fetch the remote into the workspace's mirror, check out the sha
// into a fresh build directory (io/workspace.hpp: an earlier build of the
// same sha is replaced, the active one only once the new one succeeded), run
// the script there with the BLACKROAD_* environment and the task's timeout,
// then activate the build and apply retention, or discard it. "rollback":
// activate the kept build of the sha. Every step is noted in the task's log
// file, next to git's and the script's output.
//
// The task must have passed task_problem(); the caller serialises tasks of
// one repository.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/meta/type_name.hpp>

#include "io/workspace.hpp"
#include "runtime/deploy_messages.hpp"

namespace brd::io {

// Why a task from the network cannot run (a sentence), or an empty string.
// Names, ids and the sha must be safe as paths (io/workspace.hpp), ref and
// role free of control characters; a deploy needs a remote, a script whose
// program stays inside the checkout (or is a bare name looked up in PATH) and
// a timeout of at least one second.
std::string task_problem(const deploy_task& task);

struct task_run {
  deploy_task task;
  std::string node;        // this node, for BLACKROAD_NODE and messages
  size_t keep_builds = 5;  // retention after a successful deploy
  std::string log_path;    // workspace::log_path of the task
  // The script's process group id is kept here while it runs
  // (process_spec::group_file); empty: nowhere.
  std::string group_file;
  // Set when this node stops: the running git command or script is ended
  // as on a timeout and the task fails with a reason saying so
  // (process_spec::cancel).
  std::shared_ptr<const std::atomic<bool>> cancel;
  // git and the script run at this niceness (deploy_settings::nice).
  // run_task lowers its calling thread to it: call it on a thread of its own.
  int nice = 0;
};

// How a task ended.
struct task_outcome {
  std::string state; // succeeded | failed | timed_out
  int exit_code = -1;
  std::string reason;   // "exit code N", "killed by signal N", "timed out after N s",
                        // "cancelled: ...", or the git or file system error
  std::string log_tail; // the script's last 4 KB of output, or the log's
  int64_t finished_at_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_outcome& x) {
  return f(caf::meta::type_name("task_outcome"), x.state, x.exit_code, x.reason,
           x.log_tail, x.finished_at_ms);
}

// Runs a deploy (fetch if needed, checkout, script, activate, retention) or
// a rollback (activate a kept build). Blocks its thread.
task_outcome run_task(const workspace& ws, const task_run& run);

} // namespace brd::io
