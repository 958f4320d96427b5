#include "actors/state.hpp"

// Protocol between state actors (one per node, found through each node's
// health actor under the service name "state"):
//
// - For every connected peer P this node keeps `sent`, the version vector P
//   holds plus what is in flight to it, and pushes repl_batch{self, entries}
//   with at most max_in_flight batches unanswered (a slow peer gets bigger
//   batches, not more of them). P applies what follows its version
//   vector without gaps (state_store::apply, idempotent) and replies with its
//   version vector, which becomes `acked`. An empty batch is a probe: on
//   connect it learns P's vector, and every anti_entropy_every ticks it
//   notices anything P lost.
// - This node's own new entries go out at once, from the ring: an in-memory
//   tail of its recent commits (consecutive seqs).
// - Other origins' entries are relayed only to a peer that stalls on them:
//   its replies show no progress on origin O for stall_timeout while we hold
//   newer entries of O (it is cut off from O, or O's stream to it broke).
//   A healthy mesh thus carries each entry once per peer, and a node cut off
//   from an origin but not from us still converges.
// - A stalled peer, one whose reply shows it lacks something we sent, or one
//   that fell behind the ring, is caught up from the store's log
//   (missing_for, all origins); if the log was truncated past its vector it
//   gets a snapshot of all tables.
// - The log is truncated when every configured peer (live or not) has
//   acknowledged the entries.
//
// Writes are buffered and committed by a flush message sent to ourselves, so
// every write queued in the mailbox meanwhile shares one synced commit.

#include <algorithm>
#include <deque>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "io/metrics.hpp"
#include "io/state_store.hpp"
#include "runtime/errors.hpp"
#include "runtime/hlc.hpp"
#include "runtime/log.hpp"

