// brsh's deploy commands against real push to deploy (issue 5): a fleet
// from deploy_fixture (real git, signed webhooks to the bridge node edge,
// a recorder standing in for GitHub), read with `deploys list`, `deploy
// show`, `deploy logs`, waited on with `wait-for deploy ID is STATE`, and
// acted on with `deploy rollback` and `deploy retry`.
#include <doctest/doctest.h>

#include <filesystem>
#include <thread>

#include "brsh_run.hpp"
#include "deploy_fixture.hpp"

using namespace brd::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct pushed {
  std::string id;  // the deployment
  std::string sha; // the commit
};

// Commits `files`, sends GitHub's push event for them to the bridge and
// returns the new deployment's id without waiting for it.
pushed push(deploy_site& site, const std::map<std::string, std::string>& files) {
  auto before = site.head();
  auto sha = site.commit(files);
  std::vector<std::string> changed;
  for (const auto& [path, text] : files)
    changed.push_back(path);
  auto r = send_webhook(site.edge_port(), push_event(before, sha, changed).dump(),
                        site.secret(), new_delivery_id());
  REQUIRE_MESSAGE(r.status == 202, r.body);
  auto id = r.doc().value("deployment", "");
  REQUIRE_MESSAGE(!id.empty(), r.body);
  return {id, sha};
}

// Where fe1's `active` link of blackroad/site points (the build's sha).
std::string active_build(deploy_site& site) {
  auto link = site.nodes().data_dir("fe1") + "/workspace/builds/blackroad/site/active";
  std::error_code ec;
  return fs::read_symlink(link, ec).filename().string();
}

// A started fleet of a bridge node (edge) and one frontend node (fe1)
// whose rule runs `script`.
struct frontend_site {
  deploy_site site;
  fleet& fl;

  explicit frontend_site(const std::string& script)
    : site{edge_and_frontend(script)}, fl{site.nodes()} {
    site.start();
  }
};

} // namespace

TEST_CASE("a pushed commit shows in deploys list, deploy show and deploy logs, and wait-for "
          "deploy waits for it or times out with a sentence") {
  frontend_site s{"scripts/slow.sh"};
  auto& [site, fl] = s;
  auto [id, sha] = push(site, {{"frontend/app.js", "v1"}});

  // The script sleeps 4 s: a 1 s wait times out while it runs.
  auto early = fl.dir().write("early.brsh", "wait-for deploy " + id + " is success --timeout 1s\n");
  auto t = brsh(fl, {"--node", "edge", "-f", early}, 30s);
  INFO(t.output);
  CHECK(t.exit_code == 3);
  CHECK(contains(t.output, early + ":1: timed out after 1s waiting for deploy " + id
                             + " to be success; it is pending (1 task: "));

  // --follow prints the output once the task ends, then the outcome.
  auto follow = brsh(fl, {"--node", "fe1", "deploy", "logs", id, "--follow"}, 60s);
  INFO(follow.output);
  CHECK(follow.exit_code == 0);
  CHECK(contains(follow.output, "==> frontend@fe1 on fe1: succeeded <=="));
  CHECK(contains(follow.output, "deployed " + sha));
  CHECK(contains(follow.output, "deployment " + id + " finished: success (1 task: 1 succeeded)"));

  auto ok = fl.dir().write("ok.brsh", "wait-for deploy " + id + " is success --timeout 10s\n"
                                      "check deploy " + id + " is not failure\n");
  auto w = brsh(fl, {"--node", "fe1", "-f", ok}, 30s);
  INFO(w.output);
  CHECK(w.exit_code == 0);
  CHECK(contains(w.output, "deploy " + id + " is success (after "));
  CHECK(contains(w.output, "deploy " + id + " is not failure"));

  auto list = brsh(fl, {"--node", "edge", "deploys", "list", "-o", "json"});
  REQUIRE(list.exit_code == 0);
  auto rows = parse_json(list);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["id"] == id);
  CHECK(rows[0]["sha"] == sha);
  CHECK(rows[0]["kind"] == "deploy");
  CHECK(rows[0]["state"] == "success");
  CHECK(rows[0]["task_ids"] == json::array({"frontend@fe1"}));

  // deploy show -o json is what the node's HTTP view says, from any node.
  auto show = brsh(fl, {"--node", "fe1", "deploy", "show", id, "-o", "json"});
  INFO(show.output);
  REQUIRE(show.exit_code == 0);
  auto d = parse_json(show);
  auto http = http_get_json(site.edge_port(), "/api/deployments/" + id);
  REQUIRE(http.status == 200);
  CHECK(d == http.body);
  auto task = task_of(d, "frontend@fe1");
  CHECK(task["state"] == "succeeded");
  CHECK(task["node"] == "fe1");
  CHECK(task["started_at_ms"].get<int64_t>() > 0);
  CHECK(task["finished_at_ms"].get<int64_t>() >= task["started_at_ms"].get<int64_t>() + 3000);

  auto table = brsh(fl, {"--node", "edge", "deploy", "show", id});
  INFO(table.output);
  CHECK(table.exit_code == 0);
  CHECK(contains(table.output, "success (1 task: 1 succeeded)"));
  CHECK(contains(line_with(table.output, "frontend@fe1  fe1"), "succeeded"));
  CHECK(contains(table.output, "  deployed " + sha));

  auto logs = brsh(fl, {"--node", "edge", "deploy", "logs", id, "fe1"});
  INFO(logs.output);
  CHECK(logs.exit_code == 0);
  CHECK(contains(logs.output, "==> frontend@fe1 on fe1: succeeded <==\ndeployed " + sha + "\n"));

  auto unknown = brsh(fl, {"--node", "edge", "deploy", "show", "d-0000000000000-00000000"});
  CHECK(unknown.exit_code == 1);
  CHECK(contains(unknown.output, "there is no deployment 'd-0000000000000-00000000' on edge "
                                 "(`deploys list` shows the recent ones)"));
  auto no_task = brsh(fl, {"--node", "edge", "deploy", "logs", id, "tests@fe2"});
  CHECK(no_task.exit_code == 1);
  CHECK(contains(no_task.output, "has no task or node 'tests@fe2'; its tasks: frontend@fe1"));
}

