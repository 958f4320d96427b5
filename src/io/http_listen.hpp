// The HTTP server's listening socket: bound and listening before the server
// starts, so that a taken port is an error with the address and a fix.
#pragma once

#include <cstdint>
#include <string>

#include <caf/expected.hpp>

namespace brd::io {

// A socket listening on host:port (port 0: any free port), close-on-exec,
// with SO_REUSEADDR only (SO_REUSEPORT would let a second server bind the same
// port silently). Errors are brd_errc::io_failure "cannot listen for HTTP on
// HOST:PORT: <why>; fix: <what to change>".
caf::expected<int> http_listen(const std::string& host, uint16_t port);

// The port `fd` is bound to (0 if it cannot be read).
uint16_t bound_port(int fd);

} // namespace brd::io
