// The HTTP face of a node, as an operator or Prometheus sees it: /livez,
// /readyz, /health (fleet JSON by tier), /api/members and /metrics.
#include <doctest/doctest.h>

#include <cstdlib>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "harness.hpp"
#include "../support/loopback.hpp"

using namespace brd::test;
using nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A TCP listener that never accepts: connects succeed, nothing ever answers.
struct silent_listener {
  int fd = -1;
  explicit silent_listener(uint16_t port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 16) == 0);
  }
  ~silent_listener() { ::close(fd); }
};

json health_of(uint16_t http_port) {
  auto reply = http_get_json(http_port, "/health");
  REQUIRE(reply.status == 200);
  REQUIRE(reply.body.is_object());
  return reply.body;
}

// The /health entry of `node` in tier `tier`, or null.
json node_health(const json& health, const std::string& tier, const std::string& node) {
  const auto& t = health.value("/tiers"_json_pointer / tier, json::object());
  return t.contains(node) ? t[node] : json{};
}

bool status_is(uint16_t http_port, const std::string& tier, const std::string& node,
               const std::string& status) {
  auto reply = http_get_json(http_port, "/health");
  return reply.status == 200 && reply.body.is_object()
         && node_health(reply.body, tier, node).value("status", "") == status;
}

// The top of /health: who answers, and the edge and backup tier summaries.
void check_summary(const json& health, const std::string& self, const std::string& edge,
                   const std::string& backup) {
  CHECK(health.value("cluster", "") == "t1");
  CHECK(health.value("node", "") == self);
  CHECK(health.value("edge", "") == edge);
  CHECK(health.value("backup", "") == backup);
}

// True when every node of every tier in /health has a resource sample.
bool all_sampled(const json& health) {
  auto tiers = health.value("tiers", json::object());
  if (tiers.empty())
    return false;
  for (const auto& [tier, nodes] : tiers.items())
    for (const auto& [node, entry] : nodes.items())
      if (!entry.contains("disk"))
        return false;
  return true;
}

// Checks the fields an operator reads for a node that is online.
void check_online_entry(const json& entry) {
  CAPTURE(entry.dump());
  CHECK(entry.value("status", "") == "online");
  REQUIRE(entry.contains("disk"));
  REQUIRE(entry["disk"].is_string());
  CHECK(ends_with(entry["disk"].get<std::string>(), "%"));
  REQUIRE(entry.contains("load"));
  CHECK(entry["load"].is_number());
  CHECK(ends_with(entry.value("memory", ""), "%"));
}

double metric_value(const std::vector<metric_sample>& all, const std::string& name,
                    const std::map<std::string, std::string>& labels) {
  auto found = find_metrics(all, name, labels);
  REQUIRE_MESSAGE(found.size() == 1, "expected one sample of " << name);
  return found.front().value;
}

} // namespace

TEST_CASE("/livez answers 200 ok and an unknown path answers 404") {
  fleet fl{"t1", make_specs(2)};
  fl.start("a");
  REQUIRE(wait_until([&] { return http_get_text(fl.http_port("a"), "/livez").status == 200; },
                     10s));
  auto live = http_get_text(fl.http_port("a"), "/livez");
  CHECK(live.body.find("ok") != std::string::npos);
  CHECK(http_get_text(fl.http_port("a"), "/no/such/page").status == 404);
}

