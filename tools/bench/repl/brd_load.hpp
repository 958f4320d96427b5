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
};

struct brd_result {
  std::string failure; // non-empty: the run did not complete
  size_t writes = 0;
  size_t errors = 0;
  double seconds_acked = 0;      // start -> last local (durable) ack
  double seconds_everywhere = 0; // start -> all writes on all 3 nodes
  std::vector<double> probe_lag_ms; // commit (HLC) -> applied on a peer
  double hist_p50_ms = 0, hist_p99_ms = 0; // nodes' own lag histograms
  double mean_commit_batch = 0;
  double node_cpu_seconds = 0;   // the 3 brnode processes, during the load
  double client_cpu_seconds = 0; // this process's client actors, likewise
};

brd_result run_brd(const std::string& brnode, const load_options& opts);

} // namespace bench
