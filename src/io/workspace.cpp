// Paths, the active link and retention of the deploy workspace; see
// workspace.hpp for the layout and the guarantees.
//
// Moving the active build aside (a redeploy of the sha that is active) must
// not leave the link dangling, so relocate() goes through an intermediate
// symlink and renameat2(RENAME_EXCHANGE):
//   1. "<to>" := symlink to "<from>"       active -> from (real directory)
//   2. active := symlink to "<to>"         active -> to -> from
//   3. exchange "<from>" and "<to>"        active -> to (real directory)
//   4. unlink "<from>" (now the symlink)
// On a filesystem without RENAME_EXCHANGE step 3 becomes unlink + rename,
// with the link dangling for the moment between the two calls.
#include "io/workspace.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include <fcntl.h>
#include <unistd.h>

#include "io/git.hpp"
#include "runtime/errors.hpp"

namespace brd::io {

namespace {

namespace fs = std::filesystem;

constexpr const char* active_name = "active";
constexpr const char* done_suffix = ".done";
constexpr const char* prev_suffix = ".prev";
constexpr const char* partial_suffix = ".partial";
constexpr const char* temp_prefix = ".tmp-";

bool is_segment_char(char c, bool id) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
         || c == '_' || c == '-' || (id && (c == ':' || c == '@' || c == '+'));
}

bool is_segment(std::string_view s, bool id) {
  return !s.empty() && s.size() <= 200 && s != "." && s != ".."
         && std::all_of(s.begin(), s.end(), [id](char c) { return is_segment_char(c, id); });
}

caf::error refused_name(std::string_view what, std::string_view value) {
  return make_error(brd_errc::refused, std::string{what} + " '" + std::string{value}
                                         + "' is not allowed in a workspace path");
}

caf::error fs_failure(const std::string& action, const fs::path& p, const std::error_code& ec) {
  return make_error(brd_errc::io_failure, "cannot " + action + " " + p.string() + ": "
                                            + ec.message());
}

caf::error errno_failure(const std::string& action, const fs::path& p) {
  return fs_failure(action, p, std::error_code{errno, std::generic_category()});
}

std::string unique_temp_name() {
  static std::atomic<uint64_t> counter{0};
  return temp_prefix + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// Makes a rename or symlink in `dir` survive a power loss.
void sync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

caf::error remove_path(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec)
    return fs_failure("remove", p, ec);
  return {};
}

// Points `link` at `target` (a name relative to the link's directory),
// replacing any old link in one rename(2).
caf::error switch_link(const fs::path& link, const std::string& target) {
  auto temp = link.parent_path() / unique_temp_name();
  std::error_code ec;
  fs::create_symlink(target, temp, ec);
  if (ec)
    return fs_failure("create symlink", temp, ec);
  if (::rename(temp.c_str(), link.c_str()) != 0) {
    auto err = errno_failure("rename a symlink over", link);
    fs::remove(temp, ec);
    return err;
  }
  sync_dir(link.parent_path());
  return {};
}

// The name the active link in `dir` points at; empty when there is no link.
std::string link_target(const fs::path& dir) {
  std::error_code ec;
  auto target = fs::read_symlink(dir / active_name, ec);
  return ec ? std::string{} : target.string();
}

// Moves directory dir/from to dir/to (which must not exist) while the
// active link, which points at `from`, keeps resolving; see the top of file.
caf::error relocate_active(const fs::path& dir, const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::create_symlink(from, dir / to, ec);
  if (ec)
    return fs_failure("create symlink", dir / to, ec);
  if (auto err = switch_link(dir / active_name, to))
    return err;
  auto from_path = dir / from, to_path = dir / to;
  if (::renameat2(AT_FDCWD, from_path.c_str(), AT_FDCWD, to_path.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove(from_path, ec); // the intermediate symlink
  } else if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
    fs::remove(to_path, ec);
    if (::rename(from_path.c_str(), to_path.c_str()) != 0)
      return errno_failure("rename", from_path);
  } else {
    return errno_failure("exchange", from_path);
  }
  sync_dir(dir);
  return {};
}

std::optional<int64_t> read_stamp(const fs::path& p) {
  std::ifstream in{p};
  int64_t ms = 0;
  if (!(in >> ms))
    return std::nullopt;
  return ms;
}

caf::error write_stamp(const fs::path& p, int64_t ms) {
  auto temp = p.parent_path() / unique_temp_name();
  {
    std::ofstream out{temp, std::ios::trunc};
    out << ms << '\n';
    out.flush();
    if (!out)
      return make_error(brd_errc::io_failure, "cannot write " + temp.string());
  }
  std::error_code ec;
  fs::rename(temp, p, ec);
  if (ec)
    return fs_failure("rename to", p, ec);
  return {};
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// What one builds directory holds: build directories by sha with their
// finish times (if stamped), and every other entry.
struct builds_listing {
  std::map<std::string, std::optional<int64_t>> builds;
  std::vector<std::string> stamps; // shas with a .done file
  std::vector<std::string> others; // names that are neither, except "active"
};

caf::expected<builds_listing> list_builds(const fs::path& dir) {
  builds_listing out;
  std::error_code ec;
  if (!fs::exists(dir, ec))
    return out;
  for (fs::directory_iterator it{dir, ec}, end; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name == active_name)
      continue;
    if (is_commit_id(name) && it->is_directory(ec) && !it->is_symlink(ec))
      out.builds[name] = read_stamp(dir / (name + done_suffix));
    else if (ends_with(name, done_suffix)
             && is_commit_id(name.substr(0, name.size() - std::strlen(done_suffix))))
      out.stamps.push_back(name.substr(0, name.size() - std::strlen(done_suffix)));
    else
      out.others.push_back(name);
  }
  if (ec)
    return fs_failure("list", dir, ec);
  return out;
}

// Kept builds (stamped) ordered by finish time, newest first.
std::vector<std::string> newest_first(const builds_listing& listing) {
  std::vector<std::pair<int64_t, std::string>> stamped;
  for (const auto& [sha, finished] : listing.builds)
    if (finished)
      stamped.emplace_back(*finished, sha);
  std::sort(stamped.begin(), stamped.end(), std::greater<>{});
  std::vector<std::string> out;
  for (auto& [finished, sha] : stamped)
    out.push_back(std::move(sha));
  return out;
}

} // namespace

