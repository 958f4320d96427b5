// Replication of the state actor with its peers: pushing batches, their
// replies, snapshots, finding peers' state actors, and applying what peers
// push. Local writes, timers and the behavior are in actors/state.cpp; the
// state both files share is in actors/state_replica.hpp.
//
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
//   gets a snapshot of all tables, in chunks of about batch_max_bytes (one
//   per push, within max_in_flight; the last carries the version vector),
//   so a table of hundreds of MB never makes one message or one timeout.
// - The log is truncated when every configured peer (live or not) has
//   acknowledged the entries; while a peer is away, also past the newest
//   [cluster] log_keep entries per origin that every connected peer holds
//   (truncate_log).
#include <algorithm>

#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/state_replica.hpp"
#include "io/metrics.hpp"
#include "io/state_store.hpp"
#include "runtime/errors.hpp"
#include "runtime/hlc.hpp"
#include "runtime/log.hpp"

namespace brd::state_detail {

void push_all(state_ptr self) {
  for (auto& [name, link] : self->state.peers)
    push(self, name);
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
  auto why = describe(err);
  bool busy = link.snapshot && why.rfind(snapshot_busy, 0) == 0; // another peer's goes first
  if (busy && !link.snapshot_busy)
    log::state()->info("peer {} takes another peer's snapshot first ({}); "
                       "ours waits, and may not be needed after it",
                       peer, why);
  link.snapshot_busy = link.snapshot_busy || busy;
  if (link.snapshot && !busy)
    log::state()->info("stopped sending peer {} its snapshot after {} chunk(s): "
                       "{}; anti-entropy tries again",
                       peer, link.snapshot->chunks, why);
  else
    log::state()->debug("push to peer {} failed: {}", peer, why);
  ++link.generation; // later replies of this stream are stale
  link.in_flight.clear();
  link.snapshot.reset(); // a new one starts from its version vector
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

// Sends `peer` the next chunk of its snapshot (the first: starts one). The
// last chunk carries the version vector; until it is answered the peer
// gets nothing else.
void send_snapshot(state_ptr self, const std::string& peer) {
  auto& st = self->state;
  auto& link = st.peers.at(peer);
  bool first = !link.snapshot;
  if (first)
    link.snapshot.emplace();
  // Rows of a commit of ours still being synced must not leave before they
  // are durable here (a crash could lose them here, not there, and their
  // seqs would be reused): sync first; snapshots are rare.
  auto synced = st.unsynced.empty() ? caf::error{} : st.db->sync();
  auto chunk = synced ? caf::expected<state_snapshot>{std::move(synced)}
                      : st.db->snapshot(*link.snapshot, batch_max_bytes);
  if (!chunk) {
    log::state()->warn("cannot make a snapshot for peer {}: {}", peer,
                       describe(chunk.error()));
    link.snapshot.reset();
    link.hold = true;
    return;
  }
  if (first)
    log::state()->log(link.snapshot_busy ? spdlog::level::debug : spdlog::level::info,
                      "peer {} is behind the truncated log: sending it a "
                      "snapshot, in chunks of about {} KiB",
                      peer, batch_max_bytes / 1024);
  version_vector carried;
  if (chunk->last) {
    log::state()->info("sent peer {} the last chunk of its snapshot: {} rows "
                       "in {} chunks",
                       peer, link.snapshot->rows, link.snapshot->chunks);
    carried = chunk->vv;
    for (const auto& [origin, seq] : chunk->vv)
      link.sent[origin] = std::max(seq_in(link.sent, origin), seq);
    link.catching_up = false;
    link.snapshot.reset();
    link.snapshot_busy = false;
  }
  if (st.metrics.chunks_sent != nullptr)
    st.metrics.chunks_sent->inc();
  send_to_peer(self, peer, std::move(*chunk), std::move(carried));
}

// Sends `peer` the next batch it lacks, unless max_in_flight are.
void push(state_ptr self, const std::string& peer) {
  auto& st = self->state;
  auto& link = st.peers.at(peer);
  if (!link.handle || link.hold || link.in_flight.size() >= max_in_flight
      || (!link.knows_vv && !link.in_flight.empty()))
    return;
  if (link.snapshot) {
    send_snapshot(self, peer);
    return;
  }
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
    link.snapshot_busy = false; // the log has what it lacks now
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
  link.last_reply = clock::now();
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
    link.snapshot.reset();
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
  retry_held(self); // writes held back for this peer may go now
}

// Replication backpressure: without it a node writing faster than a peer
// applies runs ahead without bound (figures for each limit: docs/NOTES.md,
// tenth session). A peer catching up, getting a snapshot, or silent for
// stall_timeout never holds writes back, so one that freezes delays them
// by ~stall_timeout, once.
const std::string* backlogged_peer(const replica& st) {
  auto limit = st.opts.fleet.replication_backlog;
  if (limit == 0)
    return nullptr;
  auto ours = seq_in(st.db->vv(), st.opts.self);
  auto now = clock::now();
  for (const auto& [name, link] : st.peers) {
    if (!link.handle || !link.knows_vv || link.hold || link.catching_up || link.snapshot
        || now - link.last_reply > stall_timeout)
      continue;
    if (ours > seq_in(link.acked, st.opts.self) + limit)
      return &name;
  }
  return nullptr;
}

// -- connecting to peers ----------------------------------------------------------------

void adopt(state_ptr self, const std::string& peer, caf::actor handle) {
  auto& link = self->state.peers.at(peer);
  log::state()->info("replicating with peer {}", peer);
  self->monitor(handle);
  link.handle = std::move(handle);
  link.needs_snapshot = false; // logged while it was away; catching up tells
  ++link.generation;
  link.in_flight.clear();
  link.snapshot.reset();
  link.snapshot_busy = false;
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
  link.snapshot.reset();
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

// -- the log ------------------------------------------------------------------------

// Drops the log entries every peer holds; while a peer is away, also those
// past the newest log_keep per origin that every connected peer holds.
void truncate_log(replica& st) {
  std::vector<version_vector> held, connected;
  for (const auto& [name, link] : st.peers) {
    if (link.heard) // a peer we have not heard from may need anything
      held.push_back(link.acked);
    if (link.handle)
      connected.push_back(link.acked);
  }
  auto cut = st.db->truncate(held, connected, st.opts.fleet.log_keep);
  if (!cut) {
    log::state()->warn("cannot truncate the log: {}", describe(cut.error()));
    return;
  }
  if (cut->dropped > 0)
    log::state()->debug("truncated {} log entries", cut->dropped);
  if (st.metrics.log_entries != nullptr)
    st.metrics.log_entries->set(static_cast<double>(st.db->log_entries()));
  for (auto& [name, link] : st.peers) {
    if (link.handle || link.needs_snapshot)
      continue;
    for (const auto& [origin, through] : cut->through)
      if (seq_in(link.acked, origin) < through) {
        link.needs_snapshot = true;
        log::state()->info("peer {} is away and lacks more than the {} newest log entries "
                           "of {} ([cluster] log_keep): it gets a snapshot when it returns",
                           name, st.opts.fleet.log_keep, origin);
        break;
      }
  }
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
  auto now = clock::now();
  std::erase_if(st.snapshots_in, [&](const auto& kv) {
    return now - kv.second.last_chunk > snapshot_quiet; // its sender gave up
  });
  if (!st.snapshots_in.empty() && !st.snapshots_in.contains(snap.from))
    return make_error(brd_errc::refused, snapshot_busy + st.snapshots_in.begin()->first);
  auto changed = st.db->apply_snapshot(snap);
  if (!changed) {
    st.snapshots_in.erase(snap.from);
    refused(st, reason_label(describe(changed.error())),
            "snapshot from " + snap.from + ": " + describe(changed.error()));
    return std::move(changed.error());
  }
  if (st.metrics.chunks_received != nullptr)
    st.metrics.chunks_received->inc();
  auto& in = st.snapshots_in[snap.from];
  in.last_chunk = now;
  in.rows += snap.rows.size();
  in.changed += changed->size();
  if (++in.chunks == 1 && !snap.last)
    log::state()->info("receiving a snapshot from {} in chunks", snap.from);
  if (snap.last) {
    log::state()->info("applied a snapshot from {}: {} rows in {} chunks, {} "
                       "changed here",
                       snap.from, in.rows, in.chunks, in.changed);
    st.snapshots_in.erase(snap.from);
  }
  // Snapshot rows are not log entries: peers that need them get a snapshot
  // of ours (their replies show what they lack).
  notify(st, *changed);
  return st.db->vv();
}

} // namespace brd::state_detail
