#include "actors/state.hpp"

// The state actor's local side: writes (group commit with the WAL fsync on
// a syncer actor), reads, subscriptions, timers and the behavior.
// Replication with peers (the protocol) is in actors/state_sync.cpp; the
// state both files share is in actors/state_replica.hpp.
//
// Writes are buffered and committed by a flush message sent to ourselves, so
// every write queued in the mailbox meanwhile shares one commit. The commit
// is written without a sync; a detached syncer actor then fsyncs the WAL
// while this actor keeps applying peers' batches and queueing writes (which
// form the next commit when the sync is done). Writes are answered, shown
// to subscribers and pushed to peers only once their sync returned.

#include <algorithm>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/state_replica.hpp"
#include "io/metrics.hpp"
#include "io/state_store.hpp"
#include "runtime/errors.hpp"
#include "runtime/hlc.hpp"
#include "runtime/log.hpp"

namespace brd {

namespace state_detail {

// -- refusals -----------------------------------------------------------------

// The metric label for one of the store's refusal sentences
// (io/state_store.cpp words them).
std::string reason_label(const std::string& sentence) {
  for (auto [words, label] :
       {std::pair{"unknown schema version", "unknown_schema"},
        {"corrupt value", "corrupt_value"}, {"unknown table", "unknown_table"},
        {"gap in sequence", "gap"}, {"unknown node", "unknown_origin"},
        {"clock ahead", "clock_ahead"}})
    if (sentence.find(words) != std::string::npos)
      return label;
  return "other";
}

void refused(replica& st, const std::string& label, const std::string& why) {
  constexpr auto quiet = std::chrono::minutes(1);
  auto kind = label + " " + why.substr(0, why.find(':')); // "gap from b"
  auto now = clock::now();
  auto [last, first] = st.refusals_logged.try_emplace(kind, now);
  if (first || now - last->second >= quiet) {
    last->second = now;
    log::state()->warn("refused replicated input: {}{}", why,
                       first ? "" : " (repeats: brnode_state_rejected_total; logged once a minute)");
  }
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

void schedule_flush(state_ptr self) {
  auto& st = self->state;
  if (!st.flush_pending) {
    st.flush_pending = true;
    self->send(self, flush_atom::value);
  }
}

void retry_held(state_ptr self) {
  auto& st = self->state;
  if (!st.buffer.empty() && !st.syncing) // a running sync flushes when it ends
    schedule_flush(self);
}

caf::result<write_ack> enqueue(state_ptr self, io::local_write w,
                               uint32_t wait_for) {
  auto& st = self->state;
  if (auto err = check_write(st, w, wait_for))
    return err;
  auto promise = self->make_response_promise<write_ack>();
  st.buffer.push_back({std::move(w), wait_for, {promise, nullptr}});
  schedule_flush(self);
  return promise;
}

// Many puts to one table in one message: the buffer holds them next to each
// other, so they share one commit and get consecutive seqs.
caf::result<write_ack> enqueue_many(state_ptr self, std::string& table,
                                    std::vector<std::string>& keys,
                                    std::vector<std::string>& values) {
  auto& st = self->state;
  if (keys.size() != values.size() || keys.empty())
    return make_error(brd_errc::refused,
                      "a put of many needs as many values as keys, and at "
                      "least one");
  std::vector<io::local_write> writes;
  writes.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    writes.push_back({table, std::move(keys[i]), std::move(values[i])});
    if (auto err = check_write(st, writes.back(), 0))
      return err;
    if (auto problem = io::value_problem(*writes.back().value))
      return make_error(brd_errc::refused, "write to " + table + "/"
                                             + writes.back().key
                                             + " refused: " + *problem);
  }
  auto group = std::make_shared<write_group>();
  group->promise = self->make_response_promise<write_ack>();
  group->open = writes.size();
  for (auto& w : writes)
    st.buffer.push_back({std::move(w), 0, {{}, group}});
  schedule_flush(self);
  return group->promise;
}

// Commits `writes` in one batch, unsynced (the syncer syncs it). The store
// refuses a whole batch for one bad value: then each write is committed
// alone, so only it fails.
std::vector<caf::expected<state_entry>>
commit_all(replica& st, const std::vector<io::local_write>& writes) {
  std::vector<caf::expected<state_entry>> out;
  auto committed = st.db->commit(writes, false);
  if (committed && committed->size() == writes.size()) {
    for (auto& e : *committed)
      out.emplace_back(std::move(e));
    return out;
  }
  for (const auto& w : writes) {
    auto one = writes.size() == 1 ? std::move(committed)
                                  : st.db->commit({w}, false);
    if (one && one->size() == 1)
      out.emplace_back(std::move(one->front()));
    else if (!one && has_code(one.error(), brd_errc::disk_full))
      out.emplace_back(one.error()); // not the writer's fault
    else
      out.emplace_back(one ? make_error(brd_errc::store_failure,
                                        "the store committed no entry")
                           : make_error(brd_errc::refused,
                                        describe(one.error())));
  }
  return out;
}

void on_synced(state_ptr self, const caf::error& err);

// Fsyncs the WAL on the syncer; on_synced answers the writes it covers.
void start_sync(state_ptr self) {
  auto& st = self->state;
  if (st.syncing || st.unsynced.empty())
    return;
  st.syncing = true;
  // High priority: the reply overtakes queued writes, so acks are not
  // delayed by the mailbox.
  self->request<caf::message_priority::high>(st.syncer, sync_timeout,
                                             flush_atom::value)
    .then([=](bool) { on_synced(self, caf::none); },
          [=](caf::error& err) { on_synced(self, err); });
}

// Commits every buffered write with one batch and starts its sync. While a
// sync runs, writes wait in the buffer: on_synced commits them together.
void flush(state_ptr self) {
  auto& st = self->state;
  st.flush_pending = false;
  if (st.buffer.empty() || st.relearning || st.syncing)
    return;
  if (backlogged_peer(st) != nullptr) { // a peer's reply (or the tick) flushes again
    if (st.metrics.held != nullptr)
      st.metrics.held->inc();
    return;
  }
  auto pending = std::move(st.buffer);
  st.buffer.clear();
  std::vector<io::local_write> writes;
  writes.reserve(pending.size());
  for (auto& p : pending)
    writes.push_back(std::move(p.write));
  st.commit_began = clock::now();
  auto results = commit_all(st, writes);
  bool full = std::any_of(results.begin(), results.end(), [](const auto& r) {
    return !r && has_code(r.error(), brd_errc::disk_full);
  });
  if (full && !st.disk_full)
    log::state()->error("{}", describe(std::find_if(results.begin(), results.end(),
                                                    [](const auto& r) { return !r; })
                                         ->error()));
  else if (!full && st.disk_full)
    log::state()->info("the disk has room again: writes are accepted");
  st.disk_full = full;
  for (size_t i = 0; i < pending.size(); ++i) {
    if (!results[i]) {
      log::state()->debug("write refused: {}", describe(results[i].error()));
      pending[i].answer.deliver(results[i].error());
      continue;
    }
    st.unsynced.push_back({std::move(*results[i]), pending[i].wait_for,
                           std::move(pending[i].answer), pending[i].queued});
  }
  start_sync(self);
}

// The sync of `unsynced` returned: the writes are durable (answer them,
// tell subscribers, push them to peers), or it failed (answer an error;
// the entries become durable with a later sync and replicate then).
void on_synced(state_ptr self, const caf::error& err) {
  auto& st = self->state;
  st.syncing = false;
  auto synced = std::move(st.unsynced);
  st.unsynced.clear();
  if (err) {
    log::state()->error("cannot sync {} writes: {}", synced.size(),
                        describe(err));
    for (auto& w : synced)
      w.answer.deliver(make_error(brd_errc::store_failure,
                                   "the write could not be synced: "
                                     + describe(err)));
    flush(self);
    return;
  }
  if (synced.empty())
    return;
  st.db->mark_durable(synced.back().entry.seq);
  auto now = clock::now();
  if (st.metrics.commit_time != nullptr)
    st.metrics.commit_time->observe(
      std::chrono::duration<double>(now - st.commit_began).count());
  auto deadline = now + st.opts.wait_timeout;
  std::vector<state_entry> committed;
  committed.reserve(synced.size());
  for (auto& w : synced) {
    if (st.metrics.write_time != nullptr)
      st.metrics.write_time->observe(std::chrono::duration<double>(now - w.queued).count());
    write_ack ack{w.entry.hlc, w.entry.origin, w.entry.seq};
    if (w.wait_for == 0)
      w.answer.deliver(ack);
    else
      st.waits.push_back({ack, w.wait_for, deadline, std::move(w.answer.promise)});
    committed.push_back(std::move(w.entry));
  }
  if (st.metrics.registry != nullptr) {
    st.metrics.writes->add(static_cast<double>(committed.size()));
    st.metrics.batch_size->observe(static_cast<double>(committed.size()));
  }
  flush(self); // the next commit syncs while we push this one
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
  if (!st.buffer.empty())
    schedule_flush(self);
}

// -- timers -------------------------------------------------------------------------

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
  retry_held(self); // held back by a peer that then went quiet
  if (st.ticks % truncate_every == 0) {
    truncate_log(st);
    update_peer_gauges(st);
  }
  self->delayed_send(self, tick_interval, tick_atom::value);
}

std::vector<state_row> rows_or_empty(std::optional<state_row> row) {
  std::vector<state_row> out;
  if (row)
    out.push_back(std::move(*row));
  return out;
}

// Runs the WAL fsyncs of group commits, off the state actor's thread.
caf::behavior syncer(caf::event_based_actor*,
                     std::shared_ptr<io::state_store> store) {
  return {[=](flush_atom) -> caf::result<bool> {
    if (auto err = store->sync())
      return err;
    return true;
  }};
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
  st.syncer = self->spawn<caf::detached + caf::linked>(syncer, st.opts.store);
  self->set_down_handler([=](caf::down_msg& dm) { on_down(self, dm); });
  self->send(st.opts.health, subscribe_atom::value,
             caf::actor_cast<caf::actor>(self));
  self->send(self, tick_atom::value);
  using write_result = caf::result<write_ack>;
  using rows_result = caf::result<std::vector<state_row>>;
  return introspect::counted(self, "state", state_actor::behavior_type{
    [=](put_atom, std::string& table, std::string& key,
        std::string& value) -> write_result {
      return enqueue(self, {std::move(table), std::move(key), std::move(value)}, 0);
    },
    [=](put_atom, std::string& table, std::string& key, std::string& value,
        uint32_t wait_for) -> write_result {
      return enqueue(self, {std::move(table), std::move(key), std::move(value)},
                     wait_for);
    },
    [=](put_atom, std::string& table, std::vector<std::string>& keys,
        std::vector<std::string>& values) -> write_result {
      return enqueue_many(self, table, keys, values);
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
    [=](inspect_atom, const std::string& kind) -> caf::result<actor_summary> {
      if (kind != "state")
        return make_error(brd_errc::refused, "the state actor summarizes 'state', not '"
                                               + kind + "'");
      return summary_of(self->state);
    },
    [=](repl_batch& batch) { return receive_batch(self, batch); },
    [=](state_snapshot& snap) { return receive_snapshot(self, snap); },
    [=](const member_event& ev) { on_member_event(self, ev); },
    [=](flush_atom) { flush(self); },
    [=](tick_atom) { tick(self); },
  });
}

} // namespace state_detail

state_actor spawn_state(caf::actor_system& sys, state_options opts) {
  return sys.spawn<caf::detached>(state_detail::state_behavior, std::move(opts));
}

} // namespace brd
