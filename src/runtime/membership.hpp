// Membership: what this node believes about every peer, as pure logic.
// The health actor feeds it events (hello, heartbeat, leave, connection lost)
// and clock ticks; it answers with state changes. Keeping it free of actors
// and of the clock makes the failure detector testable in isolation.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/config.hpp"
#include "runtime/messages.hpp"

namespace brd {

using steady_time = std::chrono::steady_clock::time_point;

// Phi-accrual failure detector (Hayashibara et al.), as Akka and Cassandra
// use it: phi grows with the time since the last heartbeat, measured against
// the observed distribution of inter-arrival times, so a node whose
// heartbeats arrive late under load needs a longer silence before phi
// crosses the threshold.
class phi_detector {
public:
  explicit phi_detector(const detector_config& cfg);

  void heartbeat(steady_time now);
  double phi(steady_time now) const;
  bool has_history() const { return last_.has_value(); }
  std::optional<steady_time> last() const { return last_; }
  void reset();

private:
  double mean_ms() const;
  double std_dev_ms() const;

  detector_config cfg_;
  std::optional<steady_time> last_;
  std::deque<double> intervals_ms_;
  double sum_ = 0;
  double sum_sq_ = 0;
};

// The membership table: one entry per configured peer.
class member_table {
public:
  member_table(const fleet_config& fleet, const node_name& self);

  // Each returns the state change it caused, if any.
  std::optional<member_event> on_hello(const hello_msg& hello, steady_time now);
  std::optional<member_event> on_heartbeat(const heartbeat& hb, steady_time now);
  std::optional<member_event> on_leave(const node_name& node,
                                       uint64_t incarnation, steady_time now);
  std::optional<member_event> on_connection_lost(const node_name& node,
                                                 steady_time now);
  // Re-evaluates phi for every peer; returns suspect/down/recovery changes.
  std::vector<member_event> evaluate(steady_time now);

  bool knows(const node_name& node) const { return peers_.count(node) > 0; }
  member_state state(const node_name& node) const;
  // Every configured node, self included (with `self_sample`), in config order.
  std::vector<member_view> views(steady_time now, const node_sample& self_sample,
                                 uint64_t self_incarnation) const;

private:
  struct peer {
    const node_config* cfg = nullptr;
    member_state state = member_state::unknown;
    phi_detector detector;
    uint64_t incarnation = 0;
    std::string version;
    std::optional<node_sample> sample;
    std::optional<steady_time> sample_at;
    std::optional<steady_time> last_heard; // survives detector resets
  };

  std::optional<member_event> transition(const node_name& node, peer& p,
                                         member_state to, std::string reason);

  const fleet_config& fleet_;
  node_name self_;
  std::map<node_name, peer> peers_;
};

} // namespace brd
