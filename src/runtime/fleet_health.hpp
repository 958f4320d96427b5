// JSON views of the membership table, as /health, /api/members and brsh
// show them. Pure functions of the config and the table's rows.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/config.hpp"
#include "runtime/messages.hpp"

namespace brd {

// Status word of a member: online, suspect, offline, left or unknown.
const char* member_status(member_state s);

// The fleet per tier in the seed's shape:
// {"edge":"online","backup":"online","pi_cluster":{"lucidia":{"status":...,
//  "disk":"45%","load":0.8,...}},"tiers":{...}}
nlohmann::json health_json(const fleet_config& fleet, const node_name& self,
                           const std::vector<member_view>& rows);

// One object per configured node with its membership details.
nlohmann::json members_json(const fleet_config& fleet,
                            const std::vector<member_view>& rows);

} // namespace brd
