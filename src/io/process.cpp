// vfork + exec (not fork) so that starting a child is safe in a process full
// of actor threads: the child only makes system calls until exec, and reports
// exec failures back to us through a close-on-exec pipe. The loop below reads the pipe with poll, reaps the child and
// enforces the timeout; see process.hpp for the contract.
#include "io/process.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/errors.hpp"

namespace brd::io {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long we keep reading after the child exited, for output still in flight
// or held by a leftover member of its group.
constexpr milliseconds drain_time{200};
// The longest single wait, so that a child that exits while a grandchild
// keeps the pipe open is noticed promptly.
constexpr milliseconds poll_slice{50};

caf::error start_failure(const std::string& what) {
  return make_error(brd_errc::io_failure, what);
}

// Owns one file descriptor.
class fd_owner {
public:
  explicit fd_owner(int fd = -1) : fd_(fd) {}
  ~fd_owner() { reset(); }
  fd_owner(const fd_owner&) = delete;
  fd_owner& operator=(const fd_owner&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_;
};

std::vector<std::string> child_environment(const process_spec& spec) {
  std::vector<std::pair<std::string, std::string>> vars;
  for (const char* name : {"PATH", "HOME", "LANG"})
    if (const char* value = std::getenv(name))
      vars.emplace_back(name, value);
  if (std::none_of(vars.begin(), vars.end(), [](auto& v) { return v.first == "PATH"; }))
    vars.emplace_back("PATH", "/usr/local/bin:/usr/bin:/bin");
  for (const auto& [name, value] : spec.env) {
    auto same = [&](auto& v) { return v.first == name; };
    vars.erase(std::remove_if(vars.begin(), vars.end(), same), vars.end());
    vars.emplace_back(name, value);
  }
  std::vector<std::string> result;
  for (auto& [name, value] : vars)
    result.push_back(name + "=" + value);
  return result;
}

std::string_view path_of(const std::vector<std::string>& env) {
  for (const auto& entry : env)
    if (entry.rfind("PATH=", 0) == 0)
      return std::string_view{entry}.substr(5);
  return {};
}

bool is_executable_file(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

// The absolute path the child will exec, resolved as execvp would in the
// child's directory with the child's PATH.
caf::expected<std::string> find_program(const std::string& name, std::string_view path_var,
                                        const std::string& cwd) {
  std::error_code ec;
  auto base = cwd.empty() ? fs::current_path(ec) : fs::absolute(cwd, ec);
  auto within = [&](const fs::path& p) { return p.is_absolute() ? p : base / p; };
  if (name.find('/') != std::string::npos) {
    auto p = within(name);
    if (is_executable_file(p))
      return p.string();
    return start_failure("program not found or not executable: " + name);
  }
  size_t begin = 0;
  while (begin <= path_var.size()) {
    auto end = std::min(path_var.find(':', begin), path_var.size());
    auto dir = path_var.substr(begin, end - begin);
    auto p = within(fs::path{dir.empty() ? "." : std::string{dir}}) / name;
    if (is_executable_file(p))
      return p.string();
    begin = end + 1;
  }
  return start_failure("program not found in PATH: " + name);
}

caf::expected<int> open_log(const std::string& path) {
  if (path.empty())
    return -1;
  std::error_code ec;
  auto parent = fs::path{path}.parent_path();
  if (!parent.empty())
    fs::create_directories(parent, ec);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0)
    return start_failure("cannot open log file " + path + ": " + std::strerror(errno));
  return fd;
}

// A pipe whose two ends are both above stderr, so that dup2 onto 1 and 2 in
// the child never lands on one of its own ends.
caf::error make_output_pipe(fd_owner& read_end, fd_owner& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return start_failure(std::string{"cannot create a pipe: "} + std::strerror(errno));
  for (int i = 0; i < 2; ++i) {
    if (fds[i] < 3) {
      int moved = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
      ::close(fds[i]);
      fds[i] = moved;
    }
  }
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  if (fds[0] < 0 || fds[1] < 0)
    return start_failure(std::string{"cannot create a pipe: "} + std::strerror(errno));
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  return {};
}

std::vector<char*> c_strings(std::vector<std::string>& xs) {
  std::vector<char*> result;
  for (auto& x : xs)
    result.push_back(x.data());
  result.push_back(nullptr);
  return result;
}

// What the child does between vfork and exec: only system calls on data
// prepared before the fork. It dies with its parent thread (the one blocked
// in run_process): PR_SET_PDEATHSIG, so a brnode killed with SIGKILL does not
// leave its scripts running (see process.hpp for the rest of their group).
// An exec failure sends errno up `report` (close-on-exec) and exits 127.
[[noreturn]] void child_after_vfork(const char* program, char* const* argv, char* const* envp,
                                    const char* cwd, int stdout_fd, int stderr_fd, int report,
                                    pid_t parent) {
  ::setpgid(0, 0);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig)
    ::sigaction(sig, &dfl, nullptr); // fails harmlessly for SIGKILL, SIGSTOP, 32, 33
  int err = 0;
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent)
    err = ESRCH; // our parent is gone already
  int null_fd = err == 0 ? ::open("/dev/null", O_RDONLY) : -1;
  if (err == 0 && (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0
                   || ::dup2(stderr_fd, 2) < 0))
    err = errno;
  if (err == 0 && cwd != nullptr && ::chdir(cwd) != 0)
    err = errno;
  if (err == 0) {
    // `report` stays open until exec (it is close-on-exec).
    ::close_range(3, static_cast<unsigned>(report) - 1, 0);
    ::close_range(static_cast<unsigned>(report) + 1, ~0u, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(program, argv, envp);
    err = errno;
  }
  ssize_t ignored = ::write(report, &err, sizeof err);
  (void)ignored;
  ::_exit(127);
}

// vfork + exec rather than posix_spawn, which cannot set the parent-death
// signal. Signals stay blocked across the vfork so that no handler of ours
// runs in the child.
caf::expected<pid_t> spawn_child(const std::string& program, const process_spec& spec,
                                 std::vector<std::string> env, int stdout_fd, int stderr_fd) {
  fd_owner report_read, report_write;
  if (auto err = make_output_pipe(report_read, report_write))
    return err;
  ::fcntl(report_read.get(), F_SETFL, ::fcntl(report_read.get(), F_GETFL) & ~O_NONBLOCK);
  auto args = spec.argv;
  auto argv = c_strings(args);
  auto envp = c_strings(env);
  const char* cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t parent = ::getpid();
  pid_t pid = ::vfork();
  if (pid == 0)
    child_after_vfork(program.c_str(), argv.data(), envp.data(), cwd, stdout_fd, stderr_fd,
                      report_write.get(), parent);
  int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  auto where = spec.cwd.empty() ? std::string{} : " in " + spec.cwd;
  if (pid < 0)
    return start_failure("cannot start " + spec.argv[0] + where + ": "
                         + std::strerror(fork_errno));
  report_write.reset();
  int child_errno = 0;
  ssize_t n = 0;
  do
    n = ::read(report_read.get(), &child_errno, sizeof child_errno);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR)
      ;
    return start_failure("cannot start " + spec.argv[0] + where + ": "
                         + std::strerror(child_errno));
  }
  return pid;
}

