// Replicated state across real brnode processes (issue 3): convergence of
// concurrent writes, durability of acknowledged writes across kill -9,
// convergence after a network partition (network namespaces), and refusal
// of bad replication input. Nodes are driven over /api/state; the bad-input
// test also speaks CAF to a node's state actor, as a forged peer would.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

#include <sys/stat.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <httplib.h>

#include "actors/health.hpp"
#include "harness.hpp"
#include "runtime/hlc.hpp"
#include "runtime/messages.hpp"
#include "runtime/type_registry.hpp"

using namespace brd::test;
using nlohmann::json;

namespace {

// -- talking to /api/state -----------------------------------------------------

// A node as the test reaches it: over loopback, or at its own address when
// it runs in a network namespace.
struct endpoint {
  std::string name;
  std::string host = "127.0.0.1";
  uint16_t http_port = 0;
};

struct reply {
  int status = 0; // 0: no answer
  std::string body;
  json doc() const { return json::parse(body, nullptr, false); }
};

reply call(const endpoint& to, const std::string& method, const std::string& path,
           const std::string& body = "") {
  httplib::Client client{to.host, to.http_port};
  client.set_connection_timeout(0, 500'000);
  client.set_read_timeout(10, 0);
  client.set_write_timeout(2, 0);
  httplib::Result res{nullptr, httplib::Error::Unknown};
  if (method == "PUT")
    res = client.Put(path.c_str(), body, "application/msgpack");
  else if (method == "DELETE")
    res = client.Delete(path.c_str());
  else
    res = client.Get(path.c_str());
  if (!res)
    return {};
  return {res->status, res->body};
}

// A msgpack record {"v": 1, ...fields}.
std::string record(json fields) {
  fields["v"] = 1;
  auto bytes = json::to_msgpack(fields);
  return {bytes.begin(), bytes.end()};
}

std::string hex(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes)
    out += {digits[c >> 4], digits[c & 15]};
  return out;
}

// What a node acknowledged for one write.
struct acked_write {
  std::string key;
  std::string value_hex; // "" for a delete
  uint64_t hlc = 0;
  std::string origin;
};

std::optional<acked_write> put(const endpoint& to, const std::string& table,
                               const std::string& key, const std::string& value,
                               int wait_for = 0) {
  auto path = "/api/state/" + table + "/" + key
              + (wait_for > 0 ? "?wait_for=" + std::to_string(wait_for) : "");
  auto r = call(to, "PUT", path, value);
  if (r.status != 201)
    return std::nullopt;
  auto ack = r.doc();
  return acked_write{key, hex(value), ack.value("hlc", uint64_t{0}),
                     ack.value("origin", "")};
}

std::optional<acked_write> erase(const endpoint& to, const std::string& table,
                                 const std::string& key) {
  auto r = call(to, "DELETE", "/api/state/" + table + "/" + key);
  if (r.status != 200)
    return std::nullopt;
  auto ack = r.doc();
  return acked_write{key, "", ack.value("hlc", uint64_t{0}), ack.value("origin", "")};
}

// key -> value_hex of the live rows under `prefix`; nullopt when the node
// does not answer.
std::optional<std::map<std::string, std::string>>
rows(const endpoint& at, const std::string& table, const std::string& prefix) {
  auto r = call(at, "GET", "/api/state/" + table + "?limit=100000&prefix=" + prefix);
  auto doc = r.doc();
  if (r.status != 200 || !doc.is_array())
    return std::nullopt;
  std::map<std::string, std::string> out;
  for (const auto& row : doc)
    out[row.value("key", "")] = row.value("value_hex", "");
  return out;
}

// The node's digest ("tables" and "vv"), or null.
json digest(const endpoint& at) {
  auto r = call(at, "GET", "/api/state/digest");
  auto doc = r.doc();
  if (r.status != 200 || !doc.is_object())
    return nullptr;
  doc.erase("node");
  return doc;
}

// "" when every node shows the same digest and version vector, else a
// description of the difference.
std::string digest_difference(const std::vector<endpoint>& nodes) {
  json first;
  for (const auto& n : nodes) {
    auto d = digest(n);
    if (d.is_null())
      return n.name + " gives no digest";
    if (first.is_null())
      first = d;
    else if (d != first)
      return nodes.front().name + " " + first.dump() + " vs " + n.name + " " + d.dump();
  }
  return "";
}

// Milliseconds until the digests agree, or -1 after `timeout`.
long ms_until_converged(const std::vector<endpoint>& nodes, millis timeout) {
  auto start = steady::now();
  if (!wait_until([&] { return digest_difference(nodes).empty(); }, timeout, 10ms))
    return -1;
  return static_cast<long>(
    std::chrono::duration_cast<millis>(steady::now() - start).count());
}

// Every acked write of `expected` (key -> value_hex) is on `at`.
std::string missing_on(const endpoint& at, const std::string& table,
                       const std::string& prefix,
                       const std::map<std::string, std::string>& expected) {
  auto have = rows(at, table, prefix);
  if (!have)
    return at.name + " does not answer";
  size_t missing = 0;
  std::string first;
  for (const auto& [key, value] : expected) {
    auto i = have->find(key);
    if (i == have->end() || i->second != value) {
      if (missing++ == 0)
        first = key + (i == have->end() ? " absent" : " has another value");
      }
  }
  if (missing == 0)
    return "";
  return at.name + " lacks " + std::to_string(missing) + " of "
         + std::to_string(expected.size()) + " acked writes (first: " + first + ")";
}

std::vector<endpoint> endpoints_of(fleet& fl) {
  std::vector<endpoint> out;
  for (const auto& s : fl.specs())
    out.push_back({s.name, "127.0.0.1", s.http_port});
  return out;
}

// The winner per key among acked writes, by the merge rule.
std::map<std::string, acked_write> winners(const std::vector<acked_write>& writes) {
  std::map<std::string, acked_write> out;
  for (const auto& w : writes) {
    auto i = out.find(w.key);
    if (i == out.end() || std::tie(w.hlc, w.origin) > std::tie(i->second.hlc, i->second.origin))
      out[w.key] = w;
  }
  return out;
}

// Checks that every node holds, per key, the acked write that wins (deleted
// keys absent).
void check_winners(const std::vector<endpoint>& nodes, const std::string& table,
                   const std::string& prefix, const std::vector<acked_write>& writes) {
  auto expected = winners(writes);
  for (const auto& n : nodes) {
    CAPTURE(n.name);
    auto have = rows(n, table, prefix);
    REQUIRE(have);
    size_t wrong = 0;
    std::string first;
    for (const auto& [key, w] : expected) {
      auto i = have->find(key);
      bool ok = w.value_hex.empty() ? i == have->end()
                                    : i != have->end() && i->second == w.value_hex;
      if (!ok && wrong++ == 0)
        first = key + (w.value_hex.empty() ? " (deleted) is back" : " is not the winner");
    }
    CHECK_MESSAGE(wrong == 0, n.name << ": " << wrong << " keys wrong, first " << first);
  }
}

void start_and_join(fleet& fl) {
  fl.start_all();
  REQUIRE_MESSAGE(fl.wait_all_alive(15s), "the fleet did not join within 15 s");
  auto nodes = endpoints_of(fl);
  // Each node writes its own nodes/NAME record on start: wait for those.
  REQUIRE_MESSAGE(ms_until_converged(nodes, 10s) >= 0, digest_difference(nodes));
}

} // namespace

