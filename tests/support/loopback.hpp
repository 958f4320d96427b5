// Raw client connections to a server on this machine, for tests that must
// send exactly the bytes they choose (partial requests, slow clients).
// Header-only: unit and cluster tests may include it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstdint>
#include <string>

#include <doctest/doctest.h>

namespace brd_test {

// A connection to 127.0.0.1:`port` whose reads give up after 5 s. The
// caller closes it.
inline int open_loopback(uint16_t port) {
  int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(sock >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  REQUIRE(::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return sock;
}

// Sends what it can of `raw`; the server may stop reading early.
inline void send_all(int sock, const std::string& raw) {
  size_t sent = 0;
  while (sent < raw.size()) {
    auto n = ::send(sock, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      break;
    sent += static_cast<size_t>(n);
  }
}

} // namespace brd_test
