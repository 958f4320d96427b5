// Internal to actors/state.cpp (local writes, timers, the behavior) and
// actors/state_sync.cpp (replication with peers): the state actor's state
// and the functions either file calls in the other. Not part of the actors
// API; nothing else should include this header.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/introspect.hpp"
#include "actors/state.hpp"
#include "io/metrics.hpp"
#include "io/state_store.hpp"

namespace brd::state_detail {

using clock = std::chrono::steady_clock;
using io::version_vector;

constexpr size_t batch_max_entries = 4096;
constexpr size_t batch_max_bytes = 1 << 20;
constexpr size_t max_in_flight = 2; // batches per peer awaiting its reply
constexpr size_t ring_max_bytes = 16 << 20;
constexpr uint64_t scan_max_rows = 100'000;
constexpr auto tick_interval = std::chrono::milliseconds(100);
constexpr uint64_t anti_entropy_every = 10; // ticks: once a second
constexpr uint64_t truncate_every = 10;     // ticks: every second (short stalls)
constexpr auto stall_timeout = std::chrono::milliseconds(300);
// A WAL fsync that takes longer fails its writes (a dying disk); the
// entries stay and become durable with a later sync.
constexpr auto sync_timeout = std::chrono::seconds(30);
constexpr auto peer_timeout = std::chrono::seconds(5);
constexpr auto snapshot_quiet = std::chrono::seconds(5); // a snapshot sender gave up
// How a receiver's refusal of a second peer's snapshot begins; that sender
// recognises it and says so once instead of at every retry.
inline constexpr const char* snapshot_busy = "busy: receiving a snapshot from ";
constexpr auto lookup_timeout = std::chrono::seconds(2);
constexpr auto lookup_retry = std::chrono::milliseconds(200);
constexpr auto relearn_grace = std::chrono::seconds(3);

using ack_promise = caf::typed_response_promise<write_ack>;

// The answer to a write: its own promise, or its share of a group (a put
// of many writes, answered once with the ack of the last one).
struct write_group {
  ack_promise promise;
  size_t open = 0; // writes not answered yet
  write_ack last;
  caf::error failure;
};

struct write_answer {
  ack_promise promise;
  std::shared_ptr<write_group> group;

  void deliver(write_ack ack) {
    if (!group) {
      promise.deliver(std::move(ack));
      return;
    }
    if (ack.seq > group->last.seq)
      group->last = std::move(ack);
    finish_one();
  }

