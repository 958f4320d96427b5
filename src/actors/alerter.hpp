// The alerter: forwards alerts to people. Alerts are records in the
// replicated `alerts` table (io/deploy_records.hpp), written by whichever
// node raises them; on a node with the role "bridge" the alerter follows
// that table and POSTs each new alert to alerts.url as Slack-compatible
// JSON:
//
//   {"text": "<the alert's sentence>",
//    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": ...}}]}
//
// through the status poster (retries with backoff, never blocking anyone).
// When several bridge nodes run, only the first one alive in config order
// posts, so an alert reaches the URL once. Alerts older than an hour when
// they arrive (a node catching up after a partition) are not posted.
#pragma once

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/health.hpp"
#include "actors/state.hpp"
#include "actors/status_poster.hpp"
#include "runtime/config.hpp"
#include "runtime/messages.hpp"

namespace brd {

using alerter_actor = caf::typed_actor<caf::reacts_to<state_entry>,
                                       caf::reacts_to<member_event>>;

struct alerter_options {
  fleet_config fleet; // [alerts] url; which nodes are bridges
  node_name self;
  state_actor state;
  health_actor health;
  poster_actor poster;
};

alerter_actor spawn_alerter(caf::actor_system& sys, alerter_options opts);

} // namespace brd
