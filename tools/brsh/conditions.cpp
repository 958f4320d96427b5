#include "conditions.hpp"

#include <algorithm>
#include <variant>

#include "client.hpp"
#include "deploy_view.hpp"
#include "digests.hpp"
#include "state_view.hpp"

namespace brsh {

namespace {

using nlohmann::json;
using parsed = std::variant<condition, outcome>;

const char* grammar = R"(conditions:
  node NAME is [not] STATE         (alive, suspect, down, left, unknown)
  all nodes are [not] STATE
  state TABLE KEY exists
  state TABLE KEY is missing
  state TABLE KEY = VALUE          (or !=; VALUE is a JSON record or raw text)
  state TABLE KEY FIELD = VALUE    (or !=; FIELD may be a.b for nested fields)
  digests equal
  deploy ID is [not] STATE         (pending, success, failure))";

parsed bad(const std::string& what) {
  return failure(exit_usage, what + "\n" + grammar);
}

std::optional<brd::member_state> parse_state(const std::string& word) {
  for (auto s : {brd::member_state::alive, brd::member_state::suspect, brd::member_state::down,
                 brd::member_state::left, brd::member_state::unknown})
    if (word == brd::to_string(s))
      return s;
  return std::nullopt;
}

std::string join_from(const std::vector<std::string>& words, size_t from) {
  std::string out;
  for (size_t i = from; i < words.size(); ++i)
    out += (i > from ? " " : "") + words[i];
  return out;
}

// A node's state as the connected node sees it; the connected node itself
// counts as down when brsh cannot reach it.
std::pair<std::optional<brd::member_state>, std::string> observe(client& cl,
                                                                 const std::string& node) {
  auto rows = cl.members();
  if (!rows) {
    if (node == cl.node())
      return {brd::member_state::down, "it is unreachable"};
    return {std::nullopt, "brsh cannot see it: " + brd::describe(rows.error())};
  }
  for (const auto& row : *rows)
    if (row.node == node)
      return {row.state, "it is " + brd::to_string(row.state)};
  return {std::nullopt, cl.node() + " does not list it"};
}

parsed node_condition(const std::vector<std::string>& w, const client& cl) {
  // node NAME is [not] STATE
  bool negate = w.size() == 5 && w[3] == "not";
  if ((w.size() != 4 && !negate) || w[2] != "is")
    return bad("expected 'node NAME is [not] STATE'");
  const auto& node = w[1];
  if (cl.fleet().find(node) == nullptr)
    return bad("no node named '" + node + "' in " + cl.fleet().file);
  auto want = parse_state(w.back());
  if (!want)
    return bad("'" + w.back() + "' is not a node state");
  auto st = brd::to_string(*want);
  condition c;
  c.goal = "node " + node + (negate ? " not to be " : " to be ") + st;
  c.met = "node " + node + (negate ? " is not " : " is ") + st;
  c.evaluate = [=](client& net) {
    auto [state, now] = observe(net, node);
    return condition::reading{state && ((*state == *want) != negate), now};
  };
  return c;
}

parsed all_nodes_condition(const std::vector<std::string>& w) {
  // all nodes are [not] STATE
  bool negate = w.size() == 5 && w[3] == "not";
  if ((w.size() != 4 && !negate) || w[1] != "nodes" || w[2] != "are")
    return bad("expected 'all nodes are [not] STATE'");
  auto want = parse_state(w.back());
  if (!want)
    return bad("'" + w.back() + "' is not a node state");
  auto st = brd::to_string(*want);
  condition c;
  c.goal = std::string{"every node"} + (negate ? " not to be " : " to be ") + st;
  c.met = std::string{"every node"} + (negate ? " is not " : " is ") + st;
  c.evaluate = [=](client& net) {
    std::string off;
    for (const auto& n : net.fleet().nodes) {
      auto [state, now] = observe(net, n.name);
      if (!state || (*state == *want) == negate)
        off += (off.empty() ? "" : ", ") + n.name + " " + now.substr(now.find(' ') + 1);
    }
    return condition::reading{off.empty(), off};
  };
  return c;
}

// The field at path "a.b" of `record`, or nullptr.
const json* field_of(const json& record, const std::string& path) {
  const json* at = &record;
  size_t from = 0;
  for (;;) {
    auto dot = path.find('.', from);
    auto name = path.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
    if (!at->is_object() || !at->contains(name))
      return nullptr;
    at = &(*at)[name];
    if (dot == std::string::npos)
      return at;
    from = dot + 1;
  }
}

// The live row, nullopt when the key is absent; an error when it cannot be read.
caf::expected<std::optional<brd::state_row>> read_row(client& net, const std::string& table,
                                                      const std::string& key) {
  auto state = net.state_of("");
  if (!state)
    return state.error();
  auto rows = net.ask<std::vector<brd::state_row>>(*state, brd::get_atom::value, table, key);
  if (!rows)
    return rows.error();
  if (rows->empty())
    return std::optional<brd::state_row>{};
  return std::optional<brd::state_row>{std::move(rows->front())};
}

std::string unreadable(const caf::error& err) {
  return "brsh cannot read it: " + brd::describe(err);
}

condition presence_condition(const std::string& table, const std::string& key, bool want) {
  auto subject = "state " + table + " " + key;
  condition c{subject + (want ? " to exist" : " to be missing"),
              subject + (want ? " exists" : " is missing"), {}};
  c.evaluate = [=](client& net) -> condition::reading {
    auto row = read_row(net, table, key);
    if (!row)
      return {false, unreadable(row.error())};
    return {row->has_value() == want, row->has_value() ? "it exists" : "it is missing"};
  };
  return c;
}

parsed value_condition(const std::string& table, const std::string& key,
                       const std::string& field, bool negate, const std::string& text) {
  auto expected = json::parse(text, nullptr, false);
  if (expected.is_discarded())
    expected = text;
  auto subject = "state " + table + " " + key + (field.empty() ? "" : " " + field);
  condition c;
  c.goal = subject + (negate ? " to differ from " : " to be ") + text;
  c.met = subject + (negate ? " differs from " : " is ") + text;
  c.evaluate = [=](client& net) -> condition::reading {
    auto row = read_row(net, table, key);
    if (!row)
      return {false, unreadable(row.error())};
    if (!row->has_value())
      return {negate, "it is missing"};
    const auto& bytes = (*row)->value;
    auto record = decode_value(bytes);
    const json* actual = &record;
    if (!field.empty() && (actual = field_of(record, field)) == nullptr)
      return {negate, "the record has no field " + field};
    bool equal = *actual == expected
                 || (field.empty() && !expected.is_object() && bytes == text);
    return {equal != negate, "it is " + actual->dump()};
  };
  return c;
}

parsed state_condition(const std::vector<std::string>& w) {
  if (w.size() < 4)
    return bad("expected 'state TABLE KEY exists', 'state TABLE KEY is missing' or "
                "'state TABLE KEY [FIELD] = VALUE'");
  const auto& table = w[1];
  const auto& key = w[2];
  if (w.size() == 4 && w[3] == "exists")
    return presence_condition(table, key, true);
  if (w.size() == 5 && w[3] == "is" && w[4] == "missing")
    return presence_condition(table, key, false);
  auto is_op = [](const std::string& x) { return x == "=" || x == "!="; };
  if (is_op(w[3]) && w.size() >= 5)
    return value_condition(table, key, "", w[3] == "!=", join_from(w, 4));
  if (w.size() >= 6 && is_op(w[4]))
    return value_condition(table, key, w[3], w[4] == "!=", join_from(w, 5));
  return bad("expected 'state TABLE KEY exists', 'state TABLE KEY is missing' or "
             "'state TABLE KEY [FIELD] = VALUE'");
}

parsed digests_condition(const std::vector<std::string>& w) {
  if (!(w.size() == 2 && w[1] == "equal") && !(w.size() == 3 && w[1] == "are" && w[2] == "equal"))
    return bad("expected 'digests equal'");
  condition c{"digests to be equal", "digests are equal", {}};
  c.evaluate = [](client& net) {
    auto all = collect_digests(net);
    return condition::reading{all.converged(), all.sentence()};
  };
  return c;
}

// Task words people reach for, and the deployment state they mean.
std::string deployment_state_hint(const std::string& word) {
  if (word == "succeeded" || word == "successful" || word == "ok")
    return "; did you mean 'success'?";
  if (word == "failed" || word == "timed_out")
    return "; did you mean 'failure'?";
  if (word == "running" || word == "queued")
    return "; did you mean 'pending'?";
  return "";
}

parsed deploy_condition(const std::vector<std::string>& w) {
  // deploy ID is [not] STATE
  bool negate = w.size() == 5 && w[3] == "not";
  if ((w.size() != 4 && !negate) || w[2] != "is")
    return bad("expected 'deploy ID is [not] STATE'");
  const auto& id = w[1];
  const auto& want = w.back();
  const auto& states = deployment_states();
  if (std::find(states.begin(), states.end(), want) == states.end())
    return bad("'" + want + "' is not a deployment state (pending, success, failure)"
               + deployment_state_hint(want));
  condition c;
  c.goal = "deploy " + id + (negate ? " not to be " : " to be ") + want;
  c.met = "deploy " + id + (negate ? " is not " : " is ") + want;
  c.evaluate = [=](client& net) -> condition::reading {
    auto d = find_deployment(net, id);
    if (!d)
      return {false, brd::describe(d.error())};
    auto state = text_at(*d, "state");
    return {(state == want) != negate, "it is " + state + " (" + task_summary(*d) + ")"};
  };
  return c;
}

} // namespace

const char* condition_grammar() {
  return grammar;
}

std::variant<condition, outcome> parse_condition(const std::vector<std::string>& words,
                                                 const client& cl) {
  if (words.empty())
    return bad("a condition is missing");
  const auto& first = words[0];
  if (first == "node")
    return node_condition(words, cl);
  if (first == "all")
    return all_nodes_condition(words);
  if (first == "state")
    return state_condition(words);
  if (first == "digests")
    return digests_condition(words);
  if (first == "deploy")
    return deploy_condition(words);
  return bad("unknown condition '" + join_from(words, 0) + "'");
}

} // namespace brsh
