// The deploy workspace of one node: where repositories are fetched, builds
// checked out and logs written, and which build of each repository is active.
//
//   <root>/repos/<owner>/<name>            bare mirror (io::fetch_repo)
//   <root>/builds/<owner>/<name>/<sha>     one checkout per kept build
//   <root>/builds/<owner>/<name>/<sha>.done  its finish time (ms since epoch)
//   <root>/builds/<owner>/<name>/active    symlink -> "<sha>" (relative)
//   <root>/logs/<deploy_id>/<task_id>.log  git and script output of a task
//   <root>/running/<deploy_id>.<task_id>.pgid  process group of a running
//                                          script (io/process.hpp group_file)
//
// A build directory is *kept* when it has its .done stamp: only successful
// builds get one, so every kept build is a valid rollback target. The active
// link is switched atomically (a new link under a temporary name, then
// rename(2) over the old one): readers see the old build or the new one,
// never a missing link.
//
// Names from the network are data. Repository names must be owner/name with
// two segments of [A-Za-z0-9._-] other than "." and ".."; ids (deploy, task)
// one such segment (plus ':', '@', '+'); shas 40 lowercase hex digits. Every
// function that builds a path refuses anything else (brd_errc::refused), so
// no name can leave the workspace.
//
// Not thread-safe per repository: the caller runs at most one operation on a
// repository at a time (the deployer's per-repository queue). Different
// repositories are independent. Errors are brd_errc::io_failure with the path
// and the system's reason unless said otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace brd::io {

// "owner/name" as above.
bool is_repo_name(std::string_view repo);

// A deploy or task id usable as one path component.
bool is_path_id(std::string_view id);

// The workspace root: `workspace` itself when absolute, else data_dir/workspace.
std::string workspace_root(const std::string& data_dir, const std::string& workspace);

class workspace {
public:
  explicit workspace(std::string root);

  const std::string& root() const { return root_; }

  // Paths; each refuses names that are not valid (see above).
  caf::expected<std::string> repo_dir(std::string_view repo) const;
  caf::expected<std::string> builds_dir(std::string_view repo) const;
  caf::expected<std::string> build_dir(std::string_view repo, std::string_view sha) const;
  caf::expected<std::string> active_link(std::string_view repo) const;
  caf::expected<std::string> log_path(std::string_view deploy_id,
                                      std::string_view task_id) const;

  // The sha the active link points at; empty when there is none.
  caf::expected<std::string> active_sha(std::string_view repo) const;

  // True when the build of `sha` exists and finished successfully.
  bool is_kept(std::string_view repo, std::string_view sha) const;

  // Makes way for a fresh checkout into build_dir(repo, sha): an earlier
  // build of the same sha is removed, unless it is the active one, which is
  // moved aside to "<sha>.prev" with the active link following it (so the
  // running service never loses its build). Leftovers of a crash (a .prev
  // that is not active, an unfinished directory) are removed.
  caf::error prepare_build(std::string_view repo, std::string_view sha) const;

  // A successful build: writes its .done stamp, points the active link at it
  // and drops the .prev copy prepare_build may have made.
  caf::error finish_build(std::string_view repo, std::string_view sha,
                          int64_t finished_at_ms) const;

  // A failed build: removes its directory and, if prepare_build moved the
  // active build aside, moves it back (the active link follows).
  caf::error discard_build(std::string_view repo, std::string_view sha) const;

  // Points the active link at the kept build of `sha` (rollback);
  // brd_errc::refused when that build is not kept.
  caf::error activate(std::string_view repo, std::string_view sha) const;

  // Keeps at most `keep` builds of the repository (at least one): the active
  // one and the most recently finished others. Removes the rest and returns
  // their shas, oldest first.
  caf::expected<std::vector<std::string>> retain(std::string_view repo, size_t keep) const;

  // The kept builds of a repository, most recently finished first.
  caf::expected<std::vector<std::string>> kept_builds(std::string_view repo) const;

  // Removes the logs of deployments (<root>/logs/<deploy_id>) in which no
  // file was written at or after `cutoff_ms` (ms since the epoch), and
  // returns how many deployments' logs went. Entries whose names are not ids
  // are left alone; a missing logs directory removes nothing.
  caf::expected<size_t> prune_logs(int64_t cutoff_ms) const;

private:
  std::string root_;
};

} // namespace brd::io
