#include "brd_load.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/health.hpp"
#include "actors/state.hpp"
#include "runtime/hlc.hpp"
#include "runtime/type_registry.hpp"
#include "util.hpp"
#include "writers.hpp"

namespace bench {

namespace {

using namespace std::chrono_literals;

const std::vector<std::string> names = {"a", "b", "c"};

// Shared between the client actors and the main thread.
struct shared_stats {
  std::atomic<uint64_t> errors{0};
  std::atomic<bool> stop_probes{false};
  std::atomic<uint64_t> paced_acked{0}, paced_errors{0}, pacers_done{0};
  std::mutex mutex;
  std::vector<double> lag_ms;
  std::map<std::pair<std::string, std::string>, steady::time_point> markers; // (node, origin)
};

using stats_ptr = std::shared_ptr<shared_stats>;

double wall_ms_now() {
  return std::chrono::duration<double, std::milli>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

// -- client actors -------------------------------------------------------------

// Open loop: puts to `target` at `rate` per second for `seconds`, each
// issued on time whatever is still unanswered; quits once all are answered.
caf::behavior pacer(caf::event_based_actor* self, brd::state_actor target, std::string prefix,
                    double rate, double seconds, std::string value, stats_ptr stats) {
  auto start = steady::now();
  auto total = static_cast<uint64_t>(rate * seconds);
  auto issued = std::make_shared<uint64_t>(0), answered = std::make_shared<uint64_t>(0);
  auto answer = [=](bool ok) {
    ++(ok ? stats->paced_acked : stats->paced_errors);
    if (++*answered == total) {
      ++stats->pacers_done;
      self->quit();
    }
  };
  self->send(self, brd::tick_atom::value);
  return {[=](brd::tick_atom) {
    auto due = std::min(total, static_cast<uint64_t>(seconds_since(start) * rate));
    for (; *issued < due; ++*issued)
      self->request(target, 60s, brd::put_atom::value, std::string{"tasks"},
                    prefix + std::to_string(*issued), value)
        .then([=](brd::write_ack&) { answer(true); }, [=](caf::error&) { answer(false); });
    if (*issued < total)
      self->delayed_send(self, 1ms, brd::tick_atom::value);
  }};
}

// Every 10 ms a small write to `alerts`, whose arrival elsewhere is timed.
caf::behavior prober(caf::event_based_actor* self, brd::state_actor target,
                     std::string node, stats_ptr stats) {
  auto seq = std::make_shared<uint64_t>(0);
  self->send(self, brd::tick_atom::value);
  return {[=](brd::tick_atom) {
    if (stats->stop_probes) {
      self->quit();
      return;
    }
    auto key = "probe-" + node + "-" + std::to_string((*seq)++);
    self->request(target, 60s, brd::put_atom::value, std::string{"alerts"}, key,
                  record_of_size(32))
      .then([](brd::write_ack&) {}, [](caf::error&) {});
    self->delayed_send(self, 10ms, brd::tick_atom::value);
  }};
}

// Receives the `alerts` changes applied on `node`.
caf::behavior watcher(caf::event_based_actor*, std::string node, stats_ptr stats) {
  return {[=](const brd::state_entry& e) {
    auto now = steady::now();
    std::lock_guard guard{stats->mutex};
    if (e.key.rfind("marker-", 0) == 0)
      stats->markers.emplace(std::pair{node, e.origin}, now);
    else if (e.origin != node)
      stats->lag_ms.push_back(wall_ms_now() - static_cast<double>(brd::hlc_wall_ms(e.hlc)));
  }};
}

// -- the cluster ------------------------------------------------------------------

struct node_proc {
  std::string name;
  uint16_t port = 0, http_port = 0;
  pid_t pid = -1;
};

std::string fleet_toml(const std::vector<node_proc>& nodes, long long replication_backlog) {
  std::string out = "[cluster]\nname = \"bench\"\n";
  if (replication_backlog >= 0)
    out += "replication_backlog = " + std::to_string(replication_backlog) + "\n";
  out += "\n";
  for (const auto& n : nodes)
    out += "[[node]]\nname = \"" + n.name + "\"\ntier = \"pi\"\nroles = []\nhost = "
           "\"127.0.0.1\"\nport = " + std::to_string(n.port) + "\nhttp_port = "
           + std::to_string(n.http_port) + "\n\n";
  return out;
}

bool wait_ready(const std::vector<node_proc>& nodes, std::chrono::seconds timeout) {
  auto deadline = steady::now() + timeout;
  for (const auto& n : nodes)
    while (http("GET", n.http_port, "/readyz").status != 200) {
      if (steady::now() > deadline)
        return false;
      std::this_thread::sleep_for(20ms);
    }
  return true;
}

// True once every node holds every node's own registry record (each writes
// one on start): the state actors replicate to each other.
bool wait_replicating(const std::vector<node_proc>& nodes, std::chrono::seconds timeout) {
  auto deadline = steady::now() + timeout;
  for (;;) {
    bool all = true;
    for (const auto& n : nodes) {
      auto body = http("GET", n.http_port, "/api/state/digest").body;
      for (const auto& other : nodes)
        all = all && body.find("\"" + other.name + "\":") != std::string::npos;
    }
    if (all)
      return true;
    if (steady::now() > deadline)
      return false;
    std::this_thread::sleep_for(20ms);
  }
}

// The services `names` of the node on `port`, as its health actor lists them.
caf::expected<std::vector<caf::actor>> lookup(caf::actor_system& sys, uint16_t port,
                                              const std::vector<std::string>& services) {
  auto health = sys.middleman().remote_actor<brd::health_actor>("127.0.0.1", port);
  if (!health)
    return health.error();
  caf::scoped_actor self{sys};
  std::vector<caf::actor> out;
  caf::error failed;
  for (const auto& name : services)
    self->request(*health, 5s, brd::get_atom::value, name)
      .receive([&](caf::actor& a) { out.push_back(a); }, [&](caf::error& err) { failed = err; });
  if (failed)
    return failed;
  return out;
}

// Sum of `name`'s samples over every node's /metrics (Prometheus text).
std::map<std::string, double> scrape(const std::vector<node_proc>& nodes,
                                     const std::string& prefix) {
  std::map<std::string, double> out;
  for (const auto& n : nodes) {
    auto text = http("GET", n.http_port, "/metrics").body;
    size_t pos = 0;
    while (pos < text.size()) {
      auto end = text.find('\n', pos);
      auto line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      pos = end == std::string::npos ? text.size() : end + 1;
      if (line.rfind(prefix, 0) != 0)
        continue;
      auto space = line.rfind(' ');
      out[line.substr(0, space)] += std::atof(line.c_str() + space + 1);
    }
  }
  return out;
}

// Percentile (0..1) from cumulative histogram buckets, interpolated.
double histogram_quantile(const std::map<std::string, double>& series,
                          const std::string& name, double q) {
  std::vector<std::pair<double, double>> buckets; // (le, cumulative)
  for (const auto& [key, value] : series) {
    auto at = key.find("le=\"");
    if (key.rfind(name + "_bucket", 0) != 0 || at == std::string::npos)
      continue;
    auto le = key.substr(at + 4, key.find('"', at + 4) - at - 4);
    buckets.emplace_back(le == "+Inf" ? 1e9 : std::atof(le.c_str()), value);
  }
  std::sort(buckets.begin(), buckets.end());
  if (buckets.empty() || buckets.back().second == 0)
    return 0;
  double want = q * buckets.back().second, lower = 0, below = 0;
  for (const auto& [le, count] : buckets) {
    if (count >= want)
      return lower + (le - lower) * (count == below ? 0 : (want - below) / (count - below));
    lower = le;
    below = count;
  }
  return lower;
}

// The nodes' lag histograms and mean group-commit size so far.
void read_histograms(const std::vector<node_proc>& nodes, brd_result& out) {
  const std::string name = "brnode_state_replication_lag_seconds";
  auto lag = scrape(nodes, name);
  out.hist_p50_ms = 1000 * histogram_quantile(lag, name, 0.5);
  out.hist_p99_ms = 1000 * histogram_quantile(lag, name, 0.99);
  const std::string write = "brnode_state_write_seconds";
  auto ack = scrape(nodes, write);
  out.ack_p50_ms = 1000 * histogram_quantile(ack, write, 0.5);
  out.ack_p99_ms = 1000 * histogram_quantile(ack, write, 0.99);
  auto batch = scrape(nodes, "brnode_state_commit_batch_size");
  auto count = batch["brnode_state_commit_batch_size_count"];
  out.mean_commit_batch = count > 0 ? batch["brnode_state_commit_batch_size_sum"] / count : 0;
}

double nodes_cpu(const std::vector<node_proc>& nodes) {
  double sum = 0;
  for (const auto& n : nodes)
    sum += cpu_seconds(n.pid);
  return sum;
}

// Runs the saturating load: on the nodes (their writer hosts) or from this
// process; returns once every write is answered.
void run_writers(caf::actor_system& sys, const std::vector<brd::state_actor>& states,
                 const std::vector<caf::actor>& hosts, const writer_plan& plan,
                 stats_ptr stats) {
  if (hosts.empty()) {
    auto counts = std::make_shared<write_counts>();
    for (size_t i = 0; i < states.size(); ++i) {
      auto p = plan;
      p.prefix = "w-" + names[i] + "-";
      spawn_writers(sys, states[i], p, counts);
    }
    while (counts->writers_done < plan.writers * states.size())
      std::this_thread::sleep_for(1ms);
    stats->errors += counts->errors;
    return;
  }
  caf::scoped_actor self{sys};
  std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> pending;
  for (size_t i = 0; i < hosts.size(); ++i)
    pending.push_back(self->request(hosts[i], 600s, brd::put_atom::value,
                                    "w-" + names[i] + "-", plan.per_writer,
                                    uint64_t{plan.writers}, uint64_t{plan.window},
                                    uint64_t{plan.batch}, uint64_t{plan.value.size()}));
  for (auto& p : pending)
    p.receive([&](uint64_t, uint64_t errors) { stats->errors += errors; },
              [&](caf::error&) { ++stats->errors; });
}

void run_load(caf::actor_system& sys, const std::vector<brd::state_actor>& states,
              const std::vector<caf::actor>& hosts, const std::vector<node_proc>& nodes,
              const load_options& opts, stats_ptr stats, brd_result& out) {
  auto node_cpu_before = nodes_cpu(nodes);
  auto client_cpu_before = cpu_seconds();
  // `clients_per_node` writes outstanding per node, in requests of `batch`.
  writer_plan plan;
  plan.batch = std::max<size_t>(1, opts.batch);
  const size_t requests = std::max<size_t>(1, opts.clients_per_node / plan.batch);
  plan.writers = std::min<size_t>(16, requests);
  plan.window = std::max<size_t>(1, requests / plan.writers);
  plan.per_writer = opts.writes_per_node / plan.writers;
  plan.value = record_of_size(opts.value_size);
  out.writes = plan.per_writer * plan.writers * states.size();
  for (size_t i = 0; i < states.size(); ++i)
    sys.spawn(prober, states[i], names[i], stats);
  auto start = steady::now();
  run_writers(sys, states, hosts, plan, stats);
  out.seconds_acked = seconds_since(start);
  // A marker per origin, written after all its writes were acked: seeing it
  // on a node means all of that origin's writes are there (applied in order).
  caf::scoped_actor self{sys};
  for (size_t i = 0; i < states.size(); ++i)
    self->request(states[i], 10s, brd::put_atom::value, std::string{"alerts"},
                  "marker-" + names[i], record_of_size(32))
      .receive([](brd::write_ack&) {}, [&](caf::error&) { ++stats->errors; });
  auto deadline = steady::now() + 120s;
  for (;;) {
    {
      std::lock_guard guard{stats->mutex};
      if (stats->markers.size() == names.size() * names.size()) {
        steady::time_point last{};
        for (const auto& [key, at] : stats->markers)
          last = std::max(last, at);
        out.seconds_everywhere = std::chrono::duration<double>(last - start).count();
        break;
      }
    }
    if (steady::now() > deadline) {
      out.failure = "not every write reached every node within 120 s";
      break;
    }
    std::this_thread::sleep_for(1ms);
  }
  out.errors = stats->errors;
  out.node_cpu_seconds = nodes_cpu(nodes) - node_cpu_before;
  out.client_cpu_seconds = cpu_seconds() - client_cpu_before;
}

// A steady-pace phase at `rate` writes/s, after run_load drained: the lag
// below saturation.
paced_result run_paced(caf::actor_system& sys, const std::vector<brd::state_actor>& states,
                       const std::vector<node_proc>& nodes, const load_options& opts,
                       size_t rate, stats_ptr stats) {
  paced_result out;
  auto per_node = static_cast<double>(rate) / static_cast<double>(states.size());
  {
    std::lock_guard guard{stats->mutex};
    stats->lag_ms.clear();
    stats->paced_acked = stats->paced_errors = stats->pacers_done = 0;
  }
  auto cpu_before = nodes_cpu(nodes);
  auto value = record_of_size(opts.value_size);
  auto start = steady::now();
  for (size_t i = 0; i < states.size(); ++i)
    sys.spawn(pacer, states[i], "paced-" + std::to_string(rate) + "-" + names[i] + "-", per_node, opts.paced_seconds, value,
              stats);
  auto deadline = start + std::chrono::duration_cast<steady::duration>(
                            std::chrono::duration<double>(opts.paced_seconds + 60));
  while (stats->pacers_done < states.size() && steady::now() < deadline)
    std::this_thread::sleep_for(1ms);
  auto seconds = seconds_since(start);
  std::lock_guard guard{stats->mutex};
  out.probe_lag_ms = stats->lag_ms;
  out.offered_per_s = per_node * static_cast<double>(states.size());
  out.acked_per_s = static_cast<double>(stats->paced_acked) / seconds;
  out.errors = stats->paced_errors;
  if (stats->paced_acked > 0)
    out.node_cpu_us_per_write
      = 1e6 * (nodes_cpu(nodes) - cpu_before) / static_cast<double>(stats->paced_acked);
  return out;
}

} // namespace

brd_result run_brd(const std::string& brnode, const load_options& opts) {
  brd_result out;
  auto dir = make_temp_dir("brd");
  std::vector<node_proc> nodes;
  for (const auto& n : names)
    nodes.push_back({n, free_port(), free_port()});
  {
    std::FILE* f = std::fopen((dir + "/fleet.toml").c_str(), "w");
    auto text = fleet_toml(nodes, opts.replication_backlog);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  for (auto& n : nodes)
    n.pid = spawn({brnode, "--config", dir + "/fleet.toml", "--name", n.name, "--data-dir",
                   dir + "/data/" + n.name, "--log-level", "warn"},
                  dir + "/" + n.name + ".log");
  auto cleanup = [&] {
    for (auto& n : nodes)
      stop(n.pid);
    remove_dir(dir);
  };
  if (!wait_ready(nodes, 20s)) {
    out.failure = "the nodes did not become ready (logs in " + dir + ")";
    for (auto& n : nodes)
      stop(n.pid);
    return out;
  }
  {
    brd::system_config cfg{"bench", false};
    // Idle work-stealing workers poll with 50 us sleeps, which costs this
    // 2-core benchmark a third of the client's CPU; a shared queue does not.
    cfg.set("scheduler.policy", caf::atom("sharing"));
    caf::actor_system sys{cfg};
    std::vector<brd::state_actor> states;
    std::vector<caf::actor> hosts; // the nodes' writer hosts, when on_node
    for (const auto& n : nodes) {
      std::vector<std::string> services{"state"};
      if (opts.on_node)
        services.emplace_back(writer_host_name);
      auto found = lookup(sys, n.port, services);
      if (!found) {
        out.failure = "cannot reach the services of " + n.name + ": " + sys.render(found.error());
        break;
      }
      states.push_back(caf::actor_cast<brd::state_actor>(found->at(0)));
      if (opts.on_node)
        hosts.push_back(found->at(1));
    }
    auto stats = std::make_shared<shared_stats>();
    if (out.failure.empty()) {
      caf::scoped_actor self{sys};
      std::vector<caf::actor> watchers;
      for (size_t i = 0; i < states.size(); ++i) {
        watchers.push_back(sys.spawn(watcher, names[i], stats));
        self->send(states[i], brd::subscribe_atom::value, std::string{"alerts"}, watchers.back());
      }
      if (!wait_replicating(nodes, 20s))
        out.failure = "the nodes did not start replicating to each other";
      else {
        run_load(sys, states, hosts, nodes, opts, stats, out);
        {
          std::lock_guard guard{stats->mutex};
          out.probe_lag_ms = stats->lag_ms;
        }
        read_histograms(nodes, out); // before the paced phase adds to them
        for (auto rate : opts.paced_rates)
          if (out.failure.empty() && rate > 0)
            out.paced.push_back(run_paced(sys, states, nodes, opts, rate, stats));
      }
      stats->stop_probes = true;
      for (auto& w : watchers) // the actor system waits for every actor
        self->send_exit(w, caf::exit_reason::user_shutdown);
    }
  }
  cleanup();
  return out;
}

} // namespace bench
