// Replicated state across nodes and over time: state digest, state watch.
#include <algorithm>
#include <iostream>
#include <set>

#include <caf/after.hpp>

#include "client.hpp"
#include "commands.hpp"
#include "digests.hpp"
#include "state_view.hpp"

namespace brsh {

using nlohmann::json;

namespace {

constexpr size_t short_digest = 12;

caf::expected<node_digest> digest_of(client& cl, const std::string& node) {
  auto state = cl.state_of(node);
  if (!state)
    return state.error();
  auto reply = cl.ask_all<std::map<std::string, std::string>, std::map<std::string, uint64_t>>(
    *state, brd::digest_atom::value);
  if (!reply)
    return reply.error();
  return node_digest{std::move(std::get<0>(*reply)), std::move(std::get<1>(*reply))};
}

json digest_json(const node_digest& d) {
  return {{"tables", d.tables}, {"vv", d.vv}};
}

std::string vv_text(const std::map<std::string, uint64_t>& vv) {
  std::string out;
  for (const auto& [origin, seq] : vv)
    out += (out.empty() ? "" : " ") + origin + "=" + std::to_string(seq);
  return out.empty() ? "(empty)" : out;
}

outcome digest_all(context& ctx, const invocation& inv) {
  auto all = collect_digests(ctx.cl);
  if (all.nodes.empty())
    return failure(exit_unavailable, all.sentence());
  if (inv.format == format::json) {
    json nodes = json::object();
    for (const auto& [name, d] : all.nodes)
      nodes[name] = digest_json(d);
    print_json(ctx.out, {{"converged", all.converged()},
                         {"nodes", nodes},
                         {"differing_tables", all.differing},
                         {"unreachable", all.unreachable}});
  } else {
    table t{{"table"}, {}};
    for (const auto& n : all.order)
      t.columns.push_back(n);
    t.columns.push_back("");
    std::set<std::string> names;
    for (const auto& [node, d] : all.nodes)
      for (const auto& entry : d.tables)
        names.insert(entry.first);
    for (const auto& name : names) {
      std::vector<std::string> row{name};
      for (const auto& n : all.order) {
        auto& tables = all.nodes[n].tables;
        auto i = tables.find(name);
        row.push_back(i == tables.end() ? "-" : i->second.substr(0, short_digest));
      }
      bool differs = std::count(all.differing.begin(), all.differing.end(), name) > 0;
      row.push_back(differs ? "DIFFERS" : "");
      t.rows.push_back(row);
    }
    print_table(ctx.out, t);
    for (const auto& n : all.order)
      ctx.out << "vv " << n << ": " << vv_text(all.nodes[n].vv) << '\n';
    ctx.out << all.sentence() << '\n';
  }
  return all.converged() ? outcome{} : failure(exit_failed, "");
}

outcome state_digest(context& ctx, const invocation& inv) {
  if (inv.has("all")) {
    if (!inv.args.empty())
      return failure(exit_usage, "give either NODE or --all, not both\nusage: state digest "
                                 "[NODE|--all] [-o table|json]");
    return digest_all(ctx, inv);
  }
  auto node = inv.args.empty() ? ctx.cl.node() : inv.args[0];
  auto d = digest_of(ctx.cl, inv.args.empty() ? "" : node);
  if (!d)
    return failure(d.error());
  if (inv.format == format::json) {
    auto j = digest_json(*d);
    j["node"] = node;
    print_json(ctx.out, j);
    return {};
  }
  table t{{"table", "digest"}, {}};
  for (const auto& [name, hash] : d->tables)
    t.rows.push_back({name, hash});
  print_table(ctx.out, t);
  ctx.out << "vv " << node << ": " << vv_text(d->vv) << '\n';
  return {};
}

void print_change(context& ctx, const invocation& inv, const brd::state_entry& e) {
  if (inv.format == format::json) {
    ctx.out << row_json(e).dump() << std::endl;
    return;
  }
  ctx.out << hlc_text(e.hlc) << "  " << (e.tombstone ? "delete" : "put   ") << "  "
          << e.table << "/" << e.key << "  "
          << (e.tombstone ? std::string{} : decode_value(e.value).dump() + "  ") << "("
          << e.origin << " entry " << e.seq << ")" << std::endl;
}

outcome state_watch(context& ctx, const invocation& inv) {
  const auto& table_name = inv.args[0];
  auto state = ctx.cl.state_of("");
  if (!state)
    return failure(state.error());
  caf::scoped_actor self{ctx.cl.system()};
  self->monitor(*state);
  self->send(*state, brd::subscribe_atom::value, table_name,
             caf::actor_cast<caf::actor>(self));
  std::cerr << "watching table " << table_name << " on " << ctx.cl.node()
            << "; Ctrl-C stops" << std::endl;
  bool lost = false;
  while (!lost && !(ctx.interrupted != nullptr && ctx.interrupted->load())) {
    self->receive([&](brd::state_entry& e) { print_change(ctx, inv, e); },
                  [&](caf::down_msg&) { lost = true; },
                  [&](caf::error&) {},
                  caf::after(std::chrono::milliseconds(200)) >> [] {});
  }
  if (lost)
    return failure(ctx.cl.unreachable("the connection was lost while watching"));
  return {};
}

} // namespace

std::string fleet_digests::sentence() const {
  std::string out;
  if (nodes.empty()) {
    out = "no node answered";
  } else if (differing.empty()) {
    out = "converged: " + std::to_string(nodes.size()) + " node"
          + (nodes.size() == 1 ? "" : "s") + " agree on every table";
  } else {
    out = "not converged: table";
    out += differing.size() == 1 ? " " : "s ";
    for (size_t i = 0; i < differing.size(); ++i)
      out += (i > 0 ? ", " : "") + differing[i];
    out += differing.size() == 1 ? " differs" : " differ";
    out += " between " + std::to_string(nodes.size()) + " nodes";
  }
  for (const auto& [node, why] : unreachable)
    out += "; " + node + " did not answer (" + why + ")";
  return out;
}

fleet_digests collect_digests(client& cl) {
  fleet_digests out;
  for (const auto& n : cl.fleet().nodes) {
    auto d = digest_of(cl, n.name);
    if (!d) {
      out.unreachable[n.name] = brd::describe(d.error());
      continue;
    }
    out.order.push_back(n.name);
    out.nodes[n.name] = std::move(*d);
  }
  std::set<std::string> names;
  for (const auto& [node, d] : out.nodes)
    for (const auto& entry : d.tables)
      names.insert(entry.first);
  for (const auto& name : names) {
    std::set<std::string> seen;
    for (const auto& [node, d] : out.nodes) {
      auto i = d.tables.find(name);
      seen.insert(i == d.tables.end() ? "" : i->second);
    }
    if (seen.size() > 1)
      out.differing.push_back(name);
  }
  return out;
}

void add_state_watch_commands(std::vector<command>& table) {
  table.push_back({"state digest", "[NODE]",
                   "table digests and version vector; --all compares every node",
                   {{"all", "", ""}, output_flag()}, 0, 1, state_digest,
                   "With --all, says 'converged' or names the tables that differ, and "
                   "exits 1 when some differ."});
  table.push_back({"state watch", "TABLE", "stream the table's changes until Ctrl-C",
                   {output_flag()}, 1, 1, state_watch,
                   "-o json prints one JSON object per line."});
}

} // namespace brsh
