// The deploy workspace: path validation, the atomic active link, redeploys
// of the active sha, and retention of the newest builds.
#include "io/workspace.hpp"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <unistd.h>

#include <doctest/doctest.h>

#include "runtime/errors.hpp"
#include "runtime/wall_clock.hpp"
#include "../support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using brd::io::workspace;

using brd_test::temp_dir;

const std::string repo = "blackroad/site";

// A fake commit id: `n` in hex, padded to 40 digits.
std::string sha_of(int n) {
  std::ostringstream out;
  out << std::hex << n;
  auto digits = out.str();
  return std::string(40 - digits.size(), 'a') + digits;
}

std::string read_file(const fs::path& p) {
  std::ifstream in{p};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string build_of(const workspace& ws, const std::string& sha) {
  auto dir = ws.build_dir(repo, sha);
  REQUIRE(dir);
  return *dir;
}

// Does what the deployer does around a successful checkout and script.
void make_build(workspace& ws, const std::string& sha, const std::string& content,
                int64_t finished_at_ms) {
  REQUIRE_FALSE(ws.prepare_build(repo, sha));
  auto dir = build_of(ws, sha);
  fs::create_directories(dir);
  std::ofstream{fs::path{dir} / "content"} << content;
  REQUIRE_FALSE(ws.finish_build(repo, sha, finished_at_ms));
}

// What a reader of the active link sees.
std::string active_content(const workspace& ws) {
  auto link = ws.active_link(repo);
  REQUIRE(link);
  return read_file(fs::path{*link} / "content");
}

std::string active_sha(const workspace& ws) {
  auto sha = ws.active_sha(repo);
  REQUIRE(sha);
  return *sha;
}

} // namespace

TEST_CASE("repository names and ids that could leave the workspace are refused") {
  workspace ws{"/srv/ws"};
  for (auto bad : {"../x", "/abs", "a/b/c", "owner/..", "../..", "owner/.", "owner/",
                   "/name", "owner", "", "own er/name", "owner/na$me", "owner/name\n",
                   "owner\\x/name", "owner/`touch x`"}) {
    INFO(bad);
    CHECK_FALSE(brd::io::is_repo_name(bad));
    auto dir = ws.repo_dir(bad);
    REQUIRE_FALSE(dir);
    CHECK(dir.error() == brd::brd_errc::refused);
    CHECK_FALSE(ws.build_dir(bad, sha_of(1)));
    CHECK_FALSE(ws.active_link(bad));
  }
  CHECK(brd::io::is_repo_name("blackroad/site"));
  CHECK(brd::io::is_repo_name("blackroad/.github"));
  CHECK(brd::io::is_repo_name("Black-Road_1/site.v2"));
  CHECK(*ws.repo_dir("blackroad/site") == "/srv/ws/repos/blackroad/site");
  CHECK(*ws.build_dir("blackroad/site", sha_of(1)) == "/srv/ws/builds/blackroad/site/" + sha_of(1));
  CHECK_FALSE(ws.build_dir("blackroad/site", "main"));
  CHECK_FALSE(ws.build_dir("blackroad/site", "../" + sha_of(1).substr(3)));
  CHECK(*ws.log_path("d-17", "t-1@pi") == "/srv/ws/logs/d-17/t-1@pi.log");
  CHECK_FALSE(ws.log_path("..", "t"));
  CHECK_FALSE(ws.log_path("d", "../../etc/passwd"));
  CHECK_FALSE(ws.log_path("d/e", "t"));
  CHECK_FALSE(ws.log_path("d", "$(touch x)"));
}

TEST_CASE("the workspace root is the data directory's unless absolute") {
  CHECK(brd::io::workspace_root("/var/lib/brnode", "workspace") == "/var/lib/brnode/workspace");
  CHECK(brd::io::workspace_root("/var/lib/brnode", "/srv/ws") == "/srv/ws");
  CHECK(brd::io::workspace_root("data", "./ws/") == "data/ws/");
}

