// The harness's child processes: brnode nodes and one-shot programs, each
// spawned with fork + execve, its output in a file, reaped without blocking.
#include "harness.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>

extern char** environ;

namespace brd::test {

namespace {

// "KEY=VALUE" entries of the current environment, overridden by `extra`.
std::vector<std::string> merged_env(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  auto key_of = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv{*e};
    bool overridden = std::any_of(extra.begin(), extra.end(),
                                  [&](const auto& x) { return key_of(x) == key_of(kv); });
    if (!overridden)
      out.push_back(std::move(kv));
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// fork + execve with stdout and stderr on `out_fd`, stdin on /dev/null and
// no other descriptor. Everything the child touches is prepared before the
// fork, so the child only makes system calls.
pid_t spawn(std::vector<std::string> argv, const std::vector<std::string>& env, int out_fd) {
  auto envs = merged_env(env);
  auto c_argv = c_strings(argv);
  auto c_env = c_strings(envs);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(127);
    ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    ::close_range(3, ~0U, 0); // no test socket or file leaks into the node
    ::execve(c_argv[0], c_argv.data(), c_env.data());
    const char msg[] = "harness: execve failed\n";
    [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(null_fd);
  return pid;
}

int decode_status(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

// Non-blocking reap: the exit code, or nullopt while `pid` runs.
std::optional<int> try_reap(pid_t pid) {
  int status = 0;
  pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == pid)
    return decode_status(status);
  if (r < 0 && errno == ECHILD)
    return -1;
  return std::nullopt;
}

} // namespace

// -- processes -----------------------------------------------------------------

node_process::node_process(std::string log_path) : log_path_(std::move(log_path)) {}

node_process::~node_process() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

void node_process::start(const std::string& bin, const std::string& config,
                         const std::string& name, const std::string& data_dir,
                         const std::vector<std::string>& extra_args,
                         const std::vector<std::string>& env) {
  REQUIRE_MESSAGE((pid_ <= 0 || exit_code_), "node " << name << " is still running");
  std::vector<std::string> argv{bin, "--config", config, "--name", name, "--data-dir", data_dir};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  REQUIRE_MESSAGE(fd >= 0, "cannot open " << log_path_ << ": " << std::strerror(errno));
  exit_code_.reset();
  pid_ = spawn(std::move(argv), env, fd);
  ::close(fd);
  REQUIRE_MESSAGE(pid_ > 0, "fork: " << std::strerror(errno));
}

steady::time_point node_process::kill9() {
  auto at = steady::now();
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_code_ = decode_status(status);
  }
  return at;
}

void node_process::term() {
  if (pid_ > 0 && !exit_code_)
    ::kill(pid_, SIGTERM);
}

std::optional<int> node_process::wait_exit(millis timeout) {
  auto deadline = steady::now() + timeout;
  while (pid_ > 0 && !exit_code_) {
    exit_code_ = try_reap(pid_);
    if (exit_code_ || steady::now() >= deadline)
      break;
    std::this_thread::sleep_for(5ms);
  }
  return exit_code_;
}

bool node_process::running() {
  if (pid_ <= 0 || exit_code_)
    return false;
  exit_code_ = try_reap(pid_);
  return !exit_code_;
}

std::string node_process::log_text() const {
  return read_file(log_path_);
}

run_result run_program(const std::vector<std::string>& argv, millis timeout,
                       const std::vector<std::string>& env) {
  char out_path[] = "/tmp/brd-run-XXXXXX";
  int fd = ::mkstemp(out_path);
  REQUIRE_MESSAGE(fd >= 0, "mkstemp: " << std::strerror(errno));
  pid_t pid = spawn(argv, env, fd);
  ::close(fd);
  REQUIRE_MESSAGE(pid > 0, "fork: " << std::strerror(errno));
  run_result result;
  auto deadline = steady::now() + timeout;
  std::optional<int> code;
  while (!(code = try_reap(pid)) && steady::now() < deadline)
    std::this_thread::sleep_for(5ms);
  if (!code) {
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  result.exit_code = code.value_or(-1);
  result.output = read_file(out_path);
  ::unlink(out_path);
  return result;
}

run_result run_brnode(const std::vector<std::string>& args, millis timeout,
                      const std::vector<std::string>& env) {
  std::vector<std::string> argv{brnode_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, timeout, env);
}

} // namespace brd::test