TEST_CASE("deploy rollback re-activates the previous build as a rollback deployment, deploy "
          "retry deploys the commit again, and an unreachable bridge is named") {
  frontend_site s{"scripts/deploy.sh"};
  auto& [site, fl] = s;
  auto [first, a] = push(site, {{"frontend/app.js", "A"}});
  REQUIRE(wait_deployment(site.edge_port(), first).value("state", "") == "success");
  auto [second, b] = push(site, {{"frontend/app.js", "B"}});
  REQUIRE(wait_deployment(site.edge_port(), second).value("state", "") == "success");
  REQUIRE(active_build(site) == b);

  // Sent through fe1: brsh finds the bridge node in the config.
  auto rb = brsh(fl, {"--node", "fe1", "deploy", "rollback", "blackroad/site", "--role",
                      "frontend", "-o", "json"});
  INFO(rb.output);
  REQUIRE(rb.exit_code == 0);
  auto answer = parse_json(rb);
  auto rollback_id = answer.value("deployment", "");
  REQUIRE(!rollback_id.empty());
  CHECK(answer["steps"] == json::array({{{"node", "fe1"}, {"from", b}, {"to", a}}}));
  auto done = fl.dir().write("rollback.brsh",
                             "wait-for deploy " + rollback_id + " is success --timeout 20s\n");
  auto w = brsh(fl, {"--node", "edge", "-f", done}, 40s);
  INFO(w.output);
  REQUIRE(w.exit_code == 0);
  CHECK(active_build(site) == a);
  auto list = parse_json(brsh(fl, {"--node", "edge", "deploys", "list", "-o", "json"}));
  REQUIRE(list.size() == 3);
  CHECK(list[0]["id"] == rollback_id);
  CHECK(list[0]["kind"] == "rollback");
  CHECK(list[0]["sha"] == a);
  CHECK(list[0]["before"] == b);

  auto retry = brsh(fl, {"--node", "edge", "deploy", "retry", second});
  INFO(retry.output);
  REQUIRE(retry.exit_code == 0);
  CHECK(contains(retry.output, "retry accepted by edge as deployment d-"));
  list = parse_json(brsh(fl, {"--node", "edge", "deploys", "list", "-o", "json"}));
  REQUIRE(list.size() == 4);
  auto retry_id = list[0].value("id", "");
  CHECK(contains(retry.output, "deployment " + retry_id));
  CHECK(list[0]["pusher"] == "retry of " + second);
  CHECK(wait_deployment(site.edge_port(), retry_id).value("state", "") == "success");
  CHECK(active_build(site) == b);
  CHECK(lines_of(site.out("fe1-frontend.sha")) == std::vector<std::string>{a, b, b});

  auto bad = brsh(fl, {"--node", "edge", "deploy", "rollback", "blackroad/site", "--node", "fe1",
                       "--to", "HEAD~1"});
  CHECK(bad.exit_code == 1);
  CHECK(contains(bad.output, "the bridge node edge refused the rollback: sha must be a commit id"));
  auto missing = brsh(fl, {"--node", "edge", "deploy", "retry", "d-0000000000000-00000000"});
  CHECK(missing.exit_code == 1);
  CHECK(contains(missing.output, "there is no deployment 'd-0000000000000-00000000' on the "
                                 "bridge node edge"));

  fl.process("edge").kill9();
  auto down = brsh(fl, {"--node", "fe1", "deploy", "retry", second});
  CHECK(down.exit_code == 69);
  CHECK(contains(down.output, "bridge node edge at http://127.0.0.1:"
                                + std::to_string(site.edge_port()) + " is unreachable"));
  // Reading needs no bridge: fe1 has its own replica.
  auto still = brsh(fl, {"--node", "fe1", "deploys", "list", "-o", "json"});
  CHECK(still.exit_code == 0);
  CHECK(parse_json(still).size() == 4);
}