// -- convergence -----------------------------------------------------------------

TEST_CASE("concurrent writes on three nodes converge: equal digests within 1 s of the last write") {
  fleet fl{"st", make_specs(3)};
  start_and_join(fl);
  auto nodes = endpoints_of(fl);
  constexpr int writes_per_node = 150;
  std::mutex mutex;
  std::vector<acked_write> acked;
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (const auto& n : nodes)
    for (int lane = 0; lane < 2; ++lane)
      writers.emplace_back([&, n, lane] {
        for (int i = lane; i < writes_per_node; i += 2) {
          // Own keys, keys every node writes, and deletes of own keys.
          auto own = "own-" + n.name + "-" + std::to_string(i);
          auto shared = "shared-" + std::to_string(i % 12);
          std::optional<acked_write> a, b, c;
          a = put(n, "tasks", own, record({{"node", n.name}, {"i", i}}));
          b = put(n, "tasks", shared, record({{"node", n.name}, {"i", i}}));
          if (i % 10 == 9)
            c = erase(n, "tasks", "own-" + n.name + "-" + std::to_string(i - 4));
          std::lock_guard guard{mutex};
          for (auto* w : {&a, &b})
            if (*w)
              acked.push_back(**w);
            else
              ++failed;
          if (c)
            acked.push_back(*c);
          else if (i % 10 == 9)
            ++failed;
        }
      });
  for (auto& t : writers)
    t.join();
  CHECK(failed == 0);
  auto ms = ms_until_converged(nodes, 5s);
  MESSAGE(acked.size() << " acked writes; digests equal " << ms << " ms after the last one");
  CHECK_MESSAGE(ms >= 0, digest_difference(nodes));
  CHECK(ms <= 1000);
  check_winners(nodes, "tasks", "", acked);
}

