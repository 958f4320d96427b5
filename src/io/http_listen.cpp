#include "io/http_listen.hpp"
#include "io/http_text.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/errors.hpp"

namespace brd::io {

using detail::endpoint;
using detail::errno_text;

namespace {

caf::error listen_error(const std::string& host, uint16_t port, int err) {
  std::string why;
  std::string fix;
  switch (err) {
    case 0:
      why = "the address cannot be resolved or bound";
      fix = "check the host name in the fleet file";
      break;
    case EADDRINUSE:
      fix = "choose another http_port or stop the other process";
      break;
    case EACCES:
      fix = "choose a port above 1023 or grant brnode CAP_NET_BIND_SERVICE";
      break;
    case EADDRNOTAVAIL:
      fix = "use an address of this machine, or 0.0.0.0";
      break;
    default:
      fix = "check the http host and port in the fleet file";
  }
  if (why.empty())
    why = errno_text(err);
  return make_error(brd_errc::io_failure, "cannot listen for HTTP on " + endpoint(host, port)
                                            + ": " + why + "; fix: " + fix);
}

} // namespace

caf::expected<int> http_listen(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0)
    return listen_error(host, port, 0);
  int err = 0;
  for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
      freeaddrinfo(found);
      return fd;
    }
    err = errno;
    close(fd);
  }
  freeaddrinfo(found);
  return listen_error(host, port, err);
}

uint16_t bound_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return 0;
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

} // namespace brd::io
