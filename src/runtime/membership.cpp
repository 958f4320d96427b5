#include "runtime/membership.hpp"
#include "runtime/wall_clock.hpp"

#include <algorithm>
#include <cmath>

namespace brd {

namespace {

using ms_double = std::chrono::duration<double, std::milli>;

int64_t age_ms(steady_time then, steady_time now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - then)
    .count();
}

} // namespace

// -- phi_detector -------------------------------------------------------------

phi_detector::phi_detector(const detector_config& cfg) : cfg_(cfg) {
  // Bootstrap the window with the expected interval so that a new peer is
  // judged by the configured heartbeat rate until real samples arrive.
  auto first = static_cast<double>(cfg_.heartbeat_interval.count());
  intervals_ms_ = {first, first};
  sum_ = 2 * first;
  sum_sq_ = 2 * first * first;
}

void phi_detector::heartbeat(steady_time now) {
  if (last_) {
    auto interval = ms_double{now - *last_}.count();
    intervals_ms_.push_back(interval);
    sum_ += interval;
    sum_sq_ += interval * interval;
    while (intervals_ms_.size() > std::max<size_t>(cfg_.window, 2)) {
      auto old = intervals_ms_.front();
      intervals_ms_.pop_front();
      sum_ -= old;
      sum_sq_ -= old * old;
    }
  }
  last_ = now;
}

double phi_detector::mean_ms() const {
  return sum_ / static_cast<double>(intervals_ms_.size());
}

double phi_detector::std_dev_ms() const {
  auto n = static_cast<double>(intervals_ms_.size());
  auto mean = mean_ms();
  auto variance = std::max(0.0, sum_sq_ / n - mean * mean);
  return std::max(std::sqrt(variance),
                  static_cast<double>(cfg_.min_std_dev.count()));
}

double phi_detector::phi(steady_time now) const {
  if (!last_)
    return 0;
  auto elapsed = ms_double{now - *last_}.count();
  auto mean = mean_ms() + static_cast<double>(cfg_.acceptable_pause.count());
  auto y = (elapsed - mean) / std_dev_ms();
  // Logistic approximation of the normal CDF (as in Akka), stable in the tail.
  auto e = std::exp(-y * (1.5976 + 0.070566 * y * y));
  if (elapsed > mean)
    return -std::log10(e / (1.0 + e));
  return -std::log10(1.0 - 1.0 / (1.0 + e));
}

void phi_detector::reset() {
  *this = phi_detector{cfg_};
}

// -- member_table -------------------------------------------------------------

member_table::member_table(const fleet_config& fleet, const node_name& self)
  : fleet_(fleet), self_(self) {
  for (const auto& n : fleet_.nodes)
    if (n.name != self_)
      peers_.emplace(n.name, peer{&n, member_state::unknown,
                                  phi_detector{fleet_.detector}, 0, {}, {}, {}, {}});
}

std::optional<member_event>
member_table::transition(const node_name& node, peer& p, member_state to,
                         std::string reason) {
  if (p.state == to)
    return std::nullopt;
  member_event ev{node, p.state, to, std::move(reason), wall_clock_ms()};
  p.state = to;
  return ev;
}

std::optional<member_event> member_table::on_hello(const hello_msg& hello,
                                                   steady_time now) {
  auto i = peers_.find(hello.node);
  if (i == peers_.end())
    return std::nullopt;
  auto& p = i->second;
  if (hello.incarnation < p.incarnation)
    return std::nullopt; // a stale instance
  if (hello.incarnation == p.incarnation && p.state == member_state::left)
    return std::nullopt; // a late hello from a node that said goodbye
  if (hello.incarnation > p.incarnation)
    p.detector.reset();
  p.incarnation = hello.incarnation;
  p.version = hello.version;
  p.detector.heartbeat(now);
  p.last_heard = now;
  return transition(hello.node, p, member_state::alive, "joined");
}

std::optional<member_event> member_table::on_heartbeat(const heartbeat& hb,
                                                       steady_time now) {
  auto i = peers_.find(hb.node);
  if (i == peers_.end())
    return std::nullopt;
  auto& p = i->second;
  if (hb.incarnation < p.incarnation)
    return std::nullopt;
  if (hb.incarnation > p.incarnation) {
    p.detector.reset();
    p.incarnation = hb.incarnation;
  }
  p.detector.heartbeat(now);
  p.last_heard = now;
  p.sample = hb.sample;
  p.sample_at = now;
  if (p.state == member_state::left)
    return std::nullopt; // a late heartbeat from a node that said goodbye
  return transition(hb.node, p, member_state::alive,
                    p.state == member_state::suspect ? "heartbeats resumed"
                                                     : "heartbeat");
}

std::optional<member_event> member_table::on_leave(const node_name& node,
                                                   uint64_t incarnation,
                                                   steady_time) {
  auto i = peers_.find(node);
  if (i == peers_.end() || incarnation < i->second.incarnation)
    return std::nullopt;
  i->second.detector.reset();
  return transition(node, i->second, member_state::left, "graceful stop");
}

std::optional<member_event>
member_table::on_connection_lost(const node_name& node, steady_time) {
  auto i = peers_.find(node);
  if (i == peers_.end())
    return std::nullopt;
  auto& p = i->second;
  if (p.state == member_state::left || p.state == member_state::unknown)
    return std::nullopt;
  p.detector.reset();
  return transition(node, p, member_state::down, "connection lost");
}

std::vector<member_event> member_table::evaluate(steady_time now) {
  std::vector<member_event> result;
  const auto& d = fleet_.detector;
  for (auto& [name, p] : peers_) {
    if (p.state != member_state::alive && p.state != member_state::suspect)
      continue;
    auto phi = p.detector.phi(now);
    std::optional<member_event> ev;
    if (phi >= d.phi_threshold) {
      p.detector.reset();
      ev = transition(name, p, member_state::down,
                      "no heartbeat (phi above threshold)");
    } else if (phi >= d.phi_suspect) {
      ev = transition(name, p, member_state::suspect, "heartbeats late");
    }
    if (ev)
      result.push_back(std::move(*ev));
  }
  return result;
}

member_state member_table::state(const node_name& node) const {
  auto i = peers_.find(node);
  return i == peers_.end() ? member_state::unknown : i->second.state;
}

std::vector<member_view> member_table::views(steady_time now,
                                             const node_sample& self_sample,
                                             uint64_t self_incarnation) const {
  std::vector<member_view> result;
  for (const auto& n : fleet_.nodes) {
    member_view v;
    v.node = n.name;
    v.address = n.host + ":" + std::to_string(n.port);
    if (n.name == self_) {
      v.self = true;
      v.state = member_state::alive;
      v.last_heartbeat_age_ms = 0;
      v.has_sample = true;
      v.sample = self_sample;
      v.sample_age_ms = std::max<int64_t>(0, wall_clock_ms() - self_sample.taken_at_ms);
      v.version = BRD_VERSION;
      v.incarnation = self_incarnation;
    } else {
      const auto& p = peers_.at(n.name);
      v.state = p.state;
      v.phi = p.detector.phi(now);
      if (p.last_heard)
        v.last_heartbeat_age_ms = age_ms(*p.last_heard, now);
      if (p.sample) {
        v.has_sample = true;
        v.sample = *p.sample;
        v.sample_age_ms = age_ms(*p.sample_at, now);
      }
      v.version = p.version;
      v.incarnation = p.incarnation;
    }
    result.push_back(std::move(v));
  }
  return result;
}

} // namespace brd
