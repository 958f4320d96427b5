// See task_runner.hpp. Failures at any step end the task with a reason and
// leave the active build as it was.
#include "io/task_runner.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "io/git.hpp"
#include "io/process.hpp"
#include "runtime/errors.hpp"
#include "runtime/wall_clock.hpp"

namespace brd::io {

namespace {

constexpr auto git_timeout = std::chrono::minutes{10};
constexpr size_t tail_bytes = 4096;

// Appends one line of ours to the task's log, so the file tells the story.
void note(const std::string& log_path, const std::string& text) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path{log_path}.parent_path(), ec);
  std::ofstream{log_path, std::ios::app} << "[brnode] " << text << '\n';
}

// The last `bytes` of a file, starting at a UTF-8 character boundary.
std::string file_tail(const std::string& path, size_t bytes) {
  std::ifstream in{path, std::ios::binary | std::ios::ate};
  if (!in)
    return {};
  auto size = static_cast<size_t>(in.tellg());
  auto start = size > bytes ? size - bytes : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::string tail(size - start, '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  size_t skip = 0;
  while (start > 0 && skip < tail.size() && (static_cast<unsigned char>(tail[skip]) & 0xC0) == 0x80)
    ++skip;
  return tail.substr(skip);
}

std::string stopping_reason(const task_run& j) {
  return "cancelled: node " + j.node + " is stopping";
}

task_outcome failed(const task_run& j, const std::string& reason) {
  note(j.log_path, "failed: " + reason);
  return {"failed", -1, reason, file_tail(j.log_path, tail_bytes), wall_clock_ms()};
}

// A git step that failed, or was ended because the node is stopping (the
// same reason as for a script ended that way).
task_outcome git_failed(const task_run& j, const caf::error& err) {
  if (j.cancel && j.cancel->load())
    return failed(j, stopping_reason(j));
  return failed(j, describe(err));
}

process_spec script_spec(const task_run& j, const std::string& build_dir) {
  const auto& t = j.task;
  process_spec spec;
  spec.argv = t.script;
  spec.cwd = build_dir;
  spec.env = {{"BLACKROAD_REPO", t.repo},       {"BLACKROAD_SHA", t.sha},
              {"BLACKROAD_REF", t.ref},         {"BLACKROAD_ROLE", t.role},
              {"BLACKROAD_NODE", j.node},       {"BLACKROAD_DEPLOY_ID", t.deploy_id},
              {"BLACKROAD_TASK_ID", t.task_id}};
  spec.timeout = std::chrono::seconds{t.timeout_s};
  spec.log_path = j.log_path;
  spec.tail_bytes = tail_bytes;
  spec.group_file = j.group_file;
  spec.cancel = j.cancel.get();
  return spec;
}

task_outcome outcome_of(const process_result& r, const task_run& j) {
  auto timeout_s = j.task.timeout_s;
  task_outcome out{"succeeded", r.exit_code, {}, r.tail, wall_clock_ms()};
  if (r.cancelled) {
    out.state = "failed";
    out.reason = stopping_reason(j);
  } else if (r.timed_out) {
    out.state = "timed_out";
    out.reason = "timed out after " + std::to_string(timeout_s) + " s";
  } else if (r.signal != 0) {
    out.state = "failed";
    out.reason = "killed by signal " + std::to_string(r.signal);
  } else if (r.exit_code != 0) {
    out.state = "failed";
    out.reason = "exit code " + std::to_string(r.exit_code);
  }
  return out;
}

// Runs the script in a checked-out build; the build becomes active on success
// and is removed otherwise.
task_outcome run_script(const workspace& ws, const task_run& j,
                        const std::string& build_dir) {
  const auto& t = j.task;
  note(j.log_path, "running " + t.script.front() + " (timeout " + std::to_string(t.timeout_s)
                     + " s)");
  auto result = run_process(script_spec(j, build_dir));
  if (!result) {
    ws.discard_build(t.repo, t.sha);
    return failed(j, describe(result.error()));
  }
  auto out = outcome_of(*result, j);
  if (out.state != "succeeded") {
    note(j.log_path, out.state + ": " + out.reason);
    ws.discard_build(t.repo, t.sha);
    return out;
  }
  if (auto err = ws.finish_build(t.repo, t.sha, out.finished_at_ms)) {
    ws.discard_build(t.repo, t.sha);
    return failed(j, "cannot activate the build: " + describe(err));
  }
  auto removed = ws.retain(t.repo, j.keep_builds);
  if (!removed)
    note(j.log_path, "retention failed: " + describe(removed.error()));
  else if (!removed->empty())
    note(j.log_path, "removed " + std::to_string(removed->size()) + " old build(s)");
  note(j.log_path, "succeeded; " + t.sha + " is active");
  return out;
}

task_outcome run_deploy(const workspace& ws, const task_run& j) {
  const auto& t = j.task;
  auto repo_dir = ws.repo_dir(t.repo);
  auto build_dir = ws.build_dir(t.repo, t.sha);
  if (!repo_dir || !build_dir)
    return failed(j, describe(!repo_dir ? repo_dir.error() : build_dir.error()));
  note(j.log_path, "deploying " + t.repo + " " + t.sha + " (" + t.ref + ") for role " + t.role
                     + " on " + j.node + ", attempt " + std::to_string(t.attempt));
  auto fetched = fetch_commit(t.remote, *repo_dir, t.sha, git_timeout, j.log_path,
                              j.cancel.get());
  if (!fetched)
    return git_failed(j, fetched.error());
  if (!*fetched)
    note(j.log_path, t.sha + " is already in " + *repo_dir + "; no fetch");
  if (auto err = ws.prepare_build(t.repo, t.sha))
    return failed(j, describe(err));
  auto err = checkout(*repo_dir, t.sha, *build_dir, git_timeout, j.log_path, j.cancel.get());
  if (err && !*fetched && !(j.cancel && *j.cancel)) {
    // The commit object was here but not everything it needs (a fetch
    // killed half way can leave that): a fetch fills in the rest.
    note(j.log_path, "checkout from the local mirror failed (" + describe(err)
                       + "); fetching and trying again");
    err = fetch_repo(t.remote, *repo_dir, git_timeout, j.log_path, j.cancel.get());
    if (!err)
      err = checkout(*repo_dir, t.sha, *build_dir, git_timeout, j.log_path, j.cancel.get());
  }
  if (err) {
    ws.discard_build(t.repo, t.sha);
    return git_failed(j, err);
  }
  return run_script(ws, j, *build_dir);
}

task_outcome run_rollback(const workspace& ws, const task_run& j) {
  const auto& t = j.task;
  note(j.log_path, "rolling " + t.repo + " back to " + t.sha + " on " + j.node);
  if (!ws.is_kept(t.repo, t.sha))
    return failed(j, "no kept build of " + t.sha + " for " + t.repo + " on " + j.node);
  if (auto err = ws.activate(t.repo, t.sha))
    return failed(j, describe(err));
  note(j.log_path, "succeeded; " + t.sha + " is active");
  return {"succeeded", 0, {}, file_tail(j.log_path, tail_bytes), wall_clock_ms()};
}

bool is_control(char c) {
  return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
}

bool has_control_character(const std::string& value) {
  return std::any_of(value.begin(), value.end(), is_control);
}

// A value from the network, made safe and short for a message.
std::string shown(const std::string& value) {
  std::string out;
  for (char c : value.substr(0, 80))
    out += is_control(c) ? '?' : c;
  return "'" + out + (value.size() > 80 ? "...'" : "'");
}

bool climbs_out(const std::string& path) {
  return path == ".." || path.starts_with("../") || path.ends_with("/..")
         || path.find("/../") != std::string::npos;
}

} // namespace

