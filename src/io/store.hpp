// A node's local key-value store: RocksDB with named column families.
//
// A store owns its data directory exclusively: open() takes an flock on
// DIR/brnode.lock (holding our pid) and keeps it until the store is destroyed,
// so a second brnode, or a second open() in the same process, is refused with
// brd_errc::store_locked. Every failure is a value; no exception and no
// rocksdb::Status leaves this unit. All operations may be called from several
// threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace brd::io {

// Puts and erases gathered in memory, applied atomically by store::write().
// Column families are named here and resolved at write time: a batch that
// names an unknown one is refused as a whole.
class batch {
public:
  void put(std::string_view cf, std::string_view key, std::string_view value);
  void erase(std::string_view cf, std::string_view key);
  // Erases every key in [begin, end) (a RocksDB range delete).
  void erase_range(std::string_view cf, std::string_view begin,
                   std::string_view end);

  size_t size() const { return ops_.size(); }
  bool empty() const { return ops_.empty(); }
  void clear() { ops_.clear(); }

private:
  friend class store;
  enum class op_kind : uint8_t { put, erase, erase_range };
  struct op {
    op_kind kind = op_kind::put;
    std::string cf, key, value; // erase_range: value is the end key
  };
  std::vector<op> ops_;
};

class store {
public:
  using key_value = std::pair<std::string, std::string>;

  // Opens (creating if missing, like mkdir -p) the store in `dir` with the
  // given column families plus "default" and any that already exist on disk.
  // Errors: store_locked when another owner holds the directory,
  // store_failure when the directory cannot be made or RocksDB refuses.
  static caf::expected<std::unique_ptr<store>>
  open(const std::string& dir, std::vector<std::string> column_families);

  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // `sync` makes the write durable (WAL fsync) before returning.
  caf::error put(std::string_view cf, std::string_view key,
                 std::string_view value, bool sync = true);

  // std::nullopt when the key is absent.
  caf::expected<std::optional<std::string>> get(std::string_view cf,
                                                std::string_view key) const;

  // get() for many keys of one family at once: RocksDB's batched MultiGet,
  // one pass over the memtables and each file's filter and index for all of
  // them. Element i answers keys[i].
  caf::expected<std::vector<std::optional<std::string>>>
  multi_get(std::string_view cf, const std::vector<std::string_view>& keys) const;

  // Erasing an absent key succeeds.
  caf::error erase(std::string_view cf, std::string_view key, bool sync = true);

  // Up to `limit` pairs whose key starts with `prefix`, in key order.
  caf::expected<std::vector<key_value>>
  scan(std::string_view cf, std::string_view prefix,
       size_t limit = SIZE_MAX) const;

  // Like scan(), but starting at the first key >= `from` (which should
  // itself start with `prefix`): pages through a prefix, or seeks into it.
  // Stops early once the keys and values read reach `max_bytes` (at least
  // one row).
  caf::expected<std::vector<key_value>>
  scan_from(std::string_view cf, std::string_view prefix,
            std::string_view from, size_t limit,
            size_t max_bytes = SIZE_MAX) const;

  // Applies every operation of `b` or none. `b` is left unchanged.
  caf::error write(const batch& b, bool sync = true);

  // Makes every write that returned before this call durable (one fsync of
  // the write-ahead log), as if it had been written with sync = true. Safe
  // to call from one thread while others keep writing: that is how a group
  // commit runs its fsync off the writer's thread.
  caf::error sync_wal();

  // How many keys of `cf` lie in [begin, end), without copying values.
  caf::expected<size_t> count(std::string_view cf, std::string_view begin,
                              std::string_view end) const;

  std::string dir() const { return dir_; }

  // Live SST files plus memtables over all column families; an estimate.
  uint64_t approximate_size_bytes() const;

private:
  struct impl;
  store(std::string dir, std::unique_ptr<impl> state);

  std::string dir_;
  std::unique_ptr<impl> impl_;
};

} // namespace brd::io
