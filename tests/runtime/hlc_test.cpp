// The hybrid logical clock.
#include "runtime/hlc.hpp"

#include <doctest/doctest.h>

namespace {

using brd::hlc_clock;
using brd::hlc_logical;
using brd::hlc_wall_ms;
using brd::make_hlc;

// A wall clock the test moves by hand.
struct fake_wall {
  uint64_t ms = 1'000'000;
  hlc_clock clock() {
    return hlc_clock{[this] { return ms; }};
  }
};

} // namespace

TEST_CASE("a timestamp packs wall milliseconds above a logical counter") {
  auto t = make_hlc(1'700'000'000'000, 7);
  CHECK(hlc_wall_ms(t) == 1'700'000'000'000);
  CHECK(hlc_logical(t) == 7);
  CHECK(make_hlc(5, 0) > make_hlc(4, 0xffff));
}

TEST_CASE("now() follows the wall clock and never repeats a timestamp") {
  fake_wall wall;
  auto clock = wall.clock();
  auto first = clock.now();
  CHECK(hlc_wall_ms(first) == wall.ms);
  CHECK(hlc_logical(first) == 0);
  auto second = clock.now(); // same millisecond: the counter moves
  CHECK(second > first);
  CHECK(hlc_wall_ms(second) == wall.ms);
  CHECK(hlc_logical(second) == 1);
  wall.ms += 5;
  auto third = clock.now();
  CHECK(hlc_wall_ms(third) == wall.ms);
  CHECK(hlc_logical(third) == 0);
  CHECK(clock.last() == third);
}

TEST_CASE("the real clock is strictly increasing over many calls") {
  hlc_clock clock;
  auto previous = clock.now();
  for (int i = 0; i < 100'000; ++i) {
    auto t = clock.now();
    REQUIRE(t > previous);
    previous = t;
  }
}

TEST_CASE("observing a timestamp from the future pushes the next one past it") {
  fake_wall wall;
  auto clock = wall.clock();
  auto remote = make_hlc(wall.ms + 60'000, 3);
  clock.observe(remote);
  auto t = clock.now();
  CHECK(t > remote);
  CHECK(hlc_wall_ms(t) == wall.ms + 60'000);
  CHECK(hlc_logical(t) == 4);
  // An older remote timestamp changes nothing.
  clock.observe(make_hlc(wall.ms - 10, 0));
  CHECK(clock.now() == t + 1);
}

TEST_CASE("a wall clock that goes backwards does not move timestamps back") {
  fake_wall wall;
  auto clock = wall.clock();
  auto before = clock.now();
  wall.ms -= 30'000; // NTP step backwards
  auto after = clock.now();
  CHECK(after > before);
  CHECK(hlc_wall_ms(after) == hlc_wall_ms(before));
  wall.ms += 60'000; // wall time overtakes the clock again
  auto later = clock.now();
  CHECK(hlc_wall_ms(later) == wall.ms);
  CHECK(hlc_logical(later) == 0);
}

TEST_CASE("the logical counter overflowing moves the clock one ms ahead") {
  fake_wall wall;
  auto clock = wall.clock();
  clock.observe(make_hlc(wall.ms, 0xffff));
  auto t = clock.now();
  CHECK(hlc_wall_ms(t) == wall.ms + 1);
  CHECK(hlc_logical(t) == 0);
}
