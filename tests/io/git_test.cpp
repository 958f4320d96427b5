// Fetch, checkout and changed files against real git repositories made in a
// temporary directory.
#include "io/git.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "io/process.hpp"
#include "runtime/errors.hpp"
#include "../support/git.hpp"
#include "../support/temp_dir.hpp"

namespace {

using brd_test::git;
using brd_test::write_file;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using strings = std::vector<std::string>;

using brd_test::temp_dir;

std::string read_file(const fs::path& p) {
  std::ifstream in{p};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string commit_all(const std::string& repo, const std::string& message) {
  git(repo, {"add", "-A"});
  git(repo, {"commit", "-q", "--allow-empty", "-m", message});
  return git(repo, {"rev-parse", "HEAD"});
}

const std::string zero(40, '0');
// A file name a shell would love to run.
const std::string nasty = "dir with space/a;b $(touch PWNED) `touch PWNED2` -rf.txt";

// A working repository with two commits on main, standing in for GitHub.
struct origin_repo {
  temp_dir tmp;
  std::string dir = tmp.sub("origin");
  std::string first, second;
  origin_repo() {
    fs::create_directories(dir);
    git(dir, {"init", "-q", "-b", "main"});
    write_file(fs::path{dir} / "frontend/app.js", "v1\n");
    write_file(fs::path{dir} / "README.md", "readme\n");
    write_file(fs::path{dir} / "deploy.sh", "#!/bin/sh\necho deploying\n");
    fs::permissions(fs::path{dir} / "deploy.sh", fs::perms::owner_all);
    first = commit_all(dir, "first");
    write_file(fs::path{dir} / "frontend/app.js", "v2\n");
    write_file(fs::path{dir} / nasty, "nasty\n");
    fs::remove(fs::path{dir} / "README.md");
    second = commit_all(dir, "second");
  }
  std::string mirror() const { return tmp.sub("workspace/repos/owner/repo"); }
  bool pwned() const {
    return fs::exists(tmp.sub("PWNED")) || fs::exists(tmp.sub("PWNED2"))
           || fs::exists(fs::path{dir} / "PWNED") || fs::exists("PWNED");
  }
};

} // namespace

TEST_CASE("commit ids are 40 lowercase hex digits; the zero id is recognised") {
  CHECK(brd::io::is_commit_id("0123456789abcdef0123456789abcdef01234567"));
  CHECK_FALSE(brd::io::is_commit_id("0123456789ABCDEF0123456789abcdef01234567"));
  CHECK_FALSE(brd::io::is_commit_id("0123456789abcdef0123456789abcdef0123456"));
  CHECK_FALSE(brd::io::is_commit_id("0123456789abcdef0123456789abcdef012345678"));
  CHECK_FALSE(brd::io::is_commit_id("HEAD"));
  CHECK_FALSE(brd::io::is_commit_id("--upload-pack=touch /tmp/x"));
  CHECK(brd::io::is_zero_commit_id(zero));
  CHECK_FALSE(brd::io::is_zero_commit_id("0"));
}

TEST_CASE("redact_url drops user and password, keeps the rest") {
  CHECK(brd::io::redact_url("https://x-access-token:s3cret@github.com/o/r.git")
        == "https://github.com/o/r.git");
  CHECK(brd::io::redact_url("https://github.com/o/r.git") == "https://github.com/o/r.git");
  CHECK(brd::io::redact_url("/srv/git/o/r.git") == "/srv/git/o/r.git");
  CHECK(brd::io::redact_url("git@github.com:o/r.git") == "git@github.com:o/r.git");
  CHECK(brd::io::redact_url("https://a@b@host/p@q") == "https://host/p@q");
}

TEST_CASE("fetch_repo makes a bare mirror and keeps its branches and tags exactly the remote's") {
  origin_repo origin;
  git(origin.dir, {"branch", "feature"});
  git(origin.dir, {"tag", "v1", origin.first});
  auto log = origin.tmp.sub("logs/fetch.log");
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s, log));
  CHECK(fs::exists(fs::path{origin.mirror()} / "HEAD"));
  CHECK(git(origin.mirror(), {"rev-parse", "refs/heads/main"}) == origin.second);
  CHECK(git(origin.mirror(), {"rev-parse", "refs/heads/feature"}) == origin.second);
  CHECK(git(origin.mirror(), {"rev-parse", "refs/tags/v1^{commit}"}) == origin.first);
  CHECK(fs::exists(log));

  // A force push, a deleted branch and a new commit: the next fetch follows.
  git(origin.dir, {"reset", "-q", "--hard", origin.first});
  write_file(fs::path{origin.dir} / "api/server.go", "package main\n");
  auto third = commit_all(origin.dir, "third");
  git(origin.dir, {"branch", "-D", "feature"});
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  CHECK(git(origin.mirror(), {"rev-parse", "refs/heads/main"}) == third);
  CHECK(git(origin.mirror(), {"for-each-ref", "--format=%(refname)", "refs/heads"})
        == "refs/heads/main");
  // The old commit is still there for a diff.
  CHECK(git(origin.mirror(), {"cat-file", "-t", origin.second}) == "commit");
}

