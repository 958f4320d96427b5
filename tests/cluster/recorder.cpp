#include "recorder.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <httplib.h>

namespace brd::test {

nlohmann::json recorded_request::json() const {
  return nlohmann::json::parse(body, nullptr, false);
}

struct recorder::impl {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  mutable std::mutex mtx;
  std::vector<recorded_request> seen;
  int status = 201;
  int failing = 0;
  int fail_status = 503;

  void handle(const httplib::Request& req, httplib::Response& res) {
    recorded_request r{req.method, req.path, req.body, {}, std::chrono::steady_clock::now()};
    for (const auto& [name, value] : req.headers) {
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      r.headers[lower] = value;
    }
    std::lock_guard<std::mutex> guard{mtx};
    seen.push_back(std::move(r));
    res.status = failing > 0 ? fail_status : status;
    if (failing > 0)
      --failing;
    res.set_content("{\"recorded\":true}", "application/json");
  }
};

recorder::recorder() : impl_(std::make_unique<impl>()) {
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    impl_->handle(req, res);
  };
  impl_->server.Post(".*", handler);
  impl_->server.Get(".*", handler);
  impl_->server.Put(".*", handler);
  impl_->server.Patch(".*", handler);
  impl_->port = impl_->server.bind_to_any_port("127.0.0.1");
  if (impl_->port <= 0)
    throw std::runtime_error("recorder: cannot bind a port on 127.0.0.1");
  impl_->thread = std::thread{[this] { impl_->server.listen_after_bind(); }};
  while (!impl_->server.is_running())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

recorder::~recorder() {
  impl_->server.stop();
  if (impl_->thread.joinable())
    impl_->thread.join();
}

uint16_t recorder::port() const {
  return static_cast<uint16_t>(impl_->port);
}

std::string recorder::url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port);
}

std::vector<recorded_request> recorder::requests(const std::string& prefix) const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  std::vector<recorded_request> out;
  for (const auto& r : impl_->seen)
    if (r.path.rfind(prefix, 0) == 0)
      out.push_back(r);
  return out;
}

void recorder::set_status(int status) {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  impl_->status = status;
}

void recorder::fail_next(int n, int status) {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  impl_->failing = n;
  impl_->fail_status = status;
}

bool recorder::wait_for(const std::function<bool(const std::vector<recorded_request>&)>& pred,
                        std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred(requests()))
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

} // namespace brd::test
