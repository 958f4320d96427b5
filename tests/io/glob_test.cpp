// Path globs for deploy rules and repository-name globs, as tables of cases.
#include "io/glob.hpp"

#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace {

using brd::io::glob_match;
using brd::io::match_any;
using brd::io::match_any_path;
using brd::io::repo_match;

struct glob_case {
  const char* pattern;
  const char* path;
  bool expected;
};

void check_table(const std::vector<glob_case>& cases) {
  for (const auto& c : cases) {
    INFO("pattern \"", c.pattern, "\" against path \"", c.path, "\"");
    CHECK(glob_match(c.pattern, c.path) == c.expected);
  }
}

} // namespace

TEST_CASE("** matches any number of directories, including none") {
  check_table({
    {"frontend/**", "frontend/a.js", true},
    {"frontend/**", "frontend/a/b.js", true},
    {"frontend/**", "frontend", false},
    {"frontend/**", "frontendx/a.js", false},
    {"frontend/**", "web/frontend/a.js", false},
    {"**/*.stl", "a.stl", true},
    {"**/*.stl", "parts/x/a.stl", true},
    {"**/*.stl", "parts/a.stl.bak", false},
    {"a/**/b", "a/b", true},
    {"a/**/b", "a/x/b", true},
    {"a/**/b", "a/x/y/z/b", true},
    {"a/**/b", "a/xb", false},
    {"a/**/b", "ab", false},
    {"docs/**/*.md", "docs/a.md", true},
    {"docs/**/*.md", "docs/x/y/a.md", true},
    {"docs/**.md", "docs/x/y/a.md", true}, // ** inside a name still crosses '/'
    {"**", "anything/at/all", true},
    {"**", "x", true},
  });
}

TEST_CASE("* and ? do not cross '/', and a class matches one character") {
  check_table({
    {"src/*.cpp", "src/main.cpp", true},
    {"src/*.cpp", "src/io/main.cpp", false},
    {"src/*.cpp", "src/.cpp", true},
    {"src/?.cpp", "src/a.cpp", true},
    {"src/?.cpp", "src/ab.cpp", false},
    {"a?b", "a/b", false},
    {"src/[abc].js", "src/b.js", true},
    {"src/[abc].js", "src/d.js", false},
    {"src/[a-c]x.js", "src/bx.js", true},
    {"src/[!a-c]x.js", "src/bx.js", false},
    {"src/[!a-c]x.js", "src/dx.js", true},
    {"src/[^a-c]x.js", "src/dx.js", true},
    {"src/[]]x", "src/]x", true},
    {"a[/]b", "a/b", false},
    {"src/[ab", "src/[ab", true}, // an unclosed class is literal
    {"src/\\*.js", "src/*.js", true},
    {"src/\\*.js", "src/a.js", false},
    {"v?.[0-9]", "v1.5", true},
  });
}

TEST_CASE("a pattern without '/' matches a name at any depth, like .gitignore") {
  check_table({
    {"*.stl", "a.stl", true},
    {"*.stl", "parts/b/c.stl", true},
    {"*.stl", "parts/b/c.stl.orig", false},
    {"README.md", "README.md", true},
    {"README.md", "docs/README.md", true},
    {"docs", "docs/x.md", true},          // a directory takes what is below it
    {"docs", "site/docs/y.md", true},
    {"docs", "mydocs/y.md", false},
    {"*", "a/b/c", true},
    {"/*.stl", "a.stl", true},            // a leading '/' anchors
    {"/*.stl", "parts/a.stl", false},
  });
}

TEST_CASE("a pattern with '/' is anchored and takes the directories it names") {
  check_table({
    {"frontend", "frontend/src/app.js", true},
    {"frontend/", "frontend/src/app.js", true},
    {"frontend/", "frontend", false},     // trailing '/': directories only
    {"build/", "x/build/out.o", true},    // trailing '/' alone does not anchor
    {"frontend/src", "frontend/src/app.js", true},
    {"frontend/src", "x/frontend/src/app.js", false},
    {"frontend/*", "frontend/src/app.js", true},
    {"/frontend", "frontend/a", true},
    {"", "a", false},
    {"/", "a", false},
  });
}

TEST_CASE("paths are plain data: metacharacters and '..' are only characters") {
  check_table({
    {"frontend/**", "frontend/$(touch \\tmp\\pwned).js", true},
    {"frontend/**", "frontend/a;b `c` d.js", true},
    {"*.js", "a dir/with spaces/x y.js", true},
    {"frontend/**", "frontend/../api/x", true}, // textual; git stores no ".."
    {"api/**", "frontend/../api/x", false},
  });
}

TEST_CASE("match_any: the last matching pattern decides and '!' excludes") {
  std::vector<std::string> api{"api/**", "!api/docs/**"};
  CHECK(match_any(api, "api/server.go"));
  CHECK(match_any(api, "api/v1/handler.go"));
  CHECK_FALSE(match_any(api, "api/docs/index.md"));
  CHECK_FALSE(match_any(api, "frontend/app.js"));

  std::vector<std::string> back_in{"api/**", "!api/docs/**", "api/docs/openapi.yaml"};
  CHECK(match_any(back_in, "api/docs/openapi.yaml"));
  CHECK_FALSE(match_any(back_in, "api/docs/index.md"));

  std::vector<std::string> wrong_order{"!api/docs/**", "api/**"};
  CHECK(match_any(wrong_order, "api/docs/index.md"));

  CHECK_FALSE(match_any({"!*.md"}, "README.md"));
  CHECK_FALSE(match_any({"!*.md"}, "main.go"));
  CHECK_FALSE(match_any({}, "main.go"));
  CHECK(match_any({"\\!important"}, "!important"));
  CHECK(match_any({"**", "!**/*.md"}, "src/a.cpp"));
  CHECK_FALSE(match_any({"**", "!**/*.md"}, "src/a.md"));
}

TEST_CASE("match_any_path is true when any changed path is taken") {
  std::vector<std::string> frontend{"frontend/**", "!frontend/**/*.md"};
  CHECK(match_any_path(frontend, {"README.md", "frontend/app.js"}));
  CHECK_FALSE(match_any_path(frontend, {"README.md", "frontend/notes.md", "api/x.go"}));
  CHECK_FALSE(match_any_path(frontend, {}));
}

TEST_CASE("repo_match matches the whole name, '*' stays within owner or repo, case ignored") {
  CHECK(repo_match("blackroad/*", "blackroad/site"));
  CHECK(repo_match("blackroad/*", "BlackRoad/Site"));
  CHECK(repo_match("BlackRoad/site", "blackroad/SITE"));
  CHECK_FALSE(repo_match("blackroad/*", "other/site"));
  CHECK_FALSE(repo_match("blackroad/*", "blackroad/site/extra"));
  CHECK_FALSE(repo_match("blackroad", "blackroad/site"));
  CHECK(repo_match("*/*", "a/b"));
  CHECK_FALSE(repo_match("*", "a/b"));
  CHECK(repo_match("blackroad/site-?", "blackroad/site-2"));
  CHECK(repo_match("blackroad/[a-c]*", "blackroad/Box"));
  CHECK_FALSE(repo_match("", "a/b"));
}

TEST_CASE("matching stays fast on a pattern that would make backtracking explode") {
  std::string path(5000, 'a');
  CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", path));
  CHECK_FALSE(glob_match("**a**a**a**a**a**a**a**a**a**a**b", path));
  CHECK(glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a", path));
}
