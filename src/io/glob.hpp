// Path globs for deploy rules, as GitHub and .gitignore users expect them.
// Pure functions, safe from any thread. Matching takes time proportional to
// pattern length times path length, whatever the pattern (no backtracking
// blow-up), so paths from the network are safe to match.
//
// Paths are repository-relative with '/' separators and no leading '/'
// ("frontend/src/app.js"), as GitHub's push payload and `git diff` give them.
// Matching is textual: "." and ".." are ordinary names (git never stores them
// in a tree).
//
// Pattern syntax:
//   *        any run of characters except '/'
//   ?        one character except '/'
//   [abc]    one of the listed characters; ranges [a-z]; [!abc] or [^abc]
//            negates; never matches '/'. An unclosed '[' is a literal '['.
//   **       any run of characters including '/'. As a whole segment it also
//            matches zero directories: "a/**/b" matches "a/b" and "a/x/y/b",
//            "**/x" matches "x" and "d/x", "frontend/**" matches everything
//            under frontend/.
//   \c       the character c itself.
// Anchoring, as in .gitignore:
//   - a pattern holding no '/' (ignoring a trailing one) matches a name at
//     any depth: "*.stl" matches "a.stl" and "parts/b/c.stl", "docs" matches
//     "docs/x.md" and "a/docs/y.md";
//   - a pattern holding a '/' is anchored at the repository root; a leading
//     '/' only anchors ("/*.stl" matches "a.stl", not "parts/a.stl");
//   - a pattern that matches a directory matches every path below it
//     ("frontend", "frontend/" and "frontend/**" all take
//     "frontend/src/app.js"; so does "frontend/*", unlike in GitHub Actions'
//     path filters, where it takes only files directly in frontend/);
//   - a trailing '/' matches directories only: "build/" takes "build/x" but
//     not a file named "build".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace brd::io {

// True when `pattern` (no '!' prefix; see match_any) matches `path`.
bool glob_match(std::string_view pattern, std::string_view path);

// A rule's pattern list, read in order like .gitignore: a pattern selects the
// paths it matches, a pattern starting with '!' deselects them, and the last
// pattern that matches a path decides. ["api/**", "!api/docs/**"] takes
// "api/x.go" and leaves "api/docs/x.md". A list of only negations matches
// nothing. A leading "\!" is a literal '!'.
bool match_any(const std::vector<std::string>& patterns, std::string_view path);

// True when any path of `paths` is taken by `patterns` (see match_any).
bool match_any_path(const std::vector<std::string>& patterns,
                    const std::vector<std::string>& paths);

// Repository names: "owner/*", "blackroad/site-?", "*/*". The whole name must
// match, '*' does not cross '/', and case is ignored as GitHub ignores it.
bool repo_match(std::string_view pattern, std::string_view full_name);

} // namespace brd::io
