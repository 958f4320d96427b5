// A small thread-safe Prometheus registry, rendered in the text exposition
// format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// The registry owns every instrument it hands out; references stay valid for
// the registry's lifetime. Asking again for the same name and labels returns
// the same instrument; labels are compared as a set (order does not matter).
// Updating an instrument is lock-free; creating one takes a mutex, so hot
// paths should keep the reference instead of asking on every update.
//
// Names are expected to be valid Prometheus names ([a-zA-Z_:][a-zA-Z0-9_:]*,
// label names without ':'); other characters are replaced by '_'. A name
// first registered with one type and asked for with another gets a working
// but unexported instrument, and an error in the log.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace brd::io {

inline constexpr const char* prometheus_content_type
  = "text/plain; version=0.0.4; charset=utf-8";

using metric_labels = std::vector<std::pair<std::string, std::string>>;

// A value that only goes up. add() ignores negative and NaN amounts.
class counter {
public:
  void inc() noexcept { add(1.0); }
  void add(double amount) noexcept;
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down.
class gauge {
public:
  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void inc() noexcept { add(1.0); }
  void dec() noexcept { add(-1.0); }
  void add(double amount) noexcept { value_.fetch_add(amount, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

// Counts observations into buckets by upper bound (le). Bounds are sorted
// and deduplicated; the +Inf bucket is implicit.
class histogram {
public:
  struct snapshot {
    std::vector<uint64_t> cumulative; // one per bound, then +Inf
    double sum = 0.0;
    uint64_t count = 0;               // equals cumulative.back()
  };

  explicit histogram(std::vector<double> upper_bounds);

  void observe(double value) noexcept;
  const std::vector<double>& upper_bounds() const noexcept { return bounds_; }
  snapshot read() const;

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_; // bounds_.size() + 1
  std::atomic<double> sum_{0.0};
};

// Latency buckets in seconds, 1 ms to 10 s.
std::vector<double> default_seconds_buckets();

class metrics_registry {
public:
  using collect_callback = std::function<void(metrics_registry&)>;

  metrics_registry();
  ~metrics_registry();
  metrics_registry(const metrics_registry&) = delete;
  metrics_registry& operator=(const metrics_registry&) = delete;

  // `help` is taken from the first registration of a name.
  io::counter& counter(const std::string& name, const std::string& help,
                       const metric_labels& labels = {});
  io::gauge& gauge(const std::string& name, const std::string& help,
                   const metric_labels& labels = {});
  // All series of one histogram family share the bounds of its first
  // registration.
  io::histogram& histogram(const std::string& name, const std::string& help,
                           std::vector<double> upper_bounds,
                           const metric_labels& labels = {});

  // Runs `callback` at the start of every render(), before any family is
  // read, so it can set gauges from on-demand values. Callbacks may create
  // and update instruments and register more callbacks, but must not call
  // render(). Renders are serialized, so callbacks never run concurrently.
  void on_collect(collect_callback callback);

  // The whole registry in text format 0.0.4, families sorted by name.
  // Not const: it runs the collect callbacks, which update instruments.
  std::string render();

private:
  struct state; // families, callbacks and their mutexes; see metrics.cpp
  std::unique_ptr<state> state_;
};

} // namespace brd::io
