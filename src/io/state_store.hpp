// The replicated fleet state as stored on one node: tables (RocksDB column
// families) of versioned rows, a per-origin replication log and a version
// vector, all in one io::store. Pure storage and merge logic; the state
// actor (actors/state.hpp) drives replication over the network.
//
// Merge rule: for each (table, key) the row with the highest (hlc, origin)
// wins, the same on every node. A delete is a row with tombstone = true.
// Log: every write that originated at node O gets the next seq of O
// (1, 2, 3, ... without gaps) and is kept in the `log` column family until
// every known peer has it, so it can be relayed to peers that lack it. A
// log entry keeps the write's table, key and stamp, not its value: the row
// holds that (one copy of each value in the memtables, WAL and SSTs, not
// two). Read back, an entry whose row a newer durable write has replaced
// comes out `skipped` (state_entry): it advances its origin's seq on the peer and
// changes no row there, and the newer write reaches the peer in its own
// origin's log.
// Version vector: for each origin, the highest seq applied here; entries
// are applied strictly in seq order per origin.
// Record values must be msgpack maps with an integer "v" schema version;
// this code reads major version 1 (v < 200) and refuses newer ones.
// Not thread-safe: one owner (the state actor) calls everything.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "runtime/hlc.hpp"
#include "runtime/messages.hpp"

namespace brd::io {

class store;

// The replicated tables. Internal column families: `log`, `vv`, `meta` and
// `tombstones` (an index of tombstone rows by (origin, seq), for truncate).
const std::vector<std::string>& replicated_tables();
// Every column family a node's store needs (tables + internal ones).
std::vector<std::string> state_column_families();

using version_vector = std::map<std::string, uint64_t>; // origin -> seq

// Why a record value cannot be stored ("corrupt value: ...", "unknown
// schema version ..."), or nullopt when it can.
std::optional<std::string> value_problem(std::string_view value);

// A write requested by a local client, before it has a timestamp.
struct local_write {
  std::string table;
  std::string key;
  std::optional<std::string> value; // nullopt: delete
};

// How far ahead of this node's wall clock a peer's timestamp may be.
inline constexpr uint64_t max_clock_ahead_ms = 60'000;

class state_store {
public:
  // `self` is this node's name, `known_origins` every node in the config:
  // entries from any other origin are refused.
  static caf::expected<std::unique_ptr<state_store>>
  open(store& db, std::string self, std::vector<std::string> known_origins);

  ~state_store();
  state_store(const state_store&) = delete;
  state_store& operator=(const state_store&) = delete;

  // Stamps the writes with HLC times and consecutive seqs of `self`, and
  // commits them, their log entries and the version vector in ONE RocksDB
  // write batch (group commit). With `sync` the batch is synced and durable
  // on return. Without it the batch is written (readable, and it survives a
  // kill -9 of the process, not a power cut) but counts as durable only
  // after sync() and mark_durable(): until then vv() and the log readers
  // (log_since, missing_for) do not show these entries.
  // Refuses the whole call, writing nothing: an unknown table
  // (store_failure), a value that is not a msgpack map with an integer "v"
  // or has v >= 200 (io_failure). No writes: returns {} and writes nothing.
  caf::expected<std::vector<state_entry>>
  commit(const std::vector<local_write>& writes, bool sync = true);

  // One fsync of the write-ahead log: every batch written before the call
  // is durable when it returns. The only member that may be called from
  // another thread while the owner keeps using the store (a commit thread).
  caf::error sync();

  // Own entries up to `seq` (committed without sync) are durable now: they
  // enter vv() and the log readers. Call after sync() returned.
  void mark_durable(uint64_t seq);

  // Applies entries from peers (any origin, relayed or not) in one batch
  // (WAL not synced: the origin holds them durably). Idempotent: entries at
  // or below the version vector are skipped. Refused with a reason, and
  // nothing of that origin applied past the problem: unknown origin, a gap
  // in seq, an unknown table, a corrupt value, an unknown schema version, or
  // a timestamp more than max_clock_ahead_ms ahead of this node's wall clock
  // (one node with a wrong clock would otherwise win every key and drag
  // every HLC forward for good; its entries are taken once our clock gets
  // there, or its clock is fixed and it writes again).
  // Entries of self are applied too when they are new (a node whose data
  // was lost relearns its own writes); its next seq moves past them.
  // A skipped entry (state_entry::skipped) is logged and changes no row.
  // An error only for a local failure (RocksDB); nothing is applied then.
  struct apply_result {
    // Every newly accepted entry, in order, including those that lost the
    // merge rule: all of them are in the log now (relay these).
    std::vector<state_entry> applied;
    // The subset of `applied` that won and changed a row (notify these).
    std::vector<state_entry> changed;
    std::vector<std::string> refused; // at most one sentence per origin
  };
  caf::expected<apply_result> apply(const std::vector<state_entry>& entries);

  // Log entries of `origin` with seq > after, consecutive, at most `limit`
  // (empty when vv()[origin] <= after), with their values read from their
  // rows, or skipped where a newer write replaced the row; the entries end
  // before one whose row holds a write of this node not yet durable (it
  // goes out once that write is). If the log no longer holds seq
  // after+1 (truncated, or skipped by a snapshot), returns an error of kind
  // brd_errc::store_failure "... truncated ..." and the caller sends a
  // snapshot.
  caf::expected<std::vector<state_entry>>
  log_since(const std::string& origin, uint64_t after, size_t limit) const;

