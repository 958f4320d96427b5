#include "actors/alerter.hpp"

#include <map>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <nlohmann/json.hpp>

#include "io/deploy_records.hpp"
#include "runtime/log.hpp"
#include "runtime/wall_clock.hpp"

namespace brd {

namespace {

constexpr int64_t max_age_ms = 60 * 60 * 1000;

struct alerter_state {
  alerter_options opts;
  std::map<node_name, member_state> states; // of the bridge nodes
};

using alerter_ptr = alerter_actor::stateful_pointer<alerter_state>;

bool is_bridge(const node_config& n) {
  return std::find(n.roles.begin(), n.roles.end(), "bridge") != n.roles.end();
}

// True when this node is the first bridge in config order that is alive.
bool posts_here(const alerter_state& st) {
  for (const auto& n : st.opts.fleet.nodes) {
    if (!is_bridge(n))
      continue;
    if (n.name == st.opts.self)
      return true;
    auto i = st.states.find(n.name);
    if (i != st.states.end() && i->second == member_state::alive)
      return false;
  }
  return true;
}

std::string slack_body(const io::alert_record& a) {
  auto detail = "*" + a.kind + "*";
  if (!a.node.empty())
    detail += " · node `" + a.node + "`";
  if (!a.deploy_id.empty())
    detail += " · deployment `" + a.deploy_id + "`";
  nlohmann::json section{{"type", "section"},
                         {"text", {{"type", "mrkdwn"}, {"text", a.text + "\n" + detail}}}};
  return nlohmann::json{{"text", "[blackroad] " + a.text}, {"blocks", {section}}}.dump();
}

void on_alert(alerter_ptr self, const state_entry& e) {
  auto& st = self->state;
  if (e.table != "alerts" || e.tombstone || st.opts.fleet.deploy.alerts.url.empty())
    return;
  auto alert = io::decode<io::alert_record>(e.value);
  if (!alert) {
    log::deploy()->warn("alert {} is not readable: skipped", e.key);
    return;
  }
  if (wall_clock_ms() - alert->at_ms > max_age_ms || !posts_here(st))
    return;
  self->send(st.opts.poster, outgoing_post{"alert/" + e.key, st.opts.fleet.deploy.alerts.url,
                                           slack_body(*alert), {}});
}

alerter_actor::behavior_type alerter(alerter_ptr self, alerter_options opts) {
  self->state.opts = std::move(opts);
  auto me = caf::actor_cast<caf::actor>(self);
  self->send(self->state.opts.state, subscribe_atom::value, std::string{"alerts"}, me);
  self->send(self->state.opts.health, subscribe_atom::value, me);
  self->request(self->state.opts.health, std::chrono::seconds(10), get_atom::value,
                members_atom::value)
    .then([=](std::vector<member_view>& rows) {
      for (const auto& row : rows)
        self->state.states[row.node] = row.state;
    });
  return {
    [=](const state_entry& e) { on_alert(self, e); },
    [=](const member_event& ev) { self->state.states[ev.node] = ev.to; },
  };
}

} // namespace

alerter_actor spawn_alerter(caf::actor_system& sys, alerter_options opts) {
  return sys.spawn(alerter, std::move(opts));
}

} // namespace brd
