// Each operation is a short sequence of git commands; run_git() turns a
// failed one into an error value. See git.hpp for the contract.
#include "io/git.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "io/process.hpp"
#include "runtime/errors.hpp"

namespace brd::io {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

struct git_call {
  std::vector<std::string> args; // after "git"
  std::string what;              // for messages: "git fetch of URL"
  milliseconds timeout;
  std::string log_path;
  std::vector<std::pair<std::string, std::string>> env;
  bool capture_stdout = false;
};

// The last few non-empty lines of git's output, enough to say why it failed.
std::string last_lines(std::string tail, size_t count = 3) {
  std::replace(tail.begin(), tail.end(), '\r', '\n'); // progress lines
  std::vector<std::string_view> lines;
  std::string_view rest{tail};
  while (!rest.empty()) {
    auto nl = std::min(rest.find('\n'), rest.size());
    if (nl > 0)
      lines.push_back(rest.substr(0, nl));
    rest.remove_prefix(std::min(nl + 1, rest.size()));
  }
  std::string text;
  for (size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i)
    text += (text.empty() ? "" : " | ") + std::string{lines[i]};
  return text.size() > 600 ? text.substr(text.size() - 600) : text;
}

// `cancel`: see process_spec::cancel. Housekeeping that a command starts
// (`git gc --auto` after a fetch) runs in the foreground: a detached gc would
// leave the process group we time out, cancel and clean up after a crash.
caf::expected<process_result> run_git(git_call call, const std::atomic<bool>* cancel = nullptr) {
  process_spec spec;
  spec.argv = {"git", "-c", "gc.autoDetach=false", "-c", "maintenance.autoDetach=false"};
  spec.argv.insert(spec.argv.end(), call.args.begin(), call.args.end());
  spec.env = std::move(call.env);
  spec.env.emplace_back("GIT_TERMINAL_PROMPT", "0");
  spec.env.emplace_back("LC_ALL", "C");
  spec.timeout = call.timeout;
  spec.log_path = call.log_path;
  spec.capture_stdout = call.capture_stdout;
  spec.cancel = cancel;
  auto result = run_process(spec);
  if (!result)
    return result.error();
  if (result->cancelled)
    return make_error(brd_errc::io_failure, call.what + " cancelled: the node is stopping");
  if (result->timed_out)
    return make_error(brd_errc::timeout, call.what + " timed out after "
                                           + std::to_string(call.timeout.count()) + " ms");
  if (!result->succeeded()) {
    auto why = result->signal != 0 ? "signal " + std::to_string(result->signal)
                                   : "exit " + std::to_string(result->exit_code);
    return make_error(brd_errc::io_failure,
                      call.what + " failed (" + why + "): " + last_lines(result->tail));
  }
  if (result->output_truncated)
    return make_error(brd_errc::io_failure, call.what + " gave more output than we keep");
  return result;
}

caf::error check_commit_id(std::string_view sha, std::string_view name) {
  if (is_commit_id(sha))
    return {};
  return make_error(brd_errc::refused, std::string{name}
                                         + " is not a commit id (40 lowercase hex digits)");
}

bool is_bare_repository(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path{dir} / "HEAD", ec)
         && fs::is_directory(fs::path{dir} / "objects", ec);
}

std::vector<std::string> split_nul(const std::string& output) {
  std::vector<std::string> paths;
  size_t begin = 0;
  while (begin < output.size()) {
    auto end = output.find('\0', begin);
    if (end == std::string::npos)
      end = output.size();
    if (end > begin)
      paths.emplace_back(output, begin, end - begin);
    begin = end + 1;
  }
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  return paths;
}

// Whether `repo_dir`'s config names `url` as origin's only URL, as git
// writes it (`[remote "origin"]`, then a line `url = ...`). Only a URL git
// writes unquoted is recognised, and only when it is the one url line of
// the section; otherwise the answer is false and the caller sets it with
// git, so a wrong "no" costs a process and a wrong "yes" cannot happen.
bool origin_is(const std::string& repo_dir, const std::string& url) {
  if (url.empty() || url.find_first_of("\"\\;#\n\t") != std::string::npos
      || url.front() == ' ' || url.back() == ' ')
    return false;
  std::ifstream in{fs::path{repo_dir} / "config"};
  std::string line;
  bool in_origin = false, found = false;
  int urls = 0;
  while (std::getline(in, line)) {
    auto text = std::string_view{line};
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
      text.remove_prefix(1);
    if (text.starts_with("[")) {
      in_origin = text == "[remote \"origin\"]";
    } else if (in_origin && (text.starts_with("url ") || text.starts_with("url="))) {
      ++urls;
      found = found || text == "url = " + url;
    }
  }
  return found && urls == 1;
}

