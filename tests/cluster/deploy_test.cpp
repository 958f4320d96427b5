// Push to deploy end to end (issue 4): real brnode processes on loopback,
// real git (bare repositories as remotes), and a recorder standing in for
// GitHub's API and the alert URL. Webhooks go to the edge node (role
// "bridge"); the repository's scripts write what they deployed into out/.
#include <doctest/doctest.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <filesystem>
#include <future>
#include <set>
#include <unistd.h>

#include "deploy_fixture.hpp"
#include "state_client.hpp"
#include "io/hmac.hpp"
#include "io/process.hpp"
#include "runtime/wall_clock.hpp"

using namespace brd::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using strings = std::vector<std::string>;

const std::string zeros(40, '0');

std::vector<std::string> contexts_of(const std::map<std::string, strings>& s) {
  std::vector<std::string> out;
  for (const auto& [context, states] : s)
    out.push_back(context);
  return out;
}

// Deploys `sha` with a fresh delivery and waits for the deployment.
json deploy(deploy_site& site, const std::string& sha, const strings& changed,
            const std::string& before = zeros) {
  auto body = push_event(before, sha, changed).dump();
  auto r = send_webhook(site.edge_port(), body, site.secret(), new_delivery_id());
  REQUIRE_MESSAGE(r.status == 202, r.body);
  auto id = r.doc().value("deployment", "");
  REQUIRE_MESSAGE(!id.empty(), r.body);
  return wait_deployment(site.edge_port(), id);
}

std::string builds_dir(deploy_site& site, const std::string& node) {
  return site.nodes().data_dir(node) + "/workspace/builds/blackroad/site";
}

size_t deployment_count(uint16_t port) {
  auto r = http_get_json(port, "/api/deployments?limit=1000");
  return r.body.is_array() ? r.body.size() : 0;
}

} // namespace

