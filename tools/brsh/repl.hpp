// The interactive shell (libedit): line editing, history kept in
// ~/.brsh_history, tab completion of command words, node names, table
// names, actor kinds and condition words, and a prompt naming the
// connected node ("brsh edge> "). Ctrl-C clears the line at the prompt and
// stops a running watch or wait-for; Ctrl-D or `exit` leaves.
#pragma once

#include <string>
#include <vector>

#include "commands.hpp"

namespace brsh {

// Runs until `exit` or end of input; returns the exit code (`exit CODE`, else 0).
int run_repl(context& ctx);

// The completions of `partial` after the complete words `before` (exposed
// for tests of the completion logic).
std::vector<std::string> completions(client& cl, const std::vector<std::string>& before,
                                     const std::string& partial);

} // namespace brsh
