// The blocking HTTP client half of io/http_server.hpp (http_get, http_post),
// for tools, tests and outgoing calls. Kept apart so the server file stays
// one thing.
#include "io/http_server.hpp"
#include "io/http_text.hpp"

#include <cerrno>
#include <functional>

#include <httplib.h>

#include "runtime/errors.hpp"

namespace brd::io {

using detail::endpoint;
using detail::errno_text;
using detail::lower;

namespace {

caf::error client_error(const std::string& host, uint16_t port, const std::string& what,
                        httplib::Error err, int saved_errno, bool out_of_time,
                        std::chrono::milliseconds timeout) {
  auto where = endpoint(host, port);
  auto within = " within " + std::to_string(timeout.count()) + " ms";
  switch (err) {
    case httplib::Error::Connection: {
      // httplib keeps no reason; errno still holds connect()'s when it
      // failed at once (always so for a closed port on this machine).
      bool known = saved_errno != 0 && saved_errno != EINPROGRESS && saved_errno != EAGAIN;
      return make_error(brd_errc::io_failure,
                        "cannot reach " + where + ": "
                          + (known ? errno_text(saved_errno)
                                   : std::string{"connection refused or host unreachable"}));
    }
    case httplib::Error::ConnectionTimeout:
      return make_error(brd_errc::timeout, "cannot reach " + where + ": no connection" + within);
    case httplib::Error::Read:
      if (out_of_time)
        return make_error(brd_errc::timeout, where + " did not answer " + what + within);
      return make_error(brd_errc::io_failure,
                        where + " closed the connection before answering " + what);
    default:
      return make_error(brd_errc::io_failure, what + " to " + where
                                                + " failed: " + httplib::to_string(err));
  }
}

using client_call = std::function<httplib::Result(httplib::Client&)>;

caf::expected<http_response> call(const std::string& host, uint16_t port,
                                  const std::string& what, std::chrono::milliseconds timeout,
                                  const client_call& send) {
  httplib::Client client{host, port};
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  client.set_keep_alive(false);
  auto started = std::chrono::steady_clock::now();
  errno = 0;
  auto result = send(client);
  if (!result) {
    int saved_errno = errno;
    bool out_of_time = std::chrono::steady_clock::now() - started >= timeout;
    return client_error(host, port, what, result.error(), saved_errno, out_of_time, timeout);
  }
  http_response answer;
  answer.status = result->status;
  answer.body = std::move(result->body);
  answer.content_type = result->get_header_value("Content-Type");
  for (const auto& [name, value] : result->headers)
    answer.headers.emplace_back(lower(name), value);
  return answer;
}

} // namespace

caf::expected<http_response> http_get(const std::string& host, uint16_t port,
                                      const std::string& path,
                                      std::chrono::milliseconds timeout) {
  return call(host, port, "GET " + path, timeout,
              [&path](httplib::Client& client) { return client.Get(path); });
}

caf::expected<http_response>
http_post(const std::string& host, uint16_t port, const std::string& path,
          const std::string& body,
          const std::vector<std::pair<std::string, std::string>>& headers,
          std::chrono::milliseconds timeout) {
  httplib::Headers extra;
  std::string content_type = "application/json";
  for (const auto& [name, value] : headers) {
    if (lower(name) == "content-type")
      content_type = value;
    else
      extra.emplace(name, value);
  }
  return call(host, port, "POST " + path, timeout, [&](httplib::Client& client) {
    return client.Post(path, extra, body, content_type);
  });
}

} // namespace brd::io

