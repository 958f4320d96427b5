// Fleet configuration: one TOML file describes the whole fleet and the same
// file goes on every node. load_fleet_config() validates everything up front;
// a broken file yields an error whose text names the file, the line, the key
// and the fix, so brnode can print it and exit non-zero.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "runtime/deploy_config.hpp"

namespace brd {

using node_name = std::string;

// Tiers of the seed fleet. The tier decides where a node appears in /health.
enum class tier : uint8_t { edge, backup, pi };

std::string to_string(tier t);

// One machine of the fleet.
struct node_config {
  node_name name;
  brd::tier tier = tier::pi;
  std::vector<std::string> roles;
  std::string host;        // address peers connect to
  uint16_t port = 0;       // CAF actor port
  uint16_t http_port = 0;  // HTTP port (livez, readyz, health, metrics)
};

// Failure detector and heartbeat tuning. Defaults suit loopback and a LAN.
struct detector_config {
  std::chrono::milliseconds heartbeat_interval{200};
  std::chrono::milliseconds sample_interval{1000};
  double phi_suspect = 3.0;      // phi above this: suspect
  double phi_threshold = 8.0;    // phi above this: down
  std::chrono::milliseconds min_std_dev{100};
  std::chrono::milliseconds acceptable_pause{300};
  size_t window = 100;           // heartbeat intervals kept per peer
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{5000};
};

// Mutual TLS: enabled when all three paths are set. "{name}" in cert and key
// is replaced by the node's name, so one file serves the whole fleet.
struct tls_config {
  std::string ca;
  std::string cert;
  std::string key;
  bool enabled() const { return !ca.empty(); }
};

struct fleet_config {
  std::string file;          // path it was loaded from
  std::string cluster;       // cluster name; part of the CAF app identifier
  detector_config detector;
  tls_config tls;
  std::vector<node_config> nodes;
  deploy_config deploy;      // [github], [alerts], [deploy], [[repo]]
  // [cluster] log_keep: replication log entries kept per origin for peers
  // that are away; one away longer than that is caught up with a snapshot.
  uint64_t log_keep = 100'000;
  // [cluster] replication_backlog: how many of a node's durable writes a
  // peer that keeps answering may lack before the node's next local commits
  // wait for it (replication backpressure); 0: never wait.
  uint64_t replication_backlog = 1024;

  const node_config* find(const node_name& name) const;
};

// Parses and validates a fleet file. Never throws.
caf::expected<fleet_config> load_fleet_config(const std::string& path);

// Same, from text already in memory (`origin` names it in messages).
caf::expected<fleet_config> parse_fleet_config(const std::string& text,
                                               const std::string& origin);

// The TLS paths for one node, with {name} substituted and relative paths
// resolved against the config file's directory.
tls_config resolve_tls(const fleet_config& fleet, const node_name& self);

} // namespace brd
