// The payload is read with one field_reader that remembers the first problem
// it meets, so parse_push reads like the payload's shape and still reports
// exactly what is wrong. See github_webhook.hpp for the contract.
#include "io/github_webhook.hpp"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "io/git.hpp"
#include "io/hmac.hpp"
#include "runtime/errors.hpp"

namespace brd::io {

namespace {

using json = nlohmann::json;

constexpr std::string_view signature_prefix = "sha256=";

// Reads typed fields, keeping the first problem. A field that is missing or
// wrong reads as empty, so reading can go on; only the first problem counts.
class field_reader {
public:
  // `where` is the dotted path of `obj` ("" for the root), for messages.
  const json& object(const json& obj, std::string_view where, const char* key,
                     bool required = true) {
    return typed(obj, where, key, json::value_t::object, "an object", required);
  }
  const json& array(const json& obj, std::string_view where, const char* key,
                    bool required = true) {
    return typed(obj, where, key, json::value_t::array, "an array", required);
  }
  std::string string(const json& obj, std::string_view where, const char* key,
                     bool required = true) {
    const auto& value = typed(obj, where, key, json::value_t::string, "a string", required);
    return value.is_string() ? value.get<std::string>() : std::string{};
  }
  bool boolean(const json& obj, std::string_view where, const char* key) {
    const auto& value = typed(obj, where, key, json::value_t::boolean, "a boolean", true);
    return value.is_boolean() && value.get<bool>();
  }

  void fail(std::string problem) {
    if (!problem_)
      problem_ = std::move(problem);
  }

  caf::error error() const {
    if (!problem_)
      return {};
    return make_error(brd_errc::refused, "push payload: " + *problem_);
  }

private:
  static std::string name_of(std::string_view where, const char* key) {
    return where.empty() ? std::string{key} : std::string{where} + "." + key;
  }

  // Null counts as absent: GitHub sends head_commit: null for a deletion.
  const json& typed(const json& obj, std::string_view where, const char* key,
                    json::value_t type, const char* type_name, bool required) {
    static const json none;
    if (!obj.is_object())
      return none;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
      if (required)
        fail("missing field '" + name_of(where, key) + "'");
      return none;
    }
    if (it->type() != type) {
      fail("field '" + name_of(where, key) + "' must be " + type_name + ", not "
           + it->type_name());
      return none;
    }
    return *it;
  }

  std::optional<std::string> problem_;
};

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

bool has_control_character(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// One GitHub owner or repository name, safe as a path component.
bool is_name_part(std::string_view s) {
  return !s.empty() && s.size() <= 100 && s != "." && s != ".."
         && std::all_of(s.begin(), s.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                     || c == '.' || c == '_' || c == '-';
            });
}

bool is_full_name(std::string_view s) {
  auto slash = s.find('/');
  return slash != std::string_view::npos && is_name_part(s.substr(0, slash))
         && is_name_part(s.substr(slash + 1));
}

void check_commit_ids(field_reader& in, const push_event& ev) {
  for (auto [name, sha] : {std::pair{"before", &ev.before}, std::pair{"after", &ev.after}})
    if (!sha->empty() && !is_commit_id(*sha) && !is_zero_commit_id(*sha))
      in.fail(std::string{"field '"} + name + "' must be a commit id (40 lowercase hex digits)");
}

void check_names(field_reader& in, const push_event& ev) {
  if (!ev.ref.empty() && (!ev.ref.starts_with("refs/") || has_control_character(ev.ref)))
    in.fail("field 'ref' must start with refs/ and hold no control characters");
  if (!ev.repo.empty() && !is_full_name(ev.repo))
    in.fail("field 'repository.full_name' must be owner/name of letters, digits, '.', '_', '-'");
}

// The union of added, modified and removed over all commits.
std::vector<std::string> changed_paths(field_reader& in, const json& commits) {
  std::set<std::string> paths;
  size_t index = 0;
  for (const auto& commit : commits) {
    auto where = "commits[" + std::to_string(index++) + "]";
    if (!commit.is_object()) {
      in.fail("'" + where + "' must be an object");
      break;
    }
    for (const char* list : {"added", "modified", "removed"}) {
      for (const auto& path : in.array(commit, where, list, false)) {
        if (!path.is_string()) {
          in.fail("'" + where + "." + list + "' must hold only strings");
          break;
        }
        paths.insert(path.get<std::string>());
      }
    }
  }
  return {paths.begin(), paths.end()};
}

caf::expected<json> parse_json(std::string_view body) {
  try {
    return json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    std::string what = e.what(); // "[json.exception.parse_error.101] parse error at ..."
    auto bracket = what.find("] ");
    if (bracket != std::string::npos)
      what.erase(0, bracket + 2);
    // The message quotes the offending token: keep it short and printable.
    if (what.size() > 200)
      what = what.substr(0, 200) + "...";
    std::replace_if(what.begin(), what.end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f;
    }, '?');
    return make_error(brd_errc::refused, "malformed JSON: " + what);
  } catch (const std::exception& e) { // std::bad_alloc on a huge document
    return make_error(brd_errc::refused, std::string{"cannot read the payload: "} + e.what());
  }
}

} // namespace

