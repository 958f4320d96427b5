// The webhook floor of issue 4's benchmark: what repl_floor adds when it
// plays the edge (--webhook-port) or a role node (--role). tools/bench/webhook
// starts an edge and 4 role nodes and drives the edge with webhook_load, as
// it drives BlackRoad's fleet.
//
// The least work issue 4 asks of a fleet per push, on this stack:
//   edge: libmicrohttpd (io::http_server), HMAC-SHA256 of the body
//     (io::verify_signature), the push parsed (io::parse_push), the
//     delivery id checked against those seen (in memory) and the changed
//     paths routed by glob to roles (io::match_any_path); then two rows, the
//     delivery id and the deployment (id, repository, sha, ref, roles), in
//     the floor's group commit; the reply once they are durable;
//   replication: the floor's (every node stores every row, full mesh);
//   role node: on storing a deployment row that names its role, a task row
//     "running" in its own group commit, replicated to every node (with
//     --supersede, only for the newest such row of each batch it stores);
//   edge again: when every target task's row is stored, one sample of
//     "arrival -> every task running".
// Left out, so this is below the true floor: superseding, once-only
// hand-over checks, queued and final task rows, statuses, alerts, git,
// starting the script, expiry of delivery ids, metrics.
#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/expected.hpp>

#include "io/http_server.hpp"
#include "runtime/messages.hpp"

namespace bench {

// Tables of io::state_store, as brnode uses them: delivery ids are rows of
// "deployments" under "delivery/".
inline constexpr const char* deployments_table = "deployments";
inline constexpr const char* delivery_prefix = "delivery/";
inline constexpr const char* tasks_table = "tasks";

using inbox_atom = caf::atom_constant<caf::atom("inbox")>;

// Rows the edge's HTTP workers hand to the node's actor: submit() queues
// them and sends the node {inbox_atom, the inbox} when the queue was empty;
// the node takes the queue and fulfils each item's `durable` once its rows
// are.
struct webhook_inbox : std::enable_shared_from_this<webhook_inbox> {
  struct item {
    std::vector<brd::state_entry> rows;
    std::chrono::steady_clock::time_point arrival;
    std::shared_ptr<std::promise<void>> durable;
  };

  // On an HTTP worker: blocks until the rows are durable; false when they
  // are not within 30 s (the node failed).
  bool submit(const caf::actor& node, std::vector<brd::state_entry> rows,
              std::chrono::steady_clock::time_point arrival);
  // On the node's actor: every item submitted since the last call.
  std::vector<item> take();

private:
  std::mutex mutex_;
  std::vector<item> items_;
};

// The edge's secret, as brnode reads it: the file's first line.
std::string read_secret(const std::string& file);

class webhook_edge {
public:
  // `roles[i]` takes paths under `r<i+1>/`, as in tools/bench/webhook.
  webhook_edge(std::string secret, std::vector<std::string> roles);

  // Serves POST /webhooks/github and GET /floor/stats (JSON: accepted;
  // samples, p50_ms, p99_ms, max_ms of arrival -> every task running;
  // durable_p50_ms, durable_p99_ms of arrival -> the deployment durable on
  // the edge; ?reset=1 starts afresh) on 127.0.0.1. A push's rows go to
  // `node` through a webhook_inbox.
  caf::expected<std::unique_ptr<brd::io::http_server>> serve(uint16_t port, caf::actor node);

  // On the node's actor: a deployment row was committed here (before its
  // durable ack), so rows of its tasks may come back.
  void opened(const brd::state_entry& deployment, std::chrono::steady_clock::time_point arrival);
  // On the node's actor: rows a peer sent, stored here.
  void stored(const std::vector<brd::state_entry>& rows);

private:
  brd::io::http_response on_push(const brd::io::http_request& request, const caf::actor& node);
  brd::io::http_response stats(const brd::io::http_request& request);

  struct open_deploy {
    std::chrono::steady_clock::time_point arrival;
    size_t missing = 0;
  };
  std::string secret_;
  std::shared_ptr<webhook_inbox> inbox_ = std::make_shared<webhook_inbox>();
  std::vector<std::pair<std::vector<std::string>, std::string>> routes_; // globs, role
  std::mutex mutex_; // the rest, shared by HTTP workers and the node's actor
  std::unordered_set<std::string> deliveries_;
  std::unordered_map<std::string, open_deploy> open_;
  std::vector<double> samples_ms_;
  std::vector<double> durable_ms_; // arrival -> the deployment durable here
  uint64_t accepted_ = 0, counter_ = 0;
};

// A role node's part: the task rows "running" for deployments naming `role`
// among the rows just stored; with `supersede`, only for the newest of them
// (the others would be superseded by it, as brnode supersedes tasks that
// wait: the floor writes nothing for them).
std::vector<brd::state_entry> running_rows(const std::string& role, const std::string& node,
                                           const std::vector<brd::state_entry>& stored,
                                           bool supersede);

} // namespace bench

// Sent within the process only.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<bench::webhook_inbox>)
