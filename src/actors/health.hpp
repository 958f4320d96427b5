// The health actor: membership and failure detection for one node.
//
// It is the actor each brnode publishes on its actor port. Peers introduce
// themselves with `hello`, then exchange `heartbeat`s every heartbeat
// interval, each carrying the sender's latest resource sample. A phi-accrual
// detector (runtime/membership.hpp) turns late heartbeats into suspect and
// down; a lost connection marks the peer down at once; a `leave` marks it
// left. Every change is sent as a member_event to subscribers.
//
// The actor runs detached (on its own thread) so heartbeats never wait
// behind other work on the scheduler.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/replies_to.hpp>

#include "actors/introspect.hpp"
#include "runtime/config.hpp"
#include "runtime/messages.hpp"

namespace brd {

namespace io {
class metrics_registry;
}

using health_actor = caf::typed_actor<
  // -- from peers -------------------------------------------------------------
  // A peer introduces itself; the reply is our own introduction.
  caf::replies_to<hello_atom, hello_msg>::with<hello_msg>,
  // A peer's heartbeat; the reply echoes heartbeat::sent_ns for the RTT.
  caf::replies_to<heartbeat_atom, heartbeat>::with<int64_t>,
  // A peer stops gracefully (node, incarnation).
  caf::reacts_to<leave_atom, std::string, uint64_t>,
  // The actor this node registered under a service name ("state", ...;
  // "health" is this actor itself); an invalid handle when there is none.
  // Peers and brsh use it as the node's directory.
  caf::replies_to<get_atom, std::string>::with<caf::actor>,
  // -- introspection (brsh) ----------------------------------------------------
  // This node's identity, uptime, data directory size, actor count and
  // latest resource sample.
  caf::replies_to<get_atom, status_atom>::with<node_status>,
  // The actors of this node with their mailbox sizes and handled counts.
  caf::replies_to<get_atom, actors_atom>::with<std::vector<actor_info>>,
  // A summary of the state of this node's actor of that kind ("health",
  // "connector"); brd_errc::refused for a kind without a summary.
  caf::replies_to<inspect_atom, std::string>::with<actor_summary>,
  // -- local ------------------------------------------------------------------
  // Register a local actor under a service name.
  caf::reacts_to<put_atom, std::string, caf::actor>,
  // The service of another node (or this one), looked up through that node's
  // health actor; sec::no_such_key style error when the node is not connected.
  caf::replies_to<get_atom, std::string, std::string>::with<caf::actor>,
  // The membership table, one row per configured node, self included.
  caf::replies_to<get_atom, members_atom>::with<std::vector<member_view>>,
  // Subscribe an actor to member_event messages (until it terminates).
  caf::reacts_to<subscribe_atom, caf::actor>,
  // The connector reached a peer's published actor.
  caf::reacts_to<connected_atom, std::string, caf::actor>,
  // The connector's first attempt to reach a peer failed (node, reason).
  caf::reacts_to<retry_atom, std::string, std::string>,
  // Say goodbye to every peer; replies once they were told.
  caf::replies_to<leave_atom>::with<bool>,
  // Timers.
  caf::reacts_to<tick_atom>, caf::reacts_to<sample_atom>>;

struct health_options {
  fleet_config fleet;
  node_name self;
  std::string data_dir;
  uint64_t incarnation = 0;
  std::shared_ptr<io::metrics_registry> metrics;
  std::shared_ptr<std::atomic<bool>> joined; // set once the node has joined
};

health_actor spawn_health(caf::actor_system& sys, health_options opts);

} // namespace brd
