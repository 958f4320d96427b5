#include "runtime/deploy_api.hpp"

#include <algorithm>
#include <charconv>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <nlohmann/json.hpp>

#include "io/deploy_records.hpp"
#include "io/github_webhook.hpp"
#include "io/metrics.hpp"
#include "runtime/deploy_progress.hpp"
#include "runtime/errors.hpp"
#include "runtime/routing.hpp"

namespace brd {

namespace {

using ctx_ptr = std::shared_ptr<const deploy_api_context>;
using req_t = const io::http_request&;
using json = nlohmann::json;

constexpr auto ask_timeout = std::chrono::seconds(10);

io::http_response reply(int status, const json& body) {
  return {status, "application/json", body.dump(), {}};
}

io::http_response failure(const caf::error& err) {
  return reply(503, {{"error", describe(err)}});
}

// One request to a local actor from an HTTP thread, waiting for the reply.
template <class Reply, class Handle, class... Ts>
caf::expected<Reply> ask(const ctx_ptr& ctx, const Handle& to, Ts&&... xs) {
  caf::scoped_actor self{*ctx->sys};
  caf::expected<Reply> out{Reply{}};
  self->request(to, ask_timeout, std::forward<Ts>(xs)...)
    .receive([&](Reply& r) { out = std::move(r); },
             [&](caf::error& err) { out = std::move(err); });
  return out;
}

io::http_response from_answer(caf::expected<http_answer> a) {
  if (!a)
    return failure(a.error());
  return {a->status, "application/json", std::move(a->body), {}};
}

std::string_view header(req_t req, const char* name) {
  auto i = req.headers.find(name);
  return i == req.headers.end() ? std::string_view{} : std::string_view{i->second};
}

size_t limit_param(req_t req, size_t fallback, size_t most) {
  auto i = req.params.find("limit");
  if (i == req.params.end())
    return fallback;
  size_t n = fallback;
  std::from_chars(i->second.data(), i->second.data() + i->second.size(), n);
  return std::clamp<size_t>(n, 1, most);
}

void count(const ctx_ptr& ctx, const std::string& result) {
  if (ctx->metrics)
    ctx->metrics
      ->counter("brnode_webhooks_total", "GitHub webhooks by what the dispatcher did with them",
                {{"result", result}})
      .inc();
}

// -- POST /webhooks/github ---------------------------------------------------------------

io::http_response verdict_reply(const ctx_ptr& ctx, const io::webhook_verdict& v) {
  count(ctx, v.status == 401 ? "unauthorized"
             : v.status == 400 ? "bad_request"
             : v.status == 200 ? "ping"
                               : "other_event");
  if (v.status < 300)
    return reply(v.status, {{"status", v.message}});
  return reply(v.status, {{"error", v.message}});
}

io::http_response on_webhook(const ctx_ptr& ctx, req_t req) {
  auto received = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  if (ctx->webhook_secret.empty()) {
    count(ctx, "off");
    return reply(503, {{"error", "webhooks are off on this node: the config sets no "
                                 "github.webhook_secret_file"}});
  }
  io::webhook_request wr{header(req, "x-github-event"), header(req, "x-github-delivery"),
                         header(req, "x-hub-signature-256"), req.body};
  if (auto verdict = io::classify(wr, ctx->webhook_secret))
    return verdict_reply(ctx, *verdict);
  auto push = io::parse_push(req.body, wr.delivery);
  if (!push)
    return verdict_reply(ctx, io::bad_payload(push.error()));
  if (find_repo(ctx->deploy, push->repo) == nullptr) {
    count(ctx, "unknown_repo");
    return reply(404, {{"error", "repository " + push->repo + " is not in the config"}});
  }
  return from_answer(ask<http_answer>(ctx, ctx->dispatcher, webhook_push{std::move(*push), received}));
}

// -- operator actions ------------------------------------------------------------------------

io::http_response on_rollback(const ctx_ptr& ctx, req_t req) {
  auto body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return reply(400, {{"error", "the body must be a JSON object: "
                                 "{\"repo\", \"node\" or \"role\", \"sha\" or \"previous\"}"}});
  rollback_request r;
  for (auto [key, into] : {std::pair{"repo", &r.repo}, {"node", &r.node}, {"role", &r.role},
                           {"sha", &r.sha}}) {
    auto i = body.find(key);
    if (i != body.end() && !i->is_string())
      return reply(400, {{"error", std::string{key} + " must be a string"}});
    if (i != body.end())
      *into = i->get<std::string>();
  }
  if (r.sha.empty())
    r.sha = "previous";
  return from_answer(ask<http_answer>(ctx, ctx->dispatcher, rollback_atom::value, r));
}

// -- read-only views -------------------------------------------------------------------------

caf::expected<std::vector<state_row>> scan(const ctx_ptr& ctx, const std::string& table,
                                           const std::string& prefix, uint64_t limit = scan_all) {
  return ask<std::vector<state_row>>(ctx, ctx->state, scan_atom::value, table, prefix, limit);
}

// j[key] of a JSON object, null when absent (operator[] of a const json must
// not be asked for a missing key).
json field(const json& j, const char* key) {
  auto i = j.find(key);
  return i == j.end() ? json{} : *i;
}

std::string text_of(const json& j) {
  return j.is_string() ? j.get<std::string>() : j.dump();
}

template <class Record>
json rows_json(const std::vector<state_row>& rows) {
  auto out = json::array();
  for (const auto& row : rows)
    if (auto rec = io::decode<Record>(row.value))
      out.push_back(json(*rec));
  return out;
}

// The tasks of deployment `rec`, by task key: its task rows (`rows`) with
// the dispatcher's verdicts applied (apply_verdict), and for a verdict on a
// task without a row (never taken by its node, or superseded before it was
// sent) the task as its record and the verdict tell.
void add_tasks(std::map<std::string, io::task_record>& out, const io::deployment_record& rec,
               const std::vector<io::task_record>& rows) {
  auto left = rec.verdicts;
  for (auto t : rows) {
    apply_verdict(t, rec.verdicts);
    left.erase(t.task_id);
    auto key = task_key(t.deploy_id, t.task_id);
    out[key] = std::move(t);
  }
  for (const auto& [task_id, reason] : left)
    if (auto t = task_of_record(rec, task_id)) {
      t->state = io::verdict_state(reason);
      t->reason = reason;
      t->finished_at_ms = rec.finished_at_ms;
      out[task_key(rec.id, task_id)] = std::move(*t);
    }
}

std::vector<io::task_record> decode_tasks(const std::vector<state_row>& rows) {
  std::vector<io::task_record> out;
  for (const auto& row : rows)
    if (auto t = io::decode<io::task_record>(row.value))
      out.push_back(std::move(*t));
  return out;
}

json tasks_with_verdicts(const std::vector<state_row>& rows, const io::deployment_record& rec) {
  std::map<std::string, io::task_record> tasks;
  add_tasks(tasks, rec, decode_tasks(rows));
  auto out = json::array();
  for (const auto& [key, t] : tasks)
    out.push_back(json(t));
  return out;
}

// Deployment `id`'s record, or nullopt when there is none.
caf::expected<std::optional<io::deployment_record>> deployment_of(const ctx_ptr& ctx,
                                                                   const std::string& id) {
  auto rows = ask<std::vector<state_row>>(ctx, ctx->state, get_atom::value,
                                          std::string{"deployments"}, id);
  if (!rows)
    return rows.error();
  if (rows->empty())
    return std::optional<io::deployment_record>{};
  auto rec = io::decode<io::deployment_record>(rows->front().value);
  if (!rec)
    return rec.error();
  return std::optional<io::deployment_record>{std::move(*rec)};
}

// The deployment with its task rows, or nullopt when there is none.
caf::expected<std::optional<json>> deployment_json(const ctx_ptr& ctx, const std::string& id) {
  auto rec = deployment_of(ctx, id);
  if (!rec)
    return rec.error();
  if (!*rec)
    return std::optional<json>{};
  auto tasks = scan(ctx, "tasks", id + "/", 10000);
  if (!tasks)
    return tasks.error();
  json out = **rec;
  out["tasks"] = tasks_with_verdicts(*tasks, **rec);
  return std::optional<json>{std::move(out)};
}

io::http_response on_list(const ctx_ptr& ctx, req_t req) {
  auto rows = scan(ctx, "deployments", std::string{deployment_prefix});
  if (!rows)
    return failure(rows.error());
  auto limit = limit_param(req, 50, 1000);
  std::vector<state_row> newest(rows->rbegin(),
                                rows->rbegin() + std::min(limit, rows->size()));
  return reply(200, rows_json<io::deployment_record>(newest));
}

// Tasks, newest deployment first, as on their deployments (add_tasks: a
// task of a node that never came back shows "failed: node lost", one
// superseded before it was sent "superseded"), filtered by ?state= and
// ?node=.
io::http_response on_tasks(const ctx_ptr& ctx, req_t req) {
  auto rows = scan(ctx, "tasks", "");
  if (!rows)
    return failure(rows.error());
  auto deployments = scan(ctx, "deployments", std::string{deployment_prefix});
  if (!deployments)
    return failure(deployments.error());
  std::map<std::string, std::vector<io::task_record>> by_deployment;
  for (auto& t : decode_tasks(*rows)) {
    auto id = t.deploy_id;
    by_deployment[id].push_back(std::move(t));
  }
  std::map<std::string, io::task_record> tasks; // by task key
  for (const auto& row : *deployments)
    if (auto rec = io::decode<io::deployment_record>(row.value)) {
      add_tasks(tasks, *rec, by_deployment[rec->id]);
      by_deployment.erase(rec->id);
    }
  for (auto& [id, orphans] : by_deployment) // rows whose deployment record is gone
    for (auto& t : orphans)
      tasks[task_key(t.deploy_id, t.task_id)] = std::move(t);
  auto limit = limit_param(req, 100, 10000);
  auto state = req.params.count("state") ? req.params.at("state") : "";
  auto node = req.params.count("node") ? req.params.at("node") : "";
  auto out = json::array();
  for (auto i = tasks.rbegin(); i != tasks.rend() && out.size() < limit; ++i) {
    const auto& t = i->second;
    if ((state.empty() || t.state == state) && (node.empty() || t.node == node))
      out.push_back(json(t));
  }
  return reply(200, out);
}

io::http_response on_one(const ctx_ptr& ctx, req_t req, bool logs) {
  auto d = deployment_json(ctx, req.captures[0]);
  if (!d)
    return failure(d.error());
  if (!*d)
    return reply(404, {{"error", "no deployment " + req.captures[0]}});
  if (!logs)
    return reply(200, **d);
  auto out = json::array();
  for (const auto& t : (**d)["tasks"]) {
    json row;
    for (auto key : {"task_id", "node", "role", "state", "reason", "log_path", "log_tail"})
      row[key] = field(t, key);
    out.push_back(std::move(row));
  }
  return reply(200, {{"deployment", req.captures[0]}, {"tasks", out}});
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// The text of j[key], "" when absent.
std::string text_at(const json& j, const char* key) {
  return text_of(field(j, key));
}

io::http_response on_page(const ctx_ptr& ctx, req_t req) {
  auto d = deployment_json(ctx, req.captures[0]);
  if (!d)
    return {503, "text/plain", "cannot read the deployment: " + describe(d.error()) + "\n", {}};
  if (!*d)
    return {404, "text/html", "<!doctype html><title>not found</title><p>No such deployment.\n", {}};
  const auto& dep = **d;
  std::string page = "<!doctype html>\n<meta charset=\"utf-8\">\n<title>deployment "
                     + html_escape(req.captures[0]) + "</title>\n<h1>"
                     + html_escape(text_at(dep, "repo")) + " @ "
                     + html_escape(text_at(dep, "sha")) + "</h1>\n<table>\n";
  for (auto key : {"id", "kind", "state", "ref", "pusher", "created_at_ms", "finished_at_ms"})
    page += "<tr><th>" + std::string{key} + "</th><td>" + html_escape(text_at(dep, key))
            + "</td></tr>\n";
  page += "</table>\n<h2>Tasks</h2>\n";
  for (const auto& t : field(dep, "tasks")) {
    auto reason = text_at(t, "reason");
    page += "<h3>" + html_escape(text_at(t, "task_id")) + ": " + html_escape(text_at(t, "state"))
            + "</h3>\n<p>role " + html_escape(text_at(t, "role")) + ", node "
            + html_escape(text_at(t, "node")) + ", exit code " + html_escape(text_at(t, "exit_code"))
            + (reason.empty() ? "" : ", " + html_escape(reason)) + "</p>\n<pre>"
            + html_escape(text_at(t, "log_tail")) + "</pre>\n";
  }
  return {200, "text/html; charset=utf-8", page, {}};
}

} // namespace

std::vector<io::http_route> deploy_routes(ctx_ptr ctx) {
  const std::string id = "(d-[0-9A-Za-z-]+)";
  std::vector<io::http_route> routes{
    {"GET", "/api/deployments", [ctx](req_t req) { return on_list(ctx, req); }},
    {"GET", "/api/deployments/" + id, [ctx](req_t req) { return on_one(ctx, req, false); }},
    {"GET", "/api/deployments/" + id + "/logs",
     [ctx](req_t req) { return on_one(ctx, req, true); }},
    {"GET", "/api/tasks", [ctx](req_t req) { return on_tasks(ctx, req); }},
    {"GET", "/deployments/" + id, [ctx](req_t req) { return on_page(ctx, req); }},
  };
  if (!ctx->dispatcher)
    return routes;
  routes.push_back({"POST", "/webhooks/github", [ctx](req_t req) { return on_webhook(ctx, req); }});
  routes.push_back({"POST", "/api/rollback", [ctx](req_t req) { return on_rollback(ctx, req); }});
  routes.push_back({"POST", "/api/deployments/" + id + "/retry", [ctx](req_t req) {
                      return from_answer(ask<http_answer>(ctx, ctx->dispatcher,
                                                          retry_atom::value, req.captures[0]));
                    }});
  return routes;
}

} // namespace brd
