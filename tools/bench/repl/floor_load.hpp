// The floors of the replication benchmark: three repl_floor processes
// (floor_node.cpp) under the same load as BlackRoad's nodes (writers on the
// nodes), with a minimal actor around the store:
//   raw:    only what any replication on this stack does per write (a group
//           commit synced to RocksDB's WAL at the origin, CAF batches to and
//           from the peers, an unsynced write of the row on each peer);
//   design: what issue 3's design adds at the least (log entries, version
//           vectors, the merge rule's read, log truncation);
//   store:  BlackRoad's storage layer, io::state_store, as it is.
// Between them and BlackRoad's own figure, the cost of each layer shows.
#pragma once

#include <cstddef>
#include <string>

namespace bench {

struct floor_result {
  std::string failure; // non-empty: the run did not complete
  size_t writes = 0;   // over the 3 processes
  size_t errors = 0;
  double seconds_everywhere = 0; // start -> every write stored on all 3
  double cpu_seconds = 0;        // the 3 processes, during the load
};

// `mode` is repl_floor's --mode: raw, design or store.
floor_result run_floor(const std::string& repl_floor, const std::string& mode,
                       size_t writes_per_node, size_t clients_per_node, size_t value_size);

} // namespace bench
