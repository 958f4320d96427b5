#include "io/http_server.hpp"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>

#include "io/metrics.hpp"
#include "../support/loopback.hpp"
#include "runtime/errors.hpp"

using namespace brd::io;
using brd_test::open_loopback;
using brd_test::send_all;
using namespace std::chrono_literals;

namespace {

constexpr auto timeout = 5000ms;

std::unique_ptr<http_server> must_start(std::vector<http_route> routes,
                                        size_t max_body_bytes = 25u << 20) {
  auto server = http_server::start("127.0.0.1", 0, std::move(routes), max_body_bytes, 2);
  REQUIRE_MESSAGE(server, brd::describe(server.error()));
  REQUIRE((*server)->port() != 0);
  return std::move(*server);
}

std::string header(const http_response& res, const std::string& name) {
  for (const auto& [key, value] : res.headers)
    if (key == name)
      return value;
  return {};
}

// Sends `raw` bytes on a fresh loopback connection and returns the first
// response: its head and a Content-Length body.
std::string raw_exchange(uint16_t port, const std::string& raw) {
  int sock = open_loopback(port);
  send_all(sock, raw); // we still read the answer to what was sent
  std::string reply;
  char buf[4096];
  auto complete = [&reply] {
    auto head_end = reply.find("\r\n\r\n");
    auto length_at = reply.find("Content-Length: ");
    if (head_end == std::string::npos || length_at == std::string::npos)
      return false;
    auto length = std::stoul(reply.substr(length_at + 16));
    return reply.size() >= head_end + 4 + length;
  };
  for (ssize_t n; !complete() && (n = recv(sock, buf, sizeof buf, 0)) > 0;)
    reply.append(buf, static_cast<size_t>(n));
  close(sock);
  return reply;
}

http_response echo(const http_request& req) {
  http_response res;
  res.content_type = "text/plain";
  res.body = req.method + " " + req.path + " " + req.body;
  for (const auto& capture : req.captures)
    res.body += " [" + capture + "]";
  if (auto it = req.params.find("q"); it != req.params.end())
    res.body += " q=" + it->second;
  if (auto it = req.headers.find("x-token"); it != req.headers.end())
    res.body += " token=" + it->second;
  return res;
}

} // namespace

TEST_CASE("a GET route receives its regex captures, query and lower-case headers") {
  auto server = must_start({{"GET", "/api/deployments/([^/]+)/logs/([0-9]+)", echo}});
  auto res = http_get("127.0.0.1", server->port(), "/api/deployments/web%20app/logs/42?q=x%2By",
                      timeout);
  REQUIRE_MESSAGE(res, brd::describe(res.error()));
  CHECK(res->status == 200);
  CHECK(res->content_type == "text/plain");
  CHECK(res->body == "GET /api/deployments/web app/logs/42  [web app] [42] q=x+y");

  auto posted = http_post("127.0.0.1", server->port(), "/api/deployments/a/logs/1", "{}",
                          {{"X-Token", "abc"}}, timeout);
  REQUIRE(posted);
  CHECK(posted->status == 405);
  CHECK(header(*posted, "allow") == "GET");
}

TEST_CASE("a POST route gets the body and can set status and headers") {
  auto server = must_start({{"POST", "/api/deploy", [](const http_request& req) {
                               http_response res = echo(req);
                               res.status = 202;
                               res.headers.emplace_back("Location", "/api/deployments/7");
                               return res;
                             }}});
  auto res = http_post("127.0.0.1", server->port(), "/api/deploy", "{\"app\":1}",
                       {{"X-Token", "abc"}}, timeout);
  REQUIRE_MESSAGE(res, brd::describe(res.error()));
  CHECK(res->status == 202);
  CHECK(res->body == "POST /api/deploy {\"app\":1} token=abc");
  CHECK(header(*res, "location") == "/api/deployments/7");
}

