// RocksDB alone: synced write batches in one process, so the cost of the
// replication layer on top of it is visible.
#pragma once

#include <cstddef>

namespace bench {

struct rocksdb_rate {
  double writes_per_s = 0;
  double cpu_us_per_write = 0; // this process's CPU (RocksDB's threads too)
};

// WriteBatches of `batch_size` puts of `value_size` bytes, each written with
// sync = true, for about `seconds`.
rocksdb_rate rocksdb_synced_rate(size_t batch_size, size_t value_size, double seconds);

} // namespace bench
