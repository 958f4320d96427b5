// repl_floor: one node of the replication benchmark's floors
// (floor_load.hpp). The same writer actors put into one detached actor, as
// into the state actor; it group-commits their writes to RocksDB (io::store,
// our options), fsyncs the WAL on a detached syncer, acknowledges, and sends
// the entries (brd::repl_batch, our wire type) to both peers over CAF's
// transport, at most 2 batches unanswered per peer; a peer stores them
// (unsynced) and answers with what it holds. --mode says what a write
// stores (floor_mode below): raw, design or store. Started by
// bench_replication:
//   repl_floor --mode M --name N --port P --peer NAME=PORT --peer NAME=PORT
//              --dir DIR --writes N --clients N --value-size N --start-ms EPOCH_MS
// Prints "ready" once both peers are reached, starts its writers at
// --start-ms, prints "done <epoch ms> <errors> <writes>" once its own writes
// are acknowledged and both peers' writes are stored here, then waits to be
// stopped. Any failure ends it with "failed: <what>".
// Issue 4's webhook floor (floor_webhook.hpp) runs the same node with
// --writes 0 and any number of peers: --webhook-port P --secret-file F
// --roles R1,R2,.. makes it the edge, --role R a role node.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <ranges>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/stateful_actor.hpp>

#include "io/state_store.hpp"
#include "io/state_store_detail.hpp" // the design floor writes the same layout
#include "io/store.hpp"
#include "runtime/type_registry.hpp"
#include "runtime/wall_clock.hpp"
#include "floor_webhook.hpp"
#include "util.hpp"
#include "writers.hpp"

namespace {

using namespace std::chrono_literals;

constexpr size_t max_in_flight = 2; // batches unanswered per peer, as the state actor

using version_vector = std::map<std::string, uint64_t>;

// What a write costs beyond the raw minimum (--mode).
enum class floor_mode {
  raw,    // a row per write, nothing else
  design, // the storage work issue 3's design needs at the least: the row
          // and a log entry (origin, seq: table, key, stamp) in the origin's
          // batch with its version vector; on peers the merge rule's read of the stored
          // row (one MultiGet per batch), the row, a log entry (to relay)
          // and the version vector; the log truncated every second. Left
          // out: the stamp stored with each row, checking values
          // (msgpack, schema version), the HLC
  store,  // BlackRoad's storage layer (io::state_store: envelopes,
          // validation, the merge rule, the log, the version vector)
          // under this minimal actor
};

struct peer_link {
  std::string name;
  caf::actor handle;
  std::vector<brd::state_entry> unsent;
  size_t in_flight = 0;
  version_vector acked; // its last reply
};

struct node_state {
  floor_mode mode = floor_mode::raw;
  brd::io::store* db = nullptr;
  std::unique_ptr<brd::io::state_store> rows; // mode store
  caf::actor syncer;
  std::string name;
  uint64_t seq = 0;
  version_vector have; // per origin, the highest seq stored here
  std::vector<brd::state_entry> pending;
  // One per pending entry, called once it is durable (may be empty).
  std::vector<std::function<void(const brd::state_entry&)>> waiting;
  bool committing = false;
  std::vector<peer_link> peers;
  std::shared_ptr<std::atomic<uint64_t>> applied, errors;
  // The webhook floor: the edge's part, or the role this node holds.
  std::shared_ptr<bench::webhook_edge> edge;
  std::string role;
  bool supersede = false;
};

using node_ptr = caf::stateful_actor<node_state>*;

using brd::io::detail::be64;
using brd::io::detail::log_cf;
using brd::io::detail::seq_key;
using brd::io::detail::vv_cf;

// Mode design: the row and its log entry (table, key and stamp; a relay
// reads the value from the row, as io::state_store does).
void stage(brd::io::batch& batch, const brd::state_entry& e, floor_mode mode) {
  batch.put(e.table, e.key, e.value);
  if (mode == floor_mode::design)
    batch.put(log_cf, seq_key(e.origin, e.seq), e.table + '\0' + e.key + '\0' + be64(e.hlc));
}

void fail(const char* what) {
  std::printf("failed: %s\n", what);
  std::fflush(stdout);
  std::exit(1);
}

void push(node_ptr self, size_t peer) {
  auto& link = self->state.peers[peer];
  if (link.in_flight >= max_in_flight || link.unsent.empty())
    return;
  ++link.in_flight;
  brd::repl_batch batch{self->state.name, std::move(link.unsent)};
  link.unsent.clear();
  self->request<caf::message_priority::high>(link.handle, 30s, std::move(batch))
    .then(
      [=](version_vector& theirs) {
        --self->state.peers[peer].in_flight;
        self->state.peers[peer].acked = std::move(theirs);
        push(self, peer);
      },
      [=](caf::error&) {
        --self->state.peers[peer].in_flight;
        ++*self->state.errors;
      });
}

// One group commit: every pending write in one batch, written, synced by
// the syncer, then acknowledged and sent to the peers.
void commit(node_ptr self) {
  auto& st = self->state;
  if (st.committing || st.pending.empty())
    return;
  st.committing = true;
  auto entries = std::make_shared<std::vector<brd::state_entry>>(std::move(st.pending));
  auto promises = std::make_shared<decltype(st.waiting)>(std::move(st.waiting));
  st.pending.clear();
  st.waiting.clear();
  if (st.mode == floor_mode::store) {
    std::vector<brd::io::local_write> writes;
    for (auto& e : *entries)
      writes.push_back({std::move(e.table), std::move(e.key), std::move(e.value)});
    auto committed = st.rows->commit(writes, false);
    if (!committed || committed->size() != writes.size())
      fail("commit");
    *entries = std::move(*committed);
  } else {
    brd::io::batch batch;
    for (const auto& e : *entries)
      stage(batch, e, st.mode);
    if (st.mode == floor_mode::design)
      batch.put(vv_cf, st.name, be64(entries->back().seq));
    if (st.db->write(batch, false))
      fail("commit");
  }
  self->request(st.syncer, 30s, brd::flush_atom::value)
    .then([=](bool ok) {
      auto& s = self->state;
      if (!ok)
        fail("sync");
      if (s.rows)
        s.rows->mark_durable(entries->back().seq);
      for (size_t i = 0; i < promises->size(); ++i)
        if ((*promises)[i])
          (*promises)[i]((*entries)[i]);
      for (size_t p = 0; p < s.peers.size(); ++p) {
        auto& unsent = s.peers[p].unsent;
        unsent.insert(unsent.end(), entries->begin(), entries->end());
        push(self, p);
      }
      s.committing = false;
      commit(self);
    },
    [=](caf::error&) { fail("sync"); });
}

// A write of this node: stamped, then in the next group commit.
void take(node_state& st, brd::state_entry entry,
          std::function<void(const brd::state_entry&)> durable) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  entry.hlc = static_cast<uint64_t>(
                std::chrono::duration_cast<std::chrono::milliseconds>(now).count())
              << 16;
  entry.origin = st.name;
  entry.seq = ++st.seq;
  st.pending.push_back(std::move(entry));
  st.waiting.push_back(std::move(durable));
}

