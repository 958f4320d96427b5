// A local HTTP server that records every request it receives and answers
// each with a fixed status: it stands in for GitHub's API and for an alert
// URL in cluster tests and benchmarks. Serves on 127.0.0.1, on a port
// chosen at start, from its own thread; stops on destruction.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace brd::test {

struct recorded_request {
  std::string method;
  std::string path;
  std::string body;
  std::map<std::string, std::string> headers; // lower-case names
  std::chrono::steady_clock::time_point at;

  // The body parsed as JSON (null when it is not JSON).
  nlohmann::json json() const;
};

class recorder {
public:
  recorder();
  ~recorder();
  recorder(const recorder&) = delete;
  recorder& operator=(const recorder&) = delete;

  uint16_t port() const;
  // "http://127.0.0.1:PORT"
  std::string url() const;

  // Every request so far, in arrival order; those whose path starts with
  // `prefix`.
  std::vector<recorded_request> requests(const std::string& prefix = "") const;

  // The status to answer with from now on (default 201); the next `n`
  // requests get `status` instead, then the default again.
  void set_status(int status);
  void fail_next(int n, int status = 503);

  // Polls until `pred` holds for the requests so far, or `timeout` passes.
  bool wait_for(const std::function<bool(const std::vector<recorded_request>&)>& pred,
                std::chrono::milliseconds timeout) const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace brd::test
