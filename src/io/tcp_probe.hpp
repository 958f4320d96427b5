// A TCP reachability check with a timeout. CAF's connect blocks for as long
// as the kernel retries an unreachable host (minutes for a powered-off Pi);
// probing first bounds that wait.
//
// The probe's connection stays open until its owner drops the returned
// hold, which must outlive the CAF connect that follows. Closed at once,
// the node could accept the real connection on the descriptor number the
// probe just freed, and CAF 0.17's BASP broker, handling the probe's close
// afterwards, forgets the real connection's route: requests still reach
// the node and every reply is dropped (docs/NOTES.md, "the brsh connect
// flake"). Over TLS the node fails the probe's handshake when it closes;
// that is harmless since io/openssl_clean_queue.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/expected.hpp>

namespace brd::io {

// An open probe connection, closed when destroyed. Move-only.
class probe_hold {
public:
  probe_hold() = default;
  explicit probe_hold(int fd) : fd_(fd) {
  }
  probe_hold(probe_hold&& other) noexcept;
  probe_hold& operator=(probe_hold&& other) noexcept;
  probe_hold(const probe_hold&) = delete;
  probe_hold& operator=(const probe_hold&) = delete;
  ~probe_hold();

  int fd() const {
    return fd_;
  }

private:
  int fd_ = -1;
};

// The open connection, when host:port accepted one within `timeout`;
// otherwise an error whose text says what happened.
caf::expected<probe_hold> tcp_probe(const std::string& host, uint16_t port,
                                    std::chrono::milliseconds timeout);

} // namespace brd::io
