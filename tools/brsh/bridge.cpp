#include "bridge.hpp"

#include <algorithm>

#include "client.hpp"
#include "io/http_server.hpp"
#include "runtime/errors.hpp"

namespace brsh {

namespace {

bool holds_bridge(const brd::node_config& n) {
  return std::find(n.roles.begin(), n.roles.end(), "bridge") != n.roles.end();
}

bool alive_when_last_seen(const client& cl, const std::string& node) {
  for (const auto& row : cl.last_members())
    if (row.node == node)
      return row.state == brd::member_state::alive;
  return false;
}

} // namespace

std::string bridge_answer::error() const {
  if (body.is_object() && body.contains("error") && body["error"].is_string())
    return body["error"].get<std::string>();
  return "HTTP " + std::to_string(status) + (body.is_null() ? "" : " " + body.dump());
}

std::vector<std::string> bridge_nodes(const client& cl) {
  std::vector<std::string> first, alive, rest;
  for (const auto& n : cl.fleet().nodes) {
    if (!holds_bridge(n))
      continue;
    if (n.name == cl.node())
      first.push_back(n.name);
    else if (alive_when_last_seen(cl, n.name))
      alive.push_back(n.name);
    else
      rest.push_back(n.name);
  }
  first.insert(first.end(), alive.begin(), alive.end());
  first.insert(first.end(), rest.begin(), rest.end());
  return first;
}

caf::expected<bridge_answer> post_to_bridge(client& cl, const std::string& path,
                                            const nlohmann::json& body) {
  auto bridges = bridge_nodes(cl);
  if (bridges.empty())
    return brd::make_error(brd::brd_errc::io_failure,
                           "no node of " + cl.fleet().file
                             + " has the role \"bridge\", whose dispatcher does rollbacks "
                               "and retries");
  std::string failures;
  for (const auto& name : bridges) {
    const auto* n = cl.fleet().find(name);
    auto r = brd::io::http_post(n->host, n->http_port, path, body.dump(), {},
                                cl.request_timeout());
    if (!r) {
      failures += (failures.empty() ? "" : "; ") + std::string{"bridge node "} + name
                  + " at http://" + n->host + ":" + std::to_string(n->http_port)
                  + " is unreachable: " + brd::describe(r.error());
      continue;
    }
    auto doc = nlohmann::json::parse(r->body, nullptr, false);
    if (doc.is_discarded())
      doc = nullptr;
    return bridge_answer{name, r->status, std::move(doc)};
  }
  return brd::make_error(brd::brd_errc::io_failure,
                         failures + (bridges.size() == 1 ? "; no other node has the role "
                                                           "\"bridge\""
                                                         : ""));
}

} // namespace brsh
