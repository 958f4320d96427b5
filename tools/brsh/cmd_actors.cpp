// Actors: actors [NODE], actor inspect NODE ACTOR.
#include "client.hpp"
#include "commands.hpp"

namespace brsh {

namespace {

using nlohmann::json;

// Rows counted per table are capped so one inspect stays cheap.
constexpr uint64_t count_cap = 100000;

std::string counter(int64_t x) {
  return x < 0 ? "-" : std::to_string(x);
}

caf::expected<std::vector<brd::actor_info>> actors_on(context& ctx, const std::string& node) {
  auto health = ctx.cl.health_of(node);
  if (!health)
    return health.error();
  return ctx.cl.ask<std::vector<brd::actor_info>>(*health, brd::get_atom::value,
                                                  brd::actors_atom::value);
}

outcome actors(context& ctx, const invocation& inv) {
  auto node = inv.args.empty() ? ctx.cl.node() : inv.args[0];
  auto list = actors_on(ctx, node);
  if (!list)
    return failure(list.error());
  if (inv.format == format::json) {
    json out = json::array();
    for (const auto& a : *list)
      out.push_back({{"kind", a.kind},
                     {"id", a.id},
                     {"mailbox_size", a.mailbox_size},
                     {"handled", a.handled}});
    print_json(ctx.out, out);
    return {};
  }
  table t{{"kind", "id", "mailbox", "handled"}, {}};
  for (const auto& a : *list)
    t.rows.push_back({a.kind, std::to_string(a.id), counter(a.mailbox_size),
                      counter(a.handled)});
  print_table(ctx.out, t);
  ctx.out << "(on " << (inv.args.empty() ? ctx.cl.node() : inv.args[0])
          << "; mailbox: messages waiting when the actor began its last one; "
             "'-': not instrumented)\n";
  return {};
}

// The state actor summarized from its own interface: version vector,
// digests and row counts per table.
// The state actor's own summary (replication facts, a row per peer), after
// the version vector and one fact per table (rows and digest).
caf::expected<brd::actor_summary> state_summary(context& ctx, const std::string& node) {
  auto state = ctx.cl.state_of(node);
  if (!state)
    return state.error();
  auto digest = ctx.cl.ask_all<std::map<std::string, std::string>,
                               std::map<std::string, uint64_t>>(*state,
                                                                brd::digest_atom::value);
  if (!digest)
    return digest.error();
  auto own = ctx.cl.ask<brd::actor_summary>(*state, brd::inspect_atom::value,
                                            std::string{"state"});
  if (!own)
    return own.error();
  auto& [tables, vv] = *digest;
  brd::actor_summary out;
  out.kind = "state";
  std::string vv_text;
  uint64_t entries = 0;
  for (const auto& [origin, seq] : vv) {
    vv_text += (vv_text.empty() ? "" : " ") + origin + "=" + std::to_string(seq);
    entries += seq;
  }
  out.facts.push_back({"version vector", vv_text.empty() ? "(empty)" : vv_text});
  out.facts.push_back({"writes applied", std::to_string(entries) + " (sum of the vector)"});
  for (const auto& [table, hash] : tables) {
    auto rows = ctx.cl.ask<std::vector<brd::state_row>>(*state, brd::scan_atom::value, table,
                                                        std::string{}, count_cap);
    if (!rows)
      return rows.error();
    auto n = std::to_string(rows->size()) + (rows->size() >= count_cap ? "+" : "");
    out.facts.push_back({"table " + table, n + " rows, digest " + hash});
  }
  out.facts.insert(out.facts.end(), own->facts.begin(), own->facts.end());
  out.columns = std::move(own->columns);
  out.rows = std::move(own->rows);
  return out;
}

json summary_json(const brd::actor_summary& s, const std::string& node) {
  json facts = json::object();
  for (const auto& f : s.facts)
    facts[f.name] = f.value;
  json rows = json::array();
  for (const auto& r : s.rows) {
    json row = json::object();
    for (size_t i = 0; i < r.size() && i < s.columns.size(); ++i)
      row[s.columns[i]] = r[i];
    rows.push_back(row);
  }
  return {{"node", node}, {"actor", s.kind}, {"facts", facts}, {"rows", rows}};
}

// ACTOR is a kind ("state") or an actor id from `actors`.
caf::expected<std::string> kind_of(context& ctx, const std::string& node,
                                   const std::string& actor, brd::actor_info* info) {
  auto list = actors_on(ctx, node);
  if (!list)
    return list.error();
  std::string kinds;
  for (const auto& a : *list) {
    if (a.kind == actor || std::to_string(a.id) == actor) {
      *info = a;
      return a.kind;
    }
    kinds += (kinds.empty() ? "" : ", ") + a.kind + " (" + std::to_string(a.id) + ")";
  }
  return brd::make_error(brd::brd_errc::refused, "node " + node + " has no actor '" + actor
                                                   + "'; its actors: " + kinds);
}

outcome actor_inspect(context& ctx, const invocation& inv) {
  const auto& node = inv.args[0];
  brd::actor_info info;
  auto kind = kind_of(ctx, node, inv.args[1], &info);
  if (!kind)
    return failure(kind.error());
  caf::expected<brd::actor_summary> summary{brd::actor_summary{}};
  if (*kind == "state") {
    summary = state_summary(ctx, node);
  } else {
    auto health = ctx.cl.health_of(node);
    if (!health)
      return failure(health.error());
    summary = ctx.cl.ask<brd::actor_summary>(*health, brd::inspect_atom::value, *kind);
  }
  if (!summary)
    return failure(summary.error());
  summary->facts.insert(summary->facts.begin(),
                        {{"actor", *kind + " (id " + std::to_string(info.id) + ") on " + node},
                         {"messages handled", counter(info.handled)},
                         {"mailbox", counter(info.mailbox_size)}});
  if (inv.format == format::json) {
    print_json(ctx.out, summary_json(*summary, node));
    return {};
  }
  facts f;
  for (const auto& x : summary->facts)
    f.emplace_back(x.name, x.value);
  print_facts(ctx.out, f);
  if (!summary->columns.empty()) {
    ctx.out << '\n';
    print_table(ctx.out, {summary->columns, summary->rows});
  }
  return {};
}

} // namespace

void add_actor_commands(std::vector<command>& table) {
  table.push_back({"actors", "[NODE]", "the actors on a node: kind, mailbox size, "
                                       "messages handled",
                   {output_flag()}, 0, 1, actors,
                   "Without NODE: the connected node."});
  table.push_back({"actor inspect", "NODE ACTOR", "a summary of one actor's state (health: "
                                                  "peers; state: vv, tables, rows)",
                   {output_flag()}, 2, 2, actor_inspect,
                   "ACTOR is a kind from `actors NODE` (health, connector, state) or "
                   "an actor id."});
}

} // namespace brsh
