#include "runtime/type_registry.hpp"

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include "actors/health.hpp"
#include "runtime/deploy_messages.hpp"
#include "runtime/messages.hpp"

namespace brd {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<node_sample>("brd::node_sample");
  cfg.add_message_type<hello_msg>("brd::hello_msg");
  cfg.add_message_type<heartbeat>("brd::heartbeat");
  cfg.add_message_type<member_state>("brd::member_state");
  cfg.add_message_type<member_event>("brd::member_event");
  cfg.add_message_type<member_view>("brd::member_view");
  cfg.add_message_type<std::vector<member_view>>("std::vector<brd::member_view>");
  cfg.add_message_type<state_entry>("brd::state_entry");
  cfg.add_message_type<std::vector<state_entry>>("std::vector<brd::state_entry>");
  cfg.add_message_type<repl_batch>("brd::repl_batch");
  cfg.add_message_type<state_snapshot>("brd::state_snapshot");
  cfg.add_message_type<write_ack>("brd::write_ack");
  cfg.add_message_type<std::map<std::string, uint64_t>>("brd::version_vector");
  cfg.add_message_type<std::map<std::string, std::string>>("brd::digests");
  cfg.add_message_type<node_status>("brd::node_status");
  cfg.add_message_type<actor_info>("brd::actor_info");
  cfg.add_message_type<std::vector<actor_info>>("std::vector<brd::actor_info>");
  cfg.add_message_type<actor_summary>("brd::actor_summary");
  cfg.add_message_type<deploy_task>("brd::deploy_task"); // dispatcher -> deployer
  cfg.add_message_type<std::vector<deploy_task>>("std::vector<brd::deploy_task>");
}

std::string system_config::app_identifier(const std::string& cluster) {
  return cluster + "/" + protocol_version;
}

system_config::system_config(const std::string& cluster, bool with_tls) {
  load<caf::io::middleman>();
  if (with_tls)
    load<caf::openssl::manager>();
  register_message_types(*this);
  set("middleman.app-identifiers",
      std::vector<std::string>{app_identifier(cluster)});
  // BASP heartbeats let a silent connection be noticed; membership has its
  // own, faster heartbeats on top.
  set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(1)});
  set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(10)});
  set("scheduler.max-threads", size_t{2});
  // Idle work-stealing workers poll (busy loops, then 50 us sleeps): on a
  // 2-core Pi that burns CPU the state actor and the other nodes' work
  // need. A shared queue lets idle workers block on a condition variable.
  set("scheduler.policy", caf::atom("sharing"));
  set("logger.console-verbosity", caf::atom("quiet"));
  set("logger.file-verbosity", caf::atom("quiet"));
}

} // namespace brd
