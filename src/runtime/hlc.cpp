#include "runtime/hlc.hpp"

#include <algorithm>
#include <chrono>

namespace brd {

namespace {

uint64_t system_wall_ms() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
    duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

} // namespace

hlc_clock::hlc_clock() : wall_(system_wall_ms) {}

hlc_clock::hlc_clock(wall_source wall) : wall_(std::move(wall)) {}

hlc_time hlc_clock::now() {
  auto wall = make_hlc(wall_(), 0);
  // Past the wall clock: count up logically; the logical part overflowing
  // into the wall part is harmless (it only moves the clock 1 ms ahead).
  last_ = std::max(wall, last_ + 1);
  return last_;
}

void hlc_clock::observe(hlc_time remote) {
  last_ = std::max(last_, remote);
}

} // namespace brd
