#include "deploy_view.hpp"

#include <algorithm>
#include <cctype>
#include <map>

#include "client.hpp"
#include "io/http_server.hpp"
#include "runtime/errors.hpp"

namespace brsh {

namespace {

using nlohmann::json;

// GET `path` from the connected node's HTTP port: the status and the JSON
// body (null when it is not JSON).
caf::expected<std::pair<int, json>> get_json(client& cl, const std::string& path) {
  if (auto err = cl.ensure_connected())
    return err;
  const auto* n = cl.fleet().find(cl.node());
  if (n == nullptr)
    return brd::make_error(brd::brd_errc::refused,
                           "brsh reads deploys from a node's HTTP port, which " + cl.fleet().file
                             + " gives only for its own nodes; connect to one of them by name");
  auto r = brd::io::http_get(n->host, n->http_port, path, cl.request_timeout());
  if (!r)
    return cl.unreachable("its HTTP port " + n->host + ":" + std::to_string(n->http_port)
                          + " does not answer: " + brd::describe(r.error()));
  auto body = json::parse(r->body, nullptr, false);
  if (body.is_discarded())
    body = nullptr;
  return std::pair{r->status, std::move(body)};
}

// The node's "error" sentence for a status other than 200.
caf::error node_refused(const client& cl, int status, const json& body) {
  auto why = text_at(body, "error");
  return brd::make_error(brd::brd_errc::io_failure,
                         cl.node() + " could not answer (HTTP " + std::to_string(status) + ")"
                           + (why.empty() ? "" : ": " + why));
}

} // namespace

const std::vector<std::string>& deployment_states() {
  static const std::vector<std::string> states{"pending", "success", "failure"};
  return states;
}

bool task_finished(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "timed_out"
         || state == "unassigned" || state == "superseded";
}

caf::expected<json> recent_deployments(client& cl, size_t limit) {
  auto r = get_json(cl, "/api/deployments?limit=" + std::to_string(limit));
  if (!r)
    return r.error();
  if (r->first != 200 || !r->second.is_array())
    return node_refused(cl, r->first, r->second);
  return std::move(r->second);
}

caf::expected<json> find_deployment(client& cl, const std::string& id) {
  // The API's route takes d-[0-9A-Za-z-]+; anything else names no deployment.
  bool plausible = id.size() > 2 && id.rfind("d-", 0) == 0
                   && std::all_of(id.begin(), id.end(), [](unsigned char c) {
                        return std::isalnum(c) || c == '-';
                      });
  auto r = plausible ? get_json(cl, "/api/deployments/" + id)
                     : caf::expected<std::pair<int, json>>{std::pair{404, json{}}};
  if (!r)
    return r.error();
  if (r->first == 404)
    return brd::make_error(brd::brd_errc::refused,
                           "there is no deployment '" + id + "' on " + cl.node()
                             + " (`deploys list` shows the recent ones)");
  if (r->first != 200 || !r->second.is_object())
    return node_refused(cl, r->first, r->second);
  return std::move(r->second);
}

bool deployment_finished(const json& deployment) {
  if (text_at(deployment, "state") == "pending")
    return false;
  for (const auto& t : items_at(deployment, "tasks"))
    if (!task_finished(text_at(t, "state")))
      return false;
  return true;
}

std::string task_summary(const json& deployment) {
  std::map<std::string, size_t> by_state;
  size_t total = 0;
  for (const auto& t : items_at(deployment, "tasks")) {
    ++by_state[text_at(t, "state")];
    ++total;
  }
  std::string out = std::to_string(total) + (total == 1 ? " task" : " tasks");
  std::string parts;
  for (const auto& [state, n] : by_state)
    parts += (parts.empty() ? "" : ", ") + std::to_string(n) + " " + state;
  return parts.empty() ? out : out + ": " + parts;
}

std::string text_at(const json& j, const char* key) {
  if (!j.is_object())
    return "";
  auto i = j.find(key);
  if (i == j.end() || i->is_null())
    return "";
  return i->is_string() ? i->get<std::string>() : i->dump();
}

json items_at(const json& j, const char* key) {
  if (!j.is_object())
    return json::array();
  auto i = j.find(key);
  return i != j.end() && i->is_array() ? *i : json::array();
}

int64_t ms_at(const json& j, const char* key) {
  if (!j.is_object())
    return 0;
  auto i = j.find(key);
  return i != j.end() && i->is_number_integer() ? i->get<int64_t>() : 0;
}

std::string short_sha(const std::string& sha) {
  return sha.substr(0, 7);
}

} // namespace brsh
