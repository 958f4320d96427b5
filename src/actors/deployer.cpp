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
#include <functional>
#include <atomic>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/state.hpp"

#include "io/deploy_records.hpp"
#include "io/metrics.hpp"
#include "io/process.hpp"
#include "io/task_runner.hpp"
#include "io/workspace.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"
#include "runtime/routing.hpp"
#include "runtime/wall_clock.hpp"

namespace brd {

namespace {

using steady = std::chrono::steady_clock;
using io::task_outcome;
namespace fs = std::filesystem;

constexpr auto write_timeout = std::chrono::seconds{10};
// A task that has to wait gets its queued row this much later, unless it
// started or was superseded by then: under a burst of pushes most waiting
// tasks are superseded, and one row (superseded) is half the replication.
constexpr auto queued_row_delay = std::chrono::milliseconds{50};

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

// -- the deployer ------------------------------------------------------------------

struct waiting_task {
  deploy_task task;
  uint64_t seq = 0; // arrival order across repositories
  int64_t queued_at_ms = 0;
  bool recorded = false; // its queued row is written
};

struct running_task {
  io::task_record record;
  steady::time_point started;
  bool alerted = false;
};

struct instruments {
  std::map<std::string, io::counter*> finished; // by final state
  io::histogram* seconds = nullptr;
  io::gauge* running = nullptr;
};

struct deployer_state {
  static inline const char* name = "deployer";
  deployer_options opts;
  io::workspace ws{""};
  std::map<std::string, std::deque<waiting_task>> waiting; // by repository
  std::map<std::string, running_task> running;            // by repository
  std::set<std::string> in_flight;                        // task keys
  uint64_t next_seq = 0;
  bool queued_rows_due = false; // a tick to write queued rows is scheduled
  instruments metrics;
  // Every worker's script watches this; set when the deployer exits.
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
};

using deployer_ptr = deployer_actor::stateful_pointer<deployer_state>;

std::string key_of(const std::string& deploy_id, const std::string& task_id) {
  return deploy_id + "/" + task_id;
}

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

void record(deployer_ptr self, const io::task_record& r) {
  put(self, "tasks", key_of(r.deploy_id, r.task_id), io::encode(r));
}

io::task_record queued_record(deployer_ptr self, const waiting_task& w) {
  const auto& t = w.task;
  io::task_record r;
  r.deploy_id = t.deploy_id;
  r.task_id = t.task_id;
  r.kind = t.kind;
  r.repo = t.repo;
  r.sha = t.sha;
  r.ref = t.ref;
  r.role = t.role;
  r.node = self->state.opts.self;
  r.queued_at_ms = w.queued_at_ms;
  r.attempt = t.attempt;
  auto log_path = self->state.ws.log_path(t.deploy_id, t.task_id);
  r.log_path = log_path ? *log_path : std::string{};
  return r;
}

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

// Starts waiting tasks while there is room: the earliest arrival among the
// repositories that have nothing running.
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

// A newer deploy of the same repository, ref and role makes the ones still
// waiting for it pointless: they end "superseded" (a final state, which the
// dispatcher counts as success) and never run. Running tasks are left alone;
// another branch's push never supersedes (its commit is not a successor).
void supersede_waiting(deployer_ptr self, const deploy_task& newer) {
  auto& st = self->state;
  auto i = st.waiting.find(newer.repo);
  if (newer.kind != "deploy" || i == st.waiting.end())
    return;
  // Every node has the fleet config: the rule says whether this role's
  // commits may be skipped (`supersede = false`: each one runs).
  const auto* repo = find_repo(st.opts.fleet.deploy, newer.repo);
  const auto* rule = repo != nullptr ? rule_for_role(*repo, newer.role) : nullptr;
  if (rule != nullptr && !rule->supersede)
    return;
  auto& queue = i->second;
  auto now = wall_clock_ms();
  for (auto w = queue.begin(); w != queue.end();) {
    if (w->task.kind != "deploy" || w->task.role != newer.role
        || w->task.ref != newer.ref) {
      ++w;
      continue;
    }
    auto r = queued_record(self, *w);
    r.state = "superseded";
    r.reason = "superseded by " + newer.sha.substr(0, 12) + " (" + newer.deploy_id + ")";
    r.finished_at_ms = now;
    record(self, r);
    if (auto c = st.metrics.finished.find("superseded"); c != st.metrics.finished.end())
      c->second->inc();
    st.in_flight.erase(key_of(r.deploy_id, r.task_id));
    log::deploy()->debug("task {} {}", key_of(r.deploy_id, r.task_id), r.reason);
    w = queue.erase(w);
  }
}

void enqueue(deployer_ptr self, deploy_task t) {
  auto& st = self->state;
  waiting_task w{t, st.next_seq++, wall_clock_ms()};
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

// What a previous incarnation of this node left behind when it was killed:
// the rest of its scripts' process groups (the scripts themselves died with
// it) are killed, and its task rows still queued or running are failed with
// reason "node lost". Rows of tasks this incarnation took are left alone.
void recover(deployer_ptr self) {
  auto& st = self->state;
  std::error_code ec;
  for (fs::directory_iterator it{running_dir(st), ec}, end; !ec && it != end;
       it.increment(ec))
    if (auto pgid = io::kill_stale_group(it->path().string()); pgid > 0)
      log::deploy()->warn("killed process group {} left by a script of the previous run",
                          pgid);
  if (!st.opts.state)
    return;
  auto began = wall_clock_ms();
  self
    ->request(st.opts.state, write_timeout, scan_atom::value, std::string{"tasks"},
              std::string{}, uint64_t{10'000'000})
    .then(
      [=](const std::vector<state_row>& rows) {
        for (const auto& row : rows) {
          auto r = io::decode<io::task_record>(row.value);
          if (!r || r->node != self->state.opts.self || r->queued_at_ms >= began
              || (r->state != "queued" && r->state != "running")
              || self->state.in_flight.count(key_of(r->deploy_id, r->task_id)) > 0)
            continue;
          log::deploy()->warn("task {} was {} when this node stopped: failed, node lost",
                              key_of(r->deploy_id, r->task_id), r->state);
          r->state = "failed";
          r->reason = "node lost";
          r->finished_at_ms = wall_clock_ms();
          record(self, *r);
        }
      },
      [](const caf::error& err) {
        log::deploy()->warn("cannot look for tasks left by the previous run: {}",
                            describe(err));
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

deployer_actor spawn_deployer(caf::actor_system& sys, deployer_options opts) {
  return sys.spawn(deployer, std::move(opts));
}

} // namespace brd
