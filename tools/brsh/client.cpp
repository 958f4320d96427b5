#include "client.hpp"

#include <cstring>
#include <mutex>
#include <unistd.h>

#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/send.hpp>

#include "io/tcp_probe.hpp"
#include "output.hpp"
#include "runtime/type_registry.hpp"

namespace brsh {

using brd::brd_errc;
using brd::make_error;

// Shared by the client and its watcher actor.
struct client::watch_state {
  mutable std::mutex mtx;
  bool lost = false;
  std::vector<brd::member_view> members;
};

namespace {

// Monitors the connected node's health actor and follows its membership
// events until either goes away.
caf::behavior watcher(caf::event_based_actor* self,
                      std::shared_ptr<client::watch_state> watch,
                      brd::health_actor health) {
  self->monitor(health);
  self->set_down_handler([=](caf::down_msg&) {
    std::lock_guard<std::mutex> guard{watch->mtx};
    watch->lost = true;
    self->quit();
  });
  self->send(health, brd::subscribe_atom::value, caf::actor_cast<caf::actor>(self));
  return {
    [=](const brd::member_event& ev) {
      std::lock_guard<std::mutex> guard{watch->mtx};
      for (auto& row : watch->members)
        if (row.node == ev.node)
          row.state = ev.to;
    },
  };
}

caf::error check_readable(const brd::fleet_config& fleet, const brd::tls_config& tls,
                          const std::string& cert_name) {
  for (auto [key, path] : {std::pair{"ca", tls.ca}, {"cert", tls.cert}, {"key", tls.key}})
    if (::access(path.c_str(), R_OK) != 0)
      return make_error(brd_errc::bad_config,
                        fleet.file + " turns TLS on, and brsh cannot read its " + key
                          + " file '" + path + "': " + std::strerror(errno)
                          + "; fix: create a certificate for '" + cert_name
                          + "' signed by the fleet CA (brsh uses [tls] cert and key with "
                            "{name} = $BRSH_CERT_NAME, default \"brsh\"), or set "
                            "BRSH_CERT_NAME to a name that has one");
  return caf::none;
}

bool is_refusal(const caf::error& err) {
  return err == caf::sec::incompatible_application_ids
         || err == caf::sec::incompatible_versions
         || err == caf::sec::unexpected_message
         || err == caf::sec::disconnect_during_handshake;
}

// Why a node refused the connection, in the fleet's words.
std::string refusal_text(const caf::error& err, const std::string& app_id) {
  if (err == caf::sec::incompatible_application_ids)
    return "it belongs to another cluster or protocol version (brsh speaks '" + app_id
           + "')";
  if (err == caf::sec::disconnect_during_handshake)
    return "it hung up during the handshake (a node with TLS accepts only a client "
           "certificate from the fleet's CA: check [tls] in the config and "
           "$BRSH_CERT_NAME; a node without TLS hangs up on a TLS client)";
  if (err == caf::sec::incompatible_versions)
    return "it runs another CAF version";
  return brd::describe(err);
}

} // namespace

client::client(brd::fleet_config fleet, client_options opts)
  : fleet_(std::move(fleet)), opts_(opts), watch_(std::make_shared<watch_state>()) {
}

client::~client() {
  if (watcher_)
    caf::anon_send_exit(watcher_, caf::exit_reason::user_shutdown);
}

caf::expected<std::unique_ptr<client>>
client::make(brd::fleet_config fleet, const std::string& cert_name, client_options opts) {
  auto tls = brd::resolve_tls(fleet, cert_name);
  if (tls.enabled())
    if (auto err = check_readable(fleet, tls, cert_name))
      return err;
  std::unique_ptr<client> cl{new client(std::move(fleet), opts)};
  auto cfg = std::make_unique<brd::system_config>(cl->fleet_.cluster, tls.enabled());
  if (tls.enabled()) {
    cfg->openssl_cafile = tls.ca;
    cfg->openssl_certificate = tls.cert;
    cfg->openssl_key = tls.key;
  }
  cl->sys_ = std::make_unique<caf::actor_system>(*cfg);
  cl->cfg_ = std::move(cfg);
  return cl;
}

caf::expected<std::pair<std::string, uint16_t>>
client::resolve(const std::string& target) const {
  if (const auto* n = fleet_.find(target))
    return std::pair{n->host, n->port};
  auto colon = target.rfind(':');
  if (colon != std::string::npos && colon > 0) {
    auto port_text = target.substr(colon + 1);
    char* end = nullptr;
    auto port = std::strtoul(port_text.c_str(), &end, 10);
    if (!port_text.empty() && *end == '\0' && port > 0 && port < 65536)
      return std::pair{target.substr(0, colon), static_cast<uint16_t>(port)};
  }
  std::string names;
  for (const auto& n : fleet_.nodes)
    names += (names.empty() ? "" : ", ") + n.name;
  return make_error(brd_errc::unknown_node,
                    "no node named '" + target + "' in " + fleet_.file
                      + "; use one of " + names + ", or HOST:PORT");
}

caf::expected<client::reached> client::reach(const std::string& host, uint16_t port) {
  // Held open until the connect below returned (io/tcp_probe.hpp says why).
  auto probe = brd::io::tcp_probe(host, port, opts_.connect_timeout);
  if (!probe)
    return make_error(brd_errc::io_failure, brd::describe(probe.error()));
  auto mm = sys_->has_openssl_manager() ? sys_->openssl_manager().actor_handle()
                                        : sys_->middleman().actor_handle();
  caf::scoped_actor self{*sys_};
  caf::error failure;
  caf::strong_actor_ptr found;
  std::set<std::string> ifs;
  self->request(mm, opts_.connect_timeout * 2, caf::connect_atom::value, host, port)
    .receive(
      [&](const caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>& xs) {
        found = std::move(ptr);
        ifs = std::move(xs);
      },
      [&](caf::error& err) { failure = std::move(err); });
  if (failure && is_refusal(failure))
    return make_error(brd_errc::refused,
                      refusal_text(failure,
                                   brd::system_config::app_identifier(fleet_.cluster)));
  if (failure)
    return make_error(brd_errc::io_failure, brd::describe(failure));
  if (!found)
    return make_error(brd_errc::io_failure, "no actor is published on that port");
  if (!sys_->assignable<brd::health_actor>(ifs))
    return make_error(brd_errc::refused, "the actor published there is not a brnode health "
                                         "actor of this version (another brnode version?)");
  reached out;
  out.health = caf::actor_cast<brd::health_actor>(std::move(found));
  caf::error silent;
  self->request(out.health, opts_.request_timeout, brd::get_atom::value,
                brd::members_atom::value)
    .receive([&](std::vector<brd::member_view>& xs) { out.members = std::move(xs); },
             [&](caf::error& err) { silent = std::move(err); });
  if (silent)
    return make_error(brd_errc::io_failure, "it did not answer: " + brd::describe(silent));
  return out;
}

void client::adopt(reached r) {
  if (watcher_)
    caf::anon_send_exit(watcher_, caf::exit_reason::user_shutdown);
  watch_ = std::make_shared<watch_state>();
  watch_->members = std::move(r.members);
  for (const auto& row : watch_->members)
    if (row.self)
      node_ = row.node;
  health_ = std::move(r.health);
  tables_.clear();
  watcher_ = sys_->spawn(watcher, watch_, health_);
}

caf::error client::connect(const std::string& target) {
  auto where = resolve(target);
  if (!where)
    return where.error();
  auto [host, port] = *where;
  auto address = host + ":" + std::to_string(port);
  auto r = reach(host, port);
  if (!r) {
    auto label = fleet_.find(target) ? "node " + target + " at " + address
                                     : "the node at " + address;
    auto refused = static_cast<brd_errc>(r.error().code()) == brd_errc::refused;
    return make_error(refused ? brd_errc::refused : brd_errc::io_failure,
                      label + (refused ? " refused brsh: " : " is unreachable: ")
                        + brd::describe(r.error()));
  }
  target_ = target;
  node_ = target;
  address_ = address;
  adopt(std::move(*r));
  return caf::none;
}

void client::use(const std::string& target) {
  target_ = target;
  node_ = target;
  if (auto where = resolve(target))
    address_ = where->first + ":" + std::to_string(where->second);
}

bool client::lost() const {
  std::lock_guard<std::mutex> guard{watch_->mtx};
  return watch_->lost;
}

caf::error client::ensure_connected() {
  if (target_.empty())
    return make_error(brd_errc::io_failure, "brsh is not connected to a node; "
                                            "use `connect NODE`");
  if (!health_) {
    auto err = connect(target_);
    if (!err || static_cast<brd_errc>(err.code()) != brd_errc::io_failure)
      return err;
    std::string others;
    for (const auto& n : fleet_.nodes)
      if (n.name != target_)
        others += (others.empty() ? "" : ", ") + n.name;
    return make_error(brd_errc::io_failure,
                      brd::describe(err)
                        + (others.empty() ? "" : "; try another node with --node NAME or "
                                                 "`connect NAME` (configured: " + others + ")"));
  }
  if (!lost())
    return caf::none;
  auto where = resolve(target_);
  auto r = where ? reach(where->first, where->second) : caf::expected<reached>{where.error()};
  if (!r)
    return unreachable("the connection was lost, and reconnecting failed: "
                       + brd::describe(r.error()));
  adopt(std::move(*r));
  return caf::none;
}

std::vector<brd::member_view> client::last_members() const {
  std::lock_guard<std::mutex> guard{watch_->mtx};
  return watch_->members;
}

std::vector<std::string> client::other_live_nodes() const {
  auto rows = last_members();
  std::vector<std::string> out;
  for (const auto& n : fleet_.nodes)
    for (const auto& row : rows)
      if (row.node == n.name && n.name != node_ && row.state == brd::member_state::alive)
        out.push_back(n.name);
  return out;
}

caf::error client::unreachable(const std::string& reason) const {
  auto text = "node " + node_ + " at " + address_ + " is unreachable: " + reason;
  auto others = other_live_nodes();
  if (others.empty()) {
    text += "; no other node was alive when last seen";
  } else {
    std::string list;
    for (const auto& n : others)
      list += (list.empty() ? "" : ", ") + n;
    text += "; nodes alive when last seen: " + list + "; try `connect " + others.front()
            + "` (or brsh --node " + others.front() + ")";
  }
  return make_error(brd_errc::io_failure, text);
}

caf::error client::explain(const caf::error& err, const caf::node_id& where) const {
  if (health_ && where == health_.node()
      && (lost() || err == caf::sec::request_receiver_down))
    return unreachable("the connection was lost");
  if (err == caf::sec::request_timeout)
    return make_error(brd_errc::timeout,
                      "no answer within " + format_duration(opts_.request_timeout));
  if (err == caf::sec::request_receiver_down)
    return make_error(brd_errc::io_failure, "the actor is gone (its node stopped or "
                                            "the connection to it was lost)");
  if (err.category() == caf::atom("brd"))
    return err;
  return make_error(brd_errc::io_failure, brd::describe(err));
}

caf::expected<std::vector<brd::member_view>> client::members() {
  if (auto err = ensure_connected())
    return err;
  auto rows = ask<std::vector<brd::member_view>>(health_, brd::get_atom::value,
                                                 brd::members_atom::value);
  if (rows) {
    std::lock_guard<std::mutex> guard{watch_->mtx};
    watch_->members = *rows;
  }
  return rows;
}

caf::expected<caf::actor> client::service_of(const std::string& node,
                                             const std::string& service) {
  if (auto err = ensure_connected())
    return err;
  auto who = node.empty() ? node_ : node;
  if (fleet_.find(who) == nullptr && who != node_)
    return make_error(brd_errc::unknown_node,
                      "no node named '" + who + "' in " + fleet_.file);
  auto handle = ask<caf::actor>(health_, brd::get_atom::value, who, service);
  if (!handle && lost())
    return handle.error(); // says that the connected node is unreachable
  if (!handle)
    return make_error(brd_errc::io_failure, "node " + who + " cannot be reached through "
                                              + node_ + ": " + brd::describe(handle.error()));
  if (!*handle)
    return make_error(brd_errc::refused, "node " + who + " runs no " + service + " actor");
  return *handle;
}

caf::expected<brd::health_actor> client::health_of(const std::string& node) {
  if (auto err = ensure_connected())
    return err;
  if (node.empty() || node == node_)
    return health_;
  auto handle = service_of(node, "health");
  if (!handle)
    return handle.error();
  return caf::actor_cast<brd::health_actor>(*handle);
}

caf::expected<brd::state_actor> client::state_of(const std::string& node) {
  auto handle = service_of(node, "state");
  if (!handle)
    return handle.error();
  return caf::actor_cast<brd::state_actor>(*handle);
}

std::vector<std::string> client::table_names() {
  if (!tables_.empty())
    return tables_;
  auto state = state_of("");
  if (!state)
    return {};
  auto digest = ask_all<std::map<std::string, std::string>, std::map<std::string, uint64_t>>(
    *state, brd::digest_atom::value);
  if (digest)
    for (const auto& entry : std::get<0>(*digest))
      tables_.push_back(entry.first);
  return tables_;
}

int exit_code_for(const caf::error& err) {
  if (err.category() == caf::atom("brd")) {
    switch (static_cast<brd_errc>(err.code())) {
      case brd_errc::io_failure:
      case brd_errc::timeout:
        return 69;
      case brd_errc::bad_config:
        return 78;
      case brd_errc::unknown_node: // a name that is not in the config
        return 2;
      default:
        return 1;
    }
  }
  return 1;
}

} // namespace brsh
