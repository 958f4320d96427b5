#include "etcd_load.hpp"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "util.hpp"

namespace bench {

namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct member {
  std::string name;
  uint16_t client_port = 0, peer_port = 0;
  pid_t pid = -1;
  std::string url(uint16_t port) const { return "http://127.0.0.1:" + std::to_string(port); }
};

// The member's current revision (a serializable read: its own view).
int64_t revision(const member& m) {
  auto r = http("POST", m.client_port, "/v3/kv/range",
                json{{"key", base64("bench-probe")}, {"serializable", true}}.dump());
  auto doc = json::parse(r.body, nullptr, false);
  if (r.status != 200 || !doc.is_object() || !doc.contains("header"))
    return -1;
  return std::stoll(doc["header"].value("revision", std::string{"0"}));
}

// The request for writes [first, first + n) of a client: one put, or for
// n > 1 a transaction of n puts (etcd's way to write many keys at once).
std::pair<std::string, std::string> request_for(const std::string& prefix, size_t first,
                                                size_t n, const std::string& encoded) {
  auto put = [&](size_t i) {
    return json{{"key", base64(prefix + std::to_string(i))}, {"value", encoded}};
  };
  if (n == 1)
    return {"/v3/kv/put", put(first).dump()};
  auto ops = json::array();
  for (size_t i = first; i < first + n; ++i)
    ops.push_back(json{{"request_put", put(i)}});
  return {"/v3/kv/txn", json{{"success", ops}}.dump()};
}

// One client: sequential requests of `batch` puts on its own keep-alive
// connection.
void client(const member& m, const std::string& prefix, size_t count, size_t batch,
            const std::string& value, std::atomic<size_t>& acked, std::atomic<size_t>& errors,
            std::atomic<int64_t>& max_revision) {
  httplib::Client cli{"127.0.0.1", m.client_port};
  cli.set_keep_alive(true);
  cli.set_read_timeout(30, 0);
  auto encoded = base64(value);
  for (size_t i = 0; i < count; i += batch) {
    auto n = std::min(batch, count - i);
    auto [path, body] = request_for(prefix, i, n, encoded);
    auto res = cli.Post(path, body, "application/json");
    if (!res || res->status != 200) {
      errors += n;
      continue;
    }
    auto doc = json::parse(res->body, nullptr, false);
    if (doc.is_object() && doc.contains("header")) {
      auto rev = std::stoll(doc["header"].value("revision", std::string{"0"}));
      auto seen = max_revision.load();
      while (rev > seen && !max_revision.compare_exchange_weak(seen, rev)) {
      }
    }
    acked += n;
  }
}

} // namespace

etcd_result run_etcd(const load_options& opts) {
  etcd_result out;
  auto etcd = find_program("etcd");
  if (etcd.empty()) {
    out.skipped = "etcd is not installed (Debian: apt install etcd-server)";
    return out;
  }
  auto dir = make_temp_dir("etcd");
  std::vector<member> members;
  for (int i = 0; i < 3; ++i)
    members.push_back({"e" + std::to_string(i), free_port(), free_port()});
  std::string initial;
  for (const auto& m : members)
    initial += (initial.empty() ? "" : ",") + m.name + "=" + m.url(m.peer_port);
  for (auto& m : members)
    m.pid = spawn({etcd, "--name", m.name, "--data-dir", dir + "/" + m.name,
                   "--listen-client-urls", m.url(m.client_port), "--advertise-client-urls",
                   m.url(m.client_port), "--listen-peer-urls", m.url(m.peer_port),
                   "--initial-advertise-peer-urls", m.url(m.peer_port), "--initial-cluster",
                   initial, "--initial-cluster-state", "new", "--initial-cluster-token",
                   "brd-bench", "--logger", "zap", "--log-level", "error"},
                  dir + "/" + m.name + ".log");
  auto cleanup = [&] {
    for (auto& m : members)
      stop(m.pid);
    remove_dir(dir);
  };
  auto deadline = steady::now() + 30s;
  for (const auto& m : members)
    while (http("GET", m.client_port, "/health").body.find("true") == std::string::npos) {
      if (steady::now() > deadline) {
        out.failure = "the etcd members did not become healthy (logs in " + dir + ")";
        for (auto& mm : members)
          stop(mm.pid);
        return out;
      }
      std::this_thread::sleep_for(50ms);
    }
  out.version = http("GET", members[0].client_port, "/version").body;
  auto value = record_of_size(opts.value_size);
  const size_t per_client = opts.writes_per_node / opts.clients_per_node;
  out.writes = per_client * opts.clients_per_node * members.size();
  std::atomic<size_t> acked{0}, errors{0};
  std::atomic<int64_t> max_revision{0};
  auto start = steady::now();
  {
    std::vector<std::thread> clients;
    for (const auto& m : members)
      for (size_t c = 0; c < opts.clients_per_node; ++c)
        clients.emplace_back(client, std::cref(m), "w-" + m.name + "-" + std::to_string(c) + "-",
                             per_client, std::max<size_t>(1, opts.batch), std::cref(value),
                             std::ref(acked), std::ref(errors),
                             std::ref(max_revision));
    for (auto& t : clients)
      t.join();
  }
  out.seconds_acked = seconds_since(start);
  deadline = steady::now() + 60s;
  for (;;) {
    bool all = true;
    for (const auto& m : members)
      all = all && revision(m) >= max_revision.load();
    if (all)
      break;
    if (steady::now() > deadline) {
      out.failure = "not every member reached the last revision within 60 s";
      break;
    }
    std::this_thread::sleep_for(1ms);
  }
  out.seconds_everywhere = seconds_since(start);
  out.errors = errors;
  cleanup();
  return out;
}

} // namespace bench
