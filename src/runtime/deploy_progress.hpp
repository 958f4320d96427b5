// The progress of one deployment as its dispatcher follows it: the task rows
// it has seen, and the commit statuses they add up to. Pure data and
// functions; the dispatcher feeds it rows from the replicated `tasks` table.
//
// Task states only move forward: queued -> running -> a final state
// (succeeded, failed, timed_out, unassigned). A row that would move a task
// back (an older copy arriving late) is ignored, and a final state is final.
//
// A task replaced by a later attempt (its node was lost and the rule places
// on one node) is *superseded* and no longer counts. A role is pending while
// any of its counted tasks is not final, then success when all succeeded and
// failure otherwise; the deployment likewise over its roles.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "io/deploy_records.hpp"
#include "runtime/config.hpp"

namespace brd {

// 0 queued, 1 running, 2 final; -1 for a state this code does not know.
int state_rank(std::string_view state);
bool is_final_state(std::string_view state);

// The dispatcher's word over a node's task row: a row that is not final and
// has a verdict (deployment_record::verdicts, e.g. "node lost") reads as
// failed, or superseded (io::verdict_state), with the verdict as its reason.
// True when it did.
bool apply_verdict(io::task_record& row, const std::map<std::string, std::string>& verdicts);

struct task_slot {
  io::task_record record;
  route_rule rule;         // the rule it runs (empty for rollbacks)
  bool superseded = false;
  bool long_build_alerted = false;
  // Set when a restarted dispatcher found neither a row nor a verdict of the
  // task (its node may never have got it); cleared by the task's first row.
  int64_t unseen_since_ms = 0;
};

struct deploy_progress {
  io::deployment_record record;
  std::map<std::string, task_slot> tasks; // by task id
  std::map<std::string, std::string> posted; // context -> last status state sent
  int64_t received_ns = 0;     // steady clock, when the webhook arrived
  bool running_observed = false;

  void add(io::task_record task, route_rule rule);

  // Takes a newer row of a known task; false when the row is ignored
  // (unknown task, superseded, not a step forward).
  bool apply(const io::task_record& row);

  // "pending", "success" or "failure" per role, and over all roles.
  std::map<std::string, std::string> role_states() const;
  std::string overall() const;
  bool finished() const { return overall() != "pending"; }

  // True when every counted task is running or final.
  bool all_started() const;

  // Tasks with a node (the ones handed to a deployer).
  size_t assigned() const;

  // Counted tasks on `node` that are not final.
  std::vector<std::string> open_tasks_on(std::string_view node) const;

  // Nodes that already ran (or run) a task of `role` in this deployment.
  std::vector<std::string> nodes_of_role(std::string_view role) const;

  // Counted (not superseded) tasks, of `role` when given.
  size_t counted(std::string_view role = {}) const;

  // "frontend on lucidia: exit code 3", the first failure in task order (of
  // `role` when given), or "".
  std::string first_failure(std::string_view role = {}) const;
};

// A GitHub status description (at most 140 characters) for `state` of one
// role ("" for the whole deployment).
std::string status_description(const deploy_progress& p, std::string_view role,
                               std::string_view state);

} // namespace brd