// Where one output stream goes: either the log file as it comes plus the
// tail in memory, or (capture) all of it in memory up to a limit.
class output_sink {
public:
  output_sink(int log_fd, size_t tail_bytes) : log_fd_(log_fd), tail_bytes_(tail_bytes) {}
  static output_sink capture() {
    output_sink sink{-1, max_captured_output};
    sink.capture_ = true;
    return sink;
  }

  void append(const char* data, size_t size) {
    if (capture_) {
      auto room = max_captured_output - std::min(max_captured_output, buffer_.size());
      truncated_ = truncated_ || size > room;
      buffer_.append(data, std::min(size, room));
      return;
    }
    for (size_t done = 0; log_fd_ >= 0 && done < size;) {
      auto n = ::write(log_fd_, data + done, size - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break; // a full disk must not stop the child: the tail still holds the end
      done += static_cast<size_t>(n);
    }
    buffer_.append(data, size);
    constexpr size_t slack = 1 << 16; // trim now and then, not on every read
    if (buffer_.size() - std::min(buffer_.size(), tail_bytes_) > slack)
      buffer_.erase(0, buffer_.size() - tail_bytes_);
  }

  bool truncated() const { return truncated_; }

  // Everything captured, or the tail starting at a UTF-8 character boundary.
  std::string take() {
    if (!capture_ && buffer_.size() > tail_bytes_) {
      buffer_.erase(0, buffer_.size() - tail_bytes_);
      size_t skip = 0;
      while (skip < 3 && skip < buffer_.size() && (buffer_[skip] & 0xC0) == 0x80)
        ++skip;
      buffer_.erase(0, skip);
    }
    return std::move(buffer_);
  }

private:
  int log_fd_;
  size_t tail_bytes_;
  bool capture_ = false;
  bool truncated_ = false;
  std::string buffer_;
};

// One pipe from the child and where its bytes go.
struct channel {
  int fd;
  output_sink* sink;
  bool open = true;
};

// Reads what the pipe holds now. Returns false once the pipe is at EOF.
bool read_available(int fd, output_sink& sink) {
  char buf[65536];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      sink.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

bool any_open(const std::vector<channel>& channels) {
  return std::any_of(channels.begin(), channels.end(), [](auto& c) { return c.open; });
}

// Waits up to `wait` for output on the open channels, reading whatever
// arrives and closing channels at EOF; with none open it just sleeps.
void pump(std::vector<channel>& channels, milliseconds wait) {
  pollfd fds[2];
  channel* polled[2];
  nfds_t n = 0;
  for (auto& c : channels)
    if (c.open && n < 2) {
      fds[n] = pollfd{c.fd, POLLIN, 0};
      polled[n++] = &c;
    }
  int ms = static_cast<int>(std::max<int64_t>(0, wait.count()));
  if (::poll(n > 0 ? fds : nullptr, n, ms) <= 0)
    return;
  for (nfds_t i = 0; i < n; ++i)
    if (fds[i].revents != 0)
      polled[i]->open = read_available(fds[i].fd, *polled[i]->sink);
}

// True while some member of process group `pgid` is alive; zombies waiting
// for a parent that does not reap them count as dead.
bool group_alive(pid_t pgid) {
  if (::kill(-pgid, 0) != 0)
    return errno == EPERM;
  return live_group_members(pgid) > 0;
}

bool reap(pid_t pid, int& status, bool block) {
  for (;;) {
    auto rc = ::waitpid(pid, &status, block ? 0 : WNOHANG);
    if (rc == pid)
      return true;
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc < 0) { // ECHILD: someone else reaped it (SIGCHLD ignored)
      status = -1;  // neither exited nor signaled: exit_code -1, signal 0
      return true;
    }
    return false;
  }
}

// process_spec::group_file while the child runs: holds its process group id.
class group_file {
public:
  group_file(std::string path, pid_t pgid) : path_(std::move(path)) {
    if (path_.empty())
      return;
    std::error_code ec;
    fs::create_directories(fs::path{path_}.parent_path(), ec);
    std::ofstream{path_, std::ios::trunc} << pgid << "\n";
  }
  ~group_file() {
    if (!path_.empty())
      ::unlink(path_.c_str());
  }
  group_file(const group_file&) = delete;
  group_file& operator=(const group_file&) = delete;

private:
  std::string path_;
};

// Runs the child to its end; see process.hpp for the timeout policy.
process_result supervise(pid_t pid, std::vector<channel>& channels, const process_spec& spec,
                         clock_type::time_point start) {
  process_result result;
  result.pid = pid;
  bool exited = false;
  int status = 0;
  auto has_deadline = spec.timeout.count() > 0;
  auto deadline = start + spec.timeout;
  auto cancelled = [&] { return spec.cancel != nullptr && spec.cancel->load(); };
  // Phase 1: the child runs until it exits, its time is up or we are told to
  // stop.
  while (!exited) {
    auto now = clock_type::now();
    if ((has_deadline && now >= deadline) || cancelled())
      break;
    auto wait = has_deadline ? std::min<milliseconds>(poll_slice,
                  std::chrono::duration_cast<milliseconds>(deadline - now) + milliseconds{1})
                             : poll_slice;
    // With the pipe closed the child is exiting: look again soon.
    pump(channels, any_open(channels) ? wait : std::min(wait, milliseconds{2}));
    exited = reap(pid, status, false);
  }
  if (!exited) {
    // Phase 2: SIGTERM to the group, SIGKILL to what is left after the grace.
    result.cancelled = cancelled();
    result.timed_out = !result.cancelled;
    ::kill(-pid, SIGTERM);
    auto kill_at = clock_type::now() + spec.kill_grace;
    while (clock_type::now() < kill_at && (!exited || group_alive(pid))) {
      pump(channels, milliseconds{20});
      if (!exited)
        exited = reap(pid, status, false);
    }
    if (!exited || group_alive(pid))
      ::kill(-pid, SIGKILL);
    if (!exited)
      reap(pid, status, true);
  }
  // Drain: output still in the pipe, or held open by a leftover grandchild.
  auto drain_until = clock_type::now() + drain_time;
  while (any_open(channels) && clock_type::now() < drain_until)
    pump(channels, poll_slice);
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

} // namespace

caf::expected<process_result> run_process(const process_spec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty())
    return start_failure("cannot start a process without a program name");
  std::error_code ec;
  if (!spec.cwd.empty() && !fs::is_directory(spec.cwd, ec))
    return start_failure("cannot start " + spec.argv[0] + ": no directory " + spec.cwd);
  auto env = child_environment(spec);
  auto program = find_program(spec.argv[0], path_of(env), spec.cwd);
  if (!program)
    return program.error();
  auto log_fd = open_log(spec.log_path);
  if (!log_fd)
    return log_fd.error();
  fd_owner log{*log_fd}, read_end, write_end, data_read_end, data_write_end;
  if (auto err = make_output_pipe(read_end, write_end))
    return err;
  if (spec.capture_stdout)
    if (auto err = make_output_pipe(data_read_end, data_write_end))
      return err;
  auto start = clock_type::now();
  auto stdout_fd = spec.capture_stdout ? data_write_end.get() : write_end.get();
  auto pid = spawn_child(*program, spec, std::move(env), stdout_fd, write_end.get());
  if (!pid)
    return pid.error();
  write_end.reset(); // the child holds the only writers now: EOF when it is done
  data_write_end.reset();
  output_sink logged{log.get(), spec.tail_bytes};
  auto captured = output_sink::capture();
  std::vector<channel> channels{{read_end.get(), &logged}};
  if (spec.capture_stdout)
    channels.push_back({data_read_end.get(), &captured});
  group_file group{spec.group_file, *pid};
  auto result = supervise(*pid, channels, spec, start);
  result.tail = logged.take();
  result.output = captured.take();
  result.output_truncated = captured.truncated();
  result.elapsed = std::chrono::duration_cast<milliseconds>(clock_type::now() - start);
  return result;
}

int kill_stale_group(const std::string& group_file) {
  std::ifstream in{group_file};
  long pgid = 0;
  if (!(in >> pgid) || pgid <= 1)
    return 0;
  in.close();
  int killed = 0;
  if (group_alive(static_cast<pid_t>(pgid)) && ::kill(static_cast<pid_t>(-pgid), SIGKILL) == 0)
    killed = static_cast<int>(pgid);
  ::unlink(group_file.c_str());
  return killed;
}

int live_group_members(int pgid) {
  int count = 0;
  std::error_code ec;
  for (fs::directory_iterator it{"/proc", ec}, end; !ec && it != end; it.increment(ec)) {
    std::ifstream in{it->path() / "stat"};
    std::string line;
    if (!std::getline(in, line))
      continue;
    auto close = line.rfind(')'); // the command name may hold spaces and ')'
    if (close == std::string::npos)
      continue;
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %ld %ld", &state, &ppid, &pgrp) == 3
        && pgrp == pgid && state != 'Z' && state != 'X')
      ++count;
  }
  return count;
}

} // namespace brd::io
