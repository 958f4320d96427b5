#include "io/store.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "runtime/errors.hpp"
#include "runtime/log.hpp"

namespace brd::io {

namespace {

constexpr const char* lock_file_name = "brnode.lock";

caf::error status_error(const rocksdb::Status& status, const std::string& what,
                        const std::string& dir) {
  if (status.IsNoSpace())
    return make_error(brd_errc::disk_full,
                      "the disk holding " + dir + " is full (" + what + ": "
                        + status.ToString()
                        + "); free space on it: writes resume on their own "
                          "once there is room");
  return make_error(brd_errc::store_failure,
                    what + " in " + dir + ": " + status.ToString());
}

std::string errno_text(int code) {
  return std::strerror(code);
}

// -- exclusive ownership of the directory ---------------------------------

// The pid written by the current owner, or "unknown" if it cannot be read.
std::string read_owner_pid(int fd) {
  char buf[32] = {};
  auto n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  std::string pid(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' '))
    pid.pop_back();
  bool digits = !pid.empty()
                && std::all_of(pid.begin(), pid.end(),
                               [](char c) { return c >= '0' && c <= '9'; });
  return digits ? pid : "unknown";
}

// Takes flock(LOCK_EX|LOCK_NB) on DIR/brnode.lock and writes our pid into it.
// The lock is released when the returned descriptor is closed. The file is
// never unlinked: removing a lock file races with the next owner.
caf::expected<int> lock_directory(const std::string& dir) {
  auto path = dir + "/" + lock_file_name;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return make_error(brd_errc::store_failure, "cannot open lock file " + path
                                                 + ": " + errno_text(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int code = errno;
    std::string pid = code == EWOULDBLOCK ? read_owner_pid(fd) : "";
    ::close(fd);
    if (code == EWOULDBLOCK)
      return make_error(brd_errc::store_locked,
                        "data directory " + dir
                          + " is already in use by another brnode (pid " + pid
                          + "); stop that process or pass a different "
                            "--data-dir");
    return make_error(brd_errc::store_failure,
                      "cannot lock " + path + ": " + errno_text(code));
  }
  auto pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0
      || ::pwrite(fd, pid.data(), pid.size(), 0)
           != static_cast<ssize_t>(pid.size())) {
    int code = errno;
    ::close(fd);
    return make_error(brd_errc::store_failure,
                      "cannot write pid to " + path + ": " + errno_text(code));
  }
  return fd;
}

caf::error make_directory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return make_error(brd_errc::store_failure,
                      "cannot create data directory " + dir + ": "
                        + ec.message());
  if (!std::filesystem::is_directory(dir, ec))
    return make_error(brd_errc::store_failure,
                      "data directory " + dir + " exists but is not a directory");
  return caf::none;
}

// -- RocksDB tuning for a Raspberry Pi -------------------------------------

// RocksDB's own messages at WARN and above go to the store logger (so to the
// journal) instead of a LOG file in the data directory; its header and info
// chatter are dropped. RocksDB is not exception-safe: nothing may escape.
class rocksdb_log final : public rocksdb::Logger {
public:
  rocksdb_log() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {
  }

  using rocksdb::Logger::Logv;

  void LogHeader(const char*, va_list) override {
  }

  void Logv(const char*, va_list) override {
  }

  void Logv(const rocksdb::InfoLogLevel level, const char* format,
            va_list ap) override {
    if (level < GetInfoLogLevel())
      return;
    try {
      char line[1024];
      std::vsnprintf(line, sizeof(line), format, ap);
      auto lvl = level >= rocksdb::InfoLogLevel::ERROR_LEVEL
                   ? spdlog::level::err
                   : spdlog::level::warn;
      log::store()->log(lvl, "rocksdb: {}", line);
    } catch (...) {
      // Losing a log line is better than unwinding through RocksDB.
    }
  }
};

