// Every message type that crosses an actor boundary, in one place. Each is
// plain data with an inspect() overload; register_message_types() (in
// type_registry.hpp) adds all of them to a config, so every node (and brsh)
// registers the same set and typed handles match across the network.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/type_id.hpp>
#include <caf/meta/type_name.hpp>

namespace brd {

// -- atoms (at most 10 characters) --------------------------------------------
using caf::get_atom;
using caf::put_atom;
using caf::delete_atom;
using hello_atom = caf::atom_constant<caf::atom("hello")>;
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using members_atom = caf::atom_constant<caf::atom("members")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using connected_atom = caf::atom_constant<caf::atom("connected")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using sample_atom = caf::atom_constant<caf::atom("sample")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using scan_atom = caf::atom_constant<caf::atom("scan")>;
using digest_atom = caf::atom_constant<caf::atom("digest")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;

// One reading of a node's own resources, taken every sample interval.
struct node_sample {
  int64_t taken_at_ms = 0;      // wall clock, ms since epoch
  double disk_used_pct = 0;     // of the data directory's filesystem
  uint64_t disk_total_bytes = 0;
  uint64_t disk_free_bytes = 0;
  double load1 = 0, load5 = 0, load15 = 0;
  uint64_t mem_total_bytes = 0;
  uint64_t mem_available_bytes = 0;
  uint64_t rss_bytes = 0;       // this brnode process
  uint64_t uptime_s = 0;        // this brnode process
  uint64_t host_uptime_s = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_sample& x) {
  return f(caf::meta::type_name("node_sample"), x.taken_at_ms, x.disk_used_pct,
           x.disk_total_bytes, x.disk_free_bytes, x.load1, x.load5, x.load15,
           x.mem_total_bytes, x.mem_available_bytes, x.rss_bytes, x.uptime_s,
           x.host_uptime_s);
}

// Exchanged once per connection, both ways. A node of another cluster or
// protocol version never gets this far: CAF's app identifiers refuse it.
struct hello_msg {
  std::string cluster;
  std::string node;
  uint64_t incarnation = 0;  // grows by one on every start of the node
  std::string version;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello_msg& x) {
  return f(caf::meta::type_name("hello_msg"), x.cluster, x.node, x.incarnation,
           x.version);
}

// Sent to every peer each heartbeat interval; the reply carries `sent_ns`
// back so the sender can measure the round trip.
struct heartbeat {
  std::string node;
  uint64_t incarnation = 0;
  uint64_t seq = 0;
  int64_t sent_ns = 0;  // sender's steady clock
  node_sample sample;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, heartbeat& x) {
  return f(caf::meta::type_name("heartbeat"), x.node, x.incarnation, x.seq,
           x.sent_ns, x.sample);
}

// What a node believes about a peer.
enum class member_state : uint8_t {
  unknown = 0,  // configured, never heard from
  alive,
  suspect,      // heartbeats late; phi above the suspect level
  down,         // failed: phi above threshold or connection lost
  left,         // stopped gracefully
};

std::string to_string(member_state s);

// A change of one peer's state, delivered to subscribers of the health actor.
struct member_event {
  std::string node;
  member_state from = member_state::unknown;
  member_state to = member_state::unknown;
  std::string reason;
  int64_t at_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_event& x) {
  return f(caf::meta::type_name("member_event"), x.node, x.from, x.to,
           x.reason, x.at_ms);
}

// One row of the membership table, as /health, /metrics and brsh show it.
struct member_view {
  std::string node;
  member_state state = member_state::unknown;
  double phi = 0;
  int64_t last_heartbeat_age_ms = -1;  // -1: never
  bool has_sample = false;
  node_sample sample;
  int64_t sample_age_ms = -1;
  std::string address;
  std::string version;
  uint64_t incarnation = 0;
  bool self = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_view& x) {
  return f(caf::meta::type_name("member_view"), x.node, x.state, x.phi,
           x.last_heartbeat_age_ms, x.has_sample, x.sample, x.sample_age_ms,
           x.address, x.version, x.incarnation, x.self);
}

// -- replicated state ---------------------------------------------------------

// One replicated write (and, as stored, one row): (table, key, value or
// tombstone) stamped with its hybrid logical clock time, its origin node and
// that origin's log sequence number. `value` is a msgpack record: a map with
// an integer "v" schema version (see io/state_store.hpp).
// `skipped`: a log entry read where a newer write had replaced its row (the
// log keeps no values; io/state_store.hpp). It carries no value: applying it
// advances its origin's sequence and changes no row, since the newer write
// travels in its own origin's log.
struct state_entry {
  std::string table;
  std::string key;
  std::string value;
  bool tombstone = false;
  uint64_t hlc = 0;
  std::string origin;
  uint64_t seq = 0;
  bool skipped = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, state_entry& x) {
  return f(caf::meta::type_name("state_entry"), x.table, x.key, x.value,
           x.tombstone, x.hlc, x.origin, x.seq, x.skipped);
}

using state_row = state_entry;

// A batch of log entries pushed from one node to a peer. `from` is the
// sender (entries may have other origins: nodes relay).
struct repl_batch {
  std::string from;
  std::vector<state_entry> entries;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, repl_batch& x) {
  return f(caf::meta::type_name("repl_batch"), x.from, x.entries);
}

// The reply to a local write: it is durable on the node that took it, as
// entry `seq` of `origin` (that node), stamped `hlc`.
struct write_ack {
  uint64_t hlc = 0;
  std::string origin;
  uint64_t seq = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, write_ack& x) {
  return f(caf::meta::type_name("write_ack"), x.hlc, x.origin, x.seq);
}

// Every row of every table plus the version vector they reflect, sent to a
// peer that is behind the truncated log: in chunks of rows in key order, so
// no message holds a whole table and heartbeats pass between them. The
// receiver merges each chunk's rows and raises its version vector with the
// last one only.
struct state_snapshot {
  std::string from;
  std::map<std::string, uint64_t> vv; // with the last chunk only
  std::vector<state_entry> rows;
  bool last = true; // false: more chunks follow
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, state_snapshot& x) {
  return f(caf::meta::type_name("state_snapshot"), x.from, x.vv, x.rows, x.last);
}

} // namespace brd
