#include "runtime/messages.hpp"

namespace brd {

std::string to_string(member_state s) {
  switch (s) {
    case member_state::unknown: return "unknown";
    case member_state::alive: return "alive";
    case member_state::suspect: return "suspect";
    case member_state::down: return "down";
    case member_state::left: return "left";
  }
  return "unknown";
}

} // namespace brd
