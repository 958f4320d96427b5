#include "io/tcp_probe.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "runtime/errors.hpp"

namespace {

using namespace std::chrono_literals;

// A listening socket on a free loopback port.
struct listener {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  uint16_t port = 0;

  listener() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(fd, 4) == 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }

  ~listener() {
    ::close(fd);
  }

  // The next accepted connection.
  int accept_one() const {
    return ::accept(fd, nullptr, nullptr);
  }
};

// True when the peer of `fd` closed its end within `wait`.
bool closed_by_peer(int fd, std::chrono::milliseconds wait) {
  pollfd pfd{fd, POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(wait.count())) <= 0)
    return false;
  char byte = 0;
  return ::recv(fd, &byte, 1, 0) == 0;
}

} // namespace

TEST_CASE("a probe's connection stays open until its hold is dropped") {
  listener server;
  auto probe = brd::io::tcp_probe("127.0.0.1", server.port, 2000ms);
  REQUIRE(probe);
  int accepted = server.accept_one();
  REQUIRE(accepted >= 0);
  // Open while held, also after a move: the node must not be able to reuse
  // the descriptor for the connection that follows the probe.
  CHECK_FALSE(closed_by_peer(accepted, 100ms));
  auto moved = std::move(*probe);
  CHECK_FALSE(closed_by_peer(accepted, 100ms));
  moved = brd::io::probe_hold{};
  CHECK(closed_by_peer(accepted, 2000ms));
  ::close(accepted);
}

TEST_CASE("a probe of a port nobody listens on says the connection was refused") {
  uint16_t port = 0;
  {
    listener gone;
    port = gone.port;
  }
  auto probe = brd::io::tcp_probe("127.0.0.1", port, 2000ms);
  REQUIRE_FALSE(probe);
  CHECK(brd::describe(probe.error()).find("refused") != std::string::npos);
}

TEST_CASE("a probe of a host that does not resolve names the host") {
  auto probe = brd::io::tcp_probe("no-such-host.invalid", 80, 2000ms);
  REQUIRE_FALSE(probe);
  CHECK(brd::describe(probe.error()).find("cannot resolve no-such-host.invalid")
        != std::string::npos);
}
