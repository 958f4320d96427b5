// Tasks whose node went away: a member down or gone, a task stalled long
// after its timeout, a task a restart of ours left without any row.
#include <algorithm>

#include "actors/dispatcher_state.hpp"
#include "runtime/log.hpp"

namespace brd::dispatch {

namespace {

// The task's node is gone: "node lost", and placement "one" runs it again
// on another live node of the role.
void lose_task(dispatcher_ptr self, deploy_progress& p, task_slot& slot) {
  fail_without_node(self, p, slot, "node lost");
  if (p.record.kind == "deploy" && slot.rule.placement == placement::one)
    place_again(self, p, slot);
}

bool is_alive(const dispatcher_state& st, const node_name& node) {
  return std::any_of(st.members.begin(), st.members.end(), [&](const member_view& m) {
    return m.node == node && m.state == member_state::alive;
  });
}

// Tasks a restart left without a row (add_unseen_tasks) that still have
// none after a grace for replication to catch up.
void settle_unseen(dispatcher_ptr self) {
  constexpr int64_t grace_ms = 5'000;
  auto now = wall_clock_ms();
  std::vector<std::pair<std::string, std::string>> unseen;
  for (auto& [id, p] : self->state.active)
    for (auto& [task_id, slot] : p.tasks)
      if (slot.unseen_since_ms > 0 && now - slot.unseen_since_ms > grace_ms
          && !is_final_state(slot.record.state))
        unseen.emplace_back(id, task_id);
  for (const auto& [id, task_id] : unseen) {
    auto task = find_open_task(self->state, id, task_id);
    if (!task)
      continue; // an earlier one of the list settled its deployment
    task.slot->unseen_since_ms = 0;
    const auto& node = task.slot->record.node;
    if (task.deployment->record.kind != "deploy") {
      fail_task(self, id, task_id, "the dispatcher restarted before node " + node
                                     + " took the task; retry the deployment");
    } else if (is_alive(self->state, node)) {
      log::deploy()->info("task {}/{}: no row from {} since the restart; handing it over again",
                          id, task_id, node);
      hand_over(self, id, task_id); // a deployer takes a task once
    } else {
      lose_task(self, *task.deployment, *task.slot);
      progress(self, id);
    }
  }
}

} // namespace

void on_node_lost(dispatcher_ptr self, const node_name& node) {
  auto& st = self->state;
  std::vector<std::string> lost;
  std::vector<std::string> ids;
  for (const auto& [id, p] : st.active)
    ids.push_back(id);
  for (const auto& id : ids) {
    auto& p = st.active.at(id);
    for (const auto& task_id : p.open_tasks_on(node)) {
      lose_task(self, p, p.tasks.at(task_id));
      lost.push_back(id + "/" + task_id);
    }
    progress(self, id);
  }
  if (lost.empty())
    return;
  std::string list;
  for (size_t i = 0; i < lost.size() && i < 5; ++i)
    list += (i > 0 ? ", " : "") + lost[i];
  if (lost.size() > 5)
    list += " and " + std::to_string(lost.size() - 5) + " more";
  raise_alert(self, "node_offline",
              "node " + node + " went offline holding " + std::to_string(lost.size())
                + (lost.size() == 1 ? " task: " : " tasks: ") + list,
              {}, {}, node);
}

void fail_stalled(dispatcher_ptr self) {
  settle_unseen(self);
  constexpr int64_t grace_ms = 120'000;
  auto now = wall_clock_ms();
  std::vector<std::pair<std::string, std::string>> stalled;
  for (const auto& [id, p] : self->state.active)
    for (const auto& [task_id, slot] : p.tasks) {
      const auto& r = slot.record;
      auto limit_ms = std::chrono::duration_cast<std::chrono::milliseconds>(slot.rule.timeout).count();
      if (!slot.superseded && r.state == "running" && r.started_at_ms > 0
          && now - r.started_at_ms > limit_ms + grace_ms)
        stalled.emplace_back(id, task_id);
    }
  for (const auto& [id, task_id] : stalled) {
    auto node = self->state.active.at(id).tasks.at(task_id).record.node;
    fail_task(self, id, task_id, "no progress from node " + node);
  }
}

} // namespace brd::dispatch
