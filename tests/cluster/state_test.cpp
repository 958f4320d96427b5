// Replicated state across real brnode processes (issue 3): convergence of
// concurrent writes, durability of acknowledged writes across kill -9,
// convergence after network partitions (network namespaces, root only),
// refusal of forged replication input, wait_for and subscriptions. Nodes are
// driven over /api/state; some tests also speak CAF to a state actor, as a
// peer or brsh would (state_client.hpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>
#include <variant>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include "harness.hpp"
#include "netns_lab.hpp"
#include "actors/health.hpp"
#include "actors/state.hpp"
#include "runtime/hlc.hpp"
#include "runtime/type_registry.hpp"
#include "state_client.hpp"

using namespace brd::test;
using nlohmann::json;

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

} // namespace

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

// An entry stamped now (plus `ahead`, a clock that runs fast).
brd::state_entry forged_entry(const std::string& origin, uint64_t seq, std::string value,
                              const std::string& key,
                              std::chrono::milliseconds ahead = std::chrono::milliseconds{0}) {
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch() + ahead)
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

  caf_client peer{"st", fl.spec("a").port};
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
    {"clock_ahead", "clock ahead",
     {"b", {forged_entry("b", b_seq + 1, valid, "forged-future", std::chrono::hours{1})}}},
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
    for (const auto& key :
         {"forged-corrupt", "forged-gap", "forged-after-gap", "forged-origin", "forged-future"})
      CHECK(call(n, "GET", std::string{"/api/state/tasks/"} + key).status == 404);
  }
  // And a keeps serving and replicating.
  auto w = put(nodes[0], "tasks", "after-forgery", record({{"still", "serving"}}));
  REQUIRE(w);
  CHECK(ms_until_converged(nodes, 2s) >= 0);
  CHECK(missing_on(nodes[2], "tasks", "after-forgery", {{w->key, w->value_hex}}) == "");
}

// -- waiting for peers, subscriptions ------------------------------------------------

TEST_CASE("a write with wait_for=N is acknowledged once N peers hold it, and times out when they cannot") {
  fleet fl{"st", make_specs(3)};
  start_and_join(fl);
  auto nodes = endpoints_of(fl);
  for (int i = 0; i < 10; ++i) {
    auto w = put(nodes[0], "rollouts", "w2-" + std::to_string(i), record({{"i", i}}), 2);
    REQUIRE(w);
    // Acknowledged with wait_for=2: both peers already hold it.
    for (const auto* n : {&nodes[1], &nodes[2]})
      CHECK(missing_on(*n, "rollouts", w->key, {{w->key, w->value_hex}}) == "");
  }
  CHECK(call(nodes[0], "PUT", "/api/state/rollouts/x?wait_for=3", record({})).status == 400);
  fl.process("c").kill9();
  CHECK(put(nodes[0], "rollouts", "w1", record({}), 1));
  auto started = steady::now();
  auto r = call(nodes[0], "PUT", "/api/state/rollouts/w2-down?wait_for=2", record({}));
  auto waited = std::chrono::duration_cast<millis>(steady::now() - started).count();
  MESSAGE("wait_for=2 with a peer down answered " << r.status << " after " << waited << " ms: "
                                                  << r.body);
  CHECK(r.status == 504);
  CHECK(waited < 7000);
  // The write itself is durable on a and reached b.
  CHECK(call(nodes[0], "GET", "/api/state/rollouts/w2-down").status == 200);
  CHECK(wait_until([&] { return call(nodes[1], "GET", "/api/state/rollouts/w2-down").status == 200; },
                   2s));
}

TEST_CASE("replication backpressure holds writes only for peers that answer: a stopped peer "
          "never stops them") {
  // replication_backlog = 4: a's commits wait while a peer that answered
  // within the last 300 ms lacks more than 4 of a's writes.
  fleet fl{"st", make_specs(3), "replication_backlog = 4\n"};
  start_and_join(fl);
  auto nodes = endpoints_of(fl);
  std::map<std::string, std::string> acked; // key -> value_hex
  long slowest_ms = 0;
  for (int i = 0; i < 150; ++i) {
    if (i == 30) // mid-stream, so c's last answer is fresh and a holds for it
      REQUIRE(::kill(fl.process("c").pid(), SIGSTOP) == 0);
    auto started = steady::now();
    auto w = put(nodes[0], "tasks", "bp-" + std::to_string(i), record({{"i", i}}));
    slowest_ms = std::max<long>(
      slowest_ms, std::chrono::duration_cast<millis>(steady::now() - started).count());
    REQUIRE_MESSAGE(w, "write " << i << " was not acknowledged with c stopped");
    acked[w->key] = w->value_hex;
  }
  MESSAGE("150 writes on a, c stopped after 30: slowest acknowledged after " << slowest_ms
                                                                            << " ms");
  // Held at most until c counts as silent (300 ms) and the next flush.
  CHECK(slowest_ms < 2000);
  auto held = find_metrics(parse_metrics(call(nodes[0], "GET", "/metrics").body),
                           "brnode_state_backpressure_total");
  REQUIRE(held.size() == 1);
  MESSAGE("a put off " << held[0].value << " group commits for a backlogged peer");
  CHECK(held[0].value >= 1);
  // b kept up all along; c gets everything once it runs again.
  CHECK(wait_until([&] { return missing_on(nodes[1], "tasks", "bp-", acked).empty(); }, 2s));
  REQUIRE(::kill(fl.process("c").pid(), SIGCONT) == 0);
  auto ms = ms_until_converged(nodes, 10s);
  MESSAGE("c converged " << ms << " ms after SIGCONT");
  CHECK_MESSAGE(ms >= 0, digest_difference(nodes));
  CHECK(missing_on(nodes[2], "tasks", "bp-", acked) == "");
}

