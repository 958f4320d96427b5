#include "state_client.hpp"

#include <doctest/doctest.h>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <httplib.h>

#include "actors/health.hpp"
#include "actors/state.hpp"
#include "runtime/type_registry.hpp"

namespace brd::test {

using nlohmann::json;

reply call(const endpoint& to, const std::string& method, const std::string& path,
           const std::string& body) {
  httplib::Client client{to.host, to.http_port};
  client.set_connection_timeout(0, 500'000);
  client.set_read_timeout(10, 0);
  client.set_write_timeout(2, 0);
  httplib::Result res{nullptr, httplib::Error::Unknown};
  if (method == "PUT")
    res = client.Put(path.c_str(), body, "application/msgpack");
  else if (method == "DELETE")
    res = client.Delete(path.c_str());
  else
    res = client.Get(path.c_str());
  if (!res)
    return {};
  return {res->status, res->body};
}

std::string record(json fields) {
  fields["v"] = 1;
  auto bytes = json::to_msgpack(fields);
  return {bytes.begin(), bytes.end()};
}

std::string hex(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes)
    out += {digits[c >> 4], digits[c & 15]};
  return out;
}

std::optional<acked_write> put(const endpoint& to, const std::string& table,
                               const std::string& key, const std::string& value,
                               int wait_for) {
  auto path = "/api/state/" + table + "/" + key
              + (wait_for > 0 ? "?wait_for=" + std::to_string(wait_for) : "");
  auto r = call(to, "PUT", path, value);
  if (r.status != 201)
    return std::nullopt;
  auto ack = r.doc();
  return acked_write{key, hex(value), ack.value("hlc", uint64_t{0}),
                     ack.value("origin", "")};
}

std::optional<acked_write> erase(const endpoint& to, const std::string& table,
                                 const std::string& key) {
  auto r = call(to, "DELETE", "/api/state/" + table + "/" + key);
  if (r.status != 200)
    return std::nullopt;
  auto ack = r.doc();
  return acked_write{key, "", ack.value("hlc", uint64_t{0}), ack.value("origin", "")};
}

std::optional<std::map<std::string, std::string>>
rows(const endpoint& at, const std::string& table, const std::string& prefix) {
  auto r = call(at, "GET", "/api/state/" + table + "?limit=100000&prefix=" + prefix);
  auto doc = r.doc();
  if (r.status != 200 || !doc.is_array())
    return std::nullopt;
  std::map<std::string, std::string> out;
  for (const auto& row : doc)
    out[row.value("key", "")] = row.value("value_hex", "");
  return out;
}

json digest(const endpoint& at) {
  auto r = call(at, "GET", "/api/state/digest");
  auto doc = r.doc();
  if (r.status != 200 || !doc.is_object())
    return nullptr;
  doc.erase("node");
  return doc;
}

std::string digest_difference(const std::vector<endpoint>& nodes) {
  json first;
  for (const auto& n : nodes) {
    auto d = digest(n);
    if (d.is_null())
      return n.name + " gives no digest";
    if (first.is_null())
      first = d;
    else if (d != first)
      return nodes.front().name + " " + first.dump() + " vs " + n.name + " " + d.dump();
  }
  return "";
}

long ms_until_converged(const std::vector<endpoint>& nodes, millis timeout) {
  auto start = steady::now();
  if (!wait_until([&] { return digest_difference(nodes).empty(); }, timeout, 10ms))
    return -1;
  return static_cast<long>(
    std::chrono::duration_cast<millis>(steady::now() - start).count());
}

std::string missing_on(const endpoint& at, const std::string& table,
                       const std::string& prefix,
                       const std::map<std::string, std::string>& expected) {
  auto have = rows(at, table, prefix);
  if (!have)
    return at.name + " does not answer";
  size_t missing = 0;
  std::string first;
  for (const auto& [key, value] : expected) {
    auto i = have->find(key);
    if (i == have->end() || i->second != value) {
      if (missing++ == 0)
        first = key + (i == have->end() ? " absent" : " has another value");
      }
  }
  if (missing == 0)
    return "";
  return at.name + " lacks " + std::to_string(missing) + " of "
         + std::to_string(expected.size()) + " acked writes (first: " + first + ")";
}

std::vector<endpoint> endpoints_of(fleet& fl) {
  std::vector<endpoint> out;
  for (const auto& s : fl.specs())
    out.push_back({s.name, "127.0.0.1", s.http_port});
  return out;
}

namespace {

// The winner per key among acked writes, by the merge rule.
std::map<std::string, acked_write> winners(const std::vector<acked_write>& writes) {
  std::map<std::string, acked_write> out;
  for (const auto& w : writes) {
    auto i = out.find(w.key);
    if (i == out.end() || std::tie(w.hlc, w.origin) > std::tie(i->second.hlc, i->second.origin))
      out[w.key] = w;
  }
  return out;
}

} // namespace

void check_winners(const std::vector<endpoint>& nodes, const std::string& table,
                   const std::string& prefix, const std::vector<acked_write>& writes) {
  auto expected = winners(writes);
  for (const auto& n : nodes) {
    CAPTURE(n.name);
    auto have = rows(n, table, prefix);
    REQUIRE(have);
    size_t wrong = 0;
    std::string first;
    for (const auto& [key, w] : expected) {
      auto i = have->find(key);
      bool ok = w.value_hex.empty() ? i == have->end()
                                    : i != have->end() && i->second == w.value_hex;
      if (!ok && wrong++ == 0)
        first = key + (w.value_hex.empty() ? " (deleted) is back" : " is not the winner");
    }
    CHECK_MESSAGE(wrong == 0, n.name << ": " << wrong << " keys wrong, first " << first);
  }
}

void start_and_join(fleet& fl) {
  fl.start_all();
  REQUIRE_MESSAGE(fl.wait_all_alive(15s), "the fleet did not join within 15 s");
  auto nodes = endpoints_of(fl);
  // Each node writes its own nodes/NAME record on start: wait for those.
  REQUIRE_MESSAGE(ms_until_converged(nodes, 10s) >= 0, digest_difference(nodes));
}

// -- caf_client -------------------------------------------------------------------

struct caf_client::impl {
  explicit impl(const std::string& cluster) : cfg(cluster, false), sys(cfg), self(sys) {}
  system_config cfg;
  caf::actor_system sys;
  caf::scoped_actor self;
  state_actor state;
};

caf_client::caf_client(const std::string& cluster, uint16_t actor_port)
  : impl_(std::make_unique<impl>(cluster)) {
  auto& sys = impl_->sys;
  auto health = sys.middleman().remote_actor<health_actor>("127.0.0.1", actor_port);
  REQUIRE_MESSAGE(health, "cannot reach the node's health actor: " << sys.render(health.error()));
  impl_->self->request(*health, 5s, get_atom::value, std::string{"state"})
    .receive([&](caf::actor& state) { impl_->state = caf::actor_cast<state_actor>(state); },
             [&](caf::error& err) { FAIL("no state service: " << sys.render(err)); });
  REQUIRE(impl_->state);
}

caf_client::~caf_client() = default;

std::string caf_client::push(repl_batch batch) {
  std::string out;
  impl_->self->request(impl_->state, 5s, std::move(batch))
    .receive([&](std::map<std::string, uint64_t>& vv) { out = json(vv).dump(); },
             [&](caf::error& err) { out = "error: " + impl_->sys.render(err); });
  return out;
}

void caf_client::subscribe(const std::string& table) {
  impl_->self->send(impl_->state, subscribe_atom::value, table,
                    caf::actor_cast<caf::actor>(impl_->self));
}

std::optional<state_entry> caf_client::next_change(millis timeout) {
  std::optional<state_entry> out;
  impl_->self->receive([&](state_entry& e) { out = std::move(e); },
                       caf::after(timeout) >> [] {});
  return out;
}

} // namespace brd::test
