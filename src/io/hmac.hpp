// HMAC-SHA256 and a comparison that takes the same time for every mismatch,
// for checking GitHub's X-Hub-Signature-256. Pure functions of their
// arguments; safe to call from any thread. Nothing here throws.
#pragma once

#include <string>
#include <string_view>

namespace brd::io {

// HMAC-SHA256 of `data` under `key`, as 64 lowercase hex digits.
// Any key length is allowed, including empty.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// True when `a` and `b` hold the same bytes. For equal lengths the time taken
// does not depend on where they differ; different lengths give false at once
// (lengths are not secret here: a signature has a fixed length).
bool constant_time_equal(std::string_view a, std::string_view b);

} // namespace brd::io
