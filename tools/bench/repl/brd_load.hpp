// The BlackRoad side of the replication benchmark: three local brnode
// processes, CAF client actors writing to each node's state actor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

struct load_options {
  size_t writes_per_node = 100'000;
  size_t clients_per_node = 64; // requests outstanding at each node
  size_t value_size = 200;
  // Writes per request: 1 is a put per message; N > 1 sends put (table,
  // keys, values), answered once all N are durable on the origin.
  size_t batch = 1;
  // true: the writers run inside the nodes (brnode_bench's writer host),
  // local to each state actor, as the fleet's own writers do; false: they
  // are client actors of this process, reaching the nodes over the CAF
  // transport. The paced phase and the probes are always clients.
  bool on_node = false;
  // After the saturating load, each of these writes/s in turn, offered at a
  // steady pace (open loop, one put per request, spread over the 3 nodes)
  // for `paced_seconds`: the lag below saturation. Empty skips them.
  std::vector<size_t> paced_rates = {2'000, 5'000, 10'000};
  double paced_seconds = 3;
  // [cluster] replication_backlog for the nodes; negative: brnode's default.
  long long replication_backlog = -1;
};

// A steady-pace phase (load_options::paced_rates).
struct paced_result {
  double offered_per_s = 0, acked_per_s = 0;
  size_t errors = 0;
  std::vector<double> probe_lag_ms;
  double node_cpu_us_per_write = 0;
};

struct brd_result {
  std::string failure; // non-empty: the run did not complete
  size_t writes = 0;
  size_t errors = 0;
  double seconds_acked = 0;      // start -> last local (durable) ack
  double seconds_everywhere = 0; // start -> all writes on all 3 nodes
  std::vector<double> probe_lag_ms; // commit (HLC) -> applied on a peer
  double hist_p50_ms = 0, hist_p99_ms = 0; // nodes' own lag histograms
  double ack_p50_ms = 0, ack_p99_ms = 0;   // nodes' write histograms: arrival to ack
  double mean_commit_batch = 0;
  double node_cpu_seconds = 0;   // the 3 brnode processes, during the load
  double client_cpu_seconds = 0; // this process's client actors, likewise
  std::vector<paced_result> paced; // one per load_options::paced_rates
};

brd_result run_brd(const std::string& brnode, const load_options& opts);

} // namespace bench
