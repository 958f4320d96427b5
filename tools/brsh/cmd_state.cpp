// Replicated state: state tables, get, scan, put, delete. (digest and watch
// are in cmd_state_watch.cpp.)
#include "client.hpp"
#include "commands.hpp"
#include "state_view.hpp"

namespace brsh {

namespace {

using nlohmann::json;

constexpr uint64_t count_cap = 100000;
constexpr size_t value_width = 60;

outcome state_tables(context& ctx, const invocation& inv) {
  auto state = ctx.cl.state_of("");
  if (!state)
    return failure(state.error());
  auto digest = ctx.cl.ask_all<std::map<std::string, std::string>,
                               std::map<std::string, uint64_t>>(*state,
                                                                brd::digest_atom::value);
  if (!digest)
    return failure(digest.error());
  table t{{"table", "rows", "digest"}, {}};
  json out = json::array();
  for (const auto& [name, hash] : std::get<0>(*digest)) {
    auto rows = ctx.cl.ask<std::vector<brd::state_row>>(*state, brd::scan_atom::value, name,
                                                        std::string{}, count_cap);
    if (!rows)
      return failure(rows.error());
    out.push_back({{"table", name}, {"rows", rows->size()}, {"digest", hash}});
    t.rows.push_back({name, std::to_string(rows->size()), hash});
  }
  if (inv.format == format::json)
    print_json(ctx.out, out);
  else
    print_table(ctx.out, t);
  return {};
}

outcome state_get(context& ctx, const invocation& inv) {
  const auto& table_name = inv.args[0];
  const auto& key = inv.args[1];
  auto state = ctx.cl.state_of("");
  if (!state)
    return failure(state.error());
  auto rows = ctx.cl.ask<std::vector<brd::state_row>>(*state, brd::get_atom::value,
                                                      table_name, key);
  if (!rows)
    return failure(rows.error());
  if (rows->empty())
    return failure(exit_failed, "no key '" + key + "' in table '" + table_name + "' on "
                                  + ctx.cl.node());
  const auto& row = rows->front();
  if (inv.format == format::json) {
    print_json(ctx.out, row_json(row));
    return {};
  }
  print_facts(ctx.out, {{"key", table_name + "/" + key},
                        {"written", hlc_text(row.hlc) + " by " + row.origin + " (entry "
                                      + std::to_string(row.seq) + ")"}});
  print_json(ctx.out, decode_value(row.value));
  return {};
}

outcome state_scan(context& ctx, const invocation& inv) {
  const auto& table_name = inv.args[0];
  auto prefix = inv.args.size() > 1 ? inv.args[1] : std::string{};
  auto limit = parse_count(inv.flag("limit", "100"));
  if (!limit)
    return failure(exit_usage, "--limit wants a positive number, not '" + inv.flag("limit")
                                 + "'\nusage: state scan TABLE [PREFIX] [--limit N]");
  auto state = ctx.cl.state_of("");
  if (!state)
    return failure(state.error());
  auto rows = ctx.cl.ask<std::vector<brd::state_row>>(*state, brd::scan_atom::value,
                                                      table_name, prefix, *limit);
  if (!rows)
    return failure(rows.error());
  if (inv.format == format::json) {
    json out = json::array();
    for (const auto& row : *rows)
      out.push_back(row_json(row));
    print_json(ctx.out, out);
    return {};
  }
  table t{{"key", "written", "origin", "value"}, {}};
  for (const auto& row : *rows)
    t.rows.push_back({row.key, hlc_text(row.hlc), row.origin,
                      clip(decode_value(row.value).dump(), value_width)});
  print_table(ctx.out, t);
  if (rows->size() >= *limit)
    ctx.out << "(first " << *limit << " rows; use --limit N for more)\n";
  return {};
}

caf::expected<uint32_t> wait_count(const invocation& inv) {
  if (!inv.has("wait"))
    return uint32_t{0};
  auto text = inv.flag("wait");
  char* end = nullptr;
  auto n = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || n > 1000)
    return brd::make_error(brd::brd_errc::refused,
                           "--wait wants a number of peers, not '" + text + "'");
  return static_cast<uint32_t>(n);
}

outcome print_ack(context& ctx, const std::string& what, const caf::expected<brd::write_ack>& ack,
                  uint32_t peers) {
  if (!ack)
    return failure(ack.error());
  ctx.out << what << ": durable on " << ctx.cl.node()
          << (peers > 0 ? " and held by " + std::to_string(peers) + " peers" : "")
          << " (entry " << ack->seq << " of " << ack->origin << ", " << hlc_text(ack->hlc)
          << ")\n";
  return {};
}

// A write through the connected node's state actor; `send` makes the
// request (with or without a number of peers to wait for).
template <class Send>
outcome write(context& ctx, const invocation& inv, const std::string& what, Send send) {
  auto peers = wait_count(inv);
  if (!peers)
    return failure(exit_usage, brd::describe(peers.error()));
  auto state = ctx.cl.state_of("");
  if (!state)
    return failure(state.error());
  return print_ack(ctx, what, send(*state, *peers), *peers);
}

outcome state_put(context& ctx, const invocation& inv) {
  auto value = encode_value(inv.args[2]);
  if (!value)
    return failure(value.error());
  const auto& table = inv.args[0];
  const auto& key = inv.args[1];
  return write(ctx, inv, "put " + table + "/" + key, [&](auto& state, uint32_t peers) {
    return peers == 0
             ? ctx.cl.ask<brd::write_ack>(state, brd::put_atom::value, table, key, *value)
             : ctx.cl.ask<brd::write_ack>(state, brd::put_atom::value, table, key, *value,
                                          peers);
  });
}

outcome state_delete(context& ctx, const invocation& inv) {
  const auto& table = inv.args[0];
  const auto& key = inv.args[1];
  return write(ctx, inv, "deleted " + table + "/" + key, [&](auto& state, uint32_t peers) {
    return peers == 0
             ? ctx.cl.ask<brd::write_ack>(state, brd::delete_atom::value, table, key)
             : ctx.cl.ask<brd::write_ack>(state, brd::delete_atom::value, table, key, peers);
  });
}

} // namespace

void add_state_commands(std::vector<command>& table) {
  table.push_back({"state tables", "", "the replicated tables with row counts and digests",
                   {output_flag()}, 0, 0, state_tables, ""});
  table.push_back({"state get", "TABLE KEY", "one row, its value decoded",
                   {output_flag()}, 2, 2, state_get,
                   "Reads the connected node's copy. Exit code 1 when the key is absent."});
  table.push_back({"state scan", "TABLE [PREFIX]", "rows in key order",
                   {{"limit", "", "N"}, output_flag()}, 1, 2, state_scan,
                   "At most --limit rows (default 100)."});
  table.push_back({"state put", "TABLE KEY JSON", "write a row on the connected node",
                   {{"wait", "", "N"}}, 3, 3, state_put,
                   "JSON is a record with an integer schema version, e.g.\n"
                   "  state put deployments d42 '{\"v\":1,\"status\":\"started\"}'\n"
                   "--wait N answers once N peers also hold the write."});
  table.push_back({"state delete", "TABLE KEY", "delete a row (a replicated tombstone)",
                   {{"wait", "", "N"}}, 2, 2, state_delete, ""});
}

} // namespace brsh