// -- durability --------------------------------------------------------------------

namespace {

int durability_cycles() {
  const char* v = std::getenv("BRD_STATE_DURABILITY_CYCLES");
  return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : 20;
}

// Writers put to `to` until told to stop or a write fails; acked writes go
// to `acked` (key -> value_hex).
struct writer_pool {
  std::atomic<bool> stop{false};
  std::atomic<size_t> count{0};
  std::mutex mutex;
  std::map<std::string, std::string> acked;
  std::vector<std::thread> threads;

  writer_pool(const endpoint& to, const std::string& prefix, int lanes) {
    for (int lane = 0; lane < lanes; ++lane)
      threads.emplace_back([this, to, prefix, lane] {
        for (int i = 0; !stop; ++i) {
          auto key = prefix + std::to_string(lane) + "-" + std::to_string(i);
          auto w = put(to, "tasks", key, record({{"k", key}}));
          if (!w)
            return;
          std::lock_guard guard{mutex};
          acked[w->key] = w->value_hex;
          ++count;
        }
      });
  }

  void join() {
    stop = true;
    for (auto& t : threads)
      t.join();
  }
};

} // namespace

TEST_CASE("acknowledged writes survive kill -9 of their node and reach every peer") {
  fleet fl{"st", make_specs(3)};
  start_and_join(fl);
  auto nodes = endpoints_of(fl);
  const int cycles = durability_cycles();
  constexpr size_t acks_before_kill = 12;
  size_t total = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    CAPTURE(cycle);
    const auto& victim = nodes[cycle % nodes.size()];
    CAPTURE(victim.name);
    auto prefix = "d" + std::to_string(cycle) + "-";
    // Kill while writes are in flight: only acked ones must survive.
    writer_pool pool{victim, prefix, 3};
    REQUIRE(wait_until([&] { return pool.count >= acks_before_kill; }, 10s, 1ms));
    fl.process(victim.name).kill9();
    pool.join();
    total += pool.acked.size();
    fl.start(victim.name);
    REQUIRE(wait_until([&] { return http_get_text(victim.http_port, "/livez").status == 200; },
                       10s));
    // Straight after restart, from the victim's own disk.
    CHECK(missing_on(victim, "tasks", prefix, pool.acked) == "");
    for (const auto& n : nodes) {
      std::string why;
      bool ok = wait_until([&] { return (why = missing_on(n, "tasks", prefix, pool.acked)).empty(); },
                           10s, 20ms);
      CHECK_MESSAGE(ok, why);
    }
    if (current_test_failed())
      break;
  }
  MESSAGE(cycles << " kill -9 cycles, " << total << " acked writes, all present everywhere");
  CHECK_MESSAGE(ms_until_converged(nodes, 5s) >= 0, digest_difference(nodes));
}

// -- partition -----------------------------------------------------------------------

namespace {

// `n` network namespaces, each holding one node: a data veth into a bridge
// (the fleet's addresses) and a management veth to the root namespace (the
// test's HTTP), so cutting the data link isolates the node from its peers
// but not from the test. Everything is removed on destruction.
class netns_lab {
public:
  explicit netns_lab(size_t n) : n_(n) {
    tag_ = std::to_string(::getpid() % 1000);
    net_ = std::to_string(::getpid() % 250);
    ip_ = find_program("ip");
    if (ip_.empty()) {
      problem_ = "the `ip` program (iproute2) is not installed";
      return;
    }
    if (::geteuid() != 0) {
      problem_ = "network namespaces need root (run the test as root)";
      return;
    }
    problem_ = setup();
  }

  ~netns_lab() {
    for (size_t i = 0; i < n_; ++i) {
      ip({"netns", "del", ns(i)});
      ip({"link", "del", "sm" + tag_ + "h" + std::to_string(i)});
    }
    ip({"link", "del", bridge()});
  }

