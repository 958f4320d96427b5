#include "runtime/deploy_service.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include "actors/alerter.hpp"
#include "actors/deployer.hpp"
#include "actors/dispatcher.hpp"
#include "actors/retention.hpp"
#include "actors/status_poster.hpp"
#include "io/workspace.hpp"
#include "runtime/deploy_api.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"

namespace brd {

namespace {

namespace fs = std::filesystem;

std::string resolve(const fleet_config& fleet, const std::string& path) {
  if (path.empty() || fs::path{path}.is_absolute())
    return path;
  return (fs::path{fleet.file}.parent_path() / path).string();
}

// The secret in `path` (set) with trailing whitespace removed, or an error
// naming `key` and the file.
caf::expected<std::string> read_secret(const fleet_config& fleet, const std::string& key,
                                       const std::string& path) {
  auto where = fleet.file + ": " + key + ": ";
  auto file = resolve(fleet, path);
  std::ifstream in{file, std::ios::binary};
  if (!in)
    return make_error(brd_errc::bad_config, where + "cannot read '" + file + "': "
                                              + std::strerror(errno)
                                              + "; fix: create the file, readable by brnode");
  std::ostringstream text;
  text << in.rdbuf();
  auto secret = text.str();
  while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back())))
    secret.pop_back();
  if (secret.empty())
    return make_error(brd_errc::bad_config,
                      where + "'" + file + "' is empty; fix: write the secret into it");
  return secret;
}

std::string public_url(const fleet_config& fleet, const node_name& self) {
  auto url = fleet.deploy.github.public_url;
  if (url.empty()) {
    const auto* n = fleet.find(self);
    url = "http://" + (n ? n->host : std::string{"127.0.0.1"}) + ":"
          + std::to_string(n ? n->http_port : 0);
  }
  while (!url.empty() && url.back() == '/')
    url.pop_back();
  return url;
}

} // namespace

bool is_bridge_node(const fleet_config& fleet, const node_name& self) {
  const auto* n = fleet.find(self);
  return n != nullptr && std::find(n->roles.begin(), n->roles.end(), "bridge") != n->roles.end();
}

caf::expected<std::unique_ptr<deploy_service>>
deploy_service::start(caf::actor_system& sys, deploy_service_options opts) {
  const auto& github = opts.fleet.deploy.github;
  bool bridge = is_bridge_node(opts.fleet, opts.self);
  auto ctx = std::make_shared<deploy_api_context>();
  std::string token;
  if (bridge) {
    if (github.webhook_secret_file.empty()) {
      log::deploy()->warn("webhooks are off: this node has the role \"bridge\" but {} sets "
                          "no github.webhook_secret_file",
                          opts.fleet.file);
    } else {
      auto secret = read_secret(opts.fleet, "github.webhook_secret_file",
                                github.webhook_secret_file);
      if (!secret)
        return secret.error();
      ctx->webhook_secret = std::move(*secret);
    }
    if (!github.token_file.empty()) {
      auto t = read_secret(opts.fleet, "github.token_file", github.token_file);
      if (!t)
        return t.error();
      token = std::move(*t);
    }
  }
  std::unique_ptr<deploy_service> svc{new deploy_service};
  svc->max_body_bytes_ = github.max_body_bytes;
  auto deployer = spawn_deployer(sys, {opts.fleet, opts.self, opts.data_dir,
                                       caf::actor_cast<caf::actor>(opts.state), opts.metrics});
  caf::anon_send(opts.health, put_atom::value, std::string{"deployer"},
                 caf::actor_cast<caf::actor>(deployer));
  svc->actors_.push_back(caf::actor_cast<caf::actor>(deployer));
  const auto& settings = opts.fleet.deploy.settings;
  auto retention = spawn_retention(
    sys, {opts.self, opts.state, io::workspace_root(opts.data_dir, settings.workspace),
          settings.keep_logs, settings.keep_history});
  svc->actors_.push_back(caf::actor_cast<caf::actor>(retention));
  ctx->sys = &sys;
  ctx->state = opts.state;
  ctx->deploy = opts.fleet.deploy;
  ctx->metrics = opts.metrics;
  if (bridge) {
    poster_options po;
    po.api_url = github.api_url;
    po.token = std::move(token);
    po.metrics = opts.metrics;
    auto poster = spawn_status_poster(sys, std::move(po));
    auto dispatcher = spawn_dispatcher(sys, {opts.fleet, opts.self, opts.data_dir, opts.health,
                                             opts.state, poster, public_url(opts.fleet, opts.self),
                                             opts.metrics});
    auto alerter = spawn_alerter(sys, {opts.fleet, opts.self, opts.state, opts.health, poster});
    caf::anon_send(opts.health, put_atom::value, std::string{"dispatcher"},
                   caf::actor_cast<caf::actor>(dispatcher));
    for (auto a : {caf::actor_cast<caf::actor>(poster), caf::actor_cast<caf::actor>(dispatcher),
                   caf::actor_cast<caf::actor>(alerter)})
      svc->actors_.push_back(a);
    ctx->dispatcher = dispatcher;
    log::deploy()->info("bridge: webhooks at POST /webhooks/github, statuses to {}{}",
                        github.api_url, github.token_file.empty() ? " (no token: off)" : "");
  }
  svc->routes_ = deploy_routes(ctx);
  return svc;
}

deploy_service::~deploy_service() {
  stop();
}

void deploy_service::stop() {
  for (auto& a : actors_)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  actors_.clear();
}

} // namespace brd
