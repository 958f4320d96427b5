#include "io/http_server.hpp"
#include "io/http_text.hpp"

#include <atomic>
#include <cerrno>
#include <fcntl.h>
#include <mutex>
#include <optional>
#include <regex>
#include <sys/socket.h>
#include <system_error>
#include <thread>

#include <httplib.h>

#include "io/metrics.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"

namespace brd::io {

using detail::endpoint;
using detail::errno_text;
using detail::lower;

namespace {

std::string upper(std::string text) {
  for (auto& c : text)
    if (c >= 'a' && c <= 'z')
      c = static_cast<char>(c - 'a' + 'A');
  return text;
}

struct compiled_route {
  std::string method;
  std::regex pattern;
  http_handler handler;
};

http_response too_large(size_t max_body_bytes) {
  return http_error(413, "request body is larger than the limit of "
                           + std::to_string(max_body_bytes) + " bytes");
}

// The text for errors that httplib answers itself, before any route runs.
std::string protocol_error_text(int status, const std::string& path) {
  switch (status) {
    case 400: return "malformed HTTP request";
    case 404: return "no such endpoint: " + path;
    case 414: return "request URI is too long";
    default: return "request failed with HTTP status " + std::to_string(status);
  }
}

void write_response(httplib::Response& res, const http_response& answer) {
  res.status = answer.status;
  for (const auto& [name, value] : answer.headers)
    res.set_header(name, value);
  res.set_content(answer.body, answer.content_type.c_str());
}

http_request to_request(const httplib::Request& req) {
  http_request out;
  out.method = req.method;
  out.path = req.path;
  for (const auto& [name, value] : req.headers) {
    auto [it, fresh] = out.headers.emplace(lower(name), value);
    if (!fresh) // repeated header: RFC 9110 list syntax
      it->second += ", " + value;
  }
  for (const auto& [name, value] : req.params)
    out.params.emplace(name, value);
  return out;
}

// Only SO_REUSEADDR: httplib's default adds SO_REUSEPORT, which would let a
// second server bind the same port silently.
void listener_socket_options(int sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  fcntl(sock, F_SETFD, FD_CLOEXEC);
}

caf::error listen_error(const std::string& host, uint16_t port, int err) {
  std::string why;
  std::string fix;
  switch (err) {
    case 0:
      why = "the address cannot be resolved or bound";
      fix = "check the host name in the fleet file";
      break;
    case EADDRINUSE:
      fix = "choose another http_port or stop the other process";
      break;
    case EACCES:
      fix = "choose a port above 1023 or grant brnode CAP_NET_BIND_SERVICE";
      break;
    case EADDRNOTAVAIL:
      fix = "use an address of this machine, or 0.0.0.0";
      break;
    default:
      fix = "check the http host and port in the fleet file";
  }
  if (why.empty())
    why = errno_text(err);
  return make_error(brd_errc::io_failure, "cannot listen for HTTP on " + endpoint(host, port)
                                            + ": " + why + "; fix: " + fix);
}

} // namespace

// -- server -------------------------------------------------------------------

struct http_server::impl {
  httplib::Server server;
  std::vector<compiled_route> routes;
  size_t max_body_bytes = 0;
  uint16_t port = 0;
  std::string address; // host:port, for the log
  std::atomic<metrics_registry*> metrics{nullptr};
  std::thread listener;
  std::atomic<bool> listen_returned{false};
  std::mutex stop_mutex;

  void configure(size_t threads);
  void answer_protocol_errors();
  void route_everything_to_serve();
  void serve(const httplib::Request& req, httplib::Response& res,
             const httplib::ContentReader* reader) const;
  std::optional<std::string> read_body(const httplib::Request& req, httplib::Response& res,
                                       const httplib::ContentReader& reader) const;
  http_response dispatch(http_request& request) const;
  void count(const httplib::Request& req, const httplib::Response& res) const;
};

void http_server::impl::configure(size_t threads) {
  threads = std::max<size_t>(threads, 1);
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_socket_options(listener_socket_options);
  server.set_tcp_nodelay(true); // headers and body go out in separate writes
  server.set_keep_alive_timeout(2);
  server.set_read_timeout(5);
  server.set_write_timeout(5);
  // httplib enforces this for Content-Length bodies (413, body drained);
  // read_body() enforces it for chunked ones.
  server.set_payload_max_length(max_body_bytes);
  answer_protocol_errors();
  route_everything_to_serve();
}

void http_server::impl::answer_protocol_errors() {
  server.set_expect_100_continue_handler(
    [this](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value<uint64_t>("Content-Length") <= max_body_bytes)
        return 100;
      res.status = 413; // answered without reading the body; the error
      return 413;       // handler below writes the JSON
    });
  // Fills a JSON body into errors httplib answers itself (this way httplib
  // also sets Content-Length); responses from serve() always carry a
  // Content-Type and are left alone.
  server.set_error_handler(httplib::Server::HandlerWithResponse{
    [this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty() || res.has_header("Content-Type"))
        return httplib::Server::HandlerResponse::Unhandled;
      write_response(res, res.status == 413 ? too_large(max_body_bytes)
                                            : http_error(res.status, protocol_error_text(
                                                                       res.status, req.path)));
      return httplib::Server::HandlerResponse::Handled;
    }});
}

