// Small helpers of the replication benchmark: child processes, ports,
// temporary directories, HTTP, percentiles and record values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace bench {

using steady = std::chrono::steady_clock;

double seconds_since(steady::time_point t);

// fork + execv of `argv` (argv[0] a path) with output appended to `log`;
// the child gets SIGKILL if the benchmark dies.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log);
// SIGTERM, up to 3 s to exit, then SIGKILL; reaps.
void stop(pid_t pid);

// A free TCP port on 127.0.0.1 (never the same twice in one run).
uint16_t free_port();
// mkdtemp under /tmp; remove_dir deletes it with its contents.
std::string make_temp_dir(const std::string& what);
void remove_dir(const std::string& dir);
// Where `program` is on $PATH, or "".
std::string find_program(const std::string& program);

struct http_answer {
  int status = 0; // 0: no answer
  std::string body;
};
http_answer http(const std::string& method, uint16_t port, const std::string& path,
                 const std::string& body = "");

// The p-th percentile (0..100) of `samples` (sorted in place); 0 if empty.
double percentile(std::vector<double>& samples, double p);

// A msgpack record {"v": 1, "p": "xxx..."} of exactly `size` bytes (at most
// 263).
std::string record_of_size(size_t size);
// The msgpack record {"v": 1, "p": payload} (payload under 64 KiB), which
// io::state_store takes as a value.
std::string record_of(std::string_view payload);

std::string base64(const std::string& bytes);

// CPU seconds (user + system) used so far by process `pid`; this process
// when pid is 0.
double cpu_seconds(pid_t pid = 0);

// "X.XX Y.YY Z.ZZ" from /proc/loadavg.
std::string load_average();

} // namespace bench
