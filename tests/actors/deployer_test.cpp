// The deployer in one process: real git repositories in a temporary
// directory, real scripts, and a recorder actor standing in for the state
// actor (it keeps every put, in order).
#include "actors/deployer.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <doctest/doctest.h>

#include "io/deploy_records.hpp"
#include "io/metrics.hpp"
#include "io/process.hpp"
#include "io/workspace.hpp"
#include "runtime/errors.hpp"
#include "runtime/routing.hpp"
#include "runtime/type_registry.hpp"
#include "runtime/wall_clock.hpp"

#include "../support/git.hpp"
#include "../support/temp_dir.hpp"

namespace {

using brd_test::git;
using brd_test::write_file;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using strings = std::vector<std::string>;
using brd::io::task_record;

using brd_test::temp_dir;

std::string read_file(const fs::path& p) {
  std::ifstream in{p};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The role script of the test repositories. It leaves evidence of each run
// in runs.txt at the workspace root (four levels above the build) and its
// environment in env.txt in the build; files in the commit make it fail,
// hang or take its time.
const std::string build_script = R"sh(#!/bin/sh
runs=../../../../runs.txt
echo "start $BLACKROAD_DEPLOY_ID $(date +%s%N)" >> "$runs"
env | grep '^BLACKROAD_' | sort > env.txt
nice > nice.txt
echo "building $BLACKROAD_REPO at $BLACKROAD_SHA"
if [ -f fail ]; then echo "building went wrong" >&2; exit 3; fi
if [ -f hang ]; then sleep 100; fi
if [ -f slow ]; then sleep "$(cat slow)"; fi
echo "end $BLACKROAD_DEPLOY_ID $(date +%s%N)" >> "$runs"
echo built
)sh";

// What the recorder saw: every (table, key, value) put, in order.
struct recorded {
  struct put {
    std::string table, key, value;
  };
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<put> puts;
};

// Stands in for the state actor: records puts, and answers get and scan
// from them (the newest put per key wins).
caf::behavior recorder(caf::event_based_actor*, std::shared_ptr<recorded> out) {
  auto rows = [out](const std::string& table, const std::string& prefix, bool exact) {
    std::lock_guard<std::mutex> guard{out->mutex};
    std::map<std::string, brd::state_row> latest;
    for (const auto& p : out->puts)
      if (p.table == table && (exact ? p.key == prefix : p.key.rfind(prefix, 0) == 0)) {
        brd::state_row row;
        row.table = p.table;
        row.key = p.key;
        row.value = p.value;
        latest[p.key] = row;
      }
    std::vector<brd::state_row> v;
    for (auto& [key, row] : latest)
      v.push_back(std::move(row));
    return v;
  };
  return {
    [=](brd::put_atom, const std::string& table, const std::string& key,
        const std::string& value) -> brd::write_ack {
      std::lock_guard<std::mutex> guard{out->mutex};
      out->puts.push_back({table, key, value});
      out->changed.notify_all();
      return {};
    },
    [=](brd::get_atom, const std::string& table, const std::string& key) {
      return rows(table, key, true);
    },
    [=](brd::scan_atom, const std::string& table, const std::string& prefix, uint64_t) {
      return rows(table, prefix, false);
    },
  };
}

bool is_final(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "timed_out"
         || state == "superseded";
}

struct fixture {
  temp_dir tmp;
  fs::path work = tmp.path / "work";
  fs::path data_dir = tmp.path / "data";
  fs::path workspace = data_dir / "workspace";
  brd::system_config cfg{"test", false};
  caf::actor_system sys{cfg};
  std::shared_ptr<recorded> seen = std::make_shared<recorded>();
  caf::actor sink = sys.spawn(recorder, seen);
  std::shared_ptr<brd::io::metrics_registry> metrics
    = std::make_shared<brd::io::metrics_registry>();
  brd::deployer_options options;
  brd::deployer_actor deployer;
  int next_task = 0;
  int64_t born_ms = brd::wall_clock_ms();