rocksdb::DBOptions db_options() {
  rocksdb::DBOptions opts;
  opts.create_if_missing = true;
  opts.create_missing_column_families = true;
  opts.max_open_files = 256;
  opts.max_background_jobs = 2;
  opts.info_log = std::make_shared<rocksdb_log>();
  opts.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  opts.keep_log_file_num = 2; // only used if info_log is ever dropped
  opts.stats_dump_period_sec = 0;
  opts.db_write_buffer_size = 32 << 20; // all memtables together
  // A WAL file goes only once every family with data in it has flushed. A
  // family written once in a while (meta, nodes, rollouts) would otherwise
  // keep every WAL file since its last write until RocksDB's default bound,
  // 4x all write buffers (~700 MB here), on a Pi's SD card. Past this size
  // the families holding the oldest file are flushed, and it goes.
  opts.max_total_wal_size = 64 << 20;
  return opts;
}

rocksdb::ColumnFamilyOptions cf_options(std::shared_ptr<rocksdb::Cache> cache) {
  rocksdb::ColumnFamilyOptions opts;
  opts.write_buffer_size = 8 << 20;
  opts.max_write_buffer_number = 2;
  // L0 -> L1 compactions every 8 flushed files, not RocksDB's 4: while L1
  // is below its target size each one rewrites all of L1, so under a
  // sustained load of new keys it rewrites L1 half as often (the replication
  // bench, 900,000 writes: +8-10% writes/s, -9% CPU per write, two pairs).
  // Reads look at up to 8 L0 files, each behind its bloom filter.
  opts.level0_file_num_compaction_trigger = 8;
  // A whole-key bloom filter in the memtables too: point reads of absent
  // keys (most replicated applies) skip the skiplist search. Small (16 KB
  // per family): it is allocated up front, and at 0.02 the 11 families
  // cost an idle node ~2 MB of private memory for no measurable gain.
  opts.memtable_prefix_bloom_size_ratio = 0.002;
  opts.memtable_whole_key_filtering = true;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = std::move(cache);
  // Replicated applies read the row they may replace; most keys are new, and
  // a bloom filter answers "absent" without reading a data block.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return opts;
}

// The requested families, "default", and any that already exist on disk
// (RocksDB refuses to open a database without all of its families).
std::vector<std::string> families_to_open(const std::string& dir,
                                          std::vector<std::string> requested) {
  std::vector<std::string> existing;
  // Fails on a new database; then there is nothing to add.
  (void) rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions{}, dir, &existing);
  requested.emplace_back(rocksdb::kDefaultColumnFamilyName);
  requested.insert(requested.end(), existing.begin(), existing.end());
  std::sort(requested.begin(), requested.end());
  requested.erase(std::unique(requested.begin(), requested.end()),
                  requested.end());
  return requested;
}

// The smallest key greater than every key starting with `prefix`, if any.
std::optional<std::string> prefix_end(std::string_view prefix) {
  std::string end{prefix};
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff)
    end.pop_back();
  if (end.empty())
    return std::nullopt;
  end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

rocksdb::Slice slice(std::string_view x) {
  return {x.data(), x.size()};
}

} // namespace

// -- store::impl ------------------------------------------------------------

struct store::impl {
  int lock_fd = -1;
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> by_name;

  ~impl() {
    if (db != nullptr) {
      for (auto* handle : handles)
        db->DestroyColumnFamilyHandle(handle);
      auto status = db->Close();
      if (!status.ok())
        log::store()->warn("closing the store failed: {}", status.ToString());
      delete db;
    }
    if (lock_fd >= 0)
      ::close(lock_fd);
  }

  caf::expected<rocksdb::ColumnFamilyHandle*>
  family(std::string_view name, const std::string& dir) const {
    if (auto i = by_name.find(name); i != by_name.end())
      return i->second;
    std::string known;
    for (const auto& [known_name, handle] : by_name)
      known += (known.empty() ? "" : ", ") + known_name;
    return make_error(brd_errc::store_failure,
                      "unknown column family '" + std::string{name}
                        + "' in store " + dir + " (known: " + known + ")");
  }
};

// -- batch ------------------------------------------------------------------

