// The process runner: argv without a shell, environment, timeouts that kill
// the whole process group, and output streamed to a log with a tail kept.
#include "io/process.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "runtime/errors.hpp"
#include "../support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using brd::io::process_result;
using brd::io::process_spec;
using brd::io::run_process;

using brd_test::temp_dir;

process_result run(std::vector<std::string> argv, std::chrono::milliseconds timeout = 10s) {
  process_spec spec;
  spec.argv = std::move(argv);
  spec.timeout = timeout;
  auto result = run_process(spec);
  REQUIRE(result);
  return *result;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int live_members(pid_t pgid) {
  return brd::io::live_group_members(pgid);
}

} // namespace

TEST_CASE("exit codes and signals of the child are reported") {
  CHECK(run({"true"}).exit_code == 0);
  CHECK(run({"true"}).succeeded());
  CHECK(run({"false"}).exit_code == 1);
  CHECK_FALSE(run({"false"}).succeeded());
  auto three = run({"sh", "-c", "exit 3"});
  CHECK(three.exit_code == 3);
  CHECK(three.signal == 0);
  CHECK_FALSE(three.timed_out);
  auto killed = run({"sh", "-c", "kill -9 $$"});
  CHECK(killed.exit_code == -1);
  CHECK(killed.signal == SIGKILL);
  CHECK_FALSE(killed.succeeded());
}

TEST_CASE("the child gets PATH, HOME, LANG and the given variables, nothing else") {
  ::setenv("BRD_PROCESS_TEST_SECRET", "do-not-leak", 1);
  process_spec spec;
  spec.argv = {"env"};
  spec.env = {{"BLACKROAD_SHA", "abc"}, {"HOME", "/nowhere"}};
  spec.timeout = 10s;
  auto result = run_process(spec);
  REQUIRE(result);
  CHECK(result->exit_code == 0);
  CHECK(result->tail.find("BLACKROAD_SHA=abc\n") != std::string::npos);
  CHECK(result->tail.find("HOME=/nowhere\n") != std::string::npos);
  CHECK(result->tail.find("PATH=") != std::string::npos);
  CHECK(result->tail.find("BRD_PROCESS_TEST_SECRET") == std::string::npos);
  ::unsetenv("BRD_PROCESS_TEST_SECRET");
}

TEST_CASE("arguments full of shell metacharacters reach the program literally") {
  temp_dir tmp;
  auto a = "$(touch " + tmp.sub("pwned1") + ")";
  auto b = "; touch " + tmp.sub("pwned2");
  auto c = "`touch " + tmp.sub("pwned3") + "`";
  auto d = "| touch " + tmp.sub("pwned4") + " && ../../etc/passwd";
  auto result = run({"printf", "%s\\n", a, b, c, d});
  CHECK(result.exit_code == 0);
  CHECK(result.tail == a + "\n" + b + "\n" + c + "\n" + d + "\n");
  // Even a shell given them as positional parameters only echoes them.
  auto via_sh = run({"sh", "-c", "printf '%s\\n' \"$@\"", "sh", a, b, c, d});
  CHECK(via_sh.tail == result.tail);
  for (auto name : {"pwned1", "pwned2", "pwned3", "pwned4"})
    CHECK_FALSE(fs::exists(tmp.sub(name)));
}

TEST_CASE("lower_thread_priority lowers one thread and what it starts, and never raises it") {
  auto ours = getpriority(PRIO_PROCESS, 0);
  std::string seen, after_raise;
  std::thread worker{[&] {
    CHECK_FALSE(brd::io::lower_thread_priority(std::max(ours, 12)));
    seen = run({"nice"}).tail;
    CHECK_FALSE(brd::io::lower_thread_priority(3)); // no: already lower
    after_raise = run({"nice"}).tail;
  }};
  worker.join();
  CHECK(seen == std::to_string(std::max(ours, 12)) + "\n");
  CHECK(after_raise == seen);
  CHECK(getpriority(PRIO_PROCESS, 0) == ours); // other threads keep theirs
  CHECK(run({"nice"}).tail == std::to_string(ours) + "\n");
}

TEST_CASE("a timeout kills the whole process group, background children included") {
  auto start = std::chrono::steady_clock::now();
  auto result = run({"sh", "-c", "echo $$; sleep 100 & sleep 100"}, 300ms);
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(result.timed_out);
  CHECK(result.signal == SIGTERM);
  CHECK_FALSE(result.succeeded());
  CHECK(took < 2500ms); // SIGTERM was enough: no wait for the grace
  CHECK(result.tail == std::to_string(result.pid) + "\n");
  CHECK(live_members(result.pid) == 0);
}

TEST_CASE("a cancel flag set by another thread ends the group as a timeout would") {
  std::atomic<bool> cancel{false};
  process_spec spec;
  spec.argv = {"sh", "-c", "echo $$; sleep 100 & sleep 100"};
  spec.timeout = 60s;
  spec.cancel = &cancel;
  std::thread stopper{[&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  }};
  auto start = std::chrono::steady_clock::now();
  auto result = run_process(spec);
  auto took = std::chrono::steady_clock::now() - start;
  stopper.join();
  REQUIRE(result);
  CHECK(result->cancelled);
  CHECK_FALSE(result->timed_out);
  CHECK_FALSE(result->succeeded());
  CHECK(took < 2500ms);
  CHECK(live_members(result->pid) == 0);
}

