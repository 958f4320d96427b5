// brsh scripts: one command per line, the same commands as the REPL.
//
//   # comments run to the end of the line
//   connect edge
//   wait-for node alice is alive --timeout 5s
//   state put deployments d42 '{"v":1,"status":"started"}'
//   try state get deployments d41      # `try`: a failure does not stop
//   check digests equal
//
// Words split like a shell's: '...' is literal, "..." allows \" and \\,
// a backslash escapes the next character, and a line ending in a
// backslash continues on the next. The script stops at the first command
// that fails (unless --keep-going) and exits with that command's code; the
// message names the file and line.
#pragma once

#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "commands.hpp"

namespace brsh {

// Splits one line into words; an error for an unclosed quote.
caf::expected<std::vector<std::string>> split_words(const std::string& line);

struct script_options {
  bool keep_going = false; // run every line; exit with the first failure's code
  bool echo = false;       // print each command before running it ("+ cmd")
};

// Runs the script at `path` ("-": standard input). Returns the exit code.
int run_script(context& ctx, const std::string& path, script_options opts);

} // namespace brsh
