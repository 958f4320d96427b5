#include "floor_webhook.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <caf/send.hpp>

#include "io/github_webhook.hpp"
#include "io/glob.hpp"
#include "runtime/wall_clock.hpp"
#include "util.hpp"

namespace bench {

namespace {

using steady_clock = std::chrono::steady_clock;

std::string header(const brd::io::http_request& request, const std::string& name) {
  auto i = request.headers.find(name);
  return i == request.headers.end() ? std::string{} : i->second;
}

// The roles a deployment row names (the last line of its record's payload,
// comma-separated).
std::vector<std::string> roles_of(const std::string& value) {
  std::vector<std::string> out;
  std::stringstream in{value.substr(value.rfind('\n') + 1)};
  for (std::string role; std::getline(in, role, ',');)
    out.push_back(role);
  return out;
}

} // namespace

bool webhook_inbox::submit(const caf::actor& node, std::vector<brd::state_entry> rows,
                           steady_clock::time_point arrival) {
  auto durable = std::make_shared<std::promise<void>>();
  auto done = durable->get_future();
  bool first = false;
  {
    std::lock_guard guard{mutex_};
    first = items_.empty();
    items_.push_back({std::move(rows), arrival, std::move(durable)});
  }
  if (first) // else the message that takes them is on its way
    caf::anon_send(node, inbox_atom::value, shared_from_this());
  return done.wait_for(std::chrono::seconds{30}) == std::future_status::ready;
}

std::vector<webhook_inbox::item> webhook_inbox::take() {
  std::vector<item> out;
  std::lock_guard guard{mutex_};
  out.swap(items_);
  return out;
}

std::string read_secret(const std::string& file) {
  std::ifstream in{file};
  std::string line;
  std::getline(in, line);
  return line;
}

webhook_edge::webhook_edge(std::string secret, std::vector<std::string> roles)
  : secret_(std::move(secret)) {
  for (size_t i = 0; i < roles.size(); ++i)
    routes_.push_back({{"r" + std::to_string(i + 1) + "/**"}, roles[i]});
}

caf::expected<std::unique_ptr<brd::io::http_server>>
webhook_edge::serve(uint16_t port, caf::actor node) {
  std::vector<brd::io::http_route> routes{
    {"POST", "/webhooks/github",
     [this, node](const brd::io::http_request& r) { return on_push(r, node); }},
    {"GET", "/floor/stats", [this](const brd::io::http_request& r) { return stats(r); }},
  };
  // As brnode's edge: 16 workers, GitHub's 25 MB cap.
  return brd::io::http_server::start("127.0.0.1", port, std::move(routes), 25u << 20, 16);
}

brd::io::http_response webhook_edge::on_push(const brd::io::http_request& request,
                                             const caf::actor& node) {
  const auto arrival = steady_clock::now();
  if (!brd::io::verify_signature(secret_, request.body, header(request, "x-hub-signature-256")))
    return brd::io::http_error(401, "bad signature");
  if (header(request, "x-github-event") != "push")
    return {202, "application/json", R"({"status":"ignored"})", {}};
  auto delivery = header(request, "x-github-delivery");
  auto push = brd::io::parse_push(request.body, delivery);
  if (!push)
    return brd::io::http_error(400, "malformed push");
  std::string roles;
  size_t tasks = 0;
  for (const auto& [globs, role] : routes_)
    if (brd::io::match_any_path(globs, push->changed))
      roles += (tasks++ == 0 ? "" : ",") + role;
  std::string id;
  {
    std::lock_guard guard{mutex_};
    if (!deliveries_.insert(delivery).second)
      return {200, "application/json", R"({"status":"duplicate"})", {}};
    id = "d-" + std::to_string(brd::wall_clock_ms()) + "-" + std::to_string(++counter_);
  }
  std::vector<brd::state_entry> rows(2);
  rows[0].table = deployments_table;
  rows[0].key = delivery_prefix + delivery;
  rows[0].value = record_of(id); // records io::state_store takes (--mode store)
  rows[1].table = deployments_table;
  rows[1].key = id;
  rows[1].value = record_of(push->repo + '\n' + push->after + '\n' + push->ref + '\n' + roles);
  if (!inbox_->submit(node, std::move(rows), arrival)) {
    std::lock_guard guard{mutex_};
    deliveries_.erase(delivery); // a redelivery is taken, as brnode does
    return brd::io::http_error(503, "not recorded");
  }
  {
    std::lock_guard guard{mutex_};
    ++accepted_;
    durable_ms_.push_back(
      std::chrono::duration<double, std::milli>(steady_clock::now() - arrival).count());
  }
  // As brnode answers: 202 once recorded, the deploy runs after the reply.
  return {202, "application/json", R"({"status":"accepted","deployment":")" + id + "\"}", {}};
}

void webhook_edge::opened(const brd::state_entry& deployment, steady_clock::time_point arrival) {
  if (deployment.table != deployments_table || deployment.key.starts_with(delivery_prefix))
    return;
  auto tasks = roles_of(deployment.value).size();
  if (tasks == 0)
    return;
  std::lock_guard guard{mutex_};
  open_[deployment.key] = {arrival, tasks};
}

void webhook_edge::stored(const std::vector<brd::state_entry>& rows) {
  const auto now = steady_clock::now();
  std::lock_guard guard{mutex_};
  for (const auto& row : rows) {
    if (row.table != tasks_table)
      continue;
    auto i = open_.find(row.key.substr(0, row.key.find('/')));
    if (i == open_.end() || --i->second.missing > 0)
      continue;
    samples_ms_.push_back(
      std::chrono::duration<double, std::milli>(now - i->second.arrival).count());
    open_.erase(i);
  }
}

brd::io::http_response webhook_edge::stats(const brd::io::http_request& request) {
  std::lock_guard guard{mutex_};
  auto samples = samples_ms_;
  auto durable = durable_ms_;
  std::ostringstream out;
  out << R"({"accepted":)" << accepted_ << R"(,"samples":)" << samples.size()
      << R"(,"open":)" << open_.size() << R"(,"p50_ms":)" << percentile(samples, 50)
      << R"(,"p99_ms":)" << percentile(samples, 99) << R"(,"max_ms":)"
      << (samples.empty() ? 0.0 : samples.back()) << R"(,"durable_p50_ms":)"
      << percentile(durable, 50) << R"(,"durable_p99_ms":)" << percentile(durable, 99) << "}";
  if (request.params.contains("reset")) {
    samples_ms_.clear();
    durable_ms_.clear();
    accepted_ = 0;
  }
  return {200, "application/json", out.str(), {}};
}

std::vector<brd::state_entry> running_rows(const std::string& role, const std::string& node,
                                           const std::vector<brd::state_entry>& stored,
                                           bool supersede) {
  std::vector<brd::state_entry> out;
  for (const auto& row : stored) {
    if (row.table != deployments_table || row.key.starts_with(delivery_prefix))
      continue;
    auto roles = roles_of(row.value);
    if (std::find(roles.begin(), roles.end(), role) == roles.end())
      continue;
    brd::state_entry task;
    task.table = tasks_table;
    task.key = row.key + '/' + role + '/' + node;
    task.value = record_of("running");
    out.push_back(std::move(task));
  }
  if (supersede && out.size() > 1) // rows arrive in commit order: the last is the newest
    out.erase(out.begin(), out.end() - 1);
  return out;
}

} // namespace bench
