// Taking tasks: a task is taken once (the once-only check against the local
// store), queued per repository, superseded while it waits by a newer push
// of its repository, ref and role, and given its queued row when it has to
// wait (deployer_state.hpp).
#include <functional>
#include <optional>

#include "actors/deployer_state.hpp"
#include "actors/state.hpp"
#include "io/task_runner.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"
#include "runtime/routing.hpp"
#include "runtime/wall_clock.hpp"

namespace brd::deployer_detail {

namespace {

// Whether `t` may be superseded by a newer deploy of its line (repository,
// ref and role: another branch's commit is no successor): a deploy whose
// rule lets its role's commits be skipped (every node has the fleet config;
// `supersede = false`: each one runs).
bool skippable(const deployer_state& st, const deploy_task& t) {
  if (t.kind != "deploy")
    return false;
  const auto* repo = find_repo(st.opts.fleet.deploy, t.repo);
  const auto* rule = repo != nullptr ? rule_for_role(*repo, t.role) : nullptr;
  return rule == nullptr || rule->supersede;
}

// Ends a task that will not run: its row "superseded" by `newer`.
void supersede(deployer_ptr self, const waiting_task& w, const taken_deploy& newer) {
  auto& st = self->state;
  auto r = queued_record(self, w);
  r.state = "superseded";
  r.reason = io::superseded_reason(newer.sha, newer.deploy_id);
  r.finished_at_ms = wall_clock_ms();
  record(self, r);
  if (auto c = st.metrics.finished.find("superseded"); c != st.metrics.finished.end())
    c->second->inc();
  st.in_flight.erase(key_of(r.deploy_id, r.task_id));
  log::deploy()->debug("task {} {}", key_of(r.deploy_id, r.task_id), r.reason);
}

// A newer deploy of the same repository, ref and role makes the ones still
// waiting for it pointless: they end "superseded" (a final state, which the
// dispatcher counts as success) and never run. Running tasks are left alone.
void supersede_waiting(deployer_ptr self, const deploy_task& newer) {
  auto& st = self->state;
  auto i = st.waiting.find(newer.repo);
  if (i == st.waiting.end() || !skippable(st, newer))
    return;
  auto& queue = i->second;
  for (auto w = queue.begin(); w != queue.end();) {
    if (!same_line(w->task, newer)) {
      ++w;
      continue;
    }
    supersede(self, *w, {newer.deploy_id, newer.sha});
    w = queue.erase(w);
  }
}

void enqueue(deployer_ptr self, deploy_task t) {
  auto& st = self->state;
  waiting_task w{t, st.next_seq++, wall_clock_ms()};
  // A deploy older than one this node took already (deployment ids grow
  // with time) arrives late: handed over again after the edge restarted, or
  // placed here again after its node was lost. Running it would make an
  // older commit active over a newer one, so it ends superseded by that one.
  if (skippable(st, t)) {
    taken_deploy mark{t.deploy_id, t.sha};
    auto [newest, fresh] = st.newest_taken.try_emplace(line_key(t), mark);
    if (!fresh && newest->second.deploy_id > t.deploy_id) {
      supersede(self, w, newest->second);
      return;
    }
    newest->second = std::move(mark);
  }
  log::deploy()->debug("task {} queued for {}", key_of(t.deploy_id, t.task_id), t.repo);
  supersede_waiting(self, t);
  st.waiting[t.repo].push_back(std::move(w));
  pump(self);
  if (st.waiting.count(t.repo) > 0 && !st.queued_rows_due) {
    st.queued_rows_due = true;
    self->delayed_send(self, queued_row_delay, tick_atom::value);
  }
}

// A task is taken once: one already here, or with a row of ours in the
// store (taken before a restart of either side; the dispatcher hands over
// again what it has no row of), is acknowledged and not run again. The
// store is local, so the check costs one request to the state actor, and
// replies to one sender come in order, so tasks still queue in arrival order.
// `done` gets the task's id once it is queued (or was taken before), or the
// reason it was refused.
void take(deployer_ptr self, deploy_task t,
          std::function<void(caf::expected<std::string>)> done) {
  auto& st = self->state;
  if (auto problem = io::task_problem(t); !problem.empty()) {
    log::deploy()->warn("refused a task: {}", problem);
    done(make_error(brd_errc::refused, problem));
    return;
  }
  if (!st.recovered) {
    st.held.push_back({std::move(t), std::move(done)});
    return;
  }
  auto key = key_of(t.deploy_id, t.task_id);
  if (!st.in_flight.insert(key).second) {
    log::deploy()->debug("task {} is already here", key);
    done(t.task_id);
    return;
  }
  if (!st.opts.state) {
    auto id = t.task_id;
    enqueue(self, std::move(t));
    done(id);
    return;
  }
  self
    ->request(st.opts.state, write_timeout, get_atom::value, std::string{"tasks"}, key)
    .then(
      [=, t = std::move(t)](std::vector<state_row>& rows) mutable {
        std::optional<io::task_record> ours;
        if (!rows.empty())
          if (auto r = io::decode<io::task_record>(rows[0].value))
            ours = std::move(*r);
        if (ours && ours->node == self->state.opts.self) {
          log::deploy()->info("task {} was taken before (now {}): not run again", key,
                              ours->state);
          self->state.in_flight.erase(key);
          done(t.task_id);
          return;
        }
        auto id = t.task_id;
        enqueue(self, std::move(t));
        done(id);
      },
      [=](caf::error& err) mutable {
        self->state.in_flight.erase(key);
        log::deploy()->warn("task {}: cannot look for an earlier run: {}", key, describe(err));
        done(std::move(err));
      });
}

} // namespace

void remember_taken(deployer_state& st, const io::task_record& r) {
  deploy_task t;
  t.kind = r.kind;
  t.repo = r.repo;
  t.ref = r.ref;
  t.role = r.role;
  if (!skippable(st, t))
    return;
  auto& newest = st.newest_taken[line_key(t)];
  if (newest.deploy_id < r.deploy_id)
    newest = {r.deploy_id, r.sha};
}

void recovered(deployer_ptr self) {
  auto& st = self->state;
  st.recovered = true;
  auto held = std::move(st.held);
  st.held.clear();
  if (!held.empty())
    log::deploy()->debug("taking {} task(s) handed over while this node read its task rows",
                         held.size());
  for (auto& h : held)
    take(self, std::move(h.task), std::move(h.done));
}

// Writes the queued rows of waiting tasks that have none yet.
void record_waiting(deployer_ptr self) {
  auto& st = self->state;
  st.queued_rows_due = false;
  for (auto& [repo, queue] : st.waiting)
    for (auto& w : queue)
      if (!w.recorded) {
        w.recorded = true;
        record(self, queued_record(self, w));
      }
}

caf::result<std::string> accept(deployer_ptr self, deploy_task& t) {
  auto promise = self->make_response_promise<std::string>();
  take(self, std::move(t), [=](caf::expected<std::string> id) mutable {
    if (id)
      promise.deliver(std::move(*id));
    else
      promise.deliver(std::move(id.error()));
  });
  return promise;
}

// A batch of tasks, in order: per task an empty string once it is queued
// (or was taken before), else why it was refused.
caf::result<std::vector<std::string>> accept_all(deployer_ptr self,
                                                 std::vector<deploy_task>& tasks) {
  if (tasks.empty())
    return std::vector<std::string>{};
  auto promise = self->make_response_promise<std::vector<std::string>>();
  auto refusals = std::make_shared<std::vector<std::string>>(tasks.size());
  auto open = std::make_shared<size_t>(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i)
    take(self, std::move(tasks[i]), [=](caf::expected<std::string> id) mutable {
      if (!id)
        (*refusals)[i] = describe(id.error());
      if (--*open == 0)
        promise.deliver(std::move(*refusals));
    });
  return promise;
}

} // namespace brd::deployer_detail