  // With `supersede` false, the fleet config's rule for role "web" says
  // every commit runs (route_rule::supersede).
  explicit fixture(size_t max_parallel = 2, std::chrono::seconds long_build = 300s,
                   bool supersede = true) {
    fs::create_directories(work);
    git(work, {"init", "-q"});
    write_file(work / "scripts" / "build.sh", build_script);
    fs::permissions(work / "scripts" / "build.sh", fs::perms::owner_all, fs::perm_options::add);
    auto& opts = options;
    opts.fleet.cluster = "test";
    opts.fleet.deploy.settings.max_parallel = max_parallel;
    opts.fleet.deploy.alerts.long_build = long_build;
    if (!supersede) {
      brd::repo_config repo;
      repo.name = "blackroad/*";
      brd::route_rule web;
      web.paths = {"**"};
      web.role = "web";
      web.script = {"scripts/build.sh"};
      web.supersede = false;
      repo.rules.push_back(web);
      opts.fleet.deploy.repos.push_back(repo);
    }
    opts.self = "pi-1";
    opts.data_dir = data_dir.string();
    opts.state = sink;
    opts.metrics = metrics;
    deployer = brd::spawn_deployer(sys, opts);
  }

  ~fixture() {
    caf::anon_send_exit(deployer, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(sink, caf::exit_reason::user_shutdown);
  }

  // The node restarts: a new deployer on the same data and store.
  void restart() {
    caf::scoped_actor self{sys};
    self->monitor(deployer);
    self->send_exit(deployer, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {});
    deployer = brd::spawn_deployer(sys, options);
  }

  // Commits the work tree with `files` set ("" removes one) and pushes it to
  // the bare remote of `repo`; returns the commit id.
  std::string commit(const std::vector<std::pair<std::string, std::string>>& files = {},
                     const std::string& repo = "blackroad/site") {
    for (const auto& [name, text] : files) {
      if (text.empty())
        fs::remove(work / name);
      else
        write_file(work / name, text);
    }
    git(work, {"add", "-A"});
    git(work, {"commit", "-q", "--allow-empty", "-m", "change " + std::to_string(next_task)});
    auto sha = git(work, {"rev-parse", "HEAD"});
    auto remote = remote_of(repo);
    if (!fs::exists(remote))
      git(tmp.path, {"init", "-q", "--bare", remote});
    git(work, {"push", "-q", "--force", remote, "HEAD:refs/heads/main"});
    return sha;
  }

  std::string remote_of(const std::string& repo) const {
    return (tmp.path / "remotes" / (repo + ".git")).string();
  }

  // Shaped like real ids ("d-<13-digit ms>-<hex>"), made in this test's
  // time, so that they sort by age and a restarted deployer reads their rows
  // by time bucket; n counts milliseconds after the fixture was made.
  std::string deploy_id(int n) const {
    char id[32];
    std::snprintf(id, sizeof id, "d-%013lld-0000", static_cast<long long>(born_ms + n));
    return id;
  }

  brd::deploy_task task(const std::string& sha, const std::string& repo = "blackroad/site") {
    brd::deploy_task t;
    t.deploy_id = deploy_id(++next_task);
    t.task_id = "web@pi-1";
    t.repo = repo;
    t.remote = remote_of(repo);
    t.sha = sha;
    t.ref = "refs/heads/main";
    t.role = "web";
    t.script = {"scripts/build.sh", "--prod"};
    t.timeout_s = 30;
    return t;
  }

  brd::deploy_task rollback(const std::string& sha) {
    auto t = task(sha);
    t.kind = "rollback";
    t.script.clear();
    t.remote.clear();
    return t;
  }

  // The deployer's reply: the task id, or the error's sentence after "error: ".
  std::string send(const brd::deploy_task& t) {
    caf::scoped_actor self{sys};
    std::string reply;
    self->request(deployer, 5s, brd::deploy_atom::value, t)
      .receive([&](std::string& id) { reply = id; },
               [&](caf::error& err) { reply = "error: " + brd::describe(err); });
    return reply;
  }

  // Three deploys of the same role sent at once: the first runs for a
  // second, so the second and third wait behind it. Returns their tasks.
  std::vector<brd::deploy_task> send_three() {
    std::vector<brd::deploy_task> out;
    for (const auto& files : std::vector<std::vector<std::pair<std::string, std::string>>>{
           {{"slow", "1"}}, {{"slow", ""}}, {}})
      out.push_back(task(commit(files)));
    for (const auto& t : out)
      REQUIRE(send(t) == t.task_id);
    return out;
  }

  // Sends the task and waits for its end.
  task_record run(const brd::deploy_task& t) {
    REQUIRE(send(t) == t.task_id);
    return wait_final(t);
  }

  std::vector<task_record> records_of(const brd::deploy_task& t) {
    std::lock_guard<std::mutex> guard{seen->mutex};
    return decode_tasks(t);
  }

  std::vector<task_record> decode_tasks(const brd::deploy_task& t) {
    std::vector<task_record> out;
    for (const auto& p : seen->puts)
      if (p.table == "tasks" && p.key == t.deploy_id + "/" + t.task_id) {
        auto r = brd::io::decode<task_record>(p.value);
        REQUIRE(r);
        out.push_back(*r);
      }
    return out;
  }

  // Waits for the task's final record and returns it.
  task_record wait_final(const brd::deploy_task& t, std::chrono::seconds limit = 30s) {
    std::unique_lock<std::mutex> guard{seen->mutex};
    task_record last;
    bool done = seen->changed.wait_for(guard, limit, [&] {
      auto rs = decode_tasks(t);
      if (rs.empty() || !is_final(rs.back().state))
        return false;
      last = rs.back();
      return true;
    });
    REQUIRE_MESSAGE(done, "task " << t.deploy_id << " did not finish");
    return last;
  }

  brd::io::workspace ws() const { return brd::io::workspace{workspace.string()}; }

  std::string active(const std::string& repo = "blackroad/site") const {
    auto sha = ws().active_sha(repo);
    REQUIRE(sha);
    return *sha;
  }

  fs::path build(const std::string& sha, const std::string& repo = "blackroad/site") const {
    return *ws().build_dir(repo, sha);
  }

  // runs.txt as (event, task deploy id, ns) in order.
  struct run_event {
    std::string what, deploy_id;
    int64_t ns = 0;
  };
  std::vector<run_event> runs() const {
    std::vector<run_event> out;
    std::istringstream in{read_file(workspace / "runs.txt")};
    std::string what, task_id;
    int64_t ns = 0;
    while (in >> what >> task_id >> ns)
      out.push_back({what, task_id, ns});
    return out;
  }

  double counted(const std::string& state) {
    return metrics->counter("brnode_deploy_tasks_total", "", {{"state", state}}).value();
  }
};

strings states(const std::vector<task_record>& rs) {
  strings out;
  for (const auto& r : rs)
    out.push_back(r.state);
  return out;
}

// Processes of this test whose working directory is inside `dir`.
int processes_inside(const fs::path& dir) {
  int count = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator{"/proc", ec}) {
    auto cwd = fs::read_symlink(entry.path() / "cwd", ec);
    if (!ec && cwd.string().starts_with(dir.string()))
      ++count;
  }
  return count;
}

} // namespace

