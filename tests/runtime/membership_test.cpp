#include <doctest/doctest.h>

#include "runtime/membership.hpp"

using namespace brd;
using namespace std::chrono_literals;

namespace {

fleet_config three_nodes() {
  fleet_config f;
  f.file = "test.toml";
  f.cluster = "test";
  for (auto name : {"a", "b", "c"})
    f.nodes.push_back({name, tier::pi, {}, "127.0.0.1", 1, 2});
  return f;
}

heartbeat hb_from(const std::string& node, uint64_t incarnation = 1) {
  heartbeat hb;
  hb.node = node;
  hb.incarnation = incarnation;
  return hb;
}

} // namespace

TEST_CASE("phi stays low while heartbeats arrive on time") {
  detector_config cfg;
  phi_detector d{cfg};
  auto t = std::chrono::steady_clock::time_point{};
  for (int i = 0; i < 50; ++i, t += 200ms)
    d.heartbeat(t);
  CHECK(d.phi(t) < 1.0);
}

TEST_CASE("phi crosses the threshold after a long silence") {
  detector_config cfg;
  phi_detector d{cfg};
  auto t = std::chrono::steady_clock::time_point{};
  for (int i = 0; i < 50; ++i, t += 200ms)
    d.heartbeat(t);
  CHECK(d.phi(t + 2s) > cfg.phi_threshold);
}

TEST_CASE("a detector that saw jittery heartbeats tolerates a longer pause") {
  detector_config cfg;
  phi_detector steady{cfg}, jittery{cfg};
  auto t1 = std::chrono::steady_clock::time_point{};
  auto t2 = t1;
  for (int i = 0; i < 60; ++i) {
    steady.heartbeat(t1);
    jittery.heartbeat(t2);
    t1 += 200ms;
    t2 += (i % 2 == 0) ? 50ms : 600ms;
  }
  auto pause = 900ms;
  CHECK(jittery.phi(t2 + pause) < steady.phi(t1 + pause));
}

TEST_CASE("a peer goes alive, suspect, down and back to alive") {
  auto fleet = three_nodes();
  member_table table{fleet, "a"};
  auto t = std::chrono::steady_clock::time_point{};
  CHECK(table.state("b") == member_state::unknown);
  auto ev = table.on_hello({"test", "b", 1, "0.1.0"}, t);
  REQUIRE(ev);
  CHECK(ev->to == member_state::alive);
  for (int i = 0; i < 20; ++i) {
    t += 200ms;
    table.on_heartbeat(hb_from("b"), t);
  }
  bool saw_suspect = false, saw_down = false;
  for (int i = 0; i < 40; ++i) {
    t += 100ms;
    for (auto& e : table.evaluate(t)) {
      saw_suspect = saw_suspect || e.to == member_state::suspect;
      saw_down = saw_down || e.to == member_state::down;
    }
  }
  CHECK(saw_suspect);
  CHECK(saw_down);
  CHECK(table.state("b") == member_state::down);
  auto back = table.on_heartbeat(hb_from("b"), t);
  REQUIRE(back);
  CHECK(back->to == member_state::alive);
}

TEST_CASE("a lost connection marks the peer down at once") {
  auto fleet = three_nodes();
  member_table table{fleet, "a"};
  auto t = std::chrono::steady_clock::time_point{};
  table.on_hello({"test", "c", 1, "0.1.0"}, t);
  auto ev = table.on_connection_lost("c", t);
  REQUIRE(ev);
  CHECK(ev->to == member_state::down);
  CHECK(ev->reason == "connection lost");
}

TEST_CASE("a graceful leave is left, not down, even when the connection drops") {
  auto fleet = three_nodes();
  member_table table{fleet, "a"};
  auto t = std::chrono::steady_clock::time_point{};
  table.on_hello({"test", "b", 4, "0.1.0"}, t);
  auto ev = table.on_leave("b", 4, t);
  REQUIRE(ev);
  CHECK(ev->to == member_state::left);
  CHECK_FALSE(table.on_connection_lost("b", t));
  CHECK(table.state("b") == member_state::left);
  SUBCASE("a restart with a new incarnation brings it back") {
    auto back = table.on_hello({"test", "b", 5, "0.1.0"}, t + 1s);
    REQUIRE(back);
    CHECK(back->to == member_state::alive);
  }
  SUBCASE("a late hello of the same incarnation does not revive it") {
    CHECK_FALSE(table.on_hello({"test", "b", 4, "0.1.0"}, t + 1s));
    CHECK(table.state("b") == member_state::left);
  }
  SUBCASE("messages of the old incarnation are ignored") {
    CHECK_FALSE(table.on_hello({"test", "b", 3, "0.1.0"}, t + 1s));
  }
}

TEST_CASE("views list every configured node, self first-class") {
  auto fleet = three_nodes();
  member_table table{fleet, "b"};
  auto rows = table.views(std::chrono::steady_clock::now(), node_sample{}, 7);
  REQUIRE(rows.size() == 3);
  CHECK(rows[1].self);
  CHECK(rows[1].incarnation == 7);
  CHECK(rows[0].state == member_state::unknown);
  CHECK(rows[0].last_heartbeat_age_ms == -1);
}
