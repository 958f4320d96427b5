// The log pruner: keeps a node's task logs from filling its disk. Every
// node runs one next to its deployer. At start and then every hour it
// removes the logs of deployments (workspace/logs/<deploy_id>) in which no
// file was written for deploy.keep_logs_days (default 30), and logs how
// many went. The task records in the replicated store stay; their log
// endpoint then says the log is gone.
//
// The removal blocks on the file system, so the actor runs detached.
#pragma once

#include <chrono>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "runtime/messages.hpp"

namespace brd {

// tick: prune now (and again an hour later).
using log_pruner_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;

struct log_pruner_options {
  std::string workspace_root; // io::workspace_root of the node
  std::chrono::days keep{30};
  std::chrono::milliseconds every = std::chrono::hours{1};
};

log_pruner_actor spawn_log_pruner(caf::actor_system& sys, log_pruner_options opts);

} // namespace brd
