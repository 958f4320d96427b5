// The status poster against a local recorder standing in for GitHub.
#include "actors/status_poster.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "../cluster/recorder.hpp"

using namespace brd;
using namespace std::chrono_literals;

namespace {

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  test::recorder github;

  poster_actor spawn(std::string token = "t0ken") {
    poster_options opts;
    opts.api_url = github.url() + "/api/v3/";
    opts.token = std::move(token);
    opts.backoff_min = 20ms;
    opts.backoff_max = 100ms;
    return spawn_status_poster(sys, opts);
  }

  commit_status status(std::string state, std::string context = "blackroad/deploy") {
    return {"blackroad/site", std::string(40, 'a'), std::move(state), std::move(context),
            "deploying", "http://edge/deployments/d-1"};
  }

  std::vector<std::string> states_of(const std::string& context) {
    std::vector<std::string> out;
    for (const auto& r : github.requests("/api/v3/repos/blackroad/site/statuses/"))
      if (r.json().value("context", "") == context)
        out.push_back(r.json().value("state", ""));
    return out;
  }
};

} // namespace

TEST_CASE("commit statuses go to the API with the token, in order per context") {
  fixture f;
  auto poster = f.spawn();
  caf::anon_send(poster, f.status("pending"));
  caf::anon_send(poster, f.status("pending", "blackroad/deploy/frontend"));
  caf::anon_send(poster, f.status("success"));
  caf::anon_send(poster, f.status("success", "blackroad/deploy/frontend"));
  REQUIRE(f.github.wait_for([](auto& rs) { return rs.size() == 4; }, 5s));
  CHECK(f.states_of("blackroad/deploy") == std::vector<std::string>{"pending", "success"});
  CHECK(f.states_of("blackroad/deploy/frontend")
        == std::vector<std::string>{"pending", "success"});
  auto first = f.github.requests().front();
  CHECK(first.method == "POST");
  CHECK(first.path == "/api/v3/repos/blackroad/site/statuses/" + std::string(40, 'a'));
  CHECK(first.headers["authorization"] == "Bearer t0ken");
  CHECK(first.json()["target_url"] == "http://edge/deployments/d-1");
  caf::anon_send_exit(poster, caf::exit_reason::user_shutdown);
}

TEST_CASE("a status GitHub refuses with 5xx is retried with backoff until it lands") {
  fixture f;
  f.github.fail_next(3, 502);
  auto poster = f.spawn();
  caf::anon_send(poster, f.status("success"));
  REQUIRE(f.github.wait_for([](auto& rs) { return rs.size() == 4; }, 5s));
  CHECK(f.states_of("blackroad/deploy") == std::vector<std::string>(4, "success"));
  auto rs = f.github.requests();
  auto gap = [&](size_t i) { return rs[i].at - rs[i - 1].at; };
  CHECK(gap(3) > gap(1)); // backoff grows
  // The recorder has the fourth request before the poster has its answer:
  // ask until the poster counted it.
  caf::scoped_actor self{f.sys};
  poster_stats stats;
  for (auto deadline = std::chrono::steady_clock::now() + 5s;
       stats.sent == 0 && std::chrono::steady_clock::now() < deadline;) {
    self->request(poster, 2s, get_atom::value)
      .receive([&stats](poster_stats& s) { stats = s; },
               [](caf::error& err) { FAIL(caf::to_string(err)); });
    if (stats.sent == 0)
      std::this_thread::sleep_for(10ms);
  }
  CHECK(stats.sent == 1);
  CHECK(stats.retried == 3);
  caf::anon_send_exit(poster, caf::exit_reason::user_shutdown);
}

TEST_CASE("a failing older status is dropped once a newer one of its context waits") {
  fixture f;
  f.github.fail_next(1, 503);
  auto poster = f.spawn();
  caf::anon_send(poster, f.status("pending"));
  caf::anon_send(poster, f.status("failure"));
  REQUIRE(f.github.wait_for([](auto& rs) { return rs.size() >= 2; }, 5s));
  std::this_thread::sleep_for(300ms);
  CHECK(f.states_of("blackroad/deploy") == std::vector<std::string>{"pending", "failure"});
  caf::anon_send_exit(poster, caf::exit_reason::user_shutdown);
}

TEST_CASE("without a token no status is posted, and 4xx answers are not retried") {
  fixture f;
  auto silent = f.spawn("");
  caf::anon_send(silent, f.status("pending"));
  std::this_thread::sleep_for(200ms);
  CHECK(f.github.requests().empty());
  f.github.fail_next(1, 422);
  auto poster = f.spawn();
  caf::anon_send(poster, f.status("pending"));
  std::this_thread::sleep_for(300ms);
  CHECK(f.github.requests().size() == 1);
  caf::anon_send_exit(silent, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(poster, caf::exit_reason::user_shutdown);
}