  // What `peer_vv` lacks, across all origins, up to `limit` entries; sets
  // `needs_snapshot` when some origin's log was truncated past peer_vv.
  struct delta {
    std::vector<state_entry> entries;
    bool needs_snapshot = false;
  };
  caf::expected<delta> missing_for(const version_vector& peer_vv, size_t limit) const;

  // All rows of all tables (tombstones included), with the version vector
  // they reflect, in chunks: each call returns the rows from `at` on, in
  // table and key order, up to about `max_bytes` (at least one row), and
  // moves `at` past them. The chunk that ends the last table has last =
  // true and the version vector, taken when the first chunk was read (rows
  // read later are as new or newer, and tombstones stay until every peer
  // has them, so they reflect at least that vector). snapshot() is all of
  // it in one chunk.
  // Applying a chunk merges its rows by the rule; the last chunk also raises
  // the version vector to at least the snapshot's (synced write). Returns
  // the rows that changed. A chunk naming an unknown table or origin, or
  // holding a corrupt value or a row stamped too far ahead, is refused
  // whole (io_failure).
  struct snapshot_cursor {
    version_vector vv;
    size_t table = 0;  // index into replicated_tables()
    std::string from;  // the next chunk starts at this key of that table
    bool started = false;
    size_t rows = 0, chunks = 0; // read so far
  };
  caf::expected<state_snapshot> snapshot(snapshot_cursor& at, size_t max_bytes) const;
  caf::expected<state_snapshot> snapshot() const;
  caf::expected<std::vector<state_entry>> apply_snapshot(const state_snapshot& snap);

  // Drops log entries every peer in `peer_vvs` has, and tombstones whose
  // (origin, seq) every peer has. Pass one version vector per known peer
  // (every known origin but self; an origin missing from a vector counts as
  // 0); with fewer vectors than peers neither goes by this rule. Tombstones
  // are only dropped while this node holds everything any peer reported, so
  // no older write can come later.
  // Past the newest `keep` entries of an origin, older entries go as well
  // once every peer in `connected_vvs` has them: the log does not grow
  // without bound while a peer is away, and that peer is caught up with a
  // snapshot (rows, tombstones included) when it returns. keep = 0: no bound.
  struct truncation {
    size_t dropped = 0;      // log entries that went
    version_vector through;  // per origin: the log now starts after this seq
  };
  caf::expected<truncation> truncate(const std::vector<version_vector>& peer_vvs,
                                     const std::vector<version_vector>& connected_vvs = {},
                                     uint64_t keep = 0);

  // Reads (local only). Tombstoned rows are absent from get/scan. A name
  // that is not a replicated table is an error (store_failure).
  caf::expected<std::optional<state_row>> get(const std::string& table,
                                              const std::string& key) const;
  caf::expected<std::vector<state_row>> scan(const std::string& table,
                                             const std::string& prefix,
                                             size_t limit) const;

  // For self: the highest durable seq (see commit()).
  const version_vector& vv() const { return vv_; }
  // Entries in the replication log, all origins (counted at open, then kept
  // up to date by commit, apply and truncate).
  size_t log_entries() const { return log_entries_; }
  hlc_clock& clock() { return clock_; }

  // One hex hash per table over its live rows (key, value, hlc, origin) in
  // key order: equal digests mean converged tables. The hash is FNV-1a 64
  // over length-prefixed fields (16 hex digits): a convergence check, not
  // a cryptographic one.
  caf::expected<std::map<std::string, std::string>> digest() const;

private:
  state_store(store& db, std::string self, std::vector<std::string> origins);
  caf::error load();
  bool known_origin(const std::string& origin) const;
  // Moves vv_, next_seq_ and hlc_floor_ after a successful write.
  void raise(const version_vector& vv);
  // The highest seq of `origin` written here, durable or not.
  uint64_t written(const std::string& origin) const;

  store& db_;
  std::string self_;
  size_t log_entries_ = 0; // counted at open, then kept up to date
  // Per origin, what truncate() needs to know to drop entries without
  // walking them: the log holds every seq above `floor` (up to what was
  // written) except the `gaps` a snapshot left (it raised the vector past
  // the log). Counting 25,000 keys a second had cost the state actor 15-80
  // ms a second under load. A store opened with gaps of earlier runs
  // (its count at open does not match) counts by walking until `floor`
  // passes `walk_until`.
  struct log_span {
    uint64_t floor = 0;
    uint64_t walk_until = 0;
    std::vector<std::pair<uint64_t, uint64_t>> gaps; // [first, last] not in the log
  };
  std::map<std::string, log_span> log_spans_;
  caf::error load_log_spans();
  // Log entries of `origin` in (span.floor, last].
  caf::expected<size_t> entries_through(const std::string& origin, uint64_t last);
  std::vector<std::string> origins_; // sorted, includes self
  version_vector vv_;  // self: durable entries only
  uint64_t next_seq_ = 1; // self: after every written entry
  hlc_time hlc_floor_ = 0; // highest hlc stored in any row (meta "hlc")
  hlc_clock clock_;
};

} // namespace brd::io
