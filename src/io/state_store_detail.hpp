// Internal to io/state_store.cpp and io/state_log.cpp: the storage layout of
// state_store and the helpers both files need to read and write it. Not
// part of the io API; nothing else should include this header.
//
//   <table>      key                   -> row_envelope (io/codec)
//   log          origin \0 be64(seq)   -> log_envelope (row + table + key)
//   tombstones   origin \0 be64(seq)   -> table \0 key  (tombstone rows)
//   vv           origin                -> be64(highest seq applied)
//   meta         "hlc"                 -> be64(highest hlc in any row)
//
// be64 is 8 bytes big-endian, so an origin's log is in seq order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "io/codec.hpp"
#include "io/state_store.hpp"
#include "io/store.hpp"

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

inline log_envelope log_of(const state_entry& e) {
  return {log_envelope::current_version, e.table, e.key, e.hlc, e.origin,
          e.seq, e.tombstone, e.tombstone ? std::string{} : e.value};
}

inline state_entry entry_of(const std::string& table, const std::string& key,
                            row_envelope r) {
  return {table, key, std::move(r.val), r.tomb, r.hlc, std::move(r.origin),
          r.seq};
}

inline state_entry entry_of(log_envelope l) {
  return {std::move(l.table), std::move(l.key), std::move(l.val), l.tomb,
          l.hlc, std::move(l.origin), l.seq};
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

} // namespace brd::io::detail