bool verify_signature(std::string_view secret, std::string_view body,
                      std::string_view header_value) {
  if (secret.empty() || !header_value.starts_with(signature_prefix))
    return false;
  auto given = std::string{header_value.substr(signature_prefix.size())};
  if (given.size() != 64 || !is_hex(given))
    return false;
  std::transform(given.begin(), given.end(), given.begin(),
                 [](char c) { return (c >= 'A' && c <= 'F') ? static_cast<char>(c + 32) : c; });
  return constant_time_equal(hmac_sha256_hex(secret, body), given);
}

bool is_delivery_id(std::string_view delivery) {
  return !delivery.empty() && delivery.size() <= 100
         && std::all_of(delivery.begin(), delivery.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                     || c == '-';
            });
}

std::optional<webhook_verdict> classify(const webhook_request& request,
                                        std::string_view secret) {
  if (request.signature.empty())
    return webhook_verdict{401, "missing X-Hub-Signature-256"};
  if (!verify_signature(secret, request.body, request.signature))
    return webhook_verdict{401, "bad signature"};
  if (request.event.empty())
    return webhook_verdict{400, "missing X-GitHub-Event"};
  if (!is_delivery_id(request.delivery))
    return webhook_verdict{400, "missing or malformed X-GitHub-Delivery"};
  if (request.event == "ping")
    return webhook_verdict{200, "pong"};
  if (request.event != "push")
    return webhook_verdict{202, "event ignored"};
  return std::nullopt;
}

caf::expected<push_event> parse_push(std::string_view body, std::string_view delivery) {
  auto parsed = parse_json(body);
  if (!parsed)
    return parsed.error();
  const json& root = *parsed;
  field_reader in;
  if (!root.is_object())
    in.fail(std::string{"the payload must be a JSON object, not "} + root.type_name());
  push_event ev;
  ev.delivery = std::string{delivery};
  ev.ref = in.string(root, "", "ref");
  ev.before = in.string(root, "", "before");
  ev.after = in.string(root, "", "after");
  ev.created = in.boolean(root, "", "created");
  ev.deleted = in.boolean(root, "", "deleted");
  ev.forced = in.boolean(root, "", "forced");
  ev.repo = in.string(in.object(root, "", "repository"), "repository", "full_name");
  ev.pusher = in.string(in.object(root, "", "pusher"), "pusher", "name");
  ev.sender = in.string(in.object(root, "", "sender", false), "sender", "login", false);
  const auto& commits = in.array(root, "", "commits");
  ev.truncated = commits.size() >= max_push_commits;
  ev.changed = changed_paths(in, commits);
  ev.head_message =
    in.string(in.object(root, "", "head_commit", false), "head_commit", "message", false);
  check_commit_ids(in, ev);
  check_names(in, ev);
  if (auto err = in.error())
    return err;
  return ev;
}

webhook_verdict bad_payload(const caf::error& parse_error) {
  return {400, describe(parse_error)};
}

std::string branch_of(std::string_view ref) {
  constexpr std::string_view heads = "refs/heads/";
  return ref.starts_with(heads) ? std::string{ref.substr(heads.size())} : std::string{};
}

bool is_tag_ref(std::string_view ref) {
  return ref.starts_with("refs/tags/");
}

} // namespace brd::io
