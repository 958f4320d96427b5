// bench_replication: the replication benchmark of issue 3 (run it through
// tools/bench/replication). See usage below.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>

#include "brd_load.hpp"
#include "etcd_load.hpp"
#include "floor_load.hpp"
#include "rocksdb_rate.hpp"
#include "util.hpp"

namespace {

constexpr const char* usage = R"(usage: bench_replication [options]

Three local brnode processes with writers on all three (200-byte msgpack
records): first on the nodes themselves (brnode_bench: brnode plus a writer
host, so the writers are local to each state actor, as the fleet's own
writers are), then as client actors of this process that reach each node
over the CAF transport, as etcd's clients reach etcd. Prints, for each,
durable replicated writes/s (acked after the origin's WAL sync, counted once
present on all 3 nodes) and p50/p99 replication lag; the same load against a
3-member etcd cluster on loopback when `etcd` is installed, and the ratios;
RocksDB's own synced write rate at the mean group-commit batch size.

options:
  --brnode PATH        brnode binary (default: $BRNODE_BIN, else ../src/brnode
                       next to this program)
  --brnode-bench PATH  brnode with the on-node writer host (default:
                       brnode_bench next to this program)
  --writers WHERE      on-node: the writers run inside the nodes, local to
                       each state actor, as the fleet's own writers
                       (dispatcher, deployer, health) do; clients: client
                       actors of this process, over the CAF transport, as
                       etcd's clients reach etcd; both (default); floors:
                       only the floors (--no-floor below)
  --writes N           writes per node (default 100000)
  --clients N          writes outstanding per node (default 64)
  --batch N            writes per request (default 1: one put per message;
                       N: put (table, keys, values), acked once all N are
                       durable on the origin; etcd then gets transactions
                       of N puts, so both sides see the same shape)
  --paced-rates A,B,.. then, each of these writes/s in turn, offered at a
                       steady pace (open loop, one put per request, spread
                       over the 3 nodes): the lag below saturation
                       (default 2000,5000,10000; 0 skips them)
  --paced-seconds N    seconds per rate (default 3)
  --replication-backlog N
                       the nodes' [cluster] replication_backlog (default:
                       brnode's, 1024; 0 turns the backpressure off)
  --etcd-writes N      writes per etcd member (default 20000)
  --etcd-clients N     concurrent HTTP clients per etcd member (default: the
                       requests BlackRoad has outstanding per node, --clients
                       divided by --batch, so both keep as many writes in
                       flight)
  --no-etcd            skip etcd
  --repl-floor PATH    the floor's node program (default: repl_floor next to
                       this program)
  --no-floor           skip the floors: after the writers on the nodes, the
                       same load on three repl_floor processes, a minimal
                       actor around the store that group-commits at the
                       origin (WAL synced) and sends CAF batches to both
                       peers, storing per write: raw, a row only; design,
                       what the design needs at the least (log entries,
                       version vectors, the merge rule's read, truncation);
                       store, BlackRoad's storage layer as it is. So each
                       layer's cost shows. One put per request only
)";

struct options {
  std::string brnode, brnode_bench, repl_floor;
  bool on_node = true, clients = true, with_floor = true;
  bench::load_options brd, etcd;
  bool with_etcd = true;
};

std::string default_brnode() {
  if (const char* env = std::getenv("BRNODE_BIN"); env != nullptr && *env != '\0')
    return env;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / ".." / "src" / "brnode").lexically_normal().string();
}

// `program` in this program's directory.
std::string beside_me(const char* program) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / program).string();
}

bool parse(int argc, char** argv, options& out) {
  out.brnode = default_brnode();
  out.brnode_bench = beside_me("brnode_bench");
  out.repl_floor = beside_me("repl_floor");
  out.etcd.writes_per_node = 20'000;
  size_t etcd_clients = 0, seconds = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto number = [&](size_t& into) {
      if (i + 1 >= argc)
        return false;
      into = std::strtoull(argv[++i], nullptr, 10);
      return into > 0;
    };
    if (arg == "--brnode" && i + 1 < argc)
      out.brnode = argv[++i];
    else if (arg == "--brnode-bench" && i + 1 < argc)
      out.brnode_bench = argv[++i];
    else if (arg == "--repl-floor" && i + 1 < argc)
      out.repl_floor = argv[++i];
    else if (arg == "--no-floor")
      out.with_floor = false;
    else if (arg == "--writers" && i + 1 < argc) {
      std::string where = argv[++i];
      out.on_node = where == "on-node" || where == "both";
      out.clients = where == "clients" || where == "both";
      if (where == "floors")
        out.with_floor = true;
      else if (!out.on_node && !out.clients)
        return false;
    }
    else if (arg == "--writes" && number(out.brd.writes_per_node)) {
    } else if (arg == "--clients" && number(out.brd.clients_per_node)) {
    } else if (arg == "--batch" && number(out.brd.batch)) {
      out.etcd.batch = out.brd.batch;
    } else if (arg == "--paced-rates" && i + 1 < argc) {
      out.brd.paced_rates.clear();
      std::string list = argv[++i];
      for (size_t at = 0; at <= list.size();) {
        auto comma = std::min(list.find(',', at), list.size());
        if (auto rate = std::strtoull(list.substr(at, comma - at).c_str(), nullptr, 10))
          out.brd.paced_rates.push_back(rate);
        at = comma + 1;
      }
    } else if (arg == "--replication-backlog" && i + 1 < argc) {
      out.brd.replication_backlog = std::strtoll(argv[++i], nullptr, 10);
    } else if (arg == "--paced-seconds" && number(seconds)) {
      out.brd.paced_seconds = static_cast<double>(seconds);
    } else if (arg == "--etcd-writes" && number(out.etcd.writes_per_node)) {
    } else if (arg == "--etcd-clients" && number(etcd_clients)) {
    } else if (arg == "--no-etcd")
      out.with_etcd = false;
    else
      return false;
  }
  out.etcd.clients_per_node
    = etcd_clients > 0 ? etcd_clients
                       : std::max<size_t>(1, out.brd.clients_per_node / out.brd.batch);
  return true;
}

