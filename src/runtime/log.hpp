// One named spdlog logger per module. Log in .cpp files only; never log
// secrets or whole payloads.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace brd::log {

// Sets up all loggers on stderr with the node's name in each line.
// `level` is an spdlog level name: trace, debug, info, warn, error.
void init(const std::string& node, const std::string& level);

std::shared_ptr<spdlog::logger> node();
std::shared_ptr<spdlog::logger> health();
std::shared_ptr<spdlog::logger> net();
std::shared_ptr<spdlog::logger> store();
std::shared_ptr<spdlog::logger> http();
std::shared_ptr<spdlog::logger> state();
std::shared_ptr<spdlog::logger> deploy();

} // namespace brd::log
