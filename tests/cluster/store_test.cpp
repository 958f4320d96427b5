// A node's data directory belongs to one running brnode, and to one node.
#include <doctest/doctest.h>

#include "harness.hpp"

using namespace brd::test;

namespace {

bool live(uint16_t http_port) {
  return http_get_text(http_port, "/livez").status == 200;
}

} // namespace

TEST_CASE("a second brnode on the same data dir exits 73 and the first keeps serving") {
  fleet fl{"t1", make_specs(2)};
  auto& first = fl.start("a");
  REQUIRE(wait_until([&] { return live(fl.http_port("a")); }, 10s));
  auto second = run_brnode({"--config", fl.config_path(), "--name", "a", "--data-dir",
                            fl.data_dir("a")});
  INFO(second.output);
  CHECK(second.exit_code == 73);
  CHECK(second.output.find("already in use") != std::string::npos);
  CHECK(second.output.find(fl.data_dir("a")) != std::string::npos);
  CHECK(first.running());
  CHECK(live(fl.http_port("a")));
}

TEST_CASE("another node's data dir is refused with exit 73 naming its owner") {
  fleet fl{"t1", make_specs(2)};
  auto& a = fl.start("a");
  REQUIRE(wait_until([&] { return live(fl.http_port("a")); }, 10s));
  a.term();
  REQUIRE(a.wait_exit(5s) == 0);
  // b started on a's directory, after a stopped and released it.
  auto r = run_brnode({"--config", fl.config_path(), "--name", "b", "--data-dir",
                       fl.data_dir("a")});
  INFO(r.output);
  CHECK(r.exit_code == 73);
  CHECK(r.output.find("belongs to node 'a'") != std::string::npos);
  CHECK(r.output.find("fix: ") != std::string::npos);
}

TEST_CASE("a node keeps its identity across restarts: the incarnation grows by one") {
  fleet fl{"t1", make_specs(1)};
  uint64_t previous = 0;
  for (int run = 0; run < 3; ++run) {
    CAPTURE(run);
    auto& a = fl.start("a");
    REQUIRE(wait_until([&] { return live(fl.http_port("a")); }, 10s));
    auto row = member_row(fl.http_port("a"), "a");
    REQUIRE(row);
    auto incarnation = row->value("incarnation", uint64_t{0});
    CHECK(incarnation == previous + 1);
    previous = incarnation;
    if (run % 2 == 0) {
      a.term();
      REQUIRE(a.wait_exit(5s) == 0);
    } else {
      a.kill9();
    }
  }
}
