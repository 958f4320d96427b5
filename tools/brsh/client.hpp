// brsh's connection to the fleet: an actor system of its own, configured
// like a node (same app identifier, same message types, same TLS CA), that
// connects to one node's health actor and reaches every other node's
// actors through it (the node's service directory).
//
// Connecting probes the TCP port first (bounded by the connect timeout),
// then asks the middleman to connect, again bounded. A watcher actor
// monitors the connected node and follows its membership events, so the
// last known membership survives the node's death and names other nodes to
// try. Every request is bounded by the request timeout.
//
// Errors are sentences (brd::describe) with brd_errc kinds: io_failure and
// timeout mean "unreachable" (brsh exit code 69).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/health.hpp"
#include "actors/state.hpp"
#include "runtime/config.hpp"
#include "runtime/errors.hpp"

namespace brsh {

struct client_options {
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{5000};
};

class client {
public:
  // Builds the actor system for `fleet`. With TLS on, brsh presents the
  // certificate of `cert_name` ({name} in [tls] cert/key); a missing or
  // unreadable file is a bad_config error naming it and the fix.
  static caf::expected<std::unique_ptr<client>>
  make(brd::fleet_config fleet, const std::string& cert_name, client_options opts);

  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // Names the node to connect to on first use (a node of the config or
  // HOST:PORT) without connecting yet.
  void use(const std::string& target);
  // Connects to a node of the config by name, or to HOST:PORT, now. On
  // failure the previous connection (if any) stays.
  caf::error connect(const std::string& target);
  // Connects on first use and reconnects when the connection was lost; the
  // error says the node is unreachable, with the address tried and other
  // nodes to try.
  caf::error ensure_connected();

  // The connected node's name (its own, as it says in the membership), or
  // the target before the first connection.
  const std::string& node() const { return node_; }
  // True once the connected node's connection was lost (until reconnected).
  bool lost() const;
  const std::string& address() const { return address_; }
  const brd::fleet_config& fleet() const { return fleet_; }
  caf::actor_system& system() { return *sys_; }
  std::chrono::milliseconds request_timeout() const { return opts_.request_timeout; }

  // The health or state actor of `node` ("" or the connected node: its own;
  // others through the connected node's directory).
  caf::expected<brd::health_actor> health_of(const std::string& node);
  caf::expected<brd::state_actor> state_of(const std::string& node);
  // Any service of `node`'s directory ("state", "deployer", ...); refused
  // when the node has none of that name.
  caf::expected<caf::actor> service_of(const std::string& node, const std::string& service);

  // The membership table of the connected node (and the cache below).
  caf::expected<std::vector<brd::member_view>> members();
  // The membership as last seen, updated by membership events.
  std::vector<brd::member_view> last_members() const;
  // Configured nodes other than the connected one that were alive when
  // last seen, in config order.
  std::vector<std::string> other_live_nodes() const;
  // "node X at ADDR is unreachable: REASON; ..." with nodes to try.
  caf::error unreachable(const std::string& reason) const;

  // The table names of the connected node's state actor (cached after the
  // first answer; empty when there is none).
  std::vector<std::string> table_names();

  // One request, bounded by the request timeout; the reply's values.
  template <class... Rs, class Handle, class... Ts>
  caf::expected<std::tuple<Rs...>> ask_all(const Handle& dest, Ts&&... xs) {
    caf::scoped_actor self{*sys_};
    caf::expected<std::tuple<Rs...>> result{caf::make_error(caf::sec::request_timeout)};
    self->request(dest, opts_.request_timeout, std::forward<Ts>(xs)...)
      .receive([&](Rs&... rs) { result = std::tuple<Rs...>{std::move(rs)...}; },
               [&](caf::error& err) { result = explain(err, dest.node()); });
    return result;
  }

  template <class R, class Handle, class... Ts>
  caf::expected<R> ask(const Handle& dest, Ts&&... xs) {
    auto r = ask_all<R>(dest, std::forward<Ts>(xs)...);
    if (!r)
      return r.error();
    return std::move(std::get<0>(*r));
  }

  // A request error as a sentence; a lost connection to the connected node
  // becomes unreachable().
  caf::error explain(const caf::error& err, const caf::node_id& where) const;

  struct watch_state;

private:
  // What reaching a node found: its health actor and membership table.
  struct reached {
    brd::health_actor health;
    std::vector<brd::member_view> members;
  };

  client(brd::fleet_config fleet, client_options opts);
  caf::expected<std::pair<std::string, uint16_t>> resolve(const std::string& target) const;
  // Probe, connect, check the interface, read the membership. Errors are
  // bare reasons (io_failure, or refused for another cluster or version).
  caf::expected<reached> reach(const std::string& host, uint16_t port);
  void adopt(reached r);

  brd::fleet_config fleet_;
  client_options opts_;
  std::unique_ptr<caf::actor_system_config> cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::string target_;  // what connect() was given
  std::string node_;
  std::string address_;
  brd::health_actor health_;
  caf::actor watcher_;
  std::shared_ptr<watch_state> watch_;
  std::vector<std::string> tables_;
};

// The exit code for an error: 69 when a node is unreachable, 78 for a bad
// config, 2 for a node name the config does not hold, 1 otherwise.
int exit_code_for(const caf::error& err);

} // namespace brsh
