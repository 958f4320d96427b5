// A small HTTP/1.1 server for a node's operator endpoints and webhooks, and a
// blocking client for tools and tests. libmicrohttpd does the server's
// protocol work and cpp-httplib the client's; both stay inside src/io.
//
// Routes are tried in order; a route's pattern must match the whole decoded
// path (std::regex_match) and its groups become http_request::captures. The
// server, not the handler, answers these cases, always with a JSON body
// {"error":"..."}:
//   404 no route matches the path      405 a route matches, but not the method
//   413 the body is over max_body_bytes (Content-Length or chunked); the
//       handler is never called        500 the handler threw (logged)
//   503 the server is stopping
// A request HTTP itself cannot parse gets libmicrohttpd's own 400 page.
//
// One thread reads and writes every connection, so clients that are idle or
// slow (a header byte a second) cost a descriptor, not a thread. Connections
// idle for 10 s are closed, and so are those whose request (head and body)
// has not arrived whole within `request_deadline` of the connection opening
// or of the previous answer; at most 256 are open, 64 from one address. A
// complete request runs its handler on one of the server's worker threads,
// possibly several at once; a handler that blocks holds only its worker.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

namespace brd::io {

class metrics_registry;

struct http_request {
  std::string method; // upper case; HEAD is served by GET routes
  std::string path;   // decoded, without the query
  std::string body;
  std::map<std::string, std::string> headers; // lower-case names
  std::map<std::string, std::string> params;  // query; first value wins
  std::vector<std::string> captures;          // the route's regex groups
};

struct http_response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers; // extra headers
};

using http_handler = std::function<http_response(const http_request&)>;

struct http_route {
  std::string method;  // "GET", "POST", ...
  std::string pattern; // regex over the whole path, e.g. "/api/deployments/([^/]+)"
  http_handler handler;
};

// `{"error":"<message>"}` with the given status.
http_response http_error(int status, const std::string& message);

// Escapes `text` for use inside a JSON string literal (no quotes added).
std::string json_escape(const std::string& text);

class http_server {
public:
  // Binds host:port before returning, so a taken port is an error here
  // (brd_errc::io_failure naming the address and a fix), then runs handlers
  // on `threads` worker threads. Port 0 picks a free port; see port(). A route
  // pattern that is not a valid regex is brd_errc::bad_config.
  static caf::expected<std::unique_ptr<http_server>>
  start(const std::string& host, uint16_t port, std::vector<http_route> routes,
        size_t max_body_bytes = 25u << 20, size_t threads = 4,
        std::chrono::milliseconds request_deadline = std::chrono::seconds{30});

  // Stops and joins, like stop().
  ~http_server();

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  // The bound port (the real one when started with port 0).
  uint16_t port() const;

  // Counts every answered request in brnode_http_requests_total{code="..."},
  // shows open connections and busy workers (brnode_http_connections,
  // brnode_http_requests_waiting, brnode_http_requests_running) and counts
  // connections cut off at their deadline (brnode_http_cut_off_total). The
  // registry must outlive the server (nullptr stops counting). Call once.
  void set_metrics(metrics_registry* registry);

  // Closes the listening socket and waits for in-flight requests. Idempotent.
  void stop();

private:
  struct impl;
  explicit http_server(std::unique_ptr<impl> state);
  std::unique_ptr<impl> impl_;
};

// Blocking client calls, one connection each. A failure to connect is
// brd_errc::io_failure "cannot reach HOST:PORT: <reason>"; running out of
// `timeout` (applied to connecting, sending and each read) is
// brd_errc::timeout. Any HTTP status is a successful call. Response header
// names are lower case.
caf::expected<http_response> http_get(const std::string& host, uint16_t port,
                                      const std::string& path,
                                      std::chrono::milliseconds timeout);

// Sends `body` with Content-Type application/json unless `headers` names
// another content-type.
caf::expected<http_response>
http_post(const std::string& host, uint16_t port, const std::string& path,
          const std::string& body,
          const std::vector<std::pair<std::string, std::string>>& headers,
          std::chrono::milliseconds timeout);

} // namespace brd::io