TEST_CASE("fetch_commit fetches only a commit the mirror does not hold yet") {
  origin_repo origin;
  auto log = origin.tmp.sub("logs/fetch.log");
  auto missing = brd::io::has_object(origin.mirror(), origin.first);
  REQUIRE(missing);
  CHECK_FALSE(*missing); // no repository yet
  auto fetched = brd::io::fetch_commit(origin.dir, origin.mirror(), origin.second, 30s, log);
  REQUIRE(fetched);
  CHECK(*fetched);
  auto again = brd::io::fetch_commit(origin.dir, origin.mirror(), origin.first, 30s, log);
  REQUIRE(again);
  CHECK_FALSE(*again); // fetched with the first one

  write_file(fs::path{origin.dir} / "frontend/app.js", "v3\n");
  auto third = commit_all(origin.dir, "third");
  auto before = brd::io::has_object(origin.mirror(), third);
  REQUIRE(before);
  CHECK_FALSE(*before);
  auto newer = brd::io::fetch_commit(origin.dir, origin.mirror(), third, 30s, log);
  REQUIRE(newer);
  CHECK(*newer);
  auto after = brd::io::has_object(origin.mirror(), third);
  REQUIRE(after);
  CHECK(*after);

  auto bad = brd::io::fetch_commit(origin.dir, origin.mirror(), "--upload-pack=touch PWNED", 30s);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == brd::brd_errc::refused);
  CHECK_FALSE(origin.pwned());
}

TEST_CASE("has_object finds loose and packed objects without running git") {
  origin_repo origin;
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  auto tree = git(origin.dir, {"rev-parse", origin.second + "^{tree}"});
  auto absent = std::string(40, 'e');
  auto looked = [&](const std::string& sha) {
    auto found = brd::io::has_object(origin.mirror(), sha);
    REQUIRE(found);
    return *found;
  };
  CHECK(looked(origin.first));
  CHECK(looked(tree));
  CHECK_FALSE(looked(absent));

  // Packed (gc moves every object into a pack and drops the loose ones).
  git(origin.mirror(), {"gc", "-q", "--prune=now"});
  REQUIRE(fs::exists(fs::path{origin.mirror()} / "objects" / "pack"));
  CHECK_FALSE(fs::exists(fs::path{origin.mirror()} / "objects" / origin.first.substr(0, 2)
                         / origin.first.substr(2)));
  CHECK(looked(origin.first));
  CHECK(looked(origin.second));
  CHECK(looked(tree));
  CHECK_FALSE(looked(absent));
  CHECK_FALSE(looked(std::string(40, '0')));
  CHECK_FALSE(looked(std::string(40, 'f')));

  // A damaged index reads as "absent" (the caller then fetches): counts
  // far beyond the file, then a file cut short.
  fs::path idx;
  for (fs::directory_iterator it{fs::path{origin.mirror()} / "objects" / "pack"}, end; it != end;
       ++it)
    if (it->path().extension() == ".idx")
      idx = it->path();
  REQUIRE_FALSE(idx.empty());
  fs::permissions(idx, fs::perms::owner_write, fs::perm_options::add);
  {
    std::fstream f{idx, std::ios::in | std::ios::out | std::ios::binary};
    // Nothing below origin.first's first byte, 4 billion ids from there on.
    auto first_byte = std::stoi(origin.first.substr(0, 2), nullptr, 16);
    for (int b = 0; b < 256; ++b) {
      f.seekp(8 + 4 * b);
      f.write(b < first_byte ? "\0\0\0\0" : "\xff\xff\xff\xff", 4);
    }
  }
  CHECK_FALSE(looked(origin.first));
  fs::resize_file(idx, 100);
  CHECK_FALSE(looked(origin.first));

  auto refused = brd::io::has_object(origin.mirror(), "--help");
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == brd::brd_errc::refused);
}

TEST_CASE("fetch_repo follows a remote whose URL changed") {
  origin_repo origin, other;
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s)); // URL unchanged
  CHECK(git(origin.mirror(), {"config", "remote.origin.url"}) == origin.dir);
  REQUIRE_FALSE(brd::io::fetch_repo(other.dir, origin.mirror(), 30s));
  CHECK(git(origin.mirror(), {"config", "remote.origin.url"}) == other.dir);
  CHECK(git(origin.mirror(), {"rev-parse", "refs/heads/main"}) == other.second);

  // A hand-edited config with a second URL: the fleet config's one wins.
  git(origin.mirror(), {"config", "--add", "remote.origin.url", origin.dir});
  REQUIRE_FALSE(brd::io::fetch_repo(other.dir, origin.mirror(), 30s));
  CHECK(git(origin.mirror(), {"config", "--get-all", "remote.origin.url"}) == other.dir);
}

