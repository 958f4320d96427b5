#include "io/request_deadlines.hpp"

#include <algorithm>
#include <sys/socket.h>

namespace brd::io {

request_deadlines::request_deadlines(std::chrono::milliseconds limit, std::function<void()> cut)
  : limit_(limit), cut_(std::move(cut)) {
  watcher_ = std::thread([this] { watch(); });
}

request_deadlines::~request_deadlines() {
  {
    std::lock_guard guard{mutex_};
    stopping_ = true;
  }
  wake_.notify_all();
  watcher_.join();
}

void request_deadlines::opened(const void* conn, int fd) {
  std::lock_guard guard{mutex_};
  open_[conn] = entry{fd, clock::now()};
}

void request_deadlines::arrived(const void* conn) {
  std::lock_guard guard{mutex_};
  if (auto it = open_.find(conn); it != open_.end())
    it->second.waiting = false;
}

void request_deadlines::answered(const void* conn) {
  std::lock_guard guard{mutex_};
  if (auto it = open_.find(conn); it != open_.end()) {
    it->second.waiting = true;
    it->second.since = clock::now();
  }
}

void request_deadlines::closed(const void* conn) {
  std::lock_guard guard{mutex_};
  open_.erase(conn);
}

void request_deadlines::watch() {
  // Look a few times per limit: a connection is cut at most a quarter of the
  // limit (and at most a second) late.
  auto period = std::clamp<std::chrono::milliseconds>(limit_ / 4, std::chrono::milliseconds{20},
                                                      std::chrono::seconds{1});
  std::unique_lock lock{mutex_};
  while (!wake_.wait_for(lock, period, [this] { return stopping_; })) {
    auto now = clock::now();
    for (auto& [conn, e] : open_) {
      if (!e.waiting || e.cut || now - e.since < limit_)
        continue;
      // Under the lock: closed() cannot run meanwhile, so `fd` is still the
      // connection's (the server closes it only after telling us).
      ::shutdown(e.fd, SHUT_RDWR);
      e.cut = true;
      if (cut_)
        cut_();
    }
  }
}

} // namespace brd::io