// The webhook floor's part in storing a peer's batch: the edge samples
// deployments whose tasks all run, a role node starts its tasks.
void on_stored(node_ptr self, const std::vector<brd::state_entry>& stored) {
  auto& st = self->state;
  if (st.edge)
    st.edge->stored(stored);
  if (st.role.empty())
    return;
  for (auto& row : bench::running_rows(st.role, st.name, stored, st.supersede))
    take(st, std::move(row), nullptr);
  commit(self);
}

// Stores a peer's batch: unsynced, as the state actor applies.
version_vector apply(node_state& st, const brd::repl_batch& in) {
  if (st.mode == floor_mode::store) {
    auto result = st.rows->apply(in.entries);
    if (!result || !result->refused.empty())
      fail("apply");
    *st.applied += result->applied.size();
    return st.rows->vv();
  }
  if (st.mode == floor_mode::design) { // the merge rule's read, one MultiGet per table
    std::map<std::string_view, std::vector<std::string_view>> keys;
    for (const auto& e : in.entries)
      keys[e.table].push_back(e.key);
    for (const auto& [table, of_table] : keys)
      if (!st.db->multi_get(table, of_table))
        fail("multi_get");
  }
  brd::io::batch batch;
  for (const auto& e : in.entries) {
    stage(batch, e, st.mode);
    st.have[e.origin] = e.seq;
  }
  if (st.mode == floor_mode::design)
    for (const auto& [origin, seq] : st.have)
      batch.put(vv_cf, origin, be64(seq));
  if (st.db->write(batch, false))
    fail("apply");
  *st.applied += in.entries.size();
  return st.have;
}

