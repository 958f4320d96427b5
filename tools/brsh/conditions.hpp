// Conditions of `wait-for` and `check`, written in the shell's own words:
//
//   node NAME is [not] STATE          STATE: alive suspect down left unknown
//   all nodes are [not] STATE
//   state TABLE KEY exists
//   state TABLE KEY is missing
//   state TABLE KEY = VALUE           the decoded record equals the JSON
//                                     VALUE (or the raw bytes equal VALUE)
//   state TABLE KEY FIELD = VALUE     one field of the decoded record (a.b
//                                     for nested fields); VALUE is JSON when
//                                     it parses (3, true, "x"), else text
//   (and != for both)
//   digests equal                     every node that answers agrees on
//                                     every table's digest
//   deploy ID is [not] STATE          STATE: pending success failure (the
//                                     deployment record's state, as the
//                                     connected node's replica has it)
//
// Node states are as the connected node sees them; a connected node that
// brsh cannot reach counts as down.
#pragma once

#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "commands.hpp"

namespace brsh {

struct condition {
  std::string goal;  // "node alice to be alive"
  std::string met;   // "node alice is alive"

  struct reading {
    bool met = false;
    std::string now; // what holds instead: "it is down"
  };
  std::function<reading(client&)> evaluate;
};

// Parses a condition; a failed outcome (usage) when the words are not one.
std::variant<condition, outcome> parse_condition(const std::vector<std::string>& words,
                                                 const client& cl);

// The grammar above, for usage messages.
const char* condition_grammar();

} // namespace brsh