TEST_CASE("a subscriber receives every change of its table, local or replicated") {
  fleet fl{"st", make_specs(3)};
  start_and_join(fl);
  auto nodes = endpoints_of(fl);
  caf_client client{"st", fl.spec("a").port};
  client.subscribe("alerts");
  std::this_thread::sleep_for(100ms); // the subscription is asynchronous
  REQUIRE(put(nodes[0], "alerts", "local", record({{"n", 1}})));
  REQUIRE(put(nodes[1], "alerts", "remote", record({{"n", 2}})));
  REQUIRE(erase(nodes[2], "alerts", "local"));
  REQUIRE(put(nodes[1], "tasks", "other-table", record({})));
  std::vector<std::string> seen;
  while (auto e = client.next_change(2s))
    seen.push_back(e->key + (e->tombstone ? " deleted" : "") + " from " + e->origin);
  std::sort(seen.begin(), seen.end()); // origins replicate independently
  CHECK(seen == std::vector<std::string>{"local deleted from c", "local from a", "remote from b"});
}

// -- many writes in one message ------------------------------------------------------

namespace {

// put (table, keys, values) to the state actor of the node on `actor_port`:
// the ack, or the error's text.
std::variant<brd::write_ack, std::string> put_many(uint16_t actor_port,
                                                   std::vector<std::string> keys,
                                                   std::vector<std::string> values) {
  brd::system_config cfg{"st", false};
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto health = sys.middleman().remote_actor<brd::health_actor>("127.0.0.1", actor_port);
  REQUIRE(health);
  std::variant<brd::write_ack, std::string> out{"no answer"};
  caf::actor state;
  self->request(*health, 5s, brd::get_atom::value, std::string{"state"})
    .receive([&](caf::actor& a) { state = a; }, [&](caf::error&) {});
  REQUIRE(state);
  self->request(caf::actor_cast<brd::state_actor>(state), 10s, brd::put_atom::value,
                std::string{"tasks"}, std::move(keys), std::move(values))
    .receive([&](brd::write_ack& ack) { out = ack; },
             [&](caf::error& err) { out = sys.render(err); });
  return out;
}

} // namespace

TEST_CASE("a put of many writes is acked once with the last seq, and every write reaches "
          "every node; one bad value refuses them all") {
  fleet fl{"st", make_specs(3)};
  start_and_join(fl);
  auto nodes = endpoints_of(fl);
  uint64_t before = digest(nodes[0])["vv"].value("a", uint64_t{0});
  std::vector<std::string> keys, values;
  std::map<std::string, std::string> expected;
  for (int i = 0; i < 50; ++i) {
    keys.push_back("many-" + std::to_string(i));
    values.push_back(record({{"i", i}}));
    expected[keys.back()] = hex(values.back());
  }
  auto ack = put_many(fl.spec("a").port, keys, values);
  REQUIRE(std::holds_alternative<brd::write_ack>(ack));
  CHECK(std::get<brd::write_ack>(ack).origin == "a");
  CHECK(std::get<brd::write_ack>(ack).seq == before + 50);
  REQUIRE(ms_until_converged(nodes, 2s) >= 0);
  for (const auto& n : nodes) {
    CAPTURE(n.name);
    CHECK(missing_on(n, "tasks", "many-", expected) == "");
  }

  values[7] = "\xde\xad";
  keys = {"bad-0", "bad-1", "bad-2", "bad-3", "bad-4", "bad-5", "bad-6", "bad-7"};
  values.resize(keys.size());
  auto refused = put_many(fl.spec("a").port, keys, values);
  REQUIRE(std::holds_alternative<std::string>(refused));
  CHECK(std::get<std::string>(refused).find("corrupt value") != std::string::npos);
  CHECK(digest(nodes[0])["vv"].value("a", uint64_t{0}) == before + 50);
  CHECK(rows(nodes[0], "tasks", "bad-") == std::map<std::string, std::string>{});
}

// -- lost data -------------------------------------------------------------------------

