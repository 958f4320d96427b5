#include "state_view.hpp"

#include <cctype>

#include "output.hpp"
#include "runtime/errors.hpp"
#include "runtime/hlc.hpp"

namespace brsh {

using nlohmann::json;

json decode_value(const std::string& bytes) {
  auto j = json::from_msgpack(bytes, true, false);
  if (!j.is_discarded())
    return j;
  bool printable = true;
  for (unsigned char ch : bytes)
    printable = printable && (std::isprint(ch) || ch == '\n' || ch == '\t');
  if (printable)
    return bytes;
  static const char* hex = "0123456789abcdef";
  std::string out = "0x";
  for (unsigned char ch : bytes) {
    out += hex[ch >> 4];
    out += hex[ch & 15];
  }
  return out;
}

caf::expected<std::string> encode_value(const std::string& json_text) {
  auto j = json::parse(json_text, nullptr, false);
  if (j.is_discarded())
    return brd::make_error(brd::brd_errc::refused,
                           "the value is not JSON: " + json_text
                             + " (write a record such as '{\"v\":1,\"status\":\"ok\"}')");
  if (!j.is_object() || !j.contains("v") || !j["v"].is_number_unsigned())
    return brd::make_error(brd::brd_errc::refused,
                           "a value must be a JSON object with an integer schema version "
                           "\"v\", such as '{\"v\":1,\"status\":\"ok\"}'");
  auto bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

std::string hlc_text(uint64_t hlc) {
  auto out = utc_text(static_cast<int64_t>(brd::hlc_wall_ms(hlc)));
  if (auto logical = brd::hlc_logical(hlc); logical != 0)
    out += "/" + std::to_string(logical);
  return out;
}

json row_json(const brd::state_row& row) {
  json j{{"table", row.table}, {"key", row.key},
         {"value", row.tombstone ? json(nullptr) : decode_value(row.value)},
         {"origin", row.origin}, {"seq", row.seq}, {"hlc", row.hlc},
         {"written", hlc_text(row.hlc)}};
  if (row.tombstone)
    j["tombstone"] = true;
  return j;
}

} // namespace brsh
