// Membership across real brnode processes: joining, failure detection after
// kill -9 (connection loss) and SIGSTOP (silence, phi-accrual), restart with
// a new incarnation, graceful leave, and refusal of another cluster.
#include <doctest/doctest.h>

#include <csignal>
#include <thread>

#include "harness.hpp"

using namespace brd::test;

namespace {

// The detection bound the fleet promises after a crash.
constexpr long detection_bound_ms = 1000;

// Starts a, b, c and waits until they all see each other alive.
void start_three(fleet& fl) {
  fl.start_all();
  REQUIRE_MESSAGE(fl.wait_all_alive(10s), "the fleet did not join within 10 s");
}

uint64_t incarnation_seen_by(uint16_t http_port, const std::string& node) {
  auto row = member_row(http_port, node);
  return row ? row->value("incarnation", uint64_t{0}) : 0;
}

// SIGTERM to c after `settle`: c exits 0, a and b show it left and keep it
// left (a node that said goodbye is not later reported down).
void check_graceful_stop(millis settle) {
  fleet fl{"t1", make_specs(3)};
  start_three(fl);
  std::this_thread::sleep_for(settle);
  auto watchers = fl.watchers_except("c");
  auto asked_at = steady::now();
  fl.process("c").term();
  auto left = ms_until_state(watchers, "c", "left", asked_at, 3s);
  MESSAGE("SIGTERM to c: seen left after " << describe_times(left));
  CHECK(left.size() == watchers.size());
  auto code = fl.process("c").wait_exit(5s);
  REQUIRE_MESSAGE(code.has_value(), "brnode did not exit within 5 s of SIGTERM");
  CHECK(*code == 0);
  std::this_thread::sleep_for(1500ms);
  for (const auto& [name, port] : watchers) {
    CAPTURE(name);
    CHECK(member_state(port, "c") == "left");
  }
}

} // namespace

TEST_CASE("three nodes join: each sees the others alive and answers /readyz 200") {
  fleet fl{"t1", make_specs(3)};
  start_three(fl);
  CHECK(fl.first_break_of_join(2s) == "");
  for (const auto& me : fl.specs()) {
    CAPTURE(me.name);
    auto ready = http_get_json(me.http_port, "/readyz");
    CHECK(ready.status == 200);
    auto members = http_get_json(me.http_port, "/api/members");
    REQUIRE(members.status == 200);
    REQUIRE(members.body.is_array());
    CHECK(members.body.size() == 3);
    for (const auto& row : members.body) {
      auto node = row.value("node", "");
      CAPTURE(node);
      CHECK(row.value("state", "") == "alive");
      CHECK(row.value("self", false) == (node == me.name));
      CHECK(row.value("incarnation", uint64_t{0}) >= 1);
      CHECK(row.value("version", "") != "");
      CHECK(row.value("address", "")
            == "127.0.0.1:" + std::to_string(fl.spec(node).port));
    }
  }
}

TEST_CASE("kill -9 of a node is seen as down by every peer within 1 s") {
  fleet fl{"t1", make_specs(3)};
  start_three(fl);
  // Two rounds, on different nodes, so one lucky timing cannot pass alone.
  for (const std::string victim : {"c", "a"}) {
    CAPTURE(victim);
    auto watchers = fl.watchers_except(victim);
    auto killed_at = fl.process(victim).kill9();
    auto times = ms_until_state(watchers, victim, "down", killed_at, 5s);
    long worst = 0;
    MESSAGE("kill -9 " << victim << ": seen down after " << describe_times(times, &worst));
    CHECK(times.size() == watchers.size());
    CHECK(worst < detection_bound_ms);
    fl.start(victim);
    REQUIRE(fl.wait_all_alive(10s));
  }
}

TEST_CASE("a node restarted on its data dir is alive everywhere within 1 s, with a higher incarnation") {
  fleet fl{"t1", make_specs(3)};
  start_three(fl);
  auto watchers = fl.watchers_except("b");
  auto before = incarnation_seen_by(fl.http_port("a"), "b");
  CHECK(before >= 1);
  auto killed_at = fl.process("b").kill9();
  auto down = ms_until_state(watchers, "b", "down", killed_at, 5s);
  REQUIRE(down.size() == watchers.size());
  auto started_at = steady::now();
  fl.start("b");
  auto alive = ms_until_state(watchers, "b", "alive", started_at, 10s);
  long worst = 0;
  MESSAGE("restart of b: seen alive after " << describe_times(alive, &worst)
                                            << " (from the fork of the new process)");
  CHECK(alive.size() == watchers.size());
  CHECK(worst < detection_bound_ms);
  for (const auto& [name, port] : watchers) {
    CAPTURE(name);
    CHECK(incarnation_seen_by(port, "b") > before);
  }
  auto self_row = member_row(fl.http_port("b"), "b");
  REQUIRE(self_row);
  CHECK(self_row->value("incarnation", uint64_t{0}) > before);
  CHECK(fl.wait_all_alive(10s));
}

TEST_CASE("SIGTERM of a settled node: exit code 0 and its peers show it left for good") {
  check_graceful_stop(2s);
}

// Right after joining, connection retries from startup may still be in
// flight; a stopping node must not let them undo its goodbye.
TEST_CASE("SIGTERM right after joining: exit code 0 and its peers show it left for good") {
  check_graceful_stop(0ms);
}

TEST_CASE("a silent node (SIGSTOP) is marked down by phi-accrual and alive again on SIGCONT") {
  fleet fl{"t1", make_specs(3)};
  start_three(fl);
  // Let every detector collect some heartbeat history first.
  std::this_thread::sleep_for(1s);
  auto watchers = fl.watchers_except("c");
  auto stopped_at = steady::now();
  REQUIRE(::kill(fl.process("c").pid(), SIGSTOP) == 0);
  auto down = ms_until_state(watchers, "c", "down", stopped_at, 10s);
  MESSAGE("SIGSTOP c: seen down after " << describe_times(down));
  CHECK(down.size() == watchers.size());
  // The connection stays open: only silence can tell, so allow for phi.
  for (const auto& [name, ms] : down)
    CHECK(ms < 5000);
  auto resumed_at = steady::now();
  REQUIRE(::kill(fl.process("c").pid(), SIGCONT) == 0);
  auto alive = ms_until_state(watchers, "c", "alive", resumed_at, 10s);
  MESSAGE("SIGCONT c: seen alive after " << describe_times(alive));
  CHECK(alive.size() == watchers.size());
}

TEST_CASE("a node of another cluster name is refused and never shown alive") {
  auto specs = make_specs(3);
  fleet fl{"t1", specs};
  fl.start("a");
  fl.start("b");
  REQUIRE(fl.wait_all_alive(10s));
  // Same nodes, same ports, another cluster name: c of "t1-other".
  auto other = fl.dir().write("other.toml", fleet_toml("t1-other", specs));
  auto& intruder = fl.start("c", other);
  auto watchers = fl.watchers_except("c");
  CHECK_FALSE(ever_in_state(watchers, "c", "alive", 3s));
  CHECK(intruder.running());
  CHECK(wait_until([&] { return !line_with(intruder.log_text(), "refused").empty(); }, 5s));
  MESSAGE("intruder: " << line_with(intruder.log_text(), "refused"));
  // The real fleet is undisturbed.
  CHECK(first_break({{"a", fl.http_port("a")}}, "b", "alive", 1s) == "");
  CHECK(first_break({{"b", fl.http_port("b")}}, "a", "alive", 1s) == "");
}