// The 20 bytes of a 40-hex-digit object id (checked by the caller).
std::array<unsigned char, 20> object_id_bytes(std::string_view sha) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::array<unsigned char, 20> out{};
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<unsigned char>(nibble(sha[2 * i]) << 4 | nibble(sha[2 * i + 1]));
  return out;
}

// Whether the pack index `idx` (version 2, SHA-1: magic, version, 256
// cumulative counts by first byte, then the sorted ids) lists `id`. Any
// other or damaged index reads as "no".
bool pack_index_lists(const fs::path& idx, const std::array<unsigned char, 20>& id) {
  constexpr uintmax_t ids_at = 8 + 256 * 4;
  std::error_code ec;
  auto size = fs::file_size(idx, ec);
  if (ec || size < ids_at)
    return false;
  std::ifstream in{idx, std::ios::binary};
  auto read_at = [&in](std::streamoff at, void* into, std::streamsize n) {
    return static_cast<bool>(in.seekg(at).read(static_cast<char*>(into), n));
  };
  unsigned char head[8];
  static constexpr unsigned char v2[8] = {0xff, 't', 'O', 'c', 0, 0, 0, 2};
  if (!read_at(0, head, sizeof head) || std::memcmp(head, v2, sizeof v2) != 0)
    return false;
  auto count_up_to = [&](int first_byte) -> std::optional<uint32_t> {
    unsigned char b[4];
    if (first_byte < 0)
      return 0;
    if (!read_at(8 + 4 * first_byte, b, 4))
      return std::nullopt;
    return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
  };
  auto lo = count_up_to(id[0] - 1), hi = count_up_to(id[0]);
  // Counts that do not fit the file are damage, not a reason to allocate.
  if (!lo || !hi || *hi <= *lo || ids_at + uintmax_t{*hi} * 20 > size)
    return false;
  std::vector<unsigned char> ids(size_t{*hi - *lo} * 20);
  if (!read_at(static_cast<std::streamoff>(ids_at + uintmax_t{*lo} * 20), ids.data(),
               static_cast<std::streamsize>(ids.size())))
    return false;
  for (size_t at = 0; at < ids.size(); at += 20)
    if (std::memcmp(ids.data() + at, id.data(), 20) == 0)
      return true;
  return false;
}

caf::error remove_if_present(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec)
    return make_error(brd_errc::io_failure, "cannot remove " + p.string() + ": " + ec.message());
  return {};
}

} // namespace

