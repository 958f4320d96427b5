// Cluster test harness: starts real `brnode` processes on loopback ports
// chosen at run time, with their data in a temporary directory that is
// removed afterwards. No mocks: tests talk to the nodes over HTTP only.
//
// Every process started here is killed (SIGKILL) and reaped when its owner
// goes out of scope, so a failed CHECK never leaks a node; children also get
// SIGKILL if the test process itself dies (PR_SET_PDEATHSIG).
//
// Environment: BRNODE_BIN is the brnode binary (set by meson). Set
// BRD_KEEP_TEST_DIRS=1 to keep the temporary directories for inspection.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace brd::test {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using millis = std::chrono::milliseconds;

// -- environment ---------------------------------------------------------------

// True once an assertion of the running test case (or subcase run) failed.
bool current_test_failed();

// $BRNODE_BIN; fails the test (REQUIRE) when it is not set.
std::string brnode_bin();

// Where `program` is on $PATH, or "" when it is not installed.
std::string find_program(const std::string& program);

// A TCP port nothing listens on (checked by binding it), below the
// ephemeral range. Never returns the same port twice in one test process.
uint16_t free_port();

// -- files ---------------------------------------------------------------------

// A fresh directory under /tmp, removed with everything in it on destruction.
class temp_dir {
public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const { return path_; }
  // path()/relative
  std::string file(const std::string& relative) const;
  // Writes `text` to path()/relative (creating parent dirs); returns the path.
  std::string write(const std::string& relative, const std::string& text) const;

private:
  std::string path_;
};

std::string read_file(const std::string& path);

// The first line of `text` containing `needle`, or "" when none does.
std::string line_with(const std::string& text, const std::string& needle);

// -- fleet configs -------------------------------------------------------------

struct node_spec {
  std::string name;
  std::string tier = "pi";
  std::vector<std::string> roles;
  uint16_t port = 0;       // actor port
  uint16_t http_port = 0;
};

// One spec per (name, tier), with fresh actor and HTTP ports.
std::vector<node_spec> make_specs(
  const std::vector<std::pair<std::string, std::string>>& names_and_tiers);

// `n` pi nodes named a, b, c, ... with fresh ports.
std::vector<node_spec> make_specs(size_t n);

// A fleet file: [cluster] name plus `extra_cluster_lines`, then
// `tls_section` verbatim (e.g. "[tls]\nca = ...\n"), then one [[node]] per spec
// on 127.0.0.1.
std::string fleet_toml(const std::string& cluster, const std::vector<node_spec>& specs,
                       const std::string& extra_cluster_lines = "",
                       const std::string& tls_section = "");

// -- processes -----------------------------------------------------------------

// One brnode (or any program) run as a child process; stdout and stderr go
// to a log file. Not copyable; killed with SIGKILL on destruction.
class node_process {
public:
  explicit node_process(std::string log_path);
  ~node_process();
  node_process(const node_process&) = delete;
  node_process& operator=(const node_process&) = delete;

  // Starts `bin --config CONFIG --name NAME --data-dir DIR ARGS...` with the
  // current environment plus `env` ("KEY=VALUE"). Output is appended to the
  // log file, so a restarted node keeps its earlier log. REQUIREs that the
  // fork succeeded and that no earlier run is still going.
  void start(const std::string& bin, const std::string& config, const std::string& name,
             const std::string& data_dir, const std::vector<std::string>& extra_args = {},
             const std::vector<std::string>& env = {});

