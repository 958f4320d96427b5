#include "io/http_server.hpp"
#include "io/http_text.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <system_error>
#include <unistd.h>

#include <microhttpd.h>

#include "io/http_listen.hpp"
#include "io/metrics.hpp"
#include "io/request_deadlines.hpp"
#include "io/worker_pool.hpp"
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
  // The pattern when it has no regex syntax: most routes are plain paths,
  // compared as strings instead of running std::regex on every request.
  std::optional<std::string> literal;
};

std::optional<std::string> literal_of(const std::string& pattern) {
  if (pattern.find_first_of(".[]{}()*+?^$|\\") != std::string::npos)
    return std::nullopt;
  return pattern;
}

http_response too_large(size_t max_body_bytes) {
  return http_error(413, "request body is larger than the limit of "
                           + std::to_string(max_body_bytes) + " bytes");
}

} // namespace

// -- server -------------------------------------------------------------------
//
// libmicrohttpd reads and writes every connection on one epoll thread, so an
// idle or slow client costs a descriptor and a little memory, never a thread:
// four clients that trickle a header byte a second used to hold all four of
// httplib's threads (and with them /health and the webhooks) for as long as
// they kept trickling. A complete request goes to the worker pool, its
// connection suspended until the handler's answer is ready.

namespace {

// Connections idle this long are closed (a keep-alive connection between
// requests, or a client that stopped sending half way).
constexpr unsigned idle_timeout_seconds = 10;
// Bounds on open connections, in all and per client address. Each costs a
// descriptor, and RocksDB and the peers' links need theirs.
constexpr unsigned max_connections = 256;
constexpr unsigned max_connections_per_address = 64;

// A chunked body over the limit is read to its end and dropped, so that the
// client gets its 413 (MHD can answer only before a body or after it); past
// this much more, the connection is closed unanswered.
uint64_t drain_limit(size_t max_body_bytes) {
  return std::max<uint64_t>(max_body_bytes, 1u << 20);
}

// What the server is doing now, for /metrics. Shared with the registry's
// collect callback, which may run after the server is gone.
struct http_load {
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> waiting{0}; // complete requests queued for a worker
  std::atomic<int64_t> running{0}; // handlers running
};

// One request, from its header to the answer sent.
struct exchange {
  http_request request;
  uint64_t received = 0;    // body bytes so far
  bool too_large = false;   // the body outgrew max_body_bytes
  bool answered = false;    // refused: MHD drops the rest of the request
  bool dispatched = false;  // handed to a worker; the connection is suspended
  std::optional<http_response> answer; // the worker's answer, once ready
};

MHD_Result add_header(void* cls, MHD_ValueKind, const char* name, const char* value) {
  auto& headers = *static_cast<std::map<std::string, std::string>*>(cls);
  auto [it, fresh] = headers.emplace(lower(name), value == nullptr ? "" : value);
  if (!fresh && value != nullptr) // repeated header: RFC 9110 list syntax
    it->second += std::string{", "} + value;
  return MHD_YES;
}

MHD_Result add_param(void* cls, MHD_ValueKind, const char* name, const char* value) {
  auto& params = *static_cast<std::map<std::string, std::string>*>(cls);
  params.emplace(name, value == nullptr ? "" : value); // the first value wins
  return MHD_YES;
}

http_request read_head(MHD_Connection* conn, const char* url, const char* method) {
  http_request out;
  out.method = upper(method);
  out.path = url;
  MHD_get_connection_values(conn, MHD_HEADER_KIND, &add_header, &out.headers);
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, &add_param, &out.params);
  return out;
}

std::optional<unsigned long long> content_length(const http_request& request) {
  auto it = request.headers.find("content-length");
  if (it == request.headers.end())
    return std::nullopt;
  try {
    return std::stoull(it->second);
  } catch (...) {
    return std::nullopt; // MHD itself refuses a malformed length
  }
}

void log_from_mhd(void*, const char* format, va_list args) {
  // Under a flood of connections MHD says so for each one refused: keep
  // the first line of every 10 seconds.
  static std::atomic<int64_t> last_ms{std::numeric_limits<int64_t>::min() / 2};
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
               .count();
  auto last = last_ms.load();
  if (now - last < 10'000 || !last_ms.compare_exchange_strong(last, now))
    return;
  char line[512];
  std::vsnprintf(line, sizeof line, format, args);
  std::string text{line};
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text.pop_back();
  log::http()->warn("HTTP: {}", text);
}

} // namespace

struct http_server::impl {
  std::vector<compiled_route> routes;
  size_t max_body_bytes = 0;
  uint16_t port = 0;
  std::string address; // host:port, for the log
  std::atomic<metrics_registry*> metrics{nullptr};
  std::unique_ptr<worker_pool> workers;
  std::shared_ptr<http_load> load = std::make_shared<http_load>();
  std::unique_ptr<request_deadlines> deadlines;
  MHD_Daemon* daemon = nullptr;
  std::mutex stop_mutex;

