#include "io/worker_pool.hpp"

#include <algorithm>

namespace brd::io {

worker_pool::worker_pool(size_t threads) {
  threads = std::max<size_t>(threads, 1);
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i)
    threads_.emplace_back([this] { run(); });
}

worker_pool::~worker_pool() {
  stop();
}

bool worker_pool::post(std::function<void()> job) {
  {
    std::lock_guard guard{mutex_};
    if (stopping_)
      return false;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void worker_pool::stop() {
  {
    std::lock_guard guard{mutex_};
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& thread : threads_)
    if (thread.joinable())
      thread.join();
}

void worker_pool::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock{mutex_};
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty())
        return; // stopping, and nothing left to run
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

} // namespace brd::io
