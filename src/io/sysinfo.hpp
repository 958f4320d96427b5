// Readings of this host and this brnode process, for heartbeats, /health and
// /metrics. Linux only (/proc, statvfs). Nothing here throws or fails: a
// reading that cannot be taken is reported as zero.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "runtime/messages.hpp"

namespace brd::io {

// One node_sample: disk of the filesystem holding `data_dir` (or its nearest
// existing parent), load averages, memory, this process's RSS and uptime
// (measured from `process_start`), host uptime, and the wall clock now.
node_sample take_sample(const std::string& data_dir,
                        std::chrono::steady_clock::time_point process_start);

// Resident set size of this process in bytes.
uint64_t resident_memory_bytes();

// The malloc this process runs on: "jemalloc 5.3.0" when jemalloc
// serves it (linked in, see src/runtime/jemalloc_conf.cpp, or preloaded: it
// answers mallctl), else "system". For brnode --version and brnode_build_info.
std::string allocator_name();

// Bytes the program holds from malloc right now, as the allocator counts
// them (jemalloc's stats.allocated, glibc's mallinfo2 in-use and mmapped
// bytes), or 0 if it cannot say. Against resident memory it tells a leak
// (this grows) from fragmentation or caches (only the RSS grows). Compare
// trends, not levels: it counts what was allocated and not touched yet
// (RocksDB's memtable arenas), which is not resident.
uint64_t malloc_allocated_bytes();

// Sum of the sizes of the regular files under `dir`, recursively, without
// following symlinks. Files that vanish during the walk are skipped.
uint64_t directory_size_bytes(const std::string& dir);

} // namespace brd::io
