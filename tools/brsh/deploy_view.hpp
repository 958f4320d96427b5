// Deploys as brsh reads them: the connected node's own view, GET
// /api/deployments[/{id}] on its HTTP port (the host and http_port of the
// fleet config; runtime/deploy_api.hpp), so brsh shows exactly what the
// node serves: its replica of the `deployments` and `tasks` tables with
// the dispatcher's verdicts applied. Any node answers; a deploy the bridge
// just created may need a moment to replicate to the connected node. brsh
// connects over CAF first, so an unreachable node gets the usual sentence
// with the nodes to try instead.
//
// Deployment states (the record's "state", written by the dispatcher):
//   pending  while any task is open; success  every task succeeded;
//   failure  a task failed, timed out or found no node (unassigned).
// Task states: queued, running, then succeeded, failed, timed_out,
// superseded or unassigned; log_tail holds the last 4 KB of output once
// the task ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

namespace brsh {

class client;

// "pending", "success", "failure".
const std::vector<std::string>& deployment_states();

// True for a task state that no longer changes.
bool task_finished(const std::string& state);

// The newest `limit` deployments (at most 1000), newest first (GET
// /api/deployments?limit=N).
caf::expected<nlohmann::json> recent_deployments(client& cl, size_t limit);

// One deployment with its tasks under "tasks" (GET /api/deployments/{id}).
// A deployment the connected node does not hold is brd_errc::refused,
// saying so and how to list the ones it has; an HTTP port that does not
// answer is client::unreachable (brd_errc::io_failure).
caf::expected<nlohmann::json> find_deployment(client& cl, const std::string& id);

// True once the record is not pending and every task it lists has ended.
bool deployment_finished(const nlohmann::json& deployment);

// The tasks in words: "2 tasks: 1 succeeded, 1 running".
std::string task_summary(const nlohmann::json& deployment);

// j[key] as text: strings as they are, numbers in decimal, "" when absent.
std::string text_at(const nlohmann::json& j, const char* key);

// j[key] when it is an array, else an empty one.
nlohmann::json items_at(const nlohmann::json& j, const char* key);

// j[key] as an integer (times in ms), 0 when absent or not one.
int64_t ms_at(const nlohmann::json& j, const char* key);

// The first 7 characters of a commit id ("" stays "").
std::string short_sha(const std::string& sha);

} // namespace brsh
