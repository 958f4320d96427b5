#include "rocksdb_rate.hpp"

#include <memory>
#include <string>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "util.hpp"

namespace bench {

rocksdb_rate rocksdb_synced_rate(size_t batch_size, size_t value_size, double seconds) {
  auto dir = make_temp_dir("rocksdb");
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(options, dir, &raw).ok()) {
    remove_dir(dir);
    return {};
  }
  std::unique_ptr<rocksdb::DB> db{raw};
  rocksdb::WriteOptions sync;
  sync.sync = true;
  auto value = record_of_size(value_size);
  size_t written = 0;
  auto cpu_before = cpu_seconds();
  auto start = steady::now();
  while (seconds_since(start) < seconds) {
    rocksdb::WriteBatch batch;
    for (size_t i = 0; i < batch_size; ++i)
      batch.Put("k" + std::to_string(written + i), value);
    if (!db->Write(sync, &batch).ok())
      break;
    written += batch_size;
  }
  rocksdb_rate out;
  out.writes_per_s = static_cast<double>(written) / seconds_since(start);
  if (written > 0)
    out.cpu_us_per_write = 1e6 * (cpu_seconds() - cpu_before) / static_cast<double>(written);
  db.reset();
  remove_dir(dir);
  return out;
}

} // namespace bench
