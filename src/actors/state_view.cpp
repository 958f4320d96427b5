// What the state actor says about itself: the summary brsh shows for
// `actor inspect NODE state` (facts, and one row per peer: how far behind
// it is and how it is being caught up), and the per-peer gauges on
// /metrics. Both read the replica on the actor's own thread.
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
