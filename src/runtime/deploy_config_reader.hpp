// Reads the push-to-deploy sections of a fleet file (see deploy_config.hpp)
// into `cfg`, reporting problems like the rest of the config loader.
// Internal to src/runtime; called by parse_fleet_config.
#pragma once

#include "runtime/deploy_config.hpp"
#include "runtime/toml_reader.hpp"

namespace brd::toml_reader {

void read_deploy_config(report& out, const scope& root, deploy_config& cfg);

} // namespace brd::toml_reader
