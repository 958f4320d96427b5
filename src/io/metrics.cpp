#include "io/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <mutex>
#include <string_view>

#include "runtime/log.hpp"

namespace brd::io {

// -- instruments --------------------------------------------------------------

void counter::add(double amount) noexcept {
  if (amount > 0) // also false for NaN
    value_.fetch_add(amount, std::memory_order_relaxed);
}

namespace {

std::vector<double> clean_bounds(std::vector<double> bounds) {
  std::erase_if(bounds, [](double x) { return std::isnan(x) || x == INFINITY; });
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return bounds;
}

} // namespace

histogram::histogram(std::vector<double> upper_bounds)
  : bounds_(clean_bounds(std::move(upper_bounds))),
    counts_(new std::atomic<uint64_t>[bounds_.size() + 1]()) {
}

void histogram::observe(double value) noexcept {
  if (std::isnan(value))
    return;
  // The first bucket whose bound is >= value; past the end is +Inf.
  auto i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot result;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    result.cumulative.push_back(running);
  }
  result.count = running;
  result.sum = sum_.load(std::memory_order_relaxed);
  return result;
}

std::vector<double> default_seconds_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

// -- registry state -----------------------------------------------------------

namespace {

enum class metric_type { counter, gauge, histogram };

const char* type_name(metric_type type) {
  switch (type) {
    case metric_type::counter: return "counter";
    case metric_type::gauge: return "gauge";
    case metric_type::histogram: return "histogram";
  }
  return "untyped";
}

// Exactly one of the pointers is set, matching the family's type.
struct series {
  std::unique_ptr<io::counter> counter;
  std::unique_ptr<io::gauge> gauge;
  std::unique_ptr<io::histogram> histogram;
};

struct family {
  metric_type type;
  std::string help;
  std::vector<double> bounds; // histograms only
  std::map<metric_labels, series> members; // key: sorted, sanitized labels
};

series make_series(metric_type type, const std::vector<double>& bounds) {
  series made;
  switch (type) {
    case metric_type::counter: made.counter = std::make_unique<io::counter>(); break;
    case metric_type::gauge: made.gauge = std::make_unique<io::gauge>(); break;
    case metric_type::histogram:
      made.histogram = std::make_unique<io::histogram>(bounds);
      break;
  }
  return made;
}

std::string sanitize_name(std::string_view name, bool allow_colon) {
  std::string out{name};
  for (auto& c : out) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || (allow_colon && c == ':');
    if (!ok)
      c = '_';
  }
  if (out.empty() || (out[0] >= '0' && out[0] <= '9'))
    out.insert(out.begin(), '_');
  return out;
}

metric_labels normalize(const metric_labels& labels) {
  metric_labels out;
  out.reserve(labels.size());
  for (const auto& [key, value] : labels)
    out.emplace_back(sanitize_name(key, false), value);
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace

struct metrics_registry::state {
  std::mutex collect_mutex;   // serializes render(): callbacks and reading
  std::mutex callbacks_mutex; // guards callbacks
  std::mutex families_mutex;  // guards families and orphans
  std::vector<collect_callback> callbacks;
  std::map<std::string, family> families;
  // Instruments asked for under a name registered with another type: they
  // work but are never rendered.
  std::map<std::pair<std::string, metric_labels>, series> orphans;

  series& find_or_add(const std::string& raw_name, const std::string& help,
                      metric_type type, const metric_labels& raw_labels,
                      std::vector<double> bounds) {
    auto name = sanitize_name(raw_name, true);
    auto labels = normalize(raw_labels);
    std::lock_guard guard{families_mutex};
    auto [fam, fresh] = families.try_emplace(name);
    if (fresh)
      fam->second = family{type, help, clean_bounds(std::move(bounds)), {}};
    if (fam->second.type != type) {
      auto [orphan, added] = orphans.try_emplace({name, labels});
      if (added) {
        orphan->second = make_series(type, clean_bounds(std::move(bounds)));
        log::http()->error("metric {} is already a {}; this {} is not exported",
                           name, type_name(fam->second.type), type_name(type));
      }
      return orphan->second;
    }
    auto [member, added] = fam->second.members.try_emplace(labels);
    if (added)
      member->second = make_series(type, fam->second.bounds);
    return member->second;
  }
};

metrics_registry::metrics_registry() : state_(std::make_unique<state>()) {
}

metrics_registry::~metrics_registry() = default;

io::counter& metrics_registry::counter(const std::string& name, const std::string& help,
                                       const metric_labels& labels) {
  return *state_->find_or_add(name, help, metric_type::counter, labels, {}).counter;
}

io::gauge& metrics_registry::gauge(const std::string& name, const std::string& help,
                                   const metric_labels& labels) {
  return *state_->find_or_add(name, help, metric_type::gauge, labels, {}).gauge;
}

io::histogram& metrics_registry::histogram(const std::string& name, const std::string& help,
                                           std::vector<double> upper_bounds,
                                           const metric_labels& labels) {
  return *state_
            ->find_or_add(name, help, metric_type::histogram, labels, std::move(upper_bounds))
            .histogram;
}

void metrics_registry::on_collect(collect_callback callback) {
  std::lock_guard guard{state_->callbacks_mutex};
  state_->callbacks.push_back(std::move(callback));
}

// -- rendering ----------------------------------------------------------------

namespace {

// Integral values print without exponent ("1000000"), others in the shortest
// form that reads back exactly; the spec's spellings for the special values.
std::string format_number(double value) {
  if (std::isnan(value))
    return "NaN";
  if (std::isinf(value))
    return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  std::to_chars_result res;
  if (value == std::floor(value) && std::fabs(value) < 1e15)
    res = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(value));
  else
    res = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, res.ptr);
}