  netns_lab(const netns_lab&) = delete;
  netns_lab& operator=(const netns_lab&) = delete;

  // Why the lab could not be made; "" when it works.
  const std::string& problem() const { return problem_; }

  std::string ns(size_t i) const { return "sact" + tag_ + "-" + std::to_string(i); }
  std::string data_ip(size_t i) const { return "10.213." + net_ + "." + std::to_string(i + 1); }
  std::string mgmt_ip(size_t i) const {
    return "10." + std::to_string(215 + i) + "." + net_ + ".1";
  }

  // Takes node i's data link down (cut) or up (heal).
  bool set_link(size_t i, bool up) {
    return ip({"link", "set", "sd" + tag_ + "h" + std::to_string(i), up ? "up" : "down"})
      .empty();
  }

  // Drops (or restores) traffic between nodes i and j only, with blackhole
  // routes in both namespaces.
  bool set_pair_cut(size_t i, size_t j, bool cut) {
    auto verb = cut ? "add" : "del";
    return ip({"-n", ns(i), "route", verb, "blackhole", data_ip(j) + "/32"}).empty()
           && ip({"-n", ns(j), "route", verb, "blackhole", data_ip(i) + "/32"}).empty();
  }

private:
  std::string bridge() const { return "sbr" + tag_; }

  // "" on success, else the command and its output.
  std::string ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv{ip_};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_program(argv, 5s);
    if (r.exit_code == 0)
      return "";
    std::string cmd = "ip";
    for (const auto& a : args)
      cmd += " " + a;
    return "`" + cmd + "` failed (" + std::to_string(r.exit_code) + "): " + r.output;
  }

  std::string setup() {
    std::vector<std::vector<std::string>> cmds{
      {"link", "add", bridge(), "type", "bridge"},
      {"addr", "add", "10.213." + net_ + ".254/24", "dev", bridge()},
      {"link", "set", bridge(), "up"}};
    for (size_t i = 0; i < n_; ++i) {
      auto d = "sd" + tag_ + "h" + std::to_string(i), dn = "sd" + tag_ + "n" + std::to_string(i);
      auto m = "sm" + tag_ + "h" + std::to_string(i), mn = "sm" + tag_ + "n" + std::to_string(i);
      auto mnet = "10." + std::to_string(215 + i) + "." + net_;
      std::vector<std::vector<std::string>> node{
        {"netns", "add", ns(i)},
        {"link", "add", d, "type", "veth", "peer", "name", dn},
        {"link", "set", d, "master", bridge()},
        {"link", "set", d, "up"},
        {"link", "set", dn, "netns", ns(i)},
        {"-n", ns(i), "addr", "add", data_ip(i) + "/24", "dev", dn},
        {"-n", ns(i), "link", "set", dn, "up"},
        {"-n", ns(i), "link", "set", "lo", "up"},
        {"link", "add", m, "type", "veth", "peer", "name", mn},
        {"addr", "add", mnet + ".2/24", "dev", m},
        {"link", "set", m, "up"},
        {"link", "set", mn, "netns", ns(i)},
        {"-n", ns(i), "addr", "add", mgmt_ip(i) + "/24", "dev", mn},
        {"-n", ns(i), "link", "set", mn, "up"}};
      cmds.insert(cmds.end(), node.begin(), node.end());
    }
    for (const auto& c : cmds)
      if (auto err = ip(c); !err.empty())
        return err;
    return "";
  }

  size_t n_;
  std::string tag_, net_, ip_, problem_;
};

// True when every node lists every node (itself included) as alive.
bool all_alive(const std::vector<endpoint>& nodes) {
  for (const auto& n : nodes) {
    auto doc = call(n, "GET", "/api/members").doc();
    if (!doc.is_array() || doc.size() != nodes.size())
      return false;
    for (const auto& row : doc)
      if (row.value("state", "") != "alive")
        return false;
  }
  return true;
}

std::string state_of(const endpoint& at, const std::string& node) {
  auto doc = call(at, "GET", "/api/members").doc();
  if (doc.is_array())
    for (const auto& row : doc)
      if (row.value("node", "") == node)
        return row.value("state", "");
  return "";
}

