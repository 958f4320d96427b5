// Test helpers for real git repositories: run git (through the process
// runner, as argv) and write files into a work tree. Header-only; tests that
// include it link the deploy io library.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "io/process.hpp"

namespace brd_test {

// Runs git in `dir` with a fixed identity and returns its stdout without the
// final newline. A failing git fails the test, with git's output.
inline std::string git(const std::filesystem::path& dir, std::vector<std::string> args) {
  brd::io::process_spec spec;
  spec.argv = {"git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.cwd = dir.string();
  spec.timeout = std::chrono::seconds(30);
  spec.capture_stdout = true;
  auto result = brd::io::run_process(spec);
  REQUIRE(result);
  INFO("git ", args.front(), ": ", result->tail);
  REQUIRE(result->exit_code == 0);
  auto out = result->output;
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

// Writes `text` to `p`, creating its directories.
inline void write_file(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream{p} << text;
}

} // namespace brd_test
