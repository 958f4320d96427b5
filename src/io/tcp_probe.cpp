#include "io/tcp_probe.hpp"

#include <cerrno>
#include <cstring>
#include <utility>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/errors.hpp"

namespace brd::io {

namespace {

caf::expected<probe_hold> probe_one(const addrinfo* ai,
                                    std::chrono::milliseconds timeout) {
  probe_hold sock{::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK,
                           ai->ai_protocol)};
  int fd = sock.fd();
  if (fd < 0)
    return make_error(brd_errc::io_failure, std::strerror(errno));
  if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
    return sock;
  if (errno != EINPROGRESS)
    return make_error(brd_errc::io_failure, std::strerror(errno));
  pollfd pfd{fd, POLLOUT, 0};
  auto n = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  if (n == 0)
    return make_error(brd_errc::timeout,
                      "no answer within " + std::to_string(timeout.count())
                        + " ms");
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (n < 0 || err != 0)
    return make_error(brd_errc::io_failure,
                      std::strerror(n < 0 ? errno : err));
  return sock;
}

} // namespace

probe_hold::probe_hold(probe_hold&& other) noexcept
  : fd_(std::exchange(other.fd_, -1)) {
}

probe_hold& probe_hold::operator=(probe_hold&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

probe_hold::~probe_hold() {
  if (fd_ >= 0)
    ::close(fd_);
}

caf::expected<probe_hold> tcp_probe(const std::string& host, uint16_t port,
                                    std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  auto port_str = std::to_string(port);
  if (auto rc = ::getaddrinfo(host.c_str(), port_str.c_str(), &hints, &found))
    return make_error(brd_errc::io_failure,
                      "cannot resolve " + host + ": " + gai_strerror(rc));
  caf::expected<probe_hold> last{make_error(brd_errc::io_failure,
                                            "no address for " + host)};
  for (auto ai = found; ai != nullptr; ai = ai->ai_next) {
    last = probe_one(ai, timeout);
    if (last)
      break;
  }
  ::freeaddrinfo(found);
  return last;
}

} // namespace brd::io
