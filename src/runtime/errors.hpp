// BlackRoad's error codes. Errors are values (caf::error), never exceptions.
#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/sec.hpp>

namespace brd {

enum class brd_errc : uint8_t {
  none = 0,
  bad_config,      // the fleet file is broken; the context says where and how to fix it
  unknown_node,    // a node name that the fleet file does not hold
  store_failure,   // RocksDB refused an operation
  store_locked,    // another brnode owns the data directory
  io_failure,      // a file or socket operation failed
  timeout,         // a request or a connect ran out of time
  refused,         // a peer refused us (other cluster, other version, bad TLS)
  disk_full,       // the data directory's filesystem has no space left
};

const char* to_string(brd_errc x);

caf::error make_error(brd_errc code, std::string what);

// The human sentence inside an error made by make_error (or CAF's own text).
std::string describe(const caf::error& err);

// True when `err` is BlackRoad's error `code`.
bool has_code(const caf::error& err, brd_errc code);

// The HTTP status for a request that failed with `err` in the store or an
// actor: 400 refused, 507 disk full, 504 timeout, 500 otherwise.
int http_status_of(const caf::error& err);

} // namespace brd

// Category "brd": errors travel between nodes with this category.
CAF_ERROR_CODE_ENUM_2(brd::brd_errc, "brd")
