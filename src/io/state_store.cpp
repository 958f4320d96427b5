// The state_store's opening, writes (commit, apply) and reads, with the
// validation of records. The replication-log side (log_since, missing_for,
// truncate) is in io/state_log.cpp, snapshots in io/state_snapshot.cpp; the
// storage layout, the merge rule and the helpers these files share are in
// io/state_store_detail.hpp.
//
// Every batch that writes rows also writes meta "hlc" and open() seeds the
// clock with it: after a restart a local write still gets a stamp above
// every stored row, so commit() needs no read of the row it replaces.
#include "io/state_store.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

#include "io/codec.hpp"
#include "io/state_store_detail.hpp"
#include "io/store.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"
#include "runtime/wall_clock.hpp"

namespace brd::io {

using namespace detail;

namespace {

constexpr uint64_t supported_major = 1;
constexpr uint64_t first_unknown_version = 100 * (supported_major + 1);

// -- validation -----------------------------------------------------------

std::string table_list() {
  std::string out;
  for (const auto& t : replicated_tables())
    out += (out.empty() ? "" : ", ") + t;
  return out;
}

caf::error unknown_table(const std::string& table) {
  return make_error(brd_errc::store_failure,
                    "unknown table '" + table + "' (tables: " + table_list()
                      + ")");
}

caf::error check_write(const local_write& w) {
  if (!is_table(w.table))
    return unknown_table(w.table);
  if (w.value)
    if (auto problem = value_problem(*w.value))
      return make_error(brd_errc::io_failure, "write to " + w.table + "/"
                                                + w.key + " refused: "
                                                + *problem);
  return caf::none;
}

// Why a peer's entry (not yet applied, origin known) is refused, if it is.
std::optional<std::string> entry_problem(const state_entry& e, uint64_t have, uint64_t now) {
  auto which = "entry " + std::to_string(e.seq) + " from '" + e.origin + "'";
  if (e.seq != have + 1)
    return "gap in sequence from " + e.origin + ": expected "
           + std::to_string(have + 1) + ", got " + std::to_string(e.seq);
  if (auto ahead = clock_problem(e.hlc, e.origin, now))
    return which + " " + *ahead;
  if (!is_table(e.table))
    return which + " names unknown table '" + e.table + "'";
  if (!e.tombstone && !e.skipped)
    if (auto problem = value_problem(e.value))
      return which + " for " + e.table + "/" + e.key + " refused: " + *problem;
  return std::nullopt;
}

// -- writing --------------------------------------------------------------

void stage_log(batch& b, const state_entry& e) {
  b.put(log_cf, seq_key(e.origin, e.seq), encode(log_of(e)));
}

// FNV-1a 64 over length-prefixed fields.
struct fnv1a {
  uint64_t hash = 0xcbf29ce484222325ull;

  void bytes(std::string_view s) {
    for (unsigned char c : s) {
      hash ^= c;
      hash *= 0x100000001b3ull;
    }
  }

  void field(std::string_view s) {
    bytes(be64(s.size()));
    bytes(s);
  }

