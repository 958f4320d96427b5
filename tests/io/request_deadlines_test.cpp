#include "io/request_deadlines.hpp"

#include <atomic>
#include <chrono>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>

using brd::io::request_deadlines;
using namespace std::chrono_literals;

namespace {

// Two ends of a connection: the server's (watched) and the client's.
struct connection {
  int server = -1, client = -1;
  connection() {
    int fds[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    server = fds[0];
    client = fds[1];
  }
  ~connection() {
    close(server);
    close(client);
  }
  // True once the server's end was shut down: the client reads end of file.
  bool cut() const {
    char byte;
    return recv(client, &byte, 1, MSG_DONTWAIT) == 0;
  }
};

} // namespace

// Polls `cut` for up to 5 s.
bool eventually_cut(const connection& c) {
  for (int i = 0; i < 500; ++i, std::this_thread::sleep_for(10ms))
    if (c.cut())
      return true;
  return false;
}

TEST_CASE("a connection whose request is not in by the deadline is shut down, once") {
  std::atomic<int> cuts{0};
  request_deadlines deadlines{1s, [&] { ++cuts; }};
  connection late, arrived, answered;
  auto begun = std::chrono::steady_clock::now();
  deadlines.opened(&late, late.server);
  deadlines.opened(&arrived, arrived.server);
  deadlines.opened(&answered, answered.server);
  deadlines.arrived(&arrived); // its handler runs past the deadline
  std::this_thread::sleep_for(600ms);
  deadlines.answered(&answered); // the next request's clock starts again
  REQUIRE(eventually_cut(late));
  CHECK(std::chrono::steady_clock::now() - begun >= 1s);
  CHECK_FALSE(answered.cut()); // not before 1.6 s
  REQUIRE(eventually_cut(answered));
  CHECK(std::chrono::steady_clock::now() - begun >= 1600ms);
  CHECK_FALSE(arrived.cut());
  CHECK(cuts == 2);
  deadlines.closed(&late);
  deadlines.closed(&answered);
  deadlines.closed(&arrived);
}

TEST_CASE("a closed connection is forgotten and never touched") {
  std::atomic<int> cuts{0};
  request_deadlines deadlines{50ms, [&] { ++cuts; }};
  connection c;
  deadlines.opened(&c, c.server);
  deadlines.closed(&c);
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(c.cut());
  CHECK(cuts == 0);
}
