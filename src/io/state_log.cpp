// The replication-log side of state_store: reading an origin's log for a
// peer (log_since, missing_for) and dropping what every peer already holds
// (truncate: log entries, and tombstone rows with their index entries).
// Opening, writes, snapshots and reads are in io/state_store.cpp; the
// storage layout is in io/state_store_detail.hpp.
#include "io/state_store.hpp"

#include <algorithm>
#include <iterator>
#include <map>
#include <utility>

#include "io/codec.hpp"
#include "io/state_store_detail.hpp"
#include "io/store.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"

namespace brd::io {

using namespace detail;

namespace {

// A write of this node not yet durable (committed, its WAL sync still
// running): a power cut could still lose it.
struct undurable {
  const std::string& self;
  uint64_t durable; // self's highest durable seq
  bool holds(const row_envelope& row) const {
    return row.origin == self && row.seq > durable;
  }
};

// Reads the values of the log entries `refs` names (indexes into
// `entries`, by table) from their rows, one MultiGet per table. An entry
// whose row now holds another write (a newer one won, or the row is gone)
// is skipped: that write travels in its own origin's log. Unless that
// write is one of ours not yet durable: a power cut could take it back, and
// the peer would have skipped the entry for nothing; so `entries` ends
// before the first such entry, which goes out once the write is durable.
caf::error read_values(const store& db, const std::map<std::string, std::vector<size_t>>& refs,
                       const undurable& pending, std::vector<state_entry>& entries) {
  auto end = entries.size();
  for (const auto& [table, of_table] : refs) {
    std::vector<std::string_view> keys;
    keys.reserve(of_table.size());
    for (auto i : of_table)
      keys.push_back(entries[i].key);
    auto rows = read_rows(db, table, keys);
    if (!rows)
      return std::move(rows.error());
    for (size_t j = 0; j < of_table.size(); ++j) {
      auto& e = entries[of_table[j]];
      auto& row = (*rows)[j];
      if (row && row->hlc == e.hlc && row->origin == e.origin && row->seq == e.seq)
        e.value = std::move(row->val);
      else if (row && pending.holds(*row))
        end = std::min(end, of_table[j]);
      else
        e.skipped = true;
    }
  }
  entries.resize(end);
  return caf::none;
}

struct log_read {
  std::vector<state_entry> entries;
  bool truncated = false; // seq after+1 is not in the log
};

// Consecutive log entries of `origin` after `after`, up to `have`.
caf::expected<log_read> read_log(const store& db, const std::string& origin,
                                 uint64_t after, uint64_t have, size_t limit,
                                 const undurable& pending) {
  log_read out;
  if (limit == 0 || after >= have)
    return out;
  auto want = static_cast<size_t>(std::min<uint64_t>(limit, have - after));
  auto rows = db.scan_from(log_cf, origin_prefix(origin),
                           seq_key(origin, after + 1), want);
  if (!rows)
    return std::move(rows.error());
  out.entries.reserve(rows->size());
  std::map<std::string, std::vector<size_t>> refs; // by table: entries whose value is in the row
  for (const auto& [key, value] : *rows) {
    if (seq_of_key(key) != after + 1 + out.entries.size())
      break; // a hole left by a snapshot
    auto entry = decode_log_envelope(value);
    if (!entry)
      return std::move(entry.error());
    if (entry->ref)
      refs[entry->table].push_back(out.entries.size());
    out.entries.push_back(entry_of(std::move(*entry)));
  }
  out.truncated = out.entries.empty();
  if (auto err = read_values(db, refs, pending, out.entries))
    return err;
  return out;
}

// How many log entries of `origin` have floor < seq <= `last` (keys only:
// the values are never read).
caf::expected<size_t> count_log(const store& db, const std::string& origin,
                                uint64_t floor, uint64_t last) {
  return db.count(log_cf, seq_key(origin, floor + 1), seq_key(origin, last + 1));
}

// Stages the erasure of the tombstone rows of `origin` with seq <= `last`
// (unless a newer row replaced them) and of their index entries.
caf::error drop_tombstones(const store& db, batch& b, const std::string& origin,
                           uint64_t last) {
  caf::error failure;
  bool any = false;
  auto err = for_each_key(
    db, tombstones_cf, origin_prefix(origin), seq_key(origin, 0),
    [&](const std::string& index_key, const std::string& where) {
      auto seq = seq_of_key(index_key);
      if (seq > last)
        return false;
      any = true;
      auto split = where.find('\0');
      if (split == std::string::npos)
        return true; // a broken index entry: erased below
      auto table = where.substr(0, split), key = where.substr(split + 1);
      auto row = read_row(db, table, key);
      if (!row) {
        failure = std::move(row.error());
        return false;
      }
      if (*row && (*row)->tomb && (*row)->origin == origin && (*row)->seq == seq)
        b.erase(table, key);
      return true;
    });
  if (err || failure)
    return err ? err : failure;
  if (any)
    b.erase_range(tombstones_cf, seq_key(origin, 0), seq_key(origin, last + 1));
  return caf::none;
}

} // namespace

// -- state_store: the log -------------------------------------------------

caf::error state_store::load_log_spans() {
  log_entries_ = 0;
  for (const auto& [origin, have] : vv_) {
    auto& span = log_spans_[origin];
    auto first = db_.scan_from(log_cf, origin_prefix(origin), seq_key(origin, 0), 1);
    if (!first)
      return std::move(first.error());
    span.floor = first->empty() ? have : seq_of_key(first->front().first) - 1;
    auto n = count_log(db_, origin, span.floor, have);
    if (!n)
      return std::move(n.error());
    log_entries_ += *n;
    if (*n != have - std::min(have, span.floor))
      span.walk_until = have; // gaps of an earlier run: count those by walking
  }
  return caf::none;
}

caf::expected<size_t> state_store::entries_through(const std::string& origin,
                                                   uint64_t last) {
  auto& span = log_spans_[origin];
  if (last <= span.floor)
    return size_t{0};
  if (span.floor < span.walk_until)
    return count_log(db_, origin, span.floor, last);
  uint64_t missing = 0;
  for (const auto& [first, end] : span.gaps)
    if (end > span.floor && first <= last)
      missing += std::min(end, last) - std::max(first, span.floor + 1) + 1;
  return static_cast<size_t>(last - span.floor - missing);
}

caf::expected<std::vector<state_entry>>
state_store::log_since(const std::string& origin, uint64_t after,
                       size_t limit) const {
  auto got = read_log(db_, origin, after, seq_of(vv_, origin), limit,
                      {self_, seq_of(vv_, self_)});
  if (!got)
    return std::move(got.error());
  if (got->truncated)
    return make_error(brd_errc::store_failure,
                      "the log of '" + origin + "' is truncated: seq "
                        + std::to_string(after + 1)
                        + " is no longer held; send a snapshot");
  return std::move(got->entries);
}

caf::expected<state_store::delta>
state_store::missing_for(const version_vector& peer_vv, size_t limit) const {
  delta out;
  for (const auto& [origin, have] : vv_) {
    if (out.entries.size() >= limit)
      break;
    auto got = read_log(db_, origin, seq_of(peer_vv, origin), have,
                        limit - out.entries.size(), {self_, seq_of(vv_, self_)});
    if (!got)
      return std::move(got.error());
    out.needs_snapshot = out.needs_snapshot || got->truncated;
    std::move(got->entries.begin(), got->entries.end(),
              std::back_inserter(out.entries));
  }
  return out;
}

caf::expected<state_store::truncation>
state_store::truncate(const std::vector<version_vector>& peer_vvs,
                      const std::vector<version_vector>& connected_vvs, uint64_t keep) {
  // The seq of `origin` every vector in `vvs` holds, at most `have`.
  auto held_by = [](const std::vector<version_vector>& vvs, const std::string& origin,
                    uint64_t have) {
    for (const auto& peer : vvs)
      have = std::min(have, seq_of(peer, origin));
    return have;
  };
  bool every_peer = peer_vvs.size() + 1 >= origins_.size();
  // While some peer holds an entry this node lacks, that entry may be an
  // older write to a tombstoned key: keep the tombstones until it is here.
  bool behind = false;
  for (const auto& peer : peer_vvs)
    for (const auto& [origin, seq] : peer)
      behind = behind || seq > seq_of(vv_, origin);
  batch b;
  truncation out;
  for (const auto& [origin, have] : vv_) {
    auto everywhere = every_peer ? held_by(peer_vvs, origin, have) : 0;
    auto last = everywhere;
    if (keep > 0 && have > keep)
      last = std::max(last, held_by(connected_vvs, origin, have - keep));
    if (last == 0)
      continue;
    auto floor = log_spans_[origin].floor;
    if (last > floor) {
      auto n = entries_through(origin, last);
      if (!n)
        return std::move(n.error());
      if (*n > 0)
        b.erase_range(log_cf, seq_key(origin, floor + 1), seq_key(origin, last + 1));
      out.dropped += *n;
    }
    out.through[origin] = last;
    if (everywhere > 0 && !behind)
      if (auto err = drop_tombstones(db_, b, origin, everywhere))
        return err;
  }
  if (!b.empty())
    if (auto err = db_.write(b, false))
      return err;
  for (const auto& [origin, last] : out.through) {
    auto& span = log_spans_[origin];
    span.floor = std::max(span.floor, last);
    std::erase_if(span.gaps, [&](const auto& gap) { return gap.second <= span.floor; });
  }
  log_entries_ -= std::min(log_entries_, out.dropped);
  if (out.dropped > 0)
    log::store()->debug("truncated {} log entries", out.dropped);
  return out;
}

} // namespace brd::io
