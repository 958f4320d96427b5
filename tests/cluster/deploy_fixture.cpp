#include "deploy_fixture.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>
#include <httplib.h>
#include <sys/stat.h>

#include "io/hmac.hpp"

namespace brd::test {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

std::string git_bin() {
  auto git = find_program("git");
  REQUIRE_MESSAGE(!git.empty(), "the deploy tests need git on PATH");
  return git;
}

// Runs git with a fixed identity; REQUIREs success; returns its output.
std::string git(const std::string& dir, std::vector<std::string> args) {
  std::vector<std::string> argv{git_bin(), "-C", dir, "-c", "user.name=Test",
                                "-c", "user.email=test@example.com", "-c",
                                "init.defaultBranch=main"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_program(argv, 30s, {"GIT_TERMINAL_PROMPT=0", "LC_ALL=C"});
  REQUIRE_MESSAGE(r.exit_code == 0, "git " << args.front() << " failed: " << r.output);
  return r.output;
}

void write_script(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path{path}.parent_path());
  std::ofstream{path} << text;
  ::chmod(path.c_str(), 0755);
}

// The scripts of the test repository; `out` is baked in as an absolute path.
void write_scripts(const std::string& work, const std::string& out) {
  write_script(work + "/scripts/deploy.sh",
               "#!/bin/sh\n"
               "f=\"" + out + "/$BLACKROAD_NODE-$BLACKROAD_ROLE\"\n"
               "printf '%s\\n' \"$BLACKROAD_SHA\" >> \"$f.sha\"\n"
               "printf '%s\\n' \"$BLACKROAD_REF\" >> \"$f.ref\"\n"
               "echo deployed \"$BLACKROAD_SHA\"\n");
  write_script(work + "/scripts/fail.sh",
               "#!/bin/sh\necho building\necho 'error: boom' >&2\nexit 3\n");
  write_script(work + "/scripts/hang.sh",
               "#!/bin/sh\necho $$ > \"" + out + "/hang.pid\"\nsleep 60\ntouch \"" + out
                 + "/hang.finished\"\n");
  write_script(work + "/scripts/slow.sh",
               "#!/bin/sh\ntouch \"" + out + "/$BLACKROAD_NODE.started\"\nsleep 4\n"
               "exec scripts/deploy.sh\n");
}

std::string deploy_toml(const deploy_setup& setup, const std::string& api_url,
                        const std::string& remote, const std::string& secret_file,
                        const std::string& token_file) {
  std::ostringstream t;
  t << "\n[github]\napi_url = \"" << api_url << "\"\ntoken_file = \"" << token_file
    << "\"\nwebhook_secret_file = \"" << secret_file << "\"\n";
  if (setup.max_body_bytes > 0)
    t << "max_body_bytes = " << setup.max_body_bytes << "\n";
  t << "\n[alerts]\nurl = \"" << api_url << "/alerts/hook\"\n\n[deploy]\nkeep_builds = 5\n\n"
    << "[[repo]]\nname = \"blackroad/*\"\nremote = \"" << remote << "\"\nbranches = "
    << setup.branches << "\n" << setup.extra_repo_lines << "\n";
  for (const auto& r : setup.rules)
    t << "  [[repo.rule]]\n  paths = " << r.paths << "\n  role = \"" << r.role
      << "\"\n  script = [\"" << r.script << "\"]\n  placement = \"" << r.placement
      << "\"\n  timeout_s = " << r.timeout_s << "\n\n";
  return t.str();
}

} // namespace

