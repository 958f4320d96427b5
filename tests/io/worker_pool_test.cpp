#include "io/worker_pool.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

using brd::io::worker_pool;
using namespace std::chrono_literals;

TEST_CASE("posted jobs run, several at once, and stop runs what is queued before joining") {
  worker_pool pool{2};
  std::atomic<int> running{0}, most{0}, done{0};
  for (int i = 0; i < 6; ++i)
    REQUIRE(pool.post([&] {
      int now = ++running;
      for (int seen = most; now > seen && !most.compare_exchange_weak(seen, now);) {
      }
      std::this_thread::sleep_for(50ms);
      --running;
      ++done;
    }));
  pool.stop(); // the 4 still queued run before it returns
  CHECK(done == 6);
  CHECK(most == 2);
  CHECK_FALSE(pool.post([] {}));
  pool.stop(); // idempotent
}

TEST_CASE("one worker runs jobs in the order they were posted") {
  worker_pool pool{1};
  std::mutex mutex;
  std::vector<int> order;
  for (int i = 0; i < 20; ++i)
    pool.post([&, i] {
      std::lock_guard guard{mutex};
      order.push_back(i);
    });
  pool.stop();
  REQUIRE(order.size() == 20);
  for (int i = 0; i < 20; ++i)
    CHECK(order[i] == i);
}
