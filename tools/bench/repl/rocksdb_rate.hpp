// RocksDB alone: synced write batches in one process, so the cost of the
// replication layer on top of it is visible.
#pragma once

#include <cstddef>

namespace bench {

// Writes/s of WriteBatches of `batch_size` puts of `value_size` bytes, each
// written with sync = true, for about `seconds`.
double rocksdb_synced_rate(size_t batch_size, size_t value_size, double seconds);

} // namespace bench