double rate(size_t writes, double seconds) {
  return seconds > 0 ? static_cast<double>(writes) / seconds : 0;
}

// Prints one BlackRoad run; returns its durable replicated writes/s (0: failed).
double print_brd(const char* where, bench::brd_result& brd, const options& opts) {
  std::printf("\nBlackRoad, writers %s (%zu writes, %zu outstanding per node, %zu per "
              "request):\n",
              where, brd.writes, opts.brd.clients_per_node, opts.brd.batch);
  if (!brd.failure.empty()) {
    std::printf("  FAILED: %s\n", brd.failure.c_str());
    return 0;
  }
  double brd_rate = rate(brd.writes, brd.seconds_everywhere);
  std::printf("  acked (durable on the origin) after %.2f s: %.0f writes/s\n", brd.seconds_acked,
              rate(brd.writes, brd.seconds_acked));
  std::printf("  present on all 3 nodes after %.2f s\n", brd.seconds_everywhere);
  std::printf("  durable replicated writes/s: %.0f   (goal >= 30000)\n", brd_rate);
  auto lag = brd.probe_lag_ms;
  std::printf("  replication lag, commit to applied on a peer (%zu probes): p50 %.1f ms, "
              "p99 %.1f ms   (goal p99 <= 20 ms)\n",
              lag.size(), bench::percentile(lag, 50), bench::percentile(lag, 99));
  std::printf("  replication lag, nodes' histograms (all entries, bucket-interpolated): "
              "p50 %.1f ms, p99 %.1f ms\n",
              brd.hist_p50_ms, brd.hist_p99_ms);
  std::printf("  write to durable ack on its origin, nodes' histograms (group commit, fsync, "
              "waits for a backlogged peer): p50 %.1f ms, p99 %.1f ms\n",
              brd.ack_p50_ms, brd.ack_p99_ms);
  std::printf("  group commit: %.1f writes per synced batch on average; %zu errors\n",
              brd.mean_commit_batch, brd.errors);
  std::printf("  CPU: %.1f s in the 3 nodes + %.1f s in this process = %.0f us per "
              "replicated write (%.0f us in the nodes)\n",
              brd.node_cpu_seconds, brd.client_cpu_seconds,
              1e6 * (brd.node_cpu_seconds + brd.client_cpu_seconds) / brd.writes,
              1e6 * brd.node_cpu_seconds / brd.writes);
  if (!brd.paced.empty())
    std::printf("  below saturation (%.0f s per rate, open loop, client actors, one put per "
                "request):\n",
                opts.brd.paced_seconds);
  for (auto& p : brd.paced)
    std::printf("  %6.0f writes/s offered: acked %6.0f/s, %zu errors, %4.0f us of node CPU "
                "per write; lag p50 %.1f ms, p99 %.1f ms (%zu probes)%s\n",
                p.offered_per_s, p.acked_per_s, p.errors, p.node_cpu_us_per_write,
                bench::percentile(p.probe_lag_ms, 50), bench::percentile(p.probe_lag_ms, 99),
                p.probe_lag_ms.size(),
                p.acked_per_s < 0.95 * p.offered_per_s ? "; did not keep up" : "");
  return brd_rate;
}

