// Hybrid logical clock (Kulkarni et al.): timestamps that follow wall time
// but never go backwards and always exceed every timestamp seen from peers,
// so "the highest (HLC, origin) wins" orders writes the same on every node.
// A timestamp packs wall milliseconds (upper 48 bits) and a logical counter
// (lower 16 bits) into one uint64_t, so comparing timestamps is comparing
// integers.
#pragma once

#include <cstdint>
#include <functional>

namespace brd {

using hlc_time = uint64_t;

constexpr uint64_t hlc_wall_ms(hlc_time t) { return t >> 16; }
constexpr uint64_t hlc_logical(hlc_time t) { return t & 0xffff; }
constexpr hlc_time make_hlc(uint64_t wall_ms, uint64_t logical) {
  return (wall_ms << 16) | (logical & 0xffff);
}

// Not thread-safe: owned by one actor.
class hlc_clock {
public:
  using wall_source = std::function<uint64_t()>; // ms since epoch

  hlc_clock();
  explicit hlc_clock(wall_source wall);

  // A timestamp for a local event, greater than every earlier one.
  hlc_time now();
  // Merges a timestamp received from a peer; the next now() exceeds it.
  void observe(hlc_time remote);
  hlc_time last() const { return last_; }

private:
  wall_source wall_;
  hlc_time last_ = 0;
};

} // namespace brd
