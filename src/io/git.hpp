// The git operations of a deploy, done by running the real `git` through
// run_process (argv arrays, no shell), with GIT_TERMINAL_PROMPT=0 so that a
// remote asking for credentials fails instead of hanging.
//
// Data from a webhook never reaches git as an option: commit ids must be 40
// lowercase hex digits (anything else is refused before git runs) and other
// arguments come after a `--` where git accepts one.
//
// None of these functions may run concurrently on the same repo_dir; the
// caller serialises work per repository (different repositories are
// independent). Errors: timeout when git ran out of time, refused for an
// argument that is not a commit id or a build directory that already exists,
// io_failure for everything else, with the last lines git wrote. Messages
// name the remote with any user:password removed.
//
// fetch_repo, fetch_commit and checkout take an optional cancel
// flag: once it turns true (the node is stopping), the running git
// command's process group is ended as on a timeout and the call fails with
// "... cancelled: the node is stopping" (io_failure).
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace brd::io {

// 40 lowercase hex digits.
bool is_commit_id(std::string_view sha);

// The id GitHub sends as `before` for a new branch and `after` for a deleted one.
bool is_zero_commit_id(std::string_view sha);

// `url` with any "user:password@" after the scheme removed, for messages.
std::string redact_url(std::string_view url);

// Makes `repo_dir` (and its parents) a bare repository if it is not one yet,
// points its origin at `remote_url` and fetches every branch and tag into
// refs/heads/* and refs/tags/*, forced and pruned: afterwards the branches
// and tags are exactly the remote's. git's output is appended to `log_path`
// when given. A `git gc --auto` the fetch starts runs before the call
// returns, within `timeout`, instead of detached from the node's control.
caf::error fetch_repo(const std::string& remote_url, const std::string& repo_dir,
                      std::chrono::milliseconds timeout, const std::string& log_path = {},
                      const std::atomic<bool>* cancel = nullptr);

// Whether object `sha` is stored in the bare repository `repo_dir`, as a
// loose object or in a pack's index (false when there is no repository
// there yet). Read without running git, and without checking the object's
// type; an object only reachable through alternates reads as absent.
caf::expected<bool> has_object(const std::string& repo_dir, const std::string& sha);

// Makes sure commit `sha` is in `repo_dir`: when it is already there (another
// role's task, a retry, a redeploy) nothing runs and the answer is false;
// otherwise fetch_repo runs and the answer is true. A commit is immutable,
// so what a later checkout writes is the same either way.
caf::expected<bool> fetch_commit(const std::string& remote_url, const std::string& repo_dir,
                                 const std::string& sha, std::chrono::milliseconds timeout,
                                 const std::string& log_path = {},
                                 const std::atomic<bool>* cancel = nullptr);

// Writes the tree of commit `sha` from `repo_dir` into `build_dir`, which
// must not exist yet. Files are written into `build_dir`.partial first and
// renamed at the end, so `build_dir` either is complete or does not exist; a
// .partial left by a crash is removed by the next checkout of the same
// build_dir. The repository's HEAD, index and refs are left untouched. A
// commit that is not in the repository fails with "commit ... is not in
// ... (fetch it first)".
caf::error checkout(const std::string& repo_dir, const std::string& sha,
                    const std::string& build_dir, std::chrono::milliseconds timeout = std::chrono::minutes{10},
                    const std::string& log_path = {}, const std::atomic<bool>* cancel = nullptr);

// The paths (repository-relative, sorted, unique) that differ between the
// trees of commits `before` and `after`; a rename gives both names. When
// `before` is the zero id (a new branch) every file of `after` is listed;
// when `after` is the zero id (a deleted branch) the list is empty. Both
// commits must be in repo_dir: fetch first.
caf::expected<std::vector<std::string>>
changed_files(const std::string& repo_dir, const std::string& before, const std::string& after,
              std::chrono::milliseconds timeout = std::chrono::minutes{2});

// Every file path in the tree of commit `sha`, sorted.
caf::expected<std::vector<std::string>>
list_files(const std::string& repo_dir, const std::string& sha,
           std::chrono::milliseconds timeout = std::chrono::minutes{2});

} // namespace brd::io
