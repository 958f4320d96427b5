// Operator actions of the dispatcher: rollback and retry.
#include <set>
#include <variant>

#include <caf/actor_system.hpp>

#include "actors/dispatcher_state.hpp"
#include "actors/state_scan.hpp"
#include "io/git.hpp"
#include "io/workspace.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"

namespace brd::dispatch {

namespace {


http_answer refuse(int status, const std::string& why) {
  return answer(status, {{"error", why}});
}

std::vector<io::task_record> decode_tasks(const std::vector<state_row>& rows) {
  std::vector<io::task_record> out;
  out.reserve(rows.size());
  for (const auto& row : rows)
    if (auto t = io::decode<io::task_record>(row.value))
      out.push_back(std::move(*t));
  return out;
}

// The shas of `repo` marked rolled back.
std::set<std::string> rolled_back_shas(const dispatcher_state& st, const std::string& repo) {
  std::set<std::string> out;
  auto prefix = rollback_key(repo, "");
  for (auto i = st.rolled_back.lower_bound(prefix);
       i != st.rolled_back.end() && i->rfind(prefix, 0) == 0; ++i)
    out.insert(i->substr(prefix.size()));
  return out;
}

// The nodes a rollback request names, or the answer refusing it.
std::variant<std::vector<node_name>, http_answer> rollback_nodes(const dispatcher_state& st,
                                                                 const rollback_request& req) {
  if (req.node.empty() == req.role.empty())
    return refuse(400, "give exactly one of \"node\" and \"role\"");
  if (!req.node.empty()) {
    if (st.opts.fleet.find(req.node) == nullptr)
      return refuse(404, "node '" + req.node + "' is not in the config");
    return std::vector<node_name>{req.node};
  }
  std::vector<node_name> nodes;
  for (const auto& m : route_members(st.opts.fleet, st.members))
    if (m.live && m.holds(req.role))
      nodes.push_back(m.node);
  if (nodes.empty())
    return refuse(409, "no live node holds role '" + req.role + "'");
  return nodes;
}

void mark_rolled_back(dispatcher_ptr self, const std::string& repo, const std::string& sha,
                      const std::string& deploy_id) {
  auto key = rollback_key(repo, sha);
  self->state.rolled_back.insert(key);
  put_row(self, "deployments", key,
          io::encode_record({{"v", 100}, {"repo", repo}, {"sha", sha},
                             {"deploy_id", deploy_id}, {"at_ms", wall_clock_ms()}}));
}

using answer_promise = caf::typed_response_promise<http_answer>;

// Starts the rollback and answers once its record is durable (or refuses).
void start_rollback(dispatcher_ptr self, answer_promise promise, const rollback_request& req,
                    const std::vector<node_name>& nodes,
                    const std::vector<io::task_record>& history) {
  auto& st = self->state;
  auto plan = plan_rollback(history, req.repo, nodes, req.sha, rolled_back_shas(st, req.repo));
  if (!plan) {
    promise.deliver(refuse(409, describe(plan.error())));
    return;
  }
  io::deployment_record rec;
  rec.id = new_deploy_id(st);
  rec.kind = "rollback";
  rec.repo = req.repo;
  rec.sha = plan->front().to_sha;
  rec.before = plan->front().from_sha;
  rec.pusher = "rollback";
  rec.created_at_ms = wall_clock_ms();
  for (const auto& t : history)
    if (t.repo == req.repo && t.sha == rec.before && !t.ref.empty())
      rec.ref = t.ref;
  const auto* repo = find_repo(st.opts.fleet.deploy, req.repo);
  std::vector<task_slot> slots;
  auto steps = nlohmann::json::array();
  std::set<std::string> from;
  for (const auto& step : *plan) {
    task_slot slot;
    slot.record.role = step.role;
    slot.record.node = step.node;
    slot.record.sha = step.to_sha;
    if (const auto* rule = repo ? rule_for_role(*repo, step.role) : nullptr)
      slot.rule = *rule;
    slot.rule.role = step.role;
    slot.rule.script.clear(); // a rollback runs nothing
    slots.push_back(std::move(slot));
    from.insert(step.from_sha);
    steps.push_back({{"node", step.node}, {"from", step.from_sha}, {"to", step.to_sha}});
  }
  for (const auto& sha : from)
    mark_rolled_back(self, req.repo, sha, rec.id);
  auto id = rec.id;
  nlohmann::json accepted{{"status", "accepted"}, {"deployment", id},
                          {"url", target_url(st, id)}, {"steps", steps}};
  // A rollback that cannot be recorded did not happen: its marks go too.
  auto unmark = [=, repo = req.repo](const caf::error& err) {
    if (!err)
      return;
    for (const auto& sha : from) {
      self->state.rolled_back.erase(rollback_key(repo, sha));
      delete_row(self, "deployments", rollback_key(repo, sha));
    }
  };
  start_deployment(self, std::move(rec), std::move(slots), steady_ns(),
                   answer_when_recorded(promise, std::move(accepted), unmark));
}

// Starts the retry and answers once its record is durable (or refuses).
void start_retry(dispatcher_ptr self, answer_promise promise, const io::deployment_record& old,
                 const std::vector<io::task_record>& tasks) {
  auto& st = self->state;
  const auto* repo = find_repo(st.opts.fleet.deploy, old.repo);
  if (repo == nullptr) {
    promise.deliver(refuse(404, "repository " + old.repo + " is not in the config any more"));
    return;
  }
  auto sha = old.kind == "rollback" ? old.before : old.sha;
  if (!io::is_commit_id(sha)) {
    promise.deliver(refuse(409, "deployment " + old.id + " names no commit to deploy"));
    return;
  }
  std::vector<route_rule> rules;
  for (const auto& t : tasks) {
    const auto* rule = rule_for_role(*repo, t.role);
    bool have = std::any_of(rules.begin(), rules.end(),
                            [&](const route_rule& r) { return r.role == t.role; });
    if (rule != nullptr && !have)
      rules.push_back(*rule);
  }
  if (rules.empty())
    rules = rules_for(*repo, old.changed);
  if (rules.empty()) {
    promise.deliver(refuse(409, "no rule of " + old.repo + " takes what deployment " + old.id
                                  + " deployed"));
    return;
  }
  auto key = rollback_key(old.repo, sha);
  if (st.rolled_back.erase(key) > 0) {
    delete_row(self, "deployments", key);
    log::deploy()->info("{}@{} may deploy again (retry of {})", old.repo, sha.substr(0, 7),
                        old.id);
  }
  io::deployment_record rec;
  rec.id = new_deploy_id(st);
  rec.repo = old.repo;
  rec.sha = sha;
  rec.ref = old.ref;
  rec.pusher = "retry of " + old.id;
  rec.changed = old.changed;
  rec.created_at_ms = wall_clock_ms();
  auto id = rec.id;
  auto members = route_members(st.opts.fleet, st.members);
  auto slots = slots_for(plan_tasks(rules, members));
  nlohmann::json accepted{{"status", "accepted"}, {"deployment", id}, {"retry_of", old.id},
                          {"tasks", slots.size()}, {"url", target_url(st, id)}};
  start_deployment(self, std::move(rec), std::move(slots), steady_ns(),
                   answer_when_recorded(promise, std::move(accepted)));
}

} // namespace

caf::result<http_answer> rollback(dispatcher_ptr self, const rollback_request& req) {
  auto& st = self->state;
  if (!io::is_repo_name(req.repo) || find_repo(st.opts.fleet.deploy, req.repo) == nullptr)
    return refuse(404, "repository '" + req.repo + "' is not in the config");
  if (req.sha != "previous" && !io::is_commit_id(req.sha))
    return refuse(400, "sha must be a commit id (40 lowercase hex digits) or \"previous\"");
  auto nodes = rollback_nodes(st, req);
  if (auto* refused = std::get_if<http_answer>(&nodes))
    return *refused;
  auto targets = std::get<std::vector<node_name>>(nodes);
  auto promise = self->make_response_promise<http_answer>();
  // The repository's task rows, without their log tails, read a time bucket
  // at a time.
  auto history = std::make_shared<std::vector<io::task_record>>();
  scan_by_time(
    self, st.opts.state, "tasks", store_timeout,
    [=](std::vector<state_row>& rows) {
      for (auto& t : decode_tasks(rows))
        if (t.repo == req.repo) {
          t.log_tail.clear();
          history->push_back(std::move(t));
        }
    },
    [=](const caf::error& err) mutable {
      if (err)
        promise.deliver(refuse(503, "cannot read the task history: " + describe(err)));
      else
        start_rollback(self, promise, req, targets, *history);
    });
  return promise;
}

caf::result<http_answer> retry(dispatcher_ptr self, const std::string& deploy_id) {
  auto& st = self->state;
  if (deploy_id.rfind(deployment_prefix, 0) != 0 || !io::is_path_id(deploy_id))
    return refuse(404, "no deployment " + deploy_id);
  auto promise = self->make_response_promise<http_answer>();
  auto fail = [=](caf::error& err) mutable {
    promise.deliver(refuse(503, "cannot read deployment " + deploy_id + ": " + describe(err)));
  };
  self->request(st.opts.state, store_timeout, get_atom::value, std::string{"deployments"},
                deploy_id)
    .then(
      [=](std::vector<state_row>& rows) mutable {
        if (rows.empty()) {
          promise.deliver(refuse(404, "no deployment " + deploy_id));
          return;
        }
        auto old = io::decode<io::deployment_record>(rows.front().value);
        if (!old) {
          promise.deliver(refuse(404, "no deployment " + deploy_id));
          return;
        }
        self->request(self->state.opts.state, store_timeout, scan_atom::value,
                      std::string{"tasks"}, deploy_id + "/", uint64_t{10000})
          .then(
            [=](std::vector<state_row>& task_rows) mutable {
              start_retry(self, promise, *old, decode_tasks(task_rows));
            },
            fail);
      },
      fail);
  return promise;
}

} // namespace brd::dispatch