// The floors (floor_load.hpp) under the same load as `brd` (writers on the
// nodes), and how close BlackRoad came to them; brd null: the floors alone.
void print_floors(const options& opts, double brd_rate, const bench::brd_result* brd) {
  std::printf("\nFloors of this stack, same load, a minimal actor around the store (repl_floor: "
              "a group commit synced at the origin, CAF batches to both peers, unsynced writes "
              "there):\n");
  if (opts.brd.batch != 1) {
    std::printf("  skipped: they take one put per request only\n");
    return;
  }
  const std::pair<const char*, const char*> modes[] = {
    {"raw", "rows only"},
    {"design", "+ what the issue's design needs at the least: log entries, version vectors, "
               "the merge rule's read, log truncation"},
    {"store", "BlackRoad's storage layer (io::state_store) as it is"},
  };
  for (auto [mode, what] : modes) {
    auto fl = bench::run_floor(opts.repl_floor, mode, opts.brd.writes_per_node,
                               opts.brd.clients_per_node, opts.brd.value_size);
    std::printf("  %-6s (%s):\n", mode, what);
    if (!fl.failure.empty()) {
      std::printf("         FAILED: %s\n", fl.failure.c_str());
      continue;
    }
    double fl_rate = rate(fl.writes, fl.seconds_everywhere);
    double fl_cpu = fl.writes > 0 ? fl.cpu_seconds / static_cast<double>(fl.writes) : 0;
    std::printf("         %.0f durable replicated writes/s, %.0f us of CPU per write; %zu "
                "errors",
                fl_rate, 1e6 * fl_cpu, fl.errors);
    if (fl_rate > 0 && fl_cpu > 0 && brd != nullptr && brd->writes > 0)
      std::printf("; BlackRoad reaches %.0f%% of this rate, at %.1fx this CPU per write",
                  100 * brd_rate / fl_rate,
                  brd->node_cpu_seconds / static_cast<double>(brd->writes) / fl_cpu);
    std::printf("\n");
  }
}

} // namespace

int main(int argc, char** argv) {
  options opts;
  if (!parse(argc, argv, opts)) {
    std::fputs(usage, stderr);
    return 64;
  }
  for (const auto* bin : {&opts.brnode, &opts.brnode_bench, &opts.repl_floor})
    if (::access(bin->c_str(), X_OK) != 0) {
      std::fprintf(stderr, "bench_replication: no %s; pass --brnode or --brnode-bench\n",
                   bin->c_str());
      return 64;
    }
  std::printf("replication benchmark: 3 local nodes, writers on all three, %zu-byte values\n",
              opts.brd.value_size);
  std::printf("machine: %u cores, load average %s at start\n",
              std::thread::hardware_concurrency(), bench::load_average().c_str());

  // The writers on the nodes first (the fleet's own shape), with the paced
  // phase; then client actors (etcd's shape) without it.
  double on_node_rate = 0, clients_rate = 0, mean_batch = 0;
  bool failed = false;
  if (opts.on_node) {
    auto o = opts.brd;
    o.on_node = true;
    auto brd = bench::run_brd(opts.brnode_bench, o);
    on_node_rate = print_brd("on the nodes (local to each state actor)", brd, opts);
    failed = failed || on_node_rate == 0;
    mean_batch = brd.mean_commit_batch;
    if (opts.with_floor)
      print_floors(opts, on_node_rate, &brd);
  } else if (opts.with_floor && !opts.clients) {
    print_floors(opts, 0, nullptr);
  }
  if (opts.clients) {
    auto o = opts.brd;
    if (opts.on_node)
      o.paced_rates.clear();
    auto brd = bench::run_brd(opts.brnode, o);
    clients_rate = print_brd("as CAF client actors of this process", brd, opts);
    failed = failed || clients_rate == 0;
    mean_batch = mean_batch > 0 ? mean_batch : brd.mean_commit_batch;
  }
  if (failed)
    return 1;

  if (opts.with_etcd) {
    auto etcd = bench::run_etcd(opts.etcd);
    std::printf("\netcd, 3 members on loopback (%zu writes, %zu HTTP/JSON clients per member, "
                "%zu per request%s):\n",
                etcd.writes, opts.etcd.clients_per_node, opts.etcd.batch,
                opts.etcd.batch > 1 ? " in a txn" : "");
    if (!etcd.skipped.empty())
      std::printf("  skipped: %s\n", etcd.skipped.c_str());
    else if (!etcd.failure.empty())
      std::printf("  FAILED: %s\n", etcd.failure.c_str());
    else {
      double etcd_rate = rate(etcd.writes, etcd.seconds_everywhere);
      std::printf("  version %s\n", etcd.version.c_str());
      std::printf("  acked (committed by a majority) after %.2f s; present on all 3 after "
                  "%.2f s; %zu errors\n",
                  etcd.seconds_acked, etcd.seconds_everywhere, etcd.errors);
      std::printf("  durable replicated writes/s: %.0f\n", etcd_rate);
      auto ratio = [&](double r) { return etcd_rate > 0 ? r / etcd_rate : 0; };
      std::printf("\n");
      if (opts.on_node)
        std::printf("ratio BlackRoad (writers on the nodes) / etcd: %.1fx   (goal >= 5x)\n",
                    ratio(on_node_rate));
      if (opts.clients)
        std::printf("ratio BlackRoad (client actors, etcd's shape) / etcd: %.1fx   (goal >= "
                    "5x)\n",
                    ratio(clients_rate));
    }
  }

  if (mean_batch == 0) // the floors alone: no group commit size to match
    return 0;
  auto batch = static_cast<size_t>(mean_batch + 0.5);
  auto alone = bench::rocksdb_synced_rate(batch, opts.brd.value_size, 3.0);
  std::printf("\nRocksDB alone, one process, synced WriteBatches of %zu x %zu bytes: %.0f "
              "writes/s, %.1f us of CPU per write\n",
              batch, opts.brd.value_size, alone.writes_per_s, alone.cpu_us_per_write);
  std::printf("load average at end: %s\n", bench::load_average().c_str());
  return 0;
}
