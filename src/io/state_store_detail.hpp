// Internal to io/state_store.cpp, io/state_log.cpp and io/state_snapshot.cpp:
// the storage layout of state_store, the merge rule and the helpers these
// files need to read and write it. Not part of the io API; nothing else
// should include this header, except the replication benchmark's design
// floor (tools/bench/repl/floor_node.cpp), which writes the same layout.
//
//   <table>      key                   -> row_envelope (io/codec)
//   log          origin \0 be64(seq)   -> log_envelope (table, key, stamp;
//                                         the value stays in the row)
//   tombstones   origin \0 be64(seq)   -> table \0 key  (tombstone rows)
//   vv           origin                -> be64(highest seq applied)
//   meta         "hlc"                 -> be64(highest hlc in any row)
//
// be64 is 8 bytes big-endian, so an origin's log is in seq order.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "io/codec.hpp"
#include "io/state_store.hpp"
#include "io/store.hpp"
#include "runtime/hlc.hpp"
#include "runtime/wall_clock.hpp"

namespace brd::io::detail {

inline constexpr const char* log_cf = "log";
inline constexpr const char* vv_cf = "vv";
inline constexpr const char* meta_cf = "meta";
inline constexpr const char* tombstones_cf = "tombstones";
inline constexpr const char* hlc_key = "hlc";
inline constexpr size_t page_size = 1024;

// -- keys -------------------------------------------------------------------

inline std::string be64(uint64_t x) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, x >>= 8)
    out[i] = static_cast<char>(x & 0xff);
  return out;
}

inline std::optional<uint64_t> read_be64(std::string_view bytes) {
  if (bytes.size() != 8)
    return std::nullopt;
  uint64_t x = 0;
  for (unsigned char c : bytes)
    x = (x << 8) | c;
  return x;
}

inline std::string origin_prefix(const std::string& origin) {
  return origin + '\0';
}

inline std::string seq_key(const std::string& origin, uint64_t seq) {
  return origin_prefix(origin) + be64(seq);
}

inline uint64_t seq_of_key(std::string_view key) {
  return key.size() < 8 ? 0 : read_be64(key.substr(key.size() - 8)).value_or(0);
}

inline uint64_t seq_of(const version_vector& vv, const std::string& origin) {
  auto i = vv.find(origin);
  return i == vv.end() ? 0 : i->second;
}

// -- envelopes --------------------------------------------------------------

inline row_envelope row_of(const state_entry& e) {
  return {row_envelope::current_version, e.hlc, e.origin, e.seq, e.tombstone,
          e.tombstone ? std::string{} : e.value};
}

// The log entry of `e`: a reference to its row (the value is read from
// there while the row is this write; log_read in io/state_log.cpp).
inline log_envelope log_of(const state_entry& e) {
  return {log_envelope::current_version, e.table, e.key, e.hlc, e.origin,
          e.seq, e.tombstone, std::string{}, true};
}

inline state_entry entry_of(const std::string& table, const std::string& key,
                            row_envelope r) {
  return {table, key, std::move(r.val), r.tomb, r.hlc, std::move(r.origin),
          r.seq, false};
}

// A log entry's state_entry, its value still to be read when l.ref.
inline state_entry entry_of(log_envelope l) {
  return {std::move(l.table), std::move(l.key), std::move(l.val), l.tomb,
          l.hlc, std::move(l.origin), l.seq, false};
}

// -- reading ----------------------------------------------------------------

// Calls f(key, value) for the keys of `cf` with `prefix` from `from` on, in
// key order, a page at a time, while f returns true.
template <class F>
caf::error for_each_key(const store& db, const std::string& cf,
                        const std::string& prefix, std::string from, F&& f) {
  for (;;) {
    auto rows = db.scan_from(cf, prefix, from, page_size);
    if (!rows)
      return std::move(rows.error());
    for (const auto& [key, value] : *rows)
      if (!f(key, value))
        return caf::none;
    if (rows->size() < page_size)
      return caf::none;
    from = rows->back().first + '\0';
  }
}

inline caf::expected<std::optional<row_envelope>>
read_row(const store& db, const std::string& table, const std::string& key) {
  auto bytes = db.get(table, key);
  if (!bytes)
    return std::move(bytes.error());
  if (!*bytes)
    return std::optional<row_envelope>{};
  auto row = decode_row_envelope(**bytes);
  if (!row)
    return std::move(row.error());
  return std::optional<row_envelope>{std::move(*row)};
}

// read_row() for many keys of one table at once (one MultiGet); element i
// answers keys[i].
inline caf::expected<std::vector<std::optional<row_envelope>>>
read_rows(const store& db, std::string_view table, const std::vector<std::string_view>& keys) {
  auto found = db.multi_get(table, keys);
  if (!found)
    return std::move(found.error());
  std::vector<std::optional<row_envelope>> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i)
    if (const auto& bytes = (*found)[i]) {
      auto row = decode_row_envelope(*bytes);
      if (!row)
        return std::move(row.error());
      out[i] = std::move(*row);
    }
  return out;
}

