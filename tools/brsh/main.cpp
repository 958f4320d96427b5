// brsh: BlackRoad's actor shell. See --help, and `brsh help` for the commands.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <unistd.h>

#include "client.hpp"
#include "commands.hpp"
#include "repl.hpp"
#include "runtime/errors.hpp"
#include "script.hpp"

namespace {

constexpr const char* usage_text = R"(usage: brsh [OPTIONS]                 interactive shell
       brsh [OPTIONS] COMMAND [ARGS]  run one command
       brsh [OPTIONS] -f SCRIPT       run a script ("-": standard input)

BlackRoad's actor shell: connects to a node over the nodes' own transport
(CAF, with the fleet's TLS) and speaks their typed interfaces. Deploys are
read from the connected node's HTTP port; `deploy rollback` and `deploy
retry` go to the HTTP port of a node with the role bridge (its dispatcher).

options:
  --config FILE        the fleet config (env BRNODE_CONFIG; default
                       config/local.toml when it exists)
  --node NAME|HOST:PORT  the node to connect to (default: the config's first)
  --timeout T          bound for each request (default 5s; 500ms, 5s, 2m)
  -f SCRIPT            run the commands in SCRIPT
  --keep-going         in a script, run every line despite failures
  -x                   in a script, print each command before it runs
  --version, --help

With TLS on, brsh presents the certificate [tls] cert/key of the name in
$BRSH_CERT_NAME (default "brsh"), signed by the fleet CA.

Type `brsh help` for the commands.
exit codes: 0 ok, 1 failed, 2 usage, 3 wait-for timed out,
            69 node unreachable or capability unavailable, 78 bad config
)";

std::atomic<bool> interrupted{false};
std::atomic<bool> interactive_mode{false};

extern "C" void on_interrupt(int) {
  // Outside the REPL a second Ctrl-C ends brsh at once.
  if (interrupted.exchange(true) && !interactive_mode.load())
    ::_exit(130);
}

struct global_options {
  std::string config;
  std::string node;
  std::string script;
  std::string timeout = "5s";
  brsh::script_options script_opts;
  std::vector<std::string> command;
};

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string{v} : std::move(fallback);
}

int usage_error(const std::string& what) {
  std::cerr << "brsh: " << what << "\n\n" << usage_text;
  return brsh::exit_usage;
}

// Global options come first; the first other word starts the command.
std::optional<int> parse_globals(int argc, char** argv, global_options& opts) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << usage_text;
      return brsh::exit_ok;
    }
    if (arg == "--version") {
      std::cout << "brsh " << BRD_VERSION << '\n';
      return brsh::exit_ok;
    }
    if ((arg == "--config" && !value(opts.config)) || (arg == "--node" && !value(opts.node))
        || (arg == "--timeout" && !value(opts.timeout)) || (arg == "-f" && !value(opts.script)))
      return usage_error("option " + arg + " needs a value");
    if (arg == "--config" || arg == "--node" || arg == "--timeout" || arg == "-f")
      continue;
    if (arg == "--keep-going") {
      opts.script_opts.keep_going = true;
    } else if (arg == "-x") {
      opts.script_opts.echo = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      return usage_error("unknown option " + arg);
    } else {
      opts.command.assign(argv + i, argv + argc);
      break;
    }
  }
  if (!opts.script.empty() && !opts.command.empty())
    return usage_error("give either -f SCRIPT or a command, not both");
  return std::nullopt;
}

// --config, else $BRNODE_CONFIG, else config/local.toml when it exists.
std::string config_path(const global_options& opts) {
  if (!opts.config.empty())
    return opts.config;
  auto env = env_or("BRNODE_CONFIG", "");
  if (!env.empty())
    return env;
  return std::filesystem::exists("config/local.toml") ? "config/local.toml" : "";
}

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  global_options opts;
  if (auto code = parse_globals(argc, argv, opts))
    return *code;
  auto timeout = brsh::parse_duration(opts.timeout);
  if (!timeout)
    return usage_error("--timeout wants a duration such as 500ms, 5s or 2m");
  auto path = config_path(opts);
  if (path.empty()) {
    std::cerr << "brsh: no fleet config: pass --config FILE or set BRNODE_CONFIG "
                 "(there is no config/local.toml here either)\n";
    return brsh::exit_config;
  }
  auto fleet = brd::load_fleet_config(path);
  if (!fleet) {
    std::cerr << "brsh: " << brd::describe(fleet.error()) << '\n';
    return brsh::exit_config;
  }
  auto first_node = fleet->nodes.empty() ? std::string{} : fleet->nodes.front().name;
  brsh::client_options copts;
  copts.request_timeout = *timeout;
  auto cl = brsh::client::make(std::move(*fleet), env_or("BRSH_CERT_NAME", "brsh"), copts);
  if (!cl) {
    std::cerr << "brsh: " << brd::describe(cl.error()) << '\n';
    return brsh::exit_code_for(cl.error());
  }
  (*cl)->use(opts.node.empty() ? first_node : opts.node);
  std::signal(SIGINT, on_interrupt);
  brsh::context ctx{**cl, std::cout};
  ctx.interrupted = &interrupted;
  if (!opts.script.empty())
    return brsh::run_script(ctx, opts.script, opts.script_opts);
  if (opts.command.empty()) {
    if (!::isatty(STDIN_FILENO))
      return brsh::run_script(ctx, "-", opts.script_opts);
    interactive_mode = true;
    return brsh::run_repl(ctx);
  }
  auto result = brsh::run_command(ctx, opts.command);
  std::cout.flush();
  if (!result.message.empty())
    std::cerr << "brsh: " << result.message << '\n';
  return result.code;
}
