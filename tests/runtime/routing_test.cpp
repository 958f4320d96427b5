#include "runtime/routing.hpp"

#include <doctest/doctest.h>

using namespace brd;

namespace {

const std::string sha_a(40, 'a');
const std::string sha_b(40, 'b');
const std::string zeros(40, '0');

route_rule rule(std::vector<std::string> paths, std::string role,
                placement p = placement::all) {
  route_rule r;
  r.paths = std::move(paths);
  r.role = std::move(role);
  r.script = {"deploy.sh"};
  r.placement = p;
  return r;
}

repo_config site_repo() {
  repo_config repo;
  repo.name = "blackroad/*";
  repo.remote = "file:///srv/git/{repo}.git";
  repo.branches = {"main", "release/*"};
  repo.rules = {rule({"frontend/**"}, "frontend", placement::one),
                rule({"api/**", "!api/docs/**"}, "k8s"),
                rule({"tests/**"}, "tests"),
                rule({"*.stl"}, "render3d"),
                rule({"frontend/legacy/**"}, "frontend")};
  return repo;
}

io::push_event push(std::string ref, std::string before = sha_a, std::string after = sha_b) {
  io::push_event p;
  p.repo = "blackroad/site";
  p.ref = std::move(ref);
  p.before = std::move(before);
  p.after = std::move(after);
  return p;
}

member_view row(std::string node, member_state state, double load1 = 0, bool sample = true) {
  member_view v;
  v.node = std::move(node);
  v.state = state;
  v.has_sample = sample;
  v.sample.load1 = load1;
  return v;
}

fleet_config fleet() {
  fleet_config f;
  f.nodes = {{"edge", tier::edge, {"bridge"}, "127.0.0.1", 1, 2},
             {"lucidia", tier::pi, {"ops", "frontend"}, "127.0.0.1", 3, 4},
             {"alice", tier::pi, {"frontend", "k8s"}, "127.0.0.1", 5, 6},
             {"aria", tier::pi, {"tests"}, "127.0.0.1", 7, 8},
             {"octavia", tier::pi, {"render3d"}, "127.0.0.1", 9, 10}};
  return f;
}

std::vector<std::string> roles_of(const std::vector<route_rule>& rules) {
  std::vector<std::string> out;
  for (const auto& r : rules)
    out.push_back(r.role);
  return out;
}

} // namespace

TEST_CASE("a repository is found by the first name glob that matches") {
  deploy_config cfg;
  auto a = site_repo();
  auto b = site_repo();
  b.name = "*/*";
  b.remote = "other";
  cfg.repos = {a, b};
  CHECK(find_repo(cfg, "blackroad/site")->remote == a.remote);
  CHECK(find_repo(cfg, "BlackRoad/Site")->remote == a.remote);
  CHECK(find_repo(cfg, "someone/else")->remote == "other");
  cfg.repos = {a};
  CHECK(find_repo(cfg, "someone/else") == nullptr);
}

TEST_CASE("the remote URL names the repository in place of {repo}") {
  CHECK(remote_url(site_repo(), "blackroad/site") == "file:///srv/git/blackroad/site.git");
}

TEST_CASE("branch pushes deploy the new head when the branch is listed") {
  auto repo = site_repo();
  auto d = decide_ref(repo, push("refs/heads/main"));
  CHECK(d.deploy);
  CHECK(d.sha == sha_b);
  CHECK(decide_ref(repo, push("refs/heads/release/1.2")).deploy);
  CHECK_FALSE(decide_ref(repo, push("refs/heads/release/1.2/hotfix")).deploy);
  CHECK_FALSE(decide_ref(repo, push("refs/heads/feature")).deploy);
  CHECK_FALSE(decide_ref(repo, push("refs/heads/main/x")).deploy);
  CHECK_FALSE(decide_ref(repo, push("refs/pull/1/head")).deploy);
}

TEST_CASE("branch deletions and tags are ignored by default and deploy when configured") {
  auto repo = site_repo();
  auto del = push("refs/heads/main", sha_a, zeros);
  del.deleted = true;
  auto tag = push("refs/tags/v1", zeros, sha_b);
  tag.created = true;
  auto d = decide_ref(repo, del);
  CHECK_FALSE(d.deploy);
  CHECK(d.reason.find("on_branch_delete") != std::string::npos);
  CHECK_FALSE(decide_ref(repo, tag).deploy);
  repo.on_branch_delete = ref_policy::deploy;
  repo.on_tag = ref_policy::deploy;
  d = decide_ref(repo, del);
  CHECK(d.deploy);
  CHECK(d.sha == sha_a); // the deleted branch's last commit
  d = decide_ref(repo, tag);
  CHECK(d.deploy);
  CHECK(d.sha == sha_b);
}