  static MHD_Result on_request(void* cls, MHD_Connection* conn, const char* url,
                               const char* method, const char* version,
                               const char* upload, size_t* upload_size, void** state);
  static void on_completed(void* cls, MHD_Connection* conn, void** state,
                           MHD_RequestTerminationCode code);
  static void on_connection(void* cls, MHD_Connection* conn, void** socket_state,
                            MHD_ConnectionNotificationCode code);
  MHD_Result on_head(MHD_Connection* conn, exchange& ex);
  MHD_Result refuse(MHD_Connection* conn, exchange& ex, http_response answer);
  void run_handler(MHD_Connection* conn, exchange& ex);
  MHD_Result reply(MHD_Connection* conn, const http_request& request,
                   const http_response& answer, bool close);
  http_response dispatch(http_request& request) const;
  void count(const http_request& request, int status) const;
};

MHD_Result http_server::impl::on_request(void* cls, MHD_Connection* conn, const char* url,
                                         const char* method, const char*,
                                         const char* upload, size_t* upload_size,
                                         void** state) {
  auto* self = static_cast<impl*>(cls);
  auto* ex = static_cast<exchange*>(*state);
  if (ex == nullptr) { // the head has arrived; the body (if any) has not
    ex = new exchange;
    *state = ex;
    ex->request = read_head(conn, url, method);
    return self->on_head(conn, *ex);
  }
  if (*upload_size > 0) { // a piece of the body
    ex->received += *upload_size;
    if (ex->received <= self->max_body_bytes) {
      ex->request.body.append(upload, *upload_size);
    } else if (!ex->too_large) {
      ex->too_large = true;
      std::string{}.swap(ex->request.body);
    } else if (ex->received - self->max_body_bytes > drain_limit(self->max_body_bytes)) {
      return MHD_NO; // far over and still going: cut it off unanswered
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (ex->answered)
    return MHD_YES;
  if (ex->too_large) // a chunked body, read to its end
    return self->refuse(conn, *ex, too_large(self->max_body_bytes));
  if (ex->answer)   // the worker is done and resumed the connection
    return self->reply(conn, ex->request, *ex->answer, false);
  if (!ex->dispatched)
    self->run_handler(conn, *ex);
  return MHD_YES;
}

MHD_Result http_server::impl::on_head(MHD_Connection* conn, exchange& ex) {
  if (auto length = content_length(ex.request); length && *length > max_body_bytes)
    return refuse(conn, ex, too_large(max_body_bytes)); // before any of it is
                                                        // read, and without a
                                                        // 100 Continue
  if (auto type = ex.request.headers.find("content-type");
      type != ex.request.headers.end() && lower(type->second).rfind("multipart/form-data", 0) == 0)
    return refuse(conn, ex, http_error(415, "multipart bodies are not supported"));
  return MHD_YES;
}

MHD_Result http_server::impl::refuse(MHD_Connection* conn, exchange& ex, http_response answer) {
  ex.answered = true;
  deadlines->arrived(conn);
  // Some of the body may still be on the wire: do not reuse the connection.
  return reply(conn, ex.request, answer, true);
}

void http_server::impl::run_handler(MHD_Connection* conn, exchange& ex) {
  ex.dispatched = true;
  deadlines->arrived(conn);
  MHD_suspend_connection(conn);
  ++load->waiting;
  bool posted = workers->post([this, conn, &ex] {
    --load->waiting;
    ++load->running;
    ex.answer = dispatch(ex.request);
    --load->running;
    MHD_resume_connection(conn);
  });
  if (!posted) {
    --load->waiting;
    ex.answer = http_error(503, "the node is stopping");
    MHD_resume_connection(conn);
  }
}

void http_server::impl::on_completed(void* cls, MHD_Connection* conn, void** state,
                                     MHD_RequestTerminationCode) {
  static_cast<impl*>(cls)->deadlines->answered(conn);
  delete static_cast<exchange*>(*state);
  *state = nullptr;
}

void http_server::impl::on_connection(void* cls, MHD_Connection* conn, void**,
                                      MHD_ConnectionNotificationCode code) {
  auto* self = static_cast<impl*>(cls);
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    ++self->load->connections;
    auto* info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    self->deadlines->opened(conn, info != nullptr ? info->connect_fd : -1);
  } else {
    --self->load->connections;
    self->deadlines->closed(conn);
  }
}

MHD_Result http_server::impl::reply(MHD_Connection* conn, const http_request& request,
                                    const http_response& answer, bool close) {
  auto* response = MHD_create_response_from_buffer(
    answer.body.size(), const_cast<char*>(answer.body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr)
    return MHD_NO; // out of memory: MHD closes the connection
  MHD_add_response_header(response, "Content-Type", answer.content_type.c_str());
  for (const auto& [name, value] : answer.headers)
    MHD_add_response_header(response, name.c_str(), value.c_str());
  if (close)
    MHD_add_response_header(response, "Connection", "close");
  auto queued = MHD_queue_response(conn, static_cast<unsigned>(answer.status), response);
  MHD_destroy_response(response);
  count(request, answer.status);
  return queued;
}

caf::expected<std::unique_ptr<http_server>>
http_server::start(const std::string& host, uint16_t port, std::vector<http_route> routes,
                   size_t max_body_bytes, size_t threads,
                   std::chrono::milliseconds request_deadline) {
  auto state = std::make_unique<impl>();
  for (auto& route : routes) {
    try {
      state->routes.push_back(
        {upper(route.method), std::regex(route.pattern), std::move(route.handler),
         literal_of(route.pattern)});
    } catch (const std::regex_error& err) {
      return make_error(brd_errc::bad_config, "HTTP route pattern \"" + route.pattern
                                                + "\" is not a valid regex: " + err.what());
    }
  }
  state->max_body_bytes = max_body_bytes;
  auto fd = http_listen(host, port);
  if (!fd)
    return std::move(fd.error());
  state->port = bound_port(*fd);
  state->address = endpoint(host, state->port);
  state->workers = std::make_unique<worker_pool>(threads);
  state->deadlines = std::make_unique<request_deadlines>(
    request_deadline, [raw = state.get(), request_deadline] {
      log::http()->debug("cut off a client that sent no whole request within {} ms",
                         request_deadline.count());
      if (auto* registry = raw->metrics.load())
        registry
          ->counter("brnode_http_cut_off_total", "HTTP connections closed because a request "
                                                 "did not arrive whole within its deadline.")
          .inc();
    });
  state->daemon = MHD_start_daemon(
    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, nullptr,
    nullptr, &impl::on_request, state.get(),                         //
    MHD_OPTION_EXTERNAL_LOGGER, &log_from_mhd, nullptr,               //
    MHD_OPTION_LISTEN_SOCKET, *fd,                                    //
    MHD_OPTION_NOTIFY_COMPLETED, &impl::on_completed, state.get(),   //
    MHD_OPTION_NOTIFY_CONNECTION, &impl::on_connection, state.get(), //
    MHD_OPTION_CONNECTION_TIMEOUT, idle_timeout_seconds,              //
    MHD_OPTION_CONNECTION_LIMIT, max_connections,                     //
    MHD_OPTION_PER_IP_CONNECTION_LIMIT, max_connections_per_address, //
    MHD_OPTION_END);
  if (state->daemon == nullptr) {
    int err = errno;
    close(*fd);
    state->workers->stop();
    return make_error(brd_errc::io_failure, "cannot serve HTTP on " + state->address + ": "
                                              + errno_text(err));
  }
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
  if (registry == nullptr)
    return;
  registry->on_collect([load = impl_->load](metrics_registry& into) {
    into
      .gauge("brnode_http_connections", "Open HTTP connections (at most "
                                          + std::to_string(max_connections) + ", "
                                          + std::to_string(max_connections_per_address)
                                          + " from one address).")
      .set(static_cast<double>(load->connections.load()));
    into.gauge("brnode_http_requests_waiting", "Complete HTTP requests waiting for a worker.")
      .set(static_cast<double>(load->waiting.load()));
    into.gauge("brnode_http_requests_running", "HTTP handlers running now.")
      .set(static_cast<double>(load->running.load()));
  });
}

void http_server::stop() {
  std::lock_guard guard{impl_->stop_mutex};
  if (impl_->daemon == nullptr)
    return;
  // No new connections from here on: the listening socket is ours again.
  if (int fd = MHD_quiesce_daemon(impl_->daemon); fd >= 0)
    close(fd);
  // Handlers under way finish and resume their connections; later requests
  // on open connections get 503.
  impl_->workers->stop();
  MHD_stop_daemon(impl_->daemon); // sends what is queued, closes, joins
  impl_->daemon = nullptr;
  log::http()->info("HTTP on {} stopped", impl_->address);
}

http_response http_server::impl::dispatch(http_request& request) const {
  auto method = request.method == "HEAD" ? std::string{"GET"} : request.method;
  std::string allowed;
  for (const auto& route : routes) {
    std::smatch groups;
    if (route.literal ? request.path != *route.literal
                      : !std::regex_match(request.path, groups, route.pattern))
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

void http_server::impl::count(const http_request& request, int status) const {
  log::http()->debug("{} {} -> {}", request.method, request.path, status);
  if (auto* registry = metrics.load())
    registry
      ->counter("brnode_http_requests_total", "HTTP requests answered, by status code.",
                {{"code", std::to_string(status)}})
      .inc();
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
