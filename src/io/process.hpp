// Runs one program to completion, as an argv array and never through a shell,
// so no byte of any argument is interpreted: `$(...)`, `;` and backticks are
// plain text to the program.
//
// The child dies with the thread that started it (PR_SET_PDEATHSIG SIGKILL):
// a brnode killed with SIGKILL takes its running scripts along; members of
// their groups that the script started are killed through group_file by the
// next start (see kill_stale_group).
//
// The child starts in its own process group, with stdin on /dev/null, no
// other inherited file descriptors, default signal dispositions and a small
// environment (PATH, HOME and LANG from ours, then spec.env on top). Its
// stdout and stderr share one pipe: every chunk is appended to
// spec.log_path as it arrives and the last tail_bytes are kept for the
// result. When the timeout passes, the whole group gets SIGTERM and, if any
// member is still alive after kill_grace, SIGKILL. The same happens when
// spec.cancel turns true (the caller is stopping). run_process then returns
// once the group is gone (or after another second, for a member stuck in
// the kernel).
//
// When the child exits by itself, output is drained for a short moment and
// run_process returns; members of its group that outlive it are left running
// but lose their stdout and stderr (the pipe is closed), so a script that
// starts a daemon must detach it (setsid, systemd-run) with its own output.
//
// Safe to call from several threads at once; each call blocks its thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

namespace brd::io {

struct process_spec {
  // argv[0] is looked up in the child's PATH unless it holds a '/'
  // (then it is taken relative to cwd).
  std::vector<std::string> argv;
  std::string cwd; // empty: ours
  // Added to PATH, HOME and LANG inherited from this process; a name given
  // here replaces the inherited value.
  std::vector<std::pair<std::string, std::string>> env;
  std::chrono::milliseconds timeout{0}; // zero or less: no limit
  // stdout and stderr are appended here as produced; the file and its
  // parent directories are created. Empty: output is only kept in the tail.
  std::string log_path;
  size_t tail_bytes = 4096;
  std::chrono::milliseconds kill_grace{2000}; // from SIGTERM to SIGKILL
  // For commands whose stdout is data (`git diff -z`): stdout is kept whole
  // in process_result::output, up to max_captured_output bytes, and only
  // stderr goes to the log and the tail.
  bool capture_stdout = false;
  // When set, the child's process group id is written to this file while it
  // runs (directories are created) and the file is removed when run_process
  // returns. After a crash of ours, kill_stale_group(file) ends the group.
  std::string group_file;
  // When set and it turns true while the child runs (another thread stores
  // it), the group is ended as on a timeout and the result says cancelled.
  // Looked at every 50 ms. The flag must outlive the call.
  const std::atomic<bool>* cancel = nullptr;
};

inline constexpr size_t max_captured_output = size_t{256} << 20;

struct process_result {
  int exit_code = -1;     // the exit status, or -1 when killed by a signal
  int signal = 0;         // the signal that ended the child, or 0
  bool timed_out = false; // the timeout passed and we killed the group
  bool cancelled = false; // spec.cancel turned true and we killed the group
  // The last tail_bytes of the output, starting at a UTF-8 character boundary.
  std::string tail;
  std::chrono::milliseconds elapsed{0};
  int pid = 0; // the child's pid, which is also its process group id
  std::string output;            // stdout, with capture_stdout only
  bool output_truncated = false; // stdout went past max_captured_output

  bool succeeded() const {
    return !timed_out && !cancelled && signal == 0 && exit_code == 0;
  }
};

// Blocks until the child has ended. An error (io_failure) only when the child
// could not be started: an empty argv, a program not found or not executable
// (the error names it), a cwd that does not exist, a log file that cannot be
// opened. A child that fails, crashes or times out is a result, not an error.
caf::expected<process_result> run_process(const process_spec& spec);

// For a group_file left behind by a run_process that never returned (this
// process was killed): SIGKILL to every live member of that process group,
// then the file is removed. Returns the group id killed, or 0 when the file
// is unreadable, was written before the machine's last reboot (the file
// holds the boot id; after a reboot the number is someone else's), or the
// group has no live member. Group ids are not reused while any member
// lives, so within one boot the file names the right group as long as one
// of its members still runs.
int kill_stale_group(const std::string& group_file);

// Lowers the calling thread's scheduling priority to niceness `nice` (0-19)
// unless it is already that low; never raises it. Processes the thread
// starts afterwards inherit it (Linux keeps the nice value per thread), so a
// thread that only runs one task's commands can lower them all at once.
caf::error lower_thread_priority(int nice);

// How many members of process group `pgid` are alive (zombies are dead), as
// /proc shows them.
int live_group_members(int pgid);

} // namespace brd::io