TEST_CASE("clients that connect and send nothing, or trickle a header, do not hold up /health") {
  // More such clients than the node has HTTP workers (16). A node that gave
  // each connection a thread answered nothing while four of them trickled.
  fleet fl{"t1", make_specs(2)};
  fl.start("a");
  auto a = fl.http_port("a");
  REQUIRE(wait_until([&] { return http_get_text(a, "/livez").status == 200; }, 10s));
  std::vector<int> slow;
  for (int i = 0; i < 40; ++i) {
    int fd = brd_test::open_loopback(a);
    if (i % 2 == 1) // half of them start a request and never finish it
      brd_test::send_all(fd, "GET /health HTTP/1.1\r\nHost: a\r\n");
    slow.push_back(fd);
  }
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 1; i < slow.size(); i += 2)
      brd_test::send_all(slow[i], "X-Slow: 1\r\n");
    auto started = steady::now();
    auto health = http_get_json(a, "/health");
    auto took = std::chrono::duration_cast<millis>(steady::now() - started).count();
    MESSAGE("/health answered in " << took << " ms with 40 slow clients connected");
    CHECK(health.status == 200);
    CHECK(took < 1000);
    // The slow clients are still connected: held, not refused.
    auto all = parse_metrics(http_get_text(a, "/metrics").body);
    CHECK(metric_value(all, "brnode_http_connections", {}) >= 40);
    std::this_thread::sleep_for(500ms);
  }
  for (int fd : slow)
    ::close(fd);
}

TEST_CASE("/readyz answers 503 while a peer has not answered first contact, then 200") {
  // b's actor port accepts connections but never speaks: a's first contact
  // with b hangs until connect_timeout runs out.
  auto specs = make_specs(2);
  silent_listener b_port{specs[1].port};
  fleet fl{"t1", specs, "connect_timeout_ms = 1500"};
  fl.start("a");
  REQUIRE(wait_until([&] { return http_get_text(fl.http_port("a"), "/livez").status == 200; },
                     10s));
  auto early = http_get_json(fl.http_port("a"), "/readyz");
  CHECK(early.status == 503);
  CHECK(early.body.value("ready", true) == false);
  auto since = steady::now();
  bool ready = wait_until(
    [&] { return http_get_json(fl.http_port("a"), "/readyz").status == 200; }, 10s);
  CHECK(ready);
  MESSAGE("ready " << std::chrono::duration_cast<millis>(steady::now() - since).count()
                   << " ms after the first 503");
  CHECK(member_state(fl.http_port("a"), "b") != "alive");
}

TEST_CASE("a lone node whose peers are all down still becomes ready and reports them not online") {
  fleet fl{"t1", make_specs({{"a", "edge"}, {"b", "backup"}, {"c", "pi"}})};
  fl.start("a");
  auto a = fl.http_port("a");
  REQUIRE(wait_until([&] { return http_get_text(a, "/readyz").status == 200; }, 10s));
  for (const std::string peer : {"b", "c"}) {
    CAPTURE(peer);
    auto state = member_state(a, peer);
    CHECK((state == "unknown" || state == "down"));
  }
  auto health = health_of(a);
  CAPTURE(health.dump());
  check_summary(health, "a", "online", "offline");
  auto c_status = health["pi_cluster"]["c"].value("status", "");
  CHECK((c_status == "unknown" || c_status == "offline"));
}

TEST_CASE("/health shows every tier, and killed nodes as offline with tier summaries to match") {
  fleet fl{"t1", make_specs({{"e", "edge"}, {"b1", "backup"}, {"b2", "backup"},
                             {"p1", "pi"}, {"p2", "pi"}})};
  fl.start_all();
  REQUIRE(fl.wait_all_alive(15s));
  auto e = fl.http_port("e");
  // Peers' resource samples travel with their heartbeats.
  CHECK(wait_until([&] { return all_sampled(health_of(e)); }, 5s));
  auto health = health_of(e);
  CAPTURE(health.dump());
  check_summary(health, "e", "online", "online");
  REQUIRE(health["pi_cluster"].is_object());
  CHECK(health["pi_cluster"].size() == 2);
  for (const auto& [tier, node] : std::vector<std::pair<std::string, std::string>>{
         {"edge", "e"}, {"backup", "b1"}, {"backup", "b2"}, {"pi", "p1"}, {"pi", "p2"}}) {
    CAPTURE(node);
    check_online_entry(node_health(health, tier, node));
  }
  check_online_entry(health["pi_cluster"]["p1"]);

  fl.process("p1").kill9();
  REQUIRE(wait_until([&] { return status_is(e, "pi", "p1", "offline"); }, 3s));
  health = health_of(e);
  CHECK(health["pi_cluster"]["p1"].value("status", "") == "offline");
  CHECK(health["pi_cluster"]["p2"].value("status", "") == "online");
  CHECK(health.value("backup", "") == "online");

  fl.process("b2").kill9();
  REQUIRE(wait_until([&] { return status_is(e, "backup", "b2", "offline"); }, 3s));
  CHECK(health_of(e).value("backup", "") == "degraded");
  // Another node's view agrees.
  CHECK(wait_until([&] { return health_of(fl.http_port("p2")).value("backup", "") == "degraded"; },
                   3s));

  fl.process("b1").kill9();
  REQUIRE(wait_until([&] { return status_is(e, "backup", "b1", "offline"); }, 3s));
  health = health_of(e);
  CHECK(health.value("backup", "") == "offline");
  CHECK(health.value("edge", "") == "online");
}