  std::string hex() const {
    char out[17];
    std::snprintf(out, sizeof(out), "%016llx",
                  static_cast<unsigned long long>(hash));
    return out;
  }
};

} // namespace

std::optional<std::string> value_problem(std::string_view value) {
  auto v = decode_record_version(value);
  if (!v) {
    auto why = describe(v.error());
    constexpr std::string_view prefix = "corrupt record: ";
    if (why.rfind(prefix, 0) == 0)
      why.erase(0, prefix.size());
    return "corrupt value: " + why;
  }
  if (*v >= first_unknown_version)
    return "unknown schema version " + std::to_string(*v)
           + " (this node reads versions below "
           + std::to_string(first_unknown_version) + ")";
  return std::nullopt;
}

// -- tables ---------------------------------------------------------------

const std::vector<std::string>& replicated_tables() {
  static const std::vector<std::string> tables{
    "deployments", "nodes", "tasks", "artifacts", "rollouts", "triage", "alerts"};
  return tables;
}

std::vector<std::string> state_column_families() {
  auto out = replicated_tables();
  out.insert(out.end(), {log_cf, vv_cf, meta_cf, tombstones_cf});
  return out;
}

// -- state_store: opening -------------------------------------------------

state_store::state_store(store& db, std::string self,
                         std::vector<std::string> origins)
  : db_(db), self_(std::move(self)), origins_(std::move(origins)) {
}

state_store::~state_store() = default;

caf::expected<std::unique_ptr<state_store>>
state_store::open(store& db, std::string self,
                  std::vector<std::string> known_origins) {
  known_origins.push_back(self);
  std::sort(known_origins.begin(), known_origins.end());
  known_origins.erase(std::unique(known_origins.begin(), known_origins.end()),
                      known_origins.end());
  std::unique_ptr<state_store> result{
    new state_store(db, std::move(self), std::move(known_origins))};
  if (auto err = result->load())
    return err;
  return result;
}

caf::error state_store::load() {
  for (const auto& cf : state_column_families())
    if (auto probe = db_.get(cf, ""); !probe)
      return std::move(probe.error());
  auto rows = db_.scan(vv_cf, "");
  if (!rows)
    return std::move(rows.error());
  for (const auto& [origin, bytes] : *rows) {
    auto seq = read_be64(bytes);
    if (!seq)
      return make_error(brd_errc::store_failure,
                        "corrupt version vector entry for '" + origin
                          + "' in store " + db_.dir());
    vv_[origin] = *seq;
  }
  auto floor = db_.get(meta_cf, hlc_key);
  if (!floor)
    return std::move(floor.error());
  if (*floor)
    hlc_floor_ = read_be64(**floor).value_or(0);
  clock_.observe(hlc_floor_);
  next_seq_ = seq_of(vv_, self_) + 1;
  if (auto err = load_log_spans())
    return err;
  log::store()->info("state of {}: next seq {}, {} origins in the version "
                     "vector",
                     self_, next_seq_, vv_.size());
  return caf::none;
}

bool state_store::known_origin(const std::string& origin) const {
  return std::binary_search(origins_.begin(), origins_.end(), origin);
}

void state_store::raise(const version_vector& vv) {
  for (const auto& [origin, seq] : vv)
    if (seq > seq_of(vv_, origin))
      vv_[origin] = seq;
  next_seq_ = std::max(next_seq_, seq_of(vv_, self_) + 1);
  hlc_floor_ = std::max(hlc_floor_, clock_.last());
}

// -- state_store: writing -------------------------------------------------

caf::expected<std::vector<state_entry>>
state_store::commit(const std::vector<local_write>& writes, bool sync) {
  for (const auto& w : writes)
    if (auto err = check_write(w))
      return err;
  std::vector<state_entry> out;
  if (writes.empty())
    return out;
  out.reserve(writes.size());
  batch b;
  row_merger rows{db_, b};
  auto seq = next_seq_;
  for (const auto& w : writes) {
    state_entry e{w.table, w.key, w.value.value_or(""), !w.value,
                  clock_.now(), self_, seq++};
    if (e.hlc > hlc_floor_) {
      rows.stage(e); // newer than every stored row: wins without a read
    } else if (auto won = rows.offer(e); !won) {
      return std::move(won.error());
    }
    stage_log(b, e);
    out.push_back(std::move(e));
  }
  b.put(vv_cf, self_, be64(seq - 1));
  b.put(meta_cf, hlc_key, be64(clock_.last()));
  if (auto err = db_.write(b, sync))
    return err;
  log_entries_ += out.size();
  if (sync)
    raise({{self_, seq - 1}});
  else
    next_seq_ = seq; // durable with mark_durable()
  hlc_floor_ = std::max(hlc_floor_, clock_.last());
  return out;
}

caf::error state_store::sync() {
  return db_.sync_wal();
}

void state_store::mark_durable(uint64_t seq) {
  raise({{self_, std::min(seq, next_seq_ - 1)}});
}

uint64_t state_store::written(const std::string& origin) const {
  return origin == self_ ? next_seq_ - 1 : seq_of(vv_, origin);
}

caf::expected<state_store::apply_result>
state_store::apply(const std::vector<state_entry>& entries) {
  apply_result result;
  version_vector seen;          // per origin, the highest seq accepted so far
  std::set<std::string> halted; // origins refused in this call
  auto now = wall_now_ms();
  batch b;
  row_merger rows{db_, b};
  for (const auto& e : entries) {
    if (halted.count(e.origin) != 0)
      continue;
    if (!known_origin(e.origin)) {
      result.refused.push_back("entry from unknown node '" + e.origin
                               + "' refused: it is not in the fleet config");
      halted.insert(e.origin);
      continue;
    }
    auto& have = seen.try_emplace(e.origin, written(e.origin)).first->second;
    if (e.seq <= have)
      continue; // already applied: idempotent
    if (auto problem = entry_problem(e, have, now)) {
      result.refused.push_back(std::move(*problem));
      halted.insert(e.origin);
      continue;
    }
    auto& entry = result.applied.emplace_back(e);
    if (entry.tombstone || entry.skipped)
      entry.value.clear();
    have = entry.seq;
    clock_.observe(entry.hlc);
  }
  if (result.applied.empty())
    return result;
  // The rows these entries may replace, read in one MultiGet per table.
  if (auto err = rows.prefetch(result.applied, hlc_floor_))
    return err;
  for (const auto& entry : result.applied) {
    stage_log(b, entry);
    if (entry.skipped)
      continue; // a newer write replaced its row where it was read
    auto won = rows.offer(entry, hlc_floor_);
    if (!won)
      return std::move(won.error());
    if (*won)
      result.changed.push_back(entry);
  }
  for (const auto& [origin, seq] : seen)
    if (seq > written(origin))
      b.put(vv_cf, origin, be64(seq));
  b.put(meta_cf, hlc_key, be64(clock_.last()));
  // Relearning our own writes must survive a crash, or a seq gets reused.
  bool own = seq_of(seen, self_) > written(self_);
  if (auto err = db_.write(b, own))
    return err;
  log_entries_ += result.applied.size();
  if (!own)
    seen.erase(self_); // own entries written without sync stay undurable
  raise(seen);
  return result;
}

// -- state_store: reading -------------------------------------------------

caf::expected<std::optional<state_row>>
state_store::get(const std::string& table, const std::string& key) const {
  if (!is_table(table))
    return unknown_table(table);
  auto row = read_row(db_, table, key);
  if (!row)
    return std::move(row.error());
  if (!*row || (*row)->tomb)
    return std::optional<state_row>{};
  return std::optional<state_row>{entry_of(table, key, std::move(**row))};
}

caf::expected<std::vector<state_row>>
state_store::scan(const std::string& table, const std::string& prefix,
                  size_t limit) const {
  if (!is_table(table))
    return unknown_table(table);
  std::vector<state_row> out;
  if (limit == 0)
    return out;
  auto err = for_each_row(db_, table, prefix,
                          [&](const std::string& key, row_envelope row) {
                            if (!row.tomb)
                              out.push_back(entry_of(table, key, std::move(row)));
                            return out.size() < limit;
                          });
  if (err)
    return err;
  return out;
}

caf::expected<std::map<std::string, std::string>> state_store::digest() const {
  std::map<std::string, std::string> out;
  for (const auto& table : replicated_tables()) {
    fnv1a hash;
    auto err = for_each_row(db_, table, "",
                            [&](const std::string& key, const row_envelope& row) {
                              if (!row.tomb) {
                                hash.field(key);
                                hash.field(row.val);
                                hash.field(be64(row.hlc));
                                hash.field(row.origin);
                              }
                              return true;
                            });
    if (err)
      return err;
    out.emplace(table, hash.hex());
  }
  return out;
}

} // namespace brd::io