// Drops the log entries every peer holds (modes design and store).
void truncate(node_state& st) {
  std::vector<version_vector> held;
  for (const auto& p : st.peers)
    held.push_back(p.acked);
  if (st.rows) {
    if (!st.rows->truncate(held, held, 100'000))
      fail("truncate");
    return;
  }
  brd::io::batch batch;
  auto origins = st.have;
  origins[st.name] = st.seq;
  for (const auto& [origin, seq] : origins) {
    auto through = seq;
    for (const auto& p : st.peers)
      if (p.name != origin) // an origin holds its own entries
        through = std::min(through, p.acked.contains(origin) ? p.acked.at(origin) : 0);
    batch.erase_range(log_cf, seq_key(origin, 0), seq_key(origin, through + 1));
  }
  if (st.db->write(batch, false))
    fail("truncate");
}

// Takes local puts (as the state actor does) and stores what peers send.
caf::behavior node(node_ptr self, floor_mode mode, brd::io::store* db, std::string name,
                   std::vector<std::string> names,
                   std::shared_ptr<std::atomic<uint64_t>> applied,
                   std::shared_ptr<std::atomic<uint64_t>> errors,
                   std::shared_ptr<bench::webhook_edge> edge, std::string role,
                   bool supersede) {
  auto& st = self->state;
  st.supersede = supersede;
  st.edge = std::move(edge);
  st.role = std::move(role);
  st.mode = mode;
  st.db = db;
  st.name = name;
  st.applied = std::move(applied);
  st.errors = std::move(errors);
  if (mode == floor_mode::store) {
    auto rows = brd::io::state_store::open(*db, std::move(name), names);
    if (!rows)
      fail("cannot open the state store");
    st.rows = std::move(*rows);
  }
  if (mode != floor_mode::raw)
    self->send(self, brd::tick_atom::value);
  st.syncer = self->spawn<caf::detached>([db](caf::event_based_actor*) -> caf::behavior {
    return {[db](brd::flush_atom) { return !db->sync_wal(); }};
  });
  return {
    [=](brd::put_atom, std::string& table, std::string& key, std::string& value) {
      auto promise = self->make_response_promise();
      take(self->state, {std::move(table), std::move(key), std::move(value)},
           [promise](const brd::state_entry& e) mutable {
             promise.deliver(brd::write_ack{e.hlc, e.origin, e.seq});
           });
      commit(self);
      return promise;
    },
    [=](bench::inbox_atom, std::shared_ptr<bench::webhook_inbox>& inbox) {
      auto& s = self->state;
      for (auto& item : inbox->take()) {
        for (auto& row : item.rows)
          s.edge->opened(row, item.arrival);
        for (size_t i = 0; i < item.rows.size(); ++i) {
          std::function<void(const brd::state_entry&)> durable;
          if (i + 1 == item.rows.size())
            durable = [done = item.durable](const brd::state_entry&) { done->set_value(); };
          take(s, std::move(item.rows[i]), std::move(durable));
        }
      }
      commit(self);
    },
    [=](brd::repl_batch& in) {
      auto vv = apply(self->state, in);
      on_stored(self, in.entries);
      return vv;
    },
    [=](brd::tick_atom) {
      truncate(self->state);
      self->delayed_send(self, 1s, brd::tick_atom::value);
    },
    [=](std::vector<caf::actor>& peers) { // in the order of names[1..]
      for (size_t i = 0; i < peers.size(); ++i)
        self->state.peers.push_back({names[i + 1], std::move(peers[i]), {}, 0, {}});
    },
  };
}

struct options {
  std::string name, dir;
  uint16_t port = 0;
  std::vector<std::pair<std::string, uint16_t>> peers; // name, port
  uint64_t writes = 0, clients = 64, value_size = 200;
  int64_t start_ms = 0;
  floor_mode mode = floor_mode::raw;
  // The webhook floor: the edge's HTTP port, secret and roles, or this
  // node's role.
  uint16_t webhook_port = 0;
  std::string secret_file, role;
  std::vector<std::string> roles;
  bool supersede = false;
};

bool parse(int argc, char** argv, options& out) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string arg = argv[i], value = argv[i + 1];
    auto number = [&] { return std::strtoull(value.c_str(), nullptr, 10); };
    if (arg == "--name")
      out.name = value;
    else if (arg == "--dir")
      out.dir = value;
    else if (arg == "--port")
      out.port = static_cast<uint16_t>(number());
    else if (auto eq = value.find('='); arg == "--peer" && eq != std::string::npos)
      out.peers.emplace_back(value.substr(0, eq), static_cast<uint16_t>(std::strtoul(
                                                    value.c_str() + eq + 1, nullptr, 10)));
    else if (arg == "--writes")
      out.writes = number();
    else if (arg == "--clients")
      out.clients = number();
    else if (arg == "--value-size")
      out.value_size = number();
    else if (arg == "--mode" && (value == "raw" || value == "design" || value == "store"))
      out.mode = value == "raw" ? floor_mode::raw
                 : value == "design" ? floor_mode::design : floor_mode::store;
    else if (arg == "--start-ms")
      out.start_ms = static_cast<int64_t>(number());
    else if (arg == "--webhook-port")
      out.webhook_port = static_cast<uint16_t>(number());
    else if (arg == "--secret-file")
      out.secret_file = value;
    else if (arg == "--role")
      out.role = value;
    else if (arg == "--supersede")
      out.supersede = value == "on";
    else if (arg == "--roles")
      for (std::string_view rest = value; !rest.empty();) {
        auto comma = rest.find(',');
        out.roles.emplace_back(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
      }
    else
      return false;
  }
  const bool webhook = out.webhook_port != 0 || !out.role.empty();
  return argc % 2 == 1 && !out.name.empty() && !out.dir.empty() && out.port != 0
         && out.clients > 0
         && (webhook ? (out.webhook_port == 0 || (!out.secret_file.empty() && !out.roles.empty()))
                     : out.writes > 0 && out.start_ms > 0);
}

int run(const options& opts) {
  auto db = brd::io::store::open(opts.dir, brd::io::state_column_families());
  if (!db) {
    std::printf("failed: cannot open the store in %s\n", opts.dir.c_str());
    return 1;
  }
  brd::system_config cfg{"floor", false};
  caf::actor_system sys{cfg};
  auto applied = std::make_shared<std::atomic<uint64_t>>(0);
  auto errors = std::make_shared<std::atomic<uint64_t>>(0);
  std::vector<std::string> names{opts.name};
  for (const auto& peer : opts.peers)
    names.push_back(peer.first);
  // Detached, as the state actor.
  std::shared_ptr<bench::webhook_edge> edge;
  if (opts.webhook_port != 0)
    edge = std::make_shared<bench::webhook_edge>(bench::read_secret(opts.secret_file),
                                                 opts.roles);
  auto self = sys.spawn<caf::detached>(node, opts.mode, db->get(), opts.name, names, applied,
                                       errors, edge, opts.role,
                                       opts.supersede);
  if (!sys.middleman().publish(self, opts.port, "127.0.0.1")) {
    std::printf("failed: cannot listen on port %u\n", opts.port);
    return 1;
  }
  std::vector<caf::actor> peers;
  for (auto port : opts.peers | std::views::values) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      auto peer = sys.middleman().remote_actor("127.0.0.1", port);
      if (peer) {
        peers.push_back(std::move(*peer));
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        std::printf("failed: no peer on port %u within 20 s\n", port);
        return 1;
      }
      std::this_thread::sleep_for(50ms);
    }
  }
  caf::anon_send(self, std::move(peers));
  std::unique_ptr<brd::io::http_server> http; // the webhook floor's edge
  if (edge) {
    auto served = edge->serve(opts.webhook_port, self);
    if (!served) {
      std::printf("failed: cannot serve HTTP on port %u\n", opts.webhook_port);
      return 1;
    }
    http = std::move(*served);
  }
  std::printf("ready\n");
  std::fflush(stdout);
  while (edge || !opts.role.empty()) // a node of the webhook floor, until stopped
    std::this_thread::sleep_for(1s);
  std::this_thread::sleep_for(
    std::chrono::milliseconds(std::max<int64_t>(0, opts.start_ms - brd::wall_clock_ms())));
  bench::writer_plan plan;
  plan.prefix = "w-" + opts.name + "-";
  plan.writers = std::min<uint64_t>(16, opts.clients);
  plan.window = std::max<uint64_t>(1, opts.clients / plan.writers);
  plan.per_writer = opts.writes / plan.writers;
  plan.value = bench::record_of_size(opts.value_size);
  auto counts = std::make_shared<bench::write_counts>();
  bench::spawn_writers(sys, caf::actor_cast<brd::state_actor>(self), plan, counts);
  const auto own = plan.per_writer * plan.writers;
  const auto theirs = own * opts.peers.size();
  while (counts->writers_done < plan.writers || *applied < theirs)
    std::this_thread::sleep_for(1ms);
  std::printf("done %lld %llu %llu\n", static_cast<long long>(brd::wall_clock_ms()),
              static_cast<unsigned long long>(counts->errors + *errors),
              static_cast<unsigned long long>(own));
  std::fflush(stdout);
  for (;;) // until the benchmark stops us (a peer may still be writing here)
    std::this_thread::sleep_for(1s);
}

} // namespace

int main(int argc, char** argv) {
  constexpr const char* usage
    = "usage: repl_floor [--mode raw|design|store] --name N --port P "
      "[--peer NAME=PORT]... --dir DIR --writes N [--clients N] [--value-size N] "
      "--start-ms EPOCH_MS\n"
      "       repl_floor [--mode M] --name N --port P [--peer NAME=PORT]... --dir DIR\n"
      "                  --writes 0 (--webhook-port P --secret-file F --roles R1,R2,.. | "
      "--role R [--supersede on])\n"
      "One node of the replication benchmark's floors; tools/bench/replication starts "
      "three. The second form is a node of the webhook floor (floor_webhook.hpp): the "
      "edge or a role node; tools/bench/webhook starts five.\n";
  if (argc == 2 && std::string_view{argv[1]} == "--help") {
    std::fputs(usage, stdout);
    return 0;
  }
  options opts;
  if (!parse(argc, argv, opts)) {
    std::fputs(usage, stderr);
    return 64;
  }
  return run(opts);
}
