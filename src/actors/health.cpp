#include "actors/health.hpp"

#include <map>
#include <set>

#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/connector.hpp"
#include "io/metrics.hpp"
#include "io/sysinfo.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"
#include "runtime/membership.hpp"
#include "runtime/wall_clock.hpp"

namespace brd {

namespace {

using clock = std::chrono::steady_clock;

struct health_state {
  static inline const char* name = "health";
  health_options opts;
  std::unique_ptr<member_table> table;
  connector_actor connector;
  std::map<node_name, health_actor> peers;     // live handles, by node
  std::map<caf::actor_addr, node_name> owners; // handle -> node
  std::vector<caf::actor> subscribers;
  std::map<std::string, caf::actor> services; // local actors by service name
  std::set<node_name> first_round;             // peers not yet tried once
  bool leaving = false;                        // said goodbye; stay quiet
  node_sample sample;
  uint64_t seq = 0;
  clock::time_point started = clock::now();
};

using health_ptr = health_actor::stateful_pointer<health_state>;

hello_msg own_hello(const health_state& st) {
  return {st.opts.fleet.cluster, st.opts.self, st.opts.incarnation,
          BRD_VERSION};
}

void update_peer_gauges(health_state& st) {
  if (!st.opts.metrics)
    return;
  std::map<member_state, int> counts;
  for (const auto& n : st.opts.fleet.nodes)
    if (n.name != st.opts.self)
      ++counts[st.table->state(n.name)];
  for (auto s : {member_state::unknown, member_state::alive,
                 member_state::suspect, member_state::down, member_state::left})
    st.opts.metrics
      ->gauge("brnode_peers", "Peers of this node by membership state",
              {{"state", to_string(s)}})
      .set(counts[s]);
}

void publish(health_ptr self, const member_event& ev) {
  auto& st = self->state;
  auto level = ev.to == member_state::down ? spdlog::level::warn
                                           : spdlog::level::info;
  log::health()->log(level, "peer {}: {} -> {} ({})", ev.node,
                     to_string(ev.from), to_string(ev.to), ev.reason);
  for (auto& sub : st.subscribers)
    caf::anon_send(sub, ev);
  update_peer_gauges(st);
  if (st.opts.metrics)
    st.opts.metrics
      ->counter("brnode_membership_changes_total",
                "Membership state changes seen by this node",
                {{"to", to_string(ev.to)}})
      .inc();
}

void publish(health_ptr self, const std::optional<member_event>& ev) {
  if (ev)
    publish(self, *ev);
}

void first_round_done(health_ptr self, const node_name& node) {
  auto& st = self->state;
  if (st.first_round.erase(node) > 0 && st.first_round.empty()
      && !st.opts.joined->exchange(true))
    log::health()->info("joined the fleet '{}' ({} peers configured)",
                        st.opts.fleet.cluster, st.opts.fleet.nodes.size() - 1);
}

// Remembers `handle` as the live connection to `node` and watches it.
void adopt_peer(health_ptr self, const node_name& node, health_actor handle) {
  auto& st = self->state;
  auto i = st.peers.find(node);
  if (i != st.peers.end() && i->second == handle)
    return;
  if (i != st.peers.end())
    st.owners.erase(i->second.address());
  st.peers[node] = handle;
  st.owners[handle.address()] = node;
  self->monitor(handle);
}

void send_heartbeats(health_ptr self) {
  auto& st = self->state;
  heartbeat hb{st.opts.self, st.opts.incarnation, ++st.seq,
               clock::now().time_since_epoch().count(), st.sample};
  const auto timeout = st.opts.fleet.detector.heartbeat_interval * 10;
  for (auto& [node, handle] : st.peers) {
    auto peer_name = node;
    self->request<caf::message_priority::high>(handle, timeout,
                                               heartbeat_atom::value, hb)
      .then(
        [=](int64_t sent_ns) {
          auto& metrics = self->state.opts.metrics;
          if (!metrics)
            return;
          auto rtt = clock::now().time_since_epoch().count() - sent_ns;
          metrics
            ->histogram("brnode_heartbeat_rtt_seconds",
                        "Round trip time of membership heartbeats",
                        {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                         0.025, 0.05, 0.1, 0.25, 0.5, 1},
                        {{"peer", peer_name}})
            .observe(static_cast<double>(rtt) / 1e9);
        },
        [](caf::error&) {
          // A lost heartbeat is the detector's business, not an error.
        });
  }
}

// -- introspection (brsh) -------------------------------------------------------

node_status status_of(health_ptr self) {
  auto& st = self->state;
  node_status out;
  out.node = st.opts.self;
  out.cluster = st.opts.fleet.cluster;
  out.version = BRD_VERSION;
  out.incarnation = st.opts.incarnation;
  out.uptime_s = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::seconds>(clock::now() - st.started).count());
  out.data_dir = st.opts.data_dir;
  out.data_dir_bytes = io::directory_size_bytes(st.opts.data_dir);
  out.actor_count = self->system().registry().running();
  out.sample = st.sample;
  out.sample_age_ms = wall_clock_ms() - st.sample.taken_at_ms;
  return out;
}

std::vector<actor_info> actors_of(health_ptr self) {
  auto& st = self->state;
  std::vector<std::pair<std::string, caf::actor_addr>> known{
    {"health", self->address()}, {"connector", st.connector.address()}};
  for (auto& [service, handle] : st.services)
    if (handle && handle.node() == self->node())
      known.emplace_back(service, handle.address());
  return introspect::local_actors(self->system(), known);
}

std::string age_text(int64_t ms) {
  return ms < 0 ? "never" : std::to_string(ms) + " ms";
}

caf::result<actor_summary> summary_of(health_ptr self, const std::string& kind) {
  auto& st = self->state;
  if (kind != "health" && kind != "connector")
    return make_error(brd_errc::refused,
                      "node '" + st.opts.self + "' has no summary of actor '"
                        + kind + "'; its health actor summarizes 'health' and "
                                 "'connector'");
  actor_summary out;
  out.kind = kind;
  auto configured = st.opts.fleet.nodes.size() - 1;
  out.facts.push_back({"peers connected", std::to_string(st.peers.size()) + " of "
                                            + std::to_string(configured)});
  if (kind == "health") {
    std::string services;
    for (auto& entry : st.services)
      services += (services.empty() ? "" : ", ") + entry.first;
    out.facts.push_back({"incarnation", std::to_string(st.opts.incarnation)});
    out.facts.push_back({"subscribers", std::to_string(st.subscribers.size())});
    out.facts.push_back({"services", services.empty() ? "none" : services});
    out.facts.push_back({"heartbeat interval",
                         std::to_string(st.opts.fleet.detector.heartbeat_interval.count())
                           + " ms"});
    out.columns = {"peer", "state", "phi", "last heartbeat", "incarnation", "connected"};
  } else {
    out.columns = {"peer", "address", "connected", "state"};
  }
  for (auto& row : st.table->views(clock::now(), st.sample, st.opts.incarnation)) {
    if (row.self)
      continue;
    auto connected = st.peers.count(row.node) > 0 ? "yes" : "no";
    if (kind == "health")
      out.rows.push_back({row.node, to_string(row.state), fmt::format("{:.2f}", row.phi),
                          age_text(row.last_heartbeat_age_ms),
                          std::to_string(row.incarnation), connected});
    else
      out.rows.push_back({row.node, row.address, connected, to_string(row.state)});
  }
  return out;
}

health_actor::behavior_type health(health_ptr self, health_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.table = std::make_unique<member_table>(st.opts.fleet, st.opts.self);
  st.sample = io::take_sample(st.opts.data_dir, st.started);
  for (const auto& n : st.opts.fleet.nodes)
    if (n.name != st.opts.self)
      st.first_round.insert(n.name);
  if (st.first_round.empty())
    st.opts.joined->store(true);
  update_peer_gauges(st);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    auto i = st.owners.find(dm.source);
    if (i != st.owners.end()) {
      auto node = i->second;
      st.owners.erase(i);
      st.peers.erase(node);
      publish(self, st.table->on_connection_lost(node, clock::now()));
      self->send(st.connector, retry_atom::value, node);
      return;
    }
    auto& subs = st.subscribers;
    subs.erase(std::remove_if(subs.begin(), subs.end(),
                              [&](const caf::actor& a) {
                                return a.address() == dm.source;
                              }),
               subs.end());
  });
  st.connector = spawn_connector(self, st.opts.fleet, st.opts.self,
                                 caf::actor_cast<health_actor>(self));
  self->send(self, tick_atom::value);
  self->delayed_send(self, st.opts.fleet.detector.sample_interval,
                     sample_atom::value);
  health_actor::behavior_type behavior{
    [=](hello_atom, hello_msg& theirs) -> caf::result<hello_msg> {
      auto& st = self->state;
      if (theirs.cluster != st.opts.fleet.cluster || !st.table->knows(theirs.node)) {
        log::health()->warn("refused hello from node '{}' of cluster '{}': not "
                            "in this fleet's config",
                            theirs.node, theirs.cluster);
        return make_error(brd_errc::unknown_node,
                          "node '" + theirs.node + "' is not in the config of "
                            "cluster '" + st.opts.fleet.cluster + "'");
      }
      auto sender = caf::actor_cast<health_actor>(self->current_sender());
      if (sender) {
        adopt_peer(self, theirs.node, sender);
        self->send(st.connector, hello_atom::value, theirs.node);
      }
      publish(self, st.table->on_hello(theirs, clock::now()));
      first_round_done(self, theirs.node);
      return own_hello(st);
    },
    [=](heartbeat_atom, const heartbeat& hb) -> int64_t {
      publish(self, self->state.table->on_heartbeat(hb, clock::now()));
      return hb.sent_ns;
    },
    [=](leave_atom, const std::string& node, uint64_t incarnation) {
      publish(self, self->state.table->on_leave(node, incarnation, clock::now()));
    },
    [=](get_atom, const std::string& service) -> caf::actor {
      if (service == "health")
        return caf::actor_cast<caf::actor>(self);
      auto& services = self->state.services;
      auto i = services.find(service);
      return i == services.end() ? caf::actor{} : i->second;
    },
    [=](put_atom, const std::string& service, caf::actor& handle) {
      self->state.services[service] = std::move(handle);
    },
    [=](get_atom, const std::string& node,
        const std::string& service) -> caf::result<caf::actor> {
      auto& st = self->state;
      if (node == st.opts.self) {
        if (service == "health")
          return caf::actor_cast<caf::actor>(self);
        auto i = st.services.find(service);
        return i == st.services.end() ? caf::actor{} : i->second;
      }
      auto i = st.peers.find(node);
      if (i == st.peers.end())
        return make_error(brd_errc::unknown_node,
                          "node '" + node + "' is not connected");
      return self->delegate(i->second, get_atom::value, service);
    },
    [=](get_atom, members_atom) {
      auto& st = self->state;
      return st.table->views(clock::now(), st.sample, st.opts.incarnation);
    },
    [=](subscribe_atom, caf::actor& subscriber) {
      self->monitor(subscriber);
      self->state.subscribers.push_back(std::move(subscriber));
    },
    [=](connected_atom, const std::string& node, caf::actor& dynamic) {
      if (self->state.leaving)
        return;
      auto handle = caf::actor_cast<health_actor>(dynamic);
      adopt_peer(self, node, handle);
      self->request(handle, self->state.opts.fleet.detector.connect_timeout * 2,
                    hello_atom::value, own_hello(self->state))
        .then(
          [=](hello_msg& theirs) {
            publish(self, self->state.table->on_hello(theirs, clock::now()));
            first_round_done(self, node);
          },
          [=](caf::error& err) {
            log::health()->warn("peer {} did not accept our hello: {}", node,
                                describe(err));
            first_round_done(self, node);
          });
    },
    [=](retry_atom, const std::string& node, const std::string&) {
      first_round_done(self, node);
    },
    [=](leave_atom) -> bool {
      auto& st = self->state;
      log::health()->info("leaving the fleet: telling {} connected peers",
                          st.peers.size());
      // No more dialing, hellos or heartbeats: peers must see 'left' last.
      st.leaving = true;
      self->unlink_from(st.connector);
      self->send_exit(st.connector, caf::exit_reason::user_shutdown);
      for (auto& [node, handle] : st.peers)
        self->send<caf::message_priority::high>(handle, leave_atom::value,
                                                st.opts.self,
                                                st.opts.incarnation);
      return true;
    },
    [=](tick_atom) {
      auto& st = self->state;
      if (st.leaving)
        return;
      send_heartbeats(self);
      for (auto& ev : st.table->evaluate(clock::now()))
        publish(self, ev);
      self->delayed_send(self, st.opts.fleet.detector.heartbeat_interval,
                         tick_atom::value);
    },
    [=](sample_atom) {
      auto& st = self->state;
      st.sample = io::take_sample(st.opts.data_dir, st.started);
      self->delayed_send(self, st.opts.fleet.detector.sample_interval,
                         sample_atom::value);
    },
    [=](get_atom, status_atom) { return status_of(self); },
    [=](get_atom, actors_atom) { return actors_of(self); },
    [=](inspect_atom, const std::string& kind) { return summary_of(self, kind); },
  };
  return introspect::counted(self, "health", std::move(behavior));
}

} // namespace

health_actor spawn_health(caf::actor_system& sys, health_options opts) {
  return sys.spawn<caf::detached>(health, std::move(opts));
}

} // namespace brd
