// Internal to src/io: how io/process.cpp starts a child (see
// io/process_spawn.cpp). Not part of the process runner's interface.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>
#include <unistd.h>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "io/process.hpp"

namespace brd::io::detail {

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

// An io_failure error with `what` as its sentence.
caf::error start_failure(const std::string& what);

// PATH, HOME and LANG from ours, then spec.env on top, as NAME=VALUE.
std::vector<std::string> child_environment(const process_spec& spec);

// The value of PATH in `env` (NAME=VALUE entries).
std::string_view path_of(const std::vector<std::string>& env);

// The program `name` as exec wants it: taken relative to `cwd` when it holds
// a '/', else looked up in `path_var`; an error names it when it is missing
// or not executable.
caf::expected<std::string> find_program(const std::string& name, std::string_view path_var,
                                        const std::string& cwd);

// The log file opened for appending (directories created), or -1 for none.
caf::expected<int> open_log(const std::string& path);

// A close-on-exec pipe for the child's output.
caf::error make_output_pipe(fd_owner& read_end, fd_owner& write_end);

// This boot of the machine (the kernel's random boot id), or "" when unknown.
std::string boot_id();

// Starts the child in its own process group with stdin on /dev/null, stdout
// and stderr on the given descriptors, and no other descriptor inherited.
// With spec.group_file (its directory must exist), the child writes its
// group id and boot_id() there before exec.
caf::expected<pid_t> spawn_child(const std::string& program, const process_spec& spec,
                                 std::vector<std::string> env, int stdout_fd, int stderr_fd);

} // namespace brd::io::detail
