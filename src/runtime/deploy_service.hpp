// Push to deploy on one node, wired: the deployer on every node, and on
// nodes with the role "bridge" the dispatcher, the status poster and the
// alerter. The deployer and the dispatcher are registered with the health
// actor as services "deployer" and "dispatcher"; routes() are the HTTP
// endpoints to serve (runtime/deploy_api.hpp) and max_body_bytes() the
// webhook body limit the HTTP server must enforce (github.max_body_bytes).
//
// start() reads the secrets once, before anything is spawned: on a bridge
// node github.webhook_secret_file and github.token_file, when set, must be
// readable and not empty; otherwise the error (brd_errc::bad_config) names
// the key and the file, never the contents. Without a webhook secret the
// node answers webhooks 503 (and logs a warning at start); without a token
// it posts no commit statuses. Relative paths resolve against the config
// file's directory.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/expected.hpp>

#include "actors/health.hpp"
#include "actors/state.hpp"
#include "io/http_server.hpp"
#include "runtime/config.hpp"

namespace brd {

namespace io {
class metrics_registry;
}

struct deploy_service_options {
  fleet_config fleet;
  node_name self;
  std::string data_dir;
  health_actor health;
  state_actor state;
  std::shared_ptr<io::metrics_registry> metrics;
};

class deploy_service {
public:
  static caf::expected<std::unique_ptr<deploy_service>> start(caf::actor_system& sys,
                                                              deploy_service_options opts);

  // Stops the actors, like stop().
  ~deploy_service();

  deploy_service(const deploy_service&) = delete;
  deploy_service& operator=(const deploy_service&) = delete;

  const std::vector<io::http_route>& routes() const { return routes_; }
  size_t max_body_bytes() const { return max_body_bytes_; }

  // Sends every actor an exit message. Idempotent.
  void stop();

private:
  deploy_service() = default;
  std::vector<io::http_route> routes_;
  size_t max_body_bytes_ = 0;
  std::vector<caf::actor> actors_;
};

// Whether `self` has the role "bridge" in `fleet`.
bool is_bridge_node(const fleet_config& fleet, const node_name& self);

} // namespace brd
