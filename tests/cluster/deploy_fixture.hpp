// Push-to-deploy test fixture: a real git repository (a bare remote under a
// temporary directory, reached as file://), a recorder standing in for
// GitHub's API and the alert URL, and a fleet of brnode processes whose
// config deploys the repository. The repository's scripts write what they
// were asked to deploy into out/ so tests can see it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "recorder.hpp"

namespace brd::test {

// Scripts committed in every test repository (see deploy_fixture.cpp):
//   scripts/deploy.sh  appends $BLACKROAD_SHA to out/<node>-<role>.sha and
//                      $BLACKROAD_REF to out/<node>-<role>.ref
//   scripts/fail.sh    prints "building", "error: boom" to stderr, exits 3
//   scripts/hang.sh    writes its pid to out/hang.pid, sleeps 60 s, then
//                      touches out/hang.finished
//   scripts/slow.sh    touches out/<node>.started, sleeps 4 s, then runs
//                      deploy.sh
struct rule_spec {
  std::string paths; // TOML array text, e.g. R"(["frontend/**"])"
  std::string role;
  std::string script = "scripts/deploy.sh";
  std::string placement = "all";
  int timeout_s = 60;
};

struct deploy_setup {
  // name, tier, roles
  std::vector<std::tuple<std::string, std::string, std::vector<std::string>>> nodes;
  std::vector<rule_spec> rules;
  std::string branches = R"(["main"])";
  size_t max_body_bytes = 0; // 0: the default
  std::string extra_repo_lines;
};

// The fleet most deploy tests need: node "edge" (role bridge) and node
// "fe1" (tier pi), whose role "frontend" runs `script` for changes under
// frontend/ (placement all, 60 s).
deploy_setup edge_and_frontend(std::string script = "scripts/deploy.sh");

class deploy_site {
public:
  explicit deploy_site(const deploy_setup& setup);

  fleet& nodes() { return *fleet_; }
  recorder& github() { return github_; }
  const std::string& secret() const { return secret_; }
  const std::string& token() const { return token_; }
  uint16_t edge_port() { return fleet_->http_port("edge"); }
  std::string out(const std::string& name) const; // path of out/<name>
  const std::string& out_dir() const { return out_dir_; }

  // Starts every node and waits until they all see each other alive.
  void start();

  // Writes `files` into the work tree, commits and pushes to `branch` of the
  // bare remote (forced). Returns the new commit's sha.
  std::string commit(const std::map<std::string, std::string>& files,
                     const std::string& branch = "main");
  std::string head() const;

private:
  temp_dir repo_dir_; // git/ (bare remotes), work/ (the work tree), out/
  recorder github_;
  std::string secret_ = "It's a Secret to Everybody";
  std::string token_ = "ghp_test_token_123";
  std::string work_, out_dir_;
  std::unique_ptr<fleet> fleet_;
};

// -- webhooks ------------------------------------------------------------------

// A push event shaped exactly like GitHub's documented example (every field
// of docs.github.com "Webhook events and payloads: push"), for blackroad/site
// unless `repo` says otherwise; `changed` files are listed as added in one
// commit.
nlohmann::json push_event(const std::string& before, const std::string& after,
                          const std::vector<std::string>& changed,
                          const std::string& ref = "refs/heads/main",
                          const std::string& repo = "blackroad/site");

struct webhook_reply {
  int status = 0;
  std::string body;
  nlohmann::json doc() const { return nlohmann::json::parse(body, nullptr, false); }
};

// POST /webhooks/github with the given headers (signature computed over
// `body` with `secret` unless `signature` is given).
webhook_reply send_webhook(uint16_t port, const std::string& body, const std::string& secret,
                           const std::string& delivery, const std::string& event = "push",
                           const std::string& signature = "");

std::string new_delivery_id();

webhook_reply http_post_json(uint16_t port, const std::string& path, const std::string& body);

// -- reading results -------------------------------------------------------------

// Polls GET /api/deployments/{id} until its state is not pending; the last
// JSON seen (null when none).
nlohmann::json wait_deployment(uint16_t port, const std::string& id,
                               millis timeout = millis{60000});

// The status states posted per context for `sha`, in arrival order.
std::map<std::string, std::vector<std::string>> statuses(const recorder& github,
                                                         const std::string& sha);

std::vector<std::string> lines_of(const std::string& path);

// The task of `deployment` (JSON of /api/deployments/{id}) with this id.
nlohmann::json task_of(const nlohmann::json& deployment, const std::string& task_id);

} // namespace brd::test