  // SIGKILL, then reap. Returns the moment the signal was sent.
  steady::time_point kill9();
  // SIGTERM; does not wait.
  void term();
  // Waits for the process to exit: its exit code (128 + signal when killed
  // by a signal), or nullopt when it is still running after `timeout`.
  std::optional<int> wait_exit(millis timeout);
  bool running();
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string log_text() const;

private:
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

struct run_result {
  int exit_code = -1;  // -1: did not finish within the timeout (then killed)
  std::string output;  // stdout and stderr, interleaved
};

// Runs `argv` (argv[0] is the program path) to completion, no shell.
run_result run_program(const std::vector<std::string>& argv, millis timeout = 10s,
                       const std::vector<std::string>& env = {});

// Runs brnode with `args` (not including argv[0]).
run_result run_brnode(const std::vector<std::string>& args, millis timeout = 10s,
                      const std::vector<std::string>& env = {});

// -- HTTP ----------------------------------------------------------------------

struct http_reply {
  int status = 0;  // 0: no answer (connection refused, timeout)
  std::string body;
  std::string content_type;
};

// GET http://127.0.0.1:PORT/PATH with short timeouts (connect 300 ms, read 2 s).
http_reply http_get_text(uint16_t port, const std::string& path);

struct json_reply {
  int status = 0;        // 0: no answer
  nlohmann::json body;   // null when the body is not JSON
};

json_reply http_get_json(uint16_t port, const std::string& path);

// The row for `node` in /api/members of the node serving `http_port`, or
// nullopt when that node does not answer or has no such row.
std::optional<nlohmann::json> member_row(uint16_t http_port, const std::string& node);

// The "state" of `node` as seen by the node serving `http_port`, or "" when
// it cannot be read.
std::string member_state(uint16_t http_port, const std::string& node);

// -- waiting and timing ---------------------------------------------------------

// Polls `pred` every `poll` until it holds (true) or `timeout` passes (false).
bool wait_until(const std::function<bool()>& pred, millis timeout, millis poll = 10ms);

// An observer of the fleet: a node name and its HTTP port.
using watcher = std::pair<std::string, uint16_t>;

// Polls every watcher every `poll` until each shows `node` in `state`, or
// `timeout` after `since` passes. Returns, per watcher name, the ms from
// `since` to the first poll that saw the state; watchers that never saw it
// within the timeout are missing from the map.
std::map<std::string, long> ms_until_state(const std::vector<watcher>& watchers,
                                           const std::string& node, const std::string& state,
                                           steady::time_point since, millis timeout,
                                           millis poll = 10ms);

// Watches for `duration`: true when any watcher ever showed `node` in `state`.
bool ever_in_state(const std::vector<watcher>& watchers, const std::string& node,
                   const std::string& state, millis duration);

// Watches for `duration`: "" when every watcher showed `node` in `state` at
// every poll, else what broke it first ("a saw b down after 420 ms").
std::string first_break(const std::vector<watcher>& watchers, const std::string& node,
                        const std::string& state, millis duration);

// "a=123 ms, b=130 ms" for MESSAGE output; the largest value in `max_ms`.
std::string describe_times(const std::map<std::string, long>& times, long* max_ms = nullptr);

// -- Prometheus text ----------------------------------------------------------

struct metric_sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Parses the text exposition format; comment lines are skipped.
std::vector<metric_sample> parse_metrics(const std::string& text);

// Samples named `name` whose labels include every pair of `labels`.
std::vector<metric_sample> find_metrics(const std::vector<metric_sample>& all,
                                        const std::string& name,
                                        const std::map<std::string, std::string>& labels = {});

// -- a whole fleet -------------------------------------------------------------

// A fleet config in a temporary directory and one node_process per started
// node, each with its data in DIR/data/NAME and its log in DIR/NAME.log.
// When the test has failed, the destructor prints the tail of every log.
class fleet {
public:
  fleet(std::string cluster, std::vector<node_spec> specs, std::string extra_cluster_lines = "",
        std::string tls_section = "");
  ~fleet();
  fleet(const fleet&) = delete;
  fleet& operator=(const fleet&) = delete;

  temp_dir& dir() { return dir_; }
  const std::string& config_path() const { return config_path_; }
  const std::vector<node_spec>& specs() const { return specs_; }
  const node_spec& spec(const std::string& name) const;
  uint16_t http_port(const std::string& name) const { return spec(name).http_port; }
  std::string data_dir(const std::string& name) const;

  // Starts one node with this fleet's config (or `config` when not empty).
  node_process& start(const std::string& name, const std::string& config = "",
                      const std::vector<std::string>& extra_args = {});
  void start_all();
  node_process& process(const std::string& name);

  // Every other node that is running, as watchers.
  std::vector<watcher> watchers_except(const std::string& name);
  // Waits until every running node shows every other running node alive and
  // answers /readyz with 200.
  bool wait_all_alive(millis timeout = 10s);
  // Watches for `duration`: "" when every running node saw every other
  // running node alive at every poll, else what broke it first.
  std::string first_break_of_join(millis duration);
  // The last lines of every node's log.
  std::string logs(size_t last_lines = 30) const;

private:
  temp_dir dir_;
  std::string cluster_;
  std::vector<node_spec> specs_;
  std::string config_path_;
  std::map<std::string, std::unique_ptr<node_process>> processes_;
};

} // namespace brd::test