std::string task_problem(const deploy_task& t) {
  if (t.kind != "deploy" && t.kind != "rollback")
    return "unknown task kind " + shown(t.kind);
  if (!is_path_id(t.deploy_id) || !is_path_id(t.task_id))
    return "deploy and task ids must be letters, digits and . _ - : @ +";
  if (!is_repo_name(t.repo))
    return "repository " + shown(t.repo) + " is not owner/name";
  if (!is_commit_id(t.sha))
    return "sha " + shown(t.sha) + " is not 40 lowercase hex digits";
  if (has_control_character(t.ref) || has_control_character(t.role))
    return "ref and role must hold no control characters";
  if (t.kind == "rollback")
    return {};
  if (t.remote.empty())
    return "the task has no remote";
  if (t.script.empty() || t.script.front().empty())
    return "the task has no script";
  if (t.script.front().starts_with("/") || climbs_out(t.script.front()))
    return "script " + shown(t.script.front()) + " must stay inside the checkout";
  if (t.timeout_s == 0)
    return "timeout_s must be at least 1";
  return {};
}

task_outcome run_task(const workspace& ws, const task_run& run) {
  if (auto err = lower_thread_priority(run.nice))
    note(run.log_path, "running at normal priority: " + describe(err));
  return run.task.kind == "rollback" ? run_rollback(ws, run) : run_deploy(ws, run);
}

} // namespace brd::io
