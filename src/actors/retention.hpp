// The retention actor: keeps what a node stores over months in bounds.
// Every node runs one next to its deployer. At start and then every hour:
//
// - Task logs: removes the logs of deployments (workspace/logs/<deploy_id>)
//   in which no file was written for [deploy] keep_logs_days (30).
// - History: deletes the rows of the replicated history that this node
//   wrote (each row has one writer, docs/ARCHITECTURE.md) and that are older
//   than [deploy] keep_history_days (90): final deployment records, final
//   task rows and alerts (rules in runtime/retention.hpp). Successful task
//   rows of builds the node still keeps stay: rollback plans from them.
//   The deletes replicate like any other write.
//
// It logs what it removed. The log removal blocks on the file system, so
// the actor runs detached; the store is reached by requests with timeouts.
#pragma once

#include <chrono>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/state.hpp"
#include "runtime/messages.hpp"

namespace brd {

// tick: a round now (and the next one `every` later).
using retention_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;

struct retention_options {
  node_name self;
  state_actor state;
  std::string workspace_root; // io::workspace_root of the node
  std::chrono::days keep_logs{30};
  std::chrono::days keep_history{90};
  std::chrono::milliseconds every = std::chrono::hours{1};
};

retention_actor spawn_retention(caf::actor_system& sys, retention_options opts);

} // namespace brd
