// How brsh shows replicated state: rows as JSON, values decoded from their
// msgpack records, HLC stamps as wall-clock times.
#pragma once

#include <string>

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include "runtime/messages.hpp"

namespace brsh {

// A msgpack record value as JSON; a value that is not msgpack becomes a
// JSON string of its bytes (as text when printable).
nlohmann::json decode_value(const std::string& bytes);

// The msgpack record for a JSON text; a refused error (a sentence) when it
// is not a JSON object with an integer "v" schema version. The node checks
// the rest.
caf::expected<std::string> encode_value(const std::string& json_text);

// {"table","key","value","origin","seq","hlc","written"} (+"tombstone").
nlohmann::json row_json(const brd::state_row& row);

// An HLC stamp as UTC "2025-06-01T12:00:00.123Z" (+ "/n" when the logical
// counter is set).
std::string hlc_text(uint64_t hlc);

} // namespace brsh