TEST_CASE("an unknown path is a 404 with a JSON error naming the path") {
  auto server = must_start({{"GET", "/livez", echo}});
  auto res = http_get("127.0.0.1", server->port(), "/x", timeout);
  REQUIRE(res);
  CHECK(res->status == 404);
  CHECK(res->content_type == "application/json");
  CHECK(res->body == R"({"error":"no such endpoint: /x"})");
  // A route must match the whole path, not a prefix.
  auto longer = http_get("127.0.0.1", server->port(), "/livez/more", timeout);
  REQUIRE(longer);
  CHECK(longer->status == 404);
}

TEST_CASE("a body over the limit is refused with 413 and the handler never runs") {
  std::atomic<int> calls{0};
  auto server = must_start({{"POST", "/upload",
                             [&calls](const http_request& req) {
                               ++calls;
                               return echo(req);
                             }}},
                           1024);
  SUBCASE("with Content-Length") {
    auto res = http_post("127.0.0.1", server->port(), "/upload", std::string(64 * 1024, 'x'),
                         {}, timeout);
    REQUIRE_MESSAGE(res, brd::describe(res.error()));
    CHECK(res->status == 413);
    CHECK(res->content_type == "application/json");
    CHECK(res->body == R"({"error":"request body is larger than the limit of 1024 bytes"})");
  }
  SUBCASE("with Content-Length and Expect: 100-continue") {
    auto reply = raw_exchange(server->port(), "POST /upload HTTP/1.1\r\nHost: x\r\n"
                                              "Content-Length: 999999999\r\n"
                                              "Expect: 100-continue\r\n\r\n");
    CHECK(reply.rfind("HTTP/1.1 413 ", 0) == 0);
    CHECK(reply.find("larger than the limit of 1024 bytes") != std::string::npos);
  }
  SUBCASE("with chunked transfer encoding") {
    std::string chunk(1000, 'y');
    std::string raw = "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i)
      raw += "3e8\r\n" + chunk + "\r\n";
    raw += "0\r\n\r\n";
    auto reply = raw_exchange(server->port(), raw);
    CHECK(reply.rfind("HTTP/1.1 413 ", 0) == 0);
    // The rest of the body is still unread, so the connection must not be reused.
    CHECK(reply.find("Connection: close\r\n") != std::string::npos);
    CHECK(reply.find("larger than the limit of 1024 bytes") != std::string::npos);
  }
  SUBCASE("a body at the limit is accepted") {
    auto res = http_post("127.0.0.1", server->port(), "/upload", std::string(1024, 'x'), {},
                         timeout);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(calls == 1);
    return;
  }
  CHECK(calls == 0);
}

TEST_CASE("a throwing handler gives 500 with a JSON error and the server keeps serving") {
  auto server = must_start({
    {"GET", "/boom", [](const http_request&) -> http_response {
       throw std::runtime_error("disk on fire");
     }},
    {"GET", "/odd", [](const http_request&) -> http_response { throw 42; }},
    {"GET", "/livez", echo},
  });
  for (auto path : {"/boom", "/odd"}) {
    auto res = http_get("127.0.0.1", server->port(), path, timeout);
    REQUIRE(res);
    CHECK(res->status == 500);
    CHECK(res->content_type == "application/json");
    CHECK(res->body.rfind("{\"error\":\"internal error while serving GET ", 0) == 0);
  }
  auto alive = http_get("127.0.0.1", server->port(), "/livez", timeout);
  REQUIRE(alive);
  CHECK(alive->status == 200);
}

TEST_CASE("a malformed request gets a 400 from the protocol layer, and the connection closes") {
  auto server = must_start({{"GET", "/livez", echo}});
  auto reply = raw_exchange(server->port(), "BREW /pot HTCPCP/1.0\r\n\r\n");
  CHECK(reply.rfind("HTTP/1.1 400 ", 0) == 0);
  CHECK(reply.find("Connection: close\r\n") != std::string::npos);
}

