// Runs a child to its end: io/process_spawn.cpp starts it (vfork + exec),
// the loop below reads its pipes with poll, reaps it and enforces the
// timeout and the cancel flag; see process.hpp for the contract.
#include "io/process.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/process_spawn.hpp"
#include "runtime/errors.hpp"

namespace brd::io {

namespace {

using namespace detail;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long we keep reading after the child exited, for output still in flight
// or held by a leftover member of its group.
constexpr milliseconds drain_time{200};
// How long an ended group may take to be gone after its last signal.
constexpr milliseconds group_exit_wait{1000};
// The longest single wait, so that a child that exits while a grandchild
// keeps the pipe open is noticed promptly.
constexpr milliseconds poll_slice{50};


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
// The group file (the process group id, then the boot id it belongs to):
// its directory is made before the start, the child writes it (so it exists
// before the script can start anything; spawn_child), and it is removed
// when the run ends.
class group_file {
public:
  explicit group_file(std::string path) : path_(std::move(path)) {
    if (path_.empty())
      return;
    std::error_code ec;
    fs::create_directories(fs::path{path_}.parent_path(), ec);
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
  // A signal is certain but not instant: a member can still be exiting (its
  // pipe closed, not yet a zombie). Wait a little for the group to be gone,
  // so that whatever the caller does next meets none of it.
  if (result.timed_out || result.cancelled) {
    auto gone_by = clock_type::now() + group_exit_wait;
    while (group_alive(pid) && clock_type::now() < gone_by)
      std::this_thread::sleep_for(milliseconds{2});
  }
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
  group_file group{spec.group_file}; // removed when we return, started or not
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
  auto result = supervise(*pid, channels, spec, start);
  result.tail = logged.take();
  result.output = captured.take();
  result.output_truncated = captured.truncated();
  result.elapsed = std::chrono::duration_cast<milliseconds>(clock_type::now() - start);
  return result;
}

caf::error lower_thread_priority(int nice) {
  errno = 0;
  auto tid = static_cast<id_t>(::gettid());
  int now = ::getpriority(PRIO_PROCESS, tid);
  if (now == -1 && errno != 0)
    return make_error(brd_errc::io_failure,
                      std::string{"cannot read this thread's priority: "} + std::strerror(errno));
  if (now >= nice)
    return {};
  if (::setpriority(PRIO_PROCESS, tid, nice) != 0)
    return make_error(brd_errc::io_failure, "cannot lower this thread's priority to nice "
                                              + std::to_string(nice) + ": "
                                              + std::strerror(errno));
  return {};
}

int kill_stale_group(const std::string& group_file) {
  std::ifstream in{group_file};
  long pgid = 0;
  std::string boot;
  in >> pgid >> boot;
  in.close();
  int killed = 0;
  // After a reboot the number names some other group (early daemons get
  // small pids): only a group of this boot is ours.
  auto ours = pgid > 1 && !boot.empty() && boot == boot_id();
  if (ours && group_alive(static_cast<pid_t>(pgid))
      && ::kill(static_cast<pid_t>(-pgid), SIGKILL) == 0)
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