TEST_CASE("a GitHub push event touching frontend/ and tests/ deploys to exactly the nodes of "
          "those roles, at the pushed sha, with pending then success statuses") {
  deploy_site site{{{{"edge", "edge", {"bridge"}},
                     {"fe1", "pi", {"frontend"}},
                     {"fe2", "pi", {"frontend"}},
                     {"tst", "pi", {"tests"}},
                     {"api", "pi", {"k8s"}}},
                    {{R"(["frontend/**"])", "frontend"},
                     {R"(["tests/**"])", "tests"},
                     {R"(["api/**"])", "k8s"}}}};
  site.start();
  auto before = site.head();
  auto sha = site.commit({{"frontend/app.js", "app"}, {"tests/app_test.js", "test"}});
  auto body = push_event(before, sha, {"frontend/app.js", "tests/app_test.js"}).dump();
  auto started = steady::now();
  auto r = send_webhook(site.edge_port(), body, site.secret(), new_delivery_id());
  auto reply_ms = std::chrono::duration_cast<millis>(steady::now() - started).count();
  REQUIRE_MESSAGE(r.status == 202, r.body);
  MESSAGE("webhook answered in " << reply_ms << " ms");
  CHECK(reply_ms < 1000);
  auto id = r.doc().value("deployment", "");
  auto d = wait_deployment(site.edge_port(), id);
  REQUIRE_MESSAGE(d.value("state", "") == "success", d.dump(2));
  CHECK(d["sha"] == sha);
  CHECK(d["pusher"] == "Codertocat");
  CHECK(d["task_ids"] == json(strings{"frontend@fe1", "frontend@fe2", "tests@tst"}));

  // The scripts ran exactly on the nodes of those roles, at the pushed sha.
  CHECK(lines_of(site.out("fe1-frontend.sha")) == strings{sha});
  CHECK(lines_of(site.out("fe2-frontend.sha")) == strings{sha});
  CHECK(lines_of(site.out("tst-tests.sha")) == strings{sha});
  CHECK(lines_of(site.out("fe1-frontend.ref")) == strings{"refs/heads/main"});
  CHECK_FALSE(fs::exists(site.out("api-k8s.sha")));
  CHECK_FALSE(fs::exists(site.out("edge-frontend.sha")));

  // Statuses: pending then success for the deployment and each role.
  REQUIRE(site.github().wait_for(
    [&](auto&) { return statuses(site.github(), sha)["blackroad/deploy"].size() == 2; }, 10s));
  auto s = statuses(site.github(), sha);
  CHECK(contexts_of(s) == strings{"blackroad/deploy", "blackroad/deploy/frontend",
                                  "blackroad/deploy/tests"});
  for (const auto& [context, states] : s)
    CHECK_MESSAGE((states == strings{"pending", "success"}), context);
  auto posts = site.github().requests("/repos/blackroad/site/statuses/" + sha);
  REQUIRE(!posts.empty());
  CHECK(posts.front().headers["authorization"] == "Bearer " + site.token());
  auto target = posts.front().json().value("target_url", "");
  CHECK(target == "http://127.0.0.1:" + std::to_string(site.edge_port()) + "/deployments/" + id);

  // The deployment page and the JSON views, from any node.
  auto page = http_get_text(site.edge_port(), "/deployments/" + id);
  CHECK(page.status == 200);
  CHECK(page.content_type.find("text/html") == 0);
  CHECK(page.body.find(sha) != std::string::npos);
  auto from_tst = http_get_json(site.nodes().http_port("tst"), "/api/deployments/" + id);
  CHECK(from_tst.status == 200);
  auto tasks = http_get_json(site.edge_port(), "/api/tasks?state=succeeded");
  CHECK(tasks.body.size() == 3);
}

TEST_CASE("a failing script gives a failure status, its log tail and an alert") {
  deploy_site site{edge_and_frontend("scripts/fail.sh")};
  site.start();
  auto sha = site.commit({{"frontend/app.js", "v2"}});
  auto d = deploy(site, sha, {"frontend/app.js"});
  REQUIRE_MESSAGE(d.value("state", "") == "failure", d.dump(2));
  auto t = task_of(d, "frontend@fe1");
  CHECK(t["state"] == "failed");
  CHECK(t["exit_code"] == 3);
  CHECK(t["reason"] == "exit code 3");
  CHECK(t.value("log_tail", "").find("error: boom") != std::string::npos);
  auto logs = http_get_json(site.edge_port(), "/api/deployments/" + d.value("id", "") + "/logs");
  REQUIRE(logs.status == 200);
  CHECK(logs.body["tasks"][0].value("log_tail", "").find("error: boom") != std::string::npos);
  REQUIRE(site.github().wait_for(
    [&](auto&) { return statuses(site.github(), sha)["blackroad/deploy"].size() == 2; }, 10s));
  for (const auto& [context, states] : statuses(site.github(), sha))
    CHECK_MESSAGE((states == strings{"pending", "failure"}), context);
  REQUIRE(site.github().wait_for([](auto& rs) {
    for (const auto& r : rs)
      if (r.path == "/alerts/hook") return true;
    return false;
  }, 10s));
  auto alert = site.github().requests("/alerts/hook").front().json();
  CHECK(alert.value("text", "").find("failed") != std::string::npos);
  CHECK(alert.value("text", "").find("exit code 3") != std::string::npos);
  CHECK(alert["blocks"].is_array());
}

TEST_CASE("a hanging script is killed at its timeout") {
  auto setup = edge_and_frontend("scripts/hang.sh");
  setup.rules[0].timeout_s = 2;
  deploy_site site{setup};
  site.start();
  auto sha = site.commit({{"frontend/app.js", "v3"}});
  auto started = steady::now();
  auto d = deploy(site, sha, {"frontend/app.js"});
  auto took = std::chrono::duration_cast<millis>(steady::now() - started).count();
  REQUIRE_MESSAGE(d.value("state", "") == "failure", d.dump(2));
  CHECK(task_of(d, "frontend@fe1")["state"] == "timed_out");
  MESSAGE("deployment with a 2 s timeout finished after " << took << " ms");
  CHECK(took < 15000);
  auto pid = std::stoi(read_file(site.out("hang.pid")));
  CHECK(wait_until([&] { return ::kill(pid, 0) != 0; }, 5s));
  std::this_thread::sleep_for(1s);
  CHECK_FALSE(fs::exists(site.out("hang.finished")));
}

TEST_CASE("bad signatures, replays, oversize bodies, malformed JSON and unknown repositories "
          "are refused and dispatch nothing") {
  auto setup = edge_and_frontend();
  setup.max_body_bytes = 64 * 1024;
  deploy_site site{setup};
  site.start();
  auto port = site.edge_port();
  auto sha = site.commit({{"frontend/app.js", "v4"}});
  auto body = push_event(zeros, sha, {"frontend/app.js"}).dump();
  auto expected_sig = "sha256=" + brd::io::hmac_sha256_hex(site.secret(), body);

  auto bad = send_webhook(port, body, "", new_delivery_id(), "push", "sha256=" + std::string(64, 'a'));
  CHECK(bad.status == 401);
  CHECK(bad.body.find(expected_sig.substr(7)) == std::string::npos);
  CHECK(send_webhook(port, body, "wrong secret", new_delivery_id()).status == 401);
  CHECK(send_webhook(port, body, "", new_delivery_id(), "push", "").status == 401);
  auto big = push_event(zeros, sha, strings(4000, "frontend/" + std::string(20, 'x'))).dump();
  REQUIRE(big.size() > 64 * 1024);
  CHECK(send_webhook(port, big, site.secret(), new_delivery_id()).status == 413);
  CHECK(send_webhook(port, "{\"ref\": \"refs/heads/main\", ", site.secret(), new_delivery_id())
          .status == 400);
  auto other = push_event(zeros, sha, {"frontend/app.js"}, "refs/heads/main", "someone/else");
  CHECK(send_webhook(port, other.dump(), site.secret(), new_delivery_id()).status == 404);
  CHECK(send_webhook(port, "{\"zen\": \"Keep it logically awesome.\"}", site.secret(),
                     new_delivery_id(), "ping")
          .status == 200);
  CHECK(send_webhook(port, body, site.secret(), new_delivery_id(), "issues").status == 202);
  std::this_thread::sleep_for(500ms);
  CHECK(deployment_count(port) == 0);

  // One delivery, sent once and then replayed, also concurrently: one deploy.
  auto delivery = new_delivery_id();
  auto first = send_webhook(port, body, site.secret(), delivery);
  CHECK(first.status == 202);
  auto replay = send_webhook(port, body, site.secret(), delivery);
  CHECK(replay.status == 200);
  CHECK(replay.doc().value("status", "") == "duplicate");
  auto burst = new_delivery_id();
  std::vector<std::future<webhook_reply>> copies;
  for (int i = 0; i < 8; ++i)
    copies.push_back(std::async(std::launch::async, [&] {
      return send_webhook(port, body, site.secret(), burst);
    }));
  int accepted = 0, duplicates = 0;
  for (auto& c : copies) {
    auto r = c.get();
    INFO("a copy got ", r.status, " ", r.body);
    accepted += r.status == 202;
    duplicates += r.status == 200 && r.doc().value("status", "") == "duplicate";
    CHECK((r.status == 202 || r.status == 200));
  }
  CHECK(accepted == 1);
  CHECK(duplicates == 7);
  auto id = first.doc().value("deployment", "");
  CHECK(wait_deployment(port, id).value("state", "") == "success");
  CHECK(wait_until([&] { return lines_of(site.out("fe1-frontend.sha")).size() == 2; }, 30s));
  std::this_thread::sleep_for(1s);
  CHECK(deployment_count(port) == 2); // the first delivery and the burst, nothing else
  CHECK(lines_of(site.out("fe1-frontend.sha")) == strings{sha, sha});
}

TEST_CASE("branch names and file paths full of shell metacharacters run nothing and escape "
          "nothing") {
  auto setup = edge_and_frontend();
  setup.branches = R"(["**"])";
  deploy_site site{setup};
  site.start();
  auto marker = "/tmp/pwned-" + std::to_string(::getpid());
  fs::remove(marker);
  auto evil_files = strings{"frontend/$(touch " + marker + ")", "frontend/;touch " + marker + ";",
                            "frontend/`touch " + marker + "`", "../../../.." + marker + "-x",
                            "frontend/../../../.." + marker + "-y"};
  auto sha = site.commit({{"frontend/$(touch " + marker + ")", "a"},
                          {"frontend/;touch " + marker + ";", "b"},
                          {"frontend/`touch " + marker + "`", "c"}});
  for (auto ref : {"refs/heads/$(touch " + marker + ")", "refs/heads/;touch " + marker + ";",
                   "refs/heads/`touch " + marker + "`", "refs/heads/../../../.." + marker}) {
    auto body = push_event(zeros, sha, evil_files, ref).dump();
    auto r = send_webhook(site.edge_port(), body, site.secret(), new_delivery_id());
    REQUIRE_MESSAGE(r.status == 202, r.body);
    auto d = wait_deployment(site.edge_port(), r.doc().value("deployment", ""));
    CHECK_MESSAGE(d.value("state", "") == "success", d.dump(2));
  }
  CHECK_FALSE(fs::exists(marker));
  // The refs reached the script as plain data, byte for byte.
  auto refs = lines_of(site.out("fe1-frontend.ref"));
  REQUIRE(refs.size() == 4);
  CHECK(refs[0] == "refs/heads/$(touch " + marker + ")");
  CHECK(refs[1] == "refs/heads/;touch " + marker + ";");
  CHECK(refs[3] == "refs/heads/../../../.." + marker);
  CHECK_FALSE(fs::exists(marker + "-x"));
  CHECK_FALSE(fs::exists(marker + "-y"));
  // Nothing was written outside the node's workspace: builds are under it.
  for (const auto& entry : fs::directory_iterator{builds_dir(site, "fe1")})
    CHECK(entry.path().filename().string().find("pwned") == std::string::npos);
}

TEST_CASE("kill -9 of a node mid-task fails its task with \"node lost\" and placement one runs "
          "it again on another node") {
  deploy_site site{{{{"edge", "edge", {"bridge"}}, {"fe1", "pi", {"frontend"}},
                     {"fe2", "pi", {"frontend"}}},
                    {{R"(["frontend/**"])", "frontend", "scripts/slow.sh", "one"}}}};
  site.start();
  auto sha = site.commit({{"frontend/app.js", "v5"}});
  auto body = push_event(zeros, sha, {"frontend/app.js"}).dump();
  auto r = send_webhook(site.edge_port(), body, site.secret(), new_delivery_id());
  REQUIRE(r.status == 202);
  std::string victim, survivor;
  REQUIRE(wait_until([&] {
    for (auto n : {"fe1", "fe2"})
      if (fs::exists(site.out(std::string{n} + ".started")))
        victim = n;
    return !victim.empty();
  }, 30s));
  survivor = victim == "fe1" ? "fe2" : "fe1";
  site.nodes().process(victim).kill9();
  auto id = r.doc().value("deployment", "");
  auto d = wait_deployment(site.edge_port(), id, 60s);
  REQUIRE_MESSAGE(d.value("state", "") == "success", d.dump(2));
  auto lost = task_of(d, "frontend@" + victim);
  CHECK(lost["state"] == "failed");
  CHECK(lost["reason"] == "node lost");
  auto again = task_of(d, "frontend@" + survivor + ".2");
  CHECK(again["state"] == "succeeded");
  CHECK(again["attempt"] == 2);
  CHECK(lines_of(site.out(survivor + "-frontend.sha")) == strings{sha});
  REQUIRE(site.github().wait_for([](auto& rs) {
    for (const auto& q : rs)
      if (q.path == "/alerts/hook" && q.body.find("went offline") != std::string::npos)
        return true;
    return false;
  }, 10s));
  REQUIRE(site.github().wait_for(
    [&](auto&) { return statuses(site.github(), sha)["blackroad/deploy"].size() == 2; }, 10s));
  CHECK(statuses(site.github(), sha)["blackroad/deploy/frontend"]
        == strings{"pending", "success"});
}

TEST_CASE("rollback re-activates the previous build, and the rolled-back sha deploys again only "
          "on an explicit retry") {
  deploy_site site{edge_and_frontend()};
  site.start();
  auto a = site.commit({{"frontend/app.js", "A"}});
  REQUIRE(deploy(site, a, {"frontend/app.js"}).value("state", "") == "success");
  auto b = site.commit({{"frontend/app.js", "B"}});
  auto db = deploy(site, b, {"frontend/app.js"});
  REQUIRE(db.value("state", "") == "success");
  auto active = builds_dir(site, "fe1") + "/active";
  CHECK(fs::read_symlink(active).filename() == b);

  auto r = http_post_json(site.edge_port(), "/api/rollback",
                          R"({"repo":"blackroad/site","role":"frontend","sha":"previous"})");
  REQUIRE_MESSAGE(r.status == 202, r.body);
  auto rb = wait_deployment(site.edge_port(), r.doc().value("deployment", ""));
  REQUIRE_MESSAGE(rb.value("state", "") == "success", rb.dump(2));
  CHECK(rb["kind"] == "rollback");
  CHECK(rb["sha"] == a);
  CHECK(rb["before"] == b);
  CHECK(fs::read_symlink(active).filename() == a);
  CHECK(lines_of(site.out("fe1-frontend.sha")) == strings{a, b}); // nothing was rebuilt

  // A push of the rolled-back sha is not deployed again automatically...
  auto again = send_webhook(site.edge_port(), push_event(a, b, {"frontend/app.js"}).dump(),
                            site.secret(), new_delivery_id());
  CHECK(again.status == 202);
  CHECK(again.doc().value("status", "") == "ignored");
  CHECK(again.doc().value("reason", "").find("rolled back") != std::string::npos);
  // ...until someone retries it.
  auto retry = http_post_json(site.edge_port(),
                              "/api/deployments/" + db.value("id", "") + "/retry", "");
  REQUIRE_MESSAGE(retry.status == 202, retry.body);
  auto dr = wait_deployment(site.edge_port(), retry.doc().value("deployment", ""));
  CHECK(dr.value("state", "") == "success");
  CHECK(dr["sha"] == b);
  CHECK(fs::read_symlink(active).filename() == b);
  CHECK(lines_of(site.out("fe1-frontend.sha")) == strings{a, b, b});
  auto bad = http_post_json(site.edge_port(), "/api/rollback",
                            R"({"repo":"blackroad/site","node":"fe1","sha":"HEAD~1"})");
  CHECK(bad.status == 400);
}

TEST_CASE("a node keeps the last 5 builds, and task logs for keep_logs_days") {
  deploy_site site{edge_and_frontend()};
  site.start();
  strings shas, ids;
  for (int i = 0; i < 7; ++i) {
    shas.push_back(site.commit({{"frontend/app.js", "build " + std::to_string(i)}}));
    auto d = deploy(site, shas.back(), {"frontend/app.js"});
    REQUIRE(d.value("state", "") == "success");
    ids.push_back(d.value("id", ""));
  }
  std::set<std::string> kept;
  for (const auto& entry : fs::directory_iterator{builds_dir(site, "fe1")})
    if (entry.is_directory() && !entry.is_symlink())
      kept.insert(entry.path().filename().string());
  CHECK(kept == std::set<std::string>(shas.begin() + 2, shas.end()));

  // Logs stay for 30 days (the default): make the first deployment's log
  // 40 days old; the node's log pruner removes it when the node starts.
  auto logs = fs::path{site.nodes().data_dir("fe1")} / "workspace" / "logs";
  auto first = logs / ids.front();
  REQUIRE(fs::is_directory(first));
  auto long_ago = fs::file_time_type::clock::now() - std::chrono::hours{24 * 40};
  for (const auto& entry : fs::directory_iterator{first})
    fs::last_write_time(entry.path(), long_ago);
  fs::last_write_time(first, long_ago);
  site.nodes().process("fe1").kill9();
  site.nodes().start("fe1");
  CHECK(wait_until([&] { return !fs::exists(first); }, 20s));
  for (auto i = ids.begin() + 1; i != ids.end(); ++i)
    CHECK(fs::is_directory(logs / *i));
}

TEST_CASE("history older than keep_history_days is deleted by the node that wrote it, "
          "except the rows of kept builds and pending deployments") {
  deploy_site site{edge_and_frontend()};
  site.start();
  auto kept_sha = site.commit({{"frontend/app.js", "kept"}});
  REQUIRE(deploy(site, kept_sha, {"frontend/app.js"}).value("state", "") == "success");

  // Rows from 100 days ago (the default keeps 90), written where their
  // owners would have written them.
  auto old_ms = brd::wall_clock_ms() - int64_t{100} * 24 * 3600 * 1000;
  auto old_id = [&](const char* tail) { return "d-" + std::to_string(old_ms) + "-" + tail; };
  auto msgpack = [](const json& j) {
    auto bytes = json::to_msgpack(j);
    return std::string{bytes.begin(), bytes.end()};
  };
  endpoint edge{"edge", "127.0.0.1", site.nodes().http_port("edge")};
  endpoint fe1{"fe1", "127.0.0.1", site.nodes().http_port("fe1")};
  auto deployment = [&](const std::string& id, const char* state) {
    return msgpack({{"v", 100}, {"id", id}, {"repo", "blackroad/site"}, {"state", state},
                    {"created_at_ms", old_ms}, {"finished_at_ms", old_ms}});
  };
  auto task = [&](const std::string& id, const char* node, const char* state,
                  const std::string& sha) {
    return msgpack({{"v", 100}, {"deploy_id", id}, {"task_id", "frontend@fe1"},
                    {"repo", "blackroad/site"}, {"sha", sha}, {"role", "frontend"},
                    {"node", node}, {"state", state}, {"queued_at_ms", old_ms},
                    {"finished_at_ms", old_ms}});
  };
  const std::string done = old_id("0000aaaa"), pending = old_id("0000bbbb"),
                    kept = old_id("0000cccc"), unassigned = old_id("0000dddd");
  const std::string alert = std::to_string(old_ms) + "/a-old";
  REQUIRE(put(edge, "deployments", done, deployment(done, "success")));
  REQUIRE(put(edge, "deployments", pending, deployment(pending, "pending")));
  REQUIRE(put(edge, "alerts", alert,
              msgpack({{"v", 100}, {"id", "a-old"}, {"kind", "deploy_failed"},
                       {"text", "an old failure"}, {"at_ms", old_ms}})));
  REQUIRE(put(edge, "tasks", unassigned + "/frontend@fe1",
              task(unassigned, "", "unassigned", kept_sha)));
  REQUIRE(put(fe1, "tasks", done + "/frontend@fe1", task(done, "fe1", "failed", kept_sha)));
  REQUIRE(put(fe1, "tasks", kept + "/frontend@fe1", task(kept, "fe1", "succeeded", kept_sha)));

  // The retention actor runs when a node starts (and hourly).
  for (const char* name : {"edge", "fe1"}) {
    site.nodes().process(name).kill9();
    site.nodes().start(name);
  }
  REQUIRE(site.nodes().wait_all_alive(30s));
  auto has = [&](const endpoint& at, const std::string& table, const std::string& key) {
    auto live = rows(at, table, key);
    return live && live->count(key) > 0;
  };
  for (const auto& at : {edge, fe1}) {
    CAPTURE(at.name);
    CHECK(wait_until([&] { return !has(at, "deployments", done); }, 20s));
    CHECK(wait_until([&] { return !has(at, "alerts", alert); }, 20s));
    CHECK(wait_until([&] { return !has(at, "tasks", done + "/frontend@fe1"); }, 20s));
    CHECK(wait_until([&] { return !has(at, "tasks", unassigned + "/frontend@fe1"); }, 20s));
    CHECK(has(at, "deployments", pending));             // still followed
    CHECK(has(at, "tasks", kept + "/frontend@fe1"));     // fe1 keeps that build
  }
  // Today's deployment is history too young to go.
  CHECK(deployment_count(site.edge_port()) >= 2);
}

TEST_CASE("a forced push routes by git's diff of before..after, not by the payload's list") {
  deploy_site site{{{{"edge", "edge", {"bridge"}}, {"fe1", "pi", {"frontend"}},
                     {"tst", "pi", {"tests"}}},
                    {{R"(["frontend/**"])", "frontend"}, {R"(["tests/**"])", "tests"}}}};
  site.start();
  auto before = site.commit({{"frontend/app.js", "one"}});
  auto after = site.commit({{"tests/a_test.py", "two"}});
  auto event = push_event(before, after, {"frontend/app.js"});
  event["forced"] = true;
  auto r = send_webhook(site.edge_port(), event.dump(), site.secret(), new_delivery_id());
  REQUIRE_MESSAGE(r.status == 202, r.body);
  auto d = wait_deployment(site.edge_port(), r.doc().value("deployment", ""));
  REQUIRE_MESSAGE(d.value("state", "") == "success", d.dump(2));
  CHECK(d["task_ids"] == json(strings{"tests@tst"}));
  CHECK(d["changed"] == json(strings{"tests/a_test.py"}));
  CHECK(lines_of(site.out("tst-tests.sha")) == strings{after});
  CHECK_FALSE(fs::exists(site.out("fe1-frontend.sha")));
}

TEST_CASE("a role without a live node gives an unassigned task, a failure and an alert") {
  deploy_site site{{{{"edge", "edge", {"bridge"}}, {"fe1", "pi", {"frontend"}},
                     {"r3d", "pi", {"render3d"}}},
                    {{R"(["frontend/**"])", "frontend"}, {R"(["*.stl"])", "render3d"}}}};
  site.nodes().start("edge");
  site.nodes().start("fe1");
  REQUIRE(site.nodes().wait_all_alive(20s));
  auto sha = site.commit({{"frontend/app.js", "x"}, {"parts/wheel.stl", "solid"}});
  auto d = deploy(site, sha, {"frontend/app.js", "parts/wheel.stl"});
  CHECK(d.value("state", "") == "failure");
  auto t = task_of(d, "render3d@unassigned");
  CHECK(t["state"] == "unassigned");
  CHECK(task_of(d, "frontend@fe1")["state"] == "succeeded");
  REQUIRE(site.github().wait_for([](auto& rs) {
    for (const auto& q : rs)
      if (q.path == "/alerts/hook" && q.body.find("render3d") != std::string::npos)
        return true;
    return false;
  }, 10s));
  REQUIRE(site.github().wait_for(
    [&](auto&) { return statuses(site.github(), sha)["blackroad/deploy"].size() == 2; }, 10s));
  auto s = statuses(site.github(), sha);
  CHECK(s["blackroad/deploy/frontend"] == strings{"pending", "success"});
  CHECK(s["blackroad/deploy/render3d"] == strings{"pending", "failure"});
  CHECK(s["blackroad/deploy"] == strings{"pending", "failure"});
}

TEST_CASE("a bridge node without its webhook secret file does not start, and says which key") {
  temp_dir dir;
  auto specs = make_specs({{"edge", "edge"}});
  specs[0].roles = {"bridge"};
  auto config = dir.write("fleet.toml",
                          fleet_toml("deploy", specs,
                                     "\n[github]\nwebhook_secret_file = \"" + dir.file("nope")
                                       + "\"\n"));
  auto r = run_brnode({"--config", config, "--name", "edge", "--data-dir", dir.file("data")});
  CHECK(r.exit_code == 78);
  CHECK(r.output.find("github.webhook_secret_file") != std::string::npos);
  CHECK(r.output.find(dir.file("nope")) != std::string::npos);
}

TEST_CASE("a bridge node without a webhook secret in its config starts and refuses webhooks") {
  auto specs = make_specs({{"edge", "edge"}});
  specs[0].roles = {"bridge"};
  fleet f{"deploy", specs};
  f.start("edge");
  REQUIRE(f.wait_all_alive(20s));
  auto body = push_event(zeros, std::string(40, 'a'), {"frontend/app.js"}).dump();
  auto r = send_webhook(f.http_port("edge"), body, "", new_delivery_id());
  CHECK(r.status == 503);
  CHECK(r.body.find("webhook_secret_file") != std::string::npos);
  CHECK(line_with(f.process("edge").log_text(), "webhooks are off") != "");
}

TEST_CASE("an edge node restarted mid-deploy follows its pending deployment to the end") {
  deploy_site site{edge_and_frontend("scripts/slow.sh")};
  site.start();
  auto sha = site.commit({{"frontend/app.js", "v6"}});
  auto body = push_event(zeros, sha, {"frontend/app.js"}).dump();
  auto delivery = new_delivery_id();
  auto r = send_webhook(site.edge_port(), body, site.secret(), delivery);
  REQUIRE(r.status == 202);
  // A push no rule takes starts nothing; its delivery id is kept all the same.
  auto docs_body = push_event(zeros, sha, {"docs/readme.md"}).dump();
  auto docs_delivery = new_delivery_id();
  auto ignored = send_webhook(site.edge_port(), docs_body, site.secret(), docs_delivery);
  REQUIRE_MESSAGE(ignored.status == 202, ignored.body);
  CHECK(ignored.doc().value("status", "") == "ignored");
  REQUIRE(wait_until([&] { return fs::exists(site.out("fe1.started")); }, 30s));
  site.nodes().process("edge").kill9();
  site.nodes().start("edge");
  REQUIRE(site.nodes().wait_all_alive(30s));
  // GitHub redelivering either webhook after the restart deploys nothing new.
  for (const auto& [replayed, id] : {std::pair{body, delivery}, std::pair{docs_body, docs_delivery}}) {
    auto again = send_webhook(site.edge_port(), replayed, site.secret(), id);
    CHECK_MESSAGE(again.status == 200, again.body);
    CHECK(again.doc().value("status", "") == "duplicate");
  }
  auto d = wait_deployment(site.edge_port(), r.doc().value("deployment", ""), 60s);
  CHECK_MESSAGE(d.value("state", "") == "success", d.dump(2));
  CHECK(d.value("delivery", "") == delivery);
  CHECK(deployment_count(site.edge_port()) == 1);
  CHECK(task_of(d, "frontend@fe1")["state"] == "succeeded");
  REQUIRE(site.github().wait_for(
    [&](auto&) { return statuses(site.github(), sha)["blackroad/deploy"].size() == 2; }, 20s));
  CHECK(statuses(site.github(), sha)["blackroad/deploy"] == strings{"pending", "success"});
}

TEST_CASE("a deployment whose hand-over was lost with both nodes is handed over again after "
          "their restart") {
  deploy_site site{edge_and_frontend()};
  site.start();
  auto sha = site.commit({{"frontend/app.js", "v9"}});
  auto& fe1 = site.nodes().process("fe1");
  // fe1 is frozen, so the hand-over waits in its socket; both nodes are then
  // killed before the edge notices anything (phi takes ~1 s): no task row
  // and no verdict anywhere, only the deployment record.
  REQUIRE(::kill(fe1.pid(), SIGSTOP) == 0);
  auto r = send_webhook(site.edge_port(), push_event(zeros, sha, {"frontend/app.js"}).dump(),
                        site.secret(), new_delivery_id());
  REQUIRE(r.status == 202);
  auto id = r.doc().value("deployment", "");
  std::this_thread::sleep_for(200ms);
  site.nodes().process("edge").kill9();
  fe1.kill9();
  site.nodes().start("fe1");
  site.nodes().start("edge");
  auto d = wait_deployment(site.edge_port(), id, 60s);
  CHECK_MESSAGE(d.value("state", "") == "success", d.dump(2));
  CHECK(task_of(d, "frontend@fe1")["state"] == "succeeded");
  CHECK(site.nodes().process("edge").log_text().find("handing it over again")
        != std::string::npos);
}

namespace {

// The rows of `table` under `prefix` as node `port` stores them (with origin).
json state_rows(uint16_t port, const std::string& table, const std::string& prefix) {
  auto r = http_get_json(port, "/api/state/" + table + "?prefix=" + prefix);
  return r.body.is_array() ? r.body : json::array();
}

// The status bodies posted for `sha` in `context`, in arrival order.
std::vector<json> status_bodies(const recorder& github, const std::string& sha,
                                const std::string& context) {
  std::vector<json> out;
  for (const auto& q : github.requests())
    if (q.path.find("/statuses/" + sha) != std::string::npos) {
      auto doc = json::parse(q.body, nullptr, false);
      if (doc.is_object() && doc.value("context", "") == context)
        out.push_back(doc);
    }
  return out;
}

// The overall status of `sha`, superseded by `by`: pending, then success
// described "superseded by <by, 12 digits>".
void check_superseded_status(deploy_site& site, const std::string& sha, const std::string& by) {
  REQUIRE(site.github().wait_for([&](auto&) {
    return status_bodies(site.github(), sha, "blackroad/deploy").size() == 2;
  }, 10s));
  auto posted = status_bodies(site.github(), sha, "blackroad/deploy");
  CHECK(posted.front()["state"] == "pending");
  CHECK(posted.back()["state"] == "success");
  CHECK(posted.back()["description"] == "superseded by " + by.substr(0, 12));
}

// A deployment whose only task runs scripts/hang.sh on fe1, once the
// script and its sleep both run: the deployment id and the script's group.
struct hanging_task {
  std::string id;
  int pgid = 0;
};

hanging_task start_hanging_task(deploy_site& site, const std::string& version) {
  auto sha = site.commit({{"frontend/app.js", version}});
  auto r = send_webhook(site.edge_port(), push_event(zeros, sha, {"frontend/app.js"}).dump(),
                        site.secret(), new_delivery_id());
  REQUIRE(r.status == 202);
  hanging_task out{r.doc().value("deployment", "")};
  REQUIRE(wait_until([&] {
    std::ifstream{site.out("hang.pid")} >> out.pgid;
    return out.pgid > 0 && brd::io::live_group_members(out.pgid) == 2; // sh and its sleep
  }, 30s));
  return out;
}

} // namespace

TEST_CASE("a node killed with kill -9 takes its script along, and after its restart kills the "
          "script's group and fails the task with \"node lost\"") {
  deploy_site site{edge_and_frontend("scripts/hang.sh")};
  site.start();
  auto [id, pgid] = start_hanging_task(site, "v7");
  auto group_members = [pgid = pgid] { return brd::io::live_group_members(pgid); };
  site.nodes().process("fe1").kill9();
  // The script (the group's leader) dies with its node; its sleep is left.
  CHECK(wait_until([&] { return ::kill(pgid, 0) != 0; }, 5s));
  auto d = wait_deployment(site.edge_port(), id, 30s);
  CHECK_MESSAGE(d.value("state", "") == "failure", d.dump(2));
  CHECK(task_of(d, "frontend@fe1")["reason"] == "node lost");
  // /api/tasks says so too, though fe1's own row still says running.
  auto tasks = http_get_json(site.edge_port(), "/api/tasks?node=fe1").body;
  REQUIRE(tasks.size() == 1);
  CHECK(tasks[0]["state"] == "failed");
  CHECK(tasks[0]["reason"] == "node lost");
  CHECK(group_members() == 1); // until the node is back
  site.nodes().start("fe1");
  CHECK(wait_until([&] { return group_members() == 0; }, 20s));
  // The node's own row says so too, written by the node itself.
  json row;
  REQUIRE(wait_until([&] {
    auto rows = state_rows(site.edge_port(), "tasks", id + "/");
    row = rows.empty() ? json{} : rows[0];
    return row.is_object() && row["value"].value("state", "") == "failed";
  }, 20s));
  CHECK(row["value"]["reason"] == "node lost");
  CHECK(row["origin"] == "fe1");
  CHECK_FALSE(fs::exists(site.out("hang.finished")));
}

TEST_CASE("a node stopped with SIGTERM mid-task ends its script's group and exits at once") {
  deploy_site site{edge_and_frontend("scripts/hang.sh")};
  site.start();
  auto [id, pgid] = start_hanging_task(site, "v8");
  auto& fe1 = site.nodes().process("fe1");
  auto stopped = steady::now();
  fe1.term();
  // The script (timeout 60 s) is not waited for: SIGTERM ends its group.
  CHECK(fe1.wait_exit(8s) == std::optional<int>{0});
  MESSAGE("fe1 exited " << std::chrono::duration_cast<millis>(steady::now() - stopped).count()
                        << " ms after SIGTERM");
  CHECK(brd::io::live_group_members(pgid) == 0);
  auto log = fe1.log_text();
  CHECK(log.find("ending 1 running script") != std::string::npos);
  CHECK(log.find("teardown stuck") == std::string::npos);
  auto d = wait_deployment(site.edge_port(), id, 30s);
  CHECK_MESSAGE(d.value("state", "") == "failure", d.dump(2));
  CHECK(task_of(d, "frontend@fe1")["reason"] == "node lost");
  CHECK_FALSE(fs::exists(site.out("hang.finished")));
}

TEST_CASE("task rows are written only by the node that runs them, from queued on") {
  deploy_site site{{{{"edge", "edge", {"bridge"}}, {"fe1", "pi", {"frontend"}},
                     {"api1", "pi", {"api"}}},
                    {{R"(["frontend/**"])", "frontend"}, {R"(["api/**"])", "api"}}}};
  site.start();
  auto sha = site.commit({{"frontend/app.js", "v8"}, {"api/main.go", "v8"}});
  auto d = deploy(site, sha, {"frontend/app.js", "api/main.go"});
  REQUIRE_MESSAGE(d.value("state", "") == "success", d.dump(2));
  auto id = d.value("id", "");
  for (auto port : {site.edge_port(), site.nodes().http_port("fe1")}) {
    auto rows = state_rows(port, "tasks", id + "/");
    REQUIRE(rows.size() == 2);
    for (const auto& row : rows) {
      CHECK(row["origin"] == row["value"]["node"]);
      CHECK(row["value"]["state"] == "succeeded");
    }
  }
}

TEST_CASE("a newer push supersedes the task still queued behind a running one: success, "
          "\"superseded by <sha>\"") {
  deploy_site site{edge_and_frontend("scripts/slow.sh")};
  site.start();
  std::vector<std::string> shas, ids;
  for (auto v : {"a", "b", "c"}) {
    shas.push_back(site.commit({{"frontend/app.js", v}}));
    auto r = send_webhook(site.edge_port(),
                          push_event(zeros, shas.back(), {"frontend/app.js"}).dump(),
                          site.secret(), new_delivery_id());
    REQUIRE(r.status == 202);
    ids.push_back(r.doc().value("deployment", ""));
    if (shas.size() == 1) // the first one runs before the others arrive
      REQUIRE(wait_until([&] { return fs::exists(site.out("fe1.started")); }, 30s));
  }
  auto first = wait_deployment(site.edge_port(), ids[0], 60s);
  auto second = wait_deployment(site.edge_port(), ids[1], 60s);
  auto third = wait_deployment(site.edge_port(), ids[2], 60s);
  for (const auto& d : {first, second, third})
    CHECK_MESSAGE(d.value("state", "") == "success", d.dump(2));
  auto skipped = task_of(second, "frontend@fe1");
  CHECK(skipped["state"] == "superseded");
  CHECK(skipped["reason"] == "superseded by " + shas[2].substr(0, 12) + " (" + ids[2] + ")");
  CHECK(skipped["started_at_ms"] == 0);
  // The first and the third ran, the second never did.
  CHECK(lines_of(site.out("fe1-frontend.sha")) == strings{shas[0], shas[2]});
  check_superseded_status(site, shas[1], shas[2]);
  // Every deployment's hand-over is sampled, also one that ended (its task
  // superseded) before its node's acknowledgement came back.
  auto handovers = find_metrics(parse_metrics(http_get_text(site.edge_port(), "/metrics").body),
                                "brnode_deploy_handover_seconds_count");
  REQUIRE(handovers.size() == 1);
  CHECK(handovers[0].value == 3);
}

TEST_CASE("a newer push supersedes a task still waiting on the edge to be sent: it never "
          "reaches its node") {
  deploy_site site{edge_and_frontend()};
  site.start();
  std::vector<std::string> shas, ids;
  for (auto v : {"a", "b", "c", "d"})
    shas.push_back(site.commit({{"frontend/app.js", v}}));
  auto push = [&](const std::string& sha) {
    auto r = send_webhook(site.edge_port(), push_event(zeros, sha, {"frontend/app.js"}).dump(),
                          site.secret(), new_delivery_id());
    REQUIRE(r.status == 202);
    ids.push_back(r.doc().value("deployment", ""));
  };
  // The first deployment makes the edge look up fe1's deployer, so the next
  // hand-over goes out at once.
  push(shas[0]);
  REQUIRE(wait_deployment(site.edge_port(), ids[0], 60s).value("state", "") == "success");
  // fe1 is frozen, so the second hand-over waits unanswered in its socket and
  // the edge keeps fe1's next tasks queued: the fourth push's task supersedes
  // the third's there. Three webhooks take well under the ~1 s that phi
  // needs to call fe1 down.
  auto& fe1 = site.nodes().process("fe1");
  REQUIRE(::kill(fe1.pid(), SIGSTOP) == 0);
  for (size_t i = 1; i < shas.size(); ++i)
    push(shas[i]);
  REQUIRE(::kill(fe1.pid(), SIGCONT) == 0);
  std::vector<json> done;
  for (const auto& id : ids) {
    done.push_back(wait_deployment(site.edge_port(), id, 60s));
    CHECK_MESSAGE(done.back().value("state", "") == "success", done.back().dump(2));
  }
  auto skipped = task_of(done[2], "frontend@fe1");
  CHECK(skipped["state"] == "superseded");
  CHECK(skipped["reason"] == "superseded by " + shas[3].substr(0, 12) + " (" + ids[3] + ")");
  CHECK(skipped["sha"] == shas[2]);
  CHECK(skipped["node"] == "fe1");
  CHECK(skipped["role"] == "frontend");
  // /api/tasks lists it as its deployment shows it.
  auto listed = http_get_json(site.edge_port(), "/api/tasks?state=superseded&node=fe1");
  REQUIRE(listed.status == 200);
  REQUIRE(listed.body.is_array());
  CHECK(listed.body.size() == 1);
  for (const auto& t : listed.body) {
    CHECK(t["deploy_id"] == ids[2]);
    CHECK(t["task_id"] == "frontend@fe1");
    CHECK(t["reason"] == skipped["reason"]);
  }
  // fe1 never got it: no row of it anywhere, and only the others ran.
  CHECK(state_rows(site.nodes().http_port("fe1"), "tasks", ids[2] + "/").empty());
  CHECK(state_rows(site.edge_port(), "tasks", ids[2] + "/").empty());
  CHECK(lines_of(site.out("fe1-frontend.sha")) == strings{shas[0], shas[1], shas[3]});
  check_superseded_status(site, shas[2], shas[3]);
  auto metrics = parse_metrics(http_get_text(site.edge_port(), "/metrics").body);
  auto unsent = find_metrics(metrics, "brnode_deploy_superseded_unsent_total");
  REQUIRE(unsent.size() == 1);
  CHECK(unsent[0].value == 1);
  // The others were taken by fe1: one hand-over sample each.
  auto handovers = find_metrics(metrics, "brnode_deploy_handover_seconds_count");
  REQUIRE(handovers.size() == 1);
  CHECK(handovers[0].value == 3);
}
