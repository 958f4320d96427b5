#include "runtime/routing.hpp"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include <map>

#include "io/git.hpp"
#include "io/glob.hpp"
#include "runtime/errors.hpp"

namespace brd {

// -- keys ------------------------------------------------------------------------

std::string delivery_key(std::string_view delivery_id) {
  return std::string{delivery_prefix}.append(delivery_id);
}

std::string rollback_key(std::string_view repo, std::string_view sha) {
  return std::string{rollback_prefix}.append(repo).append("/").append(sha);
}

std::string task_key(std::string_view deploy_id, std::string_view task_id) {
  return std::string{deploy_id}.append("/").append(task_id);
}

std::string make_task_id(std::string_view role, std::string_view node, uint32_t attempt) {
  std::string id;
  for (char c : role) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                || c == '.' || c == '_' || c == '-';
    id += safe ? c : '_';
  }
  id += '@';
  id += node.empty() ? std::string_view{"unassigned"} : node;
  if (attempt > 1)
    id += "." + std::to_string(attempt);
  return id;
}

std::optional<task_id_parts> parse_task_id(std::string_view task_id) {
  auto at = task_id.find('@');
  if (at == std::string_view::npos)
    return std::nullopt;
  task_id_parts out;
  out.role = task_id.substr(0, at);
  auto node = task_id.substr(at + 1);
  if (auto dot = node.find('.'); dot != std::string_view::npos) {
    out.attempt = static_cast<uint32_t>(std::strtoul(std::string{node.substr(dot + 1)}.c_str(),
                                                     nullptr, 10));
    node = node.substr(0, dot);
  }
  if (node != "unassigned")
    out.node = node;
  return out;
}

io::task_record task_record_of(const deploy_task& t, std::string node) {
  io::task_record r;
  r.deploy_id = t.deploy_id;
  r.task_id = t.task_id;
  r.kind = t.kind;
  r.repo = t.repo;
  r.sha = t.sha;
  r.ref = t.ref;
  r.role = t.role;
  r.node = std::move(node);
  r.attempt = t.attempt;
  return r;
}

std::optional<io::task_record> task_of_record(const io::deployment_record& rec,
                                              std::string_view task_id) {
  auto parts = parse_task_id(task_id);
  if (!parts)
    return std::nullopt;
  io::task_record t;
  t.deploy_id = rec.id;
  t.task_id = task_id;
  t.kind = rec.kind;
  t.repo = rec.repo;
  t.sha = rec.sha;
  t.ref = rec.ref;
  t.role = std::move(parts->role);
  t.node = std::move(parts->node);
  t.attempt = parts->attempt;
  t.queued_at_ms = rec.created_at_ms;
  return t;
}

// -- the repository and the ref ----------------------------------------------------

const repo_config* find_repo(const deploy_config& cfg, std::string_view full_name) {
  for (const auto& repo : cfg.repos)
    if (io::repo_match(repo.name, full_name))
      return &repo;
  return nullptr;
}

std::string remote_url(const repo_config& repo, std::string_view repo_name) {
  std::string url = repo.remote;
  constexpr std::string_view placeholder = "{repo}";
  for (auto pos = url.find(placeholder); pos != std::string::npos;
       pos = url.find(placeholder, pos + repo_name.size()))
    url.replace(pos, placeholder.size(), repo_name);
  return url;
}

namespace {

ref_decision ignore(std::string reason) {
  return {false, {}, std::move(reason)};
}

bool branch_listed(const repo_config& repo, std::string_view branch) {
  // The whole branch name must match; '*' stops at '/', "**" crosses it.
  for (const auto& pattern : repo.branches)
    if (io::repo_match(pattern, branch))
      return true;
  return false;
}

} // namespace

ref_decision decide_ref(const repo_config& repo, const io::push_event& push) {
  if (io::is_tag_ref(push.ref)) {
    if (repo.on_tag == ref_policy::ignore)
      return ignore("tag pushes are ignored (on_tag = \"ignore\")");
    if (push.deleted)
      return ignore("tag deletions never deploy");
    return {true, push.after, {}};
  }
  auto branch = io::branch_of(push.ref);
  if (branch.empty())
    return ignore("only branches and tags deploy");
  if (!branch_listed(repo, branch))
    return ignore("the branch is not in the repository's branches");
  if (push.deleted) {
    if (repo.on_branch_delete == ref_policy::ignore)
      return ignore("branch deletions are ignored (on_branch_delete = \"ignore\")");
    if (!io::is_commit_id(push.before) || io::is_zero_commit_id(push.before))
      return ignore("the deleted branch has no last commit");
    return {true, push.before, {}};
  }
  if (!io::is_commit_id(push.after) || io::is_zero_commit_id(push.after))
    return ignore("the push has no commit to deploy");
  return {true, push.after, {}};
}

bool needs_git_diff(const io::push_event& push) {
  return push.truncated || push.forced || (push.created && push.changed.empty());
}

// -- roles and nodes ------------------------------------------------------------

