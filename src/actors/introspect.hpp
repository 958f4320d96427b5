// Introspection of a running node, as brsh shows it: what a node says about
// itself (node_status), the actors it runs (actor_info), a summary of one
// actor's state (actor_summary), and the instrumentation that counts the
// messages a service actor handles.
//
// Instrumenting an actor is one call around the behavior it returns:
//   return introspect::counted(self, "health", {...handlers...});
// Every message the behavior handles is counted, and the actor's mailbox
// size is sampled as each message begins (so an idle actor shows the number
// of messages that waited behind its last one, usually 0). The counters live
// as long as the behavior; introspect::local_actors() lists those of one
// actor system. All of this is thread-safe and costs two relaxed atomic
// stores per message.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_addr.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/typed_behavior.hpp>

#include "runtime/messages.hpp"

namespace brd {

using status_atom = caf::atom_constant<caf::atom("status")>;
using actors_atom = caf::atom_constant<caf::atom("actors")>;
using inspect_atom = caf::atom_constant<caf::atom("inspect")>;

// What a node says about itself.
struct node_status {
  std::string node;
  std::string cluster;
  std::string version;
  uint64_t incarnation = 0;
  uint64_t uptime_s = 0;        // this brnode process
  std::string data_dir;
  uint64_t data_dir_bytes = 0;  // regular files under data_dir
  uint64_t actor_count = 0;     // actors running in the node's actor system
  node_sample sample;           // the latest resource sample
  int64_t sample_age_ms = -1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_status& x) {
  return f(caf::meta::type_name("node_status"), x.node, x.cluster, x.version,
           x.incarnation, x.uptime_s, x.data_dir, x.data_dir_bytes,
           x.actor_count, x.sample, x.sample_age_ms);
}

// One actor of a node. -1 in a counter: the actor is not instrumented.
struct actor_info {
  std::string kind;           // "health", "connector", "state", ...
  uint64_t id = 0;            // CAF actor id, unique within the node
  int64_t mailbox_size = -1;  // messages waiting when it began its last one
  int64_t handled = -1;       // messages handled since it started
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, actor_info& x) {
  return f(caf::meta::type_name("actor_info"), x.kind, x.id, x.mailbox_size,
           x.handled);
}

// A named value in an actor_summary ("peers connected" = "2 of 2").
struct summary_fact {
  std::string name;
  std::string value;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, summary_fact& x) {
  return f(caf::meta::type_name("summary_fact"), x.name, x.value);
}

// A summary of one actor's state: facts, then one table (e.g. its peers).
struct actor_summary {
  std::string kind;
  std::vector<summary_fact> facts;
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, actor_summary& x) {
  return f(caf::meta::type_name("actor_summary"), x.kind, x.facts, x.columns,
           x.rows);
}

namespace introspect {

// `inner` wrapped so that each message it handles is counted for the actor
// `self` under `kind`. Call once per actor, on the behavior it starts with.
caf::behavior counted(caf::scheduled_actor* self, std::string kind,
                      caf::behavior inner);

template <class... Sigs>
caf::typed_behavior<Sigs...> counted(caf::scheduled_actor* self, std::string kind,
                                     caf::typed_behavior<Sigs...> inner) {
  using typed = caf::typed_behavior<Sigs...>;
  return typed{typename typed::unsafe_init{},
               counted(self, std::move(kind), std::move(inner.unbox()))};
}

// The instrumented actors of `sys` that are still running, plus `known`
// actors (kind, address) that are not instrumented (with -1 counters), in
// actor id order.
std::vector<actor_info>
local_actors(const caf::actor_system& sys,
             const std::vector<std::pair<std::string, caf::actor_addr>>& known = {});

} // namespace introspect

} // namespace brd
