// The restart path: deployments this node created and had not finished
// when it stopped are followed again from their records and task rows.
#include "actors/dispatcher_state.hpp"
#include "runtime/log.hpp"

namespace brd::dispatch {

namespace {

// A task lost with its node and placed again: the later attempt of its role
// replaces it (the flag itself is not stored).
void mark_superseded(deploy_progress& p) {
  for (auto& [id, slot] : p.tasks) {
    if (slot.record.reason != "node lost")
      continue;
    for (const auto& [other_id, other] : p.tasks)
      if (other.record.role == slot.record.role && other.record.attempt > slot.record.attempt)
        slot.superseded = true;
  }
}

// Our verdicts on tasks (deployment_record::verdicts) over rows that are
// not final.
void apply_verdicts(deploy_progress& p) {
  for (auto& [task_id, slot] : p.tasks)
    if (apply_verdict(slot.record, p.record.verdicts))
      slot.record = progress_row(std::move(slot.record));
}

// The tasks of a resumed deployment that have no row here: the node may
// have taken the task and its rows are still on their way, or the hand-over
// never reached it. Rebuilt from the task id (role@node[.attempt]) and the
// rule of the role; fail_stalled settles them.
void add_unseen_tasks(const dispatcher_state& st, deploy_progress& p, const repo_config* repo) {
  for (const auto& task_id : p.record.task_ids) {
    if (p.tasks.count(task_id) > 0)
      continue;
    auto t = task_of_record(p.record, task_id);
    if (!t || t->node.empty() || st.opts.fleet.find(t->node) == nullptr)
      continue;
    const route_rule* rule = nullptr;
    if (repo != nullptr)
      for (const auto& r : repo->rules)
        if (make_task_id(r.role, t->node, t->attempt) == task_id)
          rule = &r;
    if (rule != nullptr)
      t->role = rule->role; // the id has it with unsafe characters replaced
    p.add(std::move(*t), rule ? *rule : route_rule{});
    if (p.record.verdicts.count(task_id) == 0)
      p.tasks.at(task_id).unseen_since_ms = wall_clock_ms();
  }
}

} // namespace

void resume_pending(dispatcher_ptr self, std::vector<io::deployment_record> pending) {
  for (auto& rec : pending) {
    self->request(self->state.opts.state, store_timeout, scan_atom::value,
                  std::string{"tasks"}, rec.id + "/", uint64_t{10000})
      .then([=, rec = std::move(rec)](std::vector<state_row>& task_rows) {
        deploy_progress p;
        p.record = rec;
        p.received_ns = steady_ns();
        p.running_observed = true; // no latency samples
        const auto* repo = find_repo(self->state.opts.fleet.deploy, rec.repo);
        for (const auto& tr : task_rows)
          if (auto t = io::decode<io::task_record>(tr.value)) {
            const route_rule* rule = repo ? rule_for_role(*repo, t->role) : nullptr;
            p.add(progress_row(std::move(*t)), rule ? *rule : route_rule{});
          }
        add_unseen_tasks(self->state, p, repo);
        apply_verdicts(p);
        mark_superseded(p);
        for (const auto& [ctx, _] : p.role_states())
          p.posted["blackroad/deploy/" + ctx] = "pending";
        p.posted["blackroad/deploy"] = "pending";
        log::deploy()->info("following deployment {} again ({} tasks)", rec.id, p.tasks.size());
        auto id = rec.id;
        self->state.active[id] = std::move(p);
        progress(self, id);
      });
  }
}

} // namespace brd::dispatch