TEST_CASE("a deploy fetches, builds at the pushed sha with the BLACKROAD_ environment and "
          "records queued, running, succeeded") {
  fixture f;
  auto sha = f.commit();
  auto t = f.task(sha);
  CHECK(f.send(t) == "web@pi-1");
  auto final = f.wait_final(t);
  CHECK(states(f.records_of(t)) == strings{"queued", "running", "succeeded"});
  CHECK(final.sha == sha);
  CHECK(final.node == "pi-1");
  CHECK(final.repo == "blackroad/site");
  CHECK(final.role == "web");
  CHECK(final.exit_code == 0);
  CHECK(final.reason.empty());
  CHECK(final.started_at_ms > 0);
  CHECK(final.queued_at_ms <= final.started_at_ms);
  CHECK(final.finished_at_ms >= final.started_at_ms);
  CHECK(final.log_tail.find("built") != std::string::npos);
  CHECK(read_file(final.log_path).find("building blackroad/site at " + sha) != std::string::npos);
  CHECK(final.log_path == (f.workspace / "logs" / t.deploy_id / "web@pi-1.log").string());
  CHECK(read_file(f.build(sha) / "env.txt")
        == "BLACKROAD_DEPLOY_ID=" + t.deploy_id + "\nBLACKROAD_NODE=pi-1\n"
             "BLACKROAD_REF=refs/heads/main\nBLACKROAD_REPO=blackroad/site\n"
             "BLACKROAD_ROLE=web\nBLACKROAD_SHA=" + sha + "\nBLACKROAD_TASK_ID=web@pi-1\n");
  CHECK(f.active() == sha);
  // [deploy] nice (10 by default): the script runs below the node's priority.
  auto ours = getpriority(PRIO_PROCESS, 0);
  CHECK(read_file(f.build(sha) / "nice.txt") == std::to_string(std::max(ours, 10)) + "\n");
  CHECK(getpriority(PRIO_PROCESS, 0) == ours); // the test's thread kept its own
  CHECK(fs::is_directory(f.workspace / "repos" / "blackroad" / "site" / "objects"));
  CHECK(f.counted("succeeded") == 1);
  CHECK(f.metrics->gauge("brnode_deploy_running", "").value() == 0);
}

