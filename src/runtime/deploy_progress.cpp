#include "runtime/deploy_progress.hpp"

#include <algorithm>
#include <set>

namespace brd {

int state_rank(std::string_view state) {
  if (state == "queued")
    return 0;
  if (state == "running")
    return 1;
  if (is_final_state(state))
    return 2;
  return -1;
}

bool is_final_state(std::string_view state) {
  return state == "succeeded" || state == "failed" || state == "timed_out"
         || state == "unassigned";
}

bool apply_verdict(io::task_record& row, const std::map<std::string, std::string>& verdicts) {
  if (is_final_state(row.state))
    return false;
  auto v = verdicts.find(row.task_id);
  if (v == verdicts.end())
    return false;
  row.state = io::verdict_state(v->second);
  row.reason = v->second;
  return true;
}

void deploy_progress::add(io::task_record task, route_rule rule) {
  auto id = task.task_id;
  tasks[id] = task_slot{std::move(task), std::move(rule)};
}

bool deploy_progress::apply(const io::task_record& row) {
  auto i = tasks.find(row.task_id);
  if (i == tasks.end() || i->second.superseded)
    return false;
  auto& have = i->second.record;
  int from = state_rank(have.state);
  int to = state_rank(row.state);
  if (to < 0 || from >= 2 || to < from || (to == from && to != 1))
    return false;
  if (to == from && row.started_at_ms == have.started_at_ms && row.log_tail == have.log_tail)
    return false; // the same running row again
  have = row;
  return true;
}

std::map<std::string, std::string> deploy_progress::role_states() const {
  struct tally { bool open = false, failed = false; };
  std::map<std::string, tally> roles;
  for (const auto& [id, slot] : tasks) {
    if (slot.superseded)
      continue;
    auto& t = roles[slot.record.role];
    const auto& state = slot.record.state;
    t.open = t.open || !is_final_state(state);
    t.failed = t.failed || (is_final_state(state) && state != "succeeded");
  }
  std::map<std::string, std::string> out;
  for (const auto& [role, t] : roles)
    out[role] = t.open ? "pending" : t.failed ? "failure" : "success";
  return out;
}

std::string deploy_progress::overall() const {
  std::string out = "success";
  for (const auto& [role, state] : role_states()) {
    if (state == "pending")
      return "pending";
    if (state == "failure")
      out = "failure";
  }
  return out;
}

bool deploy_progress::all_started() const {
  return std::all_of(tasks.begin(), tasks.end(), [](const auto& entry) {
    return entry.second.superseded || state_rank(entry.second.record.state) >= 1;
  });
}

size_t deploy_progress::assigned() const {
  return std::count_if(tasks.begin(), tasks.end(),
                       [](const auto& entry) { return !entry.second.record.node.empty(); });
}

std::vector<std::string> deploy_progress::open_tasks_on(std::string_view node) const {
  std::vector<std::string> out;
  for (const auto& [id, slot] : tasks)
    if (!slot.superseded && slot.record.node == node && !is_final_state(slot.record.state))
      out.push_back(id);
  return out;
}

std::vector<std::string> deploy_progress::nodes_of_role(std::string_view role) const {
  std::set<std::string> out;
  for (const auto& [id, slot] : tasks)
    if (slot.record.role == role && !slot.record.node.empty())
      out.insert(slot.record.node);
  return {out.begin(), out.end()};
}

size_t deploy_progress::counted(std::string_view role) const {
  return std::count_if(tasks.begin(), tasks.end(), [&](const auto& entry) {
    return !entry.second.superseded && (role.empty() || entry.second.record.role == role);
  });
}

std::string deploy_progress::first_failure(std::string_view role) const {
  for (const auto& [id, slot] : tasks) {
    const auto& r = slot.record;
    if (slot.superseded || !is_final_state(r.state) || r.state == "succeeded"
        || (!role.empty() && r.role != role))
      continue;
    auto where = r.node.empty() ? std::string{"no node"} : r.node;
    auto why = r.reason.empty() ? r.state : r.reason;
    return r.role + " on " + where + ": " + why;
  }
  return {};
}

std::string status_description(const deploy_progress& p, std::string_view role,
                               std::string_view state) {
  auto n = p.counted(role);
  auto nodes = std::to_string(n) + (n == 1 ? " node" : " nodes");
  std::string text;
  if (state == "pending")
    text = "deploying to " + nodes;
  else if (state == "success")
    text = "deployed to " + nodes;
  else
    text = "failed: " + p.first_failure(role);
  if (text.size() > 140)
    text = text.substr(0, 137) + "...";
  return text;
}

} // namespace brd
