// Internal to the dispatcher (dispatcher*.cpp): its state and the functions
// its source files share. Not for other code; see dispatcher.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <nlohmann/json.hpp>

#include "actors/dispatcher.hpp"
#include "io/deploy_records.hpp"
#include "io/metrics.hpp"
#include "runtime/deploy_progress.hpp"
#include "runtime/routing.hpp"
#include "runtime/wall_clock.hpp"

namespace brd::dispatch {

// Bounds of the dispatcher's requests to the local state actor.
inline constexpr auto store_timeout = std::chrono::seconds(10);

using diff_atom = caf::atom_constant<caf::atom("diff")>;

struct waiting_push {
  webhook_push push;
  caf::typed_response_promise<http_answer> promise;
};

// Tasks on their way to one node's deployer. One batch at a time is under
// way; tasks handed over meanwhile go together in the next, so a busy edge
// sends a node one message for many tasks instead of one each.
struct handover_queue {
  struct item {
    std::string deploy_id, task_id;
    deploy_task task;
  };
  std::vector<item> waiting;
  bool busy = false; // a batch, or the deployer's lookup, is under way
  // Bumped when the node's membership changes: the batch under way (to a
  // deployer that may be gone) no longer holds back the next one.
  uint64_t generation = 0;
};

struct dispatcher_state {
  dispatcher_options opts;
  std::string diff_root; // <workspace>/dispatch
  bool loaded = false;   // deliveries and rollback marks read from the store
  std::vector<waiting_push> waiting;
  std::unordered_map<std::string, int64_t> deliveries; // id -> seen at (ms)
  std::set<std::string> rolled_back;                   // rollback keys
  std::vector<member_view> members;
  std::map<node_name, caf::actor> deployers;
  std::map<node_name, handover_queue> handovers;
  std::map<std::string, deploy_progress> active; // by deployment id
  // Deployments whose tasks are on their way to deployers: the hand-over
  // latency is sampled when the last one is acknowledged. Kept apart from
  // `active`: under load a deployment can end (its tasks superseded, their
  // rows replicated back) before the batches that carried its tasks are
  // answered, and its sample must not be lost then.
  struct handover_wait {
    int64_t received_ns = 0;
    size_t left = 0; // tasks not acknowledged yet
  };
  std::unordered_map<std::string, handover_wait> handover_waits; // by deployment id
  // Deployments with tasks superseded before they were sent, whose records
  // are to be written once the hand-overs at hand are queued.
  std::set<std::string> unwritten_verdicts;
  caf::actor diff_worker;
  uint32_t next_id = 0;
  uint64_t ticks = 0;
  io::histogram* dispatch_seconds = nullptr; // arrival -> every task running
  io::histogram* handover_seconds = nullptr; // arrival -> every task taken
  io::histogram* settled_seconds = nullptr;  // arrival -> every task running or superseded
  io::counter* superseded_deployments = nullptr; // with at least one task superseded
  io::counter* superseded_tasks = nullptr;
  io::counter* superseded_unsent = nullptr; // deployments, as handover_seconds skips them
  std::map<std::string, io::counter*> webhooks_total; // by result
};

using dispatcher_ptr = dispatcher_actor::stateful_pointer<dispatcher_state>;

int64_t steady_ns();
// Seconds from `since_ns` (a steady_ns() reading) to now: a latency sample.
double seconds_since(int64_t since_ns);
http_answer answer(int status, const nlohmann::json& body);
void count_webhook(dispatcher_state& st, const std::string& result);

// Fire-and-forget writes to the state actor (it logs the ones it refuses).
void put_row(dispatcher_ptr self, const std::string& table, const std::string& key,
             std::string value);
void delete_row(dispatcher_ptr self, const std::string& table, const std::string& key);
void raise_alert(dispatcher_ptr self, const std::string& kind, const std::string& text,
                 const std::string& deploy_id = {}, const std::string& task_id = {},
                 const std::string& node = {});

std::string new_deploy_id(dispatcher_state& st);
std::string target_url(const dispatcher_state& st, const std::string& deploy_id);

// -- dispatcher_run.cpp: deployments in flight ------------------------------------

// A deployer ends a task "superseded" when a newer push of the same
// repository and role reached it while the task still waited (actors/
// deployer.hpp). The dispatcher follows it as succeeded with the reason
// "superseded by <sha> (<deployment>)": the role's status is success and its
// description says it was superseded. Other rows are returned unchanged.
io::task_record progress_row(io::task_record row);
bool was_superseded(const io::task_record& progress_row);

// Called once the deployment record is durable (no error), or with the
// store's error (the deployment was dropped: nothing ran, nothing posted).
using recorded_callback = std::function<void(const caf::error&)>;

// Writes the deployment record and, once it is durable, posts pending
// statuses, hands each assigned task to its node and writes the rows of
// unassigned ones; then calls `recorded` (when set). A write that fails
// drops the deployment with a logged error. The slots carry prefilled
// records (role, node, kind, state, attempt); ids and common fields are
// filled here. Returns the number of tasks.
size_t start_deployment(dispatcher_ptr self, io::deployment_record rec,
                        std::vector<task_slot> slots, int64_t received_ns,
                        recorded_callback recorded = {});

// A recorded_callback that answers `promise`: 202 with `accepted` once the
// record is durable, else the store's status (507 disk full, ...) with
// "cannot record the deployment: ...". `before` (when set) runs first.
recorded_callback answer_when_recorded(caf::typed_response_promise<http_answer> promise,
                                       nlohmann::json accepted,
                                       recorded_callback before = {});

// Slots for planned tasks of a push (kind deploy).
std::vector<task_slot> slots_for(const std::vector<planned_task>& planned);

// Checks whether deployment `id` is done: statuses, latency, final record.
void progress(dispatcher_ptr self, const std::string& id);

// A row of the `tasks` table arrived (ours or a deployer's).
void on_task_row(dispatcher_ptr self, const io::task_record& row);

// A task of an active deployment that has not ended yet.
struct open_task {
  deploy_progress* deployment = nullptr;
  task_slot* slot = nullptr;
  explicit operator bool() const { return slot != nullptr; }
};

// Deployment `id` while it is followed, or nullptr.
deploy_progress* find_active(dispatcher_state& st, const std::string& id);

// Task `task_id` of deployment `id`, unless the deployment or the task ended.
open_task find_open_task(dispatcher_state& st, const std::string& id,
                         const std::string& task_id);

// Fails a task on the dispatcher's word: a verdict in the deployment record
// (a task row belongs to its node); a task without a node gets its row.
void fail_without_node(dispatcher_ptr self, deploy_progress& p, task_slot& slot,
                       const std::string& reason);

// fail_without_node for an open task, logged, then progress().
void fail_task(dispatcher_ptr self, const std::string& id, const std::string& task_id,
               const std::string& reason);

// Runs a task lost with its node again on another live node of the role.
void place_again(dispatcher_ptr self, deploy_progress& p, task_slot& lost);

// -- dispatcher_handover.cpp: handing tasks to deployers ----------------------------

// Sends the task to its node's deployer, in a batch with the node's other
// tasks waiting while the previous batch is under way (struct
// handover_queue); a node that does not take it fails the task with the
// reason. Of two deploy tasks waiting for the same node, repository, ref and
// role, the newer deployment's supersedes the other (a verdict in its
// deployment's record), as the node would.
void hand_over(dispatcher_ptr self, const std::string& id, const std::string& task_id);
// hand_over without writing the verdicts it gave (write_verdicts): for a
// deployment handing over all its tasks, so that the tasks they supersede
// cost one record write per deployment.
void queue_hand_over(dispatcher_ptr self, const std::string& id, const std::string& task_id);
void write_verdicts(dispatcher_ptr self);
// The membership of `node` changed: tasks waiting for it no longer wait for
// the batch under way (its deployer may be gone); they go now.
void restart_handovers(dispatcher_ptr self, const node_name& node);

// -- dispatcher_loss.cpp: tasks whose node went away ----------------------------------

// A member went down or left: fail its open tasks, re-place "one" tasks.
void on_node_lost(dispatcher_ptr self, const node_name& node);

// Fails tasks still running long after their timeout (their node lost
// them without going down): reason "no progress from <node>". Tasks a
// restart left without any row (task_slot::unseen_since_ms) are handed over
// again once their node is alive (deployers take a task once), or fail with
// "node lost" when it is not.
void fail_stalled(dispatcher_ptr self);

// -- dispatcher_resume.cpp: after a restart ------------------------------------------

// Re-follows the deployments this node created and had not finished before
// a restart (`pending`: their records), with their tasks' rows, our
// verdicts and the tasks that have no row yet (task_slot::unseen_since_ms).
void resume_pending(dispatcher_ptr self, std::vector<io::deployment_record> pending);

// -- dispatcher_ops.cpp: rollback and retry ----------------------------------------

caf::result<http_answer> rollback(dispatcher_ptr self, const rollback_request& req);
caf::result<http_answer> retry(dispatcher_ptr self, const std::string& deploy_id);

} // namespace brd::dispatch
