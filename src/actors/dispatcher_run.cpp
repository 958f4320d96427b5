// Deployments in flight: writing their records, following task rows,
// statuses and alerts (handing tasks to deployers: dispatcher_handover.cpp;
// nodes lost mid-task: dispatcher_loss.cpp).
#include <algorithm>
#include <functional>
#include <utility>

#include <caf/actor_system.hpp>

#include "actors/dispatcher_state.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"

namespace brd::dispatch {

namespace {

const std::string overall_context = "blackroad/deploy";

std::string role_context(const std::string& role) {
  return overall_context + "/" + role;
}

std::string short_sha(const std::string& sha) {
  return sha.substr(0, 7);
}

// status_description, except for a success some of whose tasks (of `role`
// when given) were superseded: "superseded by <sha>" when all were,
// otherwise the usual text and how many were.
std::string describe_status(const deploy_progress& p, const std::string& role,
                            const std::string& state) {
  auto text = status_description(p, role, state);
  if (state != "success")
    return text;
  size_t superseded = 0;
  std::string by;
  for (const auto& [id, slot] : p.tasks)
    if (!slot.superseded && (role.empty() || slot.record.role == role)
        && was_superseded(slot.record)) {
      ++superseded;
      by = slot.record.reason.substr(io::superseded_prefix.size(), 12);
    }
  if (superseded == 0)
    return text;
  if (superseded == p.counted(role))
    return std::string{io::superseded_prefix} + by;
  return text + ", " + std::to_string(superseded) + " superseded by newer pushes";
}

void post_status(dispatcher_ptr self, deploy_progress& p, const std::string& context,
                 const std::string& state, const std::string& role) {
  auto& st = self->state;
  if (p.record.kind != "deploy" || !st.opts.poster || p.tasks.empty()
      || p.posted[context] == state)
    return;
  p.posted[context] = state;
  self->send(st.opts.poster, commit_status{p.record.repo, p.record.sha, state, context,
                                           describe_status(p, role, state),
                                           target_url(st, p.record.id)});
}

void write_task(dispatcher_ptr self, const io::task_record& t) {
  put_row(self, "tasks", task_key(t.deploy_id, t.task_id), io::encode(t));
}

// Every task runs or was superseded: the latency samples. "Every task
// running" is only observed when none was superseded.
void observe_started(dispatcher_state& st, deploy_progress& p) {
  p.running_observed = true;
  bool any_assigned = false;
  size_t superseded = 0;
  for (const auto& [tid, slot] : p.tasks) {
    any_assigned = any_assigned || !slot.record.node.empty();
    superseded += !slot.superseded && was_superseded(slot.record) ? 1 : 0;
  }
  if (st.dispatch_seconds == nullptr || !any_assigned || p.received_ns <= 0)
    return;
  auto seconds = seconds_since(p.received_ns);
  st.settled_seconds->observe(seconds);
  if (superseded == 0)
    st.dispatch_seconds->observe(seconds);
  else
    st.superseded_deployments->inc();
}

} // namespace

// Fails a task on the dispatcher's word. A task row belongs to the node it
// names, so the verdict goes into the deployment record; only a row without
// a node is the dispatcher's to write.
void fail_without_node(dispatcher_ptr self, deploy_progress& p, task_slot& slot,
                       const std::string& reason) {
  auto& r = slot.record;
  r.state = "failed";
  r.reason = reason;
  r.finished_at_ms = wall_clock_ms();
  if (r.node.empty()) {
    write_task(self, r);
    return;
  }
  p.record.verdicts[r.task_id] = reason;
  put_row(self, "deployments", p.record.id, io::encode(p.record));
}


// Deployment `id` while it is followed, or nullptr.
deploy_progress* find_active(dispatcher_state& st, const std::string& id) {
  auto i = st.active.find(id);
  return i == st.active.end() ? nullptr : &i->second;
}

// Task `task_id` of deployment `id`, unless the deployment or the task ended.
open_task find_open_task(dispatcher_state& st, const std::string& id,
                         const std::string& task_id) {
  auto* p = find_active(st, id);
  if (p == nullptr)
    return {};
  auto t = p->tasks.find(task_id);
  if (t == p->tasks.end() || is_final_state(t->second.record.state))
    return {};
  return {p, &t->second};
}

void fail_task(dispatcher_ptr self, const std::string& id, const std::string& task_id,
               const std::string& reason) {
  self->state.handover_waits.erase(id); // not every task was taken: no sample
  auto task = find_open_task(self->state, id, task_id);
  if (!task)
    return;
  log::deploy()->warn("task {}/{} failed: {}", id, task_id, reason);
  fail_without_node(self, *task.deployment, *task.slot, reason);
  progress(self, id);
}

// Runs a task lost with its node again on another live node of the role.
void place_again(dispatcher_ptr self, deploy_progress& p, task_slot& lost) {
  auto& st = self->state;
  auto tried = p.nodes_of_role(lost.record.role);
  auto members = route_members(st.opts.fleet, st.members);
  auto targets = targets_for(lost.rule, members, {tried.begin(), tried.end()});
  if (targets.empty()) {
    log::deploy()->warn("task {}/{}: no other live node holds role {}", p.record.id,
                        lost.record.task_id, lost.record.role);
    return;
  }
  lost.superseded = true;
  io::task_record next = lost.record;
  next.node = targets.front();
  next.attempt = lost.record.attempt + 1;
  next.task_id = make_task_id(next.role, next.node, next.attempt);
  next.state = "queued";
  next.reason.clear();
  next.exit_code = -1;
  next.log_tail.clear();
  next.log_path.clear();
  next.queued_at_ms = wall_clock_ms();
  next.started_at_ms = next.finished_at_ms = 0;
  log::deploy()->info("task {}/{} runs again on {} as {}", p.record.id, lost.record.task_id,
                      next.node, next.task_id);
  p.record.task_ids.push_back(next.task_id);
  put_row(self, "deployments", p.record.id, io::encode(p.record));
  p.add(next, lost.rule);
  hand_over(self, p.record.id, next.task_id);
}

io::task_record progress_row(io::task_record row) {
  if (row.state == "superseded")
    row.state = "succeeded";
  return row;
}

bool was_superseded(const io::task_record& row) {
  return row.state == "succeeded" && io::is_superseded_reason(row.reason);
}

// Statuses, the latency sample and the final record once every task is final.
void progress(dispatcher_ptr self, const std::string& id) {
  auto& st = self->state;
  auto i = st.active.find(id);
  if (i == st.active.end())
    return;
  auto& p = i->second;
  if (!p.running_observed && p.all_started())
    observe_started(st, p);
  for (const auto& [role, state] : p.role_states())
    if (state != "pending")
      post_status(self, p, role_context(role), state, role);
  if (!p.finished())
    return;
  auto overall = p.overall();
  post_status(self, p, overall_context, overall, {});
  p.record.state = overall;
  p.record.finished_at_ms = wall_clock_ms();
  put_row(self, "deployments", id, io::encode(p.record));
  if (st.opts.metrics)
    st.opts.metrics
      ->counter("brnode_deployments_total", "Deployments by final state", {{"state", overall}})
      .inc();
  auto what = p.record.kind + " " + id + " of " + p.record.repo + "@" + short_sha(p.record.sha);
  if (overall == "success") {
    log::deploy()->info("{} succeeded on {} tasks", what, p.counted());
  } else {
    std::string task_id, node;
    for (const auto& [tid, slot] : p.tasks)
      if (!slot.superseded && slot.record.state != "succeeded" && task_id.empty()) {
        task_id = tid;
        node = slot.record.node;
      }
    raise_alert(self, "deploy_failed", what + " failed: " + p.first_failure(), id, task_id, node);
  }
  st.active.erase(i);
}

std::vector<task_slot> slots_for(const std::vector<planned_task>& planned) {
  std::vector<task_slot> out;
  for (const auto& task : planned) {
    task_slot slot;
    slot.rule = task.rule;
    slot.record.role = task.rule.role;
    slot.record.node = task.node;
    out.push_back(std::move(slot));
  }
  return out;
}

namespace {

// The record of deployment `id` is durable: its tasks go out.
void dispatch_recorded(dispatcher_ptr self, const std::string& id) {
  auto* found = find_active(self->state, id);
  if (found == nullptr)
    return;
  auto& prog = *found;
  const auto& rec = prog.record;
  for (const auto& [role, state] : prog.role_states())
    post_status(self, prog, role_context(role), "pending", role);
  post_status(self, prog, overall_context, "pending", {});
  log::deploy()->info("{} {} of {}@{} ({}): {} tasks", rec.kind, id, rec.repo,
                      short_sha(rec.sha), rec.ref, prog.tasks.size());
  if (auto n = prog.assigned(); n > 0 && prog.received_ns > 0)
    self->state.handover_waits[id] = {prog.received_ns, n};
  std::vector<std::string> assigned;
  for (const auto& [task_id, slot] : prog.tasks) {
    const auto& t = slot.record;
    if (t.state != "unassigned") {
      assigned.push_back(task_id);
      continue;
    }
    write_task(self, t);
    raise_alert(self, "unassigned",
                rec.kind + " " + id + " of " + rec.repo + "@" + short_sha(rec.sha)
                  + ": no live node holds role " + t.role,
                id, task_id);
  }
  // Its node writes its rows, from queued on. A hand-over may settle a
  // deployment (this one too, superseded before it was sent), so `prog` is
  // not used past this point.
  for (const auto& task_id : assigned)
    queue_hand_over(self, id, task_id);
  write_verdicts(self);
  progress(self, id);
}

} // namespace

recorded_callback answer_when_recorded(caf::typed_response_promise<http_answer> promise,
                                       nlohmann::json accepted, recorded_callback before) {
  return [=](const caf::error& err) mutable {
    if (before)
      before(err);
    if (!err)
      promise.deliver(answer(202, accepted));
    else
      promise.deliver(answer(http_status_of(err),
                             {{"error", "cannot record the deployment: " + describe(err)}}));
  };
}

size_t start_deployment(dispatcher_ptr self, io::deployment_record rec,
                        std::vector<task_slot> slots, int64_t received_ns,
                        recorded_callback recorded) {
  auto& st = self->state;
  deploy_progress p;
  p.received_ns = received_ns;
  auto now = wall_clock_ms();
  for (auto& slot : slots) {
    auto& t = slot.record;
    t.deploy_id = rec.id;
    t.kind = rec.kind;
    t.repo = rec.repo;
    if (t.sha.empty())
      t.sha = rec.sha;
    t.ref = rec.ref;
    t.task_id = make_task_id(t.role, t.node, t.attempt);
    t.queued_at_ms = now;
    if (t.node.empty()) {
      t.state = "unassigned";
      t.reason = "no live node holds role " + t.role;
      t.finished_at_ms = now;
    }
    rec.task_ids.push_back(t.task_id);
    p.add(t, slot.rule);
  }
  auto id = rec.id;
  auto count = p.tasks.size();
  auto value = io::encode(rec);
  p.record = std::move(rec);
  st.active.insert_or_assign(id, std::move(p));
  self->request(st.opts.state, store_timeout, put_atom::value, std::string{"deployments"}, id,
                std::move(value))
    .then(
      [=](const write_ack&) {
        dispatch_recorded(self, id);
        if (recorded)
          recorded(caf::error{});
      },
      [=](const caf::error& err) {
        log::deploy()->error("deployment {} dropped, its record cannot be written: {}", id,
                             describe(err));
        self->state.active.erase(id);
        if (recorded)
          recorded(err);
      });
  return count;
}

void on_task_row(dispatcher_ptr self, const io::task_record& row) {
  auto& st = self->state;
  if (auto task = find_open_task(st, row.deploy_id, row.task_id))
    task.slot->unseen_since_ms = 0; // its node has it
  auto i = st.active.find(row.deploy_id);
  if (i == st.active.end() || !i->second.apply(progress_row(row)))
    return;
  if (row.state == "superseded" && st.superseded_tasks != nullptr)
    st.superseded_tasks->inc();
  progress(self, row.deploy_id);
}

} // namespace brd::dispatch
