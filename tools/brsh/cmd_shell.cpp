// The shell itself: help, connect, wait-for, check, sleep, echo, exit.
#include <cstdint>
#include <sstream>
#include <thread>
#include <variant>

#include "client.hpp"
#include "commands.hpp"
#include "conditions.hpp"

namespace brsh {

namespace {

using steady = std::chrono::steady_clock;
constexpr std::chrono::milliseconds poll_every{100};

outcome help(context& ctx, const invocation& inv) {
  if (!inv.args.empty()) {
    const auto* cmd = find_command(inv.args);
    if (cmd == nullptr) {
      auto near = nearest_command(inv.args);
      std::string typed;
      for (const auto& w : inv.args)
        typed += (typed.empty() ? "" : " ") + w;
      return failure(exit_usage, "no command '" + typed + "'"
                                   + (near.empty() ? "" : "; did you mean '" + near + "'?"));
    }
    ctx.out << "usage: " << usage_of(*cmd) << "\n\n" << cmd->summary << '\n';
    if (!cmd->details.empty())
      ctx.out << cmd->details << '\n';
    return {};
  }
  ctx.out << "commands (help COMMAND for more):\n";
  table t{{"", ""}, {}};
  for (const auto& cmd : command_table())
    t.rows.push_back({"  " + usage_of(cmd), cmd.summary});
  std::ostringstream text;
  print_table(text, t);
  auto body = text.str();
  ctx.out << body.substr(body.find('\n') + 1);
  ctx.out << "\nexit codes: 0 ok, 1 failed, 2 usage, 3 wait-for timed out, "
             "69 node unreachable or unavailable, 78 bad config\n";
  return {};
}

outcome connect(context& ctx, const invocation& inv) {
  if (auto err = ctx.cl.connect(inv.args[0]))
    return failure(err);
  ctx.out << "connected to " << ctx.cl.node() << " at " << ctx.cl.address() << '\n';
  return {};
}

std::optional<std::chrono::milliseconds> timeout_of(const invocation& inv) {
  return parse_duration(inv.flag("timeout", "30s"));
}

std::string elapsed_text(steady::time_point since) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - since);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

outcome wait_for(context& ctx, const invocation& inv) {
  auto timeout = timeout_of(inv);
  if (!timeout)
    return failure(exit_usage, "--timeout wants a duration such as 500ms, 5s or 2m, not '"
                                 + inv.flag("timeout") + "'");
  auto parsed = parse_condition(inv.args, ctx.cl);
  if (auto* o = std::get_if<outcome>(&parsed))
    return *o;
  auto& cond = std::get<condition>(parsed);
  auto start = steady::now();
  auto deadline = start + *timeout;
  for (;;) {
    auto r = cond.evaluate(ctx.cl);
    if (r.met) {
      ctx.out << cond.met << " (after " << elapsed_text(start) << ")" << std::endl;
      return {};
    }
    if (steady::now() >= deadline)
      return failure(exit_timed_out, "timed out after " + format_duration(*timeout)
                                       + " waiting for " + cond.goal + "; " + r.now);
    if (ctx.interrupted != nullptr && ctx.interrupted->load())
      return failure(exit_failed, "interrupted while waiting for " + cond.goal + "; " + r.now);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    std::this_thread::sleep_for(std::max(std::chrono::milliseconds{1},
                                         std::min(poll_every, left)));
  }
}

outcome check(context& ctx, const invocation& inv) {
  auto parsed = parse_condition(inv.args, ctx.cl);
  if (auto* o = std::get_if<outcome>(&parsed))
    return *o;
  auto& cond = std::get<condition>(parsed);
  auto r = cond.evaluate(ctx.cl);
  if (!r.met)
    return failure(exit_failed, "check failed: expected " + cond.goal + "; " + r.now);
  ctx.out << cond.met << '\n';
  return {};
}

outcome sleep(context& ctx, const invocation& inv) {
  auto d = parse_duration(inv.args[0]);
  if (!d)
    return failure(exit_usage, "sleep wants a duration such as 500ms, 5s or 2m, not '"
                                 + inv.args[0] + "'");
  auto until = steady::now() + *d;
  while (steady::now() < until) {
    if (ctx.interrupted != nullptr && ctx.interrupted->load())
      return failure(exit_failed, "interrupted");
    std::this_thread::sleep_for(std::min(poll_every, std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now())));
  }
  return {};
}

outcome echo(context& ctx, const invocation& inv) {
  std::string line;
  for (const auto& w : inv.args)
    line += (line.empty() ? "" : " ") + w;
  ctx.out << line << '\n';
  return {};
}

outcome quit(context& ctx, const invocation& inv) {
  ctx.quit = true;
  if (inv.args.empty())
    return {};
  char* end = nullptr;
  auto code = std::strtol(inv.args[0].c_str(), &end, 10);
  if (*end != '\0' || code < 0 || code > 255)
    return failure(exit_usage, "exit wants a code from 0 to 255, not '" + inv.args[0] + "'");
  return failure(static_cast<int>(code), "");
}

} // namespace

void add_shell_commands(std::vector<command>& table) {
  const std::string grammar = condition_grammar();
  table.push_back({"wait-for", "CONDITION", "wait until the condition holds (exit 3 on timeout)",
                   {{"timeout", "", "T"}}, 1, SIZE_MAX, wait_for,
                   "T is like 500ms, 5s, 2m (default 30s).\n" + grammar});
  table.push_back({"check", "CONDITION", "fail (exit 1) unless the condition holds now", {}, 1,
                   SIZE_MAX, check, grammar});
  table.push_back({"connect", "NODE|HOST:PORT", "connect to another node", {}, 1, 1, connect,
                   ""});
  table.push_back({"sleep", "DURATION", "pause a script (500ms, 5s, 2m)", {}, 1, 1, sleep, ""});
  table.push_back({"echo", "TEXT...", "print a line", {}, 0, SIZE_MAX, echo, ""});
  table.push_back({"help", "[COMMAND]", "this list, or one command's usage", {}, 0, 3, help,
                   ""});
  table.push_back({"exit", "[CODE]", "leave the shell or end the script", {}, 0, 1, quit, ""});
}

} // namespace brsh
