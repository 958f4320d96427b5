// A pattern is compiled to a list of tokens and matched by dynamic
// programming: one pass over the path per token, keeping the set of path
// positions reachable so far. Time is tokens x path length, memory is two
// rows, whatever the pattern.
#include "io/glob.hpp"

#include <cstdint>
#include <utility>

namespace brd::io {

namespace {

enum class token_kind : uint8_t {
  literal,   // one given character
  any_one,   // ?
  any_class, // [...]
  any_run,   // *  : characters other than '/'
  any_path,  // ** : any characters
  any_dirs,  // **/ as a whole segment: zero or more "name/" segments
};

struct token {
  token_kind kind = token_kind::literal;
  char c = 0;
  bool negated = false;                     // any_class only
  std::vector<std::pair<char, char>> ranges; // any_class only
};

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Parses the class starting at pattern[i] == '['. Returns the index after its
// ']', or 0 when the class is not closed (then '[' is a literal).
size_t parse_class(std::string_view pattern, size_t i, token& out) {
  size_t j = i + 1;
  out = token{token_kind::any_class};
  if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) {
    out.negated = true;
    ++j;
  }
  for (bool first = true; j < pattern.size(); first = false) {
    char c = pattern[j];
    if (c == ']' && !first)
      return j + 1;
    if (c == '\\' && j + 1 < pattern.size())
      c = pattern[++j];
    char hi = c;
    if (j + 2 < pattern.size() && pattern[j + 1] == '-' && pattern[j + 2] != ']') {
      j += 2;
      hi = pattern[j];
      if (hi == '\\' && j + 1 < pattern.size())
        hi = pattern[++j];
    }
    out.ranges.emplace_back(c, hi);
    ++j;
  }
  return 0;
}

std::vector<token> compile(std::string_view pattern) {
  std::vector<token> tokens;
  size_t i = 0;
  while (i < pattern.size()) {
    char c = pattern[i];
    if (c == '*') {
      size_t stars = 0;
      while (i + stars < pattern.size() && pattern[i + stars] == '*')
        ++stars;
      bool segment_start = i == 0 || pattern[i - 1] == '/';
      i += stars;
      if (stars == 1) {
        tokens.push_back({token_kind::any_run});
      } else if (segment_start && i < pattern.size() && pattern[i] == '/') {
        tokens.push_back({token_kind::any_dirs});
        ++i; // the '/' belongs to any_dirs
      } else {
        tokens.push_back({token_kind::any_path});
      }
      continue;
    }
    if (c == '[') {
      token t;
      if (auto next = parse_class(pattern, i, t)) {
        tokens.push_back(std::move(t));
        i = next;
        continue;
      }
    }
    if (c == '?') {
      tokens.push_back({token_kind::any_one});
    } else {
      if (c == '\\' && i + 1 < pattern.size())
        c = pattern[++i];
      tokens.push_back({token_kind::literal, c});
    }
    ++i;
  }
  return tokens;
}

bool in_class(const token& t, char c, bool ignore_case) {
  bool hit = false;
  for (auto [lo, hi] : t.ranges) {
    if ((c >= lo && c <= hi)
        || (ignore_case && lower(c) >= lower(lo) && lower(c) <= lower(hi)))
      hit = true;
  }
  return hit != t.negated;
}

// Where a match may end. whole: at the end of the path only. at_boundary:
// at the end or before a '/', so a pattern matching a directory takes what
// is below it. directory: before a '/' only (patterns with a trailing '/').
enum class match_end { whole, at_boundary, directory };

bool accepts(std::string_view path, size_t i, match_end end) {
  bool at_end = i == path.size();
  bool before_slash = !at_end && path[i] == '/';
  switch (end) {
    case match_end::whole: return at_end;
    case match_end::at_boundary: return at_end || before_slash;
    case match_end::directory: return before_slash;
  }
  return false;
}

bool char_matches(const token& tok, char c, bool ignore_case) {
  switch (tok.kind) {
    case token_kind::literal:
      return c == tok.c || (ignore_case && lower(c) == lower(tok.c));
    case token_kind::any_one:
      return c != '/';
    case token_kind::any_class:
      return c != '/' && in_class(tok, c, ignore_case);
    default:
      return false;
  }
}

// reach[i]: the tokens so far can match path[0, i). One pass per token.
bool run(const std::vector<token>& tokens, std::string_view path, match_end end,
         bool ignore_case) {
  const size_t n = path.size();
  std::vector<char> reach(n + 1, 0), next(n + 1, 0);
  reach[0] = 1;
  for (const auto& tok : tokens) {
    bool seen = false; // some reach[k] with k < i (for any_dirs)
    for (size_t i = 0; i <= n; ++i) {
      char prev = i > 0 ? path[i - 1] : '\0';
      bool hit = false;
      switch (tok.kind) {
        case token_kind::any_run:
          hit = reach[i] || (i > 0 && next[i - 1] && prev != '/');
          break;
        case token_kind::any_path:
          hit = reach[i] || (i > 0 && next[i - 1]);
          break;
        case token_kind::any_dirs:
          hit = reach[i] || (seen && prev == '/');
          break;
        default:
          hit = i > 0 && reach[i - 1] && char_matches(tok, prev, ignore_case);
      }
      seen = seen || reach[i];
      next[i] = hit;
    }
    reach.swap(next);
  }
  for (size_t i = 0; i <= n; ++i)
    if (reach[i] && accepts(path, i, end))
      return true;
  return false;
}

} // namespace

bool glob_match(std::string_view pattern, std::string_view path) {
  bool directory_only = false;
  while (!pattern.empty() && pattern.back() == '/') {
    pattern.remove_suffix(1);
    directory_only = true;
  }
  bool anchored = pattern.find('/') != std::string_view::npos;
  while (!pattern.empty() && pattern.front() == '/')
    pattern.remove_prefix(1);
  if (pattern.empty())
    return false;
  auto tokens = compile(pattern);
  if (!anchored)
    tokens.insert(tokens.begin(), token{token_kind::any_dirs});
  auto end = directory_only ? match_end::directory : match_end::at_boundary;
  return run(tokens, path, end, false);
}

bool match_any(const std::vector<std::string>& patterns, std::string_view path) {
  bool taken = false;
  for (std::string_view pattern : patterns) {
    bool negated = !pattern.empty() && pattern.front() == '!';
    if (negated)
      pattern.remove_prefix(1); // "\!x" stays: compile() reads it as a literal '!'
    if (taken == negated && glob_match(pattern, path))
      taken = !negated;
  }
  return taken;
}

bool match_any_path(const std::vector<std::string>& patterns,
                    const std::vector<std::string>& paths) {
  for (const auto& path : paths)
    if (match_any(patterns, path))
      return true;
  return false;
}

bool repo_match(std::string_view pattern, std::string_view full_name) {
  if (pattern.empty())
    return false;
  return run(compile(pattern), full_name, match_end::whole, true);
}

} // namespace brd::io