TEST_CASE("malformed tasks are refused with a reason and record nothing") {
  fixture f;
  auto sha = std::string(40, 'a');
  std::vector<std::pair<brd::deploy_task, std::string>> cases;
  auto add = [&](std::string why, auto change) {
    auto t = f.task(sha);
    change(t);
    cases.emplace_back(t, why);
  };
  add("not 40 lowercase hex", [](auto& t) { t.sha = "main"; });
  add("not 40 lowercase hex", [](auto& t) { t.sha = std::string(40, 'A'); });
  add("no script", [](auto& t) { t.script.clear(); });
  add("not owner/name", [](auto& t) { t.repo = "../x"; });
  add("not owner/name", [](auto& t) { t.repo = "/abs"; });
  add("not owner/name", [](auto& t) { t.repo = "a/b/c"; });
  add("not owner/name", [](auto& t) { t.repo = "o/$(touch x)"; });
  add("unknown task kind", [](auto& t) { t.kind = "explode"; });
  add("inside the checkout", [](auto& t) { t.script = {"/bin/sh", "-c", "true"}; });
  add("inside the checkout", [](auto& t) { t.script = {"../../../bin/sh"}; });
  add("ids must be", [](auto& t) { t.task_id = "../../etc/passwd"; });
  add("no remote", [](auto& t) { t.remote.clear(); });
  add("timeout_s", [](auto& t) { t.timeout_s = 0; });
  add("control characters", [](auto& t) { t.ref = "refs/heads/a\nINFO forged log line"; });
  for (const auto& [t, why] : cases) {
    auto reply = f.send(t);
    INFO(reply);
    CHECK(reply.starts_with("error: "));
    CHECK(reply.find(why) != std::string::npos);
  }
  std::this_thread::sleep_for(100ms);
  std::lock_guard<std::mutex> guard{f.seen->mutex};
  CHECK(f.seen->puts.empty());
}

TEST_CASE("a batch of tasks is taken in order and answered per task") {
  fixture f;
  auto first = f.commit({{"slow", "1"}});
  auto second = f.commit({{"slow", ""}});
  auto t1 = f.task(first), t2 = f.task(second), bad = f.task(first);
  bad.sha = "main";
  std::vector<std::string> replies;
  {
    caf::scoped_actor self{f.sys};
    self->request(f.deployer, 5s, brd::deploy_atom::value,
                  std::vector<brd::deploy_task>{t1, bad, t2, t1})
      .receive([&](std::vector<std::string>& r) { replies = std::move(r); },
               [&](caf::error& err) { FAIL("the batch failed: " << brd::describe(err)); });
  }
  REQUIRE(replies.size() == 4);
  CHECK(replies[0] == "");
  CHECK(replies[1].find("not 40 lowercase hex") != std::string::npos);
  CHECK(replies[2] == "");
  CHECK(replies[3] == ""); // delivered twice: taken once
  auto r1 = f.wait_final(t1);
  auto r2 = f.wait_final(t2);
  CHECK(r1.state == "succeeded");
  CHECK(r2.state == "succeeded");
  CHECK(r2.started_at_ms >= r1.finished_at_ms); // in the batch's order
  CHECK(f.runs().size() == 4);                  // a start and an end each, t1 once
  CHECK(f.active() == second);
  // An empty batch is answered at once.
  caf::scoped_actor self{f.sys};
  self->request(f.deployer, 5s, brd::deploy_atom::value, std::vector<brd::deploy_task>{})
    .receive([&](std::vector<std::string>& r) { CHECK(r.empty()); },
             [&](caf::error& err) { FAIL(brd::describe(err)); });
}