bool route_member::holds(std::string_view role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

std::vector<route_member> route_members(const fleet_config& fleet,
                                        const std::vector<member_view>& rows) {
  std::vector<route_member> out;
  for (const auto& n : fleet.nodes) {
    route_member m{n.name, n.tier, n.roles};
    auto row = std::find_if(rows.begin(), rows.end(),
                            [&](const member_view& v) { return v.node == n.name; });
    if (row != rows.end()) {
      m.live = row->state == member_state::alive;
      m.has_load = row->has_sample;
      m.load1 = row->sample.load1;
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<route_rule> rules_for(const repo_config& repo,
                                  const std::vector<std::string>& changed) {
  std::vector<route_rule> out;
  for (const auto& rule : repo.rules) {
    bool taken = std::any_of(out.begin(), out.end(),
                             [&](const route_rule& r) { return r.role == rule.role; });
    if (!taken && io::match_any_path(rule.paths, changed))
      out.push_back(rule);
  }
  return out;
}

const route_rule* rule_for_role(const repo_config& repo, std::string_view role) {
  for (const auto& rule : repo.rules)
    if (rule.role == role)
      return &rule;
  return nullptr;
}

bool same_line(const deploy_task& a, const deploy_task& b) {
  return a.kind == "deploy" && b.kind == "deploy" && a.repo == b.repo && a.ref == b.ref
         && a.role == b.role;
}

std::string line_key(const deploy_task& t) {
  return t.repo + '\0' + t.ref + '\0' + t.role;
}

std::vector<node_name> targets_for(const route_rule& rule,
                                   const std::vector<route_member>& members,
                                   const std::set<node_name>& exclude) {
  std::vector<const route_member*> live;
  for (const auto& m : members)
    if (m.live && m.holds(rule.role) && exclude.count(m.node) == 0)
      live.push_back(&m);
  std::sort(live.begin(), live.end(),
            [](const route_member* a, const route_member* b) { return a->node < b->node; });
  std::vector<node_name> out;
  if (rule.placement == placement::all) {
    for (const auto* m : live)
      out.push_back(m->node);
    return out;
  }
  auto load = [](const route_member* m) {
    return m->has_load ? m->load1 : std::numeric_limits<double>::infinity();
  };
  auto best = std::min_element(live.begin(), live.end(), [&](auto* a, auto* b) {
    return load(a) < load(b); // stable on ties: the first in name order
  });
  if (best != live.end())
    out.push_back((*best)->node);
  return out;
}

std::vector<planned_task> plan_tasks(const std::vector<route_rule>& rules,
                                     const std::vector<route_member>& members) {
  std::vector<planned_task> out;
  for (const auto& rule : rules) {
    auto nodes = targets_for(rule, members);
    if (nodes.empty())
      out.push_back({rule, {}});
    for (auto& node : nodes)
      out.push_back({rule, std::move(node)});
  }
  return out;
}

// -- rollback ------------------------------------------------------------------

namespace {

// Successful tasks of `repo` per node, oldest first.
std::map<node_name, std::vector<const io::task_record*>>
successes_by_node(const std::vector<io::task_record>& history, std::string_view repo) {
  std::map<node_name, std::vector<const io::task_record*>> out;
  for (const auto& row : history)
    if (row.repo == repo && row.state == "succeeded" && !row.node.empty())
      out[row.node].push_back(&row);
  for (auto& [node, rows] : out)
    std::stable_sort(rows.begin(), rows.end(), [](const auto* a, const auto* b) {
      return a->finished_at_ms < b->finished_at_ms;
    });
  return out;
}

} // namespace

caf::expected<std::vector<rollback_step>>
plan_rollback(const std::vector<io::task_record>& history, std::string_view repo,
              const std::vector<node_name>& nodes, std::string_view sha,
              const std::set<std::string>& rolled_back) {
  bool previous = sha == "previous";
  if (!previous && !io::is_commit_id(sha))
    return make_error(brd_errc::refused,
                      "sha must be a commit id (40 lowercase hex digits) or \"previous\"");
  auto by_node = successes_by_node(history, repo);
  std::vector<rollback_step> out;
  for (const auto& node : nodes) {
    auto i = by_node.find(node);
    if (i == by_node.end())
      continue;
    const auto& rows = i->second;
    const auto* current = rows.back();
    rollback_step step{node, current->role, current->sha, {}};
    if (previous) {
      for (auto r = rows.rbegin(); r != rows.rend() && step.to_sha.empty(); ++r)
        if ((*r)->sha != current->sha && rolled_back.count((*r)->sha) == 0)
          step.to_sha = (*r)->sha;
      if (step.to_sha.empty())
        return make_error(brd_errc::refused, "node '" + node + "' has no build of "
                                               + std::string{repo}
                                               + " before the current one");
    } else {
      if (current->sha == sha)
        return make_error(brd_errc::refused, "node '" + node + "' already runs "
                                               + std::string{sha});
      bool built = std::any_of(rows.begin(), rows.end(),
                               [&](const auto* r) { return r->sha == sha; });
      if (!built)
        return make_error(brd_errc::refused, "node '" + node + "' never built "
                                               + std::string{sha} + " of "
                                               + std::string{repo});
      step.to_sha = std::string{sha};
    }
    out.push_back(std::move(step));
  }
  if (out.empty())
    return make_error(brd_errc::refused, "no target node has a successful deploy of "
                                           + std::string{repo} + " to roll back");
  return out;
}

} // namespace brd
