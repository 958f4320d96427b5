// Starting a child: its environment, the program's path, the log file, the
// output pipes, and vfork + exec (not fork) so that starting a child is safe
// in a process full of actor threads: the child only makes system calls until
// exec, and reports exec failures back to us through a close-on-exec pipe.
// io/process.cpp supervises what this starts; process.hpp has the contract.
#include "io/process_spawn.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/errors.hpp"

namespace brd::io::detail {

namespace fs = std::filesystem;

caf::error start_failure(const std::string& what) {
  return make_error(brd_errc::io_failure, what);
}

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

namespace {

bool is_executable_file(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

} // namespace

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

namespace {

std::vector<char*> c_strings(std::vector<std::string>& xs) {
  std::vector<char*> result;
  for (auto& x : xs)
    result.push_back(x.data());
  result.push_back(nullptr);
  return result;
}

} // namespace

namespace {

// What the child does between vfork and exec: only system calls on data
// prepared before the fork. It dies with its parent thread (the one blocked
// in run_process): PR_SET_PDEATHSIG, so a brnode killed with SIGKILL does not
// leave its scripts running (see process.hpp for the rest of their group).
// An exec failure sends errno up `report` (close-on-exec) and exits 127.
// With `group_path`, the child writes its group id and `boot_line` there
// before exec, so the file exists before the program can start anything.
[[noreturn]] void child_after_vfork(const char* program, char* const* argv, char* const* envp,
                                    const char* cwd, int stdout_fd, int stderr_fd, int report,
                                    pid_t parent, const char* group_path,
                                    const char* boot_line) {
  ::setpgid(0, 0);
  if (group_path != nullptr) {
    char digits[24];
    int n = 0;
    for (auto pid = static_cast<unsigned long>(::getpid()); n == 0 || pid > 0; pid /= 10)
      digits[n++] = static_cast<char>('0' + pid % 10);
    char line[32];
    for (int i = 0; i < n; ++i)
      line[i] = digits[n - 1 - i];
    line[n] = '\n';
    int fd = ::open(group_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ssize_t ignored = ::write(fd, line, static_cast<size_t>(n + 1));
      ignored = ::write(fd, boot_line, std::strlen(boot_line));
      (void)ignored;
      ::close(fd);
    }
  }
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

} // namespace

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
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t parent = ::getpid();
  auto boot_line = boot_id() + "\n";
  pid_t pid = ::vfork();
  if (pid == 0)
    // cwd and group_file are taken from `spec` here, in the child, rather
    // than kept in locals across the vfork (g++'s -Wclobbered).
    child_after_vfork(program.c_str(), argv.data(), envp.data(),
                      spec.cwd.empty() ? nullptr : spec.cwd.c_str(), stdout_fd, stderr_fd,
                      report_write.get(), parent,
                      spec.group_file.empty() ? nullptr : spec.group_file.c_str(),
                      boot_line.c_str());
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

std::string boot_id() {
  std::ifstream in{"/proc/sys/kernel/random/boot_id"};
  std::string id;
  in >> id;
  return id;
}

} // namespace brd::io::detail