TEST_CASE("a failing script ends failed with its exit code and log tail; the active build stays") {
  fixture f;
  auto good = f.commit();
  REQUIRE(f.run(f.task(good)).state == "succeeded");
  auto bad = f.commit({{"fail", "yes"}});
  auto final = f.run(f.task(bad));
  CHECK(final.state == "failed");
  CHECK(final.reason == "exit code 3");
  CHECK(final.exit_code == 3);
  CHECK(final.log_tail.find("building went wrong") != std::string::npos);
  CHECK(f.active() == good);
  CHECK_FALSE(fs::exists(f.build(bad)));
  CHECK_FALSE(f.ws().is_kept("blackroad/site", bad));
  CHECK(f.counted("failed") == 1);
}

TEST_CASE("a hanging script is killed at its timeout and leaves no process behind") {
  fixture f;
  auto sha = f.commit({{"hang", "yes"}});
  auto t = f.task(sha);
  t.timeout_s = 1;
  auto began = std::chrono::steady_clock::now();
  auto final = f.run(t);
  auto took = std::chrono::steady_clock::now() - began;
  CHECK(final.state == "timed_out");
  CHECK(final.reason == "timed out after 1 s");
  CHECK(took < 5s);
  CHECK(processes_inside(f.tmp.path) == 0);
  CHECK(f.active().empty());
  CHECK(f.counted("timed_out") == 1);
}

TEST_CASE("tasks of one repository run in arrival order, other repositories in parallel") {
  fixture f;
  auto first = f.commit({{"slow", "1"}});
  auto second = f.commit({{"slow", ""}});
  auto other = f.commit({{"slow", "1"}}, "blackroad/api");
  auto t1 = f.task(first), t2 = f.task(second), t3 = f.task(other, "blackroad/api");
  for (const auto& t : {t1, t2, t3})
    REQUIRE(f.send(t) == t.task_id);
  auto r2 = f.wait_final(t2);
  auto r1 = f.wait_final(t1);
  auto r3 = f.wait_final(t3);
  for (const auto& r : {r1, r2, r3})
    CHECK(r.state == "succeeded");
  // The second task of the site waited for the first ...
  CHECK(r2.started_at_ms >= r1.finished_at_ms);
  CHECK(states(f.records_of(t2)) == strings{"queued", "running", "succeeded"});
  // ... while the api ran alongside the first.
  CHECK(r3.started_at_ms < r1.finished_at_ms);
  CHECK(r1.started_at_ms < r3.finished_at_ms);
  std::map<std::string, std::pair<int64_t, int64_t>> spans; // by deploy id
  for (const auto& e : f.runs())
    (e.what == "start" ? spans[e.deploy_id].first : spans[e.deploy_id].second) = e.ns;
  REQUIRE(spans.size() == 3);
  CHECK(spans[t2.deploy_id].first >= spans[t1.deploy_id].second);
  CHECK(spans[t3.deploy_id].first < spans[t1.deploy_id].second);
  CHECK(f.active() == second);
  CHECK(f.active("blackroad/api") == other);
}

TEST_CASE("a newer deploy of the same role supersedes the one still waiting, which never runs") {
  fixture f;
  auto tasks = f.send_three();
  const auto &t1 = tasks[0], &t2 = tasks[1], &t3 = tasks[2];
  auto third = t3.sha;
  auto r2 = f.wait_final(t2);
  CHECK(r2.state == "superseded");
  CHECK(r2.reason == "superseded by " + third.substr(0, 12) + " (" + t3.deploy_id + ")");
  CHECK(r2.started_at_ms == 0);
  // Never running; usually superseded before its queued row was due.
  auto rows = states(f.records_of(t2));
  CHECK(rows.back() == "superseded");
  CHECK(std::count(rows.begin(), rows.end(), "running") == 0);
  CHECK(rows.size() <= 2);
  CHECK(f.wait_final(t1).state == "succeeded");
  CHECK(f.wait_final(t3).state == "succeeded");
  CHECK(states(f.records_of(t3)) == strings{"queued", "running", "succeeded"});
  CHECK(f.active() == third);
  CHECK(f.counted("superseded") == 1);
  for (const auto& e : f.runs())
    CHECK(e.deploy_id != t2.deploy_id);
}

