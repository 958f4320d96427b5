// A fixed set of threads that run posted jobs in order of posting. The HTTP
// server runs its handlers here, so that a handler that blocks (an ask to an
// actor, up to its timeout) holds a worker, never the thread that reads and
// writes every connection.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace brd::io {

class worker_pool {
public:
  explicit worker_pool(size_t threads);

  // Stops, like stop().
  ~worker_pool();

  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;

  // Queues `job`; false (and `job` dropped) once stop() has begun.
  bool post(std::function<void()> job);

  // Runs every job already queued, then joins the threads. Idempotent.
  void stop();

private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

} // namespace brd::io