// Nodes a, b, ... each in its own namespace of `lab`, reached by the test
// over their management links. The fleet's addresses are the data links.
class netns_fleet {
public:
  netns_fleet(netns_lab& lab, size_t n) {
    std::string toml = "[cluster]\nname = \"part\"\nbackoff_max_ms = 500\n\n";
    for (size_t i = 0; i < n; ++i) {
      std::string name(1, static_cast<char>('a' + i));
      nodes.push_back({name, lab.mgmt_ip(i), 4901});
      toml += "[[node]]\nname = \"" + name + "\"\ntier = \"pi\"\nroles = []\nhost = \""
              + lab.data_ip(i) + "\"\nport = 4801\nhttp_port = 4901\n\n";
    }
    auto config = dir_.write("fleet.toml", toml);
    for (size_t i = 0; i < n; ++i) {
      const auto& name = nodes[i].name;
      auto wrapper = dir_.write("run-" + name + ".sh", "#!/bin/sh\nexec " + find_program("ip")
                                                         + " netns exec " + lab.ns(i) + " "
                                                         + brnode_bin() + " \"$@\"\n");
      ::chmod(wrapper.c_str(), 0755);
      procs_.push_back(std::make_unique<node_process>(dir_.file(name + ".log")));
      procs_.back()->start(wrapper, config, name, dir_.file("data/" + name));
    }
  }

  ~netns_fleet() {
    if (current_test_failed())
      for (auto& p : procs_) {
        auto text = p->log_text();
        std::fprintf(stderr, "%s:\n%s\n", p->log_path().c_str(),
                     text.substr(text.size() > 4000 ? text.size() - 4000 : 0).c_str());
      }
  }

  // Every node sees every node alive and the digests agree.
  void join() {
    REQUIRE_MESSAGE(wait_until([&] { return all_alive(nodes); }, 20s, 50ms),
                    "the nodes did not join");
    REQUIRE_MESSAGE(ms_until_converged(nodes, 10s) >= 0, digest_difference(nodes));
  }

  std::vector<endpoint> nodes;

private:
  temp_dir dir_;
  std::vector<std::unique_ptr<node_process>> procs_;
};

// Writes on `n` during the partition: own keys, contested keys, deletes.
void write_side(const endpoint& n, int rounds, const std::vector<std::string>& to_delete,
                std::mutex& mutex, std::vector<acked_write>& acked) {
  for (int i = 0; i < rounds; ++i) {
    for (const auto& key : {"side-" + n.name + "-" + std::to_string(i),
                            "contested-" + std::to_string(i % 8)}) {
      auto w = put(n, "deployments", key, record({{"by", n.name}, {"i", i}}));
      REQUIRE_MESSAGE(w, "a write to " << n.name << " during the partition failed");
      std::lock_guard guard{mutex};
      acked.push_back(*w);
    }
  }
  for (const auto& key : to_delete) {
    auto w = erase(n, "deployments", key);
    REQUIRE_MESSAGE(w, "a delete on " << n.name << " during the partition failed");
    std::lock_guard guard{mutex};
    acked.push_back(*w);
  }
}

} // namespace

// How long the partition is held. Past CAF's connection timeout (10 s) the
// nodes drop their connections and redial after the heal (backoff_max_ms 500
// in the test config). A shorter silent partition leaves the connections up,
// and traffic resumes when TCP retransmits, whose backoff then adds up to a
// few seconds after the heal (measured 1.5-1.8 s for 2-5 s partitions);
// BRD_PARTITION_MS=N tries another length.
millis partition_hold() {
  const char* v = std::getenv("BRD_PARTITION_MS");
  return millis{v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : 12000};
}

