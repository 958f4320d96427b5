// The state actor: this node's copy of the replicated fleet state (tables
// such as `deployments`, `nodes`, `tasks`; see io/state_store.hpp for the
// storage and the merge rule) and the replication of it to every peer.
//
// Contract for local clients (other actors, HTTP handlers, brsh):
// - Reads are local and see every write this node has committed or applied
//   (a local write can be visible a few ms before its sync, and its reply,
//   are done).
// - A write's reply (write_ack) means the write is durable on this node: its
//   row, log entry and version vector went into one RocksDB batch, and the
//   WAL was fsynced after it. Writes that arrive while a sync is running
//   share the next commit (group commit). Subscribers and peers see a local
//   write only once it is durable. With `wait_for` N the reply waits until N peers also
//   report holding the write (applied to their store; peers do not fsync
//   what they apply); after `state_options::wait_timeout` it is
//   brd_errc::timeout (the write itself stays durable and replicates).
// - Bad requests (unknown table, a value that is not a msgpack record map
//   with a known "v" schema version, wait_for above the number of peers) are
//   brd_errc::refused with a sentence saying why.
// - A subscriber receives one state_entry per row change of its table here
//   (local writes, and replicated entries or snapshot rows that win the
//   merge rule), in apply order, until it terminates.
//
// Contract between peers: each node pushes to each connected peer what that
// peer lacks, a bounded number of batches in flight; the peer answers with
// its version vector. See state.cpp for the protocol.
//
// Metrics: brnode_state_writes_total, brnode_state_commit_batch_size,
// brnode_state_commit_seconds, brnode_state_replication_lag_seconds,
// brnode_state_rejected_total{reason}, brnode_state_log_entries,
// brnode_state_peer_behind_entries{peer},
// brnode_state_snapshot_chunks_total{direction}.
//
// The actor runs detached (RocksDB calls block); the WAL fsync of each
// group commit runs on a detached syncer actor of its own, so the state
// actor keeps applying peers' batches meanwhile.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/health.hpp"
#include "actors/introspect.hpp"
#include "runtime/config.hpp"
#include "runtime/messages.hpp"

namespace brd {

namespace io {
class metrics_registry;
class state_store;
} // namespace io

// A scan limit that means every row (no table holds that many in practice).
inline constexpr uint64_t scan_all = 10'000'000;

using state_actor = caf::typed_actor<
  // -- local clients ----------------------------------------------------------
  // put (table, key, value): durable here, then the reply.
  caf::replies_to<put_atom, std::string, std::string, std::string>::with<write_ack>,
  // put (table, key, value, wait_for): durable here and held by wait_for peers.
  caf::replies_to<put_atom, std::string, std::string, std::string,
                  uint32_t>::with<write_ack>,
  // put (table, keys, values): many writes in one message and one commit,
  // answered once all are durable here with the ack of the last one; the
  // writes got the consecutive seqs ending at its seq, in order. Refused as
  // a whole (nothing written) when one is bad or the sizes differ.
  caf::replies_to<put_atom, std::string, std::vector<std::string>,
                  std::vector<std::string>>::with<write_ack>,
  // delete (table, key) and delete (table, key, wait_for): writes a tombstone.
  caf::replies_to<delete_atom, std::string, std::string>::with<write_ack>,
  caf::replies_to<delete_atom, std::string, std::string, uint32_t>::with<write_ack>,
  // get (table, key): the live row, as zero or one rows.
  caf::replies_to<get_atom, std::string, std::string>::with<std::vector<state_row>>,
  // scan (table, prefix, limit): live rows in key order.
  caf::replies_to<scan_atom, std::string, std::string, uint64_t>::with<
    std::vector<state_row>>,
  // subscribe (table, subscriber): state_entry messages until it terminates.
  caf::reacts_to<subscribe_atom, std::string, caf::actor>,
  // digest: one hex hash per table, and this node's version vector.
  caf::replies_to<digest_atom>::with<std::map<std::string, std::string>,
                                     std::map<std::string, uint64_t>>,
  // inspect "state": replication facts and one row per peer (how far behind,
  // how it is being caught up), for brsh's `actor inspect NODE state`.
  caf::replies_to<inspect_atom, std::string>::with<actor_summary>,
  // -- peers ------------------------------------------------------------------
  // Entries a peer pushes (an empty batch is a probe); the reply is our
  // version vector after applying what we could.
  caf::replies_to<repl_batch>::with<std::map<std::string, uint64_t>>,
  caf::replies_to<state_snapshot>::with<std::map<std::string, uint64_t>>,
  // -- the local health actor and timers -------------------------------------
  caf::reacts_to<member_event>, caf::reacts_to<flush_atom>,
  caf::reacts_to<tick_atom>>;

struct state_options {
  fleet_config fleet; // every configured node is a peer and a known origin
  node_name self;
  std::shared_ptr<io::state_store> store; // opened by the caller
  health_actor health;                    // member events, peer lookup
  std::shared_ptr<io::metrics_registry> metrics;
  std::chrono::milliseconds wait_timeout{5000}; // bound for wait_for
};

// Spawns the state actor (detached), subscribed to `health`'s member events.
// The caller registers it with health as service "state".
state_actor spawn_state(caf::actor_system& sys, state_options opts);

} // namespace brd
