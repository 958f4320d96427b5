// Running the brsh binary against a test fleet, shared by the brsh cluster
// tests (header only, so each test executable takes what it uses).
#pragma once

#include <cstdlib>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "harness.hpp"

namespace brd::test {

// $BRSH_BIN; fails the test (REQUIRE) when it is not set.
inline std::string brsh_bin() {
  const char* bin = std::getenv("BRSH_BIN");
  REQUIRE_MESSAGE(bin != nullptr, "BRSH_BIN is not set (meson sets it)");
  return bin;
}

// Runs `brsh --config <the fleet's config> ARGS...` to completion.
inline run_result brsh(const fleet& fl, std::vector<std::string> args, millis timeout = 20s,
                       const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv{brsh_bin(), "--config", fl.config_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, timeout, env);
}

// brsh's output as JSON; REQUIREs that it is JSON.
inline nlohmann::json parse_json(const run_result& r) {
  INFO("brsh printed: " << r.output);
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace brd::test