bool is_commit_id(std::string_view sha) {
  return sha.size() == 40 && std::all_of(sha.begin(), sha.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool is_zero_commit_id(std::string_view sha) {
  return sha.size() == 40 && sha.find_first_not_of('0') == std::string_view::npos;
}

std::string redact_url(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos)
    return std::string{url};
  auto host_start = scheme + 3;
  auto path_start = std::min(url.find('/', host_start), url.size());
  auto at = url.rfind('@', path_start);
  if (at == std::string_view::npos || at < host_start)
    return std::string{url};
  return std::string{url.substr(0, host_start)} + std::string{url.substr(at + 1)};
}

caf::error fetch_repo(const std::string& remote_url, const std::string& repo_dir,
                      milliseconds timeout, const std::string& log_path,
                      const std::atomic<bool>* cancel) {
  auto what = "git fetch of " + redact_url(remote_url);
  if (!is_bare_repository(repo_dir)) {
    std::error_code ec;
    fs::create_directories(repo_dir, ec);
    if (ec)
      return make_error(brd_errc::io_failure, "cannot create " + repo_dir + ": " + ec.message());
    auto init = run_git({{"init", "--quiet", "--bare", "--", repo_dir},
                         "git init of " + repo_dir, timeout, log_path},
                        cancel);
    if (!init)
      return init.error();
  }
  auto git_dir = "--git-dir=" + repo_dir;
  if (!origin_is(repo_dir, remote_url)) {
    auto set_url = run_git({{git_dir, "config", "--replace-all", "--", "remote.origin.url", remote_url},
                            "setting the remote of " + repo_dir, timeout, log_path},
                           cancel);
    if (!set_url)
      return set_url.error();
  }
  auto fetch = run_git({{git_dir, "fetch", "--prune", "--no-tags", "--", "origin",
                         "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"},
                        what, timeout, log_path},
                       cancel);
  if (!fetch)
    return fetch.error();
  return {};
}

caf::expected<bool> has_object(const std::string& repo_dir, const std::string& sha) {
  if (auto err = check_commit_id(sha, "the sha to look up"))
    return err;
  if (!is_bare_repository(repo_dir))
    return false;
  std::error_code ec;
  fs::path objects = fs::path{repo_dir} / "objects";
  if (fs::is_regular_file(objects / sha.substr(0, 2) / sha.substr(2), ec))
    return true;
  auto id = object_id_bytes(sha);
  for (fs::directory_iterator it{objects / "pack", ec}, end; !ec && it != end;
       it.increment(ec))
    if (it->path().extension() == ".idx" && pack_index_lists(it->path(), id))
      return true;
  return false;
}

caf::expected<bool> fetch_commit(const std::string& remote_url, const std::string& repo_dir,
                                 const std::string& sha, milliseconds timeout,
                                 const std::string& log_path, const std::atomic<bool>* cancel) {
  auto here = has_object(repo_dir, sha);
  if (!here)
    return here.error();
  if (*here)
    return false;
  if (auto err = fetch_repo(remote_url, repo_dir, timeout, log_path, cancel))
    return err;
  return true;
}

caf::error checkout(const std::string& repo_dir, const std::string& sha,
                    const std::string& build_dir, milliseconds timeout,
                    const std::string& log_path, const std::atomic<bool>* cancel) {
  if (auto err = check_commit_id(sha, "the sha to check out"))
    return err;
  std::error_code ec;
  if (fs::exists(build_dir, ec) || ec)
    return make_error(brd_errc::refused, "build directory " + build_dir + " already exists");
  auto git_dir = "--git-dir=" + repo_dir;
  fs::path partial = build_dir + ".partial";
  fs::path index = build_dir + ".partial.index";
  if (auto err = remove_if_present(partial))
    return err;
  remove_if_present(index);
  fs::create_directories(partial, ec);
  if (ec)
    return make_error(brd_errc::io_failure, "cannot create " + partial.string() + ": "
                                              + ec.message());
  // A private index: the repository's own index and HEAD stay as they are.
  std::vector<std::pair<std::string, std::string>> env{{"GIT_INDEX_FILE", index.string()}};
  auto what = "git checkout of " + sha + " into " + build_dir;
  // read-tree -u into the empty directory writes the whole tree: one
  // process (read-tree plus checkout-index took two).
  auto written = run_git({{git_dir, "--work-tree=" + partial.string(), "read-tree", "--reset",
                           "-u", sha},
                          what, timeout, log_path, env},
                         cancel);
  remove_if_present(index);
  if (!written) {
    remove_if_present(partial);
    auto here = has_object(repo_dir, sha);
    if (here && !*here)
      return make_error(brd_errc::io_failure, "commit " + sha + " is not in " + repo_dir
                                                + " (fetch it first)");
    return written.error();
  }
  fs::rename(partial, build_dir, ec);
  if (ec)
    return make_error(brd_errc::io_failure, "cannot rename " + partial.string() + " to "
                                              + build_dir + ": " + ec.message());
  return {};
}

caf::expected<std::vector<std::string>>
changed_files(const std::string& repo_dir, const std::string& before, const std::string& after,
              milliseconds timeout) {
  if (!is_zero_commit_id(before))
    if (auto err = check_commit_id(before, "before"))
      return err;
  if (!is_zero_commit_id(after))
    if (auto err = check_commit_id(after, "after"))
      return err;
  if (is_zero_commit_id(after))
    return std::vector<std::string>{};
  if (is_zero_commit_id(before))
    return list_files(repo_dir, after, timeout);
  auto diff = run_git({{"--git-dir=" + repo_dir, "diff-tree", "-r", "-z", "--name-only",
                        "--no-renames", "--no-commit-id", before, after, "--"},
                       "git diff of " + before + ".." + after + " in " + repo_dir, timeout, {},
                       {}, true});
  if (!diff)
    return diff.error();
  return split_nul(diff->output);
}

caf::expected<std::vector<std::string>>
list_files(const std::string& repo_dir, const std::string& sha, milliseconds timeout) {
  if (auto err = check_commit_id(sha, "the sha to list"))
    return err;
  auto tree = run_git({{"--git-dir=" + repo_dir, "ls-tree", "-r", "-z", "--name-only",
                        "--full-tree", sha, "--"},
                       "git ls-tree of " + sha + " in " + repo_dir, timeout, {}, {}, true});
  if (!tree)
    return tree.error();
  return split_nul(tree->output);
}

} // namespace brd::io
