#include "runtime/deploy_progress.hpp"

#include <doctest/doctest.h>

using namespace brd;

namespace {

io::task_record task(std::string id, std::string role, std::string node,
                     std::string state = "queued") {
  io::task_record t;
  t.deploy_id = "d-1";
  t.task_id = std::move(id);
  t.role = std::move(role);
  t.node = std::move(node);
  t.state = std::move(state);
  return t;
}

deploy_progress two_roles() {
  deploy_progress p;
  p.record.id = "d-1";
  p.add(task("fe@a", "frontend", "a"), {});
  p.add(task("fe@b", "frontend", "b"), {});
  p.add(task("t@c", "tests", "c"), {});
  return p;
}

io::task_record with_state(io::task_record t, std::string state, std::string reason = {}) {
  t.state = std::move(state);
  t.reason = std::move(reason);
  return t;
}

} // namespace

TEST_CASE("a deployment is pending until every task is final, then success or failure") {
  auto p = two_roles();
  CHECK(p.overall() == "pending");
  CHECK(p.role_states() == std::map<std::string, std::string>{{"frontend", "pending"},
                                                               {"tests", "pending"}});
  CHECK(p.apply(with_state(p.tasks["t@c"].record, "succeeded")));
  CHECK(p.role_states()["tests"] == "success");
  CHECK(p.overall() == "pending");
  CHECK(p.apply(with_state(p.tasks["fe@a"].record, "succeeded")));
  CHECK(p.apply(with_state(p.tasks["fe@b"].record, "failed", "exit code 3")));
  CHECK(p.role_states()["frontend"] == "failure");
  CHECK(p.overall() == "failure");
  CHECK(p.first_failure() == "frontend on b: exit code 3");
  CHECK(p.first_failure("tests").empty());
  CHECK(status_description(p, "frontend", "failure") == "failed: frontend on b: exit code 3");
  CHECK(status_description(p, "", "pending") == "deploying to 3 nodes");
}

TEST_CASE("a verdict fails a row that is not final, and only that") {
  std::map<std::string, std::string> verdicts{{"fe@a", "node lost"}};
  auto running = task("fe@a", "frontend", "a", "running");
  CHECK(apply_verdict(running, verdicts));
  CHECK(running.state == "failed");
  CHECK(running.reason == "node lost");
  auto done = task("fe@a", "frontend", "a", "succeeded");
  CHECK_FALSE(apply_verdict(done, verdicts)); // the node's final word stands
  CHECK(done.state == "succeeded");
  auto other = task("fe@b", "frontend", "b", "queued");
  CHECK_FALSE(apply_verdict(other, verdicts));
  CHECK(other.state == "queued");
}

TEST_CASE("a superseding verdict reads as superseded, with its reason") {
  auto reason = io::superseded_reason("0123456789abcdef0123456789abcdef01234567", "d-2");
  CHECK(reason == "superseded by 0123456789ab (d-2)");
  CHECK(io::is_superseded_reason(reason));
  CHECK_FALSE(io::is_superseded_reason("node lost"));
  CHECK(io::verdict_state(reason) == "superseded");
  CHECK(io::verdict_state("node lost") == "failed");
  auto queued = task("fe@a", "frontend", "a");
  CHECK(apply_verdict(queued, {{"fe@a", reason}}));
  CHECK(queued.state == "superseded");
  CHECK(queued.reason == reason);
}

TEST_CASE("task states only move forward and a final state is final") {
  auto p = two_roles();
  auto t = p.tasks["fe@a"].record;
  CHECK(p.apply(with_state(t, "running")));
  CHECK_FALSE(p.apply(with_state(t, "queued")));  // an older copy arriving late
  CHECK(p.tasks["fe@a"].record.state == "running");
  CHECK(p.apply(with_state(t, "timed_out")));
  CHECK_FALSE(p.apply(with_state(t, "succeeded")));
  CHECK_FALSE(p.apply(with_state(t, "bogus")));
  CHECK_FALSE(p.apply(task("unknown@x", "frontend", "x", "running")));
  auto later = with_state(t, "running");
  CHECK_FALSE(p.apply(later));
}

TEST_CASE("a superseded task no longer counts") {
  auto p = two_roles();
  p.tasks["fe@b"].record.state = "failed";
  p.tasks["fe@b"].record.reason = "node lost";
  p.tasks["fe@b"].superseded = true;
  p.add(task("fe@a.2", "frontend", "a"), {});
  CHECK(p.open_tasks_on("b").empty());
  CHECK(p.open_tasks_on("a") == std::vector<std::string>{"fe@a", "fe@a.2"});
  CHECK(p.nodes_of_role("frontend") == std::vector<std::string>{"a", "b"});
  CHECK(p.counted("frontend") == 2);
  for (auto id : {"fe@a", "fe@a.2", "t@c"})
    CHECK(p.apply(with_state(p.tasks[id].record, "succeeded")));
  CHECK(p.overall() == "success");
  CHECK(p.all_started());
}

TEST_CASE("an unassigned task fails its role at once") {
  deploy_progress p;
  p.add(task("k8s@unassigned", "k8s", "", "unassigned"), {});
  p.add(task("fe@a", "frontend", "a"), {});
  CHECK(p.role_states()["k8s"] == "failure");
  CHECK(p.overall() == "pending");
  CHECK(p.assigned() == 1);
  CHECK(p.first_failure() == "k8s on no node: unassigned");
}
