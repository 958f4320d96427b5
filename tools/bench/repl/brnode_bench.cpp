// brnode_bench: brnode plus the replication benchmark's writer host
// (writers.hpp), so that the benchmark's writers can run on the nodes, local
// to each state actor, as the fleet's own writers (dispatcher, deployer,
// health) do. Started by bench_replication with brnode's flags:
//   brnode_bench --config FILE --name NODE --data-dir DIR [--log-level LEVEL]
#include <cstdio>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include "runtime/node.hpp"
#include "writers.hpp"

int main(int argc, char** argv) {
  brd::block_stop_signals(); // before any thread starts
  brd::node_options opts;
  bool ok = argc % 2 == 1; // flag-value pairs
  for (int i = 1; ok && i + 1 < argc; i += 2) {
    std::string arg = argv[i];
    if (arg == "--config")
      opts.config_path = argv[i + 1];
    else if (arg == "--name")
      opts.name = argv[i + 1];
    else if (arg == "--data-dir")
      opts.data_dir = argv[i + 1];
    else if (arg == "--log-level")
      opts.log_level = argv[i + 1];
    else
      ok = false;
  }
  if (!ok || opts.config_path.empty() || opts.name.empty()) {
    std::fputs("usage: brnode_bench --config FILE --name NODE --data-dir DIR "
               "[--log-level LEVEL]\n",
               stderr);
    return brd::exit_usage;
  }
  opts.extra_actors = [](caf::actor_system& sys, const caf::actor& state) {
    auto host = sys.spawn(bench::writer_host, caf::actor_cast<brd::state_actor>(state));
    return std::vector<std::pair<std::string, caf::actor>>{
      {bench::writer_host_name, caf::actor_cast<caf::actor>(host)}};
  };
  return brd::run_node(opts);
}