TEST_CASE("the gc a fetch starts runs inside the fetch, not detached from it") {
  origin_repo origin;
  auto log = origin.tmp.sub("logs/fetch.log");
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s, log));
  // Every fetch keeps a pack, and two packs are enough for gc --auto.
  git(origin.mirror(), {"config", "fetch.unpackLimit", "1"});
  git(origin.mirror(), {"config", "gc.autoPackLimit", "1"});
  for (auto version : {"v3\n", "v4\n"}) { // a pack each, the second starts gc
    write_file(fs::path{origin.dir} / "frontend/app.js", version);
    commit_all(origin.dir, version);
    REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s, log));
  }
  auto text = read_file(log);
  CHECK(text.find("Auto packing the repository") != std::string::npos);
  CHECK(text.find("in background") == std::string::npos);
  int packs = 0;
  for (const auto& entry : fs::directory_iterator{fs::path{origin.mirror()} / "objects" / "pack"})
    packs += entry.path().extension() == ".pack";
  CHECK(packs == 1); // repacked before fetch_repo returned
}

TEST_CASE("fetch_repo from an unreachable remote fails without showing its password") {
  temp_dir tmp;
  auto err = brd::io::fetch_repo("https://deployer:hunter2@127.0.0.1:1/o/r.git",
                                 tmp.sub("repos/o/r"), 30s);
  REQUIRE(err);
  auto text = brd::describe(err);
  CHECK(text.find("127.0.0.1:1/o/r.git") != std::string::npos);
  CHECK(text.find("hunter2") == std::string::npos);
  auto missing = brd::io::fetch_repo(tmp.sub("no-such-remote"), tmp.sub("repos/o/s"), 30s);
  REQUIRE(missing);
  CHECK(brd::describe(missing).find("no-such-remote") != std::string::npos);
}

TEST_CASE("a fetch from a remote that never answers ends when the node stops") {
  // A git:// "server" that accepts (the kernel completes the handshake) and
  // never says a word: git waits for its advertisement until the timeout.
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  auto url = "git://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/silent.git";
  temp_dir tmp;
  std::atomic<bool> stopping{false};
  std::thread stopper{[&] {
    std::this_thread::sleep_for(300ms);
    stopping = true;
  }};
  auto start = std::chrono::steady_clock::now();
  auto err = brd::io::fetch_repo(url, tmp.sub("mirror"), 60s, {}, &stopping);
  auto took = std::chrono::steady_clock::now() - start;
  stopper.join();
  ::close(listener);
  REQUIRE(err);
  CHECK(brd::describe(err).find("cancelled: the node is stopping") != std::string::npos);
  CHECK(took < 10s); // not the 60 s timeout
}

TEST_CASE("checkout writes the exact tree of a commit into a new build directory") {
  origin_repo origin;
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  auto head_before = read_file(fs::path{origin.mirror()} / "HEAD");
  auto build = fs::path{origin.tmp.sub("workspace/builds/owner-repo")} / origin.second;
  REQUIRE_FALSE(brd::io::checkout(origin.mirror(), origin.second, build.string()));
  CHECK(read_file(build / "frontend/app.js") == "v2\n");
  CHECK(read_file(build / nasty) == "nasty\n");
  CHECK_FALSE(fs::exists(build / "README.md"));
  CHECK((fs::status(build / "deploy.sh").permissions() & fs::perms::owner_exec)
        != fs::perms::none);
  CHECK_FALSE(fs::exists(build / ".git"));
  CHECK_FALSE(fs::exists(build.string() + ".partial"));
  CHECK_FALSE(fs::exists(build.string() + ".partial.index"));
  CHECK(read_file(fs::path{origin.mirror()} / "HEAD") == head_before);
  CHECK_FALSE(fs::exists(fs::path{origin.mirror()} / "index"));

  // An older commit goes to its own directory, with its own content.
  auto old_build = fs::path{origin.tmp.sub("workspace/builds/owner-repo")} / origin.first;
  REQUIRE_FALSE(brd::io::checkout(origin.mirror(), origin.first, old_build.string()));
  CHECK(read_file(old_build / "frontend/app.js") == "v1\n");
  CHECK(read_file(old_build / "README.md") == "readme\n");
  CHECK_FALSE(fs::exists(old_build / nasty));
  CHECK_FALSE(origin.pwned());
}

