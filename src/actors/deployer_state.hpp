// Internal to the deployer (deployer*.cpp): its state and the functions its
// source files share. Not for other code; see deployer.hpp.
//   deployer.cpp         running tasks: start, finish, workers, alerts,
//                        what a killed previous run left, the behavior
//   deployer_intake.cpp  taking tasks: the once-only check, queues,
//                        superseding, queued rows
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <caf/typed_event_based_actor.hpp>

#include "actors/deployer.hpp"
#include "io/deploy_records.hpp"
#include "io/metrics.hpp"
#include "io/workspace.hpp"

namespace brd::deployer_detail {

using steady = std::chrono::steady_clock;

inline constexpr auto write_timeout = std::chrono::seconds{10};
// A task that has to wait gets its queued row this much later, unless it
// started or was superseded by then: under a burst of pushes most waiting
// tasks are superseded, and one row (superseded) is half the replication.
inline constexpr auto queued_row_delay = std::chrono::milliseconds{50};

struct waiting_task {
  deploy_task task;
  uint64_t seq = 0; // arrival order across repositories
  int64_t queued_at_ms = 0;
  bool recorded = false; // its queued row is written
};

// A task handed over before the node read its task rows (recover).
struct held_task {
  deploy_task task;
  std::function<void(caf::expected<std::string>)> done;
};

struct taken_deploy {
  std::string deploy_id, sha;
};

struct running_task {
  io::task_record record;
  steady::time_point started;
  bool alerted = false;
};

struct instruments {
  std::map<std::string, io::counter*> finished; // by final state
  io::histogram* seconds = nullptr;
  io::gauge* running = nullptr;
};

struct deployer_state {
  static inline const char* name = "deployer";
  deployer_options opts;
  io::workspace ws{""};
  std::map<std::string, std::deque<waiting_task>> waiting; // by repository
  std::map<std::string, running_task> running;            // by repository
  std::set<std::string> in_flight;                        // task keys
  // The newest deploy taken per repository, ref and role ("repo\0ref\0role"),
  // of rules that let commits be skipped: an older one arriving later ends
  // superseded by it. One entry per branch ever pushed; after a restart,
  // relearned from this node's task rows (recover, deployer.cpp).
  std::map<std::string, taken_deploy> newest_taken;
  // Until the task rows of earlier runs are read (recover, deployer.cpp),
  // tasks handed over wait here, so that none runs before what this node
  // took is known.
  bool recovered = false;
  std::vector<held_task> held;
  uint64_t next_seq = 0;
  bool queued_rows_due = false; // a tick to write queued rows is scheduled
  instruments metrics;
  // Every worker's script watches this; set when the deployer exits.
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
};

using deployer_ptr = deployer_actor::stateful_pointer<deployer_state>;

// "<deploy_id>/<task_id>": a task's key in table "tasks" and in_flight.
std::string key_of(const std::string& deploy_id, const std::string& task_id);

// Writes a task row (fire-and-forget; a refused write is logged).
void record(deployer_ptr self, const io::task_record& r);

// The row of a waiting task, state "queued".
io::task_record queued_record(deployer_ptr self, const waiting_task& w);

// Starts waiting tasks while there is room: the earliest arrival among the
// repositories that have nothing running.
void pump(deployer_ptr self);

// -- deployer_intake.cpp ------------------------------------------------------------

// Notes a deploy this node took, found in its task rows after a restart, as
// the newest of its line if it is: an older deploy of the line arriving
// later ends superseded by it instead of running.
void remember_taken(deployer_state& st, const io::task_record& r);

// The task rows of earlier runs are read: takes the tasks held meanwhile.
void recovered(deployer_ptr self);

// Writes the queued rows of waiting tasks that have none yet.
void record_waiting(deployer_ptr self);

// The hand-over of one task, and of a batch (deployer.hpp, the contract).
caf::result<std::string> accept(deployer_ptr self, deploy_task& t);
caf::result<std::vector<std::string>> accept_all(deployer_ptr self,
                                                 std::vector<deploy_task>& tasks);

} // namespace brd::deployer_detail