// HELP text escapes backslash and newline; label values also double quotes.
void append_escaped(std::string& out, std::string_view text, bool quotes) {
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && quotes)
      out += "\\\"";
    else
      out += c;
  }
}

// `{a="1",b="2"}`, with `le` last when given; empty when there are no labels.
std::string label_text(const metric_labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr)
    return {};
  std::string out = "{";
  auto add = [&out](const std::string& key, const std::string& value) {
    if (out.size() > 1)
      out += ',';
    out += key;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  };
  for (const auto& [key, value] : labels)
    add(key, value);
  if (le != nullptr)
    add("le", *le);
  out += '}';
  return out;
}

void append_sample(std::string& out, const std::string& name, const std::string& labels,
                   double value) {
  out += name;
  out += labels;
  out += ' ';
  out += format_number(value);
  out += '\n';
}

void append_histogram(std::string& out, const std::string& name,
                      const metric_labels& labels, const io::histogram& hist) {
  auto snap = hist.read();
  const auto& bounds = hist.upper_bounds();
  for (size_t i = 0; i <= bounds.size(); ++i) {
    auto le = i < bounds.size() ? format_number(bounds[i]) : std::string{"+Inf"};
    append_sample(out, name + "_bucket", label_text(labels, &le),
                  static_cast<double>(snap.cumulative[i]));
  }
  auto plain = label_text(labels);
  append_sample(out, name + "_sum", plain, snap.sum);
  append_sample(out, name + "_count", plain, static_cast<double>(snap.count));
}

void append_family(std::string& out, const std::string& name, const family& fam) {
  out += "# HELP " + name + ' ';
  append_escaped(out, fam.help, false);
  out += "\n# TYPE " + name + ' ' + type_name(fam.type) + '\n';
  for (const auto& [labels, member] : fam.members) {
    if (member.counter)
      append_sample(out, name, label_text(labels), member.counter->value());
    else if (member.gauge)
      append_sample(out, name, label_text(labels), member.gauge->value());
    else
      append_histogram(out, name, labels, *member.histogram);
  }
}

} // namespace

std::string metrics_registry::render() {
  std::lock_guard collecting{state_->collect_mutex};
  std::vector<collect_callback> callbacks;
  {
    std::lock_guard guard{state_->callbacks_mutex};
    callbacks = state_->callbacks;
  }
  // No registry lock is held here: callbacks may call gauge() and friends.
  for (auto& callback : callbacks) {
    try {
      callback(*this);
    } catch (const std::exception& err) {
      log::http()->error("a metrics collect callback failed: {}", err.what());
    } catch (...) {
      log::http()->error("a metrics collect callback failed with a non-standard exception");
    }
  }
  std::string out;
  std::lock_guard guard{state_->families_mutex};
  for (const auto& [name, fam] : state_->families)
    append_family(out, name, fam);
  return out;
}

} // namespace brd::io
