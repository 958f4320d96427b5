// Convergence across the fleet: every reachable node's table digests and
// version vector, and which tables differ. Used by `state digest --all` and
// `wait-for digests equal`.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace brsh {

class client;

struct node_digest {
  std::map<std::string, std::string> tables; // table -> hex digest
  std::map<std::string, uint64_t> vv;        // origin -> seq
};

struct fleet_digests {
  std::vector<std::string> order;                  // nodes that answered, config order
  std::map<std::string, node_digest> nodes;
  std::map<std::string, std::string> unreachable;  // node -> why
  std::vector<std::string> differing;              // tables whose digests differ

  bool converged() const { return differing.empty() && !nodes.empty(); }
  // "converged: 3 nodes agree on every table" or "not converged: tables
  // deployments, nodes differ (a has ..., b has ...)", plus unreachable nodes.
  std::string sentence() const;
};

// Asks every configured node's state actor (through the connected node).
fleet_digests collect_digests(client& cl);

} // namespace brsh
