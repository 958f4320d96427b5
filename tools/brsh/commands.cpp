#include "commands.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <set>
#include <sstream>
#include <variant>

#include "client.hpp"
#include "runtime/errors.hpp"

namespace brsh {

namespace {

std::string join(const std::vector<std::string>& words, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to && i < words.size(); ++i)
    out += (out.empty() ? "" : " ") + words[i];
  return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
      // A swap of two neighbours counts as one edit ("memebrs").
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        cur[j] = std::min(cur[j], prev[j - 1]);
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

const flag_spec* find_flag(const command& cmd, const std::string& word) {
  for (const auto& f : cmd.flags)
    if (word == "--" + f.name || (!f.short_name.empty() && word == "-" + f.short_name))
      return &f;
  return nullptr;
}

bool looks_like_flag(const std::string& word) {
  if (word.size() < 2 || word[0] != '-')
    return false;
  return !std::isdigit(static_cast<unsigned char>(word[1])) && word[1] != '.';
}

outcome usage_error(const command& cmd, const std::string& what) {
  return failure(exit_usage, what + "\nusage: " + usage_of(cmd));
}

// Splits flags from positional arguments and checks both against `cmd`.
std::variant<invocation, outcome> parse(const command& cmd,
                                        const std::vector<std::string>& words) {
  invocation inv;
  bool flags_done = false;
  for (size_t i = 0; i < words.size(); ++i) {
    const auto& w = words[i];
    if (!flags_done && w == "--") {
      flags_done = true;
      continue;
    }
    if (flags_done || !looks_like_flag(w)) {
      inv.args.push_back(w);
      continue;
    }
    auto eq = w.find('=');
    auto word = eq == std::string::npos ? w : w.substr(0, eq);
    const auto* f = find_flag(cmd, word);
    if (f == nullptr)
      return usage_error(cmd, "unknown option '" + word + "' for '" + cmd.name + "'");
    std::string value;
    if (!f->value.empty()) {
      if (eq != std::string::npos)
        value = w.substr(eq + 1);
      else if (i + 1 < words.size())
        value = words[++i];
      else
        return usage_error(cmd, "option '" + word + "' needs a value (" + f->value + ")");
    } else if (eq != std::string::npos) {
      return usage_error(cmd, "option '" + word + "' takes no value");
    }
    inv.flags[f->name] = value;
  }
  if (inv.args.size() < cmd.min_args)
    return usage_error(cmd, "'" + cmd.name + "' needs more arguments");
  if (inv.args.size() > cmd.max_args)
    return usage_error(cmd, "'" + cmd.name + "' got too many arguments (unexpected '"
                              + inv.args[cmd.max_args] + "')");
  if (inv.has("output")) {
    auto fmt = parse_format(inv.flags["output"]);
    if (!fmt)
      return usage_error(cmd, "output format '" + inv.flags["output"]
                                + "' is not one of table, json");
    inv.format = *fmt;
  }
  return inv;
}

std::vector<command> build_table() {
  std::vector<command> table;
  add_fleet_commands(table);
  add_actor_commands(table);
  add_state_commands(table);
  add_state_watch_commands(table);
  add_deploy_commands(table);
  add_deploy_op_commands(table);
  add_shell_commands(table);
  return table;
}

// The group words ("state", "deploy", ...) with their subcommands.
std::vector<const command*> group_members(const std::string& first) {
  std::vector<const command*> out;
  for (const auto& cmd : command_table()) {
    auto words = words_of(cmd.name);
    if (words.size() > 1 && words[0] == first)
      out.push_back(&cmd);
  }
  return out;
}

} // namespace

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in{text};
  for (std::string w; in >> w;)
    words.push_back(w);
  return words;
}

outcome failure(int code, std::string message) {
  return {code, std::move(message)};
}

outcome failure(const caf::error& err) {
  return {exit_code_for(err), brd::describe(err)};
}

std::string invocation::flag(const std::string& name, std::string fallback) const {
  auto i = flags.find(name);
  return i == flags.end() ? std::move(fallback) : i->second;
}

flag_spec output_flag() {
  return {"output", "o", "table|json"};
}

std::string usage_of(const command& cmd) {
  std::string out = cmd.name;
  if (!cmd.args.empty())
    out += " " + cmd.args;
  if (cmd.args.find("--") != std::string::npos)
    return out;
  for (const auto& f : cmd.flags) {
    auto dash = f.short_name.empty() ? "--" + f.name : "-" + f.short_name;
    out += " [" + dash + (f.value.empty() ? "" : " " + f.value) + "]";
  }
  return out;
}

const std::vector<command>& command_table() {
  static const std::vector<command> table = build_table();
  return table;
}

const command* find_command(const std::vector<std::string>& words, size_t* used) {
  const command* best = nullptr;
  size_t best_len = 0;
  for (const auto& cmd : command_table()) {
    auto name = words_of(cmd.name);
    if (name.size() <= words.size() && name.size() > best_len
        && std::equal(name.begin(), name.end(), words.begin())) {
      best = &cmd;
      best_len = name.size();
    }
  }
  if (used != nullptr)
    *used = best_len;
  return best;
}

std::string nearest_command(const std::vector<std::string>& words) {
  if (words.empty())
    return "";
  // Within a group ("state gte") the group's commands compete; otherwise
  // the first words of all commands ("memebrs").
  auto group = group_members(words[0]);
  bool in_group = !group.empty() && words.size() > 1;
  std::set<std::string> candidates;
  for (const auto& cmd : command_table()) {
    auto name = words_of(cmd.name);
    if (!in_group)
      candidates.insert(name[0]);
    else if (name.size() > 1 && name[0] == words[0])
      candidates.insert(join(name, 0, 2));
  }
  auto typed = in_group ? join(words, 0, 2) : words[0];
  std::string best;
  size_t best_cost = SIZE_MAX;
  for (const auto& cand : candidates) {
    auto cost = edit_distance(typed, cand);
    if (cost < best_cost) {
      best = cand;
      best_cost = cost;
    }
  }
  return best_cost <= std::max<size_t>(2, typed.size() / 3) ? best : "";
}

outcome run_command(context& ctx, const std::vector<std::string>& words) {
  if (words.empty())
    return {};
  size_t used = 0;
  const auto* cmd = find_command(words, &used);
  if (cmd == nullptr) {
    auto members = group_members(words[0]);
    auto near = nearest_command(words);
    auto hint = near.empty() ? std::string{} : "; did you mean '" + near + "'?";
    if (members.empty())
      return failure(exit_usage, "unknown command '" + words[0] + "'" + hint
                                   + "\ntype `help` for the list of commands");
    std::string text = words.size() > 1
                         ? "unknown command '" + join(words, 0, 2) + "'" + hint
                         : "'" + words[0] + "' needs a subcommand";
    text += "\nusage:";
    for (const auto* m : members)
      text += "\n  " + usage_of(*m);
    return failure(exit_usage, text);
  }
  auto parsed = parse(*cmd, {words.begin() + static_cast<long>(used), words.end()});
  if (auto* o = std::get_if<outcome>(&parsed))
    return *o;
  return cmd->run(ctx, std::get<invocation>(parsed));
}

} // namespace brsh
