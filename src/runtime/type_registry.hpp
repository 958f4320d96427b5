// The actor system configuration every BlackRoad process uses (brnode and
// brsh alike): it loads the middleman (and OpenSSL when TLS is on) and
// registers every message type once, so typed handles match across nodes.
#pragma once

#include <string>

#include <caf/actor_system_config.hpp>

namespace brd {

// Protocol version of the node-to-node interfaces. Bump it on any change to
// messages.hpp or an actor interface: nodes of different versions refuse
// each other at the handshake.
inline constexpr const char* protocol_version = "brd-proto-6";

class system_config : public caf::actor_system_config {
public:
  // `cluster` becomes part of the CAF application identifier, so nodes of
  // another fleet (or protocol version) are refused at connect time.
  system_config(const std::string& cluster, bool with_tls);

  static std::string app_identifier(const std::string& cluster);
};

// Adds every BlackRoad message type to `cfg`.
void register_message_types(caf::actor_system_config& cfg);

} // namespace brd
