// GitHub webhook validation and push parsing, with payloads shaped like the
// ones GitHub documents and ones made to break things.
#include "io/github_webhook.hpp"

#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "io/hmac.hpp"
#include "runtime/errors.hpp"

namespace {

using brd::io::classify;
using brd::io::parse_push;
using brd::io::verify_signature;
using brd::io::webhook_request;
using json = nlohmann::json;
using strings = std::vector<std::string>;

// A branch push shaped like the example in GitHub's webhook docs.
const char* documented_push = R"({
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
  "created": false,
  "deleted": false,
  "forced": false,
  "base_ref": null,
  "compare": "https://github.com/Codertocat/Hello-World/compare/6113728f27ae...9049f1265b7d",
  "commits": [
    {
      "id": "3e5a1e1c4a7d1b1e4f0a7e1a1b1c1d1e1f1a1b1c",
      "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
      "distinct": true,
      "message": "Add the frontend",
      "timestamp": "2019-05-15T15:20:30-05:00",
      "url": "https://github.com/Codertocat/Hello-World/commit/3e5a1e1c4a7d",
      "author": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com",
                 "username": "Codertocat"},
      "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
      "added": ["frontend/app.js", "tests/app_test.js"],
      "removed": ["old/legacy.js"],
      "modified": ["README.md"]
    },
    {
      "id": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
      "tree_id": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
      "distinct": true,
      "message": "Fix the frontend\n\nLonger body.",
      "timestamp": "2019-05-15T15:21:30-05:00",
      "url": "https://github.com/Codertocat/Hello-World/commit/9049f1265b7d",
      "author": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com",
                 "username": "Codertocat"},
      "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
      "added": [],
      "removed": [],
      "modified": ["frontend/app.js", "README.md"]
    }
  ],
  "head_commit": {
    "id": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
    "tree_id": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
    "distinct": true,
    "message": "Fix the frontend\n\nLonger body.",
    "timestamp": "2019-05-15T15:21:30-05:00",
    "url": "https://github.com/Codertocat/Hello-World/commit/9049f1265b7d",
    "author": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com",
               "username": "Codertocat"},
    "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
    "added": [], "removed": [], "modified": ["frontend/app.js", "README.md"]
  },
  "repository": {
    "id": 186853002,
    "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
    "name": "Hello-World",
    "full_name": "Codertocat/Hello-World",
    "private": false,
    "owner": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com",
              "login": "Codertocat", "id": 21031067, "type": "User", "site_admin": false},
    "html_url": "https://github.com/Codertocat/Hello-World",
    "description": null,
    "fork": false,
    "created_at": 1557933565,
    "updated_at": "2019-05-15T15:20:41Z",
    "pushed_at": 1557933657,
    "clone_url": "https://github.com/Codertocat/Hello-World.git",
    "default_branch": "main",
    "master_branch": "main",
    "stargazers": 0
  },
  "pusher": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
  "sender": {"login": "Codertocat", "id": 21031067, "node_id": "MDQ6VXNlcjIxMDMxMDY3",
             "type": "User", "site_admin": false}
})";

// GitHub's documented example of a deleted tag.
const char* documented_delete = R"({
  "ref": "refs/tags/simple-tag",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "0000000000000000000000000000000000000000",
  "created": false, "deleted": true, "forced": false, "base_ref": null,
  "compare": "https://github.com/Codertocat/Hello-World/compare/6113728f27ae...000000000000",
  "commits": [], "head_commit": null,
  "repository": {"id": 186853002, "name": "Hello-World", "full_name": "Codertocat/Hello-World"},
  "pusher": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com"},
  "sender": {"login": "Codertocat", "id": 21031067}
})";

json documented() {
  return json::parse(documented_push);
}

// The sentence of the error parse_push gives for `payload`; fails the test
// when the payload is accepted.
std::string problem_of(const std::string& payload) {
  auto ev = parse_push(payload);
  REQUIRE_FALSE(ev);
  CHECK(ev.error() == brd::brd_errc::refused);
  auto verdict = brd::io::bad_payload(ev.error());
  CHECK(verdict.status == 400);
  return verdict.message;
}