TEST_CASE("a node cut off from four peers converges after the partition heals, deletes stay deleted") {
  netns_lab lab{5};
  if (!lab.problem().empty()) {
    MESSAGE("skipped: cannot make network namespaces: " << lab.problem());
    return;
  }
  netns_fleet fl{lab, 5};
  fl.join();
  const auto& nodes = fl.nodes;

  // Before: rows every node holds, some of which each side deletes.
  std::mutex mutex;
  std::vector<acked_write> acked;
  std::vector<std::string> majority_deletes, minority_deletes;
  for (int i = 0; i < 20; ++i) {
    auto key = "before-" + std::to_string(i);
    auto w = put(nodes[i % 4], "deployments", key, record({{"i", i}}));
    REQUIRE(w);
    acked.push_back(*w);
    (i < 10 ? majority_deletes : minority_deletes).push_back(key);
  }
  REQUIRE(ms_until_converged(nodes, 5s) >= 0);

  const auto& lone = nodes[4];
  REQUIRE(lab.set_link(4, false));
  auto cut_at = steady::now();
  CHECK_MESSAGE(wait_until([&] { return state_of(nodes[0], lone.name) == "down"; }, 5s, 20ms),
                "a never saw the isolated node down");
  {
    std::vector<std::thread> sides;
    for (size_t i = 0; i < 4; ++i)
      sides.emplace_back([&, i] {
        std::vector<std::string> deletes;
        for (size_t k = i; k < majority_deletes.size(); k += 4)
          deletes.push_back(majority_deletes[k]);
        write_side(nodes[i], 25, deletes, mutex, acked);
      });
    sides.emplace_back([&] { write_side(lone, 25, minority_deletes, mutex, acked); });
    for (auto& t : sides)
      t.join();
  }
  // The sides differ while cut.
  CHECK(digest(nodes[0]) != digest(lone));
  std::this_thread::sleep_until(cut_at + partition_hold());
  MESSAGE("partition lasted " << std::chrono::duration_cast<millis>(steady::now() - cut_at).count()
                              << " ms; " << acked.size() << " acked writes in all");
  REQUIRE(lab.set_link(4, true));
  auto ms = ms_until_converged(nodes, 15s);
  MESSAGE("digests equal " << ms << " ms after the partition healed");
  CHECK_MESSAGE(ms >= 0, digest_difference(nodes));
  CHECK(ms <= 2000);
  check_winners(nodes, "deployments", "", acked);
  for (const auto& key : majority_deletes)
    CHECK_MESSAGE(call(lone, "GET", "/api/state/deployments/" + key).status == 404,
                  key << " came back on the isolated node");
  for (const auto& key : minority_deletes)
    CHECK_MESSAGE(call(nodes[0], "GET", "/api/state/deployments/" + key).status == 404,
                  key << " came back on the majority");
}

TEST_CASE("a node cut off from one origin gets its writes through a third node") {
  netns_lab lab{3};
  if (!lab.problem().empty()) {
    MESSAGE("skipped: cannot make network namespaces: " << lab.problem());
    return;
  }
  netns_fleet fl{lab, 3};
  fl.join();
  const auto& a = fl.nodes[0];
  const auto& c = fl.nodes[2];
  REQUIRE(lab.set_pair_cut(0, 2, true));
  CHECK_MESSAGE(wait_until([&] { return state_of(a, "c") == "down" && state_of(c, "a") == "down"; },
                           5s, 20ms),
                "a and c never saw each other down");
  std::vector<acked_write> acked;
  for (int i = 0; i < 30; ++i)
    for (const auto* n : {&a, &c}) {
      auto w = put(*n, "tasks", "relay-" + n->name + "-" + std::to_string(i), record({{"i", i}}));
      REQUIRE(w);
      acked.push_back(*w);
    }
  auto ms = ms_until_converged(fl.nodes, 10s);
  MESSAGE("with a and c cut off from each other, digests equal " << ms
                                                                 << " ms after the last write");
  CHECK_MESSAGE(ms >= 0, digest_difference(fl.nodes));
  CHECK(ms <= 3000);
  check_winners(fl.nodes, "tasks", "relay-", acked);
  CHECK(state_of(a, "c") == "down"); // it came through b, not a healed link
  REQUIRE(lab.set_pair_cut(0, 2, false));
}

// -- bad input -----------------------------------------------------------------------

namespace {

// A CAF node of the fleet's cluster (same app identifier) that reaches a
// node's state actor through its health actor, as a peer would.
class forged_peer {
public:
  forged_peer(const std::string& cluster, uint16_t actor_port)
    : cfg_(cluster, false), sys_(cfg_), self_(sys_) {
    auto health = sys_.middleman().remote_actor<brd::health_actor>("127.0.0.1", actor_port);
    REQUIRE_MESSAGE(health, "cannot reach the node's health actor: " << sys_.render(health.error()));
    self_->request(*health, 5s, brd::get_atom::value, std::string{"state"})
      .receive([&](caf::actor& state) { state_ = state; },
               [&](caf::error& err) { FAIL("no state service: " << sys_.render(err)); });
    REQUIRE(state_);
  }

