#include "floor_load.hpp"

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "runtime/wall_clock.hpp"
#include "util.hpp"

namespace bench {

namespace {

// The last line of `log` that starts with `word`, or "".
std::string line_of(const std::string& log, const std::string& word) {
  std::ifstream in{log};
  std::string line, found;
  while (std::getline(in, line))
    if (line.rfind(word, 0) == 0)
      found = line;
  return found;
}

struct floor_proc {
  std::string name, log;
  uint16_t port = 0;
  pid_t pid = -1;
};

} // namespace

floor_result run_floor(const std::string& repl_floor, const std::string& mode,
                       size_t writes_per_node, size_t clients_per_node, size_t value_size) {
  floor_result out;
  auto dir = make_temp_dir("floor");
  std::vector<floor_proc> procs(3);
  for (size_t i = 0; i < procs.size(); ++i) {
    procs[i].name = std::string(1, static_cast<char>('a' + i));
    procs[i].port = free_port();
    procs[i].log = dir + "/" + procs[i].name + ".log";
  }
  // Time to start and connect; the writers start together at start_ms.
  const auto start_ms = brd::wall_clock_ms() + 3000;
  for (auto& p : procs) {
    std::vector<std::string> argv{repl_floor,
                                  "--mode", mode,
                                  "--name", p.name,
                                  "--port", std::to_string(p.port),
                                  "--dir", dir + "/" + p.name,
                                  "--writes", std::to_string(writes_per_node),
                                  "--clients", std::to_string(clients_per_node),
                                  "--value-size", std::to_string(value_size),
                                  "--start-ms", std::to_string(start_ms)};
    for (const auto& q : procs)
      if (q.name != p.name)
        argv.insert(argv.end(), {"--peer", q.name + "=" + std::to_string(q.port)});
    p.pid = spawn(argv, p.log);
  }
  auto cpu = [&] {
    double sum = 0;
    for (const auto& p : procs)
      sum += cpu_seconds(p.pid);
    return sum;
  };
  double cpu_before = 0;
  bool started = false;
  size_t done = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  while (done < procs.size() && out.failure.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (std::chrono::steady_clock::now() > deadline)
      out.failure = "not every write reached every process within 180 s";
    if (!started && brd::wall_clock_ms() >= start_ms) {
      cpu_before = cpu(); // connecting is not part of the load
      started = true;
    }
    done = 0;
    for (const auto& p : procs) {
      if (auto failed = line_of(p.log, "failed"); !failed.empty())
        out.failure = p.name + ": " + failed;
      done += line_of(p.log, "done").empty() ? 0 : 1;
    }
  }
  out.cpu_seconds = cpu() - cpu_before;
  for (auto& p : procs)
    stop(p.pid);
  int64_t last_done = start_ms;
  for (const auto& p : procs) {
    std::istringstream line{line_of(p.log, "done")};
    std::string word;
    int64_t at = 0;
    size_t errors = 0, writes = 0;
    if (line >> word >> at >> errors >> writes) {
      last_done = std::max(last_done, at);
      out.errors += errors;
      out.writes += writes;
    }
  }
  out.seconds_everywhere = static_cast<double>(last_done - start_ms) / 1000.0;
  remove_dir(dir);
  return out;
}

} // namespace bench
