// Handing tasks to deployers: a batch per node at a time, the tasks that
// wait for it (superseded there by a newer push's of their line), the
// hand-over latency.
#include <algorithm>
#include <functional>
#include <utility>

#include "actors/dispatcher_state.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"

namespace brd::dispatch {

namespace {

constexpr auto hand_over_timeout = std::chrono::seconds(10);

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

} // namespace

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
  return rule.supersede && brd::same_line(a, b);
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

} // namespace

// Writes the records of deployments that got verdicts from supersede_unsent
// and are still going (an ended one's final record has them): one write for
// the several tasks a new deployment's hand-overs supersede.
void write_verdicts(dispatcher_ptr self) {
  auto& st = self->state;
  for (const auto& id : std::exchange(st.unwritten_verdicts, {}))
    if (auto* p = find_active(st, id))
      put_row(self, "deployments", id, io::encode(p->record));
}

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

void hand_over(dispatcher_ptr self, const std::string& id, const std::string& task_id) {
  queue_hand_over(self, id, task_id);
  write_verdicts(self);
}

} // namespace brd::dispatch
