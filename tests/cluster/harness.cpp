#include "harness.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <netinet/in.h>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>
#include <httplib.h>

namespace brd::test {

namespace fs = std::filesystem;

namespace {

// Remembers whether an assertion of the running test case has failed, so a
// fleet can print its nodes' logs only when they are needed.
bool test_failed = false;

struct failure_listener : doctest::IReporter {
  explicit failure_listener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { test_failed = false; }
  void test_case_reenter(const doctest::TestCaseData&) override { test_failed = false; }
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override { test_failed = true; }
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& ad) override { test_failed = test_failed || ad.m_failed; }
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

long ms_since(steady::time_point since) {
  return std::chrono::duration_cast<millis>(steady::now() - since).count();
}

std::string last_lines(const std::string& text, size_t n) {
  size_t pos = text.size();
  for (size_t i = 0; i <= n && pos != std::string::npos && pos > 0; ++i)
    pos = text.rfind('\n', pos - 1);
  return pos == std::string::npos || pos == 0 ? text : text.substr(pos + 1);
}

} // namespace

REGISTER_LISTENER("brd_failure", 1, failure_listener);

bool current_test_failed() {
  return test_failed;
}

// -- environment ---------------------------------------------------------------

std::string brnode_bin() {
  const char* bin = std::getenv("BRNODE_BIN");
  REQUIRE_MESSAGE(bin != nullptr, "set BRNODE_BIN to the brnode binary (meson test does)");
  REQUIRE_MESSAGE(::access(bin, X_OK) == 0, "BRNODE_BIN is not executable: " << bin);
  return bin;
}

std::string find_program(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs{path != nullptr ? path : "/usr/bin:/bin"};
  for (std::string dir; std::getline(dirs, dir, ':');) {
    auto candidate = (fs::path{dir.empty() ? "." : dir} / program).string();
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return {};
}

// Ports come from below the kernel's ephemeral range (32768 and up on
// Linux), so an outgoing connection cannot take one before its node binds it.
uint16_t free_port() {
  static std::mutex mtx;
  static std::set<uint16_t> handed_out;
  static std::minstd_rand random{static_cast<unsigned>(::getpid()) * 7919u
                                 + static_cast<unsigned>(steady::now().time_since_epoch().count())};
  std::lock_guard<std::mutex> guard{mtx};
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto port = static_cast<uint16_t>(20000 + random() % 12000);
    if (handed_out.count(port) > 0)
      continue;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY); // brnode's HTTP binds 0.0.0.0
    addr.sin_port = htons(port);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (ok) {
      handed_out.insert(port);
      return port;
    }
  }
  FAIL("no free port between 20000 and 32000");
  return 0;
}

// -- files ---------------------------------------------------------------------

