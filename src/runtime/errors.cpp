#include "runtime/errors.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace brd {

const char* to_string(brd_errc x) {
  switch (x) {
    case brd_errc::none: return "none";
    case brd_errc::bad_config: return "bad_config";
    case brd_errc::unknown_node: return "unknown_node";
    case brd_errc::store_failure: return "store_failure";
    case brd_errc::store_locked: return "store_locked";
    case brd_errc::io_failure: return "io_failure";
    case brd_errc::timeout: return "timeout";
    case brd_errc::refused: return "refused";
    case brd_errc::disk_full: return "disk_full";
  }
  return "unknown";
}

caf::error make_error(brd_errc code, std::string what) {
  return caf::error{static_cast<uint8_t>(code), caf::atom("brd"),
                    caf::make_message(std::move(what))};
}

bool has_code(const caf::error& err, brd_errc code) {
  return err.category() == caf::atom("brd")
         && err.code() == static_cast<uint8_t>(code);
}

int http_status_of(const caf::error& err) {
  if (has_code(err, brd_errc::refused))
    return 400;
  if (has_code(err, brd_errc::disk_full))
    return 507; // Insufficient Storage
  if (err == caf::sec::request_timeout || has_code(err, brd_errc::timeout))
    return 504;
  return 500;
}

std::string describe(const caf::error& err) {
  if (!err)
    return "no error";
  const auto& ctx = err.context();
  if (err.category() == caf::atom("brd") && ctx.match_elements<std::string>())
    return ctx.get_as<std::string>(0);
  return caf::to_string(err);
}

} // namespace brd