TEST_CASE("/metrics serves peers, heartbeat RTT, memory and build info as Prometheus 0.0.4") {
  fleet fl{"t1", make_specs(2)};
  fl.start_all();
  REQUIRE(fl.wait_all_alive(10s));
  auto a = fl.http_port("a");
  // A few heartbeats must have made the round trip.
  auto rtt_count = [&] {
    auto all = parse_metrics(http_get_text(a, "/metrics").body);
    auto c = find_metrics(all, "brnode_heartbeat_rtt_seconds_count", {{"peer", "b"}});
    return c.empty() ? 0.0 : c.front().value;
  };
  REQUIRE(wait_until([&] { return rtt_count() >= 3; }, 5s));

  auto reply = http_get_text(a, "/metrics");
  REQUIRE(reply.status == 200);
  CHECK(reply.content_type.rfind("text/plain; version=0.0.4", 0) == 0);
  CAPTURE(reply.body);
  CHECK(reply.body.find("# TYPE brnode_heartbeat_rtt_seconds histogram") != std::string::npos);
  auto all = parse_metrics(reply.body);
  CHECK(metric_value(all, "brnode_peers", {{"state", "alive"}}) == 1);

  auto buckets = find_metrics(all, "brnode_heartbeat_rtt_seconds_bucket", {{"peer", "b"}});
  REQUIRE(buckets.size() >= 2);
  double previous = 0;
  for (const auto& b : buckets) {
    CAPTURE(b.labels.at("le"));
    CHECK(b.value >= previous); // cumulative
    previous = b.value;
  }
  CHECK(buckets.back().labels.at("le") == "+Inf");
  auto count = metric_value(all, "brnode_heartbeat_rtt_seconds_count", {{"peer", "b"}});
  CHECK(count == buckets.back().value);
  auto sum = metric_value(all, "brnode_heartbeat_rtt_seconds_sum", {{"peer", "b"}});
  CHECK(sum > 0);
  CHECK(sum / count < 1.0); // loopback round trips take well under a second

  CHECK(metric_value(all, "brnode_process_resident_memory_bytes", {}) > 1e6);
  // Not compared with the RSS: malloc counts what RocksDB's arenas reserved
  // and have not touched yet (an idle node: ~16 MB allocated, ~6 MB private).
  CHECK(metric_value(all, "brnode_malloc_allocated_bytes", {}) > 1e5);
  auto build = find_metrics(all, "brnode_build_info", {{"node", "a"}, {"cluster", "t1"}});
  REQUIRE(build.size() == 1);
  CHECK(build.front().value == 1);
  CHECK(!build.front().labels["version"].empty());
  // The malloc the build linked brnode with (meson option `allocator`).
  if (auto want = std::getenv("BRD_NODE_MALLOC"))
    CHECK(build.front().labels["allocator"].rfind(want, 0) == 0);

  fl.process("b").kill9();
  CHECK(wait_until([&] {
    auto now = parse_metrics(http_get_text(a, "/metrics").body);
    auto down = find_metrics(now, "brnode_peers", {{"state", "down"}});
    auto alive = find_metrics(now, "brnode_peers", {{"state", "alive"}});
    return down.size() == 1 && down.front().value == 1 && alive.size() == 1
           && alive.front().value == 0;
  }, 3s));
}