deploy_setup edge_and_frontend(std::string script) {
  return {{{"edge", "edge", {"bridge"}}, {"fe1", "pi", {"frontend"}}},
          {{R"(["frontend/**"])", "frontend", std::move(script)}}};
}

deploy_site::deploy_site(const deploy_setup& setup) {
  work_ = repo_dir_.file("work");
  out_dir_ = repo_dir_.file("out");
  fs::create_directories(out_dir_);
  auto bare = repo_dir_.file("git/blackroad/site.git");
  fs::create_directories(bare);
  git(bare, {"init", "-q", "--bare"});
  fs::create_directories(work_);
  git(work_, {"init", "-q"});
  write_scripts(work_, out_dir_);
  std::ofstream{work_ + "/README.md"} << "test site\n";
  git(work_, {"add", "-A"});
  git(work_, {"commit", "-q", "-m", "scripts"});
  git(work_, {"push", "-q", "--force", bare, "HEAD:refs/heads/main"});
  auto secret_file = repo_dir_.write("secrets/webhook", secret_ + "\n");
  auto token_file = repo_dir_.write("secrets/token", token_);
  std::vector<node_spec> specs;
  for (const auto& [name, tier, roles] : setup.nodes) {
    auto spec = make_specs({{name, tier}}).front();
    spec.roles = roles;
    specs.push_back(spec);
  }
  auto remote = "file://" + repo_dir_.file("git") + "/{repo}.git";
  fleet_ = std::make_unique<fleet>(
    "deploy", specs,
    "heartbeat_interval_ms = 100\n"
      + deploy_toml(setup, github_.url(), remote, secret_file, token_file));
}

std::string deploy_site::out(const std::string& name) const {
  return out_dir_ + "/" + name;
}

void deploy_site::start() {
  fleet_->start_all();
  REQUIRE_MESSAGE(fleet_->wait_all_alive(20s), "the fleet did not come up:" << fleet_->logs());
}

std::string deploy_site::commit(const std::map<std::string, std::string>& files,
                                const std::string& branch) {
  for (const auto& [path, text] : files) {
    auto full = fs::path{work_} / path;
    fs::create_directories(full.parent_path());
    std::ofstream{full, std::ios::binary | std::ios::trunc} << text;
  }
  git(work_, {"add", "-A"});
  git(work_, {"commit", "-q", "--allow-empty", "-m", "change"});
  git(work_, {"push", "-q", "--force", repo_dir_.file("git/blackroad/site.git"),
              "HEAD:refs/heads/" + branch});
  return head();
}

std::string deploy_site::head() const {
  return trim(git(work_, {"rev-parse", "HEAD"}));
}

// -- webhooks ------------------------------------------------------------------

json push_event(const std::string& before, const std::string& after,
                const std::vector<std::string>& changed, const std::string& ref,
                const std::string& repo) {
  auto name = repo.substr(repo.find('/') + 1);
  auto owner = repo.substr(0, repo.find('/'));
  json person{{"name", "Codertocat"}, {"email", "21031067+Codertocat@users.noreply.github.com"},
              {"username", "Codertocat"}};
  json commit{{"id", after},
              {"tree_id", "f9d2a07e9488b91af2641b26b9407fe22a451433"},
              {"distinct", true},
              {"message", "Update the site"},
              {"timestamp", "2019-05-15T15:20:30-05:00"},
              {"url", "https://github.com/" + repo + "/commit/" + after},
              {"author", person},
              {"committer", {{"name", "GitHub"}, {"email", "noreply@github.com"},
                             {"username", "web-flow"}}},
              {"added", changed},
              {"removed", json::array()},
              {"modified", json::array()}};
  return {
    {"ref", ref},
    {"before", before},
    {"after", after},
    {"created", false},
    {"deleted", false},
    {"forced", false},
    {"base_ref", nullptr},
    {"compare", "https://github.com/" + repo + "/compare/" + before.substr(0, 12) + "..."
                  + after.substr(0, 12)},
    {"commits", json::array({commit})},
    {"head_commit", commit},
    {"repository",
     {{"id", 186853002}, {"node_id", "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI="}, {"name", name},
      {"full_name", repo}, {"private", false},
      {"owner", {{"name", owner}, {"email", nullptr}, {"login", owner}, {"id", 21031067},
                 {"node_id", "MDQ6VXNlcjIxMDMxMDY3"}, {"type", "Organization"},
                 {"site_admin", false}}},
      {"html_url", "https://github.com/" + repo}, {"description", nullptr}, {"fork", false},
      {"url", "https://github.com/" + repo}, {"created_at", 1557933565},
      {"updated_at", "2019-05-15T15:20:41Z"}, {"pushed_at", 1557933657},
      {"git_url", "git://github.com/" + repo + ".git"},
      {"clone_url", "https://github.com/" + repo + ".git"}, {"size", 0},
      {"stargazers_count", 0}, {"default_branch", "main"}, {"master_branch", "main"}}},
    {"pusher", {{"name", "Codertocat"}, {"email", "21031067+Codertocat@users.noreply.github.com"}}},
    {"sender", {{"login", "Codertocat"}, {"id", 21031067}, {"node_id", "MDQ6VXNlcjIxMDMxMDY3"},
                {"avatar_url", "https://avatars1.githubusercontent.com/u/21031067?v=4"},
                {"type", "User"}, {"site_admin", false}}},
  };
}

std::string new_delivery_id() {
  static std::atomic<unsigned> counter{0};
  static std::mt19937 random{std::random_device{}()};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4000-8000-%012x", static_cast<unsigned>(random()),
                counter.fetch_add(1), static_cast<unsigned>(random()));
  return buf;
}

webhook_reply send_webhook(uint16_t port, const std::string& body, const std::string& secret,
                           const std::string& delivery, const std::string& event,
                           const std::string& signature) {
  httplib::Client client{"127.0.0.1", port};
  client.set_connection_timeout(5, 0); // a SYN dropped by a full backlog is resent after 1 s
  client.set_read_timeout(15, 0);
  client.set_write_timeout(15, 0);
  httplib::Headers headers{
    {"X-GitHub-Event", event},
    {"X-GitHub-Delivery", delivery},
    {"X-GitHub-Hook-ID", "292430182"},
    {"User-Agent", "GitHub-Hookshot/044aadd"},
    {"X-Hub-Signature-256",
     signature.empty() ? "sha256=" + io::hmac_sha256_hex(secret, body) : signature}};
  auto res = client.Post("/webhooks/github", headers, body, "application/json");
  if (!res)
    return {};
  return {res->status, res->body};
}

webhook_reply http_post_json(uint16_t port, const std::string& path, const std::string& body) {
  httplib::Client client{"127.0.0.1", port};
  client.set_connection_timeout(5, 0); // a SYN dropped by a full backlog is resent after 1 s
  client.set_read_timeout(15, 0);
  auto res = client.Post(path, body, "application/json");
  if (!res)
    return {};
  return {res->status, res->body};
}

// -- reading results -------------------------------------------------------------

json wait_deployment(uint16_t port, const std::string& id, millis timeout) {
  json last;
  wait_until(
    [&] {
      auto r = http_get_json(port, "/api/deployments/" + id);
      if (r.status == 200)
        last = r.body;
      return r.status == 200 && last.value("state", "") != "pending";
    },
    timeout, 50ms);
  return last;
}

std::map<std::string, std::vector<std::string>> statuses(const recorder& github,
                                                         const std::string& sha) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& r : github.requests("/repos/blackroad/site/statuses/" + sha)) {
    auto body = r.json();
    out[body.value("context", "?")].push_back(body.value("state", "?"));
  }
  return out;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in{path};
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

json task_of(const json& deployment, const std::string& task_id) {
  if (deployment.is_object() && deployment.contains("tasks"))
    for (const auto& t : deployment["tasks"])
      if (t.value("task_id", "") == task_id)
        return t;
  return {};
}

} // namespace brd::test