TEST_CASE("a branch full of shell metacharacters is data, not a command") {
  auto repo = site_repo();
  repo.branches = {"**"};
  auto d = decide_ref(repo, push("refs/heads/$(touch /tmp/pwned);`id`"));
  CHECK(d.deploy); // matched as plain characters; nothing here runs anything
  repo.branches = {"*"};
  CHECK_FALSE(decide_ref(repo, push("refs/heads/$(touch /tmp/pwned)")).deploy);
  repo.branches = {"main"};
  CHECK_FALSE(decide_ref(repo, push("refs/heads/main;rm -rf ~")).deploy);
}

TEST_CASE("git computes the changed paths of truncated, forced and bare new pushes") {
  auto p = push("refs/heads/main");
  p.changed = {"a"};
  CHECK_FALSE(needs_git_diff(p));
  p.forced = true;
  CHECK(needs_git_diff(p));
  p.forced = false;
  p.truncated = true;
  CHECK(needs_git_diff(p));
  p.truncated = false;
  p.created = true;
  CHECK_FALSE(needs_git_diff(p));
  p.changed.clear();
  CHECK(needs_git_diff(p));
}

TEST_CASE("changed paths select one rule per role, in config order") {
  auto repo = site_repo();
  CHECK(roles_of(rules_for(repo, {"frontend/app.js", "tests/a_test.py"}))
        == std::vector<std::string>{"frontend", "tests"});
  CHECK(roles_of(rules_for(repo, {"api/docs/readme.md"})).empty());
  CHECK(roles_of(rules_for(repo, {"api/main.go", "parts/wheel.stl"}))
        == std::vector<std::string>{"k8s", "render3d"});
  auto legacy = rules_for(repo, {"frontend/legacy/x.js"});
  REQUIRE(legacy.size() == 1);
  CHECK(legacy[0].placement == placement::one); // the first frontend rule
  CHECK(rules_for(repo, {}).empty());
  CHECK(rules_for(repo, {"$(touch /tmp/pwned)", "../../etc/passwd", "a;b"}).empty());
}

TEST_CASE("targets are the live nodes holding the role") {
  auto members = route_members(fleet(), {row("edge", member_state::alive),
                                         row("lucidia", member_state::alive, 0.5),
                                         row("alice", member_state::down, 0.1),
                                         row("aria", member_state::suspect),
                                         row("octavia", member_state::alive)});
  auto k8s = rule({"api/**"}, "k8s");
  CHECK(targets_for(k8s, members).empty()); // alice is down
  auto fe = rule({"frontend/**"}, "frontend");
  CHECK(targets_for(fe, members) == std::vector<node_name>{"lucidia"});
  CHECK(targets_for(rule({"tests/**"}, "tests"), members).empty()); // suspect is not live
  CHECK(members[1].tier == tier::pi);
}

TEST_CASE("placement all takes every live node and one the least loaded") {
  auto members = route_members(fleet(), {row("lucidia", member_state::alive, 0.9),
                                         row("alice", member_state::alive, 0.2)});
  auto all = rule({"frontend/**"}, "frontend", placement::all);
  auto one = rule({"frontend/**"}, "frontend", placement::one);
  CHECK(targets_for(all, members) == std::vector<node_name>{"alice", "lucidia"});
  CHECK(targets_for(one, members) == std::vector<node_name>{"alice"});
  CHECK(targets_for(one, members, {"alice"}) == std::vector<node_name>{"lucidia"});
  members = route_members(fleet(), {row("lucidia", member_state::alive, 0.9),
                                    row("alice", member_state::alive, 0, false)});
  CHECK(targets_for(one, members) == std::vector<node_name>{"lucidia"});
  members = route_members(fleet(), {row("lucidia", member_state::alive, 0.3),
                                    row("alice", member_state::alive, 0.3)});
  CHECK(targets_for(one, members) == std::vector<node_name>{"alice"}); // tie: name order
}

