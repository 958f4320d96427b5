// The status poster: outgoing JSON POSTs that must eventually land but may
// never hold anything up, GitHub commit statuses first among them.
//
// Senders fire and forget. Each post has a key; posts of one key go out one
// at a time, in order (a status context's "pending" lands before its
// "success"); posts of different keys go out in parallel on a few worker
// threads. A post that fails for a reason worth retrying (no connection, a
// timeout, HTTP 429 or 5xx) is retried with capped exponential backoff until
// it is `give_up` old, unless a newer post of the same key is waiting: then
// it is dropped, since only the newest state matters. Other statuses (4xx:
// bad token, unknown sha) are logged and dropped. Nothing here blocks a
// deploy: the queue is bounded and the oldest post goes when it is full.
//
// Commit statuses go to `POST {api_url}/repos/{owner}/{repo}/statuses/{sha}`
// with `Authorization: Bearer <token>`; without a token they are dropped.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "io/http_server.hpp"
#include "runtime/messages.hpp"

namespace brd {

namespace io {
class metrics_registry;
}

using post_atom = caf::atom_constant<caf::atom("post")>;

// One GitHub commit status. `state` is pending, success, failure or error.
struct commit_status {
  std::string repo; // owner/name
  std::string sha;
  std::string state;
  std::string context;
  std::string description;
  std::string target_url;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, commit_status& x) {
  return f(caf::meta::type_name("commit_status"), x.repo, x.sha, x.state, x.context,
           x.description, x.target_url);
}

// Any JSON POST (the alerter's).
struct outgoing_post {
  std::string key;  // posts of one key keep their order
  std::string url;  // http:// or https://
  std::string body; // JSON
  std::map<std::string, std::string> headers;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, outgoing_post& x) {
  return f(caf::meta::type_name("outgoing_post"), x.key, x.url, x.body, x.headers);
}

struct poster_stats {
  uint64_t sent = 0, retried = 0, dropped = 0, queued = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, poster_stats& x) {
  return f(caf::meta::type_name("poster_stats"), x.sent, x.retried, x.dropped, x.queued);
}

using poster_actor = caf::typed_actor<
  caf::reacts_to<commit_status>, caf::reacts_to<outgoing_post>,
  caf::replies_to<get_atom>::with<poster_stats>,
  // internal: a post's retry time has come (key).
  caf::reacts_to<retry_atom, std::string>>;

struct poster_options {
  std::string api_url = "https://api.github.com";
  std::string token; // empty: commit statuses are dropped
  size_t workers = 4;
  size_t max_queued = 100000;
  std::chrono::milliseconds timeout{5000}; // per attempt
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds give_up{std::chrono::minutes{30}};
  std::shared_ptr<io::metrics_registry> metrics;
};

poster_actor spawn_status_poster(caf::actor_system& sys, poster_options opts);

// One blocking POST of `body` (Content-Type application/json) to an http://
// or https:// URL. Errors as io::http_post; a URL it cannot read is
// brd_errc::refused.
caf::expected<io::http_response> post_json(const std::string& url, const std::string& body,
                                           const std::map<std::string, std::string>& headers,
                                           std::chrono::milliseconds timeout);

} // namespace brd
