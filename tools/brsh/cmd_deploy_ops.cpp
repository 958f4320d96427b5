// Operator actions on deploys: deploy rollback, deploy retry. Both go to
// the dispatcher of a bridge node over its HTTP API (bridge.hpp).
#include "bridge.hpp"
#include "client.hpp"
#include "commands.hpp"
#include "deploy_view.hpp"

namespace brsh {

namespace {

using nlohmann::json;

const char* rollback_args = "REPO (--node X | --role X) [--to SHA] [-o table|json]";

// The dispatcher's answer: JSON as it is, or a sentence with what to do next.
outcome report(context& ctx, const invocation& inv, const std::string& action,
               const bridge_answer& a) {
  if (!a.accepted())
    return failure(exit_failed, "the bridge node " + a.node + " refused the " + action + ": "
                                  + a.error());
  if (inv.format == format::json) {
    print_json(ctx.out, a.body);
    return {};
  }
  auto id = text_at(a.body, "deployment");
  ctx.out << action << " accepted by " << a.node << " as deployment " << id << '\n';
  for (const auto& step : items_at(a.body, "steps"))
    ctx.out << "  " << text_at(step, "node") << ": " << short_sha(text_at(step, "from"))
            << " -> " << short_sha(text_at(step, "to")) << '\n';
  ctx.out << "follow it with `deploy logs " << id << " --follow` or `wait-for deploy " << id
          << " is success`\n";
  return {};
}

outcome rollback(context& ctx, const invocation& inv) {
  if (inv.has("node") == inv.has("role"))
    return failure(exit_usage, "deploy rollback needs exactly one of --node X or --role X"
                               "\nusage: deploy rollback " + std::string{rollback_args});
  auto node = inv.flag("node");
  if (!node.empty() && ctx.cl.fleet().find(node) == nullptr)
    return failure(exit_usage, "no node named '" + node + "' in " + ctx.cl.fleet().file);
  json body{{"repo", inv.args[0]}, {"sha", inv.flag("to", "previous")}};
  if (inv.has("node"))
    body["node"] = node;
  else
    body["role"] = inv.flag("role");
  auto a = post_to_bridge(ctx.cl, "/api/rollback", body);
  if (!a)
    return failure(a.error());
  return report(ctx, inv, "rollback", *a);
}

outcome retry(context& ctx, const invocation& inv) {
  const auto& id = inv.args[0];
  auto a = post_to_bridge(ctx.cl, "/api/deployments/" + id + "/retry", json::object());
  if (!a)
    return failure(a.error());
  if (a->status == 404 && a->error().find("no deployment") == 0)
    return failure(exit_failed, "there is no deployment '" + id + "' on the bridge node "
                                  + a->node + " (`deploys list` shows the recent ones)");
  return report(ctx, inv, "retry", *a);
}

} // namespace

void add_deploy_op_commands(std::vector<command>& table) {
  table.push_back({"deploy rollback", rollback_args, "roll a repo back on a node or role",
                   {{"node", "", "X"}, {"role", "", "X"}, {"to", "", "SHA"}, output_flag()}, 1,
                   1, rollback,
                   "Re-activates a build the node kept (nothing is fetched or run), as a\n"
                   "deployment of kind rollback. Exactly one of --node or --role (every live\n"
                   "node of the role); --to SHA picks the build (40 hex digits), by default the\n"
                   "one before the active build. Pushes of the sha rolled back from are then\n"
                   "ignored until `deploy retry` of a deploy of it. Sent to the dispatcher of\n"
                   "a node with the role bridge, over its HTTP port."});
  table.push_back({"deploy retry", "ID", "deploy a deployment's commit again", {output_flag()}, 1,
                   1, retry,
                   "A new deployment of the same commit and roles (for a rollback: the commit\n"
                   "it rolled back from, which may deploy again). Sent to the dispatcher of a\n"
                   "node with the role bridge, over its HTTP port."});
}

} // namespace brsh