TEST_CASE("a deploy older than one taken before arrives late: superseded by it, never run") {
  fixture f;
  auto older_sha = f.commit({});
  auto newer_sha = f.commit({});
  auto older = f.task(older_sha);
  auto newer = f.task(newer_sha);
  // The newer deployment is taken first (the older one's hand-over was lost
  // with a restarted edge, which hands it over again later).
  REQUIRE(f.send(newer) == newer.task_id);
  CHECK(f.wait_final(newer).state == "succeeded");
  SUBCASE("while the node runs") {}
  SUBCASE("after the node restarted: what it took is relearned from its task rows") {
    f.restart();
  }
  REQUIRE(f.send(older) == older.task_id);
  auto r = f.wait_final(older);
  CHECK(r.state == "superseded");
  CHECK(r.reason == "superseded by " + newer_sha.substr(0, 12) + " (" + newer.deploy_id + ")");
  CHECK(r.started_at_ms == 0);
  CHECK(f.active() == newer_sha);
  for (const auto& e : f.runs())
    CHECK(e.deploy_id != older.deploy_id);
  // Another branch's push is not in the newer one's line: it runs.
  auto feature = f.task(older_sha);
  feature.deploy_id = f.deploy_id(0);
  feature.ref = "refs/heads/feature";
  REQUIRE(f.send(feature) == feature.task_id);
  CHECK(f.wait_final(feature).state == "succeeded");
}

TEST_CASE("after a restart, rows left queued or running in any time bucket fail \"node lost\"") {
  fixture f;
  // Rows of the previous run: three days old, an hour old, and another
  // node's; all still open.
  auto row_of = [&](int age_ms, const std::string& node, const std::string& state) {
    auto t = f.task(std::string(40, 'a'));
    t.deploy_id = f.deploy_id(-age_ms);
    auto r = brd::task_record_of(t, node);
    r.state = state;
    r.queued_at_ms = f.born_ms - age_ms;
    std::lock_guard<std::mutex> guard{f.seen->mutex};
    f.seen->puts.push_back({"tasks", t.deploy_id + "/" + t.task_id, brd::io::encode(r)});
    return t;
  };
  auto old = row_of(3 * 86'400'000, "pi-1", "running");
  auto recent = row_of(3'600'000, "pi-1", "queued");
  auto other = row_of(3'600'000 + 1, "pi-2", "running");
  f.restart();
  for (const auto& t : {old, recent}) {
    auto r = f.wait_final(t);
    CHECK(r.state == "failed");
    CHECK(r.reason == "node lost");
  }
  CHECK(f.records_of(other).size() == 1); // not ours: left alone
}

TEST_CASE("with supersede = false in the role's rule, every waiting deploy runs in order") {
  fixture f{2, 300s, false};
  auto tasks = f.send_three();
  const auto &t1 = tasks[0], &t2 = tasks[1], &t3 = tasks[2];
  for (const auto& t : tasks)
    CHECK(f.wait_final(t).state == "succeeded");
  CHECK(f.counted("superseded") == 0);
  strings started;
  for (const auto& e : f.runs())
    if (e.what == "start")
      started.push_back(e.deploy_id);
  CHECK(started == strings{t1.deploy_id, t2.deploy_id, t3.deploy_id});
  CHECK(f.active() == t3.sha);
}

TEST_CASE("a push to another branch does not supersede a waiting deploy") {
  fixture f;
  auto first = f.commit({{"slow", "1"}});
  auto second = f.commit({});
  auto third = f.commit({});
  auto t1 = f.task(first), t2 = f.task(second), t3 = f.task(third);
  t3.ref = "refs/heads/feature";
  for (const auto& t : {t1, t2, t3})
    REQUIRE(f.send(t) == t.task_id);
  CHECK(f.wait_final(t1).state == "succeeded");
  CHECK(f.wait_final(t2).state == "succeeded");
  CHECK(f.wait_final(t3).state == "succeeded");
  CHECK(f.counted("superseded") == 0);
}

