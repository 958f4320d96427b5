// webhook_load: sends signed GitHub push webhooks to a node, open loop at a
// fixed rate or closed loop as fast as answers come, and prints one JSON
// line: how many were sent and accepted, the accepted rate and the reply
// latency. tools/bench/webhook drives it; it can be run by hand too:
//
//   webhook_load --port 8801 --secret-file secret --repo owner/name
//                --sha SHA --paths a/x,b/y [--rate 500] [--seconds 5]
//                [--connections 8]
//
// --rate 0 is closed loop: each connection sends its next request when the
// last one was answered. In open loop each request has a scheduled time and
// its latency is counted from that time, so a slow server cannot hide its
// queueing (no coordinated omission). Each request has its own delivery id
// and body (the head commit message counts up), each signed with
// HMAC-SHA256 of the secret.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "io/hmac.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;

struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string secret;
  std::string repo = "bench/site";
  std::string sha;
  std::vector<std::string> paths;
  double rate = 0;
  double seconds = 5;
  int connections = 8;
};

struct result {
  std::vector<double> latency_ms;
  uint64_t sent = 0, accepted = 0, other = 0, failed = 0;
};

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream in{text};
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty())
      out.push_back(item);
  return out;
}

int usage(const char* why) {
  std::fprintf(stderr, "webhook_load: %s\nusage: webhook_load --port P --secret-file F --sha SHA "
                       "--paths a,b [--repo o/n] [--rate R] [--seconds S] [--connections C]\n",
               why);
  return 64;
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i], value = argv[i + 1];
    if (key == "--port") o.port = std::atoi(value.c_str());
    else if (key == "--host") o.host = value;
    else if (key == "--secret-file") {
      std::ifstream in{value};
      std::getline(in, o.secret);
    } else if (key == "--repo") o.repo = value;
    else if (key == "--sha") o.sha = value;
    else if (key == "--paths") o.paths = split(value, ',');
    else if (key == "--rate") o.rate = std::atof(value.c_str());
    else if (key == "--seconds") o.seconds = std::atof(value.c_str());
    else if (key == "--connections") o.connections = std::max(1, std::atoi(value.c_str()));
    else return false;
  }
  return o.port > 0 && !o.secret.empty() && o.sha.size() == 40 && !o.paths.empty();
}

std::string body_for(const options& o, uint64_t n) {
  json commit{{"id", o.sha}, {"message", "change " + std::to_string(n)},
              {"added", json::array()}, {"removed", json::array()}, {"modified", o.paths}};
  return json{{"ref", "refs/heads/main"}, {"before", std::string(40, '0')}, {"after", o.sha},
              {"created", false}, {"deleted", false}, {"forced", false},
              {"commits", json::array({commit})}, {"head_commit", commit},
              {"repository", {{"full_name", o.repo}}},
              {"pusher", {{"name", "bench"}}}, {"sender", {{"login", "bench"}}}}
    .dump();
}

// One connection: requests i = first, first + step, ... until the end.
void run_connection(const options& o, int first, int step, clock_type::time_point start,
                    clock_type::time_point end, std::atomic<uint64_t>& counter, result& out) {
  httplib::Client client{o.host, o.port};
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(10, 0);
  auto interval = o.rate > 0 ? std::chrono::duration<double>(1.0 / o.rate) : std::chrono::duration<double>(0);
  for (uint64_t i = first;; i += step) {
    auto scheduled = o.rate > 0 ? start + std::chrono::duration_cast<clock_type::duration>(interval * i)
                                : clock_type::now();
    if (scheduled >= end)
      break;
    std::this_thread::sleep_until(scheduled);
    auto n = counter.fetch_add(1);
    auto body = body_for(o, n);
    char delivery[64];
    std::snprintf(delivery, sizeof delivery, "bench-%d-%llu-%llu", ::getpid(),
                  static_cast<unsigned long long>(start.time_since_epoch().count() % 1000000),
                  static_cast<unsigned long long>(n));
    httplib::Headers headers{{"X-GitHub-Event", "push"}, {"X-GitHub-Delivery", delivery},
                             {"X-Hub-Signature-256",
                              "sha256=" + brd::io::hmac_sha256_hex(o.secret, body)}};
    auto res = client.Post("/webhooks/github", headers, body, "application/json");
    auto done = clock_type::now();
    ++out.sent;
    if (!res) {
      ++out.failed;
      continue;
    }
    out.latency_ms.push_back(std::chrono::duration<double, std::milli>(done - scheduled).count());
    if (res->status == 202 && res->body.find("\"accepted\"") != std::string::npos)
      ++out.accepted;
    else
      ++out.other;
  }
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty())
    return 0;
  auto k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

} // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse(argc, argv, o))
    return usage("missing or bad arguments");
  std::vector<result> results(o.connections);
  std::vector<std::thread> threads;
  std::atomic<uint64_t> counter{0};
  auto start = clock_type::now() + std::chrono::milliseconds(50);
  auto end = start + std::chrono::duration_cast<clock_type::duration>(
                       std::chrono::duration<double>(o.seconds));
  for (int c = 0; c < o.connections; ++c)
    threads.emplace_back(run_connection, std::cref(o), c, o.connections, start, end,
                         std::ref(counter), std::ref(results[c]));
  for (auto& t : threads)
    t.join();
  auto elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  result all;
  for (auto& r : results) {
    all.sent += r.sent;
    all.accepted += r.accepted;
    all.other += r.other;
    all.failed += r.failed;
    all.latency_ms.insert(all.latency_ms.end(), r.latency_ms.begin(), r.latency_ms.end());
  }
  json out{{"sent", all.sent},
           {"accepted", all.accepted},
           {"other", all.other},
           {"failed", all.failed},
           {"seconds", elapsed},
           {"accepted_per_s", static_cast<double>(all.accepted) / elapsed},
           {"reply_p50_ms", percentile(all.latency_ms, 0.50)},
           {"reply_p99_ms", percentile(all.latency_ms, 0.99)},
           {"reply_max_ms", percentile(all.latency_ms, 1.0)}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
