// A coordinator (event-based) owns the queues; a few detached workers do
// the blocking HTTP calls, one post at a time each.
#include "actors/status_poster.hpp"

#include <deque>
#include <set>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "io/metrics.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"

namespace brd {

namespace {

using clock = std::chrono::steady_clock;

// -- one HTTP call ------------------------------------------------------------------

// "https://hooks.slack.com" of a URL: the rest may hold a secret (Slack's
// webhook URLs do), so logs name only this.
std::string url_origin(const std::string& url) {
  auto scheme_end = url.find("://");
  auto path_at = scheme_end == std::string::npos ? url.find('/') : url.find('/', scheme_end + 3);
  return url.substr(0, path_at);
}

enum class outcome : uint8_t { sent, retry, drop };

struct attempt_result {
  outcome what = outcome::drop;
  std::string detail; // status or error, for the log
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, attempt_result& x) {
  return f(caf::meta::type_name("attempt_result"), x.what, x.detail);
}

attempt_result attempt(const outgoing_post& post, std::chrono::milliseconds timeout) {
  auto reply = post_json(post.url, post.body, post.headers, timeout);
  if (!reply) {
    bool bad_url = has_code(reply.error(), brd_errc::refused);
    return {bad_url ? outcome::drop : outcome::retry, describe(reply.error())};
  }
  auto status = reply->status;
  auto detail = "HTTP " + std::to_string(status);
  if (status >= 200 && status < 300)
    return {outcome::sent, detail};
  if (status == 429 || status >= 500)
    return {outcome::retry, detail};
  return {outcome::drop, detail + ": " + reply->body.substr(0, 200)};
}

// -- the coordinator -----------------------------------------------------------------

struct queued_post {
  outgoing_post post;
  uint32_t attempts = 0;
  clock::time_point first_at = clock::now();
};

struct poster_state {
  poster_options opts;
  std::vector<caf::actor> idle;
  std::unordered_map<std::string, std::deque<queued_post>> queues;
  std::set<std::string> busy;     // keys with a post in flight or waiting to retry
  std::deque<std::string> ready;  // keys whose front post may go now
  size_t queued = 0;
  poster_stats stats;
  io::counter* sent_total = nullptr;
  io::counter* failed_total = nullptr;
};

using poster_ptr = poster_actor::stateful_pointer<poster_state>;

caf::behavior worker_behavior(caf::event_based_actor*, std::chrono::milliseconds timeout) {
  return {[timeout](post_atom, const outgoing_post& post) { return attempt(post, timeout); }};
}

void pump(poster_ptr self);

void finish(poster_ptr self, const std::string& key, caf::actor worker, const attempt_result& r) {
  auto& st = self->state;
  st.idle.push_back(std::move(worker));
  auto& q = st.queues[key];
  auto& front = q.front();
  bool newer_waiting = q.size() > 1;
  bool too_old = clock::now() - front.first_at > st.opts.give_up;
  if (r.what == outcome::retry && !newer_waiting && !too_old) {
    ++st.stats.retried;
    auto backoff = st.opts.backoff_min * (1u << std::min<uint32_t>(front.attempts - 1, 16));
    backoff = std::min(backoff, st.opts.backoff_max);
    log::deploy()->debug("POST to {} failed ({}); retry {} in {} ms", url_origin(front.post.url), r.detail,
                         front.attempts, backoff.count());
    self->delayed_send(self, backoff, retry_atom::value, key);
    pump(self);
    return;
  }
  if (r.what == outcome::sent) {
    ++st.stats.sent;
    if (st.sent_total)
      st.sent_total->inc();
  } else {
    ++st.stats.dropped;
    if (st.failed_total)
      st.failed_total->inc();
    if (r.what == outcome::retry && newer_waiting)
      log::deploy()->debug("POST to {} failed ({}); a newer one of its key replaces it",
                           url_origin(front.post.url), r.detail);
    else
      log::deploy()->warn("gave up on POST to {} after {} attempts: {}",
                          url_origin(front.post.url), front.attempts, r.detail);
  }
  q.pop_front();
  --st.queued;
  st.busy.erase(key);
  if (q.empty())
    st.queues.erase(key);
  else
    st.ready.push_back(key);
  pump(self);
}

void pump(poster_ptr self) {
  auto& st = self->state;
  while (!st.idle.empty() && !st.ready.empty()) {
    auto key = std::move(st.ready.front());
    st.ready.pop_front();
    auto worker = st.idle.back();
    st.idle.pop_back();
    st.busy.insert(key);
    auto& front = st.queues[key].front();
    ++front.attempts;
    self->request(worker, caf::infinite, post_atom::value, front.post)
      .then([=](attempt_result& r) { finish(self, key, worker, r); },
            [=](caf::error& err) {
              finish(self, key, worker, {outcome::retry, describe(err)});
            });
  }
}

void enqueue(poster_ptr self, outgoing_post post) {
  auto& st = self->state;
  if (st.queued >= st.opts.max_queued) {
    ++st.stats.dropped;
    log::deploy()->warn("outgoing POST queue is full ({} posts); dropped one to {}",
                        st.queued, url_origin(post.url));
    return;
  }
  auto key = post.key;
  auto& q = st.queues[key];
  q.push_back({std::move(post)});
  ++st.queued;
  if (q.size() == 1 && st.busy.count(key) == 0)
    st.ready.push_back(key);
  pump(self);
}

outgoing_post status_post(const poster_options& opts, const commit_status& s) {
  outgoing_post post;
  post.key = "status/" + s.repo + "/" + s.sha + "/" + s.context;
  auto base = opts.api_url;
  while (!base.empty() && base.back() == '/')
    base.pop_back();
  post.url = base + "/repos/" + s.repo + "/statuses/" + s.sha;
  post.body = nlohmann::json{{"state", s.state}, {"context", s.context},
                             {"description", s.description}, {"target_url", s.target_url}}
                .dump();
  post.headers = {{"Authorization", "Bearer " + opts.token},
                  {"Accept", "application/vnd.github+json"},
                  {"User-Agent", "blackroad-brnode"}};
  return post;
}

poster_actor::behavior_type poster(poster_ptr self, poster_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  if (st.opts.metrics) {
    st.sent_total = &st.opts.metrics->counter("brnode_outgoing_posts_total",
                                              "Outgoing status and alert POSTs",
                                              {{"result", "sent"}});
    st.failed_total = &st.opts.metrics->counter("brnode_outgoing_posts_total",
                                                "Outgoing status and alert POSTs",
                                                {{"result", "dropped"}});
  }
  auto timeout = st.opts.timeout;
  for (size_t i = 0; i < std::max<size_t>(1, st.opts.workers); ++i) {
    auto worker = self->system().spawn<caf::detached>(worker_behavior, timeout);
    self->link_to(worker);
    st.idle.push_back(worker);
  }
  return {
    [=](commit_status& s) {
      if (self->state.opts.token.empty())
        return;
      enqueue(self, status_post(self->state.opts, s));
    },
    [=](outgoing_post& post) { enqueue(self, std::move(post)); },
    [=](get_atom) {
      auto out = self->state.stats;
      out.queued = self->state.queued;
      return out;
    },
    [=](retry_atom, const std::string& key) {
      auto& st = self->state;
      st.busy.erase(key);
      auto i = st.queues.find(key);
      if (i == st.queues.end())
        return;
      // A newer post of this key came while we waited: only it matters.
      while (i->second.size() > 1) {
        i->second.pop_front();
        --st.queued;
        ++st.stats.dropped;
      }
      st.ready.push_back(key);
      pump(self);
    },
  };
}

} // namespace

poster_actor spawn_status_poster(caf::actor_system& sys, poster_options opts) {
  return sys.spawn(poster, std::move(opts));
}

caf::expected<io::http_response> post_json(const std::string& url, const std::string& body,
                                           const std::map<std::string, std::string>& headers,
                                           std::chrono::milliseconds timeout) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos
      || (url.compare(0, scheme_end, "http") != 0 && url.compare(0, scheme_end, "https") != 0))
    return make_error(brd_errc::refused, "not an http:// or https:// URL: " + url_origin(url));
  auto path_at = url.find('/', scheme_end + 3);
  auto base = url.substr(0, path_at);
  auto path = path_at == std::string::npos ? std::string{"/"} : url.substr(path_at);
  httplib::Client client{base};
  if (!client.is_valid())
    return make_error(brd_errc::refused, "cannot use URL " + base);
  // Messages name only scheme, host and port: the path may hold a secret.
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  client.set_keep_alive(false);
  httplib::Headers extra;
  for (const auto& [name, value] : headers)
    extra.emplace(name, value);
  auto result = client.Post(path, extra, body, "application/json");
  if (!result)
    return make_error(result.error() == httplib::Error::ConnectionTimeout
                          || result.error() == httplib::Error::Read
                        ? brd_errc::timeout
                        : brd_errc::io_failure,
                      "POST to " + base + " failed: " + httplib::to_string(result.error()));
  io::http_response out;
  out.status = result->status;
  out.body = std::move(result->body);
  out.content_type = result->get_header_value("Content-Type");
  return out;
}

} // namespace brd