TEST_CASE("with max_parallel 1 repositories take turns, first come first served") {
  fixture f{1};
  auto a = f.commit({{"slow", "1"}});
  auto b = f.commit({{"slow", ""}}, "blackroad/api");
  auto c = f.commit({}, "blackroad/site");
  auto t1 = f.task(a), t2 = f.task(b, "blackroad/api"), t3 = f.task(c);
  for (const auto& t : {t1, t2, t3})
    REQUIRE(f.send(t) == t.task_id);
  auto r1 = f.wait_final(t1), r2 = f.wait_final(t2), r3 = f.wait_final(t3);
  CHECK(r2.started_at_ms >= r1.finished_at_ms);
  CHECK(r3.started_at_ms >= r2.finished_at_ms);
}

TEST_CASE("a task delivered twice runs once") {
  fixture f;
  auto sha = f.commit({{"slow", "1"}});
  auto t = f.task(sha);
  CHECK(f.send(t) == t.task_id);
  CHECK(f.send(t) == t.task_id);
  CHECK(f.wait_final(t).state == "succeeded");
  std::this_thread::sleep_for(200ms);
  CHECK(f.runs().size() == 2); // one start, one end
  CHECK(states(f.records_of(t)) == strings{"queued", "running", "succeeded"});
}

TEST_CASE("a task handed over again after it ended (a restart of either side) is not run again") {
  fixture f;
  auto sha = f.commit();
  auto t = f.task(sha);
  CHECK(f.run(t).state == "succeeded");
  auto rows = states(f.records_of(t));
  CHECK(f.send(t) == t.task_id); // acknowledged: its row is in the store
  std::this_thread::sleep_for(300ms);
  CHECK(f.runs().size() == 2); // one start, one end
  CHECK(states(f.records_of(t)) == rows);
  CHECK(rows.back() == "succeeded");
}

TEST_CASE("rollback re-activates a kept build without fetching or running anything") {
  fixture f;
  auto one = f.commit();
  auto two = f.commit({{"version", "2"}});
  REQUIRE(f.run(f.task(one)).state == "succeeded");
  REQUIRE(f.run(f.task(two)).state == "succeeded");
  REQUIRE(f.active() == two);
  auto runs_before = f.runs().size();
  fs::remove_all(f.tmp.path / "remotes"); // a fetch would fail now

  auto back = f.run(f.rollback(one));
  CHECK(back.state == "succeeded");
  CHECK(back.kind == "rollback");
  CHECK(f.active() == one);
  CHECK(f.runs().size() == runs_before);
  CHECK(fs::exists(f.build(two))); // still kept: can roll forward again

  auto missing = f.run(f.rollback(std::string(40, 'b')));
  CHECK(missing.state == "failed");
  CHECK(missing.reason.find("no kept build") != std::string::npos);
  CHECK(f.active() == one);
}

TEST_CASE("a commit already in the mirror is not fetched again; one missing its tree is") {
  fixture f;
  auto first = f.commit({{"a.txt", "1\n"}});
  auto t1 = f.task(first);
  f.send(t1);
  REQUIRE(f.wait_final(t1).state == "succeeded");
  CHECK(read_file(f.records_of(t1).back().log_path).find("no fetch") == std::string::npos);

  // The same commit again (another role of the push, a retry): no fetch.
  auto t2 = f.task(first);
  f.send(t2);
  auto again = f.wait_final(t2);
  CHECK(again.state == "succeeded");
  CHECK(read_file(again.log_path).find(first + " is already in") != std::string::npos);

  // A fetch killed half way left the next commit's object but not its tree:
  // the checkout fails, a fetch fills in the rest, the deploy succeeds.
  auto second = f.commit({{"b.txt", "2\n"}});
  auto rel = fs::path{second.substr(0, 2)} / second.substr(2);
  auto mirror = f.workspace / "repos" / "blackroad" / "site";
  fs::create_directories(mirror / "objects" / second.substr(0, 2));
  fs::copy_file(f.work / ".git" / "objects" / rel, mirror / "objects" / rel);
  auto t3 = f.task(second);
  f.send(t3);
  auto repaired = f.wait_final(t3);
  CHECK(repaired.state == "succeeded");
  auto log = read_file(repaired.log_path);
  CHECK(log.find("checkout from the local mirror failed") != std::string::npos);
  CHECK(read_file(f.build(second) / "b.txt") == "2\n");
}

