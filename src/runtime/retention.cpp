#include "runtime/retention.hpp"

#include <cstdio>

#include "runtime/deploy_progress.hpp"

namespace brd {

namespace {

constexpr int64_t bucket_ms = 100'000'000; // the first 5 of 13 digits

int64_t finished_or(int64_t finished_at_ms, int64_t fallback_ms) {
  return finished_at_ms > 0 ? finished_at_ms : fallback_ms;
}

} // namespace

bool deployment_expired(const io::deployment_record& d, int64_t cutoff_ms) {
  return (d.state == "success" || d.state == "failure")
         && finished_or(d.finished_at_ms, d.created_at_ms) < cutoff_ms;
}

bool task_expired(const io::task_record& t, int64_t cutoff_ms) {
  return (is_final_state(t.state) || t.state == "superseded")
         && finished_or(t.finished_at_ms, t.queued_at_ms) < cutoff_ms;
}

bool alert_expired(const io::alert_record& a, int64_t cutoff_ms) {
  return a.at_ms < cutoff_ms;
}

std::optional<int64_t> key_time_ms(std::string_view key, std::string_view head) {
  if (key.size() < head.size() + 13 || key.substr(0, head.size()) != head)
    return std::nullopt;
  int64_t ms = 0;
  for (char c : key.substr(head.size(), 13)) {
    if (c < '0' || c > '9')
      return std::nullopt;
    ms = ms * 10 + (c - '0');
  }
  return ms;
}

std::vector<std::string> time_buckets(std::string_view head, int64_t first_ms,
                                      int64_t cutoff_ms) {
  std::vector<std::string> out;
  if (first_ms < 0 || first_ms > cutoff_ms)
    return out;
  for (auto b = first_ms / bucket_ms; b <= cutoff_ms / bucket_ms; ++b) {
    char digits[16];
    std::snprintf(digits, sizeof digits, "%05lld", static_cast<long long>(b));
    out.push_back(std::string{head} + digits);
  }
  return out;
}

} // namespace brd
