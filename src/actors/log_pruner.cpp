#include "actors/log_pruner.hpp"

#include <caf/typed_event_based_actor.hpp>

#include "io/workspace.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"
#include "runtime/wall_clock.hpp"

namespace brd {

namespace {

log_pruner_actor::behavior_type log_pruner(log_pruner_actor::pointer self,
                                           log_pruner_options opts) {
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      self->delayed_send(self, opts.every, tick_atom::value);
      auto keep_ms = std::chrono::duration_cast<std::chrono::milliseconds>(opts.keep).count();
      io::workspace ws{opts.workspace_root};
      auto removed = ws.prune_logs(wall_clock_ms() - keep_ms);
      if (!removed)
        log::deploy()->warn("cannot remove old task logs: {}", describe(removed.error()));
      else if (*removed > 0)
        log::deploy()->info("removed the task logs of {} deployment{} older than {} days",
                            *removed, *removed == 1 ? "" : "s", opts.keep.count());
    },
  };
}

} // namespace

log_pruner_actor spawn_log_pruner(caf::actor_system& sys, log_pruner_options opts) {
  return sys.spawn<caf::detached>(log_pruner, std::move(opts));
}

} // namespace brd