temp_dir::temp_dir() {
  char tmpl[] = "/tmp/brd-cluster-XXXXXX";
  REQUIRE_MESSAGE(::mkdtemp(tmpl) != nullptr, "mkdtemp: " << std::strerror(errno));
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  const char* keep = std::getenv("BRD_KEEP_TEST_DIRS");
  if (keep != nullptr && *keep != '\0' && std::string{keep} != "0") {
    std::fprintf(stderr, "harness: kept %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string temp_dir::file(const std::string& relative) const {
  return (fs::path{path_} / relative).string();
}

std::string temp_dir::write(const std::string& relative, const std::string& text) const {
  auto path = file(relative);
  fs::create_directories(fs::path{path}.parent_path());
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << text;
  REQUIRE_MESSAGE(out.good(), "cannot write " << path);
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string line_with(const std::string& text, const std::string& needle) {
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos)
      return line;
  return {};
}

// -- fleet configs -------------------------------------------------------------

std::vector<node_spec> make_specs(
  const std::vector<std::pair<std::string, std::string>>& names_and_tiers) {
  std::vector<node_spec> out;
  for (const auto& [name, tier] : names_and_tiers)
    out.push_back({name, tier, {"test"}, free_port(), free_port()});
  return out;
}

std::vector<node_spec> make_specs(size_t n) {
  std::vector<std::pair<std::string, std::string>> names;
  for (size_t i = 0; i < n; ++i)
    names.emplace_back(std::string(1, static_cast<char>('a' + i)), "pi");
  return make_specs(names);
}

std::string fleet_toml(const std::string& cluster, const std::vector<node_spec>& specs,
                       const std::string& extra_cluster_lines,
                       const std::string& tls_section) {
  std::ostringstream out;
  out << "[cluster]\nname = \"" << cluster << "\"\n" << extra_cluster_lines;
  if (!extra_cluster_lines.empty() && extra_cluster_lines.back() != '\n')
    out << '\n';
  out << '\n' << tls_section << (tls_section.empty() ? "" : "\n");
  for (const auto& s : specs) {
    out << "[[node]]\nname = \"" << s.name << "\"\ntier = \"" << s.tier << "\"\nroles = [";
    for (size_t i = 0; i < s.roles.size(); ++i)
      out << (i > 0 ? ", " : "") << '"' << s.roles[i] << '"';
    out << "]\nhost = \"127.0.0.1\"\nport = " << s.port << "\nhttp_port = " << s.http_port
        << "\n\n";
  }
  return out.str();
}

// -- HTTP ----------------------------------------------------------------------

http_reply http_get_text(uint16_t port, const std::string& path) {
  httplib::Client client{"127.0.0.1", port};
  client.set_connection_timeout(0, 300'000);
  client.set_read_timeout(2, 0);
  client.set_write_timeout(1, 0);
  auto res = client.Get(path);
  if (!res)
    return {};
  return {res->status, res->body, res->get_header_value("Content-Type")};
}

json_reply http_get_json(uint16_t port, const std::string& path) {
  auto reply = http_get_text(port, path);
  return {reply.status, nlohmann::json::parse(reply.body, nullptr, false, false)};
}

std::optional<nlohmann::json> member_row(uint16_t http_port, const std::string& node) {
  auto reply = http_get_json(http_port, "/api/members");
  if (reply.status != 200 || !reply.body.is_array())
    return std::nullopt;
  for (const auto& row : reply.body)
    if (row.is_object() && row.value("node", "") == node)
      return row;
  return std::nullopt;
}

std::string member_state(uint16_t http_port, const std::string& node) {
  auto row = member_row(http_port, node);
  return row ? row->value("state", "") : "";
}

// -- waiting and timing ---------------------------------------------------------

bool wait_until(const std::function<bool()>& pred, millis timeout, millis poll) {
  auto deadline = steady::now() + timeout;
  for (;;) {
    if (pred())
      return true;
    if (steady::now() >= deadline)
      return false;
    std::this_thread::sleep_for(poll);
  }
}

std::map<std::string, long> ms_until_state(const std::vector<watcher>& watchers,
                                           const std::string& node, const std::string& state,
                                           steady::time_point since, millis timeout,
                                           millis poll) {
  std::map<std::string, long> seen;
  auto deadline = since + timeout;
  for (;;) {
    for (const auto& [name, port] : watchers)
      if (seen.count(name) == 0 && member_state(port, node) == state)
        seen[name] = ms_since(since); // when the answer arrived: an upper bound
    if (seen.size() == watchers.size() || steady::now() >= deadline)
      return seen;
    std::this_thread::sleep_for(poll);
  }
}

bool ever_in_state(const std::vector<watcher>& watchers, const std::string& node,
                   const std::string& state, millis duration) {
  auto deadline = steady::now() + duration;
  while (steady::now() < deadline) {
    for (const auto& w : watchers)
      if (member_state(w.second, node) == state)
        return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::string first_break(const std::vector<watcher>& watchers, const std::string& node,
                        const std::string& state, millis duration) {
  auto since = steady::now();
  while (steady::now() < since + duration) {
    for (const auto& [name, port] : watchers)
      if (auto seen = member_state(port, node); seen != state)
        return name + " saw " + node + " " + (seen.empty() ? "(no answer)" : seen) + " after "
               + std::to_string(ms_since(since)) + " ms";
    std::this_thread::sleep_for(20ms);
  }
  return {};
}

std::string describe_times(const std::map<std::string, long>& times, long* max_ms) {
  std::string text;
  long most = -1;
  for (const auto& [name, ms] : times) {
    text += (text.empty() ? "" : ", ") + name + "=" + std::to_string(ms) + " ms";
    most = std::max(most, ms);
  }
  if (max_ms != nullptr)
    *max_ms = most;
  return text.empty() ? "(none)" : text;
}

// -- a whole fleet -------------------------------------------------------------

fleet::fleet(std::string cluster, std::vector<node_spec> specs,
             std::string extra_cluster_lines, std::string tls_section)
  : cluster_(std::move(cluster)), specs_(std::move(specs)) {
  config_path_ = dir_.write("fleet.toml",
                            fleet_toml(cluster_, specs_, extra_cluster_lines, tls_section));
}

fleet::~fleet() {
  if (current_test_failed())
    std::fprintf(stderr, "%s\n", logs(40).c_str());
}

const node_spec& fleet::spec(const std::string& name) const {
  auto i = std::find_if(specs_.begin(), specs_.end(),
                        [&](const node_spec& s) { return s.name == name; });
  REQUIRE_MESSAGE(i != specs_.end(), "no node " << name << " in the test fleet");
  return *i;
}

std::string fleet::data_dir(const std::string& name) const {
  return dir_.file("data/" + name);
}

node_process& fleet::start(const std::string& name, const std::string& config,
                           const std::vector<std::string>& extra_args) {
  auto& slot = processes_[name];
  if (!slot)
    slot = std::make_unique<node_process>(dir_.file(name + ".log"));
  slot->start(brnode_bin(), config.empty() ? config_path_ : config, name, data_dir(name),
              extra_args);
  return *slot;
}

void fleet::start_all() {
  for (const auto& s : specs_)
    start(s.name);
}

node_process& fleet::process(const std::string& name) {
  auto i = processes_.find(name);
  REQUIRE_MESSAGE(i != processes_.end(), "node " << name << " was never started");
  return *i->second;
}

std::vector<watcher> fleet::watchers_except(const std::string& name) {
  std::vector<watcher> out;
  for (auto& [n, p] : processes_)
    if (n != name && p->running())
      out.emplace_back(n, spec(n).http_port);
  return out;
}

bool fleet::wait_all_alive(millis timeout) {
  return wait_until(
    [&] {
      for (auto& [n, p] : processes_) {
        if (!p->running())
          continue;
        if (http_get_text(spec(n).http_port, "/readyz").status != 200)
          return false;
        for (auto& [m, q] : processes_)
          if (m != n && q->running() && member_state(spec(n).http_port, m) != "alive")
            return false;
      }
      return true;
    },
    timeout, 50ms);
}

std::string fleet::first_break_of_join(millis duration) {
  std::vector<std::pair<std::string, watcher>> pairs; // (observed node, observer)
  for (auto& [n, p] : processes_)
    for (auto& [m, q] : processes_)
      if (n != m && p->running() && q->running())
        pairs.push_back({m, {n, spec(n).http_port}});
  auto since = steady::now();
  while (steady::now() < since + duration) {
    for (const auto& [node, w] : pairs)
      if (auto seen = member_state(w.second, node); seen != "alive")
        return w.first + " saw " + node + " " + (seen.empty() ? "(no answer)" : seen)
               + " after " + std::to_string(ms_since(since)) + " ms";
    std::this_thread::sleep_for(50ms);
  }
  return {};
}

std::string fleet::logs(size_t n) const {
  std::string out;
  for (const auto& [name, p] : processes_)
    out += "\n== log of " + name + " (" + p->log_path() + ") ==\n" + last_lines(p->log_text(), n);
  return out;
}

} // namespace brd::test
