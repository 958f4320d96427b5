// The memory floor of brnode's fixed dependencies (issue 2's RSS goal): a
// process that loads only what every node must load -- a CAF actor system
// with the middleman and the OpenSSL manager (Debian ships CAF as shared
// libraries only), one published actor, and a RocksDB with BlackRoad's
// column families holding one row -- then idles and prints its memory as
// /proc/self/status shows it. No HTTP server, no logging, no BlackRoad code.
// tools/bench/membership runs it next to the nodes, in the same run.
//
// usage: rss_floor DATA_DIR [IDLE_SECONDS]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <rocksdb/db.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: rss_floor DATA_DIR [IDLE_SECONDS]\n");
    return 64;
  }
  int idle = argc > 2 ? std::atoi(argv[2]) : 3;
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.load<caf::openssl::manager>();
  cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{cfg};
  auto echo = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](int x) { return x; }};
  });
  if (!sys.middleman().publish(echo, 0, "127.0.0.1")) {
    std::fprintf(stderr, "rss_floor: cannot publish an actor\n");
    return 1;
  }
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> families{{rocksdb::kDefaultColumnFamilyName, {}}};
  for (auto name : {"deployments", "nodes", "tasks", "artifacts", "rollouts", "triage", "alerts",
                    "log", "vv", "tombstones", "meta"})
    families.emplace_back(name, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  auto status = rocksdb::DB::Open(opts, argv[1], families, &handles, &db);
  if (!status.ok()) {
    std::fprintf(stderr, "rss_floor: %s\n", status.ToString().c_str());
    return 1;
  }
  rocksdb::WriteOptions sync;
  sync.sync = true;
  db->Put(sync, handles[3], "floor", "one row");
  std::this_thread::sleep_for(std::chrono::seconds(idle));
  std::ifstream in{"/proc/self/status"};
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0 || line.rfind("RssAnon:", 0) == 0
        || line.rfind("RssFile:", 0) == 0)
      std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  std::_Exit(0); // the published actor would keep the system's teardown waiting
}
