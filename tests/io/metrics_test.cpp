#include "io/metrics.hpp"

#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

using brd::io::metrics_registry;

TEST_CASE("a counter renders one HELP, one TYPE and its labelled samples") {
  metrics_registry reg;
  reg.counter("brnode_http_requests_total", "HTTP requests by code.", {{"code", "200"}}).add(3);
  reg.counter("brnode_http_requests_total", "ignored", {{"code", "404"}}).inc();
  CHECK(reg.render()
        == "# HELP brnode_http_requests_total HTTP requests by code.\n"
           "# TYPE brnode_http_requests_total counter\n"
           "brnode_http_requests_total{code=\"200\"} 3\n"
           "brnode_http_requests_total{code=\"404\"} 1\n");
}

TEST_CASE("families render in name order and gauges keep fractional values") {
  metrics_registry reg;
  reg.gauge("zeta", "Last.").set(-2.5);
  reg.gauge("alpha", "First.").set(0.1);
  reg.counter("mid_total", "Middle.");
  CHECK(reg.render()
        == "# HELP alpha First.\n# TYPE alpha gauge\nalpha 0.1\n"
           "# HELP mid_total Middle.\n# TYPE mid_total counter\nmid_total 0\n"
           "# HELP zeta Last.\n# TYPE zeta gauge\nzeta -2.5\n");
}

TEST_CASE("label values escape backslash, double quote and newline; help escapes two") {
  metrics_registry reg;
  reg.gauge("g", "a \\ b\nc \"q\"", {{"path", "C:\\x \"y\"\nz"}}).set(1);
  CHECK(reg.render()
        == "# HELP g a \\\\ b\\nc \"q\"\n"
           "# TYPE g gauge\n"
           "g{path=\"C:\\\\x \\\"y\\\"\\nz\"} 1\n");
}

TEST_CASE("a histogram renders cumulative buckets up to +Inf, then sum and count") {
  metrics_registry reg;
  // Unsorted, duplicated bounds are cleaned up.
  auto& hist = reg.histogram("brnode_deploy_seconds", "Deploy time.", {1, 0.5, 1},
                             {{"tier", "pi"}});
  hist.observe(0.25); // <= 0.5
  hist.observe(0.5);  // <= 0.5: le is inclusive
  hist.observe(0.75); // <= 1
  hist.observe(30);   // +Inf only
  CHECK(reg.render()
        == "# HELP brnode_deploy_seconds Deploy time.\n"
           "# TYPE brnode_deploy_seconds histogram\n"
           "brnode_deploy_seconds_bucket{tier=\"pi\",le=\"0.5\"} 2\n"
           "brnode_deploy_seconds_bucket{tier=\"pi\",le=\"1\"} 3\n"
           "brnode_deploy_seconds_bucket{tier=\"pi\",le=\"+Inf\"} 4\n"
           "brnode_deploy_seconds_sum{tier=\"pi\"} 31.5\n"
           "brnode_deploy_seconds_count{tier=\"pi\"} 4\n");
}

TEST_CASE("the same name and labels in any order return the same instrument") {
  metrics_registry reg;
  auto& first = reg.gauge("peers", "Peers.", {{"tier", "pi"}, {"state", "alive"}});
  auto& again = reg.gauge("peers", "Peers.", {{"state", "alive"}, {"tier", "pi"}});
  auto& other = reg.gauge("peers", "Peers.", {{"state", "down"}, {"tier", "pi"}});
  CHECK(&first == &again);
  CHECK(&first != &other);
  // Creating more series does not move existing ones.
  for (int i = 0; i < 100; ++i)
    reg.gauge("peers", "Peers.", {{"state", std::to_string(i)}});
  CHECK(&reg.gauge("peers", "Peers.", {{"tier", "pi"}, {"state", "alive"}}) == &first);
}

