#include "io/deploy_records.hpp"

#include "io/codec_detail.hpp"

namespace brd::io {

// -- field lists (io/codec_detail.hpp) ---------------------------------------

template <class Visitor, codec_detail::record_of<task_record> Record>
void fields(Visitor& f, Record& x) {
  f("deploy_id", x.deploy_id);
  f("task_id", x.task_id);
  f("kind", x.kind);
  f("repo", x.repo);
  f("sha", x.sha);
  f("ref", x.ref);
  f("role", x.role);
  f("node", x.node);
  f("state", x.state);
  f("exit_code", x.exit_code);
  f("reason", x.reason);
  f("log_tail", x.log_tail);
  f("log_path", x.log_path);
  f("queued_at_ms", x.queued_at_ms);
  f("started_at_ms", x.started_at_ms);
  f("finished_at_ms", x.finished_at_ms);
  f("attempt", x.attempt);
}

template <class Visitor, codec_detail::record_of<deployment_record> Record>
void fields(Visitor& f, Record& x) {
  f("id", x.id);
  f("kind", x.kind);
  f("repo", x.repo);
  f("sha", x.sha);
  f("ref", x.ref);
  f("before", x.before);
  f("pusher", x.pusher);
  f("delivery", x.delivery);
  f("state", x.state);
  f("task_ids", x.task_ids);
  f("changed", x.changed);
  f("created_at_ms", x.created_at_ms);
  f("finished_at_ms", x.finished_at_ms);
  f("verdicts", x.verdicts);
}

template <class Visitor, codec_detail::record_of<alert_record> Record>
void fields(Visitor& f, Record& x) {
  f("id", x.id);
  f("kind", x.kind);
  f("text", x.text);
  f("deploy_id", x.deploy_id);
  f("task_id", x.task_id);
  f("node", x.node);
  f("at_ms", x.at_ms);
}

namespace {

// The same fields as JSON, for the HTTP API and brsh.
struct json_writer {
  nlohmann::json& out;
  template <class T>
  void operator()(std::string_view name, const T& value) {
    out[std::string{name}] = value;
  }
};

template <class Record>
void write_json(nlohmann::json& j, const Record& x) {
  j = nlohmann::json::object();
  j["v"] = x.v;
  json_writer writer{j};
  fields(writer, x);
}

} // namespace

void to_json(nlohmann::json& j, const task_record& x) {
  write_json(j, x);
}
void to_json(nlohmann::json& j, const deployment_record& x) {
  write_json(j, x);
}
void to_json(nlohmann::json& j, const alert_record& x) {
  write_json(j, x);
}

// -- reasons -------------------------------------------------------------------

std::string superseded_reason(std::string_view sha, std::string_view deploy_id) {
  return std::string{superseded_prefix} + std::string{sha.substr(0, 12)} + " ("
         + std::string{deploy_id} + ")";
}

bool is_superseded_reason(std::string_view reason) {
  return reason.substr(0, superseded_prefix.size()) == superseded_prefix;
}

std::string verdict_state(std::string_view reason) {
  return is_superseded_reason(reason) ? "superseded" : "failed";
}

// -- msgpack -------------------------------------------------------------------

std::string encode(const task_record& x) {
  return codec_detail::encode_record(x);
}
std::string encode(const deployment_record& x) {
  return codec_detail::encode_record(x);
}
std::string encode(const alert_record& x) {
  return codec_detail::encode_record(x);
}

caf::expected<task_record> decode_task_record(std::string_view bytes) {
  return codec_detail::decode_record<task_record>(bytes, "task_record");
}
caf::expected<deployment_record> decode_deployment_record(std::string_view bytes) {
  return codec_detail::decode_record<deployment_record>(bytes, "deployment_record");
}
caf::expected<alert_record> decode_alert_record(std::string_view bytes) {
  return codec_detail::decode_record<alert_record>(bytes, "alert_record");
}

// -- other rows as JSON ------------------------------------------------------------

std::string encode_record(const nlohmann::json& j) {
  auto bytes = nlohmann::json::to_msgpack(j);
  return std::string{bytes.begin(), bytes.end()};
}

caf::expected<nlohmann::json> decode_record(std::string_view bytes) {
  auto j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(brd_errc::io_failure,
                      "corrupt record: not a msgpack map");
  return j;
}

} // namespace brd::io
