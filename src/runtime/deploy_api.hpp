// The HTTP side of push to deploy. Every node serves the read-only views,
// from its replica of the `deployments` and `tasks` tables:
//
//   GET /api/deployments?limit=N     newest first (default 50, at most 1000)
//   GET /api/deployments/{id}        the record with its task rows ("tasks")
//   GET /api/deployments/{id}/logs   per task: node, state, log_path on that
//                                    node and the tail of the output
//   GET /api/tasks?limit=N&state=S&node=X   newest first
//   GET /deployments/{id}            a plain HTML page (the statuses' target_url)
//
// Nodes with a dispatcher (role "bridge") also take:
//
//   POST /webhooks/github            GitHub's push webhook (see below)
//   POST /api/rollback               {"repo", "node" | "role", "sha" | "previous"}
//   POST /api/deployments/{id}/retry
//
// The webhook handler runs on the HTTP worker threads: the body limit (413)
// is the server's; then the signature (401; the reply never holds the
// expected signature), event and delivery headers (400, ping 200, other
// events 202), the payload (400) and the repository (404) are checked here,
// in parallel for concurrent requests; what needs state goes to the
// dispatcher, which answers within milliseconds.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "actors/dispatcher.hpp"
#include "actors/state.hpp"
#include "io/http_server.hpp"
#include "runtime/config.hpp"

namespace caf {
class actor_system;
}

namespace brd {

struct deploy_api_context {
  caf::actor_system* sys = nullptr; // outlives the HTTP server
  state_actor state;
  dispatcher_actor dispatcher;      // invalid on nodes without the role "bridge"
  std::string webhook_secret;       // never logged, never in a reply
  deploy_config deploy;
  std::shared_ptr<io::metrics_registry> metrics;
};

std::vector<io::http_route> deploy_routes(std::shared_ptr<const deploy_api_context> ctx);

} // namespace brd
