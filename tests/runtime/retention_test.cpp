#include "runtime/retention.hpp"

#include <doctest/doctest.h>

using namespace brd;

TEST_CASE("only final history older than the cutoff expires") {
  io::deployment_record d;
  d.state = "success";
  d.created_at_ms = 100;
  d.finished_at_ms = 200;
  CHECK(deployment_expired(d, 201));
  CHECK_FALSE(deployment_expired(d, 200));
  d.state = "pending"; // still followed by its dispatcher
  CHECK_FALSE(deployment_expired(d, 10'000));
  d.state = "failure";
  d.finished_at_ms = 0; // finished before the field existed: its creation counts
  CHECK(deployment_expired(d, 101));

  io::task_record t;
  t.queued_at_ms = 100;
  t.state = "running";
  CHECK_FALSE(task_expired(t, 10'000));
  for (auto state : {"succeeded", "failed", "timed_out", "unassigned", "superseded"}) {
    t.state = state;
    CHECK(task_expired(t, 101));
    CHECK_FALSE(task_expired(t, 100));
  }

  io::alert_record a;
  a.at_ms = 100;
  CHECK(alert_expired(a, 101));
  CHECK_FALSE(alert_expired(a, 100));
}

TEST_CASE("keys give their creation time; anything else gives none") {
  CHECK(key_time_ms("d-1764400000000-0001abcd", "d-") == 1764400000000);
  CHECK(key_time_ms("d-1764400000000-0001abcd/frontend@pi1", "d-") == 1764400000000);
  CHECK(key_time_ms("1764400000000/a-1", "") == 1764400000000);
  CHECK_FALSE(key_time_ms("delivery/abc", "d-"));
  CHECK_FALSE(key_time_ms("d-17644", "d-"));
  CHECK_FALSE(key_time_ms("d-17644000000x0-1", "d-"));
}

TEST_CASE("time buckets cover the oldest row to the cutoff, oldest first") {
  auto b = time_buckets("d-", 1764400000000, 1764600000000);
  CHECK(b == std::vector<std::string>{"d-17644", "d-17645", "d-17646"});
  CHECK(time_buckets("", 1764400000000, 1764400000001) == std::vector<std::string>{"17644"});
  CHECK(time_buckets("d-", 1764600000000, 1764400000000).empty());
  // Every key of a bucket starts with its prefix.
  auto key = std::string{"d-1764512345678-00ff00ff"};
  CHECK(key.rfind(time_buckets("d-", 1764512345678, 1764512345678).front(), 0) == 0);
}
