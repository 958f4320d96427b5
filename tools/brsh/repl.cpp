#include "repl.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <set>

#include <editline/readline.h>

#include "client.hpp"
#include "deploy_view.hpp"
#include "runtime/errors.hpp"
#include "script.hpp"

namespace brsh {

namespace {

const std::vector<std::string> member_states = {"alive", "suspect", "down", "left", "unknown"};
const std::vector<std::string> actor_kinds = {"health", "connector", "state"};

std::vector<std::string> node_names(client& cl) {
  std::vector<std::string> out;
  for (const auto& n : cl.fleet().nodes)
    out.push_back(n.name);
  return out;
}

// The ids of the most recent deployments (none when brsh cannot read them).
std::vector<std::string> recent_deploy_ids(client& cl) {
  std::vector<std::string> out;
  if (auto list = recent_deployments(cl, 20))
    for (const auto& d : *list)
      out.push_back(text_at(d, "id"));
  return out;
}

// Words of a condition that can come next, after `w` (wait-for / check).
std::vector<std::string> condition_words(client& cl, const std::vector<std::string>& w) {
  auto n = w.size();
  if (n == 0)
    return {"node", "all", "state", "digests", "deploy"};
  std::vector<std::string> states_or_not = member_states;
  states_or_not.push_back("not");
  if (w[0] == "node")
    switch (n) {
      case 1: return node_names(cl);
      case 2: return {"is"};
      case 3: return states_or_not;
      case 4: return w[3] == "not" ? member_states : std::vector<std::string>{};
    }
  if (w[0] == "all")
    switch (n) {
      case 1: return {"nodes"};
      case 2: return {"are"};
      case 3: return states_or_not;
      case 4: return w[3] == "not" ? member_states : std::vector<std::string>{};
    }
  if (w[0] == "state") {
    if (n == 1)
      return cl.table_names();
    if (n == 3)
      return {"exists", "is", "=", "!="};
    if (n == 4 && w[3] == "is")
      return {"missing"};
  }
  if (w[0] == "digests" && n == 1)
    return {"equal"};
  if (w[0] == "deploy") {
    auto states_or_not_deploy = deployment_states();
    states_or_not_deploy.push_back("not");
    switch (n) {
      case 1: return recent_deploy_ids(cl);
      case 2: return {"is"};
      case 3: return states_or_not_deploy;
      case 4: return w[3] == "not" ? deployment_states() : std::vector<std::string>{};
    }
  }
  return {};
}

// Completions for a placeholder of a command's usage ("NODE", "TABLE", ...).
std::vector<std::string> placeholder_words(client& cl, const std::string& placeholder) {
  if (placeholder.find("NODE") != std::string::npos)
    return node_names(cl);
  if (placeholder.find("TABLE") != std::string::npos)
    return cl.table_names();
  if (placeholder == "ID")
    return recent_deploy_ids(cl);
  if (placeholder.find("ACTOR") != std::string::npos)
    return actor_kinds;
  if (placeholder.find("COMMAND") != std::string::npos) {
    std::set<std::string> firsts;
    for (const auto& cmd : command_table())
      firsts.insert(words_of(cmd.name)[0]);
    return {firsts.begin(), firsts.end()};
  }
  return {};
}

std::vector<std::string> candidates(client& cl, const std::vector<std::string>& before) {
  std::set<std::string> out;
  size_t used = 0;
  const auto* cmd = find_command(before, &used);
  if (cmd == nullptr) {
    // The first word, or the second word of a group ("state g<TAB>").
    for (const auto& c : command_table()) {
      auto name = words_of(c.name);
      if (before.size() < name.size()
          && std::equal(before.begin(), before.end(), name.begin()))
        out.insert(name[before.size()]);
    }
    return {out.begin(), out.end()};
  }
  std::vector<std::string> args;
  for (size_t i = used; i < before.size(); ++i) {
    const auto& w = before[i];
    if (w.size() > 1 && w[0] == '-' && !std::isdigit(static_cast<unsigned char>(w[1]))) {
      for (const auto& f : cmd->flags)
        if (!f.value.empty() && (w == "--" + f.name || w == "-" + f.short_name))
          ++i; // skip the flag's value
      continue;
    }
    args.push_back(w);
  }
  if (!before.empty() && (before.back() == "-o" || before.back() == "--output"))
    return {"table", "json"};
  if (cmd->name == "wait-for" || cmd->name == "check")
    return condition_words(cl, args);
  auto placeholders = words_of(cmd->args);
  if (args.size() < placeholders.size())
    return placeholder_words(cl, placeholders[args.size()]);
  return {};
}

// -- libedit glue ---------------------------------------------------------------

client* completing_client = nullptr;
std::vector<std::string> pending_matches;

char* next_match(const char*, int state) {
  static size_t index = 0;
  if (state == 0)
    index = 0;
  if (index >= pending_matches.size())
    return nullptr;
  return ::strdup(pending_matches[index++].c_str());
}

char** attempt_completion(const char* text, int start, int) {
  rl_attempted_completion_over = 1;
  std::string line{rl_line_buffer, static_cast<size_t>(start)};
  auto before = split_words(line);
  if (!before || completing_client == nullptr)
    return nullptr;
  pending_matches = completions(*completing_client, *before, text);
  if (pending_matches.empty())
    return nullptr;
  return rl_completion_matches(text, next_match);
}

std::string history_path() {
  if (const char* p = std::getenv("BRSH_HISTORY"); p != nullptr && *p != '\0')
    return p;
  const char* home = std::getenv("HOME");
  return std::string{home != nullptr ? home : "."} + "/.brsh_history";
}

std::string prompt_for(const client& cl) {
  if (cl.node().empty())
    return "brsh (not connected)> ";
  return "brsh " + cl.node() + (cl.lost() ? " (unreachable)" : "") + "> ";
}

std::string trimmed(const std::string& line) {
  auto first = line.find_first_not_of(" \t");
  if (first == std::string::npos)
    return "";
  return line.substr(first, line.find_last_not_of(" \t") - first + 1);
}

} // namespace

std::vector<std::string> completions(client& cl, const std::vector<std::string>& before,
                                     const std::string& partial) {
  std::vector<std::string> out;
  for (const auto& c : candidates(cl, before))
    if (c.compare(0, partial.size(), partial) == 0)
      out.push_back(c);
  return out;
}

int run_repl(context& ctx) {
  auto history = history_path();
  rl_readline_name = "brsh";
  rl_attempted_completion_function = attempt_completion;
  completing_client = &ctx.cl;
  using_history();
  stifle_history(1000);
  read_history(history.c_str());
  ctx.interactive = true;
  if (auto err = ctx.cl.ensure_connected())
    std::cerr << brd::describe(err) << "\n(use `connect NODE` to pick another node)\n";
  int code = exit_ok;
  for (;;) {
    auto* interrupted = ctx.interrupted;
    if (interrupted != nullptr)
      interrupted->store(false);
    char* raw = readline(prompt_for(ctx.cl).c_str());
    if (raw == nullptr) {
      if (interrupted != nullptr && interrupted->load()) {
        std::cout << std::endl;
        continue; // Ctrl-C at the prompt: a fresh line
      }
      std::cout << std::endl;
      break;
    }
    std::string line{raw};
    std::free(raw);
    auto words = split_words(line);
    if (!words) {
      std::cerr << brd::describe(words.error()) << '\n';
      continue;
    }
    if (words->empty())
      continue;
    add_history(trimmed(line).c_str());
    write_history(history.c_str());
    auto result = run_command(ctx, *words);
    std::cout.flush();
    if (!result.message.empty())
      std::cerr << result.message << std::endl;
    if (ctx.quit) {
      code = result.code;
      break;
    }
  }
  completing_client = nullptr;
  return code;
}

} // namespace brsh
