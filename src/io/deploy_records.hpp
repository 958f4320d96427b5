// Records of push-to-deploy as they live in the replicated state tables.
// Each is encoded as a msgpack map with a "v" schema version, by the same
// msgpack-c codec as the state's own records (io/codec_detail.hpp), so
// state_store accepts it and older readers ignore fields they do not know.
// The same fields as JSON are what /api/deployments and brsh show.
//
// Table      key                           owner (only writer)
// deployments <deploy_id>                  the dispatching edge node
// deployments delivery/<X-GitHub-Delivery> the edge node that received it
//                                          (pushes that start nothing; a
//                                          deployment's record carries its
//                                          push's delivery id instead)
// tasks      <deploy_id>/<task_id>         the node named in the row, from
//                                          queued on; rows without a node
//                                          (unassigned) the dispatcher. The
//                                          dispatcher's verdicts on a node's
//                                          task ("node lost") go into the
//                                          deployment record (`verdicts`).
// alerts     <time>/<id>                   the node that raised it
// deployments rollback/<repo>/<sha>        whoever rolled back (fleet-wide
//                                          "do not auto-deploy" mark)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

namespace brd::io {

// Task states: queued -> running -> succeeded | failed | timed_out;
// queued -> superseded when a newer deploy of the same repository and role
// reached the node before it ran; unassigned when no live node holds the
// role. A task superseded before it was sent to its node has no row: its
// deployment's `verdicts` say so.
struct task_record {
  static constexpr uint32_t current_version = 100; // major 1, minor 0
  uint32_t v = current_version;
  std::string deploy_id, task_id, kind = "deploy";
  std::string repo, sha, ref, role, node;
  std::string state = "queued";
  int exit_code = -1;
  std::string reason;   // why it failed, e.g. "node lost", "exit code 3"
  std::string log_tail; // last lines of the script's output
  std::string log_path; // on the executing node
  int64_t queued_at_ms = 0, started_at_ms = 0, finished_at_ms = 0;
  uint32_t attempt = 1;
};

struct deployment_record {
  static constexpr uint32_t current_version = 100;
  uint32_t v = current_version;
  std::string id, kind = "deploy"; // "deploy" | "rollback"
  std::string repo, sha, ref, before, pusher;
  // The X-GitHub-Delivery id of the push that started it (empty for
  // rollbacks and retries): replays of it are refused for github.delivery_ttl.
  std::string delivery;
  std::string state = "pending"; // pending | success | failure
  std::vector<std::string> task_ids;
  std::vector<std::string> changed; // first 100 changed paths
  int64_t created_at_ms = 0, finished_at_ms = 0;
  // The dispatcher's own word on tasks it settled without their node, by
  // task id: "node lost", "node X did not take the task: ...", "no progress
  // from node X", or a superseded_reason (a newer push's task for the same
  // node was waiting to be sent with it). The task row stays its node's;
  // readers (the API) show such a task with this reason, failed or
  // superseded (verdict_state), unless its row is final.
  std::map<std::string, std::string> verdicts;
};

// The reason of a task a newer push superseded before it ran, in its row (the
// deployer) or its deployment's verdicts (the dispatcher):
// "superseded by <sha, 12 digits> (<deploy_id>)".
inline constexpr std::string_view superseded_prefix = "superseded by ";
std::string superseded_reason(std::string_view sha, std::string_view deploy_id);
bool is_superseded_reason(std::string_view reason);

// The state a verdict gives a task: "superseded" or "failed".
std::string verdict_state(std::string_view reason);

struct alert_record {
  static constexpr uint32_t current_version = 100;
  uint32_t v = current_version;
  std::string id, kind; // deploy_failed | node_offline | long_build | unassigned
  std::string text;     // one sentence for humans (and Slack)
  std::string deploy_id, task_id, node;
  int64_t at_ms = 0;
};

// The JSON the HTTP API shows (nlohmann::json(record)).
void to_json(nlohmann::json& j, const task_record& x);
void to_json(nlohmann::json& j, const deployment_record& x);
void to_json(nlohmann::json& j, const alert_record& x);

// msgpack bytes for the state tables.
std::string encode(const task_record& x);
std::string encode(const deployment_record& x);
std::string encode(const alert_record& x);

// Missing fields keep their defaults; unknown fields are ignored. Bytes that
// are not such a map, or a known field of the wrong type, give
// brd_errc::io_failure "corrupt record: ...".
caf::expected<task_record> decode_task_record(std::string_view bytes);
caf::expected<deployment_record> decode_deployment_record(std::string_view bytes);
caf::expected<alert_record> decode_alert_record(std::string_view bytes);

// decode<task_record>(bytes) and so on.
template <class Record>
caf::expected<Record> decode(std::string_view bytes) {
  if constexpr (std::is_same_v<Record, task_record>)
    return decode_task_record(bytes);
  else if constexpr (std::is_same_v<Record, deployment_record>)
    return decode_deployment_record(bytes);
  else {
    static_assert(std::is_same_v<Record, alert_record>, "not a deploy record");
    return decode_alert_record(bytes);
  }
}

// Rows that have no record type (delivery ids of pushes that start nothing,
// rollback marks): msgpack bytes of a JSON object, and back; the latter
// fails with brd_errc::io_failure "corrupt record" when the bytes are not a
// msgpack map.
std::string encode_record(const nlohmann::json& j);
caf::expected<nlohmann::json> decode_record(std::string_view bytes);

} // namespace brd::io
