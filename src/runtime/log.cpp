#include "runtime/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace brd::log {

namespace {

std::shared_ptr<spdlog::logger> get(const char* name) {
  if (auto existing = spdlog::get(name))
    return existing;
  // Before init() (tests, tools): a plain stderr logger at warn level.
  auto made = spdlog::stderr_color_mt(name);
  made->set_level(spdlog::level::warn);
  return made;
}

} // namespace

void init(const std::string& node, const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  for (auto name : {"node", "health", "net", "store", "http", "state", "deploy"}) {
    auto logger = get(name);
    logger->set_level(lvl);
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ " + node + " [%n] %v");
  }
  spdlog::flush_on(spdlog::level::info);
}

std::shared_ptr<spdlog::logger> node() { return get("node"); }
std::shared_ptr<spdlog::logger> health() { return get("health"); }
std::shared_ptr<spdlog::logger> net() { return get("net"); }
std::shared_ptr<spdlog::logger> store() { return get("store"); }
std::shared_ptr<spdlog::logger> http() { return get("http"); }
std::shared_ptr<spdlog::logger> state() { return get("state"); }
std::shared_ptr<spdlog::logger> deploy() { return get("deploy"); }

} // namespace brd::log