bool is_repo_name(std::string_view repo) {
  auto slash = repo.find('/');
  return slash != std::string_view::npos && is_segment(repo.substr(0, slash), false)
         && is_segment(repo.substr(slash + 1), false);
}

bool is_path_id(std::string_view id) {
  return is_segment(id, true);
}

std::string workspace_root(const std::string& data_dir, const std::string& workspace) {
  fs::path ws{workspace};
  return (ws.is_absolute() ? ws : fs::path{data_dir} / ws).lexically_normal().string();
}

workspace::workspace(std::string root) : root_(std::move(root)) {
  // Nothing.
}

caf::expected<std::string> workspace::repo_dir(std::string_view repo) const {
  if (!is_repo_name(repo))
    return refused_name("repository", repo);
  return (fs::path{root_} / "repos" / repo).string();
}

caf::expected<std::string> workspace::builds_dir(std::string_view repo) const {
  if (!is_repo_name(repo))
    return refused_name("repository", repo);
  return (fs::path{root_} / "builds" / repo).string();
}

caf::expected<std::string> workspace::build_dir(std::string_view repo,
                                                std::string_view sha) const {
  if (!is_commit_id(sha))
    return refused_name("sha", sha);
  auto dir = builds_dir(repo);
  if (!dir)
    return dir;
  return (fs::path{*dir} / sha).string();
}

caf::expected<std::string> workspace::active_link(std::string_view repo) const {
  auto dir = builds_dir(repo);
  if (!dir)
    return dir;
  return (fs::path{*dir} / active_name).string();
}

caf::expected<std::string> workspace::log_path(std::string_view deploy_id,
                                               std::string_view task_id) const {
  if (!is_path_id(deploy_id))
    return refused_name("deploy id", deploy_id);
  if (!is_path_id(task_id))
    return refused_name("task id", task_id);
  return (fs::path{root_} / "logs" / deploy_id / (std::string{task_id} + ".log")).string();
}

caf::expected<std::string> workspace::active_sha(std::string_view repo) const {
  auto dir = builds_dir(repo);
  if (!dir)
    return dir;
  auto target = link_target(*dir);
  if (ends_with(target, prev_suffix))
    target.resize(target.size() - std::strlen(prev_suffix));
  return is_commit_id(target) ? target : std::string{};
}

bool workspace::is_kept(std::string_view repo, std::string_view sha) const {
  auto dir = build_dir(repo, sha);
  std::error_code ec;
  return dir && fs::is_directory(*dir, ec) && !fs::is_symlink(*dir, ec)
         && read_stamp(*dir + done_suffix).has_value();
}

caf::error workspace::prepare_build(std::string_view repo, std::string_view sha) const {
  auto build = build_dir(repo, sha);
  if (!build)
    return build.error();
  fs::path dir = fs::path{*build}.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return fs_failure("create", dir, ec);
  auto listing = list_builds(dir);
  if (!listing)
    return listing.error();
  auto active = link_target(dir);
  // A crash during a redeploy: move the active build back to its own name.
  for (const auto& name : listing->others) {
    if (!ends_with(name, prev_suffix))
      continue;
    if (name != active) {
      if (auto err = remove_path(dir / name))
        return err;
      continue;
    }
    auto original = name.substr(0, name.size() - std::strlen(prev_suffix));
    if (auto err = remove_path(dir / original))
      return err;
    if (auto err = relocate_active(dir, name, original))
      return err;
    active = original;
  }
  std::string name{sha};
  if (!fs::exists(*build, ec))
    return remove_path(dir / (name + done_suffix));
  if (active == name)
    return relocate_active(dir, name, name + prev_suffix); // its stamp stays
  if (auto err = remove_path(*build))
    return err;
  return remove_path(dir / (name + done_suffix));
}