  // Pushes `batch`; the node's version vector, or "error: ..." text.
  std::string push(brd::repl_batch batch) {
    std::string out;
    self_->request(state_, 5s, std::move(batch))
      .receive(
        [&](std::map<std::string, uint64_t>& vv) { out = json(vv).dump(); },
        [&](caf::error& err) { out = "error: " + sys_.render(err); });
    return out;
  }

private:
  brd::system_config cfg_;
  caf::actor_system sys_;
  caf::scoped_actor self_;
  caf::actor state_;
};

brd::state_entry forged_entry(const std::string& origin, uint64_t seq, std::string value,
                              const std::string& key) {
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  return {"tasks", key, std::move(value), false,
          brd::make_hlc(static_cast<uint64_t>(now_ms), 0), origin, seq};
}

double rejected(uint16_t http_port, const std::string& reason) {
  auto all = parse_metrics(http_get_text(http_port, "/metrics").body);
  double sum = 0;
  for (const auto& m : find_metrics(all, "brnode_state_rejected_total", {{"reason", reason}}))
    sum += m.value;
  return sum;
}

} // namespace

TEST_CASE("forged replication input is refused with a logged reason and changes nothing") {
  fleet fl{"st", make_specs(3)};
  start_and_join(fl);
  auto nodes = endpoints_of(fl);
  auto before = digest(nodes[0]);
  REQUIRE(before.is_object());
  uint64_t b_seq = before["vv"].value("b", uint64_t{0});
  auto valid = record({{"ok", true}});
  auto truncated = valid.substr(0, valid.size() - 1);
  auto v999 = json::to_msgpack(json{{"v", 999}, {"x", 1}});

  forged_peer peer{"st", fl.spec("a").port};
  struct forged_case {
    std::string reason; // metric label
    std::string log_words;
    brd::repl_batch batch;
  };
  std::vector<forged_case> cases{
    {"corrupt_value", "corrupt value",
     {"b", {forged_entry("b", b_seq + 1, "\xde\xad\xbe", "forged-corrupt")}}},
    {"corrupt_value", "corrupt value",
     {"b", {forged_entry("b", b_seq + 1, truncated, "forged-truncated")}}},
    {"unknown_schema", "unknown schema version 999",
     {"b", {forged_entry("b", b_seq + 1, {v999.begin(), v999.end()}, "forged-v999")}}},
    {"unknown_sender", "'mallory', which is not a peer",
     {"mallory", {forged_entry("b", b_seq + 1, valid, "forged-sender")}}},
    {"gap", "gap in sequence from b",
     {"b", {forged_entry("b", b_seq + 5, valid, "forged-gap"),
            forged_entry("b", b_seq + 6, valid, "forged-after-gap")}}},
    {"unknown_origin", "unknown node 'mallory'",
     {"b", {forged_entry("mallory", 1, valid, "forged-origin")}}},
  };
  for (auto& c : cases) {
    CAPTURE(c.reason);
    auto count_before = rejected(fl.http_port("a"), c.reason);
    auto answer = peer.push(c.batch);
    INFO("reply: " << answer);
    if (c.reason == "unknown_sender")
      CHECK(answer.rfind("error:", 0) == 0);
    else
      CHECK(json::parse(answer, nullptr, false).value("b", uint64_t{0}) == b_seq);
    CHECK(rejected(fl.http_port("a"), c.reason) == count_before + 1);
    CHECK_MESSAGE(fl.process("a").log_text().find(c.log_words) != std::string::npos,
                  "the log of a does not say '" << c.log_words << "'");
  }
  CHECK(fl.process("a").running());
  // Nothing was applied, here or anywhere.
  for (const auto& n : nodes) {
    CAPTURE(n.name);
    CHECK(digest(n) == before);
    for (const auto& key : {"forged-corrupt", "forged-gap", "forged-after-gap", "forged-origin"})
      CHECK(call(n, "GET", std::string{"/api/state/tasks/"} + key).status == 404);
  }
  // And a keeps serving and replicating.
  auto w = put(nodes[0], "tasks", "after-forgery", record({{"still", "serving"}}));
  REQUIRE(w);
  CHECK(ms_until_converged(nodes, 2s) >= 0);
  CHECK(missing_on(nodes[2], "tasks", "after-forgery", {{w->key, w->value_hex}}) == "");
}
