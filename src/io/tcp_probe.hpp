// A TCP reachability check with a timeout. CAF's connect blocks for as long
// as the kernel retries an unreachable host (minutes for a powered-off Pi);
// probing first bounds that wait.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/error.hpp>

namespace brd::io {

// Returns no error when a TCP connection to host:port was accepted within
// `timeout`; otherwise an error whose text says what happened.
caf::error tcp_probe(const std::string& host, uint16_t port,
                     std::chrono::milliseconds timeout);

} // namespace brd::io
