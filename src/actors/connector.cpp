#include "actors/connector.hpp"
#include "actors/introspect.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>

#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/sec.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "io/tcp_probe.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"
#include "runtime/type_registry.hpp"

namespace brd {

namespace {

enum class link_state { connecting, connected, unreachable, refused };

struct peer_link {
  const node_config* cfg = nullptr;
  link_state state = link_state::connecting;
  bool first_attempt = true;
  bool in_flight = false;
  std::chrono::milliseconds backoff{0};
};

struct connector_state {
  static inline const char* name = "connector";
  fleet_config fleet;
  node_name self;
  health_actor health;
  caf::io::middleman_actor mm;
  std::map<node_name, peer_link> peers;
  std::minstd_rand random{std::random_device{}()};
};

using connector_ptr = connector_actor::stateful_pointer<connector_state>;

std::string address(const node_config& n) {
  return n.host + ":" + std::to_string(n.port);
}

bool is_refusal(const caf::error& err) {
  return err == caf::sec::incompatible_application_ids
         || err == caf::sec::incompatible_versions
         || err == caf::sec::unexpected_message
         || err == caf::sec::remote_linking_failed
         // A TLS peer that rejects our certificate hangs up mid-handshake.
         || err == caf::sec::disconnect_during_handshake;
}

// `base` spread by +-25%, so peers that failed together retry apart.
std::chrono::milliseconds jittered(connector_ptr self,
                                   std::chrono::milliseconds base) {
  std::uniform_real_distribution<double> spread{0.75, 1.25};
  return std::chrono::milliseconds{
    static_cast<int64_t>(static_cast<double>(base.count())
                         * spread(self->state.random))};
}

// Called once per failed attempt: logs on change, schedules the next try.
void attempt_failed(connector_ptr self, const node_name& node,
                    const caf::error& err, std::string reason) {
  auto& st = self->state;
  auto& link = st.peers.at(node);
  link.in_flight = false;
  auto now_state = is_refusal(err) ? link_state::refused
                                   : link_state::unreachable;
  if (now_state != link.state) {
    if (now_state == link_state::refused)
      log::net()->warn("peer {} at {} refused the connection: {} (we are "
                       "'{}'; a node of another cluster or protocol version "
                       "is refused)",
                       node, address(*link.cfg), reason,
                       system_config::app_identifier(st.fleet.cluster));
    else
      log::net()->info("peer {} at {} is unreachable: {}; retrying in the "
                       "background (backoff up to {} ms)",
                       node, address(*link.cfg), reason,
                       st.fleet.detector.backoff_max.count());
    link.state = now_state;
  }
  if (link.first_attempt) {
    link.first_attempt = false;
    self->send(st.health, retry_atom::value, node, reason);
  }
  const auto& d = st.fleet.detector;
  // A peer that refused us (other cluster, untrusted certificate) will not
  // change its mind soon: wait the longest, and spare it the handshakes.
  if (now_state == link_state::refused)
    link.backoff = d.backoff_max;
  else
    link.backoff = link.backoff.count() == 0
                     ? d.backoff_min
                     : std::min(link.backoff * 2, d.backoff_max);
  self->delayed_send(self, jittered(self, link.backoff), tick_atom::value, node);
}

// Two nodes dialing each other at once end up with two connections. Over
// plain TCP CAF keeps one and nothing is lost; over CAF 0.17's OpenSSL
// transport closing the spare one takes the peer's proxies with it, every
// time. So with TLS the node whose name sorts first dials at once and the
// other waits a little, expecting to be reached.
std::chrono::milliseconds first_dial_delay(connector_ptr self,
                                           const node_name& node) {
  if (node > self->state.self || !self->system().has_openssl_manager())
    return std::chrono::milliseconds{0};
  return jittered(self, self->state.fleet.detector.backoff_min * 3);
}

void dial_soon(connector_ptr self, const node_name& node);

void start_attempt(connector_ptr self, const node_name& node) {
  auto& link = self->state.peers.at(node);
  if (link.in_flight || link.state == link_state::connected)
    return;
  link.in_flight = true;
  auto host = link.cfg->host;
  auto port = link.cfg->port;
  auto timeout = self->state.fleet.detector.connect_timeout;
  auto mm = self->state.mm;
  auto reply_to = caf::actor_cast<connector_actor>(self);
  // The probe blocks for up to `timeout`: run it on a thread of its own,
  // which then asks for the connection while it holds the probe's open
  // (io/tcp_probe.hpp says why).
  self->spawn<caf::detached + caf::hidden>([=](caf::event_based_actor* helper) {
    auto probe = io::tcp_probe(host, port, timeout);
    if (!probe) {
      helper->send(reply_to, connected_atom::value, node, caf::strong_actor_ptr{},
                   std::move(probe.error()));
      return;
    }
    // Each handler keeps the probe open until the answer came (an
    // init-capture is kept even though the body does not use it).
    auto hold = std::make_shared<io::probe_hold>(std::move(*probe));
    helper->request(mm, timeout * 2, caf::connect_atom::value, host, port)
      .then(
        [=, held = hold](const caf::node_id&, caf::strong_actor_ptr& ptr,
                         const std::set<std::string>&) {
          helper->send(reply_to, connected_atom::value, node, std::move(ptr), caf::error{});
        },
        [=, held = hold](caf::error& err) {
          helper->send(reply_to, connected_atom::value, node, caf::strong_actor_ptr{},
                       std::move(err));
        });
  });
}

// The attempt at `node` ended: its published actor, or why not.
void attempt_done(connector_ptr self, const node_name& node, caf::strong_actor_ptr ptr,
                  const caf::error& err) {
  if (err) {
    attempt_failed(self, node, err, describe(err));
    return;
  }
  if (!ptr) {
    attempt_failed(self, node, caf::error{}, "no actor is published on that port");
    return;
  }
  auto& l = self->state.peers.at(node);
  l.in_flight = false;
  l.first_attempt = false;
  l.backoff = std::chrono::milliseconds{0};
  if (l.state != link_state::connected)
    log::net()->info("connected to peer {} at {}", node, address(*l.cfg));
  l.state = link_state::connected;
  self->send(self->state.health, connected_atom::value, node,
             caf::actor_cast<caf::actor>(std::move(ptr)));
}

void dial_soon(connector_ptr self, const node_name& node) {
  auto delay = first_dial_delay(self, node);
  if (delay.count() == 0)
    start_attempt(self, node);
  else
    self->delayed_send(self, delay, tick_atom::value, node);
}

connector_actor::behavior_type connector(connector_ptr self, fleet_config fleet,
                                         node_name me, health_actor health) {
  auto& st = self->state;
  st.fleet = std::move(fleet);
  st.self = std::move(me);
  st.health = std::move(health);
  auto& sys = self->system();
  st.mm = sys.has_openssl_manager() ? sys.openssl_manager().actor_handle()
                                    : sys.middleman().actor_handle();
  for (const auto& n : st.fleet.nodes)
    if (n.name != st.self)
      st.peers.emplace(n.name, peer_link{&n});
  for (auto& [name, link] : st.peers)
    dial_soon(self, name);
  return introspect::counted(self, "connector", connector_actor::behavior_type{
    [=](retry_atom, const std::string& node) {
      auto i = self->state.peers.find(node);
      if (i == self->state.peers.end())
        return;
      if (i->second.state == link_state::connected) {
        i->second.state = link_state::connecting;
        i->second.backoff = std::chrono::milliseconds{0};
      }
      dial_soon(self, node);
    },
    [=](tick_atom, const std::string& node) { start_attempt(self, node); },
    [=](hello_atom, const std::string& node) {
      auto i = self->state.peers.find(node);
      if (i == self->state.peers.end())
        return;
      auto& link = i->second;
      if (link.state != link_state::connected)
        log::net()->info("peer {} at {} reached us first", node,
                         address(*link.cfg));
      link.state = link_state::connected;
      link.first_attempt = false;
      link.backoff = std::chrono::milliseconds{0};
    },
    [=](connected_atom, const std::string& node, caf::strong_actor_ptr& ptr,
        const caf::error& err) { attempt_done(self, node, std::move(ptr), err); },
  });
}

} // namespace

connector_actor spawn_connector(caf::local_actor* parent,
                                const fleet_config& fleet,
                                const node_name& self, health_actor health) {
  return parent->spawn<caf::linked>(connector, fleet, self, std::move(health));
}

} // namespace brd