TEST_CASE("counters ignore negative amounts; invalid name characters become underscores") {
  metrics_registry reg;
  auto& c = reg.counter("bad-name.total", "Help.");
  c.add(2);
  c.add(-5);
  CHECK(c.value() == 2);
  CHECK(reg.render() == "# HELP bad_name_total Help.\n# TYPE bad_name_total counter\n"
                        "bad_name_total 2\n");
}

TEST_CASE("a name reused with another type gets a working but unexported instrument") {
  metrics_registry reg;
  reg.counter("x", "A counter.").inc();
  auto& g = reg.gauge("x", "Not a counter.");
  g.set(7);
  CHECK(g.value() == 7);
  CHECK(&reg.gauge("x", "Not a counter.") == &g);
  CHECK(reg.render() == "# HELP x A counter.\n# TYPE x counter\nx 1\n");
}

TEST_CASE("increments from many threads sum exactly") {
  metrics_registry reg;
  constexpr int threads = 8;
  constexpr int per_thread = 20000;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&reg, t] {
      auto& c = reg.counter("hits_total", "Hits.");
      auto& g = reg.gauge("level", "Level.");
      auto& h = reg.histogram("size", "Size.", {10}, {{"worker", std::to_string(t % 2)}});
      for (int i = 0; i < per_thread; ++i) {
        c.inc();
        g.add(2);
        h.observe(i % 2 == 0 ? 1 : 100);
      }
    });
  for (auto& w : workers)
    w.join();
  CHECK(reg.counter("hits_total", "Hits.").value() == threads * per_thread);
  CHECK(reg.gauge("level", "Level.").value() == 2.0 * threads * per_thread);
  auto snap = reg.histogram("size", "Size.", {10}, {{"worker", "0"}}).read();
  CHECK(snap.count == threads / 2 * per_thread);
  CHECK(snap.cumulative[0] == threads / 2 * per_thread / 2);
  CHECK(snap.sum == 101.0 * threads / 2 * per_thread / 2);
}

TEST_CASE("collect callbacks run before rendering and may create instruments") {
  metrics_registry reg;
  int runs = 0;
  reg.on_collect([&runs](metrics_registry& r) {
    ++runs;
    r.gauge("brnode_peers", "Peers by state.", {{"state", "alive"}}).set(runs * 10);
    if (runs == 1) // registering from inside a callback must not deadlock
      r.on_collect([](metrics_registry& inner) { inner.gauge("late", "Late.").set(1); });
  });
  CHECK(reg.render()
        == "# HELP brnode_peers Peers by state.\n# TYPE brnode_peers gauge\n"
           "brnode_peers{state=\"alive\"} 10\n");
  CHECK(reg.render()
        == "# HELP brnode_peers Peers by state.\n# TYPE brnode_peers gauge\n"
           "brnode_peers{state=\"alive\"} 20\n"
           "# HELP late Late.\n# TYPE late gauge\nlate 1\n");
}

TEST_CASE("a throwing collect callback does not stop the scrape") {
  metrics_registry reg;
  reg.on_collect([](metrics_registry&) { throw std::runtime_error("sensor gone"); });
  reg.on_collect([](metrics_registry& r) { r.gauge("after", "After.").set(1); });
  CHECK(reg.render() == "# HELP after After.\n# TYPE after gauge\nafter 1\n");
}

TEST_CASE("special values use the exposition spellings") {
  metrics_registry reg;
  constexpr double inf = std::numeric_limits<double>::infinity();
  reg.gauge("a", "A.").set(inf);
  reg.gauge("b", "B.").set(-inf);
  reg.gauge("c", "C.").set(std::numeric_limits<double>::quiet_NaN());
  reg.gauge("d", "D.").set(1e20);
  reg.gauge("e", "E.").set(1234567);
  CHECK(reg.render()
        == "# HELP a A.\n# TYPE a gauge\na +Inf\n"
           "# HELP b B.\n# TYPE b gauge\nb -Inf\n"
           "# HELP c C.\n# TYPE c gauge\nc NaN\n"
           "# HELP d D.\n# TYPE d gauge\nd 1e+20\n"
           "# HELP e E.\n# TYPE e gauge\ne 1234567\n");
}