namespace brd {

namespace {

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
constexpr auto peer_timeout = std::chrono::seconds(5);
constexpr auto lookup_timeout = std::chrono::seconds(2);
constexpr auto lookup_retry = std::chrono::milliseconds(200);
constexpr auto relearn_grace = std::chrono::seconds(3);

using ack_promise = caf::typed_response_promise<write_ack>;

struct pending_write {
  io::local_write write;
  uint32_t wait_for = 0;
  ack_promise promise;
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
  // Per origin, when its seq in the peer's replies last grew (or caught up
  // with ours): no progress for stall_timeout means we relay that origin.
  std::map<std::string, clock::time_point> progress;
};

struct instruments {
  io::metrics_registry* registry = nullptr;
  io::counter* writes = nullptr;
  io::histogram* batch_size = nullptr;
  io::histogram* commit_time = nullptr;
  io::histogram* lag = nullptr;
};

struct replica {
  static inline const char* name = "state";
  state_options opts;
  io::state_store* db = nullptr;
  std::map<std::string, peer_link> peers; // every configured node but self
  std::vector<pending_write> buffer;      // writes waiting for the next flush
  bool flush_pending = false;
  std::vector<pending_wait> waits;
  std::deque<state_entry> ring; // own recent commits, consecutive seqs
  size_t ring_bytes = 0;
  std::map<std::string, std::vector<caf::actor>> subscribers; // by table
  uint64_t ticks = 0;
  instruments metrics;
  // A store without writes of our own may have lost them (a wiped data
  // directory): until every peer answered, or relearn_grace passed, local
  // writes wait, so new ones never reuse a seq the peers hold.
  bool relearning = false;
  clock::time_point relearn_until;
};

using state_ptr = state_actor::stateful_pointer<replica>;

uint64_t seq_in(const version_vector& vv, const std::string& origin) {
  auto i = vv.find(origin);
  return i == vv.end() ? 0 : i->second;
}

size_t entry_bytes(const state_entry& e) {
  return e.table.size() + e.key.size() + e.value.size() + e.origin.size() + 32;
}

instruments make_instruments(io::metrics_registry* m) {
  instruments out;
  if (m == nullptr)
    return out;
  out.registry = m;
  out.writes = &m->counter("brnode_state_writes_total",
                           "Local writes committed durably by the state actor");
  out.batch_size = &m->histogram(
    "brnode_state_commit_batch_size", "Writes per synced commit (group commit)",
    {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192});
  out.commit_time = &m->histogram(
    "brnode_state_commit_seconds", "Time of one synced group commit",
    {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1});
  // Every reason at 0 from the start, so dashboards see the series.
  for (const char* reason : {"unknown_sender", "unknown_origin", "gap", "corrupt_value",
                             "unknown_schema", "unknown_table", "other"})
    m->counter("brnode_state_rejected_total",
               "Replicated entries or batches refused, by reason",
               {{"reason", reason}});
  out.lag = &m->histogram(
    "brnode_state_replication_lag_seconds",
    "Time from a write's commit at its origin to its apply here (HLC wall time)",
    {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  return out;
}

// -- refusals -----------------------------------------------------------------

// The metric label for one of the store's refusal sentences
// (io/state_store.cpp words them).
std::string reason_label(const std::string& sentence) {
  for (auto [words, label] :
       {std::pair{"unknown schema version", "unknown_schema"},
        {"corrupt value", "corrupt_value"}, {"unknown table", "unknown_table"},
        {"gap in sequence", "gap"}, {"unknown node", "unknown_origin"}})
    if (sentence.find(words) != std::string::npos)
      return label;
  return "other";
}

void refused(replica& st, const std::string& label, const std::string& why) {
  log::state()->warn("refused replicated input: {}", why);
  if (st.metrics.registry != nullptr)
    st.metrics.registry
      ->counter("brnode_state_rejected_total",
                "Replicated entries or batches refused, by reason",
                {{"reason", label}})
      .inc();
}

// -- entries committed or applied here ------------------------------------------

void notify(replica& st, const std::vector<state_entry>& entries) {
  if (st.subscribers.empty())
    return;
  for (const auto& e : entries) {
    auto i = st.subscribers.find(e.table);
    if (i != st.subscribers.end())
      for (const auto& sub : i->second)
        caf::anon_send(sub, e);
  }
}

// Keeps this node's new commits in the ring, dropping the oldest past its
// size bound (peers that still need those are caught up from the log).
void remember(replica& st, std::vector<state_entry>&& committed) {
  if (!committed.empty() && !st.ring.empty()
      && committed.front().seq != st.ring.back().seq + 1) {
    st.ring.clear(); // our seq jumped (we relearned lost writes of ours)
    st.ring_bytes = 0;
  }
  for (auto& e : committed) {
    st.ring_bytes += entry_bytes(e);
    st.ring.push_back(std::move(e));
  }
  while (st.ring_bytes > ring_max_bytes && !st.ring.empty()) {
    st.ring_bytes -= entry_bytes(st.ring.front());
    st.ring.pop_front();
  }
}

void push(state_ptr self, const std::string& peer);

void push_all(state_ptr self) {
  for (auto& [name, link] : self->state.peers)
    push(self, name);
}

// -- waiting for peers ------------------------------------------------------------

uint32_t holders(const replica& st, uint64_t seq) {
  uint32_t n = 0;
  for (const auto& [name, link] : st.peers)
    if (seq_in(link.acked, st.opts.self) >= seq)
      ++n;
  return n;
}

void settle_waits(replica& st) {
  auto now = clock::now();
  std::erase_if(st.waits, [&](pending_wait& w) {
    if (holders(st, w.ack.seq) >= w.peers) {
      w.promise.deliver(w.ack);
      return true;
    }
    if (now < w.deadline)
      return false;
    w.promise.deliver(make_error(
      brd_errc::timeout, "the write is durable here, but only "
                           + std::to_string(holders(st, w.ack.seq)) + " of "
                           + std::to_string(w.peers)
                           + " peers confirmed it in time; it keeps "
                             "replicating"));
    return true;
  });
}

// -- local writes ---------------------------------------------------------------

caf::error check_write(const replica& st, const io::local_write& w,
                       uint32_t wait_for) {
  const auto& tables = io::replicated_tables();
  if (std::find(tables.begin(), tables.end(), w.table) == tables.end())
    return make_error(brd_errc::refused, "no replicated table '" + w.table + "'");
  if (w.key.empty())
    return make_error(brd_errc::refused, "the key is empty");
  if (wait_for > st.peers.size())
    return make_error(brd_errc::refused,
                      "wait_for " + std::to_string(wait_for) + " exceeds the "
                        + std::to_string(st.peers.size())
                        + " peers in the config");
  return caf::none;
}

caf::result<write_ack> enqueue(state_ptr self, io::local_write w,
                               uint32_t wait_for) {
  auto& st = self->state;
  if (auto err = check_write(st, w, wait_for))
    return err;
  auto promise = self->make_response_promise<write_ack>();
  st.buffer.push_back({std::move(w), wait_for, promise});
  if (!st.flush_pending) {
    st.flush_pending = true;
    self->send(self, flush_atom::value);
  }
  return promise;
}

// Commits `writes` in one synced batch. The store refuses a whole batch for
// one bad value: then each write is committed alone, so only it fails.
std::vector<caf::expected<state_entry>>
commit_all(replica& st, const std::vector<io::local_write>& writes) {
  std::vector<caf::expected<state_entry>> out;
  auto committed = st.db->commit(writes);
  if (committed && committed->size() == writes.size()) {
    for (auto& e : *committed)
      out.emplace_back(std::move(e));
    return out;
  }
  for (const auto& w : writes) {
    auto one = writes.size() == 1 ? std::move(committed)
                                  : st.db->commit({w});
    if (one && one->size() == 1)
      out.emplace_back(std::move(one->front()));
    else
      out.emplace_back(one ? make_error(brd_errc::store_failure,
                                        "the store committed no entry")
                           : make_error(brd_errc::refused,
                                        describe(one.error())));
  }
  return out;
}

// Commits every buffered write with one synced batch, then answers them.
void flush(state_ptr self) {
  auto& st = self->state;
  st.flush_pending = false;
  if (st.buffer.empty() || st.relearning)
    return;
  auto pending = std::move(st.buffer);
  st.buffer.clear();
  std::vector<io::local_write> writes;
  writes.reserve(pending.size());
  for (auto& p : pending)
    writes.push_back(std::move(p.write));
  auto began = clock::now();
  auto results = commit_all(st, writes);
  if (st.metrics.commit_time != nullptr)
    st.metrics.commit_time->observe(
      std::chrono::duration<double>(clock::now() - began).count());
  auto deadline = clock::now() + st.opts.wait_timeout;
  std::vector<state_entry> committed;
  committed.reserve(results.size());
  for (size_t i = 0; i < pending.size(); ++i) {
    if (!results[i]) {
      log::state()->debug("write refused: {}", describe(results[i].error()));
      pending[i].promise.deliver(results[i].error());
      continue;
    }
    write_ack ack{results[i]->hlc, results[i]->origin, results[i]->seq};
    if (pending[i].wait_for == 0)
      pending[i].promise.deliver(ack);
    else
      st.waits.push_back({ack, pending[i].wait_for, deadline,
                          std::move(pending[i].promise)});
    committed.push_back(std::move(*results[i]));
  }
  if (st.metrics.registry != nullptr && !committed.empty()) {
    st.metrics.writes->add(static_cast<double>(committed.size()));
    st.metrics.batch_size->observe(static_cast<double>(committed.size()));
  }
  notify(st, committed);
  remember(st, std::move(committed));
  push_all(self);
}

// Ends `relearning` once every peer holds no write of ours that we lack, or
// the grace period is over (some peer is unreachable: we cannot know).
void check_relearned(state_ptr self) {
  auto& st = self->state;
  if (!st.relearning)
    return;
  auto ours = seq_in(st.db->vv(), st.opts.self);
  bool known = std::all_of(st.peers.begin(), st.peers.end(), [&](const auto& kv) {
    return kv.second.heard && seq_in(kv.second.acked, st.opts.self) <= ours;
  });
  if (!known && clock::now() < st.relearn_until)
    return;
  st.relearning = false;
  if (ours > 0)
    log::state()->info("relearned {} writes of ours from peers (lost data?)", ours);
  else if (!known)
    log::state()->info("not every peer answered within {} s; writing anyway",
                       relearn_grace.count());
  if (!st.buffer.empty() && !st.flush_pending) {
    st.flush_pending = true;
    self->send(self, flush_atom::value);
  }
}

// -- pushing to peers ---------------------------------------------------------------

// Copies the ring entries the peer lacks into `out`, as far as batch limits
// allow. False when it lacks entries the ring no longer holds.
bool collect(const replica& st, peer_link& link, std::vector<state_entry>& out) {
  auto from = seq_in(link.sent, st.opts.self) + 1;
  if (from > seq_in(st.db->vv(), st.opts.self))
    return true; // it has (or is being sent) all of ours
  if (st.ring.empty() || from < st.ring.front().seq)
    return false;
  auto first = st.ring.front().seq;
  size_t bytes = 0;
  for (auto i = from - first; i < st.ring.size(); ++i) {
    if (out.size() >= batch_max_entries || bytes >= batch_max_bytes)
      break;
    out.push_back(st.ring[i]);
    bytes += entry_bytes(out.back());
  }
  if (!out.empty())
    link.sent[st.opts.self] = out.back().seq;
  return true;
}

void on_reply(state_ptr self, const std::string& peer, uint64_t generation,
              version_vector theirs);

void on_push_failed(state_ptr self, const std::string& peer,
                    uint64_t generation, const caf::error& err) {
  auto& link = self->state.peers.at(peer);
  if (link.generation != generation)
    return;
  log::state()->debug("push to peer {} failed: {}", peer, describe(err));
  ++link.generation; // later replies of this stream are stale
  link.in_flight.clear();
  link.knows_vv = false; // probe again with anti-entropy
  link.hold = link.catching_up = true;
  link.sent.clear();
}

template <class Message>
void send_to_peer(state_ptr self, const std::string& peer, Message msg,
                  version_vector carried) {
  auto& link = self->state.peers.at(peer);
  link.in_flight.push_back(std::move(carried));
  link.probe_due = false;
  auto generation = link.generation;
  // High priority: a peer handles replication before its local writes, so
  // replication lag does not grow with the depth of its write queue.
  self->request<caf::message_priority::high>(link.handle, peer_timeout,
                                             std::move(msg))
    .then(
      [=](version_vector& theirs) {
        on_reply(self, peer, generation, std::move(theirs));
      },
      [=](caf::error& err) { on_push_failed(self, peer, generation, err); });
}

void send_snapshot(state_ptr self, const std::string& peer) {
  auto& st = self->state;
  auto& link = st.peers.at(peer);
  auto snap = st.db->snapshot();
  if (!snap) {
    log::state()->warn("cannot make a snapshot for peer {}: {}", peer,
                       describe(snap.error()));
    link.hold = true;
    return;
  }
  log::state()->info("peer {} is behind the truncated log: sending a "
                     "snapshot of {} rows",
                     peer, snap->rows.size());
  snap->from = st.opts.self;
  for (const auto& [origin, seq] : snap->vv)
    link.sent[origin] = std::max(seq_in(link.sent, origin), seq);
  link.catching_up = false;
  auto carried = snap->vv;
  send_to_peer(self, peer, std::move(*snap), std::move(carried));
}

// Sends `peer` the next batch it lacks, unless max_in_flight are.
void push(state_ptr self, const std::string& peer) {
  auto& st = self->state;
  auto& link = st.peers.at(peer);
  if (!link.handle || link.hold || link.in_flight.size() >= max_in_flight
      || (!link.knows_vv && !link.in_flight.empty()))
    return;
  repl_batch batch{st.opts.self, {}};
  if (!link.knows_vv) {
    // A probe first: what it lacks depends on its version vector.
  } else if (link.catching_up) {
    auto delta = st.db->missing_for(link.sent, batch_max_entries);
    if (!delta) {
      log::state()->warn("cannot read the log for peer {}: {}", peer,
                         describe(delta.error()));
      link.hold = true;
      return;
    }
    if (delta->needs_snapshot) {
      send_snapshot(self, peer);
      return;
    }
    if (delta->entries.size() < batch_max_entries)
      link.catching_up = false; // the ring has what comes next
    batch.entries = std::move(delta->entries);
  } else if (!collect(st, link, batch.entries)) {
    link.catching_up = true;
    push(self, peer);
    return;
  }
  if (batch.entries.empty() && !link.probe_due && link.knows_vv)
    return;
  version_vector carried;
  for (const auto& e : batch.entries) {
    carried[e.origin] = std::max(carried[e.origin], e.seq);
    link.sent[e.origin] = std::max(seq_in(link.sent, e.origin), e.seq);
  }
  send_to_peer(self, peer, std::move(batch), std::move(carried));
}

// Notes the peer's progress per origin; true when it stalls on an origin
// of which we hold newer entries.
bool stalled(const replica& st, peer_link& link, const version_vector& theirs) {
  auto now = clock::now();
  bool stuck = false;
  for (const auto& [origin, ours] : st.db->vv()) {
    if (origin == st.opts.self)
      continue;
    auto have = seq_in(theirs, origin);
    auto [at, fresh] = link.progress.try_emplace(origin, now);
    if (fresh || have >= ours || have > seq_in(link.acked, origin))
      at->second = now;
    else if (now - at->second > stall_timeout)
      stuck = true;
  }
  return stuck;
}

void on_reply(state_ptr self, const std::string& peer, uint64_t generation,
              version_vector theirs) {
  auto& st = self->state;
  auto& link = st.peers.at(peer);
  if (link.generation != generation || link.in_flight.empty())
    return;
  auto carried = std::move(link.in_flight.front());
  link.in_flight.pop_front();
  link.heard = link.knows_vv = true;
  bool lost = std::any_of(carried.begin(), carried.end(), [&](auto& kv) {
    return seq_in(theirs, kv.first) < kv.second;
  });
  if (lost) {
    log::state()->debug("peer {} did not keep entries we sent: catching it "
                        "up from its version vector",
                        peer);
    ++link.generation; // the reply to a later batch would mislead
    link.in_flight.clear();
    link.sent = theirs;
    link.catching_up = true;
    link.hold = true; // it refused part of a batch: retry with anti-entropy
  } else {
    if (stalled(st, link, theirs) && !link.catching_up) {
      log::state()->debug("peer {} makes no progress on entries we hold: "
                          "relaying them",
                          peer);
      link.catching_up = true;
    }
    for (const auto& [origin, seq] : theirs)
      link.sent[origin] = std::max(seq_in(link.sent, origin), seq);
  }
  link.acked = std::move(theirs);
  settle_waits(st);
  check_relearned(self);
  push(self, peer);
}

// -- connecting to peers ----------------------------------------------------------------

void adopt(state_ptr self, const std::string& peer, caf::actor handle) {
  auto& link = self->state.peers.at(peer);
  log::state()->info("replicating with peer {}", peer);
  self->monitor(handle);
  link.handle = std::move(handle);
  ++link.generation;
  link.in_flight.clear();
  link.hold = link.knows_vv = false;
  link.catching_up = true;
  link.progress.clear();
  link.sent.clear();
  push(self, peer);
}

void drop(state_ptr self, const std::string& peer, const std::string& why) {
  auto& link = self->state.peers.at(peer);
  if (!link.handle)
    return;
  log::state()->info("stopped replicating with peer {}: {}", peer, why);
  self->demonitor(link.handle);
  link.handle = nullptr;
  ++link.generation;
  link.in_flight.clear();
  link.next_lookup = clock::now() + lookup_retry;
}

void lookup(state_ptr self, const std::string& peer) {
  auto& st = self->state;
  auto& link = st.peers.at(peer);
  auto now = clock::now();
  if (link.handle || link.looking_up || now < link.next_lookup)
    return;
  link.looking_up = true;
  auto retry = [=] {
    auto& l = self->state.peers.at(peer);
    l.looking_up = false;
    l.next_lookup = clock::now() + lookup_retry;
  };
  self
    ->request(st.opts.health, lookup_timeout, get_atom::value, peer,
              std::string{"state"})
    .then(
      [=](caf::actor& handle) {
        if (!handle) {
          retry(); // the peer runs, but its state actor is not registered yet
          return;
        }
        self->state.peers.at(peer).looking_up = false;
        if (!self->state.peers.at(peer).handle)
          adopt(self, peer, std::move(handle));
      },
      [=](caf::error&) { retry(); });
}

void on_member_event(state_ptr self, const member_event& ev) {
  auto& st = self->state;
  auto i = st.peers.find(ev.node);
  if (i == st.peers.end())
    return;
  if (ev.to == member_state::alive) {
    i->second.next_lookup = {};
    lookup(self, ev.node);
  } else if (ev.to == member_state::down || ev.to == member_state::left) {
    drop(self, ev.node, "it is " + to_string(ev.to));
  }
}

void on_down(state_ptr self, const caf::down_msg& dm) {
  auto& st = self->state;
  for (auto& [name, link] : st.peers)
    if (link.handle && link.handle.address() == dm.source) {
      drop(self, name, "its state actor went away");
      return;
    }
  for (auto& [table, subs] : st.subscribers)
    std::erase_if(subs, [&](const caf::actor& a) {
      return a.address() == dm.source;
    });
}

// -- from peers -------------------------------------------------------------------

bool known_sender(replica& st, const std::string& from, size_t entries,
                  const char* what) {
  if (from != st.opts.self && st.peers.count(from) > 0)
    return true;
  refused(st, "unknown_sender",
          std::string{what} + " of " + std::to_string(entries)
            + " entries from '" + from
            + "', which is not a peer in this fleet's config");
  return false;
}

void observe_lag(replica& st, const std::vector<state_entry>& applied) {
  if (st.metrics.lag == nullptr || applied.empty())
    return;
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  for (const auto& e : applied) {
    auto lag_us = now_us - static_cast<int64_t>(hlc_wall_ms(e.hlc)) * 1000;
    st.metrics.lag->observe(static_cast<double>(std::max<int64_t>(lag_us, 0))
                            / 1e6);
  }
}

caf::result<version_vector> receive_batch(state_ptr self, repl_batch& batch) {
  auto& st = self->state;
  if (!known_sender(st, batch.from, batch.entries.size(), "a replication batch"))
    return make_error(brd_errc::unknown_node,
                      "'" + batch.from + "' is not in the fleet config");
  if (batch.entries.empty())
    return st.db->vv();
  auto result = st.db->apply(batch.entries);
  if (!result) {
    log::state()->error("cannot apply {} entries from {}: {}",
                        batch.entries.size(), batch.from,
                        describe(result.error()));
    return std::move(result.error());
  }
  for (const auto& why : result->refused)
    refused(st, reason_label(why), "from " + batch.from + ": " + why);
  observe_lag(st, result->applied);
  notify(st, result->changed);
  return st.db->vv();
}

caf::result<version_vector> receive_snapshot(state_ptr self,
                                             state_snapshot& snap) {
  auto& st = self->state;
  if (!known_sender(st, snap.from, snap.rows.size(), "a snapshot"))
    return make_error(brd_errc::unknown_node,
                      "'" + snap.from + "' is not in the fleet config");
  auto changed = st.db->apply_snapshot(snap);
  if (!changed) {
    refused(st, reason_label(describe(changed.error())),
            "snapshot from " + snap.from + ": " + describe(changed.error()));
    return std::move(changed.error());
  }
  log::state()->info("applied a snapshot from {}: {} rows, {} changed here",
                     snap.from, snap.rows.size(), changed->size());
  // Snapshot rows are not log entries: peers that need them get a snapshot
  // of ours (their replies show what they lack).
  notify(st, *changed);
  return st.db->vv();
}

// -- timers -------------------------------------------------------------------------

void truncate_log(replica& st) {
  std::vector<version_vector> held;
  for (const auto& [name, link] : st.peers) {
    if (!link.heard)
      return; // a peer we have not heard from may need anything
    held.push_back(link.acked);
  }
  auto dropped = st.db->truncate(held);
  if (!dropped)
    log::state()->warn("cannot truncate the log: {}",
                       describe(dropped.error()));
  else if (*dropped > 0)
    log::state()->debug("truncated {} log entries every peer holds", *dropped);
}

void tick(state_ptr self) {
  auto& st = self->state;
  ++st.ticks;
  bool probe = st.ticks % anti_entropy_every == 0;
  for (auto& [name, link] : st.peers) {
    if (probe) { // a failed or refused push is retried once a second
      link.hold = false;
      link.probe_due = true;
    }
    if (link.handle)
      push(self, name);
    else
      lookup(self, name);
  }
  settle_waits(st);
  check_relearned(self);
  if (st.ticks % truncate_every == 0)
    truncate_log(st);
  self->delayed_send(self, tick_interval, tick_atom::value);
}

std::vector<state_row> rows_or_empty(std::optional<state_row> row) {
  std::vector<state_row> out;
  if (row)
    out.push_back(std::move(*row));
  return out;
}

state_actor::behavior_type state_behavior(state_ptr self, state_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.db = st.opts.store.get();
  for (const auto& n : st.opts.fleet.nodes)
    if (n.name != st.opts.self)
      st.peers[n.name];
  st.metrics = make_instruments(st.opts.metrics.get());
  st.relearning = seq_in(st.db->vv(), st.opts.self) == 0 && !st.peers.empty();
  st.relearn_until = clock::now() + relearn_grace;
  self->set_down_handler([=](caf::down_msg& dm) { on_down(self, dm); });
  self->send(st.opts.health, subscribe_atom::value,
             caf::actor_cast<caf::actor>(self));
  self->send(self, tick_atom::value);
  using write_result = caf::result<write_ack>;
  using rows_result = caf::result<std::vector<state_row>>;
  return {
    [=](put_atom, std::string& table, std::string& key,
        std::string& value) -> write_result {
      return enqueue(self, {std::move(table), std::move(key), std::move(value)}, 0);
    },
    [=](put_atom, std::string& table, std::string& key, std::string& value,
        uint32_t wait_for) -> write_result {
      return enqueue(self, {std::move(table), std::move(key), std::move(value)},
                     wait_for);
    },
    [=](delete_atom, std::string& table, std::string& key) -> write_result {
      return enqueue(self, {std::move(table), std::move(key), std::nullopt}, 0);
    },
    [=](delete_atom, std::string& table, std::string& key,
        uint32_t wait_for) -> write_result {
      return enqueue(self, {std::move(table), std::move(key), std::nullopt},
                     wait_for);
    },
    [=](get_atom, const std::string& table, const std::string& key) -> rows_result {
      auto row = self->state.db->get(table, key);
      if (!row)
        return std::move(row.error());
      return rows_or_empty(std::move(*row));
    },
    [=](scan_atom, const std::string& table, const std::string& prefix,
        uint64_t limit) -> rows_result {
      auto rows = self->state.db->scan(table, prefix,
                                       std::min(limit, scan_max_rows));
      if (!rows)
        return std::move(rows.error());
      return std::move(*rows);
    },
    [=](subscribe_atom, std::string& table, caf::actor& subscriber) {
      self->monitor(subscriber);
      self->state.subscribers[table].push_back(std::move(subscriber));
    },
    [=](digest_atom)
      -> caf::result<std::map<std::string, std::string>, version_vector> {
      auto digests = self->state.db->digest();
      if (!digests)
        return std::move(digests.error());
      return {std::move(*digests), self->state.db->vv()};
    },
    [=](repl_batch& batch) { return receive_batch(self, batch); },
    [=](state_snapshot& snap) { return receive_snapshot(self, snap); },
    [=](const member_event& ev) { on_member_event(self, ev); },
    [=](flush_atom) { flush(self); },
    [=](tick_atom) { tick(self); },
  };
}

} // namespace

state_actor spawn_state(caf::actor_system& sys, state_options opts) {
  return sys.spawn<caf::detached>(state_behavior, std::move(opts));
}

} // namespace brd
