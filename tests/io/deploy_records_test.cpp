// Push-to-deploy records in the state tables: msgpack by io/codec_detail,
// readable from rows the earlier nlohmann::json encoding wrote, strict about
// known fields of the wrong type, blind to fields it does not know.
#include "io/deploy_records.hpp"

#include <string>

#include <doctest/doctest.h>

#include "runtime/errors.hpp"

namespace {

using brd::io::alert_record;
using brd::io::deployment_record;
using brd::io::task_record;

// Bytes as nlohmann::json::to_msgpack writes them: how rows were stored
// before the codec took over, and how a JSON-minded writer would do it.
std::string json_msgpack(const nlohmann::json& j) {
  auto bytes = nlohmann::json::to_msgpack(j);
  return {bytes.begin(), bytes.end()};
}

bool is_corrupt(const caf::error& err) {
  return brd::describe(err).find("corrupt record") != std::string::npos;
}

task_record sample_task() {
  task_record t;
  t.deploy_id = "d-1";
  t.task_id = "frontend@fe1#1";
  t.repo = "acme/site";
  t.sha = std::string(40, 'a');
  t.ref = "refs/heads/main";
  t.role = "frontend";
  t.node = "fe1";
  t.state = "failed";
  t.exit_code = -9;
  t.reason = "timed out";
  t.log_tail = "line 1\nline 2\n";
  t.queued_at_ms = 1'795'968'625'510;
  t.attempt = 2;
  return t;
}

} // namespace

TEST_CASE("every deploy record survives encode and decode") {
  auto t = brd::io::decode<task_record>(brd::io::encode(sample_task()));
  REQUIRE(t);
  CHECK(t->v == task_record::current_version);
  CHECK(t->task_id == "frontend@fe1#1");
  CHECK(t->exit_code == -9);
  CHECK(t->queued_at_ms == 1'795'968'625'510);
  CHECK(t->attempt == 2);
  CHECK(t->log_tail == "line 1\nline 2\n");

  deployment_record d;
  d.id = "d-1";
  d.task_ids = {"a", "b"};
  d.verdicts = {{"a", "node lost"}};
  d.changed = {"frontend/index.html"};
  auto back = brd::io::decode<deployment_record>(brd::io::encode(d));
  REQUIRE(back);
  CHECK(back->task_ids == d.task_ids);
  CHECK(back->verdicts == d.verdicts);
  CHECK(back->changed == d.changed);

  alert_record a;
  a.id = "x";
  a.kind = "deploy_failed";
  a.at_ms = 42;
  auto alert = brd::io::decode<alert_record>(brd::io::encode(a));
  REQUIRE(alert);
  CHECK(alert->kind == "deploy_failed");
  CHECK(alert->at_ms == 42);
}

TEST_CASE("rows written as JSON msgpack (the earlier encoding) still decode") {
  auto old = json_msgpack(nlohmann::json(sample_task()));
  auto t = brd::io::decode<task_record>(old);
  REQUIRE(t);
  CHECK(t->sha == std::string(40, 'a'));
  CHECK(t->exit_code == -9);
  CHECK(t->queued_at_ms == 1'795'968'625'510);
  // and what the codec writes reads back as the same JSON
  CHECK(nlohmann::json(*t) == nlohmann::json(sample_task()));
}

TEST_CASE("a newer deploy record decodes the fields we know, defaults the rest") {
  auto bytes = json_msgpack({{"v", 205}, {"id", "d-9"}, {"state", "success"},
                             {"a_field_from_the_future", {1, 2, 3}}});
  auto d = brd::io::decode<deployment_record>(bytes);
  REQUIRE(d);
  CHECK(d->v == 205);
  CHECK(d->id == "d-9");
  CHECK(d->state == "success");
  CHECK(d->kind == "deploy");
  CHECK(d->task_ids.empty());
}

TEST_CASE("a deploy record that is not one is refused, never half read") {
  CHECK(is_corrupt(brd::io::decode<task_record>("not msgpack at all").error()));
  CHECK(is_corrupt(brd::io::decode<task_record>(json_msgpack({1, 2})).error()));
  CHECK(is_corrupt(brd::io::decode<task_record>(json_msgpack({{"state", "queued"}})).error()));
  // a known field of the wrong type: the reader would otherwise act on a
  // default (an exit code of -1, an empty node) as if it had been written
  auto wrong = brd::io::decode<task_record>(
    json_msgpack({{"v", 100}, {"node", 7}, {"state", "running"}}));
  REQUIRE(!wrong);
  CHECK(brd::describe(wrong.error()).find("'node'") != std::string::npos);
  auto full = brd::io::encode(sample_task());
  for (size_t n = 0; n < full.size(); ++n)
    CHECK(!brd::io::decode<task_record>(full.substr(0, n)));
}
