// What the state actor says about itself: its metrics on /metrics (made
// once, and the per-peer gauges set every second) and the summary brsh
// shows for `actor inspect NODE state` (facts, and one row per peer: how
// far behind it is and how it is being caught up). Both read the replica
// on the actor's own thread.
#include <fmt/format.h>

#include "actors/state_replica.hpp"
#include "io/metrics.hpp"
#include "io/state_store.hpp"

namespace brd::state_detail {

namespace {

// Entries this node holds (any origin) that the peer has not acknowledged.
uint64_t behind(const replica& st, const peer_link& link) {
  uint64_t out = 0;
  for (const auto& [origin, ours] : st.db->vv())
    if (auto theirs = seq_in(link.acked, origin); ours > theirs)
      out += ours - theirs;
  return out;
}

std::string sending(const peer_link& link) {
  if (!link.handle)
    return "-";
  if (link.snapshot)
    return fmt::format("a snapshot: {} chunk(s), {} rows so far", link.snapshot->chunks,
                       link.snapshot->rows);
  if (link.hold)
    return "held: retries within 1 s";
  return link.catching_up ? "from the log" : "new writes";
}

std::string age(clock::time_point at) {
  if (at == clock::time_point{})
    return "never";
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - at);
  return std::to_string(ms.count()) + " ms ago";
}

} // namespace

instruments make_instruments(io::metrics_registry* m) {
  instruments out;
  if (m == nullptr)
    return out;
  out.registry = m;
  out.writes = &m->counter("brnode_state_writes_total",
                           "Local writes committed durably by the state actor");
  out.held = &m->counter("brnode_state_backpressure_total",
                         "Group commits put off because a live peer lacked more than "
                         "[cluster] replication_backlog of this node's writes");
  out.batch_size = &m->histogram(
    "brnode_state_commit_batch_size", "Writes per synced commit (group commit)",
    {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192});
  out.log_entries = &m->gauge(
    "brnode_state_log_entries",
    "Entries in this node's replication log, all origins (bounded by [cluster] log_keep "
    "per origin while a peer is away)");
  out.write_time = &m->histogram(
    "brnode_state_write_seconds",
    "Time from a local write's arrival at the state actor to its durable ack (group "
    "commit, fsync, and any wait for a backlogged peer)",
    {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1});
  out.commit_time = &m->histogram(
    "brnode_state_commit_seconds", "Time of one synced group commit",
    {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1});
  // Every reason at 0 from the start, so dashboards see the series.
  for (const char* reason : {"unknown_sender", "unknown_origin", "gap", "corrupt_value",
                             "unknown_schema", "unknown_table", "other"})
    m->counter("brnode_state_rejected_total",
               "Replicated entries or batches refused, by reason",
               {{"reason", reason}});
  const char* chunks_help =
    "Snapshot chunks sent to peers behind the truncated log, and received";
  out.chunks_sent = &m->counter("brnode_state_snapshot_chunks_total", chunks_help,
                                {{"direction", "sent"}});
  out.chunks_received = &m->counter("brnode_state_snapshot_chunks_total", chunks_help,
                                    {{"direction", "received"}});
  out.lag = &m->histogram(
    "brnode_state_replication_lag_seconds",
    "Time from a write's commit at its origin to its apply here (HLC wall time)",
    {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  return out;
}

actor_summary summary_of(const replica& st) {
  actor_summary out;
  out.kind = "state";
  out.facts.push_back({"log entries", std::to_string(st.db->log_entries())});
  out.facts.push_back(
    {"group commit", (st.syncing ? fmt::format("syncing {} write(s)", st.unsynced.size())
                                 : std::string{"idle"})
                       + fmt::format(", {} waiting", st.buffer.size())});
  size_t subscribers = 0;
  for (const auto& [table, subs] : st.subscribers)
    subscribers += subs.size();
  out.facts.push_back({"subscribers", std::to_string(subscribers)});
  if (st.relearning)
    out.facts.push_back({"own writes", "relearning them from the peers; local writes wait"});
  if (st.disk_full)
    out.facts.push_back({"disk", "full: local writes are refused"});
  if (const auto* peer = backlogged_peer(st))
    out.facts.push_back({"backpressure",
                         fmt::format("local writes wait: peer {} lacks more than {} of ours "
                                     "([cluster] replication_backlog)",
                                     *peer, st.opts.fleet.replication_backlog)});
  for (const auto& [from, in] : st.snapshots_in)
    out.facts.push_back({"snapshot from " + from,
                         fmt::format("{} chunk(s), {} rows so far", in.chunks, in.rows)});
  out.columns = {"peer", "connected", "behind (entries)", "in flight", "sending",
                 "last reply"};
  for (const auto& [name, link] : st.peers)
    out.rows.push_back({name, link.handle ? "yes" : "no",
                        link.heard ? std::to_string(behind(st, link)) : "unknown",
                        std::to_string(link.in_flight.size()), sending(link),
                        age(link.last_reply)});
  return out;
}

void update_peer_gauges(replica& st) {
  auto* m = st.metrics.registry;
  if (m == nullptr)
    return;
  for (const auto& [name, link] : st.peers) {
    auto& g = m->gauge("brnode_state_peer_behind_entries",
                       "Entries this node holds that the peer has not acknowledged "
                       "(NaN until the peer answered since this node started)",
                       {{"peer", name}});
    g.set(link.heard ? static_cast<double>(behind(st, link))
                     : std::numeric_limits<double>::quiet_NaN());
  }
}

} // namespace brd::state_detail