TEST_CASE("a group that ignores SIGTERM gets SIGKILL after the grace") {
  process_spec spec;
  spec.argv = {"sh", "-c", "trap '' TERM; sleep 100 & sleep 100"};
  spec.timeout = 200ms;
  spec.kill_grace = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto result = run_process(spec);
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(result);
  CHECK(result->timed_out);
  CHECK(result->signal == SIGKILL);
  CHECK(took >= 500ms);
  CHECK(took < 3s);
  CHECK(live_members(result->pid) == 0);
}

TEST_CASE("only the last tail_bytes are kept, and the log gets everything") {
  temp_dir tmp;
  process_spec spec;
  spec.argv = {"sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done; "
                           "echo oops >&2; exit 4"};
  spec.timeout = 20s;
  spec.tail_bytes = 100;
  spec.log_path = tmp.sub("logs/deploy-1/task-1.log");
  auto result = run_process(spec);
  REQUIRE(result);
  CHECK(result->exit_code == 4);
  CHECK(result->tail.size() == 100);
  CHECK(result->tail.ends_with("line1998\nline1999\noops\n"));
  auto log = read_file(spec.log_path);
  CHECK(log.starts_with("line0\nline1\n"));
  CHECK(log.ends_with("line1999\noops\n"));
  CHECK(log.find("line1000\n") != std::string::npos);
  // A second run appends.
  spec.argv = {"echo", "again"};
  REQUIRE(run_process(spec));
  CHECK(read_file(spec.log_path).ends_with("oops\nagain\n"));
}

TEST_CASE("the tail never starts inside a UTF-8 character") {
  process_spec spec;
  spec.argv = {"printf", "\xc3\xa9\xc3\xa9\xc3\xa9"}; // "ééé", 6 bytes
  spec.timeout = 10s;
  spec.tail_bytes = 3;
  auto result = run_process(spec);
  REQUIRE(result);
  CHECK(result->tail == "\xc3\xa9");
}

