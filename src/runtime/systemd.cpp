#include "runtime/systemd.hpp"

#ifdef BRD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace brd::systemd {

#ifdef BRD_HAVE_SYSTEMD
void notify_ready() { sd_notify(0, "READY=1\nSTATUS=joined the fleet"); }
void notify_stopping() { sd_notify(0, "STOPPING=1"); }
#else
void notify_ready() {}
void notify_stopping() {}
#endif

} // namespace brd::systemd
