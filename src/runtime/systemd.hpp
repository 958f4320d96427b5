// systemd readiness notification (sd_notify). No-ops when brnode was built
// without libsystemd or is not running under systemd (NOTIFY_SOCKET unset).
#pragma once

namespace brd::systemd {

void notify_ready();     // READY=1: the node has joined the fleet
void notify_stopping();  // STOPPING=1: graceful shutdown has begun

} // namespace brd::systemd