TEST_CASE("output reaches the log file while the child still runs") {
  temp_dir tmp;
  process_spec spec;
  spec.argv = {"sh", "-c", "echo first; sleep 2; echo second"};
  spec.timeout = 20s;
  spec.log_path = tmp.sub("task.log");
  auto done = std::async(std::launch::async, [&] { return run_process(spec); });
  auto deadline = std::chrono::steady_clock::now() + 1500ms;
  while (read_file(spec.log_path) != "first\n" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  CHECK(read_file(spec.log_path) == "first\n");
  CHECK(done.wait_for(0s) == std::future_status::timeout);
  auto result = done.get();
  REQUIRE(result);
  CHECK(read_file(spec.log_path) == "first\nsecond\n");
}

TEST_CASE("a missing program is an error that names it") {
  process_spec spec;
  spec.argv = {"brd-no-such-program", "x"};
  auto missing = run_process(spec);
  REQUIRE_FALSE(missing);
  CHECK(brd::describe(missing.error()).find("brd-no-such-program") != std::string::npos);
  spec.argv = {"./not-here.sh"};
  missing = run_process(spec);
  REQUIRE_FALSE(missing);
  CHECK(brd::describe(missing.error()).find("./not-here.sh") != std::string::npos);
  spec.argv = {};
  CHECK_FALSE(run_process(spec));
  spec.argv = {"true"};
  spec.cwd = "/nonexistent/brd-dir";
  auto no_dir = run_process(spec);
  REQUIRE_FALSE(no_dir);
  CHECK(brd::describe(no_dir.error()).find("/nonexistent/brd-dir") != std::string::npos);
}

TEST_CASE("the child runs in cwd, reads /dev/null and inherits no other descriptors") {
  temp_dir tmp;
  {
    std::ofstream script{tmp.sub("hello.sh")};
    script << "#!/bin/sh\necho hello from $(pwd)\n";
  }
  fs::permissions(tmp.sub("hello.sh"), fs::perms::owner_all);
  process_spec spec;
  spec.argv = {"./hello.sh"};
  spec.cwd = tmp.path.string();
  spec.timeout = 10s;
  auto hello = run_process(spec);
  REQUIRE(hello);
  CHECK(hello->tail == "hello from " + tmp.path.string() + "\n");

  auto from_stdin = run({"cat"}, 5s); // would hang until the timeout on a real stdin
  CHECK_FALSE(from_stdin.timed_out);
  CHECK(from_stdin.tail.empty());

  int leaked = ::open("/dev/null", O_RDONLY); // no O_CLOEXEC on purpose
  REQUIRE(leaked > 2);
  auto fds = run({"sh", "-c", "ls /proc/$$/fd"});
  ::close(leaked);
  CHECK(fds.tail == "0\n1\n2\n");
}

TEST_CASE("capture_stdout keeps stdout whole and apart from stderr") {
  temp_dir tmp;
  process_spec spec;
  spec.argv = {"sh", "-c", "printf 'a b\\0c;d\\0'; echo warning >&2; head -c 3000000 /dev/zero"};
  spec.timeout = 20s;
  spec.tail_bytes = 16;
  spec.capture_stdout = true;
  spec.log_path = tmp.sub("git.log");
  auto result = run_process(spec);
  REQUIRE(result);
  CHECK(result->exit_code == 0);
  REQUIRE(result->output.size() == 8 + 3000000);
  CHECK(result->output.substr(0, 8) == std::string("a b\0c;d\0", 8));
  CHECK_FALSE(result->output_truncated);
  CHECK(result->tail == "warning\n");
  CHECK(read_file(spec.log_path) == "warning\n");
}

TEST_CASE("runs from several threads at once keep their outputs apart") {
  std::vector<std::future<process_result>> runs;
  for (int i = 0; i < 8; ++i)
    runs.push_back(std::async(std::launch::async, [i] {
      return run({"sh", "-c", "sleep 0.2; echo run $0", std::to_string(i)});
    }));
  for (int i = 0; i < 8; ++i) {
    auto result = runs[i].get();
    CHECK(result.exit_code == 0);
    CHECK(result.tail == "run " + std::to_string(i) + "\n");
    CHECK(result.elapsed < 5s); // no run waited for another's pipe to close
  }
}

TEST_CASE("a runner killed with SIGKILL takes its child along, and kill_stale_group its group") {
  temp_dir tmp;
  auto group_file = tmp.sub("run/task.pgid");
  // A runner process of its own, so that it can be killed like a brnode.
  pid_t runner = ::fork();
  REQUIRE(runner >= 0);
  if (runner == 0) {
    process_spec spec;
    spec.argv = {"sh", "-c", "sleep 100 & exec sleep 100"};
    spec.group_file = group_file;
    (void)run_process(spec);
    ::_exit(0);
  }
  long pgid = 0;
  for (int i = 0; i < 200 && pgid == 0; ++i) {
    std::this_thread::sleep_for(10ms);
    std::ifstream{group_file} >> pgid;
  }
  REQUIRE(pgid > 0);
  for (int i = 0; i < 200 && live_members(static_cast<pid_t>(pgid)) < 2; ++i)
    std::this_thread::sleep_for(10ms);
  REQUIRE(live_members(static_cast<pid_t>(pgid)) == 2);
  ::kill(runner, SIGKILL);
  ::waitpid(runner, nullptr, 0);
  // The direct child (the group leader) dies with its parent ...
  bool leader_gone = false;
  for (int i = 0; i < 200 && !leader_gone; ++i) {
    std::this_thread::sleep_for(10ms);
    leader_gone = ::kill(static_cast<pid_t>(pgid), 0) != 0
                  || live_members(static_cast<pid_t>(pgid)) < 2;
  }
  CHECK(leader_gone);
  // ... the rest of its group is ended by the next start.
  CHECK(fs::exists(group_file));
  CHECK(brd::io::kill_stale_group(group_file) == pgid);
  for (int i = 0; i < 200 && live_members(static_cast<pid_t>(pgid)) > 0; ++i)
    std::this_thread::sleep_for(10ms);
  CHECK(live_members(static_cast<pid_t>(pgid)) == 0);
  CHECK_FALSE(fs::exists(group_file));
  CHECK(brd::io::kill_stale_group(group_file) == 0);
}

TEST_CASE("kill_stale_group leaves alone a group named by a file from before a reboot") {
  temp_dir tmp;
  auto file = tmp.sub("running/old.pgid");
  fs::create_directories(tmp.sub("running"));
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::setpgid(0, 0);
    ::execlp("sleep", "sleep", "30", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::setpgid(child, child);
  std::this_thread::sleep_for(100ms);
  // The same number, another boot: not ours, so not killed.
  std::ofstream{file} << child << "\n" << "00000000-0000-0000-0000-000000000000\n";
  CHECK(brd::io::kill_stale_group(file) == 0);
  CHECK_FALSE(fs::exists(file));
  CHECK(::kill(child, 0) == 0);
  // An old file without a boot id is not trusted either.
  std::ofstream{file} << child << "\n";
  CHECK(brd::io::kill_stale_group(file) == 0);
  CHECK(::kill(child, 0) == 0);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
}

TEST_CASE("the group file exists while the child runs and is gone after") {
  temp_dir tmp;
  process_spec spec;
  spec.argv = {"sh", "-c", "sleep 0.2; cat \"$0\"", tmp.sub("g/pgid")};
  spec.group_file = tmp.sub("g/pgid");
  auto result = run_process(spec);
  REQUIRE(result);
  // The group id, then this boot's id (kill_stale_group trusts no other boot).
  std::ifstream boot{"/proc/sys/kernel/random/boot_id"};
  std::string boot_id;
  boot >> boot_id;
  CHECK(result->tail == std::to_string(result->pid) + "\n" + boot_id + "\n");
  CHECK_FALSE(fs::exists(spec.group_file));
}
