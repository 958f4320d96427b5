// brnode: one BlackRoad node. See --help.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "io/sysinfo.hpp"
#include "runtime/node.hpp"

namespace {

constexpr const char* usage_text = R"(usage: brnode --config FILE --name NODE [--data-dir DIR] [--log-level LEVEL]

Runs one BlackRoad node: joins the fleet described in FILE as NODE, watches
every peer's liveness, replicates the fleet state, runs the deploy tasks of
its roles, and serves HTTP on the node's http_port:
  /livez /readyz /health /metrics /api/members
  /api/state/TABLE[/KEY] (GET, PUT, DELETE)  /api/state/digest
  /api/deployments[/ID[/logs]]  /api/tasks  /deployments/ID (a page)
  edge nodes also: POST /webhooks/github, /api/rollback,
                   /api/deployments/ID/retry

options:
  --config FILE      the fleet config (TOML), the same file on every node
                     (env BRNODE_CONFIG)
  --name NODE        this node's entry in the config (env BRNODE_NAME)
  --data-dir DIR     where the node keeps its RocksDB store
                     (env BRNODE_DATA_DIR; default ./data/NODE)
  --log-level LEVEL  trace, debug, info (default), warn or error
                     (env BRNODE_LOG_LEVEL)
  --version          print the version and exit
  --help             print this help and exit

A flag wins over its environment variable.

exit codes:
  0   stopped cleanly (SIGTERM or SIGINT: peers see the node as 'left')
  1   runtime failure
  64  bad command line
  69  an actor or HTTP port is already taken
  73  the data directory is unusable or used by another brnode
  78  the fleet config is broken (the message names file, line, key and fix)
)";

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string{v} : std::move(fallback);
}

int usage_error(const std::string& what) {
  std::fprintf(stderr, "brnode: %s\n\n%s", what.c_str(), usage_text);
  return brd::exit_usage;
}

} // namespace

int main(int argc, char** argv) {
  brd::block_stop_signals(); // before any thread starts
  brd::node_options opts;
  opts.config_path = env_or("BRNODE_CONFIG", "");
  opts.name = env_or("BRNODE_NAME", "");
  opts.data_dir = env_or("BRNODE_DATA_DIR", "");
  opts.log_level = env_or("BRNODE_LOG_LEVEL", "info");
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage_text, stdout);
      return brd::exit_ok;
    } else if (arg == "--version") {
      std::printf("brnode %s (malloc: %s)\n", BRD_VERSION,
                  brd::io::allocator_name().c_str());
      return brd::exit_ok;
    } else if (arg == "--config") {
      if (!value(opts.config_path))
        return usage_error("--config needs a FILE");
    } else if (arg == "--name") {
      if (!value(opts.name))
        return usage_error("--name needs a NODE");
    } else if (arg == "--data-dir") {
      if (!value(opts.data_dir))
        return usage_error("--data-dir needs a DIR");
    } else if (arg == "--log-level") {
      if (!value(opts.log_level))
        return usage_error("--log-level needs a LEVEL");
    } else {
      return usage_error("unknown argument '" + arg + "'");
    }
  }
  if (opts.config_path.empty())
    return usage_error("no fleet config: pass --config FILE or set BRNODE_CONFIG");
  if (opts.name.empty())
    return usage_error("no node name: pass --name NODE or set BRNODE_NAME");
  static const char* levels[] = {"trace", "debug", "info", "warn", "error"};
  bool known = false;
  for (auto l : levels)
    known = known || opts.log_level == l;
  if (!known)
    return usage_error("unknown log level '" + opts.log_level
                       + "'; use trace, debug, info, warn or error");
  return brd::run_node(opts);
}
