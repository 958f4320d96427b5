#include "runtime/fleet_health.hpp"

#include <cmath>
#include <map>

namespace brd {

namespace {

using nlohmann::json;

std::string percent(double x) {
  return std::to_string(static_cast<int>(std::lround(x))) + "%";
}

double round2(double x) {
  return std::round(x * 100.0) / 100.0;
}

json node_json(const member_view& row) {
  json j{{"status", member_status(row.state)}};
  if (row.has_sample) {
    const auto& s = row.sample;
    double mem_used = s.mem_total_bytes == 0
                        ? 0.0
                        : 100.0 * double(s.mem_total_bytes - s.mem_available_bytes)
                            / double(s.mem_total_bytes);
    j["disk"] = percent(s.disk_used_pct);
    j["load"] = round2(s.load1);
    j["memory"] = percent(mem_used);
    j["rss_bytes"] = s.rss_bytes;
    j["uptime_s"] = s.uptime_s;
    j["sample_age_ms"] = row.sample_age_ms;
  }
  j["last_heartbeat_age_ms"] = row.last_heartbeat_age_ms;
  return j;
}

// "online" when every member of the tier is online, "offline" when none
// is, "degraded" in between.
std::string tier_status(const std::vector<std::string>& statuses) {
  size_t online = 0;
  for (const auto& s : statuses)
    online += s == "online" ? 1 : 0;
  if (statuses.empty() || online == 0)
    return "offline";
  return online == statuses.size() ? "online" : "degraded";
}

} // namespace

const char* member_status(member_state s) {
  switch (s) {
    case member_state::alive: return "online";
    case member_state::suspect: return "suspect";
    case member_state::down: return "offline";
    case member_state::left: return "left";
    case member_state::unknown: return "unknown";
  }
  return "unknown";
}

json health_json(const fleet_config& fleet, const node_name& self,
                 const std::vector<member_view>& rows) {
  json tiers = {{"edge", json::object()}, {"backup", json::object()},
                {"pi", json::object()}};
  std::map<std::string, std::vector<std::string>> statuses;
  for (const auto& row : rows) {
    const auto* cfg = fleet.find(row.node);
    if (cfg == nullptr)
      continue;
    auto t = to_string(cfg->tier);
    tiers[t][row.node] = node_json(row);
    statuses[t].push_back(member_status(row.state));
  }
  json out{{"cluster", fleet.cluster}, {"node", self}};
  out["edge"] = tier_status(statuses["edge"]);
  out["backup"] = tier_status(statuses["backup"]);
  out["pi_cluster"] = tiers["pi"];
  out["tiers"] = tiers;
  return out;
}

json members_json(const fleet_config& fleet,
                  const std::vector<member_view>& rows) {
  json out = json::array();
  for (const auto& row : rows) {
    const auto* cfg = fleet.find(row.node);
    json j{{"node", row.node},
           {"state", to_string(row.state)},
           {"phi", round2(row.phi)},
           {"last_heartbeat_age_ms", row.last_heartbeat_age_ms},
           {"address", row.address},
           {"version", row.version},
           {"incarnation", row.incarnation},
           {"self", row.self}};
    if (cfg != nullptr) {
      j["tier"] = to_string(cfg->tier);
      j["roles"] = cfg->roles;
      j["http_port"] = cfg->http_port;
    }
    out.push_back(std::move(j));
  }
  return out;
}

} // namespace brd
