// The dispatcher's intake: loading deliveries and rollback marks, webhook
// pushes, membership and timers. Deployments in flight are in
// dispatcher_run.cpp, rollback and retry in dispatcher_ops.cpp, the restart
// path in dispatcher_resume.cpp, lost nodes in dispatcher_loss.cpp.
#include "actors/dispatcher.hpp"

#include <atomic>
#include <memory>
#include <random>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "actors/dispatcher_state.hpp"
#include "io/git.hpp"
#include "io/workspace.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"
#include "runtime/wall_clock.hpp"

namespace brd {

namespace dispatch {

namespace {

constexpr auto tick_interval = std::chrono::seconds(1);
constexpr uint64_t purge_every_ticks = 300; // deliveries: every 5 minutes
constexpr uint64_t stall_check_every_ticks = 10;

// -- deliveries ------------------------------------------------------------------------

int64_t delivery_ttl_ms(const dispatcher_state& st) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           st.opts.fleet.deploy.github.delivery_ttl)
    .count();
}

bool is_duplicate(const dispatcher_state& st, const std::string& delivery) {
  auto i = st.deliveries.find(delivery);
  return i != st.deliveries.end() && wall_clock_ms() - i->second < delivery_ttl_ms(st);
}

// A push that starts a deployment has its delivery id stored in the
// deployment's record; one that starts nothing gets a row of its own, so a
// replay of it stays a duplicate after a restart too.
void record_delivery(dispatcher_ptr self, const std::string& delivery,
                     const std::string& repo) {
  put_row(self, "deployments", delivery_key(delivery),
          io::encode_record({{"v", 100},
                             {"at_ms", self->state.deliveries[delivery]},
                             {"repo", repo}}));
}

// Drops expired ids from memory, and from the store those this node wrote.
void purge_deliveries(dispatcher_ptr self) {
  auto& st = self->state;
  auto cutoff = wall_clock_ms() - delivery_ttl_ms(st);
  for (auto i = st.deliveries.begin(); i != st.deliveries.end();)
    i = i->second < cutoff ? st.deliveries.erase(i) : std::next(i);
  self->request(st.opts.state, store_timeout, scan_atom::value, std::string{"deployments"},
                std::string{delivery_prefix}, scan_all)
    .then(
      [=](std::vector<state_row>& rows) {
        size_t purged = 0;
        for (const auto& row : rows) {
          auto rec = io::decode_record(row.value);
          if (row.origin == self->state.opts.self && rec
              && rec->value("at_ms", int64_t{0}) < cutoff) {
            delete_row(self, "deployments", row.key);
            ++purged;
          }
        }
        if (purged > 0)
          log::deploy()->info("purged {} expired webhook delivery ids", purged);
      },
      [](caf::error& err) {
        log::deploy()->warn("cannot scan delivery ids to purge: {}", describe(err));
      });
}

// -- loading -----------------------------------------------------------------------------

// A deployment record carries the delivery id of the push that started it.
void note_delivery(dispatcher_state& st, const io::deployment_record& rec) {
  if (!rec.delivery.empty() && wall_clock_ms() - rec.created_at_ms < delivery_ttl_ms(st))
    st.deliveries[rec.delivery] = std::max(st.deliveries[rec.delivery], rec.created_at_ms);
}

void on_deployments_row(dispatcher_state& st, const state_entry& e) {
  if (e.key.rfind(deployment_prefix, 0) == 0) {
    if (e.tombstone)
      return;
    if (auto rec = io::decode<io::deployment_record>(e.value))
      note_delivery(st, *rec);
  } else if (e.key.rfind(delivery_prefix, 0) == 0) {
    auto id = e.key.substr(delivery_prefix.size());
    if (e.tombstone) {
      st.deliveries.erase(id);
      return;
    }
    if (auto rec = io::decode_record(e.value))
      st.deliveries[id] = std::max(st.deliveries[id], rec->value("at_ms", int64_t{0}));
  } else if (e.key.rfind(rollback_prefix, 0) == 0) {
    if (e.tombstone)
      st.rolled_back.erase(e.key);
    else
      st.rolled_back.insert(e.key);
  }
}

caf::result<http_answer> intake(dispatcher_ptr self, const webhook_push& wp);

void finish_loading(dispatcher_ptr self) {
  auto& st = self->state;
  st.loaded = true;
  log::deploy()->info("dispatcher ready: {} delivery ids, {} rollback marks",
                      st.deliveries.size(), st.rolled_back.size());
  auto waiting = std::move(st.waiting);
  for (auto& w : waiting)
    w.promise.delegate(caf::actor_cast<dispatcher_actor>(self), w.push); // to us, now loaded
}

void load(dispatcher_ptr self) {
  auto& st = self->state;
  auto scan = [=](std::string prefix) {
    return self->request(self->state.opts.state, store_timeout, scan_atom::value,
                         std::string{"deployments"}, std::move(prefix), scan_all);
  };
  scan(std::string{delivery_prefix})
    .then([=](std::vector<state_row>& deliveries) {
      for (const auto& row : deliveries)
        on_deployments_row(self->state, row);
      scan(std::string{rollback_prefix})
        .then([=](std::vector<state_row>& marks) {
          for (const auto& row : marks)
            on_deployments_row(self->state, row);
          // Deployment records carry their pushes' delivery ids.
          scan(std::string{deployment_prefix})
            .then([=](std::vector<state_row>& rows) {
              std::vector<io::deployment_record> ours_pending;
              for (const auto& row : rows)
                if (auto rec = io::decode<io::deployment_record>(row.value)) {
                  note_delivery(self->state, *rec);
                  if (row.origin == self->state.opts.self && rec->state == "pending")
                    ours_pending.push_back(std::move(*rec));
                }
              resume_pending(self, std::move(ours_pending));
              finish_loading(self);
            });
        });
    });
  self->request(st.opts.health, store_timeout, get_atom::value, members_atom::value)
    .then([=](std::vector<member_view>& rows) { self->state.members = std::move(rows); });
}

// -- changed paths from git -------------------------------------------------------------

// `stopping` turns true when the dispatcher terminates: a fetch from a hung
// remote is then ended instead of holding the node's stop.
caf::behavior diff_worker(caf::event_based_actor*,
                          std::shared_ptr<const std::atomic<bool>> stopping) {
  using result = caf::expected<std::vector<std::string>>;
  return {[stopping](diff_atom, const std::string& remote, const std::string& dir,
                     const std::string& before, const std::string& after) -> result {
    if (auto err = io::fetch_repo(remote, dir, std::chrono::minutes{5}, {}, stopping.get()))
      return err;
    auto diff = io::changed_files(dir, before, after);
    if (diff)
      return diff;
    log::deploy()->info("no diff {}..{} ({}); deploying every file of {}", before.substr(0, 7),
                        after.substr(0, 7), describe(diff.error()), after.substr(0, 7));
    return io::list_files(dir, after);
  }};
}

// For a push whose changed files come from git: the reply (202) went
// already; `recorded` hears whether the deployment could be recorded.
void diff_then_start(dispatcher_ptr self, io::deployment_record rec, std::string remote,
                     int64_t received_ns, recorded_callback recorded) {
  auto& st = self->state;
  auto dir = st.diff_root + "/" + rec.repo;
  auto before = io::is_commit_id(rec.before) ? rec.before : std::string(40, '0');
  self->request(st.diff_worker, std::chrono::minutes{6}, diff_atom::value, remote, dir, before,
                rec.sha)
    .then(
      [=](std::vector<std::string>& changed) mutable {
        const auto* repo = find_repo(self->state.opts.fleet.deploy, rec.repo);
        auto rules = repo ? rules_for(*repo, changed) : std::vector<route_rule>{};
        changed.resize(std::min<size_t>(changed.size(), 100));
        rec.changed = std::move(changed);
        auto members = route_members(self->state.opts.fleet, self->state.members);
        start_deployment(self, rec, slots_for(plan_tasks(rules, members)), received_ns,
                         recorded);
      },
      [=](caf::error& err) mutable {
        log::deploy()->warn("deployment {}: cannot compute the changed files of {}@{}: {}",
                            rec.id, rec.repo, rec.sha.substr(0, 7), describe(err));
        rec.state = "failure";
        rec.finished_at_ms = wall_clock_ms();
        put_row(self, "deployments", rec.id, io::encode(rec));
        raise_alert(self, "deploy_failed",
                    "deploy " + rec.id + " of " + rec.repo + "@" + rec.sha.substr(0, 7)
                      + " failed: cannot compute the changed files: " + describe(err),
                    rec.id);
      });
}

// -- webhook pushes ---------------------------------------------------------------------------

http_answer ignored(dispatcher_ptr self, const io::push_event& ev, const std::string& reason) {
  auto& st = self->state;
  record_delivery(self, ev.delivery, ev.repo);
  count_webhook(st, "ignored");
  return answer(202, {{"status", "ignored"}, {"reason", reason}});
}

// A push that starts a deployment is accepted (202) once its record is
// durable: a store that cannot write (a full disk: 507) refuses the webhook,
// starts nothing and forgets the delivery id, so GitHub's redelivery of it
// is taken once the store writes again.
caf::result<http_answer> intake(dispatcher_ptr self, const webhook_push& wp) {
  auto& st = self->state;
  const auto& ev = wp.event;
  const auto* repo = find_repo(st.opts.fleet.deploy, ev.repo);
  if (repo == nullptr) {
    count_webhook(st, "unknown_repo");
    return answer(404, {{"error", "repository " + ev.repo + " is not in the config"}});
  }
  if (is_duplicate(st, ev.delivery)) {
    count_webhook(st, "duplicate");
    return answer(200, {{"status", "duplicate"}, {"delivery", ev.delivery}});
  }
  st.deliveries[ev.delivery] = wall_clock_ms();
  auto decision = decide_ref(*repo, ev);
  if (!decision.deploy)
    return ignored(self, ev, decision.reason);
  if (st.rolled_back.count(rollback_key(ev.repo, decision.sha)) > 0)
    return ignored(self, ev, decision.sha + " was rolled back; retry one of its deployments "
                                      "(POST /api/deployments/{id}/retry) to deploy it again");
  io::deployment_record rec;
  rec.id = new_deploy_id(st);
  rec.repo = ev.repo;
  rec.sha = decision.sha;
  rec.ref = ev.ref;
  rec.before = ev.before;
  rec.pusher = ev.pusher;
  rec.delivery = ev.delivery;
  rec.created_at_ms = st.deliveries[ev.delivery];
  nlohmann::json reply{{"status", "accepted"}, {"deployment", rec.id},
                       {"url", target_url(st, rec.id)}};
  if (needs_git_diff(ev)) {
    // Answered before the diff; if the record then cannot be written, a
    // redelivery of this webhook must not count as a duplicate.
    auto forget = [=, delivery = ev.delivery](const caf::error& err) {
      if (err)
        self->state.deliveries.erase(delivery);
    };
    diff_then_start(self, std::move(rec), remote_url(*repo, ev.repo), wp.received_ns, forget);
    count_webhook(st, "accepted");
    return answer(202, reply);
  }
  auto rules = rules_for(*repo, ev.changed);
  if (rules.empty())
    return ignored(self, ev, "no rule of the repository takes the changed paths");
  rec.changed.assign(ev.changed.begin(),
                     ev.changed.begin() + std::min<size_t>(ev.changed.size(), 100));
  auto members = route_members(st.opts.fleet, st.members);
  auto slots = slots_for(plan_tasks(rules, members));
  reply["tasks"] = slots.size();
  auto promise = self->make_response_promise<http_answer>();
  auto counted = [=, delivery = ev.delivery](const caf::error& err) {
    if (!err) {
      count_webhook(self->state, "accepted");
      return;
    }
    self->state.deliveries.erase(delivery); // a redelivery may try again
    count_webhook(self->state, "store_failed");
  };
  start_deployment(self, std::move(rec), std::move(slots), wp.received_ns,
                   answer_when_recorded(promise, std::move(reply), counted));
  return promise;
}

// -- membership ---------------------------------------------------------------------------------

void on_member_event(dispatcher_ptr self, const member_event& ev) {
  auto& st = self->state;
  st.deployers.erase(ev.node); // a new incarnation has a new deployer
  restart_handovers(self, ev.node);
  for (auto& row : st.members)
    if (row.node == ev.node)
      row.state = ev.to;
  if (ev.to == member_state::down || ev.to == member_state::left)
    on_node_lost(self, ev.node);
}

void on_tick(dispatcher_ptr self) {
  auto& st = self->state;
  self->delayed_send(self, tick_interval, tick_atom::value);
  self->request(st.opts.health, tick_interval, get_atom::value, members_atom::value)
    .then([=](std::vector<member_view>& rows) { self->state.members = std::move(rows); },
          [](caf::error&) {});
  if (++st.ticks % purge_every_ticks == 0) {
    purge_deliveries(self);
    // Every hand-over is answered or times out within seconds; a wait this
    // old lost its batch some other way (a queue dropped with its node).
    auto cutoff = steady_ns() - std::chrono::nanoseconds(purge_every_ticks * tick_interval).count();
    std::erase_if(st.handover_waits,
                  [&](const auto& w) { return w.second.received_ns < cutoff; });
  }
  if (st.ticks % stall_check_every_ticks == 0)
    fail_stalled(self);
}

dispatcher_actor::behavior_type dispatcher(dispatcher_ptr self, dispatcher_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.diff_root = io::workspace_root(st.opts.data_dir, st.opts.fleet.deploy.settings.workspace)
                 + "/dispatch";
  st.next_id = std::random_device{}();
  if (st.opts.metrics) {
    std::vector<double> buckets{0.0005, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.0035, 0.004,
                                0.0045, 0.005, 0.006, 0.0075, 0.01,  0.015, 0.02,  0.03,
                                0.05,   0.075, 0.1,   0.25,   0.5,   1,     2.5,   5,  10};
    st.dispatch_seconds = &st.opts.metrics->histogram(
      "brnode_deploy_dispatch_seconds",
      "From a webhook's arrival to every task of its deployment running", buckets);
    st.handover_seconds = &st.opts.metrics->histogram(
      "brnode_deploy_handover_seconds",
      "From a webhook's arrival to every task of its deployment taken by its node (not "
      "sampled when a task was superseded before it was sent)",
      buckets);
    st.settled_seconds = &st.opts.metrics->histogram(
      "brnode_deploy_settled_seconds",
      "From a webhook's arrival to every task of its deployment running or superseded",
      buckets);
    st.superseded_deployments = &st.opts.metrics->counter(
      "brnode_deploy_superseded_total",
      "Deployments with at least one task superseded by a newer push before it ran");
    st.superseded_tasks = &st.opts.metrics->counter(
      "brnode_deploy_tasks_superseded_total",
      "Tasks superseded by a newer push of the same repository and role before they ran");
    st.superseded_unsent = &st.opts.metrics->counter(
      "brnode_deploy_superseded_unsent_total",
      "Deployments with a task superseded before it was sent to its node (these have no "
      "hand-over sample)");
  }
  auto stopping = std::make_shared<std::atomic<bool>>(false);
  st.diff_worker = self->system().spawn<caf::detached>(diff_worker, stopping);
  self->link_to(st.diff_worker);
  self->attach_functor([stopping] { stopping->store(true); });
  auto me = caf::actor_cast<caf::actor>(self);
  self->send(st.opts.state, subscribe_atom::value, std::string{"tasks"}, me);
  self->send(st.opts.state, subscribe_atom::value, std::string{"deployments"}, me);
  self->send(st.opts.health, subscribe_atom::value, me);
  load(self);
  self->delayed_send(self, tick_interval, tick_atom::value);
  return {
    [=](webhook_push& wp) -> caf::result<http_answer> {
      auto& st = self->state;
      if (st.loaded)
        return intake(self, wp);
      auto promise = self->make_response_promise<http_answer>();
      st.waiting.push_back({std::move(wp), promise});
      return promise;
    },
    [=](rollback_atom, const rollback_request& req) { return rollback(self, req); },
    [=](retry_atom, const std::string& id) { return retry(self, id); },
    [=](const state_entry& e) {
      if (e.table == "deployments") {
        // Our own rows (delivery ids, rollback marks, deployments) are in
        // memory already.
        if (e.origin != self->state.opts.self)
          on_deployments_row(self->state, e);
      } else if (e.table == "tasks" && !e.tombstone) {
        if (auto row = io::decode<io::task_record>(e.value))
          on_task_row(self, *row);
      }
    },
    [=](const member_event& ev) { on_member_event(self, ev); },
    [=](tick_atom) { on_tick(self); },
  };
}

} // namespace

