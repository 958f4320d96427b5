#include "io/deploy_records.hpp"

#include <map>

#include "runtime/errors.hpp"

namespace brd::io {

namespace {

// Reads `key` into `into` when present with a compatible type.
template <class T>
void take(const nlohmann::json& j, const char* key, T& into) {
  auto i = j.find(key);
  if (i == j.end())
    return;
  if constexpr (std::is_same_v<T, std::string>) {
    if (i->is_string())
      into = i->get<std::string>();
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (!i->is_array())
      return;
    into.clear();
    for (const auto& item : *i)
      if (item.is_string())
        into.push_back(item.get<std::string>());
  } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
    if (!i->is_object())
      return;
    into.clear();
    for (auto item = i->begin(); item != i->end(); ++item)
      if (item->is_string())
        into.emplace(item.key(), item->template get<std::string>());
  } else {
    if (i->is_number())
      into = i->get<T>();
  }
}

} // namespace

#define BRD_RECORD_FIELD(name) j[#name] = x.name;
#define BRD_RECORD_TAKE(name) take(j, #name, x.name);

#define BRD_TASK_FIELDS(F)                                                     \
  F(v) F(deploy_id) F(task_id) F(kind) F(repo) F(sha) F(ref) F(role) F(node)   \
  F(state) F(exit_code) F(reason) F(log_tail) F(log_path) F(queued_at_ms)      \
  F(started_at_ms) F(finished_at_ms) F(attempt)
#define BRD_DEPLOYMENT_FIELDS(F)                                               \
  F(v) F(id) F(kind) F(repo) F(sha) F(ref) F(before) F(pusher) F(delivery)     \
  F(state) F(task_ids) F(changed) F(created_at_ms) F(finished_at_ms) F(verdicts)
#define BRD_ALERT_FIELDS(F)                                                    \
  F(v) F(id) F(kind) F(text) F(deploy_id) F(task_id) F(node) F(at_ms)

void to_json(nlohmann::json& j, const task_record& x) {
  j = nlohmann::json::object();
  BRD_TASK_FIELDS(BRD_RECORD_FIELD)
}
void from_json(const nlohmann::json& j, task_record& x) {
  BRD_TASK_FIELDS(BRD_RECORD_TAKE)
}
void to_json(nlohmann::json& j, const deployment_record& x) {
  j = nlohmann::json::object();
  BRD_DEPLOYMENT_FIELDS(BRD_RECORD_FIELD)
}
void from_json(const nlohmann::json& j, deployment_record& x) {
  BRD_DEPLOYMENT_FIELDS(BRD_RECORD_TAKE)
}
void to_json(nlohmann::json& j, const alert_record& x) {
  j = nlohmann::json::object();
  BRD_ALERT_FIELDS(BRD_RECORD_FIELD)
}
void from_json(const nlohmann::json& j, alert_record& x) {
  BRD_ALERT_FIELDS(BRD_RECORD_TAKE)
}

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