void http_server::impl::route_everything_to_serve() {
  server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    count(req, res);
  });
  auto plain = [this](const httplib::Request& req, httplib::Response& res) {
    serve(req, res, nullptr);
  };
  auto with_body = [this](const httplib::Request& req, httplib::Response& res,
                          const httplib::ContentReader& reader) { serve(req, res, &reader); };
  // Every request reaches serve(), which routes by our own table.
  server.Get(".*", plain);
  server.Options(".*", plain);
  server.Delete(".*", plain); // DELETE without a body
  server.Delete(".*", with_body);
  server.Post(".*", with_body);
  server.Put(".*", with_body);
  server.Patch(".*", with_body);
}

void http_server::impl::serve(const httplib::Request& req, httplib::Response& res,
                              const httplib::ContentReader* reader) const {
  auto request = to_request(req);
  if (reader != nullptr) {
    auto body = read_body(req, res, *reader);
    if (!body)
      return;
    request.body = std::move(*body);
  }
  write_response(res, dispatch(request));
}

std::optional<std::string>
http_server::impl::read_body(const httplib::Request& req, httplib::Response& res,
                             const httplib::ContentReader& reader) const {
  auto refuse = [&res](http_response answer) {
    // The rest of the body is still on the wire: do not reuse the connection.
    answer.headers.emplace_back("Connection", "close");
    write_response(res, answer);
    return std::nullopt;
  };
  if (req.is_multipart_form_data())
    return refuse(http_error(415, "multipart bodies are not supported"));
  std::string body;
  bool over_limit = false;
  bool complete = reader([&](const char* data, size_t size) {
    if (size > max_body_bytes - body.size()) {
      over_limit = true;
      return false;
    }
    body.append(data, size);
    return true;
  });
  if (over_limit || res.status == 413) // httplib sets 413 from Content-Length
    return refuse(too_large(max_body_bytes));
  if (!complete)
    return refuse(http_error(400, "the request body could not be read"));
  return body;
}

http_response http_server::impl::dispatch(http_request& request) const {
  auto method = request.method == "HEAD" ? std::string{"GET"} : request.method;
  std::string allowed;
  for (const auto& route : routes) {
    std::smatch groups;
    if (!std::regex_match(request.path, groups, route.pattern))
      continue;
    if (route.method != method) {
      allowed += (allowed.empty() ? "" : ", ") + route.method;
      continue;
    }
    for (size_t i = 1; i < groups.size(); ++i)
      request.captures.push_back(groups[i].str());
    try {
      return route.handler(request);
    } catch (const std::exception& err) {
      log::http()->error("{} {} failed: {}", request.method, request.path, err.what());
    } catch (...) {
      log::http()->error("{} {} failed with a non-standard exception", request.method,
                         request.path);
    }
    return http_error(500, "internal error while serving " + request.method + " "
                             + request.path + "; the node's log has details");
  }
  if (allowed.empty())
    return http_error(404, "no such endpoint: " + request.path);
  auto answer = http_error(405, "method " + request.method + " is not allowed on "
                                  + request.path + "; allowed: " + allowed);
  answer.headers.emplace_back("Allow", allowed);
  return answer;
}

void http_server::impl::count(const httplib::Request& req, const httplib::Response& res) const {
  log::http()->debug("{} {} -> {}", req.method, req.path, res.status);
  if (auto* registry = metrics.load())
    registry
      ->counter("brnode_http_requests_total", "HTTP requests answered, by status code.",
                {{"code", std::to_string(res.status)}})
      .inc();
}

caf::expected<std::unique_ptr<http_server>>
http_server::start(const std::string& host, uint16_t port, std::vector<http_route> routes,
                   size_t max_body_bytes, size_t threads) {
  auto state = std::make_unique<impl>();
  for (auto& route : routes) {
    try {
      state->routes.push_back(
        {upper(route.method), std::regex(route.pattern), std::move(route.handler)});
    } catch (const std::regex_error& err) {
      return make_error(brd_errc::bad_config, "HTTP route pattern \"" + route.pattern
                                                + "\" is not a valid regex: " + err.what());
    }
  }
  state->max_body_bytes = max_body_bytes;
  state->configure(threads);
  errno = 0;
  int bound = port == 0 ? state->server.bind_to_any_port(host)
                        : (state->server.bind_to_port(host, port) ? port : -1);
  if (bound < 0)
    return listen_error(host, port, errno);
  state->port = static_cast<uint16_t>(bound);
  state->address = endpoint(host, state->port);
  state->listener = std::thread([raw = state.get()] {
    raw->server.listen_after_bind();
    raw->listen_returned = true;
  });
  log::http()->info("HTTP listening on {}", state->address);
  return std::unique_ptr<http_server>(new http_server(std::move(state)));
}

http_server::http_server(std::unique_ptr<impl> state) : impl_(std::move(state)) {
}

http_server::~http_server() {
  stop();
}

uint16_t http_server::port() const {
  return impl_->port;
}

void http_server::set_metrics(metrics_registry* registry) {
  impl_->metrics = registry;
}

void http_server::stop() {
  std::lock_guard guard{impl_->stop_mutex};
  if (!impl_->listener.joinable())
    return;
  // httplib's stop() does nothing until its loop runs, and must run once.
  while (!impl_->server.is_running() && !impl_->listen_returned)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!impl_->listen_returned)
    impl_->server.stop();
  impl_->listener.join();
  log::http()->info("HTTP on {} stopped", impl_->address);
}

// -- shared helpers -------------------------------------------------------------

std::string json_escape(const std::string& text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

http_response http_error(int status, const std::string& message) {
  http_response answer;
  answer.status = status;
  answer.body = "{\"error\":\"" + json_escape(message) + "\"}";
  return answer;
}

} // namespace brd::io
