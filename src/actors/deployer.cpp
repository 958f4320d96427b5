#include "actors/deployer.hpp"

// The deployer keeps, per repository, a queue of waiting tasks and at most
// one running task. A running task is executed by a worker: a detached actor
// of its own that does the blocking work (git, the script, the workspace)
// for that one task, replies with the outcome and quits. The deployer only
// queues, starts, records and counts, so it never blocks.
//
// When the deployer is told to exit (the node stops), running scripts and
// git commands (a fetch from a hung remote) are ended as on a timeout
// (SIGTERM, then SIGKILL) instead of being waited for;
// their tasks fail with "cancelled: node N is stopping" in the log, and their
// rows, still "running", are failed "node lost" by the dispatcher (the node
// left) and by the next start (recover()).
//
// Records go to the state actor as fire-and-forget requests; one sender's
// messages arrive in order, so a task's records are written in the order
// queued, running, final. A refused or lost write is logged.

#include <algorithm>
#include <filesystem>

#include <caf/actor_system.hpp>

#include "actors/deployer_state.hpp"
#include "actors/state.hpp"
#include "actors/state_scan.hpp"
#include "io/process.hpp"
#include "io/task_runner.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"
#include "runtime/routing.hpp"
#include "runtime/wall_clock.hpp"

namespace brd::deployer_detail {

namespace {

using io::task_outcome;
namespace fs = std::filesystem;

// -- the worker: one task, blocking, on its own thread -----------------------------

using worker_actor = caf::typed_actor<caf::replies_to<deploy_atom>::with<task_outcome>>;

worker_actor::behavior_type worker(worker_actor::pointer self, io::workspace ws,
                                   io::task_run run) {
  return {
    [=](deploy_atom) -> task_outcome {
      auto out = io::run_task(ws, run);
      self->quit();
      return out;
    },
  };
}

} // namespace

// -- the deployer ------------------------------------------------------------------

std::string key_of(const std::string& deploy_id, const std::string& task_id) {
  return deploy_id + "/" + task_id;
}

namespace {

instruments make_instruments(io::metrics_registry* m) {
  instruments out;
  if (m == nullptr)
    return out;
  for (auto state : {"succeeded", "failed", "timed_out", "superseded"})
    out.finished[state] = &m->counter("brnode_deploy_tasks_total",
                                      "Deploy tasks finished on this node, by final state",
                                      {{"state", state}});
  out.seconds = &m->histogram("brnode_deploy_task_seconds",
                              "Time from a deploy task's start to its end",
                              {1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600});
  out.running = &m->gauge("brnode_deploy_running", "Deploy tasks running on this node");
  return out;
}

void put(deployer_ptr self, const std::string& table, const std::string& key,
         std::string value) {
  if (!self->state.opts.state)
    return;
  self
    ->request(self->state.opts.state, write_timeout, put_atom::value, table, key,
              std::move(value))
    .then([](const write_ack&) {},
          [table, key](const caf::error& err) {
            log::deploy()->warn("cannot record {}/{}: {}", table, key, describe(err));
          });
}

} // namespace

void record(deployer_ptr self, const io::task_record& r) {
  put(self, "tasks", key_of(r.deploy_id, r.task_id), io::encode(r));
}

io::task_record queued_record(deployer_ptr self, const waiting_task& w) {
  const auto& t = w.task;
  auto r = task_record_of(t, self->state.opts.self);
  r.queued_at_ms = w.queued_at_ms;
  auto log_path = self->state.ws.log_path(t.deploy_id, t.task_id);
  r.log_path = log_path ? *log_path : std::string{};
  return r;
}

namespace {

void finish(deployer_ptr self, const std::string& repo, task_outcome out);

// Where running scripts leave their process group ids (io/workspace.hpp).
std::string running_dir(const deployer_state& st) {
  return st.ws.root() + "/running";
}

void start(deployer_ptr self, const std::string& repo) {
  auto& st = self->state;
  auto& queue = st.waiting[repo];
  auto w = std::move(queue.front());
  queue.pop_front();
  if (queue.empty())
    st.waiting.erase(repo);
  auto& run = st.running[repo];
  run.record = queued_record(self, w);
  if (!w.recorded)
    record(self, run.record); // queued, then running
  run.record.state = "running";
  run.record.started_at_ms = wall_clock_ms();
  run.started = steady::now();
  record(self, run.record);
  if (st.metrics.running != nullptr)
    st.metrics.running->inc();
  log::deploy()->info("task {} started: {} {} {} for role {}",
                      key_of(w.task.deploy_id, w.task.task_id), w.task.kind, repo,
                      w.task.sha.substr(0, 12), w.task.role);
  auto group_file = running_dir(st) + "/" + w.task.deploy_id + "." + w.task.task_id + ".pgid";
  const auto& settings = st.opts.fleet.deploy.settings;
  io::task_run job{std::move(w.task), st.opts.self, settings.keep_builds,
                   run.record.log_path, std::move(group_file), st.stopping, settings.nice};
  auto worker_handle = self->home_system().spawn<caf::detached>(worker, st.ws, std::move(job));
  self->request(worker_handle, caf::infinite, deploy_atom::value)
    .then([=](task_outcome& out) { finish(self, repo, std::move(out)); },
          [=](const caf::error& err) {
            auto why = "the worker stopped: " + describe(err);
            finish(self, repo, {"failed", -1, why, {}, wall_clock_ms()});
          });
  self->delayed_send(self, st.opts.fleet.deploy.alerts.long_build, tick_atom::value);
}

} // namespace

void pump(deployer_ptr self) {
  auto& st = self->state;
  auto limit = std::max<size_t>(st.opts.fleet.deploy.settings.max_parallel, 1);
  while (st.running.size() < limit) {
    const std::string* next = nullptr;
    uint64_t first = UINT64_MAX;
    for (const auto& [repo, queue] : st.waiting)
      if (st.running.count(repo) == 0 && queue.front().seq < first) {
        first = queue.front().seq;
        next = &repo;
      }
    if (next == nullptr)
      return;
    start(self, std::string{*next});
  }
}

namespace {

void count(instruments& m, const std::string& state, double seconds) {
  if (m.running == nullptr)
    return;
  if (auto i = m.finished.find(state); i != m.finished.end())
    i->second->inc();
  m.seconds->observe(seconds);
  m.running->dec();
}

void finish(deployer_ptr self, const std::string& repo, task_outcome out) {
  auto& st = self->state;
  auto i = st.running.find(repo);
  if (i == st.running.end())
    return;
  auto r = std::move(i->second.record);
  auto seconds = std::chrono::duration<double>(steady::now() - i->second.started).count();
  st.running.erase(i);
  r.state = std::move(out.state);
  r.exit_code = out.exit_code;
  r.reason = std::move(out.reason);
  r.log_tail = std::move(out.log_tail);
  r.finished_at_ms = out.finished_at_ms;
  count(st.metrics, r.state, seconds); // before the record: who sees it sees the count
  record(self, r);
  auto key = key_of(r.deploy_id, r.task_id);
  st.in_flight.erase(key);
  if (r.state == "succeeded")
    log::deploy()->info("task {} succeeded in {:.1f} s", key, seconds);
  else
    log::deploy()->info("task {} {} in {:.1f} s: {}", key, r.state, seconds, r.reason);
  pump(self);
}

std::string alert_key(const io::alert_record& a) {
  auto at = std::to_string(a.at_ms);
  return std::string(at.size() < 13 ? 13 - at.size() : 0, '0') + at + "/" + a.id;
}

void check_long_builds(deployer_ptr self) {
  auto& st = self->state;
  auto limit = st.opts.fleet.deploy.alerts.long_build;
  for (auto& [repo, run] : st.running) {
    if (run.alerted || steady::now() - run.started < limit)
      continue;
    run.alerted = true;
    const auto& r = run.record;
    io::alert_record a;
    a.kind = "long_build";
    a.id = r.deploy_id + "." + r.task_id + "." + std::to_string(r.attempt) + ".long_build";
    a.deploy_id = r.deploy_id;
    a.task_id = r.task_id;
    a.node = st.opts.self;
    a.at_ms = wall_clock_ms();
    a.text = "Task " + r.task_id + " of deployment " + r.deploy_id + " (" + r.repo + ", role "
             + r.role + ") has been running on " + st.opts.self + " for more than "
             + std::to_string(limit.count()) + " s.";
    log::deploy()->warn("task {} runs longer than {} s", key_of(r.deploy_id, r.task_id),
                        limit.count());
    put(self, "alerts", alert_key(a), io::encode(a));
  }
}

// One task row found at start: the newest deploy of its line this node
// took is remembered (remember_taken); a row of the previous incarnation
// still queued or running is failed with reason "node lost" (the script
// died with that incarnation). Rows of tasks this incarnation took are left
// alone.
void recover_row(deployer_ptr self, int64_t began, const state_row& row) {
  auto r = io::decode<io::task_record>(row.value);
  if (!r || r->node != self->state.opts.self)
    return;
  remember_taken(self->state, *r);
  if (r->queued_at_ms >= began || (r->state != "queued" && r->state != "running")
      || self->state.in_flight.count(key_of(r->deploy_id, r->task_id)) > 0)
    return;
  log::deploy()->warn("task {} was {} when this node stopped: failed, node lost",
                      key_of(r->deploy_id, r->task_id), r->state);
  r->state = "failed";
  r->reason = "node lost";
  r->finished_at_ms = wall_clock_ms();
  record(self, *r);
}

// What a previous incarnation of this node left behind when it was killed:
// the rest of its scripts' process groups (the scripts themselves died with
// it) are killed, and its task rows are read a time bucket at a time
// (recover_row; actors/state_scan.hpp). Tasks handed over meanwhile wait
// until all rows were read (deployer_state::held).
void recover(deployer_ptr self) {
  auto& st = self->state;
  std::error_code ec;
  for (fs::directory_iterator it{running_dir(st), ec}, end; !ec && it != end;
       it.increment(ec))
    if (auto pgid = io::kill_stale_group(it->path().string()); pgid > 0)
      log::deploy()->warn("killed process group {} left by a script of the previous run",
                          pgid);
  if (!st.opts.state) {
    recovered(self);
    return;
  }
  auto began = wall_clock_ms();
  scan_by_time(
    self, st.opts.state, "tasks", write_timeout,
    [=](std::vector<state_row>& rows) {
      for (const auto& row : rows)
        recover_row(self, began, row);
    },
    [=](const caf::error& err) {
      if (err)
        log::deploy()->warn("cannot look for tasks left by the previous run: {}",
                            describe(err));
      recovered(self);
    });
}

deployer_actor::behavior_type deployer(deployer_ptr self, deployer_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  const auto& settings = st.opts.fleet.deploy.settings;
  st.ws = io::workspace{io::workspace_root(st.opts.data_dir, settings.workspace)};
  st.metrics = make_instruments(st.opts.metrics.get());
  recover(self);
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    st.stopping->store(true);
    if (!st.running.empty())
      log::deploy()->warn("stopping: ending {} running script{} (SIGTERM, then SIGKILL)",
                          st.running.size(), st.running.size() == 1 ? "" : "s");
    self->quit(msg.reason);
  });
  return {
    [=](deploy_atom, deploy_task& t) { return accept(self, t); },
    [=](deploy_atom, std::vector<deploy_task>& tasks) { return accept_all(self, tasks); },
    [=](tick_atom) {
      record_waiting(self);
      check_long_builds(self);
    },
  };
}

} // namespace

} // namespace brd::deployer_detail

namespace brd {

deployer_actor spawn_deployer(caf::actor_system& sys, deployer_options opts) {
  return sys.spawn(deployer_detail::deployer, std::move(opts));
}

} // namespace brd
