// brsh's commands: one table of (words, arguments, flags, summary, handler),
// the dispatcher that parses a command line against it, and the sentences
// for what goes wrong (unknown command with the nearest match, wrong
// arguments with the usage).
//
// A handler prints its result to ctx.out and returns an outcome; a failed
// outcome carries the sentence the caller prints on stderr. Exit codes are
// the process's: 0 ok, 1 the command failed, 2 usage, 3 a wait-for timed
// out, 69 a node is unreachable or a capability unavailable, 78 bad config.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "output.hpp"

namespace brsh {

class client;

enum exit_code : int {
  exit_ok = 0,
  exit_failed = 1,
  exit_usage = 2,
  exit_timed_out = 3,
  exit_unavailable = 69,
  exit_config = 78,
};

struct outcome {
  int code = exit_ok;
  std::string message; // a sentence for stderr; empty when ok

  bool ok() const { return code == exit_ok; }
};

outcome failure(int code, std::string message);
// An error from the client or a node as an outcome (exit code by kind).
outcome failure(const caf::error& err);

// Where a command runs.
struct context {
  client& cl;
  std::ostream& out;
  bool interactive = false;                    // the REPL (prompts, hints)
  std::atomic<bool>* interrupted = nullptr; // set on Ctrl-C
  bool quit = false;                           // set by `exit`
};

// A command line after parsing: positional arguments and flags by their
// long name ("output", "limit", ...), "" as the value of a switch.
struct invocation {
  std::vector<std::string> args;
  std::map<std::string, std::string> flags;
  brsh::format format = format::table;

  bool has(const std::string& flag) const { return flags.count(flag) > 0; }
  std::string flag(const std::string& name, std::string fallback = "") const;
};

struct flag_spec {
  std::string name;       // long name without dashes: "limit"
  std::string short_name; // "o" for -o, or ""
  std::string value;      // what the value is called ("N"); "" for a switch
};

struct command {
  std::string name;                // "state get"
  std::string args;                // "TABLE KEY"; upper-case words are placeholders
                                   // (when it names flags itself, usage shows it as is)
  std::string summary;             // one line for `help`
  std::vector<flag_spec> flags;
  size_t min_args = 0;
  size_t max_args = 0;             // SIZE_MAX: any number
  std::function<outcome(context&, const invocation&)> run;
  std::string details;             // more for `help COMMAND`
};

// The usage line: "state scan TABLE [PREFIX] [--limit N] [-o table|json]".
std::string usage_of(const command& cmd);

// Every command, in help order.
const std::vector<command>& command_table();

// Parses and runs one command line (already split into words).
outcome run_command(context& ctx, const std::vector<std::string>& words);

// The command `words` start with (longest match), or nullptr.
const command* find_command(const std::vector<std::string>& words, size_t* used = nullptr);

// The known command name nearest to `words` (edit distance), or "".
std::string nearest_command(const std::vector<std::string>& words);

// The words of a command name or usage ("state get" -> {"state", "get"}).
std::vector<std::string> words_of(const std::string& text);

// The flag every listing takes: -o table|json.
flag_spec output_flag();

// Registration of the command groups (one file each).
void add_fleet_commands(std::vector<command>& table);       // cmd_fleet.cpp
void add_actor_commands(std::vector<command>& table);       // cmd_actors.cpp
void add_state_commands(std::vector<command>& table);       // cmd_state.cpp
void add_state_watch_commands(std::vector<command>& table); // cmd_state_watch.cpp
void add_deploy_commands(std::vector<command>& table);      // cmd_deploy.cpp
void add_deploy_op_commands(std::vector<command>& table);   // cmd_deploy_ops.cpp
void add_shell_commands(std::vector<command>& table);       // cmd_shell.cpp

} // namespace brsh