TEST_CASE("a redeploy of the active sha rebuilds it in a fresh directory") {
  fixture f;
  auto sha = f.commit();
  REQUIRE(f.run(f.task(sha)).state == "succeeded");
  write_file(f.build(sha) / "stale", "left by the first build");
  auto again = f.task(sha);
  again.ref = "refs/heads/release";
  CHECK(f.run(again).state == "succeeded");
  CHECK(f.active() == sha);
  CHECK_FALSE(fs::exists(f.build(sha) / "stale"));
  CHECK(read_file(f.build(sha) / "env.txt").find("BLACKROAD_REF=refs/heads/release")
        != std::string::npos);
  CHECK_FALSE(fs::exists(f.build(sha).string() + ".prev"));
}

TEST_CASE("retention keeps the newest 5 builds after 7 deploys") {
  fixture f;
  strings shas;
  for (int i = 0; i < 7; ++i) {
    shas.push_back(f.commit({{"version", std::to_string(i + 1)}}));
    REQUIRE(f.run(f.task(shas.back())).state == "succeeded");
  }
  auto kept = f.ws().kept_builds("blackroad/site");
  REQUIRE(kept);
  CHECK(*kept == strings{shas[6], shas[5], shas[4], shas[3], shas[2]});
  int dirs = 0;
  for (const auto& e : fs::directory_iterator{f.build(shas[0]).parent_path()})
    dirs += e.is_directory() && !e.is_symlink();
  CHECK(dirs == 5);
  CHECK_FALSE(fs::exists(f.build(shas[0])));
  CHECK_FALSE(fs::exists(f.build(shas[1])));
  CHECK(f.active() == shas[6]);
}

TEST_CASE("shell metacharacters in a branch name reach the script as plain text and run nothing") {
  fixture f;
  auto marker = fs::temp_directory_path()
                / ("pwned-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  auto sha = f.commit();
  auto t = f.task(sha);
  t.ref = "refs/heads/$(touch " + marker.string() + ");touch " + marker.string() + ";`touch "
          + marker.string() + "`";
  t.role = "web;touch " + marker.string();
  auto final = f.run(t);
  CHECK(final.state == "succeeded");
  CHECK_FALSE(fs::exists(marker));
  auto env = read_file(f.build(sha) / "env.txt");
  CHECK(env.find("BLACKROAD_REF=" + t.ref + "\n") != std::string::npos);
  CHECK(env.find("BLACKROAD_ROLE=" + t.role + "\n") != std::string::npos);
  CHECK(final.ref == t.ref);
}

TEST_CASE("a build running longer than alerts.long_build raises one long_build alert") {
  fixture f{2, 1s};
  auto sha = f.commit({{"slow", "2"}});
  auto t = f.task(sha);
  REQUIRE(f.run(t).state == "succeeded");
  std::lock_guard<std::mutex> guard{f.seen->mutex};
  std::vector<recorded::put> alerts;
  for (const auto& p : f.seen->puts)
    if (p.table == "alerts")
      alerts.push_back(p);
  REQUIRE(alerts.size() == 1);
  auto a = brd::io::decode<brd::io::alert_record>(alerts[0].value);
  REQUIRE(a);
  CHECK(a->kind == "long_build");
  CHECK(a->deploy_id == t.deploy_id);
  CHECK(a->task_id == t.task_id);
  CHECK(a->node == "pi-1");
  CHECK(a->text.find("more than 1 s") != std::string::npos);
  CHECK(alerts[0].key.size() > 14);
  CHECK(alerts[0].key.substr(0, 14) == std::string(13 - std::to_string(a->at_ms).size(), '0')
                                        + std::to_string(a->at_ms) + "/");
  CHECK(alerts[0].key.substr(14) == a->id);
}
