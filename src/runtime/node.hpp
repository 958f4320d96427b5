// Node bootstrap: everything `brnode` does between parsing its flags and
// exiting. run_node() loads and checks the fleet config, opens the store,
// starts the actor system, publishes the health actor, serves HTTP and waits
// for SIGTERM/SIGINT, then leaves the fleet gracefully.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <caf/fwd.hpp>

namespace brd {

// Exit codes, following sysexits.h where one fits.
enum exit_code : int {
  exit_ok = 0,
  exit_failure = 1,      // a runtime failure after startup
  exit_usage = 64,       // bad command line
  exit_unavailable = 69, // a port is taken
  exit_cant_create = 73, // data directory unusable or in use
  exit_config = 78,      // broken fleet config
};

struct node_options {
  std::string config_path;
  std::string name;
  std::string data_dir;     // empty: ./data/<name>
  std::string log_level = "info";
  // For tools that run a node with actors of their own (the replication
  // benchmark's on-node writers): called once the state actor runs, with
  // that actor; the actors returned are listed by name in the health
  // actor's table, where peers look them up (get_atom NAME). brnode leaves
  // it empty.
  using extra_actors_fn = std::function<std::vector<std::pair<std::string, caf::actor>>(
    caf::actor_system&, const caf::actor& state)>;
  extra_actors_fn extra_actors;
};

// Runs the node until a stop signal arrives. The caller must have blocked
// SIGTERM and SIGINT in every thread (block_stop_signals) before any thread
// was started, so they can be awaited synchronously here.
int run_node(const node_options& opts);

void block_stop_signals();

} // namespace brd
