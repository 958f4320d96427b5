// The connector: keeps one node connected to every peer in the fleet config
// without ever blocking the node.
//
// With TLS, a node dials peers whose names sort after its own at once and
// the others after a short, jittered delay (3 x backoff_min), expecting to
// be reached first: two nodes dialing each other at once get two
// connections, and CAF's OpenSSL transport drops the peer when it closes
// the spare one. Over plain TCP both sides dial at once. Each attempt
// runs on a short-lived detached helper: it probes the peer's TCP port
// (bounded by connect_timeout), then, holding the probe's connection open,
// asks the middleman (or the OpenSSL manager) to connect, again with a
// timeout (io/tcp_probe.hpp says why). Failed
// peers are retried with capped exponential backoff. Each state change
// (unreachable, refused, connected) is logged once, not every retry.
// Reached peers are handed to the health actor with (connected_atom, ...).
#pragma once

#include <string>

#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "runtime/config.hpp"
#include "actors/health.hpp"
#include "runtime/messages.hpp"

namespace brd {

using connector_actor = caf::typed_actor<
  // Connect to this peer now (its connection was lost).
  caf::reacts_to<retry_atom, std::string>,
  // The peer reached us first: stop dialing it until told to retry. Dialing
  // both ways at once makes two connections, and closing the spare one can
  // drop the peer's proxies (seen with TLS).
  caf::reacts_to<hello_atom, std::string>,
  // Internal: a backoff delay ran out.
  caf::reacts_to<tick_atom, std::string>,
  // Internal: an attempt at a peer ended (node, its published actor, or
  // why not).
  caf::reacts_to<connected_atom, std::string, caf::strong_actor_ptr, caf::error>>;

// Spawns the connector; `health` receives (connected_atom, node, handle)
// for each peer reached and (retry_atom, node, reason) when the first
// attempt at a peer fails. Attempts start immediately.
connector_actor spawn_connector(caf::local_actor* parent,
                                const fleet_config& fleet,
                                const node_name& self, health_actor health);

} // namespace brd