// -- shared helpers (dispatcher_state.hpp) ------------------------------------------------------

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

double seconds_since(int64_t since_ns) {
  return static_cast<double>(steady_ns() - since_ns) / 1e9;
}

http_answer answer(int status, const nlohmann::json& body) {
  return {status, body.dump()};
}

void count_webhook(dispatcher_state& st, const std::string& result) {
  if (!st.opts.metrics)
    return;
  auto& c = st.webhooks_total[result];
  if (c == nullptr)
    c = &st.opts.metrics->counter("brnode_webhooks_total",
                                  "GitHub webhooks by what the dispatcher did with them",
                                  {{"result", result}});
  c->inc();
}

// No reply is asked for: the state actor logs writes it refuses, and these
// rows need no ordering against anything else (queued rows, which do, are
// written with a request; see dispatcher_run.cpp).
void put_row(dispatcher_ptr self, const std::string& table, const std::string& key,
             std::string value) {
  caf::anon_send(self->state.opts.state, put_atom::value, table, key, std::move(value));
}

void delete_row(dispatcher_ptr self, const std::string& table, const std::string& key) {
  caf::anon_send(self->state.opts.state, delete_atom::value, table, key);
}

void raise_alert(dispatcher_ptr self, const std::string& kind, const std::string& text,
                 const std::string& deploy_id, const std::string& task_id,
                 const std::string& node) {
  io::alert_record a;
  a.at_ms = wall_clock_ms();
  a.id = kind + "-" + new_deploy_id(self->state).substr(2);
  a.kind = kind;
  a.text = text;
  a.deploy_id = deploy_id;
  a.task_id = task_id;
  a.node = node;
  log::deploy()->warn("alert: {}", text);
  put_row(self, "alerts", std::to_string(a.at_ms) + "/" + a.id, io::encode(a));
}

std::string new_deploy_id(dispatcher_state& st) {
  static thread_local std::minstd_rand random{std::random_device{}()};
  char buf[48];
  std::snprintf(buf, sizeof buf, "d-%013lld-%04x%04x", static_cast<long long>(wall_clock_ms()),
                static_cast<unsigned>(st.next_id++ & 0xffff),
                static_cast<unsigned>(random() & 0xffff));
  return buf;
}

std::string target_url(const dispatcher_state& st, const std::string& deploy_id) {
  return st.opts.public_url + "/deployments/" + deploy_id;
}

} // namespace dispatch

dispatcher_actor spawn_dispatcher(caf::actor_system& sys, dispatcher_options opts) {
  return sys.spawn(dispatch::dispatcher, std::move(opts));
}

} // namespace brd