TEST_CASE("a finished build becomes active through a relative symlink") {
  temp_dir tmp;
  workspace ws{tmp.path.string()};
  CHECK(active_sha(ws).empty());
  make_build(ws, sha_of(1), "one", 1000);
  CHECK(active_sha(ws) == sha_of(1));
  CHECK(fs::read_symlink(*ws.active_link(repo)) == sha_of(1));
  CHECK(active_content(ws) == "one");
  CHECK(ws.is_kept(repo, sha_of(1)));
  make_build(ws, sha_of(2), "two", 2000);
  CHECK(active_sha(ws) == sha_of(2));
  CHECK(active_content(ws) == "two");
  // Rollback: back to the first build, which is untouched.
  REQUIRE_FALSE(ws.activate(repo, sha_of(1)));
  CHECK(active_content(ws) == "one");
  auto not_kept = ws.activate(repo, sha_of(3));
  REQUIRE(not_kept);
  CHECK(brd::describe(not_kept).find("no kept build") != std::string::npos);
  CHECK(active_sha(ws) == sha_of(1));
}

TEST_CASE("switching the active link never shows a reader a missing or broken link") {
  temp_dir tmp;
  workspace ws{tmp.path.string()};
  make_build(ws, sha_of(1), "one", 1000);
  make_build(ws, sha_of(2), "two", 2000);
  auto link = *ws.active_link(repo);
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, bad{0};
  std::thread reader{[&] {
    while (!done) {
      auto text = read_file(fs::path{link} / "content");
      if (text != "one" && text != "two")
        ++bad;
      ++reads;
    }
  }};
  for (int i = 0; i < 2000; ++i)
    REQUIRE_FALSE(ws.activate(repo, sha_of(1 + i % 2)));
  done = true;
  reader.join();
  CHECK(reads > 0);
  CHECK(bad == 0);
  // No temporary links are left behind.
  int entries = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator{fs::path{link}.parent_path()})
    ++entries;
  CHECK(entries == 5); // two builds, two stamps, the link
}

TEST_CASE("a redeploy of the active sha keeps the running build reachable until it is replaced") {
  temp_dir tmp;
  workspace ws{tmp.path.string()};
  make_build(ws, sha_of(1), "old", 1000);
  REQUIRE_FALSE(ws.prepare_build(repo, sha_of(1)));
  CHECK_FALSE(fs::exists(build_of(ws, sha_of(1)))); // room for a fresh checkout
  CHECK(active_content(ws) == "old");               // moved aside, link followed
  CHECK(active_sha(ws) == sha_of(1));

  SUBCASE("success replaces it") {
    fs::create_directories(build_of(ws, sha_of(1)));
    std::ofstream{fs::path{build_of(ws, sha_of(1))} / "content"} << "new";
    REQUIRE_FALSE(ws.finish_build(repo, sha_of(1), 2000));
    CHECK(active_content(ws) == "new");
    CHECK(fs::read_symlink(*ws.active_link(repo)) == sha_of(1));
    CHECK_FALSE(fs::exists(build_of(ws, sha_of(1)) + ".prev"));
  }
  SUBCASE("failure brings the old build back") {
    fs::create_directories(build_of(ws, sha_of(1)));
    std::ofstream{fs::path{build_of(ws, sha_of(1))} / "content"} << "broken";
    REQUIRE_FALSE(ws.discard_build(repo, sha_of(1)));
    CHECK(active_content(ws) == "old");
    CHECK(fs::read_symlink(*ws.active_link(repo)) == sha_of(1));
    CHECK(ws.is_kept(repo, sha_of(1)));
  }
  SUBCASE("a crash in between is repaired by the next build of the repository") {
    fs::create_directories(build_of(ws, sha_of(1))); // half-built, never finished
    REQUIRE_FALSE(ws.prepare_build(repo, sha_of(2)));
    CHECK(active_content(ws) == "old");
    CHECK(fs::read_symlink(*ws.active_link(repo)) == sha_of(1));
    CHECK_FALSE(fs::exists(build_of(ws, sha_of(1)) + ".prev"));
  }
}

TEST_CASE("a failed build of a new sha leaves nothing behind and the active build alone") {
  temp_dir tmp;
  workspace ws{tmp.path.string()};
  make_build(ws, sha_of(1), "one", 1000);
  REQUIRE_FALSE(ws.prepare_build(repo, sha_of(2)));
  fs::create_directories(build_of(ws, sha_of(2)));
  REQUIRE_FALSE(ws.discard_build(repo, sha_of(2)));
  CHECK_FALSE(fs::exists(build_of(ws, sha_of(2))));
  CHECK_FALSE(ws.is_kept(repo, sha_of(2)));
  CHECK(active_content(ws) == "one");
}