TEST_CASE("checkout refuses anything but a commit id, and an existing build directory") {
  origin_repo origin;
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  auto build = origin.tmp.sub("build");
  for (const auto& bad : strings{"main", "HEAD", "--help", "-f", "--upload-pack=touch PWNED",
                          origin.second.substr(0, 39), origin.second + "0", "../../etc/passwd",
                          std::string(40, 'G'), std::string{"$(touch PWNED)"}}) {
    INFO("sha: ", bad);
    auto err = brd::io::checkout(origin.mirror(), bad, build);
    REQUIRE(err);
    CHECK(err == brd::brd_errc::refused);
    CHECK_FALSE(fs::exists(build));
  }
  auto unknown = brd::io::checkout(origin.mirror(), std::string(40, 'a'), build);
  REQUIRE(unknown);
  CHECK(brd::describe(unknown).find("commit " + std::string(40, 'a') + " is not in")
        != std::string::npos);
  CHECK_FALSE(fs::exists(build));
  CHECK_FALSE(fs::exists(build + ".partial"));

  fs::create_directories(build);
  auto exists = brd::io::checkout(origin.mirror(), origin.second, build);
  REQUIRE(exists);
  CHECK(exists == brd::brd_errc::refused);
  CHECK_FALSE(origin.pwned());
}

TEST_CASE("checkout clears a .partial left by a crash") {
  origin_repo origin;
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  auto build = origin.tmp.sub("build");
  write_file(build + ".partial/stale.txt", "from a crash\n");
  REQUIRE_FALSE(brd::io::checkout(origin.mirror(), origin.first, build));
  CHECK_FALSE(fs::exists(fs::path{build} / "stale.txt"));
  CHECK(fs::exists(fs::path{build} / "README.md"));
}

TEST_CASE("changed_files lists what differs between two commits, names taken literally") {
  origin_repo origin;
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  auto changed = brd::io::changed_files(origin.mirror(), origin.first, origin.second);
  REQUIRE(changed);
  CHECK(*changed == strings{"README.md", nasty, "frontend/app.js"});

  // A rename gives both names.
  fs::create_directories(fs::path{origin.dir} / "scripts");
  git(origin.dir, {"mv", "deploy.sh", "scripts/deploy.sh"});
  auto third = commit_all(origin.dir, "move");
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  auto moved = brd::io::changed_files(origin.mirror(), origin.second, third);
  REQUIRE(moved);
  CHECK(*moved == strings{"deploy.sh", "scripts/deploy.sh"});
  CHECK_FALSE(origin.pwned());
}

TEST_CASE("changed_files of a new branch lists its whole tree, of a deleted branch nothing") {
  origin_repo origin;
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  auto created = brd::io::changed_files(origin.mirror(), zero, origin.first);
  REQUIRE(created);
  CHECK(*created == strings{"README.md", "deploy.sh", "frontend/app.js"});
  auto deleted = brd::io::changed_files(origin.mirror(), origin.second, zero);
  REQUIRE(deleted);
  CHECK(deleted->empty());
  auto all = brd::io::list_files(origin.mirror(), origin.second);
  REQUIRE(all);
  CHECK(*all == strings{"deploy.sh", nasty, "frontend/app.js"});
}

TEST_CASE("changed_files across a force push compares the two trees") {
  origin_repo origin;
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  git(origin.dir, {"reset", "-q", "--hard", origin.first});
  write_file(fs::path{origin.dir} / "api/server.go", "package main\n");
  auto rewritten = commit_all(origin.dir, "rewritten");
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  auto changed = brd::io::changed_files(origin.mirror(), origin.second, rewritten);
  REQUIRE(changed);
  CHECK(*changed == strings{"README.md", "api/server.go", nasty, "frontend/app.js"});
}

TEST_CASE("changed_files refuses ids that are not commit ids and fails on unknown ones") {
  origin_repo origin;
  REQUIRE_FALSE(brd::io::fetch_repo(origin.dir, origin.mirror(), 30s));
  for (const auto& bad : strings{"HEAD", "--output=PWNED", "main~1", ""}) {
    INFO("id: ", bad);
    auto as_before = brd::io::changed_files(origin.mirror(), bad, origin.second);
    REQUIRE_FALSE(as_before);
    CHECK(as_before.error() == brd::brd_errc::refused);
    auto as_after = brd::io::changed_files(origin.mirror(), origin.first, bad);
    REQUIRE_FALSE(as_after);
    CHECK(as_after.error() == brd::brd_errc::refused);
  }
  auto unknown = brd::io::changed_files(origin.mirror(), std::string(40, 'b'), origin.second);
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error() == brd::brd_errc::io_failure);
  CHECK_FALSE(origin.pwned());
}