// -- tables, clocks and the merge rule ---------------------------------------

inline bool is_table(const std::string& name) {
  const auto& tables = replicated_tables();
  return std::find(tables.begin(), tables.end(), name) != tables.end();
}

// The merge rule: the highest (hlc, origin) wins.
inline bool wins(uint64_t hlc, const std::string& origin, uint64_t other_hlc,
                 const std::string& other_origin) {
  return hlc != other_hlc ? hlc > other_hlc : origin > other_origin;
}

inline uint64_t wall_now_ms() {
  return static_cast<uint64_t>(wall_clock_ms());
}

// Why a timestamp of `origin` is too far ahead of our wall clock (`now`,
// read once per batch), if it is.
inline std::optional<std::string> clock_problem(hlc_time hlc, const std::string& origin,
                                                uint64_t now) {
  if (hlc_wall_ms(hlc) <= now + max_clock_ahead_ms)
    return std::nullopt;
  return "stamped " + std::to_string((hlc_wall_ms(hlc) - now) / 1000)
         + " s ahead of this node's clock (clock ahead; the limit is "
         + std::to_string(max_clock_ahead_ms / 1000) + " s); fix: check NTP on " + origin
         + " and on this node";
}

// Calls f(key, row) for the rows of `table` with `prefix`, tombstones
// included, in key order, while f returns true.
template <class F>
caf::error for_each_row(const store& db, const std::string& table,
                        const std::string& prefix, F&& f) {
  caf::error failure;
  auto err = for_each_key(db, table, prefix, prefix,
                          [&](const std::string& key, const std::string& bytes) {
                            auto row = decode_row_envelope(bytes);
                            if (!row) {
                              failure = std::move(row.error());
                              return false;
                            }
                            return f(key, std::move(*row));
                          });
  return err ? err : failure;
}

// -- writing ----------------------------------------------------------------

// Stages rows into a batch by the merge rule. Remembers what it staged, so
// two entries for one key in the same batch are compared with each other.
class row_merger {
public:
  row_merger(const store& db, batch& b) : db_(db), batch_(b) {
  }

  // Stages `e` if it wins against the row it would replace. A stamp above
  // `floor` (the highest hlc of any stored row) wins without a read.
  caf::expected<bool> offer(const state_entry& e, hlc_time floor = 0) {
    if (auto i = staged_.find({e.table, e.key}); i != staged_.end()) {
      if (!wins(e.hlc, e.origin, i->second.first, i->second.second))
        return false;
    } else if (floor == 0 || e.hlc <= floor) {
      auto current = current_stamp(e);
      if (!current)
        return std::move(current.error());
      if (*current && !wins(e.hlc, e.origin, (*current)->first, (*current)->second))
        return false;
    }
    stage(e);
    return true;
  }

  // Reads at once (one MultiGet per table) the rows that offer(e, floor)
  // would read one at a time, for each e of `entries`; offer() then uses
  // them. Call before offering any of them.
  template <class Entries>
  caf::error prefetch(const Entries& entries, hlc_time floor = 0) {
    std::map<std::string_view, std::vector<std::string_view>> keys; // by table
    for (const auto& e : entries)
      if (!e.skipped && (floor == 0 || e.hlc <= floor))
        keys[e.table].push_back(e.key);
    for (const auto& [table, of_table] : keys) {
      auto rows = read_rows(db_, table, of_table);
      if (!rows)
        return std::move(rows.error());
      for (size_t i = 0; i < of_table.size(); ++i) {
        std::optional<stamp> found;
        if (auto& row = (*rows)[i])
          found = stamp{row->hlc, std::move(row->origin)};
        stored_.insert_or_assign({std::string{table}, std::string{of_table[i]}},
                                 std::move(found));
      }
    }
    return caf::none;
  }

  // Stages `e` without a check: for stamps above every stored one.
  void stage(const state_entry& e) {
    batch_.put(e.table, e.key, encode(row_of(e)));
    if (e.tombstone)
      batch_.put(tombstones_cf, seq_key(e.origin, e.seq),
                 e.table + '\0' + e.key);
    staged_[{e.table, e.key}] = {e.hlc, e.origin};
  }

private:
  using stamp = std::pair<uint64_t, std::string>; // (hlc, origin)
  using row_key = std::pair<std::string, std::string>; // (table, key)

  // The (hlc, origin) of the stored row e would replace, if there is one.
  caf::expected<std::optional<stamp>> current_stamp(const state_entry& e) const {
    if (auto i = stored_.find({e.table, e.key}); i != stored_.end())
      return i->second;
    auto current = read_row(db_, e.table, e.key);
    if (!current)
      return std::move(current.error());
    if (!*current)
      return std::optional<stamp>{};
    return std::optional<stamp>{stamp{(*current)->hlc, std::move((*current)->origin)}};
  }

  const store& db_;
  batch& batch_;
  std::map<row_key, stamp> staged_;
  std::map<row_key, std::optional<stamp>> stored_; // prefetched rows
};

} // namespace brd::io::detail