void batch::put(std::string_view cf, std::string_view key,
                std::string_view value) {
  ops_.push_back(op{op_kind::put, std::string{cf}, std::string{key},
                    std::string{value}});
}

void batch::erase(std::string_view cf, std::string_view key) {
  ops_.push_back(op{op_kind::erase, std::string{cf}, std::string{key}, {}});
}

void batch::erase_range(std::string_view cf, std::string_view begin,
                        std::string_view end) {
  ops_.push_back(op{op_kind::erase_range, std::string{cf}, std::string{begin},
                    std::string{end}});
}

// -- store ------------------------------------------------------------------

store::store(std::string dir, std::unique_ptr<impl> state)
  : dir_(std::move(dir)), impl_(std::move(state)) {
}

store::~store() = default;

caf::expected<std::unique_ptr<store>>
store::open(const std::string& dir, std::vector<std::string> column_families) {
  if (auto err = make_directory(dir))
    return err;
  auto state = std::make_unique<impl>();
  auto fd = lock_directory(dir);
  if (!fd)
    return std::move(fd.error());
  state->lock_fd = *fd;
  auto cache = rocksdb::NewLRUCache(8 << 20);
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (auto& name : families_to_open(dir, std::move(column_families)))
    descriptors.emplace_back(name, cf_options(cache));
  auto status = rocksdb::DB::Open(db_options(), dir, descriptors,
                                  &state->handles, &state->db);
  if (!status.ok())
    return status_error(status, "cannot open the RocksDB store", dir);
  for (size_t i = 0; i < descriptors.size(); ++i)
    state->by_name.emplace(descriptors[i].name, state->handles[i]);
  log::store()->info("opened store {} with {} column families", dir,
                     descriptors.size());
  return std::unique_ptr<store>{new store(dir, std::move(state))};
}

caf::error store::put(std::string_view cf, std::string_view key,
                      std::string_view value, bool sync) {
  auto handle = impl_->family(cf, dir_);
  if (!handle)
    return std::move(handle.error());
  rocksdb::WriteOptions opts;
  opts.sync = sync;
  auto status = impl_->db->Put(opts, *handle, slice(key), slice(value));
  if (!status.ok())
    return status_error(status, "cannot write to '" + std::string{cf} + "'",
                        dir_);
  return caf::none;
}

caf::expected<std::optional<std::string>>
store::get(std::string_view cf, std::string_view key) const {
  auto handle = impl_->family(cf, dir_);
  if (!handle)
    return std::move(handle.error());
  std::string value;
  auto status = impl_->db->Get(rocksdb::ReadOptions{}, *handle, slice(key),
                               &value);
  if (status.IsNotFound())
    return std::optional<std::string>{};
  if (!status.ok())
    return status_error(status, "cannot read from '" + std::string{cf} + "'",
                        dir_);
  return std::optional<std::string>{std::move(value)};
}

caf::expected<std::vector<std::optional<std::string>>>
store::multi_get(std::string_view cf, const std::vector<std::string_view>& keys) const {
  auto handle = impl_->family(cf, dir_);
  if (!handle)
    return std::move(handle.error());
  std::vector<rocksdb::Slice> slices;
  slices.reserve(keys.size());
  for (auto key : keys)
    slices.push_back(slice(key));
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  impl_->db->MultiGet(rocksdb::ReadOptions{}, *handle, keys.size(), slices.data(),
                      values.data(), statuses.data());
  std::vector<std::optional<std::string>> out;
  out.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) {
      out.emplace_back();
    } else if (!statuses[i].ok()) {
      return status_error(statuses[i], "cannot read from '" + std::string{cf} + "'",
                          dir_);
    } else {
      out.emplace_back(values[i].ToString());
    }
  }
  return out;
}

caf::error store::erase(std::string_view cf, std::string_view key, bool sync) {
  auto handle = impl_->family(cf, dir_);
  if (!handle)
    return std::move(handle.error());
  rocksdb::WriteOptions opts;
  opts.sync = sync;
  auto status = impl_->db->Delete(opts, *handle, slice(key));
  if (!status.ok())
    return status_error(status, "cannot erase from '" + std::string{cf} + "'",
                        dir_);
  return caf::none;
}

