// The wall clock as BlackRoad stamps it into records, metrics and HLC
// timestamps: milliseconds since the Unix epoch by the system clock (so it
// can jump when NTP steps it; measure durations with steady_clock).
#pragma once

#include <chrono>
#include <cstdint>

namespace brd {

inline int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

} // namespace brd
