// What the retention actor (actors/retention.hpp) may remove from the
// replicated history: pure rules, no actors, no clock.
//
// Rows are found by time: deployment ids and task keys start with
// "d-<13-digit creation ms>", alert keys with "<13-digit ms>/". Prefixes of
// the first five of those digits (one per 10^8 ms, ~28 hours) let a walk
// from the oldest row to the cutoff read one bounded bucket at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/deploy_records.hpp"

namespace brd {

// Deployment records that are final (success or failure) and finished, or
// were created, before cutoff_ms. Pending ones are still followed.
bool deployment_expired(const io::deployment_record& d, int64_t cutoff_ms);

// Task rows that are final and finished (or were queued) before cutoff_ms.
// The caller keeps successful rows of builds it still keeps: rollback
// plans from them.
bool task_expired(const io::task_record& t, int64_t cutoff_ms);

bool alert_expired(const io::alert_record& a, int64_t cutoff_ms);

// The creation time a key starts with after `head` ("d-" or ""): 13 digits.
std::optional<int64_t> key_time_ms(std::string_view key, std::string_view head);

// The bucket prefixes (head + 5 digits) from the bucket of first_ms to that
// of cutoff_ms, oldest first; empty when first_ms is after cutoff_ms.
std::vector<std::string> time_buckets(std::string_view head, int64_t first_ms,
                                      int64_t cutoff_ms);

} // namespace brd