caf::expected<std::vector<store::key_value>>
store::scan(std::string_view cf, std::string_view prefix, size_t limit) const {
  return scan_from(cf, prefix, prefix, limit);
}

caf::expected<std::vector<store::key_value>>
store::scan_from(std::string_view cf, std::string_view prefix,
                 std::string_view from, size_t limit, size_t max_bytes) const {
  auto handle = impl_->family(cf, dir_);
  if (!handle)
    return std::move(handle.error());
  rocksdb::ReadOptions opts;
  auto end = prefix_end(prefix);
  rocksdb::Slice end_slice;
  if (end) {
    end_slice = slice(*end);
    opts.iterate_upper_bound = &end_slice;
  }
  std::unique_ptr<rocksdb::Iterator> it{impl_->db->NewIterator(opts, *handle)};
  std::vector<key_value> result;
  size_t bytes = 0;
  for (it->Seek(slice(std::max(prefix, from)));
       it->Valid() && result.size() < limit && bytes < max_bytes; it->Next()) {
    if (!it->key().starts_with(slice(prefix)))
      break;
    bytes += it->key().size() + it->value().size();
    result.emplace_back(it->key().ToString(), it->value().ToString());
  }
  if (!it->status().ok())
    return status_error(it->status(), "cannot scan '" + std::string{cf} + "'",
                        dir_);
  return result;
}

caf::error store::write(const batch& b, bool sync) {
  rocksdb::WriteBatch updates;
  for (const auto& op : b.ops_) {
    auto handle = impl_->family(op.cf, dir_);
    if (!handle)
      return std::move(handle.error());
    rocksdb::Status status;
    switch (op.kind) {
      case batch::op_kind::put:
        status = updates.Put(*handle, slice(op.key), slice(op.value));
        break;
      case batch::op_kind::erase:
        status = updates.Delete(*handle, slice(op.key));
        break;
      case batch::op_kind::erase_range:
        status = updates.DeleteRange(*handle, slice(op.key), slice(op.value));
        break;
    }
    if (!status.ok())
      return status_error(status, "cannot build a write batch", dir_);
  }
  rocksdb::WriteOptions opts;
  opts.sync = sync;
  auto status = impl_->db->Write(opts, &updates);
  if (!status.ok())
    return status_error(status, "cannot write a batch of "
                                  + std::to_string(b.size()) + " updates",
                        dir_);
  return caf::none;
}

caf::error store::sync_wal() {
  auto status = impl_->db->SyncWAL();
  if (!status.ok())
    return status_error(status, "cannot sync the write-ahead log", dir_);
  return caf::none;
}

caf::expected<size_t> store::count(std::string_view cf, std::string_view begin,
                                   std::string_view end) const {
  auto handle = impl_->family(cf, dir_);
  if (!handle)
    return std::move(handle.error());
  rocksdb::ReadOptions opts;
  auto end_slice = slice(end);
  opts.iterate_upper_bound = &end_slice;
  std::unique_ptr<rocksdb::Iterator> it{impl_->db->NewIterator(opts, *handle)};
  size_t n = 0;
  for (it->Seek(slice(begin)); it->Valid(); it->Next())
    ++n;
  if (!it->status().ok())
    return status_error(it->status(), "cannot count keys of '" + std::string{cf} + "'",
                        dir_);
  return n;
}

uint64_t store::approximate_size_bytes() const {
  uint64_t total = 0;
  for (auto* handle : impl_->handles) {
    for (const auto& property : {rocksdb::DB::Properties::kLiveSstFilesSize,
                                 rocksdb::DB::Properties::kCurSizeAllMemTables}) {
      uint64_t value = 0;
      if (impl_->db->GetIntProperty(handle, property, &value))
        total += value;
    }
  }
  return total;
}

} // namespace brd::io
