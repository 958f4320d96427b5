// Deploys as the connected node serves them (deploy_view.hpp): deploys
// list, deploy show, deploy logs (rollback and retry are in cmd_deploy_ops.cpp).
#include <chrono>
#include <map>
#include <sstream>
#include <thread>

#include "client.hpp"
#include "commands.hpp"
#include "deploy_view.hpp"

namespace brsh {

namespace {

using nlohmann::json;

constexpr std::chrono::milliseconds follow_poll{500};
constexpr size_t show_tail_lines = 10;

const char* states_help =
  "Deployment states: pending (a task is still open), success (every task\n"
  "succeeded), failure (a task failed, timed out or found no live node).\n"
  "Task states: queued, running, succeeded, failed, timed_out, superseded,\n"
  "unassigned.";

std::string took_text(const json& j, const char* from, const char* to) {
  auto start = ms_at(j, from);
  auto end = ms_at(j, to);
  return start > 0 && end >= start ? human_age_ms(end - start) : "-";
}

std::string or_dash(const std::string& text) {
  return text.empty() ? "-" : text;
}

// The last `n` lines of `text`.
std::string last_lines(const std::string& text, size_t n) {
  auto end = text.size();
  while (end > 0 && text[end - 1] == '\n')
    --end;
  auto from = end;
  for (size_t lines = 0; from > 0; --from)
    if (text[from - 1] == '\n' && ++lines == n)
      break;
  return text.substr(from, end - from);
}

outcome deploys_list(context& ctx, const invocation& inv) {
  auto limit = parse_count(inv.flag("limit", "20"));
  if (!limit)
    return failure(exit_usage, "--limit wants a positive number, not '" + inv.flag("limit")
                                 + "'\nusage: deploys list [--limit N] [-o table|json]");
  auto list = recent_deployments(ctx.cl, *limit);
  if (!list)
    return failure(list.error());
  if (inv.format == format::json) {
    print_json(ctx.out, *list);
    return {};
  }
  table t{{"id", "kind", "repo", "sha", "state", "tasks", "created", "by"}, {}};
  for (const auto& d : *list)
    t.rows.push_back({text_at(d, "id"), text_at(d, "kind"), text_at(d, "repo"),
                      short_sha(text_at(d, "sha")), text_at(d, "state"),
                      std::to_string(items_at(d, "task_ids").size()),
                      utc_text(ms_at(d, "created_at_ms")),
                      or_dash(text_at(d, "pusher"))});
  print_table(ctx.out, t);
  if (list->empty())
    ctx.out << "(no deployments on " << ctx.cl.node() << " yet)\n";
  return {};
}

void print_deployment(std::ostream& out, const json& d) {
  auto ref = text_at(d, "ref");
  auto at = text_at(d, "sha") + (ref.empty() ? "" : " (" + ref + ")");
  facts f{{"deployment", text_at(d, "id")},
          {"kind", text_at(d, "kind")},
          {"repo", text_at(d, "repo") + " @ " + at},
          {"state", text_at(d, "state") + " (" + task_summary(d) + ")"},
          {"by", or_dash(text_at(d, "pusher"))},
          {"created", utc_text(ms_at(d, "created_at_ms"))},
          {"finished", utc_text(ms_at(d, "finished_at_ms"))
                         + (ms_at(d, "finished_at_ms") > 0
                              ? " (after " + took_text(d, "created_at_ms", "finished_at_ms") + ")"
                              : "")}};
  if (!text_at(d, "before").empty())
    f.push_back({"before", text_at(d, "before")});
  print_facts(out, f);
  table t{{"task", "node", "role", "state", "attempt", "started", "took", "reason"}, {}};
  for (const auto& task : items_at(d, "tasks"))
    t.rows.push_back({text_at(task, "task_id"), or_dash(text_at(task, "node")),
                      text_at(task, "role"), text_at(task, "state"), text_at(task, "attempt"),
                      utc_text(ms_at(task, "started_at_ms")),
                      took_text(task, "started_at_ms", "finished_at_ms"),
                      or_dash(text_at(task, "reason"))});
  out << '\n';
  print_table(out, t);
  for (const auto& task : items_at(d, "tasks")) {
    auto tail = last_lines(text_at(task, "log_tail"), show_tail_lines);
    if (tail.empty())
      continue;
    out << '\n' << text_at(task, "task_id") << ", last lines of output:\n";
    std::istringstream lines{tail};
    for (std::string line; std::getline(lines, line);)
      out << "  " << line << '\n';
  }
}

outcome deploy_show(context& ctx, const invocation& inv) {
  auto d = find_deployment(ctx.cl, inv.args[0]);
  if (!d)
    return failure(d.error());
  if (inv.format == format::json)
    print_json(ctx.out, *d);
  else
    print_deployment(ctx.out, *d);
  return {};
}

// -- deploy logs ------------------------------------------------------------------------

// What `now` adds to `before`: the log tail is a window over the end of the
// output, so the part of `before` that is still in `now` is skipped.
std::string new_part(const std::string& before, const std::string& now) {
  if (now.compare(0, before.size(), before) == 0)
    return now.substr(std::min(before.size(), now.size()));
  for (size_t k = std::min(before.size(), now.size()); k > 0; --k)
    if (before.compare(before.size() - k, k, now, 0, k) == 0)
      return now.substr(k);
  return now;
}

// What was printed of one task so far.
struct log_cursor {
  std::string state;
  std::string shown;
};

bool selected(const json& task, const std::string& only) {
  return only.empty() || text_at(task, "task_id") == only || text_at(task, "node") == only;
}

// Prints, per selected task, a header when its state changed and the
// output that is new since `seen`.
void print_new_output(std::ostream& out, const json& d, const std::string& only,
                      std::map<std::string, log_cursor>& seen) {
  for (const auto& task : items_at(d, "tasks")) {
    if (!selected(task, only))
      continue;
    auto& cursor = seen[text_at(task, "task_id")];
    auto state = text_at(task, "state");
    auto tail = text_at(task, "log_tail");
    auto fresh = new_part(cursor.shown, tail);
    if (state == cursor.state && fresh.empty())
      continue;
    auto reason = text_at(task, "reason");
    out << "==> " << text_at(task, "task_id") << " on " << or_dash(text_at(task, "node"))
        << ": " << state << (reason.empty() ? "" : " (" + reason + ")") << " <==\n";
    out << fresh << (fresh.empty() || fresh.back() == '\n' ? "" : "\n");
    if (tail.empty())
      out << (task_finished(state) ? "(no output)\n" : "(no output yet)\n");
    auto path = text_at(task, "log_path");
    if (task_finished(state) && !path.empty())
      out << "(the whole log is on " << text_at(task, "node") << " at " << path << ")\n";
    cursor = {state, tail};
  }
  out.flush();
}

std::string task_ids_text(const json& d) {
  std::string out;
  for (const auto& task : items_at(d, "tasks"))
    out += (out.empty() ? "" : ", ") + text_at(task, "task_id");
  return out.empty() ? "none yet" : out;
}

outcome deploy_logs(context& ctx, const invocation& inv) {
  const auto& id = inv.args[0];
  auto only = inv.args.size() > 1 ? inv.args[1] : std::string{};
  auto d = find_deployment(ctx.cl, id);
  if (!d)
    return failure(d.error());
  bool any = false;
  for (const auto& task : items_at(*d, "tasks"))
    any = any || selected(task, only);
  if (!only.empty() && !any)
    return failure(exit_failed, "deployment " + id + " has no task or node '" + only
                                  + "'; its tasks: " + task_ids_text(*d));
  std::map<std::string, log_cursor> seen;
  print_new_output(ctx.out, *d, only, seen);
  if (!inv.has("follow"))
    return {};
  while (!deployment_finished(*d)) {
    if (ctx.interrupted != nullptr && ctx.interrupted->load())
      return failure(exit_failed, "interrupted; deployment " + id + " is still "
                                    + text_at(*d, "state") + " (" + task_summary(*d) + ")");
    std::this_thread::sleep_for(follow_poll);
    d = find_deployment(ctx.cl, id);
    if (!d)
      return failure(d.error());
    print_new_output(ctx.out, *d, only, seen);
  }
  ctx.out << "deployment " << id << " finished: " << text_at(*d, "state") << " ("
          << task_summary(*d) << ")" << std::endl;
  return {};
}

} // namespace

void add_deploy_commands(std::vector<command>& table) {
  table.push_back({"deploys list", "", "recent deploys and their state",
                   {{"limit", "", "N"}, output_flag()}, 0, 0, deploys_list,
                   std::string{"Newest first (default 20, at most 1000), as the connected node "
                               "serves them.\n"}
                     + states_help});
  table.push_back({"deploy show", "ID", "one deploy: its tasks per node", {output_flag()}, 1, 1,
                   deploy_show,
                   std::string{"The record, its tasks (node, state, times, reason) and the "
                               "last lines of each task's output.\n"}
                     + states_help});
  table.push_back({"deploy logs", "ID [TASK]", "a deploy's task logs",
                   {{"follow", "", ""}}, 1, 2, deploy_logs,
                   "The output each task kept (the last 4 KB; the node writes it when the task "
                   "ends).\nTASK is a task id (role@node) or a node name. --follow polls until "
                   "the deploy\nfinishes, printing state changes and new output."});
}

} // namespace brsh
