// Validation and parsing of GitHub's POST /webhooks/github, as pure functions
// of the request: no I/O, no state, safe from any thread, nothing throws.
// The HTTP server enforces the body size limit (413) before any of this, and
// the caller answers 404 for repositories the config does not name and 200
// "duplicate" for a delivery id already seen.
//
// Everything in a payload is plain data: a branch named "$(rm -rf /)" is
// parsed, stored and matched as those characters and never interpreted.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

namespace brd::io {

struct webhook_verdict {
  int status = 200;
  std::string message; // a short reply body; never holds a signature or secret
};

// The parts of the request that matter, as received.
struct webhook_request {
  std::string_view event;     // X-GitHub-Event
  std::string_view delivery;  // X-GitHub-Delivery
  std::string_view signature; // X-Hub-Signature-256
  std::string_view body;      // the raw body, exactly the bytes GitHub signed
};

// GitHub stops listing commits at this many; such a payload is truncated.
inline constexpr size_t max_push_commits = 2048;

struct push_event {
  std::string delivery; // X-GitHub-Delivery
  std::string repo;     // repository.full_name, "owner/name"
  std::string ref;      // "refs/heads/main", "refs/tags/v1"
  std::string before, after; // 40 hex digits; all zeros for a new or deleted ref
  std::string pusher;   // pusher.name
  std::string sender;   // sender.login, empty when absent
  bool created = false, deleted = false, forced = false;
  bool truncated = false; // commits[] held max_push_commits or more
  // Union of commits[].added, .modified and .removed: sorted, unique. When
  // truncated or forced, compute the diff with git instead.
  std::vector<std::string> changed;
  std::string head_message; // head_commit.message, empty when absent
};

// True when `header_value` is "sha256=" followed by the 64 hex digits of
// HMAC-SHA256(secret, body), compared in constant time (the hex may be in
// either case). An empty secret verifies nothing.
bool verify_signature(std::string_view secret, std::string_view body,
                      std::string_view header_value);

// 1 to 100 letters, digits and '-': the shape of GitHub's delivery GUIDs.
bool is_delivery_id(std::string_view delivery);

// The first gate, in this order: a missing or wrong signature gives 401, a
// missing event name or delivery id 400, "ping" 200 and any event other than
// "push" 202, each as the reply to send. std::nullopt means a signed push:
// go on with parse_push.
std::optional<webhook_verdict> classify(const webhook_request& request,
                                        std::string_view secret);

// Reads a push payload. Errors (brd_errc::refused, answer 400 with
// bad_payload) name the problem: malformed JSON with its position, a missing
// field, a field of the wrong type, before/after that are not commit ids, a
// ref outside refs/ or holding control characters, a repository name that is
// not "owner/name" of letters, digits, '.', '_' and '-' (so it is safe as two
// path components).
caf::expected<push_event> parse_push(std::string_view body, std::string_view delivery = {});

// The 400 reply for an error of parse_push.
webhook_verdict bad_payload(const caf::error& parse_error);

// "main" for "refs/heads/main"; empty for anything else.
std::string branch_of(std::string_view ref);

// True for "refs/tags/...".
bool is_tag_ref(std::string_view ref);

} // namespace brd::io
