// Members and nodes: members list, node status, health.
#include <chrono>

#include "client.hpp"
#include "commands.hpp"
#include "runtime/fleet_health.hpp"

namespace brsh {

namespace {

using nlohmann::json;

std::string roles_text(const std::vector<std::string>& roles) {
  std::string out;
  for (const auto& r : roles)
    out += (out.empty() ? "" : ",") + r;
  return out.empty() ? "-" : out;
}

outcome members_list(context& ctx, const invocation& inv) {
  auto rows = ctx.cl.members();
  if (!rows)
    return failure(rows.error());
  const auto& fleet = ctx.cl.fleet();
  if (inv.format == format::json) {
    print_json(ctx.out, brd::members_json(fleet, *rows));
    return {};
  }
  table t{{"node", "tier", "roles", "state", "heartbeat", "address", "version"}, {}};
  for (const auto& row : *rows) {
    const auto* cfg = fleet.find(row.node);
    t.rows.push_back({row.node + (row.self ? " *" : ""),
                      cfg ? brd::to_string(cfg->tier) : "?",
                      cfg ? roles_text(cfg->roles) : "-", brd::to_string(row.state),
                      row.self ? "self" : human_age_ms(row.last_heartbeat_age_ms),
                      row.address.empty() ? "-" : row.address,
                      row.version.empty() ? "-" : row.version});
  }
  print_table(ctx.out, t);
  ctx.out << "(* the node brsh is connected to; heartbeat ages as " << ctx.cl.node()
          << " sees them)\n";
  return {};
}

double mem_used_pct(const brd::node_sample& s) {
  if (s.mem_total_bytes == 0)
    return 0;
  return 100.0 * double(s.mem_total_bytes - s.mem_available_bytes) / double(s.mem_total_bytes);
}

json status_json(const brd::node_status& st) {
  const auto& s = st.sample;
  return {{"node", st.node},
          {"cluster", st.cluster},
          {"version", st.version},
          {"incarnation", st.incarnation},
          {"uptime_s", st.uptime_s},
          {"data_dir", st.data_dir},
          {"data_dir_bytes", st.data_dir_bytes},
          {"actor_count", st.actor_count},
          {"sample",
           {{"taken_at_ms", s.taken_at_ms},
            {"age_ms", st.sample_age_ms},
            {"disk_used_pct", s.disk_used_pct},
            {"disk_total_bytes", s.disk_total_bytes},
            {"disk_free_bytes", s.disk_free_bytes},
            {"load", {s.load1, s.load5, s.load15}},
            {"mem_total_bytes", s.mem_total_bytes},
            {"mem_available_bytes", s.mem_available_bytes},
            {"rss_bytes", s.rss_bytes},
            {"host_uptime_s", s.host_uptime_s}}}};
}

outcome node_status(context& ctx, const invocation& inv) {
  auto name = inv.args.empty() ? std::string{} : inv.args[0];
  auto health = ctx.cl.health_of(name);
  if (!health)
    return failure(health.error());
  auto st = ctx.cl.ask<brd::node_status>(*health, brd::get_atom::value,
                                         brd::status_atom::value);
  if (!st)
    return failure(st.error());
  if (inv.format == format::json) {
    print_json(ctx.out, status_json(*st));
    return {};
  }
  const auto& s = st->sample;
  char load[64];
  std::snprintf(load, sizeof load, "%.2f %.2f %.2f", s.load1, s.load5, s.load15);
  print_facts(ctx.out,
              {{"node", st->node + " (cluster " + st->cluster + ", brnode " + st->version
                          + ", incarnation " + std::to_string(st->incarnation) + ")"},
               {"uptime", human_seconds(st->uptime_s)},
               {"data directory", st->data_dir + " (" + human_bytes(st->data_dir_bytes) + ")"},
               {"actors", std::to_string(st->actor_count) + " running"},
               {"last sample", human_age_ms(st->sample_age_ms) + " ago"},
               {"disk", percent(s.disk_used_pct) + " used, " + human_bytes(s.disk_free_bytes)
                          + " free of " + human_bytes(s.disk_total_bytes)},
               {"load", load},
               {"memory", percent(mem_used_pct(s)) + " used of "
                            + human_bytes(s.mem_total_bytes)},
               {"brnode rss", human_bytes(s.rss_bytes)},
               {"host uptime", human_seconds(s.host_uptime_s)}});
  return {};
}

std::string tier_line(const json& h) {
  return "edge " + h.value("edge", "?") + ", backup " + h.value("backup", "?");
}

outcome health(context& ctx, const invocation& inv) {
  auto rows = ctx.cl.members();
  if (!rows)
    return failure(rows.error());
  auto h = brd::health_json(ctx.cl.fleet(), ctx.cl.node(), *rows);
  if (inv.format == format::json) {
    print_json(ctx.out, h);
    return {};
  }
  ctx.out << "cluster " << h.value("cluster", "") << " as " << ctx.cl.node()
          << " sees it: " << tier_line(h) << "\n";
  table t{{"tier", "node", "status", "disk", "load", "memory", "uptime", "heartbeat"}, {}};
  for (const char* tier : {"edge", "backup", "pi"}) {
    for (const auto& [node, v] : h["tiers"][tier].items()) {
      auto load = v.contains("load") ? v["load"].dump() : "-";
      t.rows.push_back({tier, node, v.value("status", "?"), v.value("disk", "-"), load,
                        v.value("memory", "-"),
                        v.contains("uptime_s")
                          ? human_seconds(v["uptime_s"].get<uint64_t>())
                          : "-",
                        node == ctx.cl.node()
                          ? "self"
                          : human_age_ms(v.value("last_heartbeat_age_ms", int64_t{-1}))});
    }
  }
  print_table(ctx.out, t);
  return {};
}

} // namespace

void add_fleet_commands(std::vector<command>& table) {
  table.push_back({"members list", "", "every node: tier, roles, state, heartbeat age, "
                                       "address, version",
                   {output_flag()}, 0, 0, members_list,
                   "States are as the connected node sees them: alive, suspect, down, "
                   "left, or unknown (never heard from)."});
  table.push_back({"node status", "[NODE]", "a node's last health sample, uptime, data "
                                            "directory size and actor count",
                   {output_flag()}, 0, 1, node_status,
                   "Without NODE: the connected node. Other nodes are asked through "
                   "the connected node."});
  table.push_back({"health", "", "the fleet table, as /health has it", {output_flag()}, 0, 0,
                   health,
                   "-o json prints exactly what GET /health on the connected node "
                   "answers."});
}

} // namespace brsh