TEST_CASE("a role without a live node yields one unassigned task") {
  auto members = route_members(fleet(), {row("lucidia", member_state::alive),
                                         row("aria", member_state::alive)});
  auto repo = site_repo();
  repo.rules[0].placement = placement::all;
  auto tasks = plan_tasks(rules_for(repo, {"frontend/a", "api/b", "tests/c"}), members);
  REQUIRE(tasks.size() == 3);
  CHECK(tasks[0].rule.role == "frontend");
  CHECK(tasks[0].node == "lucidia");
  CHECK(tasks[1].rule.role == "k8s");
  CHECK(tasks[1].node.empty());
  CHECK(tasks[2].node == "aria");
}

TEST_CASE("task ids and keys are safe as keys and file names") {
  CHECK(make_task_id("frontend", "lucidia", 1) == "frontend@lucidia");
  CHECK(make_task_id("frontend", "lucidia", 2) == "frontend@lucidia.2");
  CHECK(make_task_id("a/b $(x)", "", 1) == "a_b___x_@unassigned");
  auto first = parse_task_id("frontend@lucidia");
  REQUIRE(first);
  CHECK(first->role == "frontend");
  CHECK(first->node == "lucidia");
  CHECK(first->attempt == 1);
  auto later = parse_task_id("frontend@lucidia-2.3");
  REQUIRE(later);
  CHECK(later->node == "lucidia-2");
  CHECK(later->attempt == 3);
  auto none = parse_task_id("a_b___x_@unassigned");
  REQUIRE(none);
  CHECK(none->node.empty());
  CHECK_FALSE(parse_task_id("no-at-sign"));
  CHECK(task_key("d-1", "t") == "d-1/t");
  CHECK(delivery_key("abc") == "delivery/abc");
  CHECK(rollback_key("o/r", sha_a) == "rollback/o/r/" + sha_a);
}

namespace {

io::task_record done(std::string node, std::string sha, int64_t at, std::string state = "succeeded",
                     std::string repo = "blackroad/site") {
  io::task_record t;
  t.node = std::move(node);
  t.sha = std::move(sha);
  t.finished_at_ms = at;
  t.state = std::move(state);
  t.repo = std::move(repo);
  t.role = "frontend";
  return t;
}

} // namespace

TEST_CASE("rollback to previous takes each node's build before the current one") {
  const std::string sha_c(40, 'c');
  std::vector<io::task_record> history{
    done("lucidia", sha_a, 1), done("lucidia", sha_b, 2), done("lucidia", sha_c, 3, "failed"),
    done("alice", sha_b, 1), done("alice", sha_c, 5), done("alice", sha_a, 4, "succeeded", "x/y")};
  auto plan = plan_rollback(history, "blackroad/site", {"lucidia", "alice", "aria"}, "previous");
  REQUIRE(plan);
  REQUIRE(plan->size() == 2);
  CHECK((*plan)[0].node == "lucidia");
  CHECK((*plan)[0].from_sha == sha_b);
  CHECK((*plan)[0].to_sha == sha_a);
  CHECK((*plan)[1].from_sha == sha_c);
  CHECK((*plan)[1].to_sha == sha_b);
  CHECK((*plan)[1].role == "frontend");
  // A sha that was rolled back is not "previous" again.
  history.push_back(done("lucidia", sha_a, 6));
  plan = plan_rollback(history, "blackroad/site", {"lucidia"}, "previous", {sha_b});
  CHECK_FALSE(plan);
}

TEST_CASE("rollback to a named sha needs a node that built it and runs something else") {
  std::vector<io::task_record> history{done("lucidia", sha_a, 1), done("lucidia", sha_b, 2)};
  auto plan = plan_rollback(history, "blackroad/site", {"lucidia"}, sha_a);
  REQUIRE(plan);
  CHECK(plan->front().to_sha == sha_a);
  CHECK_FALSE(plan_rollback(history, "blackroad/site", {"lucidia"}, sha_b));
  CHECK_FALSE(plan_rollback(history, "blackroad/site", {"lucidia"}, std::string(40, 'c')));
  CHECK_FALSE(plan_rollback(history, "blackroad/site", {"lucidia"}, "HEAD~1"));
  CHECK_FALSE(plan_rollback(history, "blackroad/site", {"alice"}, "previous"));
}
