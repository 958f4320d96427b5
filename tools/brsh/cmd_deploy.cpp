// Deploys: the commands exist so scripts and muscle memory can be written
// now; until push-to-deploy lands (issue 4) each answers that deploys are
// not available, with exit code 69. Arguments are still checked first.
#include "commands.hpp"

namespace brsh {

namespace {

const char* unavailable_text = "deploys are not available on this fleet yet (issue 4)";

outcome not_yet(context&, const invocation&) {
  return failure(exit_unavailable, unavailable_text);
}

outcome rollback(context& ctx, const invocation& inv) {
  if (inv.has("node") == inv.has("role"))
    return failure(exit_usage, "deploy rollback needs exactly one of --node X or --role X"
                               "\nusage: deploy rollback REPO (--node X | --role X) [--to SHA]");
  return not_yet(ctx, inv);
}

} // namespace

void add_deploy_commands(std::vector<command>& table) {
  table.push_back({"deploys list", "", "recent deploys and their state", {output_flag()}, 0, 0,
                   not_yet, "Not available until push-to-deploy (issue 4)."});
  table.push_back({"deploy show", "ID", "one deploy: its tasks per node", {output_flag()}, 1, 1,
                   not_yet, "Not available until push-to-deploy (issue 4)."});
  table.push_back({"deploy logs", "ID [TASK]", "a deploy's task logs",
                   {{"follow", "", ""}}, 1, 2, not_yet,
                   "Not available until push-to-deploy (issue 4)."});
  table.push_back({"deploy rollback", "REPO (--node X | --role X) [--to SHA]", "roll a repo back on a node or role",
                   {{"node", "", "X"}, {"role", "", "X"}, {"to", "", "SHA"}}, 1, 1, rollback,
                   "Exactly one of --node or --role. Not available until push-to-deploy "
                   "(issue 4)."});
  table.push_back({"deploy retry", "ID", "retry a failed deploy", {}, 1, 1, not_yet,
                   "Not available until push-to-deploy (issue 4)."});
}

} // namespace brsh