caf::error workspace::finish_build(std::string_view repo, std::string_view sha,
                                   int64_t finished_at_ms) const {
  auto build = build_dir(repo, sha);
  if (!build)
    return build.error();
  fs::path dir = fs::path{*build}.parent_path();
  if (auto err = write_stamp(*build + done_suffix, finished_at_ms))
    return err;
  if (auto err = switch_link(dir / active_name, std::string{sha}))
    return err;
  return remove_path(*build + prev_suffix);
}

caf::error workspace::discard_build(std::string_view repo, std::string_view sha) const {
  auto build = build_dir(repo, sha);
  if (!build)
    return build.error();
  fs::path dir = fs::path{*build}.parent_path();
  if (auto err = remove_path(*build))
    return err;
  std::string name{sha};
  std::error_code ec;
  if (!fs::exists(dir / (name + prev_suffix), ec))
    return remove_path(dir / (name + done_suffix));
  if (link_target(dir) != name + prev_suffix)
    return remove_path(dir / (name + prev_suffix));
  return relocate_active(dir, name + prev_suffix, name);
}

caf::error workspace::activate(std::string_view repo, std::string_view sha) const {
  auto link = active_link(repo);
  if (!link)
    return link.error();
  if (!is_kept(repo, sha))
    return make_error(brd_errc::refused, "no kept build of " + std::string{sha} + " for "
                                           + std::string{repo} + " in " + root_);
  return switch_link(*link, std::string{sha});
}

caf::expected<std::vector<std::string>>
workspace::kept_builds(std::string_view repo) const {
  auto dir = builds_dir(repo);
  if (!dir)
    return dir.error();
  auto listing = list_builds(*dir);
  if (!listing)
    return listing.error();
  return newest_first(*listing);
}

caf::expected<std::vector<std::string>> workspace::retain(std::string_view repo,
                                                          size_t keep) const {
  auto dir_name = builds_dir(repo);
  if (!dir_name)
    return dir_name.error();
  fs::path dir{*dir_name};
  auto listing = list_builds(dir);
  if (!listing)
    return listing.error();
  auto active = link_target(dir);
  std::vector<std::string> survivors;
  if (listing->builds.count(active) > 0)
    survivors.push_back(active);
  for (const auto& sha : newest_first(*listing))
    if (survivors.size() < std::max<size_t>(keep, 1) && sha != active)
      survivors.push_back(sha);
  auto survives = [&](const std::string& sha) {
    return std::find(survivors.begin(), survivors.end(), sha) != survivors.end();
  };
  std::vector<std::string> removed; // oldest first; unfinished before all
  for (const auto& [sha, finished] : listing->builds)
    if (!finished && sha != active)
      removed.push_back(sha);
  auto ordered = newest_first(*listing);
  for (auto it = ordered.rbegin(); it != ordered.rend(); ++it)
    if (!survives(*it))
      removed.push_back(*it);
  for (const auto& sha : removed) {
    if (auto err = remove_path(dir / sha))
      return err;
    if (auto err = remove_path(dir / (sha + done_suffix)))
      return err;
  }
  // Stamps without a build and leftovers of interrupted work.
  for (const auto& sha : listing->stamps)
    if (listing->builds.count(sha) == 0)
      remove_path(dir / (sha + done_suffix));
  for (const auto& name : listing->others)
    if (name != active
        && (name.starts_with(temp_prefix) || name.find(partial_suffix) != std::string::npos
            || ends_with(name, prev_suffix)))
      remove_path(dir / name);
  return removed;
}

// -- logs ------------------------------------------------------------------------

namespace {

// The newest write time (ms since the epoch) of `dir` and the files in it.
std::optional<int64_t> newest_write_ms(const fs::path& dir) {
  std::error_code ec;
  auto newest = fs::last_write_time(dir, ec);
  if (ec)
    return std::nullopt;
  for (fs::directory_iterator it{dir, ec}, end; !ec && it != end; it.increment(ec)) {
    auto t = fs::last_write_time(it->path(), ec);
    if (ec)
      return std::nullopt;
    newest = std::max(newest, t);
  }
  if (ec)
    return std::nullopt;
  auto sys = std::chrono::file_clock::to_sys(newest);
  return std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count();
}

} // namespace

caf::expected<size_t> workspace::prune_logs(int64_t cutoff_ms) const {
  auto logs = fs::path{root_} / "logs";
  std::error_code ec;
  if (!fs::exists(logs, ec))
    return size_t{0};
  std::vector<fs::path> old;
  for (fs::directory_iterator it{logs, ec}, end; !ec && it != end; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (!is_path_id(name) || !it->is_directory(ec))
      continue;
    if (auto newest = newest_write_ms(it->path()); newest && *newest < cutoff_ms)
      old.push_back(it->path());
  }
  if (ec)
    return make_error(brd_errc::io_failure, "cannot list " + logs.string() + ": " + ec.message());
  for (const auto& dir : old)
    if (auto err = remove_path(dir))
      return err;
  return old.size();
}

} // namespace brd::io
