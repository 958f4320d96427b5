#include "io/sysinfo.hpp"
#include "../support/temp_dir.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono;

using brd_test::temp_dir;

void write_bytes(const fs::path& file, size_t n) {
  std::ofstream{file, std::ios::binary} << std::string(n, 'x');
}

} // namespace

TEST_CASE("a sample holds plausible readings of this host and process") {
  temp_dir tmp;
  auto before_ms = duration_cast<milliseconds>(
                     system_clock::now().time_since_epoch()).count();
  auto x = brd::io::take_sample(tmp.path.string(),
                                steady_clock::now() - seconds{90});
  CHECK(x.taken_at_ms >= before_ms);
  CHECK(x.taken_at_ms < before_ms + 5000);
  CHECK(x.disk_used_pct >= 0);
  CHECK(x.disk_used_pct <= 100);
  CHECK(x.disk_total_bytes > 0);
  CHECK(x.disk_free_bytes <= x.disk_total_bytes);
  CHECK(x.load1 >= 0);
  CHECK(x.load15 >= 0);
  CHECK(x.mem_total_bytes > 0);
  CHECK(x.mem_available_bytes > 0);
  CHECK(x.mem_available_bytes <= x.mem_total_bytes);
  CHECK(x.rss_bytes > 0);
  CHECK(x.rss_bytes < x.mem_total_bytes);
  CHECK(x.uptime_s >= 90);
  CHECK(x.uptime_s < 95);
  CHECK(x.host_uptime_s > 0);
}

TEST_CASE("a data directory not made yet is measured at its parent") {
  temp_dir tmp;
  auto x = brd::io::take_sample((tmp.path / "not/made/yet").string(),
                                steady_clock::now());
  auto y = brd::io::take_sample(tmp.path.string(), steady_clock::now());
  CHECK(x.disk_total_bytes > 0);
  CHECK(x.disk_total_bytes == y.disk_total_bytes);
  CHECK(x.uptime_s == 0);
}

TEST_CASE("resident memory is at least what the process has touched") {
  auto before = brd::io::resident_memory_bytes();
  CHECK(before > 0);
  std::string touched(64 << 20, 'x');
  CHECK(brd::io::resident_memory_bytes() >= before + (32 << 20));
  CHECK(touched.back() == 'x');
}

TEST_CASE("malloc's count of allocated bytes follows what the process holds") {
  auto before = brd::io::malloc_allocated_bytes();
  CHECK(before > 0);
  {
    std::string held(64 << 20, 'x');
    CHECK(brd::io::malloc_allocated_bytes() >= before + (64 << 20));
    CHECK(held.back() == 'x');
  }
  CHECK(brd::io::malloc_allocated_bytes() < before + (1 << 20));
}

TEST_CASE("the allocator is named: this test links the system malloc") {
  // brnode links jemalloc when the build finds it; cluster_http checks that
  // name on a running node's brnode_build_info.
  CHECK(brd::io::allocator_name() == "system");
}

TEST_CASE("directory size sums regular files recursively") {
  temp_dir tmp;
  write_bytes(tmp.path / "a", 100);
  fs::create_directories(tmp.path / "sub/deeper");
  write_bytes(tmp.path / "sub/b", 200);
  write_bytes(tmp.path / "sub/deeper/c", 50);
  fs::create_symlink(tmp.path / "a", tmp.path / "link-to-a");
  CHECK(brd::io::directory_size_bytes(tmp.path.string()) == 350);
  CHECK(brd::io::directory_size_bytes((tmp.path / "missing").string()) == 0);
}