std::string signed_header(const std::string& secret, const std::string& body) {
  return "sha256=" + brd::io::hmac_sha256_hex(secret, body);
}

} // namespace

TEST_CASE("a push shaped like GitHub's documented example is read field by field") {
  auto ev = parse_push(documented_push, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
  REQUIRE(ev);
  CHECK(ev->delivery == "72d3162e-cc78-11e3-81ab-4c9367dc0958");
  CHECK(ev->repo == "Codertocat/Hello-World");
  CHECK(ev->ref == "refs/heads/main");
  CHECK(ev->before == "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
  CHECK(ev->after == "9049f1265b7d61be4a8904a9a27120d2064dab3b");
  CHECK(ev->pusher == "Codertocat");
  CHECK(ev->sender == "Codertocat");
  CHECK_FALSE(ev->created);
  CHECK_FALSE(ev->deleted);
  CHECK_FALSE(ev->forced);
  CHECK_FALSE(ev->truncated);
  CHECK(ev->changed
        == strings{"README.md", "frontend/app.js", "old/legacy.js", "tests/app_test.js"});
  CHECK(ev->head_message == "Fix the frontend\n\nLonger body.");
  CHECK(brd::io::branch_of(ev->ref) == "main");
  CHECK_FALSE(brd::io::is_tag_ref(ev->ref));
}

TEST_CASE("a deleted tag, as documented, has no head commit and changes nothing") {
  auto ev = parse_push(documented_delete);
  REQUIRE(ev);
  CHECK(ev->deleted);
  CHECK(ev->after == std::string(40, '0'));
  CHECK(ev->changed.empty());
  CHECK(ev->head_message.empty());
  CHECK(brd::io::is_tag_ref(ev->ref));
  CHECK(brd::io::branch_of(ev->ref).empty());
}

TEST_CASE("sender is optional, forced and created are read") {
  auto payload = documented();
  payload.erase("sender");
  payload["forced"] = true;
  payload["created"] = true;
  payload["before"] = std::string(40, '0');
  auto ev = parse_push(payload.dump());
  REQUIRE(ev);
  CHECK(ev->sender.empty());
  CHECK(ev->forced);
  CHECK(ev->created);
}

TEST_CASE("a payload with 2048 commits is truncated, with 2047 it is not") {
  auto payload = documented();
  auto commit = payload["commits"][0];
  payload["commits"] = json::array();
  for (int i = 0; i < 2047; ++i)
    payload["commits"].push_back(commit);
  auto full = parse_push(payload.dump());
  REQUIRE(full);
  CHECK_FALSE(full->truncated);
  payload["commits"].push_back(commit);
  auto truncated = parse_push(payload.dump());
  REQUIRE(truncated);
  CHECK(truncated->truncated);
  CHECK(truncated->changed
        == strings{"README.md", "frontend/app.js", "old/legacy.js", "tests/app_test.js"});
}

TEST_CASE("malformed JSON is refused with a 400 that says where") {
  for (std::string body : {"", "{", "not json", "[1, 2", "{\"ref\": }", "{} trailing",
                           "{\"ref\": \"\xff\xfe\"}"}) {
    INFO("body: ", body);
    auto message = problem_of(body);
    CHECK(message.find("malformed JSON") != std::string::npos);
  }
  CHECK(problem_of("{").find("line 1, column 2") != std::string::npos);
  auto long_token = problem_of("{\"ref\": \"" + std::string(100000, 'x') + "\\u12\"}");
  CHECK(long_token.size() < 300);
}

TEST_CASE("deeply nested JSON is refused without crashing") {
  std::string deep = std::string(200000, '[') + std::string(200000, ']');
  CHECK(problem_of(deep).find("must be a JSON object, not array") != std::string::npos);
  CHECK(problem_of(std::string(1000000, '[')).find("malformed JSON") != std::string::npos);
}

TEST_CASE("each missing required field is named") {
  for (auto field : {"ref", "before", "after", "created", "deleted", "forced", "commits",
                     "repository", "pusher"}) {
    INFO("field: ", field);
    auto payload = documented();
    payload.erase(field);
    CHECK(problem_of(payload.dump()).find(std::string{"missing field '"} + field + "'")
          != std::string::npos);
  }
  auto payload = documented();
  payload["repository"].erase("full_name");
  CHECK(problem_of(payload.dump()).find("missing field 'repository.full_name'")
        != std::string::npos);
  payload = documented();
  payload["pusher"].erase("name");
  CHECK(problem_of(payload.dump()).find("missing field 'pusher.name'") != std::string::npos);
}

TEST_CASE("fields of the wrong type are named with the type expected") {
  struct wrong_case {
    json::json_pointer where;
    json value;
    const char* expected;
  };
  std::vector<wrong_case> cases{
    {json::json_pointer{"/deleted"}, "true", "field 'deleted' must be a boolean, not string"},
    {json::json_pointer{"/created"}, 1, "field 'created' must be a boolean, not number"},
    {json::json_pointer{"/ref"}, 42, "field 'ref' must be a string, not number"},
    {json::json_pointer{"/commits"}, json::object(), "field 'commits' must be an array"},
    {json::json_pointer{"/repository"}, "Codertocat/Hello-World",
     "field 'repository' must be an object, not string"},
    {json::json_pointer{"/repository/full_name"}, json::array({"a", "b"}),
     "field 'repository.full_name' must be a string, not array"},
    {json::json_pointer{"/commits/0/added"}, "frontend/app.js",
     "field 'commits[0].added' must be an array"},
    {json::json_pointer{"/commits/1/modified/0"}, 7, "'commits[1].modified' must hold only strings"},
    {json::json_pointer{"/commits/1"}, "abc", "'commits[1]' must be an object"},
    {json::json_pointer{"/head_commit/message"}, false,
     "field 'head_commit.message' must be a string"},
  };
  for (const auto& c : cases) {
    INFO("at ", c.where.to_string());
    auto payload = documented();
    payload[c.where] = c.value;
    CHECK(problem_of(payload.dump()).find(c.expected) != std::string::npos);
  }
  CHECK(problem_of("[]").find("must be a JSON object, not array") != std::string::npos);
  CHECK(problem_of("\"push\"").find("must be a JSON object, not string") != std::string::npos);
}

TEST_CASE("before and after must be commit ids; repository names must be owner/name") {
  for (std::string sha : {"HEAD", "6113728f", "6113728F27AE82C7B1A177C8D03F9E96E0ADF246",
                          "--upload-pack=touch /tmp/pwned", "6113728f27ae82c7b1a177c8d03f9e96e0adf24z"}) {
    INFO("sha: ", sha);
    auto payload = documented();
    payload["after"] = sha;
    CHECK(problem_of(payload.dump()).find("'after' must be a commit id") != std::string::npos);
  }
  for (std::string name : {"../etc", "owner/..", "owner/.", "a/b/c", "owner/repo name",
                           "owner", "/repo", "owner/", "owner/$(id)", "owner/r;m"}) {
    INFO("full_name: ", name);
    auto payload = documented();
    payload["repository"]["full_name"] = name;
    CHECK(problem_of(payload.dump()).find("repository.full_name") != std::string::npos);
  }
}

TEST_CASE("branch names and paths full of shell metacharacters are plain data") {
  std::string branch = "refs/heads/$(touch /tmp/pwned);`id`|x&&y../..\"'\\ *";
  auto payload = documented();
  payload["ref"] = branch;
  payload["commits"][0]["added"] = {"$(touch /tmp/pwned).txt", "a;b", "`id`", "../../etc/passwd"};
  auto ev = parse_push(payload.dump());
  REQUIRE(ev);
  CHECK(ev->ref == branch);
  CHECK(brd::io::branch_of(ev->ref) == "$(touch /tmp/pwned);`id`|x&&y../..\"'\\ *");
  CHECK(ev->changed
        == strings{"$(touch /tmp/pwned).txt", "../../etc/passwd", "README.md", "`id`", "a;b",
                   "frontend/app.js", "old/legacy.js"});

  for (const auto& bad : strings{"refs/heads/a\nb", std::string("refs/heads/a\0b", 13), "main",
                          "refs/heads/\x1b[31m"}) {
    payload["ref"] = bad;
    CHECK(problem_of(payload.dump()).find("field 'ref'") != std::string::npos);
  }
}

TEST_CASE("verify_signature accepts GitHub's documented example and nothing else") {
  const std::string secret = "It's a Secret to Everybody";
  const std::string body = "Hello, World!";
  const std::string good =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
  CHECK(verify_signature(secret, body, good));
  CHECK(verify_signature(secret, body,
                         "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17"));
  CHECK_FALSE(verify_signature(secret, "Hello, World?", good));
  CHECK_FALSE(verify_signature("another secret", body, good));
  CHECK_FALSE(verify_signature("", body, good));
  CHECK_FALSE(verify_signature(secret, body, ""));
  CHECK_FALSE(verify_signature(secret, body, good.substr(7)));            // no prefix
  CHECK_FALSE(verify_signature(secret, body, "sha1=" + good.substr(7)));  // other algorithm
  CHECK_FALSE(verify_signature(secret, body, "SHA256=" + good.substr(7)));
  CHECK_FALSE(verify_signature(secret, body, good.substr(0, good.size() - 1))); // 63 digits
  CHECK_FALSE(verify_signature(secret, body, good + "0"));                      // 65 digits
  CHECK_FALSE(verify_signature(secret, body, good + " "));
  CHECK_FALSE(verify_signature(secret, body, "sha256="));
  CHECK_FALSE(verify_signature(secret, body,
                               "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1g"));
  CHECK_FALSE(verify_signature(secret, body,
                               "sha256=857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
}

TEST_CASE("classify: a bad signature is refused first, then ping, push and other events") {
  const std::string secret = "webhook-secret";
  const std::string body = documented_push;
  const std::string good = signed_header(secret, body);
  const std::string delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
  auto expected_hex = good.substr(7);

  auto unsigned_push = classify({"push", delivery, "", body}, secret);
  REQUIRE(unsigned_push);
  CHECK(unsigned_push->status == 401);

  for (const auto& bad : strings{"sha256=" + std::string(64, '0'), good.substr(0, 40), "sha256=zz",
                          signed_header("other-secret", body)}) {
    for (auto event : {"push", "ping", "issues"}) {
      auto verdict = classify({event, delivery, bad, body}, secret);
      REQUIRE(verdict);
      CHECK(verdict->status == 401);
      CHECK(verdict->message.find(expected_hex) == std::string::npos);
    }
  }
  auto tampered = classify({"push", delivery, good, body + " "}, secret);
  REQUIRE(tampered);
  CHECK(tampered->status == 401);

  auto ping = classify({"ping", delivery, good, body}, secret);
  REQUIRE(ping);
  CHECK(ping->status == 200);
  CHECK(ping->message == "pong");

  auto other = classify({"issues", delivery, good, body}, secret);
  REQUIRE(other);
  CHECK(other->status == 202);

  CHECK_FALSE(classify({"push", delivery, good, body}, secret));

  auto no_event = classify({"", delivery, good, body}, secret);
  REQUIRE(no_event);
  CHECK(no_event->status == 400);
  for (const auto& bad_delivery : strings{"", "../../x", "a b", std::string(101, 'a')}) {
    auto verdict = classify({"push", bad_delivery, good, body}, secret);
    REQUIRE(verdict);
    CHECK(verdict->status == 400);
  }
}