TEST_CASE("retention keeps exactly the newest builds and always the active one") {
  temp_dir tmp;
  workspace ws{tmp.path.string()};
  for (int i = 1; i <= 7; ++i)
    make_build(ws, sha_of(i), std::to_string(i), 1000 * i);

  SUBCASE("the active build is the newest") {
    auto removed = ws.retain(repo, 5);
    REQUIRE(removed);
    CHECK(*removed == std::vector<std::string>{sha_of(1), sha_of(2)});
    CHECK(*ws.kept_builds(repo)
          == std::vector<std::string>{sha_of(7), sha_of(6), sha_of(5), sha_of(4), sha_of(3)});
  }
  SUBCASE("the active build is older than the newest ones (a rollback)") {
    REQUIRE_FALSE(ws.activate(repo, sha_of(1)));
    auto removed = ws.retain(repo, 5);
    REQUIRE(removed);
    CHECK(*removed == std::vector<std::string>{sha_of(2), sha_of(3)});
    CHECK(*ws.kept_builds(repo)
          == std::vector<std::string>{sha_of(7), sha_of(6), sha_of(5), sha_of(4), sha_of(1)});
    CHECK(active_content(ws) == "1");
  }
  SUBCASE("keep 1 keeps only the active build, keep 0 too") {
    REQUIRE_FALSE(ws.activate(repo, sha_of(3)));
    REQUIRE(ws.retain(repo, 0));
    CHECK(*ws.kept_builds(repo) == std::vector<std::string>{sha_of(3)});
    CHECK(active_content(ws) == "3");
  }
  SUBCASE("unfinished directories and leftovers go first") {
    auto dir = fs::path{build_of(ws, sha_of(1))}.parent_path();
    fs::create_directories(dir / sha_of(99));
    fs::create_directories(dir / (sha_of(98) + ".partial"));
    std::ofstream{dir / (sha_of(97) + ".done")} << 5;
    auto removed = ws.retain(repo, 5);
    REQUIRE(removed);
    CHECK(*removed == std::vector<std::string>{sha_of(99), sha_of(1), sha_of(2)});
    int entries = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator{dir})
      ++entries;
    CHECK(entries == 11); // five builds, five stamps, the link
  }
}

TEST_CASE("old task logs are removed, recent ones and foreign names stay") {
  temp_dir tmp;
  workspace ws{tmp.path.string()};
  auto none = ws.prune_logs(brd::wall_clock_ms());
  REQUIRE(none); // no logs directory yet
  CHECK(*none == 0);
  auto write_log = [&](const std::string& deploy, const std::string& task) {
    auto path = ws.log_path(deploy, task);
    REQUIRE(path);
    fs::create_directories(fs::path{*path}.parent_path());
    std::ofstream{*path} << "output\n";
    return fs::path{*path};
  };
  auto age = [](const fs::path& p, std::chrono::hours by) {
    fs::last_write_time(p, fs::file_time_type::clock::now() - by);
  };
  // Forty days old, the directory and every file in it.
  auto old_log = write_log("d-old", "build@pi1");
  age(old_log, std::chrono::hours{24 * 40});
  age(old_log.parent_path(), std::chrono::hours{24 * 40});
  // Started forty days ago, but a task wrote to it yesterday.
  auto mixed_a = write_log("d-mixed", "build@pi1");
  auto mixed_b = write_log("d-mixed", "test@pi2");
  age(mixed_a, std::chrono::hours{24 * 40});
  age(mixed_b, std::chrono::hours{24});
  age(mixed_a.parent_path(), std::chrono::hours{24 * 40});
  auto fresh = write_log("d-fresh", "build@pi1");
  // Not a deploy id: not ours to remove.
  auto foreign = tmp.path / "logs" / "not an id";
  fs::create_directories(foreign);
  fs::last_write_time(foreign, fs::file_time_type::clock::now() - std::chrono::hours{24 * 400});

  auto cutoff = brd::wall_clock_ms() - int64_t{30} * 24 * 3600 * 1000;
  auto removed = ws.prune_logs(cutoff);
  REQUIRE_MESSAGE(removed, brd::describe(removed.error()));
  CHECK(*removed == 1);
  CHECK_FALSE(fs::exists(old_log.parent_path()));
  CHECK(fs::exists(mixed_a));
  CHECK(fs::exists(mixed_b));
  CHECK(fs::exists(fresh));
  CHECK(fs::exists(foreign));
  auto again = ws.prune_logs(cutoff);
  REQUIRE(again);
  CHECK(*again == 0);
}
