// brsh's way to the operator actions of push to deploy (rollback, retry).
// The dispatcher that carries them out runs on nodes with the role
// "bridge" and takes them over the node's HTTP API (POST /api/rollback,
// POST /api/deployments/{id}/retry); its request and answer types are not
// messages of the nodes' CAF protocol. So brsh POSTs there with
// io/http_client, to the host and http_port the fleet config gives the
// node, bounded by the request timeout.
//
// Bridge nodes are tried in this order: the connected node, those alive
// when brsh last saw the membership, then the rest (config order); the
// first that answers at all (any HTTP status) is the answer.
#pragma once

#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

namespace brsh {

class client;

struct bridge_answer {
  std::string node;    // the bridge node that answered
  int status = 0;      // 202 accepted; 400/404/409 with "error"
  nlohmann::json body; // the dispatcher's JSON (null when not JSON)

  bool accepted() const { return status >= 200 && status < 300; }
  // The dispatcher's "error" sentence, or the status and body.
  std::string error() const;
};

// The nodes of the config with the role "bridge", in the order above.
std::vector<std::string> bridge_nodes(const client& cl);

// POSTs `body` to `path` of the first bridge node that answers. An empty
// list of bridges or bridges that all fail to answer is brd_errc::io_failure
// naming each node, its HTTP address and why.
caf::expected<bridge_answer> post_to_bridge(client& cl, const std::string& path,
                                            const nlohmann::json& body);

} // namespace brsh