  void deliver(caf::error err) {
    if (!group) {
      promise.deliver(std::move(err));
      return;
    }
    if (!group->failure)
      group->failure = std::move(err);
    finish_one();
  }

private:
  void finish_one() {
    if (--group->open > 0)
      return;
    if (group->failure)
      group->promise.deliver(group->failure);
    else
      group->promise.deliver(group->last);
  }
};

struct pending_write {
  io::local_write write;
  uint32_t wait_for = 0;
  write_answer answer;
  clock::time_point queued = clock::now();
};

// A write committed without a sync, waiting for the syncer.
struct unsynced_write {
  state_entry entry;
  uint32_t wait_for = 0;
  write_answer answer;
  clock::time_point queued;
};

// A durable write whose client waits for `peers` peers to hold it too.
struct pending_wait {
  write_ack ack;
  uint32_t peers = 0;
  clock::time_point deadline;
  ack_promise promise;
};

// Replication towards one peer.
struct peer_link {
  caf::actor handle;       // its state actor; invalid while not connected
  uint64_t generation = 0; // bumped on (dis)connect: stale replies are dropped
  bool looking_up = false;
  clock::time_point next_lookup{};
  bool heard = false;      // `acked` came from the peer during this run
  version_vector acked;    // its version vector, from its last reply
  version_vector sent;     // acked plus what is in flight
  // Per batch awaiting the peer's reply, oldest first: the highest seq it
  // carries per origin (replies come in order).
  std::deque<version_vector> in_flight;
  bool knows_vv = false;   // `sent` is based on a reply of this connection
  bool catching_up = true; // send from the store's log, not the ring
  bool hold = false;       // the last push failed: wait for anti-entropy
  bool probe_due = true;   // send an empty batch if there is nothing else
  bool needs_snapshot = false; // away, and the log no longer holds what it lacks
  // A snapshot being sent, chunk by chunk (nothing else goes meanwhile).
  std::optional<io::state_store::snapshot_cursor> snapshot;
  bool snapshot_busy = false; // it took another peer's first: retries are quiet
  clock::time_point last_reply{}; // its last answer to a push (brsh shows its age)
  // Per origin, when its seq in the peer's replies last grew (or caught up
  // with ours): no progress for stall_timeout means we relay that origin.
  std::map<std::string, clock::time_point> progress;
};

struct instruments {
  io::metrics_registry* registry = nullptr;
  io::counter* writes = nullptr;
  io::counter* held = nullptr; // flushes put off for a peer's backlog
  io::histogram* batch_size = nullptr;
  io::histogram* commit_time = nullptr;
  io::histogram* write_time = nullptr; // a local write's arrival to its durable ack
  io::histogram* lag = nullptr;
  io::gauge* log_entries = nullptr;
  io::counter* chunks_sent = nullptr;     // snapshot chunks
  io::counter* chunks_received = nullptr;
};

struct replica {
  static inline const char* name = "state";
  state_options opts;
  io::state_store* db = nullptr;
  std::map<std::string, peer_link> peers; // every configured node but self
  std::vector<pending_write> buffer;      // writes waiting for the next flush
  bool flush_pending = false;
  caf::actor syncer;                      // detached: fsyncs the WAL
  std::vector<unsynced_write> unsynced;   // the commit being synced
  bool syncing = false;
  clock::time_point commit_began;
  std::vector<pending_wait> waits;
  std::deque<state_entry> ring; // own recent commits, consecutive seqs
  size_t ring_bytes = 0;
  std::map<std::string, std::vector<caf::actor>> subscribers; // by table
  uint64_t ticks = 0;
  instruments metrics;
  // When each kind of refusal (reason and sender) was last logged: a peer
  // that keeps sending what we refuse (a clock far ahead) is logged once a
  // minute, and counted every time.
  std::map<std::string, clock::time_point> refusals_logged;
  // Per peer sending us a snapshot: rows, chunks and changed rows so far,
  // logged with its last chunk. One peer's snapshot at a time: while one
  // is coming (a chunk within snapshot_quiet), others' first chunks are
  // refused; those peers catch us up from their logs after it, or send
  // theirs then.
  struct incoming_snapshot {
    size_t rows = 0, chunks = 0, changed = 0;
    clock::time_point last_chunk;
  };
  std::map<std::string, incoming_snapshot> snapshots_in;
  // A store without writes of our own may have lost them (a wiped data
  // directory): until every peer answered, or relearn_grace passed, local
  // writes wait, so new ones never reuse a seq the peers hold.
  bool relearning = false;
  // The last commit failed for lack of disk space: logged once, and again
  // when writes succeed.
  bool disk_full = false;
  clock::time_point relearn_until;
};

using state_ptr = state_actor::stateful_pointer<replica>;

inline uint64_t seq_in(const version_vector& vv, const std::string& origin) {
  auto i = vv.find(origin);
  return i == vv.end() ? 0 : i->second;
}

inline size_t entry_bytes(const state_entry& e) {
  return e.table.size() + e.key.size() + e.value.size() + e.origin.size() + 32;
}


// -- in state.cpp --------------------------------------------------------------

// Counts a refused replicated input (metric label) and logs why.
void refused(replica& st, const std::string& label, const std::string& why);
// The metric label for one of the store's refusal sentences.
std::string reason_label(const std::string& sentence);
// Sends each entry to the subscribers of its table.
void notify(replica& st, const std::vector<state_entry>& entries);
// Answers the writes waiting for peers that now hold them, or timed out.
void settle_waits(replica& st);
// Flushes the buffered writes again (after backpressure held them back),
// unless a sync runs: its end flushes them.
void retry_held(state_ptr self);
// Ends `relearning` once the peers told us our own writes.
void check_relearned(state_ptr self);

// -- in state_sync.cpp ---------------------------------------------------------

// The first peer we stream to (not catching up, answered within
// stall_timeout) that lacks more than [cluster] replication_backlog of our
// durable entries, else nullptr. While there is one, local commits wait
// (flush()).
const std::string* backlogged_peer(const replica& st);
// Sends `peer` (every peer) the next batch it lacks, within max_in_flight.
void push(state_ptr self, const std::string& peer);
void push_all(state_ptr self);
// Asks health for `peer`'s state actor, unless known or asked recently.
void lookup(state_ptr self, const std::string& peer);
void on_member_event(state_ptr self, const member_event& ev);
// Drops the log entries the peers no longer need (every second).
void truncate_log(replica& st);
void on_down(state_ptr self, const caf::down_msg& dm);
caf::result<version_vector> receive_batch(state_ptr self, repl_batch& batch);
caf::result<version_vector> receive_snapshot(state_ptr self,
                                             state_snapshot& snap);

// -- in state_view.cpp ---------------------------------------------------------

// The state actor's metrics, registered once (none without a registry).
instruments make_instruments(io::metrics_registry* m);

// Facts and one row per peer, for brsh's `actor inspect NODE state`.
actor_summary summary_of(const replica& st);
// brnode_state_peer_behind_entries{peer}, every second.
void update_peer_gauges(replica& st);

} // namespace brd::state_detail
