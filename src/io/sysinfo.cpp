#include "io/sysinfo.hpp"
#include "runtime/wall_clock.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include <dlfcn.h>
#include <malloc.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace brd::io {

namespace {

namespace fs = std::filesystem;

// The whole file, or "" if it cannot be read. (/proc files report size 0, so
// read them as a stream.)
std::string read_file(const char* path) {
  std::ifstream in{path};
  if (!in)
    return {};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The number after `key` on its line of /proc/meminfo, in bytes (the file
// counts in kB); 0 if the key is absent.
uint64_t meminfo_bytes(const std::string& meminfo, const std::string& key) {
  for (size_t pos = meminfo.find(key); pos != std::string::npos;
       pos = meminfo.find(key, pos + 1)) {
    if (pos == 0 || meminfo[pos - 1] == '\n')
      return std::strtoull(meminfo.c_str() + pos + key.size(), nullptr, 10)
             * 1024;
  }
  return 0;
}

struct disk_usage {
  double used_pct = 0;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
};

// Like df: used / (used + available to unprivileged users). A data directory
// that does not exist yet is measured at its nearest existing parent.
disk_usage disk_of(const std::string& dir) {
  std::error_code ec;
  auto path = fs::absolute(dir.empty() ? "." : dir, ec);
  if (ec)
    return {};
  struct statvfs st {};
  while (::statvfs(path.c_str(), &st) != 0) {
    if (!path.has_relative_path())
      return {};
    path = path.parent_path();
  }
  disk_usage result;
  uint64_t block = st.f_frsize;
  uint64_t used = (st.f_blocks - st.f_bfree) * block;
  result.free_bytes = st.f_bavail * block;
  result.total_bytes = st.f_blocks * block;
  if (used + result.free_bytes > 0)
    result.used_pct = 100.0 * static_cast<double>(used)
                      / static_cast<double>(used + result.free_bytes);
  return result;
}

} // namespace

node_sample take_sample(const std::string& data_dir,
                        std::chrono::steady_clock::time_point process_start) {
  node_sample x;
  x.taken_at_ms = wall_clock_ms();
  auto disk = disk_of(data_dir);
  x.disk_used_pct = disk.used_pct;
  x.disk_total_bytes = disk.total_bytes;
  x.disk_free_bytes = disk.free_bytes;
  double load[3] = {0, 0, 0};
  if (::getloadavg(load, 3) == 3) {
    x.load1 = load[0];
    x.load5 = load[1];
    x.load15 = load[2];
  }
  auto meminfo = read_file("/proc/meminfo");
  x.mem_total_bytes = meminfo_bytes(meminfo, "MemTotal:");
  x.mem_available_bytes = meminfo_bytes(meminfo, "MemAvailable:");
  x.rss_bytes = resident_memory_bytes();
  auto alive = std::chrono::steady_clock::now() - process_start;
  x.uptime_s = static_cast<uint64_t>(std::max<int64_t>(
    0, std::chrono::duration_cast<std::chrono::seconds>(alive).count()));
  auto uptime = read_file("/proc/uptime");
  x.host_uptime_s = static_cast<uint64_t>(
    std::max(0.0, std::strtod(uptime.c_str(), nullptr)));
  return x;
}

uint64_t resident_memory_bytes() {
  // /proc/self/statm: size resident shared text lib data dt, in pages.
  std::istringstream statm{read_file("/proc/self/statm")};
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident))
    return 0;
  auto page = ::sysconf(_SC_PAGESIZE);
  return page > 0 ? resident * static_cast<uint64_t>(page) : 0;
}

namespace {

// jemalloc's control interface when jemalloc serves malloc, else nullptr.
// Looked up at run time, so a preloaded allocator is seen too; nothing links
// against jemalloc's own symbols.
using mallctl_fn = int (*)(const char*, void*, size_t*, void*, size_t);

mallctl_fn jemalloc_ctl() {
  static const auto fn = reinterpret_cast<mallctl_fn>(::dlsym(RTLD_DEFAULT, "mallctl"));
  return fn;
}

} // namespace

std::string allocator_name() {
  auto mallctl = jemalloc_ctl();
  if (mallctl == nullptr)
    return "system";
  const char* version = nullptr;
  size_t len = sizeof(version);
  if (mallctl("version", &version, &len, nullptr, 0) != 0 || version == nullptr)
    return "jemalloc";
  // "5.3.0-0-g54eaed1d..." -> "5.3.0": the release, not the git describe.
  std::string v{version};
  return "jemalloc " + v.substr(0, v.find('-'));
}

uint64_t malloc_allocated_bytes() {
  if (auto mallctl = jemalloc_ctl()) {
    // jemalloc's statistics are a snapshot taken when "epoch" is written.
    uint64_t epoch = 1;
    size_t epoch_len = sizeof(epoch);
    (void) mallctl("epoch", &epoch, &epoch_len, &epoch, epoch_len);
    size_t allocated = 0;
    size_t len = sizeof(allocated);
    if (mallctl("stats.allocated", &allocated, &len, nullptr, 0) != 0)
      return 0;
    return allocated;
  }
  auto info = ::mallinfo2(); // every arena, under their locks: cheap at a scrape
  return info.uordblks + info.hblkhd;
}

uint64_t directory_size_bytes(const std::string& dir) {
  std::error_code ec;
  uint64_t total = 0;
  auto opts = fs::directory_options::skip_permission_denied;
  for (fs::recursive_directory_iterator it{dir, opts, ec}, end;
       !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;
    if (!it->is_regular_file(entry_ec) || it->is_symlink(entry_ec))
      continue;
    auto size = it->file_size(entry_ec);
    if (!entry_ec)
      total += size;
  }
  return total;
}

} // namespace brd::io
