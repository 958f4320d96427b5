// Deployments in flight: writing their records, handing tasks to deployers,
// following task rows, statuses and alerts (nodes lost mid-task:
// dispatcher_loss.cpp).
#include <algorithm>
#include <functional>
#include <utility>

#include <caf/actor_system.hpp>

#include "actors/dispatcher_state.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"

namespace brd::dispatch {

namespace {

constexpr auto hand_over_timeout = std::chrono::seconds(10);
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

deploy_task to_message(const dispatcher_state& st, const task_slot& slot) {
  const auto& r = slot.record;
  deploy_task m;
  m.deploy_id = r.deploy_id;
  m.task_id = r.task_id;
  m.kind = r.kind;
  m.repo = r.repo;
  if (const auto* repo = find_repo(st.opts.fleet.deploy, r.repo))
    m.remote = remote_url(*repo, r.repo);
  m.sha = r.sha;
  m.ref = r.ref;
  m.role = r.role;
  m.script = slot.rule.script;
  m.timeout_s = static_cast<uint32_t>(std::max<int64_t>(1, slot.rule.timeout.count()));
  m.attempt = r.attempt;
  return m;
}

using deployer_callback = std::function<void(caf::actor)>;
using error_callback = std::function<void(const caf::error&)>;

// The deployer of `node`, from the cache or the node's service directory.
void with_deployer(dispatcher_ptr self, const node_name& node, deployer_callback then,
                   error_callback fail) {
  auto& st = self->state;
  if (auto i = st.deployers.find(node); i != st.deployers.end()) {
    then(i->second);
    return;
  }
  self->request(st.opts.health, hand_over_timeout, get_atom::value, node, std::string{"deployer"})
    .then(
      [=](caf::actor& deployer) {
        if (!deployer) {
          fail(make_error(brd_errc::unknown_node, "node '" + node + "' runs no deployer"));
          return;
        }
        self->state.deployers[node] = deployer;
        then(deployer);
      },
      [=](caf::error& err) { fail(err); });
}

// A deployer took a task: when all have, that is the hand-over latency.
void handed_over(dispatcher_ptr self, const std::string& id) {
  auto& st = self->state;
  auto w = st.handover_waits.find(id);
  if (w == st.handover_waits.end() || --w->second.left > 0)
    return;
  if (st.handover_seconds != nullptr)
    st.handover_seconds->observe(seconds_since(w->second.received_ns));
  st.handover_waits.erase(w);
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

namespace {

void send_handovers(dispatcher_ptr self, const node_name& node);

// The batch `sent` to `node` is settled, per task "" (taken) or why not;
// then, unless the node's membership changed meanwhile, the next batch goes.
void handovers_done(dispatcher_ptr self, const node_name& node, uint64_t generation,
                    const std::vector<handover_queue::item>& sent,
                    const std::vector<std::string>& why_not) {
  auto& q = self->state.handovers[node];
  bool current = q.generation == generation;
  if (current)
    q.busy = false;
  for (size_t i = 0; i < sent.size(); ++i)
    if (why_not[i].empty())
      handed_over(self, sent[i].deploy_id);
    else
      fail_task(self, sent[i].deploy_id, sent[i].task_id, why_not[i]);
  if (current)
    send_handovers(self, node);
}

// The tasks waiting for `node`, taken for a batch; none when its membership
// changed since `generation` (a newer send takes them).
std::vector<handover_queue::item> take_waiting(dispatcher_ptr self, const node_name& node,
                                               uint64_t generation) {
  auto& q = self->state.handovers[node];
  if (q.generation != generation)
    return {};
  return std::exchange(q.waiting, {});
}

void send_handovers(dispatcher_ptr self, const node_name& node) {
  auto& q = self->state.handovers[node];
  if (q.busy || q.waiting.empty())
    return;
  q.busy = true;
  auto generation = q.generation;
  with_deployer(
    self, node,
    [=](caf::actor deployer) {
      auto sent = take_waiting(self, node, generation);
      if (sent.empty()) {
        handovers_done(self, node, generation, sent, {});
        return;
      }
      std::vector<deploy_task> tasks;
      tasks.reserve(sent.size());
      for (const auto& item : sent)
        tasks.push_back(item.task);
      self->request(deployer, hand_over_timeout, deploy_atom::value, std::move(tasks))
        .then(
          [=](std::vector<std::string>& refusals) {
            std::vector<std::string> why_not(sent.size(),
                                             "node " + node + " did not answer for the task");
            for (size_t i = 0; i < std::min(refusals.size(), sent.size()); ++i)
              why_not[i] = refusals[i].empty()
                             ? std::string{}
                             : "node " + node + " did not take the task: " + refusals[i];
            handovers_done(self, node, generation, sent, why_not);
          },
          [=](caf::error& err) {
            self->state.deployers.erase(node);
            handovers_done(self, node, generation, sent,
                           std::vector<std::string>(sent.size(), "node " + node
                                                                   + " did not take the task: "
                                                                   + describe(err)));
          });
    },
    [=](const caf::error& err) {
      auto sent = take_waiting(self, node, generation);
      handovers_done(self, node, generation, sent,
                     std::vector<std::string>(sent.size(), "cannot reach the deployer of node "
                                                             + node + ": " + describe(err)));
    });
}

} // namespace

void restart_handovers(dispatcher_ptr self, const node_name& node) {
  auto q = self->state.handovers.find(node);
  if (q == self->state.handovers.end())
    return;
  ++q->second.generation;
  q->second.busy = false;
  send_handovers(self, node);
}

namespace {

// Of two tasks waiting to be sent to the same node, the newer deployment's
// (ids grow with time) supersedes the older's, as the node's deployer would
// once both were queued there (actors/deployer.hpp): same repository, ref
// and role, both deploys, and the rule lets this role's commits be skipped.
// The superseded one never reaches the node, so it has no row: the verdict
// goes into its deployment's record, written once the hand-overs at hand are
// queued (write_verdicts), unless the deployment ended by then (its final
// record carries it). Under a burst of pushes this spares
// each node most hand-overs and most rows "superseded" (and the fleet their
// replication).
bool same_line(const deploy_task& a, const deploy_task& b, const route_rule& rule) {
  return rule.supersede && a.kind == "deploy" && b.kind == "deploy" && a.repo == b.repo
         && a.ref == b.ref && a.role == b.role;
}

void supersede_unsent(dispatcher_ptr self, const handover_queue::item& older,
                      const deploy_task& newer) {
  auto& st = self->state;
  auto task = find_open_task(st, older.deploy_id, older.task_id);
  if (!task)
    return;
  auto& r = task.slot->record;
  r.state = "succeeded"; // progress_row's form of "superseded"
  r.reason = io::superseded_reason(newer.sha, newer.deploy_id);
  r.finished_at_ms = wall_clock_ms();
  task.deployment->record.verdicts[r.task_id] = r.reason;
  // Not every task was taken: no hand-over sample.
  if (st.handover_waits.erase(older.deploy_id) > 0 && st.superseded_unsent != nullptr)
    st.superseded_unsent->inc();
  if (st.superseded_tasks != nullptr)
    st.superseded_tasks->inc();
  log::deploy()->debug("task {}/{} {} before it was sent", older.deploy_id, older.task_id,
                       r.reason);
  progress(self, older.deploy_id);
  st.unwritten_verdicts.insert(older.deploy_id);
}

// Writes the records of deployments that got verdicts from supersede_unsent
// and are still going (an ended one's final record has them): one write for
// the several tasks a new deployment's hand-overs supersede.
void write_verdicts(dispatcher_ptr self) {
  auto& st = self->state;
  for (const auto& id : std::exchange(st.unwritten_verdicts, {}))
    if (auto* p = find_active(st, id))
      put_row(self, "deployments", id, io::encode(p->record));
}

// hand_over, without write_verdicts.
void queue_hand_over(dispatcher_ptr self, const std::string& id, const std::string& task_id) {
  auto& st = self->state;
  auto task = find_open_task(st, id, task_id);
  if (!task)
    return;
  auto node = task.slot->record.node;
  handover_queue::item item{id, task_id, to_message(st, *task.slot)};
  auto& waiting = st.handovers[node].waiting;
  auto newer = std::find_if(waiting.begin(), waiting.end(), [&](const auto& queued) {
    return queued.deploy_id > id && same_line(queued.task, item.task, task.slot->rule);
  });
  if (newer != waiting.end()) { // a task handed over again after a restart
    auto by = newer->task;
    supersede_unsent(self, item, by);
    return;
  }
  std::vector<handover_queue::item> older; // every one of the line: none is newer
  for (const auto& queued : waiting)
    if (same_line(queued.task, item.task, task.slot->rule))
      older.push_back(queued);
  std::erase_if(waiting, [&](const handover_queue::item& queued) {
    return same_line(queued.task, item.task, task.slot->rule);
  });
  waiting.push_back(item);
  for (const auto& o : older)
    supersede_unsent(self, o, item.task);
  send_handovers(self, node);
}

} // namespace

void hand_over(dispatcher_ptr self, const std::string& id, const std::string& task_id) {
  queue_hand_over(self, id, task_id);
  write_verdicts(self);
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
