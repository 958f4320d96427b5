// Small text helpers shared by the HTTP server and client (internal to
// src/io).
#pragma once

#include <cstdint>
#include <string>
#include <system_error>

namespace brd::io::detail {

inline std::string lower(std::string text) {
  for (auto& c : text)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return text;
}

inline std::string endpoint(const std::string& host, uint16_t port) {
  return host + ":" + std::to_string(port);
}

// "Address already in use" -> "address already in use".
inline std::string errno_text(int err) {
  return lower(std::system_category().message(err));
}

} // namespace brd::io::detail
