// state_store's snapshots: every row of every table with the version
// vector, in chunks, for a peer too far behind for the log; and applying a
// chunk, checked whole before any row is written, by the merge rule. See
// state_store.hpp.
#include "io/state_store.hpp"

#include <limits>
#include <utility>

#include "io/codec.hpp"
#include "io/state_store_detail.hpp"
#include "io/store.hpp"
#include "runtime/errors.hpp"

namespace brd::io {

using namespace detail;

caf::expected<state_snapshot> state_store::snapshot(snapshot_cursor& at,
                                                    size_t max_bytes) const {
  state_snapshot out;
  out.from = self_;
  if (!at.started) {
    at.vv = vv_;
    at.started = true;
  }
  const auto& tables = replicated_tables();
  size_t bytes = 0;
  for (; at.table < tables.size(); ++at.table, at.from.clear()) {
    const auto& table = tables[at.table];
    for (;;) { // pages of this table, until it ends or the chunk is full
      auto page = db_.scan_from(table, "", at.from, page_size, max_bytes - bytes);
      if (!page)
        return std::move(page.error());
      for (auto& [key, raw] : *page) {
        auto row = decode_row_envelope(raw);
        if (!row)
          return std::move(row.error());
        bytes += key.size() + raw.size();
        out.rows.push_back(entry_of(table, key, std::move(*row)));
      }
      if (!page->empty())
        at.from = page->back().first + '\0'; // the next page starts after it
      if (bytes >= max_bytes)
        break; // the chunk is full: this table goes on in the next one
      if (page->size() < page_size)
        break; // the table ended
    }
    if (bytes >= max_bytes)
      break;
  }
  at.rows += out.rows.size();
  ++at.chunks;
  out.last = at.table >= tables.size();
  if (out.last)
    out.vv = at.vv;
  return out;
}

caf::expected<state_snapshot> state_store::snapshot() const {
  snapshot_cursor all;
  return snapshot(all, std::numeric_limits<size_t>::max());
}

caf::expected<std::vector<state_entry>>
state_store::apply_snapshot(const state_snapshot& snap) {
  auto refuse = [&](const std::string& why) {
    return make_error(brd_errc::io_failure,
                      "snapshot from '" + snap.from + "' refused: " + why);
  };
  auto now = wall_now_ms();
  for (const auto& [origin, seq] : snap.vv)
    if (!known_origin(origin))
      return refuse("it names unknown node '" + origin + "'");
  for (const auto& row : snap.rows) {
    if (!known_origin(row.origin))
      return refuse("a row comes from unknown node '" + row.origin + "'");
    if (!is_table(row.table))
      return refuse("a row names unknown table '" + row.table + "'");
    if (!row.tombstone)
      if (auto problem = value_problem(row.value))
        return refuse(row.table + "/" + row.key + ": " + *problem);
    if (auto ahead = clock_problem(row.hlc, row.origin, now))
      return refuse(row.table + "/" + row.key + " " + *ahead);
  }
  std::vector<state_entry> changed;
  batch b;
  row_merger rows{db_, b};
  if (auto err = rows.prefetch(snap.rows))
    return err;
  for (auto row : snap.rows) {
    if (row.tombstone)
      row.value.clear();
    auto won = rows.offer(row);
    if (!won)
      return std::move(won.error());
    clock_.observe(row.hlc);
    if (*won)
      changed.push_back(std::move(row));
  }
  version_vector raised, gaps; // gaps: origin -> the first seq the log lacks
  for (const auto& [origin, seq] : snap.vv)
    if (seq > written(origin)) {
      raised[origin] = seq;
      gaps[origin] = written(origin) + 1;
      b.put(vv_cf, origin, be64(seq));
    }
  if (b.empty())
    return changed;
  b.put(meta_cf, hlc_key, be64(clock_.last()));
  // Only the last chunk raises the vector, so only it must be durable (its
  // sync covers the chunks before it; a crash before it loses nothing the
  // vector claims).
  if (auto err = db_.write(b, snap.last))
    return err;
  for (const auto& [origin, first] : gaps)
    log_spans_[origin].gaps.emplace_back(first, raised[origin]);
  raise(raised);
  return changed;
}

} // namespace brd::io
