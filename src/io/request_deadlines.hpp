// Cuts off HTTP clients that take too long to send a request. libmicrohttpd
// times out a connection only after a stretch of silence, so a client that
// sends one byte every few seconds could keep its connection, and one of the
// server's slots, for as long as it liked. Here every request, head and body,
// must arrive within `limit` of the connection opening or of the previous
// answer going out; the handler's own time does not count.
//
// A connection past its deadline is shut down (shutdown(2), not close: the
// descriptor stays the server's to close, so it cannot be reused under it),
// and the server then closes it as it would any connection the client
// dropped. All members are safe to call from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace brd::io {

class request_deadlines {
public:
  // `cut` runs on the watcher thread for each connection shut down.
  request_deadlines(std::chrono::milliseconds limit, std::function<void()> cut);

  // Stops the watcher; connections are left alone.
  ~request_deadlines();

  request_deadlines(const request_deadlines&) = delete;
  request_deadlines& operator=(const request_deadlines&) = delete;

  // `conn` was opened on descriptor `fd`; its first request's clock starts.
  void opened(const void* conn, int fd);
  // Its request arrived whole: no deadline while the handler runs.
  void arrived(const void* conn);
  // Its answer went out: the next request's clock starts.
  void answered(const void* conn);
  // It was closed; forget it.
  void closed(const void* conn);

private:
  using clock = std::chrono::steady_clock;
  struct entry {
    int fd = -1;
    clock::time_point since;
    bool waiting = true; // for a request to arrive
    bool cut = false;
  };

  void watch();

  std::chrono::milliseconds limit_;
  std::function<void()> cut_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::unordered_map<const void*, entry> open_;
  std::thread watcher_;
};

} // namespace brd::io
