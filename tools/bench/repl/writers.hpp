// The replication benchmark's writers: actors that keep puts outstanding at
// one state actor until their share is answered. The same code runs in the
// benchmark's own process (remote clients, over the CAF transport) and
// inside each node (brnode_bench's writer host, local to the state actor).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/state.hpp"

namespace bench {

// Counted by the writers, read by whoever waits for them.
struct write_counts {
  std::atomic<uint64_t> acked{0}, errors{0}, writers_done{0};
};

struct writer_plan {
  std::string prefix;   // keys are prefix + "<writer>-<n>"
  uint64_t per_writer = 0;
  size_t writers = 1;
  size_t window = 1;    // requests each writer keeps outstanding
  size_t batch = 1;     // puts per request (1: put; N: put of many)
  std::string value;
};

// Spawns plan.writers writers at `target`; each counts into `counts` and
// quits once its share is answered.
void spawn_writers(caf::actor_system& sys, const brd::state_actor& target,
                   const writer_plan& plan, std::shared_ptr<write_counts> counts);

// The writer host that brnode_bench adds to each node, by this name: asked
// (put_atom, prefix, per_writer, writers, window, batch, value_size), it
// runs those writers at its node's state actor and answers (acked, errors)
// once all are answered.
inline constexpr const char* writer_host_name = "bench-writers";
caf::behavior writer_host(caf::event_based_actor* self, brd::state_actor state);

} // namespace bench