TEST_CASE("a node that lost its data directory relearns the state and its own writes") {
  fleet fl{"st", make_specs(3)};
  start_and_join(fl);
  auto nodes = endpoints_of(fl);
  std::vector<acked_write> acked;
  for (int i = 0; i < 20; ++i)
    for (const auto& n : nodes) {
      auto w = put(n, "artifacts", "lost-" + n.name + "-" + std::to_string(i), record({{"i", i}}));
      REQUIRE(w);
      acked.push_back(*w);
    }
  REQUIRE(ms_until_converged(nodes, 5s) >= 0);
  // The peers truncate their logs every second once everyone holds the
  // entries: after this, c can only be caught up with a snapshot.
  std::this_thread::sleep_for(2s);
  fl.process("c").kill9();
  std::filesystem::remove_all(fl.data_dir("c"));
  fl.start("c");
  auto ms = ms_until_converged(nodes, 15s);
  MESSAGE("c, started on an empty data directory, converged after " << ms << " ms");
  CHECK_MESSAGE(ms >= 0, digest_difference(nodes));
  check_winners(nodes, "artifacts", "lost-", acked);
  // Its new writes take fresh seqs, so they reach the peers.
  auto w = put(nodes[2], "artifacts", "after-loss", record({{"new", true}}));
  REQUIRE(w);
  CHECK(ms_until_converged(nodes, 5s) >= 0);
  CHECK(missing_on(nodes[0], "artifacts", "after-loss", {{w->key, w->value_hex}}) == "");
  CHECK(fl.process("c").log_text().find("relearned") != std::string::npos);
  CHECK(fl.process("c").log_text().find("applied a snapshot") != std::string::npos);
}

TEST_CASE("a node away for more than log_keep entries catches up with a snapshot in chunks, "
          "deletes included") {
  fleet fl{"st", make_specs(3), "log_keep = 20\n"};
  start_and_join(fl);
  auto nodes = endpoints_of(fl);
  for (int i = 0; i < 10; ++i)
    REQUIRE(put(nodes[0], "artifacts", "before-" + std::to_string(i), record({{"i", i}})));
  REQUIRE(ms_until_converged(nodes, 5s) >= 0);
  fl.process("c").kill9();
  std::vector<acked_write> acked;
  // While c is away: 100 writes of 30 KB and 5 deletes of rows c holds. The
  // others keep 20 log entries per origin, not all that c lacks, so c gets
  // a snapshot of about 3 MB: several chunks of about 1 MB.
  const std::string pad(30'000, 'p');
  for (int i = 0; i < 100; ++i) {
    auto w = put(nodes[i % 2], "artifacts", "while-away-" + std::to_string(i),
                 record({{"i", i}, {"pad", pad}}));
    REQUIRE(w);
    acked.push_back(*w);
  }
  for (int i = 0; i < 5; ++i)
    REQUIRE(erase(nodes[1], "artifacts", "before-" + std::to_string(i)));
  CHECK_MESSAGE(wait_until(
                  [&] {
                    return fl.process("a").log_text().find("it gets a snapshot when it returns")
                           != std::string::npos;
                  },
                  5s, 50ms),
                "a never said that c will need a snapshot");
  // a's log: about 20 entries per origin (a, b and c's few), not 100+.
  auto samples = find_metrics(parse_metrics(call(nodes[0], "GET", "/metrics").body),
                              "brnode_state_log_entries");
  REQUIRE(samples.size() == 1);
  MESSAGE("a's log holds " << samples[0].value << " entries while c is away");
  CHECK(samples[0].value <= 3 * 20 + 10);
  // a says how far behind c is: at least the 100 writes and 5 deletes.
  CHECK_MESSAGE(wait_until(
                  [&] {
                    auto behind = find_metrics(parse_metrics(call(nodes[0], "GET", "/metrics").body),
                                               "brnode_state_peer_behind_entries", {{"peer", "c"}});
                    return behind.size() == 1 && behind[0].value >= 105;
                  },
                  5s, 100ms),
                "a's brnode_state_peer_behind_entries{peer=\"c\"} never showed c's backlog");
  fl.start("c");
  auto ms = ms_until_converged(nodes, 15s);
  MESSAGE("c converged " << ms << " ms after it was started again");
  CHECK_MESSAGE(ms >= 0, digest_difference(nodes));
  auto log_c = fl.process("c").log_text();
  auto applied = log_c.find("applied a snapshot");
  REQUIRE(applied != std::string::npos);
  auto line = log_c.substr(applied, log_c.find('\n', applied) - applied);
  MESSAGE("c: " << line);
  auto in = line.find(" rows in ");
  REQUIRE(in != std::string::npos);
  CHECK(std::stoi(line.substr(in + 9)) >= 3); // chunks
  auto received = find_metrics(parse_metrics(call(nodes[2], "GET", "/metrics").body),
                               "brnode_state_snapshot_chunks_total", {{"direction", "received"}});
  REQUIRE(received.size() == 1);
  CHECK(received[0].value >= 3);
  check_winners(nodes, "artifacts", "while-away-", acked);
  for (int i = 0; i < 5; ++i)
    CHECK_MESSAGE(call(nodes[2], "GET", "/api/state/artifacts/before-" + std::to_string(i)).status
                    == 404,
                  "before-" << i << " came back on c");
  CHECK(call(nodes[2], "GET", "/api/state/artifacts/before-7").status == 200);
}
