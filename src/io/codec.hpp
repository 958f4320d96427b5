// Versioned records as stored on disk (and later sent between nodes).
//
// Each record is one msgpack map of field name -> value plus a "v" field, the
// schema version of the writer. Readers take the fields they know, ignore the
// rest and keep defaults for absent ones, so old and new code can read each
// other's records. Adding a field is compatible; renaming or changing a
// field's type is not (use a new name). Decoding never throws: bytes that are
// not such a map, or a known field of the wrong type, give an io_failure
// error "corrupt record: ...".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

namespace brd::io {

// What a node says about itself in its store: who it is and which start this is.
struct node_record {
  static constexpr uint32_t current_version = 1;

  // After decoding: the writer's schema version, possibly newer than
  // current_version. encode() always writes current_version.
  uint32_t v = current_version;
  std::string name, cluster, tier;
  std::vector<std::string> roles;
  std::string host;
  uint16_t port = 0, http_port = 0;
  std::string version;       // brnode's version
  uint64_t incarnation = 0;  // grows by one on every start
  int64_t started_at_ms = 0; // wall clock, ms since epoch
};

std::string encode(const node_record& x);

caf::expected<node_record> decode_node_record(std::string_view bytes);

// One row of a replicated state table as stored (io/state_store): the value
// or tombstone with its merge stamp. `val` is packed as msgpack bin.
struct row_envelope {
  static constexpr uint32_t current_version = 1;

  uint32_t v = current_version;
  uint64_t hlc = 0;
  std::string origin;
  uint64_t seq = 0;
  bool tomb = false;
  std::string val; // empty for a tombstone
};

std::string encode(const row_envelope& x);

caf::expected<row_envelope> decode_row_envelope(std::string_view bytes);

// One entry of the replication log: a row envelope plus where it belongs.
// `ref`: the value is not here but in the row (table, key) while that row
// is this write (its hlc, origin and seq); entries written before ref
// existed hold their value.
struct log_envelope {
  static constexpr uint32_t current_version = 1;

  uint32_t v = current_version;
  std::string table, key;
  uint64_t hlc = 0;
  std::string origin;
  uint64_t seq = 0;
  bool tomb = false;
  std::string val;
  bool ref = false;
};

std::string encode(const log_envelope& x);

caf::expected<log_envelope> decode_log_envelope(std::string_view bytes);

// The schema version "v" of any record, other fields unread. Errors as for
// the decoders above; a "v" that is not a non-negative integer is corrupt.
caf::expected<uint64_t> decode_record_version(std::string_view bytes);

} // namespace brd::io
