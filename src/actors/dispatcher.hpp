// The dispatcher: the edge side of push to deploy, one per node with the
// role "bridge". The HTTP handler checks a webhook's signature and parses it
// (io/github_webhook.hpp); the dispatcher does everything that needs state:
//
// - Deliveries: an X-GitHub-Delivery id seen within github.delivery_ttl is
//   answered 200 "duplicate" and dispatches nothing. Ids are kept in memory
//   and in the replicated `deployments` table: in the record of the
//   deployment the push started (field `delivery`), or in a row of their
//   own ("delivery/<id>", with the time) for pushes that start nothing.
//   Being one actor, the check is race-free for concurrent copies of one
//   delivery at this node. Expired ids are purged every few minutes.
// - Routing (runtime/routing.hpp): one deployment record per deploying push
//   and one task per (role, node); each goes at once to the target node's
//   deployer, found through the health actor's service lookup, and that
//   node writes the task's rows (a task without a node is written here,
//   unassigned, with an alert). The
//   reply (202 with the deployment id) does not wait for any of that. When
//   the changed paths need `git diff` (truncated or forced pushes), the diff
//   runs on a worker thread in <workspace>/dispatch/<owner>/<name> after the
//   reply.
// - Progress: task rows come back through the `tasks` table; commit statuses
//   ("blackroad/deploy" and "blackroad/deploy/<role>", pending then success
//   or failure) go to the status poster; the deployment record gets its
//   final state, and a failure raises an alert. A task its node superseded
//   (a newer push of the repository and role) counts as success, described
//   "superseded by <sha12>". So does one superseded while it still waited
//   here to be sent to its node (the same rule, rules with supersede = true):
//   it never reaches the node and has no row; its reason is a verdict in the
//   deployment record. brnode_deploy_superseded_unsent_total counts such
//   deployments (they have no brnode_deploy_handover_seconds sample).
// - A node that goes down or leaves while holding unfinished tasks: those
//   tasks fail with reason "node lost" (a verdict in the deployment record,
//   never a write to the node's task row), an alert is raised, and for rules
//   with placement "one" the task runs again (attempt + 1) on another live
//   node of the role that has not tried it yet. A task still running two
//   minutes past its timeout (its node lost it without going down) fails
//   with reason "no progress from node <name>".
// - Rollback and retry (operator API): a rollback re-activates a kept build
//   on a node or on every live node of a role, recorded as a deployment of
//   kind "rollback"; the sha rolled back from is marked fleet-wide
//   ("rollback/<repo>/<sha>") and pushes of it are ignored until a retry of
//   a deployment of it removes the mark and deploys it again.
//
// Only deployments this dispatcher created are followed; after a restart it
// picks up its own pending ones from the store.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/health.hpp"
#include "actors/state.hpp"
#include "actors/status_poster.hpp"
#include "io/github_webhook.hpp"
#include "runtime/config.hpp"
#include "runtime/deploy_messages.hpp"
#include "runtime/messages.hpp"

namespace brd {

namespace io {
class metrics_registry;
}

// An HTTP answer: status and JSON body.
struct http_answer {
  int status = 200;
  std::string body;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_answer& x) {
  return f(caf::meta::type_name("http_answer"), x.status, x.body);
}

// A push that passed the signature check and parse_push.
struct webhook_push {
  io::push_event event;
  int64_t received_ns = 0; // steady clock, when the request arrived
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, webhook_push& x) {
  auto& e = x.event;
  return f(caf::meta::type_name("webhook_push"), e.delivery, e.repo, e.ref, e.before, e.after,
           e.pusher, e.sender, e.created, e.deleted, e.forced, e.truncated, e.changed,
           e.head_message, x.received_ns);
}

// POST /api/rollback: exactly one of node and role; sha is a commit id or
// "previous".
struct rollback_request {
  std::string repo, node, role, sha;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rollback_request& x) {
  return f(caf::meta::type_name("rollback_request"), x.repo, x.node, x.role, x.sha);
}

using dispatcher_actor = caf::typed_actor<
  // A verified push: 202 accepted (with the deployment id) or ignored
  // (with the reason), 200 duplicate, 404 for a repository not configured.
  caf::replies_to<webhook_push>::with<http_answer>,
  // 202 with the rollback deployment's id; 400/404/409 with the reason.
  caf::replies_to<rollback_atom, rollback_request>::with<http_answer>,
  // Retry deployment `id`: 202 with the new deployment's id.
  caf::replies_to<retry_atom, std::string>::with<http_answer>,
  // Subscriptions: `tasks` and `deployments` rows, member events.
  caf::reacts_to<state_entry>, caf::reacts_to<member_event>,
  // Timer: membership refresh, delivery purge.
  caf::reacts_to<tick_atom>>;

struct dispatcher_options {
  fleet_config fleet;
  node_name self;
  std::string data_dir;
  health_actor health;
  state_actor state;
  poster_actor poster;     // commit statuses; may be invalid
  std::string public_url;  // base of target_url, no trailing '/'
  std::shared_ptr<io::metrics_registry> metrics;
};

dispatcher_actor spawn_dispatcher(caf::actor_system& sys, dispatcher_options opts);

} // namespace brd