TEST_CASE("clients that connect and then send nothing, or trickle, do not hold up others") {
  // Twice as many slow clients as worker threads. With a thread per
  // connection, these held every thread for as long as they trickled.
  auto server = must_start({{"GET", "/livez", echo}});
  std::vector<int> slow;
  for (int i = 0; i < 4; ++i)
    slow.push_back(open_loopback(server->port()));
  for (int i = 0; i < 4; ++i) {
    slow.push_back(open_loopback(server->port()));
    send_all(slow.back(), "GET /livez HTTP/1.1\r\nHost: x\r\n");
  }
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 4; i < slow.size(); ++i)
      send_all(slow[i], "X-Slow: 1\r\n");
    auto started = std::chrono::steady_clock::now();
    auto res = http_get("127.0.0.1", server->port(), "/livez", 1000ms);
    REQUIRE_MESSAGE(res, brd::describe(res.error()));
    CHECK(res->status == 200);
    CHECK(std::chrono::steady_clock::now() - started < 500ms);
    std::this_thread::sleep_for(300ms);
  }
  for (int fd : slow)
    close(fd);
}

TEST_CASE("a client whose request does not arrive whole within the deadline is cut off") {
  metrics_registry registry;
  auto started = http_server::start("127.0.0.1", 0,
                                    {{"GET", "/livez", echo},
                                     {"GET", "/slow", [](const http_request& req) {
                                        std::this_thread::sleep_for(900ms);
                                        return echo(req);
                                      }}},
                                    1024, 2, 600ms);
  REQUIRE_MESSAGE(started, brd::describe(started.error()));
  auto& server = *started;
  server->set_metrics(&registry);
  // A byte every 50 ms: never silent long enough for the idle timeout.
  int trickler = open_loopback(server->port());
  std::string head = "GET /livez HTTP/1.1\r\nHost: x\r\n";
  auto begun = std::chrono::steady_clock::now();
  bool cut = false;
  for (size_t i = 0; !cut && std::chrono::steady_clock::now() - begun < 3s; ++i) {
    cut = send(trickler, i < head.size() ? &head[i] : "X", 1, MSG_NOSIGNAL) < 0;
    char byte;
    cut = cut || recv(trickler, &byte, 1, MSG_DONTWAIT) == 0;
    std::this_thread::sleep_for(50ms);
  }
  auto took = std::chrono::steady_clock::now() - begun;
  close(trickler);
  CHECK(cut);
  CHECK(took >= 600ms);
  CHECK(took < 2000ms);
  CHECK(registry.render().find("brnode_http_cut_off_total 1\n") != std::string::npos);
  // Neither a handler slower than the deadline nor a keep-alive connection
  // whose requests (250 ms apart) span more than it is cut off.
  auto slow = http_get("127.0.0.1", server->port(), "/slow", timeout);
  REQUIRE_MESSAGE(slow, brd::describe(slow.error()));
  CHECK(slow->status == 200);
  int keep = open_loopback(server->port());
  for (int i = 0; i < 3; ++i) {
    send_all(keep, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    char buf[1024];
    CHECK(recv(keep, buf, sizeof buf, 0) > 0);
    std::this_thread::sleep_for(250ms);
  }
  close(keep);
  CHECK(registry.render().find("brnode_http_cut_off_total 1\n") != std::string::npos);
}

TEST_CASE("a handler that blocks holds one worker, not the other connections") {
  std::atomic<bool> release{false};
  auto server = must_start({{"GET", "/stuck", [&release](const http_request& req) {
                               while (!release)
                                 std::this_thread::sleep_for(5ms);
                               return echo(req);
                             }},
                            {"GET", "/livez", echo}});
  std::thread stuck([&] { (void)http_get("127.0.0.1", server->port(), "/stuck", timeout); });
  std::this_thread::sleep_for(100ms);
  auto res = http_get("127.0.0.1", server->port(), "/livez", 1000ms);
  release = true;
  stuck.join();
  REQUIRE_MESSAGE(res, brd::describe(res.error()));
  CHECK(res->status == 200);
}

TEST_CASE("a second server on a taken port fails at start, saying so") {
  auto first = must_start({});
  auto second = http_server::start("127.0.0.1", first->port(), {});
  REQUIRE_FALSE(second);
  CHECK(second.error() == brd::brd_errc::io_failure);
  auto text = brd::describe(second.error());
  CHECK(text.find("already in use") != std::string::npos);
  CHECK(text.find("127.0.0.1:" + std::to_string(first->port())) != std::string::npos);
  CHECK(text.find("fix: choose another http_port") != std::string::npos);
}

TEST_CASE("an invalid route pattern is refused at start") {
  auto server = http_server::start("127.0.0.1", 0, {{"GET", "/a/(", echo}});
  REQUIRE_FALSE(server);
  CHECK(brd::describe(server.error()).find("\"/a/(\" is not a valid regex") != std::string::npos);
}

TEST_CASE("after stop the port is closed and the client says it cannot reach it") {
  auto server = must_start({{"GET", "/livez", echo}});
  auto port = server->port();
  server->stop();
  server->stop(); // idempotent
  auto res = http_get("127.0.0.1", port, "/livez", 2000ms);
  REQUIRE_FALSE(res);
  CHECK(res.error() == brd::brd_errc::io_failure);
  auto text = brd::describe(res.error());
  CHECK(text.rfind("cannot reach 127.0.0.1:" + std::to_string(port) + ": connection refused", 0)
        == 0);
}

TEST_CASE("a handler slower than the client timeout is reported as a timeout") {
  auto server = must_start({{"GET", "/slow", [](const http_request& req) {
                               std::this_thread::sleep_for(800ms);
                               return echo(req);
                             }}});
  auto res = http_get("127.0.0.1", server->port(), "/slow", 200ms);
  REQUIRE_FALSE(res);
  CHECK(res.error() == brd::brd_errc::timeout);
  CHECK(brd::describe(res.error()).find("did not answer GET /slow within 200 ms")
        != std::string::npos);
}

TEST_CASE("requests are counted by status code when a registry is attached") {
  metrics_registry registry;
  auto server = must_start({{"GET", "/livez", echo}});
  server->set_metrics(&registry);
  for (int i = 0; i < 3; ++i)
    REQUIRE(http_get("127.0.0.1", server->port(), "/livez", timeout));
  REQUIRE(http_get("127.0.0.1", server->port(), "/nope", timeout));
  server->stop(); // counting happens after the reply is sent; stop waits for it
  auto text = registry.render();
  CHECK(text.find("# TYPE brnode_http_requests_total counter\n") != std::string::npos);
  CHECK(text.find("brnode_http_requests_total{code=\"200\"} 3\n") != std::string::npos);
  CHECK(text.find("brnode_http_requests_total{code=\"404\"} 1\n") != std::string::npos);
}

TEST_CASE("open connections and busy workers are shown when a registry is attached") {
  metrics_registry registry;
  std::atomic<bool> release{false};
  auto server = must_start({{"GET", "/stuck", [&release](const http_request& req) {
                               while (!release)
                                 std::this_thread::sleep_for(5ms);
                               return echo(req);
                             }}});
  server->set_metrics(&registry);
  int idle = open_loopback(server->port());
  std::vector<std::thread> stuck;
  for (int i = 0; i < 3; ++i) // 2 workers: 2 run, 1 waits
    stuck.emplace_back([&] { (void)http_get("127.0.0.1", server->port(), "/stuck", timeout); });
  std::string text;
  bool seen = false;
  for (int i = 0; i < 200 && !seen; ++i) {
    std::this_thread::sleep_for(10ms);
    text = registry.render();
    seen = text.find("brnode_http_requests_running 2\n") != std::string::npos
           && text.find("brnode_http_requests_waiting 1\n") != std::string::npos
           && text.find("brnode_http_connections 4\n") != std::string::npos;
  }
  CAPTURE(text);
  CHECK(seen);
  release = true;
  for (auto& t : stuck)
    t.join();
  close(idle);
  server->stop();
  text = registry.render();
  CHECK(text.find("brnode_http_requests_running 0\n") != std::string::npos);
  CHECK(text.find("brnode_http_connections 0\n") != std::string::npos);
}

TEST_CASE("a handler's own error status and body pass through untouched") {
  auto server = must_start({{"GET", "/readyz", [](const http_request&) {
                               http_response res;
                               res.status = 503;
                               res.content_type = "text/plain";
                               return res; // empty body on purpose
                             }}});
  auto res = http_get("127.0.0.1", server->port(), "/readyz", timeout);
  REQUIRE(res);
  CHECK(res->status == 503);
  CHECK(res->content_type == "text/plain");
  CHECK(res->body.empty());
}
