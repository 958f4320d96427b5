// The replicated state's storage and merge layer, on real RocksDB stores.
#include "io/state_store.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include <csignal>

#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <msgpack.hpp>

#include "io/codec.hpp"
#include "io/store.hpp"
#include "runtime/errors.hpp"
#include "../support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using brd::brd_errc;
using brd::state_entry;
using brd::state_snapshot;
using brd::io::local_write;
using brd::io::state_store;
using brd::io::store;
using brd::io::version_vector;

const std::vector<std::string> fleet{"a", "b", "c"};

using brd_test::temp_dir;

// One node's store and state in their own directory.
struct node {
  std::string name;
  std::string dir;
  std::unique_ptr<store> db;
  std::unique_ptr<state_store> state;

  node(const temp_dir& tmp, std::string who) : name(std::move(who)) {
    dir = (tmp.path / name).string();
    open();
  }

  void open() {
    auto opened = store::open(dir, brd::io::state_column_families());
    REQUIRE_MESSAGE(opened, brd::describe(opened.error()));
    db = std::move(*opened);
    auto st = state_store::open(*db, name, fleet);
    REQUIRE_MESSAGE(st, brd::describe(st.error()));
    state = std::move(*st);
  }

  void reopen() {
    state.reset();
    db.reset();
    open();
  }

  // The node loses its data directory and starts empty.
  void wipe() {
    state.reset();
    db.reset();
    fs::remove_all(dir);
    open();
  }

  std::vector<state_entry> commit(std::vector<local_write> writes) {
    auto done = state->commit(writes);
    REQUIRE_MESSAGE(done, brd::describe(done.error()));
    return *done;
  }

  state_store::apply_result apply(const std::vector<state_entry>& entries) {
    auto done = state->apply(entries);
    REQUIRE_MESSAGE(done, brd::describe(done.error()));
    return *done;
  }

  std::optional<std::string> value_of(const std::string& table,
                                      const std::string& key) {
    auto row = state->get(table, key);
    REQUIRE_MESSAGE(row, brd::describe(row.error()));
    if (!*row)
      return std::nullopt;
    return (*row)->value;
  }

  std::map<std::string, std::string> digest() {
    auto d = state->digest();
    REQUIRE_MESSAGE(d, brd::describe(d.error()));
    return *d;
  }
};

// A record value: a msgpack map with schema version `v` and one field.
std::string record(uint64_t v, const std::string& data) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> out{buf};
  out.pack_map(2);
  out.pack(std::string{"v"});
  out.pack(v);
  out.pack(std::string{"data"});
  out.pack(data);
  return {buf.data(), buf.size()};
}

std::string record(const std::string& data) {
  return record(100, data);
}

state_entry entry(const std::string& origin, uint64_t seq, uint64_t hlc,
                  const std::string& key, const std::string& data,
                  const std::string& table = "tasks") {
  return {table, key, record(data), false, hlc, origin, seq};
}

state_entry tombstone(const std::string& origin, uint64_t seq, uint64_t hlc,
                      const std::string& key) {
  return {"tasks", key, "", true, hlc, origin, seq};
}

local_write put(const std::string& key, const std::string& data) {
  return {"tasks", key, record(data)};
}

local_write erase(const std::string& key) {
  return {"tasks", key, std::nullopt};
}

std::vector<uint64_t> seqs(const std::vector<state_entry>& entries) {
  std::vector<uint64_t> out;
  for (const auto& e : entries)
    out.push_back(e.seq);
  return out;
}

bool mentions(const std::vector<std::string>& sentences, const std::string& part) {
  return std::any_of(sentences.begin(), sentences.end(), [&](const auto& s) {
    return s.find(part) != std::string::npos;
  });
}

std::vector<state_entry> log_of(node& n, const std::string& origin,
                                uint64_t after = 0, size_t limit = 1'000'000) {
  auto got = n.state->log_since(origin, after, limit);
  REQUIRE_MESSAGE(got, brd::describe(got.error()));
  return *got;
}

} // namespace

// -- local commits ------------------------------------------------------------

TEST_CASE("commit assigns consecutive seqs and the writes survive a reopen") {
  temp_dir tmp;
  node a{tmp, "a"};
  auto first = a.commit({put("t1", "one"), put("t2", "two")});
  auto second = a.commit({put("t3", "three")});
  CHECK(seqs(first) == std::vector<uint64_t>{1, 2});
  CHECK(seqs(second) == std::vector<uint64_t>{3});
  CHECK(first[0].origin == "a");
  CHECK(first[1].hlc > first[0].hlc);
  CHECK(second[0].hlc > first[1].hlc);
  CHECK(a.state->vv().at("a") == 3);
  auto last_hlc = second[0].hlc;

  a.reopen();
  CHECK(a.state->vv().at("a") == 3);
  CHECK(a.value_of("tasks", "t1") == record("one"));
  CHECK(a.value_of("tasks", "t3") == record("three"));
  CHECK(seqs(log_of(a, "a")) == std::vector<uint64_t>{1, 2, 3});
  auto third = a.commit({put("t4", "four")});
  CHECK(seqs(third) == std::vector<uint64_t>{4});
  CHECK(third[0].hlc > last_hlc);
}

TEST_CASE("acknowledged commits survive a kill -9 of the process") {
  temp_dir tmp;
  auto dir = (tmp.path / "a").string();
  int acks[2];
  REQUIRE(::pipe(acks) == 0);
  auto child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The writer: commits batches of 100 and acknowledges each after commit().
    ::close(acks[0]);
    auto db = store::open(dir, brd::io::state_column_families());
    auto st = db ? state_store::open(**db, "a", fleet) : caf::error{};
    if (!st)
      ::_exit(1);
    for (uint64_t n = 0;; ++n) {
      std::vector<local_write> writes;
      for (int i = 0; i < 100; ++i)
        writes.push_back(put("k" + std::to_string(n * 100 + i), "x"));
      auto done = (*st)->commit(writes);
      if (!done)
        ::_exit(1);
      auto last = done->back().seq;
      if (::write(acks[1], &last, sizeof(last)) != sizeof(last))
        ::_exit(1);
    }
  }
  ::close(acks[1]);
  uint64_t acked = 0, got = 0;
  while (acked < 2'000 && ::read(acks[0], &got, sizeof(got)) == sizeof(got))
    acked = got;
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(acks[0]);
  REQUIRE(acked >= 2'000);
  CHECK(WIFSIGNALED(status));
  node a{tmp, "a"};
  CHECK(a.state->vv().at("a") >= acked);
  CHECK(a.value_of("tasks", "k" + std::to_string(acked - 1)) == record("x"));
  CHECK(seqs(a.commit({put("after", "x")}))[0] == a.state->vv().at("a"));
}

TEST_CASE("an unsynced commit is readable but reaches the version vector and "
          "the log readers only once marked durable") {
  temp_dir tmp;
  node a{tmp, "a"};
  a.commit({put("t1", "one")});
  auto pending = a.state->commit({put("t2", "two"), put("t3", "three")}, false);
  REQUIRE_MESSAGE(pending, brd::describe(pending.error()));
  CHECK(seqs(*pending) == std::vector<uint64_t>{2, 3});
  CHECK(a.value_of("tasks", "t3") == record("three"));
  CHECK(a.state->vv().at("a") == 1);
  CHECK(seqs(log_of(a, "a")) == std::vector<uint64_t>{1});
  auto delta = a.state->missing_for({}, 100);
  REQUIRE(delta);
  CHECK(seqs(delta->entries) == std::vector<uint64_t>{1});
  // Relayed copies of our own durable entries change nothing meanwhile.
  auto relayed = a.state->apply(log_of(a, "a"));
  REQUIRE(relayed);
  CHECK(relayed->applied.empty());
  CHECK(a.state->vv().at("a") == 1);
  // The next commit takes the next seq, durable or not.
  auto next = a.state->commit({put("t4", "four")}, false);
  REQUIRE(next);
  CHECK(seqs(*next) == std::vector<uint64_t>{4});

  REQUIRE_FALSE(a.state->sync());
  a.state->mark_durable(4);
  CHECK(a.state->vv().at("a") == 4);
  CHECK(seqs(log_of(a, "a")) == std::vector<uint64_t>{1, 2, 3, 4});
  a.reopen();
  CHECK(a.state->vv().at("a") == 4);
  CHECK(seqs(a.commit({put("t5", "five")})) == std::vector<uint64_t>{5});
}

TEST_CASE("commit refuses a bad write as a whole and writes nothing") {
  temp_dir tmp;
  node a{tmp, "a"};
  auto bad_value = a.state->commit({put("t1", "ok"), {"tasks", "t2", "\x01\x02"}});
  REQUIRE_FALSE(bad_value);
  CHECK(has_code(bad_value.error(), brd_errc::io_failure));
  CHECK(brd::describe(bad_value.error()).find("corrupt value") != std::string::npos);
  auto too_new = a.state->commit({{"tasks", "t3", record(200, "x")}});
  REQUIRE_FALSE(too_new);
  CHECK(brd::describe(too_new.error()).find("unknown schema version 200")
        != std::string::npos);
  auto no_table = a.state->commit({{"log", "t4", record("x")}});
  REQUIRE_FALSE(no_table);
  CHECK(has_code(no_table.error(), brd_errc::store_failure));
  CHECK(a.value_of("tasks", "t1") == std::nullopt);
  CHECK(a.state->vv().count("a") == 0);
  CHECK(seqs(a.commit({put("t1", "ok")})) == std::vector<uint64_t>{1});
}

TEST_CASE("a record of major version 1 with unknown fields is stored as is") {
  temp_dir tmp;
  node a{tmp, "a"};
  auto newer_minor = record(199, "from newer code");
  a.commit({{"deployments", "web", newer_minor}});
  CHECK(a.value_of("deployments", "web") == newer_minor);
}

// -- applying entries from peers -----------------------------------------------

TEST_CASE("merge: the higher hlc wins and an older entry applied later loses") {
  temp_dir tmp;
  node c{tmp, "c"};
  auto result = c.apply({entry("a", 1, 200, "k", "new from a")});
  CHECK(result.changed.size() == 1);
  result = c.apply({entry("b", 1, 100, "k", "old from b")});
  CHECK(result.applied.size() == 1); // in the log, for relay ...
  CHECK(result.changed.empty());     // ... but the row keeps a's value
  CHECK(c.value_of("tasks", "k") == record("new from a"));
  CHECK(c.state->vv().at("b") == 1);
  c.apply({entry("b", 2, 300, "k", "newer from b")});
  CHECK(c.value_of("tasks", "k") == record("newer from b"));
}

TEST_CASE("merge: with equal hlc the higher origin name wins on every node") {
  temp_dir tmp;
  node x{tmp, "c"};
  auto from_a = entry("a", 1, 500, "k", "a's");
  auto from_b = entry("b", 1, 500, "k", "b's");
  x.apply({from_a});
  x.apply({from_b});
  CHECK(x.value_of("tasks", "k") == record("b's"));
  x.wipe();
  x.apply({from_b, from_a}); // the other order, in one batch
  CHECK(x.value_of("tasks", "k") == record("b's"));
}

TEST_CASE("merge: a batch of several entries for stored keys keeps the newest of each") {
  temp_dir tmp;
  node c{tmp, "c"};
  c.apply({entry("a", 1, 500, "k1", "a's k1"), entry("a", 2, 500, "k2", "a's k2")});
  // Older, newer and older again for k1; only older ones for k2; a new k3.
  auto result = c.apply({entry("b", 1, 400, "k1", "b's old k1"),
                         entry("b", 2, 600, "k1", "b's new k1"),
                         entry("b", 3, 450, "k2", "b's old k2"),
                         entry("b", 4, 550, "k1", "b's k1 between"),
                         entry("b", 5, 100, "k3", "b's k3")});
  CHECK(result.applied.size() == 5);
  REQUIRE(result.changed.size() == 2);
  CHECK(result.changed[0].seq == 2);
  CHECK(result.changed[1].seq == 5);
  CHECK(c.value_of("tasks", "k1") == record("b's new k1"));
  CHECK(c.value_of("tasks", "k2") == record("a's k2"));
  CHECK(c.value_of("tasks", "k3") == record("b's k3"));
}

TEST_CASE("re-applying entries changes nothing and returns nothing") {
  temp_dir tmp;
  node b{tmp, "b"};
  std::vector<state_entry> batch{entry("a", 1, 10, "k1", "x"),
                                 entry("a", 2, 20, "k2", "y")};
  CHECK(b.apply(batch).applied.size() == 2);
  auto digest = b.digest();
  auto again = b.apply(batch);
  CHECK(again.applied.empty());
  CHECK(again.refused.empty());
  CHECK(b.digest() == digest);
  CHECK(b.state->vv().at("a") == 2);
  CHECK(seqs(log_of(b, "a")) == std::vector<uint64_t>{1, 2});
}

TEST_CASE("a gap is refused with a sentence; later entries of that origin wait "
          "while other origins apply") {
  temp_dir tmp;
  node c{tmp, "c"};
  auto result = c.apply({entry("a", 1, 10, "a1", "x"), entry("a", 3, 30, "a3", "x"),
                         entry("b", 1, 15, "b1", "x"), entry("a", 4, 40, "a4", "x"),
                         entry("b", 2, 25, "b2", "x")});
  REQUIRE(result.refused.size() == 1);
  CHECK(result.refused[0] == "gap in sequence from a: expected 2, got 3");
  CHECK(result.applied.size() == 3);
  CHECK(c.state->vv().at("a") == 1);
  CHECK(c.state->vv().at("b") == 2);
  CHECK(c.value_of("tasks", "a3") == std::nullopt);
  CHECK(c.value_of("tasks", "a4") == std::nullopt);
  CHECK(c.value_of("tasks", "b2") == record("x"));
  // Once the missing entry comes, the rest follow.
  result = c.apply({entry("a", 2, 20, "a2", "x"), entry("a", 3, 30, "a3", "x")});
  CHECK(result.refused.empty());
  CHECK(c.state->vv().at("a") == 3);
}

TEST_CASE("an entry stamped over a minute ahead of our clock is refused and halts its origin; "
          "a snapshot with such a row too") {
  temp_dir tmp;
  node c{tmp, "c"};
  auto now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  auto near = brd::make_hlc(now + 5'000, 0); // a few seconds of skew: fine
  auto ahead = brd::make_hlc(now + 3'600'000, 0);
  auto result = c.apply({entry("a", 1, near, "a1", "x"), entry("a", 2, ahead, "a2", "x"),
                         entry("a", 3, near + 1, "a3", "x"), entry("b", 1, near, "b1", "x")});
  REQUIRE(result.refused.size() == 1);
  CHECK(mentions(result.refused, "clock ahead"));
  CHECK(mentions(result.refused, "fix: check NTP on a"));
  CHECK(c.state->vv().at("a") == 1);
  CHECK(c.state->vv().at("b") == 1);
  CHECK(c.value_of("tasks", "a2") == std::nullopt);
  CHECK(c.value_of("tasks", "a3") == std::nullopt);
  // Our clock did not follow the bad stamp: a local write still wins later.
  auto mine = c.state->commit({put("k", "v")}, true);
  REQUIRE(mine);
  CHECK(brd::hlc_wall_ms(mine->front().hlc) < now + brd::io::max_clock_ahead_ms);
  state_snapshot bad{"b", {{"b", 2}}, {entry("b", 2, ahead, "k", "x")}};
  auto snap = c.state->apply_snapshot(bad);
  REQUIRE_FALSE(snap);
  CHECK(brd::describe(snap.error()).find("clock ahead") != std::string::npos);
}

TEST_CASE("entries from a node that is not in the config are refused") {
  temp_dir tmp;
  node c{tmp, "c"};
  auto result = c.apply({entry("mallory", 1, 10, "k", "x"),
                         entry("mallory", 2, 20, "k2", "x"),
                         entry("a", 1, 10, "k3", "x")});
  REQUIRE(result.refused.size() == 1);
  CHECK(mentions(result.refused, "entry from unknown node 'mallory'"));
  CHECK(result.applied.size() == 1);
  CHECK(c.value_of("tasks", "k") == std::nullopt);
  CHECK(c.state->vv().count("mallory") == 0);
}

TEST_CASE("corrupt values, unknown schema versions and unknown tables are "
          "refused and stop their origin") {
  temp_dir tmp;
  node c{tmp, "c"};
  auto truncated = record("payload");
  truncated.resize(truncated.size() - 3);
  auto corrupt = entry("a", 1, 10, "k1", "x");
  corrupt.value = truncated;
  auto not_a_map = entry("b", 1, 10, "k2", "x");
  not_a_map.value = "\x93\x01\x02\x03"; // an array
  auto too_new = entry("c", 1, 10, "k3", "x");
  too_new.value = record(250, "x");
  auto result = c.apply({corrupt, entry("a", 2, 20, "k1b", "x"), not_a_map,
                         too_new});
  CHECK(result.applied.empty());
  REQUIRE(result.refused.size() == 3);
  CHECK(result.refused[0].find("corrupt value") != std::string::npos);
  CHECK(result.refused[1].find("corrupt value") != std::string::npos);
  CHECK(result.refused[2].find("unknown schema version 250") != std::string::npos);
  auto no_table = c.apply({entry("a", 1, 10, "k", "x", "meta")});
  CHECK(mentions(no_table.refused, "unknown table 'meta'"));
  CHECK(c.state->vv().empty());
  CHECK(c.value_of("tasks", "k1") == std::nullopt);
}

TEST_CASE("a node's own entries relayed back to it are skipped") {
  temp_dir tmp;
  node a{tmp, "a"};
  node b{tmp, "b"};
  auto mine = a.commit({put("k", "a's")});
  b.apply(mine);
  auto echo = a.apply(log_of(b, "a"));
  CHECK(echo.applied.empty());
  CHECK(echo.refused.empty());
}

// -- deletes ----------------------------------------------------------------------

TEST_CASE("a tombstone hides the row from get and scan, and an older write "
          "does not bring it back") {
  temp_dir tmp;
  node c{tmp, "c"};
  c.apply({entry("a", 1, 10, "job-1", "x"), entry("a", 2, 11, "job-2", "y")});
  c.apply({tombstone("b", 1, 50, "job-1")});
  CHECK(c.value_of("tasks", "job-1") == std::nullopt);
  auto rows = c.state->scan("tasks", "job-", 100);
  REQUIRE(rows);
  REQUIRE(rows->size() == 1);
  CHECK((*rows)[0].key == "job-2");
  auto late = c.apply({entry("a", 3, 40, "job-1", "stale")});
  CHECK(late.applied.size() == 1);
  CHECK(late.changed.empty());
  CHECK(c.value_of("tasks", "job-1") == std::nullopt);
  // A local delete works the same way.
  auto del = c.commit({erase("job-2")});
  CHECK(del[0].tombstone);
  CHECK(c.value_of("tasks", "job-2") == std::nullopt);
  rows = c.state->scan("tasks", "", 100);
  REQUIRE(rows);
  CHECK(rows->empty());
}

// -- the log -------------------------------------------------------------------

TEST_CASE("entries B applied from A can be fetched from B's log for C") {
  temp_dir tmp;
  node a{tmp, "a"};
  node b{tmp, "b"};
  node c{tmp, "c"};
  auto written = a.commit({put("k1", "1"), put("k2", "2"), put("k3", "3")});
  b.apply(written);
  auto relayed = b.state->log_since("a", 1, 10);
  REQUIRE(relayed);
  CHECK(seqs(*relayed) == std::vector<uint64_t>{2, 3});
  CHECK((*relayed)[0].value == record("2"));
  CHECK((*relayed)[0].origin == "a");
  c.apply(log_of(b, "a"));
  CHECK(c.state->vv().at("a") == 3);
  CHECK(c.digest() == a.digest());
  auto none = b.state->log_since("a", 3, 10);
  REQUIRE(none);
  CHECK(none->empty());
}

TEST_CASE("a log entry whose row a newer write replaced is read back skipped, and "
          "applying it changes no row") {
  temp_dir tmp;
  node a{tmp, "a"};
  node b{tmp, "b"};
  node c{tmp, "c"};
  a.commit({put("k", "first")});          // a:1
  a.commit({put("k", "second")});         // a:2 replaces a:1's row
  auto newer = b.commit({put("j", "b's")}); // b:1
  a.apply(newer);
  a.commit({erase("j")});                 // a:3, a tombstone newer than b:1
  auto log = log_of(a, "a");
  REQUIRE(log.size() == 3);
  CHECK(log[0].skipped);
  CHECK(log[0].value.empty());
  CHECK(!log[1].skipped);
  CHECK(log[1].value == record("second"));
  CHECK(log[2].tombstone);
  CHECK(!log[2].skipped);
  // b:1, relayed by a, was replaced there by a:3's tombstone.
  auto relayed = log_of(a, "b");
  REQUIRE(relayed.size() == 1);
  CHECK(relayed[0].skipped);

  auto result = c.apply(log);
  CHECK(seqs(result.applied) == std::vector<uint64_t>{1, 2, 3});
  CHECK(seqs(result.changed) == std::vector<uint64_t>{2, 3});
  CHECK(c.value_of("tasks", "k") == record("second"));
  result = c.apply(relayed);
  CHECK(result.changed.empty());
  CHECK(c.state->vv().at("a") == 3);
  CHECK(c.state->vv().at("b") == 1);
  CHECK(!c.value_of("tasks", "j"));
  CHECK(c.digest() == a.digest());
  // c relays a's log as it holds it: the skipped entry stays skipped.
  auto again = log_of(c, "a");
  REQUIRE(again.size() == 3);
  CHECK(again[0].skipped);
  CHECK(again[1].value == record("second"));
}

TEST_CASE("an entry replaced by a write of ours not yet durable waits for it") {
  temp_dir tmp;
  node a{tmp, "a"};
  a.commit({put("k", "first")});               // a:1, synced
  a.apply({entry("b", 1, 1, "j", "from b")}); // b:1
  auto later = a.state->commit({put("k", "second"), put("j", "ours")}, false); // a:2, a:3
  REQUIRE(later);
  // A power cut could still lose a:2 and a:3: a:1 and b:1 are not skipped yet.
  CHECK(log_of(a, "a").empty());
  CHECK(log_of(a, "b").empty());
  auto delta = a.state->missing_for({}, 100);
  REQUIRE(delta);
  CHECK(delta->entries.empty());
  CHECK(!delta->needs_snapshot);
  REQUIRE(!a.state->sync());
  a.state->mark_durable(3);
  auto log = log_of(a, "a");
  REQUIRE(log.size() == 3);
  CHECK(log[0].skipped);
  CHECK(log[1].value == record("second"));
  CHECK(log[2].value == record("ours"));
  auto relayed = log_of(a, "b");
  REQUIRE(relayed.size() == 1);
  CHECK(relayed[0].skipped);
}

TEST_CASE("an entry that lost the merge rule on a peer is relayed from its log skipped") {
  temp_dir tmp;
  node b{tmp, "b"};
  node c{tmp, "c"};
  b.apply({entry("a", 1, 200, "k", "new from a")});
  b.apply({entry("c", 1, 100, "k", "old from c")}); // loses: a's stamp is higher
  auto relayed = log_of(b, "c");
  REQUIRE(relayed.size() == 1);
  CHECK(relayed[0].skipped);
  // A skipped entry still counts: the next one of its origin follows it.
  node d{tmp, "a"};
  auto result = d.apply(relayed);
  CHECK(d.state->vv().at("c") == 1);
  CHECK(result.changed.empty());
  CHECK(!d.value_of("tasks", "k"));
}

TEST_CASE("log entries written with their value (before the log referred to rows) "
          "are read with it") {
  temp_dir tmp;
  node a{tmp, "a"};
  a.commit({put("k", "now")});
  // Rewrite a:1 as older code wrote it: the value in the log entry.
  brd::io::log_envelope old{1, "tasks", "k", 0, "a", 1, false, record("then"), false};
  auto log = log_of(a, "a");
  REQUIRE(log.size() == 1);
  old.hlc = log[0].hlc;
  std::string key = std::string{"a"} + '\0' + std::string(7, '\0') + '\1';
  REQUIRE(!a.db->put("log", key, brd::io::encode(old)));
  log = log_of(a, "a");
  REQUIRE(log.size() == 1);
  CHECK(!log[0].skipped);
  CHECK(log[0].value == record("then"));
}

TEST_CASE("missing_for returns what a peer lacks across origins, up to a limit") {
  temp_dir tmp;
  node a{tmp, "a"};
  node c{tmp, "c"};
  a.commit({put("a1", "x"), put("a2", "x"), put("a3", "x")});
  a.apply({entry("b", 1, 1, "b1", "x"), entry("b", 2, 2, "b2", "x")});
  auto all = a.state->missing_for({{"a", 1}}, 100);
  REQUIRE(all);
  CHECK_FALSE(all->needs_snapshot);
  REQUIRE(all->entries.size() == 4);
  CHECK(all->entries[0].origin == "a");
  CHECK(all->entries[0].seq == 2);
  CHECK(all->entries[3].origin == "b");
  CHECK(all->entries[3].seq == 2);
  auto some = a.state->missing_for({}, 2);
  REQUIRE(some);
  CHECK(some->entries.size() == 2);
  auto nothing = a.state->missing_for({{"a", 3}, {"b", 2}}, 100);
  REQUIRE(nothing);
  CHECK(nothing->entries.empty());
  CHECK_FALSE(nothing->needs_snapshot);
  c.apply(all->entries); // c lacks a's seq 1: the gap is refused
  CHECK(c.state->vv().count("a") == 0);
  CHECK(c.state->vv().at("b") == 2);
}

TEST_CASE("truncate drops only what every peer has; a peer behind then needs "
          "a snapshot") {
  temp_dir tmp;
  node a{tmp, "a"};
  a.commit({put("k1", "x"), put("k2", "x"), put("k3", "x"), put("k4", "x")});
  // Too few version vectors: a peer's state is unknown, nothing goes.
  auto kept = a.state->truncate({{{"a", 4}}});
  REQUIRE(kept);
  CHECK(kept->dropped == 0);
  auto dropped = a.state->truncate({{{"a", 2}}, {{"a", 3}}});
  REQUIRE(dropped);
  CHECK(dropped->dropped == 2);
  CHECK(dropped->through == version_vector{{"a", 2}});
  CHECK(seqs(log_of(a, "a", 2)) == std::vector<uint64_t>{3, 4});
  auto gone = a.state->log_since("a", 1, 10);
  REQUIRE_FALSE(gone);
  CHECK(has_code(gone.error(), brd_errc::store_failure));
  CHECK(brd::describe(gone.error()).find("truncated") != std::string::npos);
  auto behind = a.state->missing_for({{"a", 1}}, 100);
  REQUIRE(behind);
  CHECK(behind->needs_snapshot);
  auto current = a.state->missing_for({{"a", 2}}, 100);
  REQUIRE(current);
  CHECK_FALSE(current->needs_snapshot);
  CHECK(current->entries.size() == 2);
  // Rows are not touched; a second truncate with the same views drops nothing.
  CHECK(a.value_of("tasks", "k1") == record("x"));
  CHECK(a.state->truncate({{{"a", 2}}, {{"a", 3}}})->dropped == 0);
}

TEST_CASE("truncate counts what it drops without walking the log, gaps a snapshot left "
          "included, also after a reopen") {
  temp_dir tmp;
  node a{tmp, "a"};
  node b{tmp, "b"};
  std::vector<state_entry> first;
  for (int i = 1; i <= 12; ++i) {
    auto e = a.commit({put("k" + std::to_string(i), "x")});
    if (i <= 3)
      first.insert(first.end(), e.begin(), e.end());
  }
  b.apply(first); // a's 1..3 through the log
  // A snapshot of a (its vector a=12) leaves b's log without a's 4..12.
  REQUIRE(b.state->apply_snapshot(*a.state->snapshot()));
  for (int i = 13; i <= 14; ++i)
    b.apply(a.commit({put("k" + std::to_string(i), "x")}));
  CHECK(b.state->log_entries() == 5); // 1..3, 13, 14
  auto checked = [&](node& n, uint64_t through, size_t dropped, size_t left) {
    auto cut = n.state->truncate({{{"a", through}}, {{"a", through}}}, {});
    REQUIRE(cut);
    CHECK(cut->dropped == dropped);
    CHECK(n.state->log_entries() == left);
  };
  SUBCASE("in one run") {
    checked(b, 2, 2, 3);  // 1, 2
    checked(b, 13, 2, 1); // 3 and 13: the gap 4..12 is not counted
    checked(b, 14, 1, 0);
  }
  SUBCASE("across a reopen (the gap is found by the count at open)") {
    checked(b, 2, 2, 3);
    b.reopen();
    CHECK(b.state->log_entries() == 3);
    checked(b, 13, 2, 1);
    checked(b, 14, 1, 0);
  }
}

TEST_CASE("past log_keep entries, truncate drops what every connected peer holds, "
          "tombstones excepted; a peer away gets a snapshot") {
  temp_dir tmp;
  node a{tmp, "a"};
  for (int i = 1; i <= 10; ++i)
    a.commit({put("k" + std::to_string(i), "x")});
  a.commit({erase("k1")}); // seq 11
  CHECK(a.state->log_entries() == 11);
  // c is away (its vector unknown); b is connected and holds up to 9.
  auto cut = a.state->truncate({{{"a", 9}}}, {{{"a", 9}}}, 4);
  REQUIRE(cut);
  CHECK(cut->dropped == 7); // 1..7: not the newest 4 (8..11)
  CHECK(cut->through == version_vector{{"a", 7}});
  CHECK(seqs(log_of(a, "a", 7)) == std::vector<uint64_t>{8, 9, 10, 11});
  CHECK(a.state->log_entries() == 4);
  // Never what a connected peer still lacks.
  for (int i = 12; i <= 20; ++i)
    a.commit({put("k" + std::to_string(i), "x")});
  cut = a.state->truncate({{{"a", 9}}}, {{{"a", 9}}}, 4);
  REQUIRE(cut);
  CHECK(cut->dropped == 2);
  CHECK(seqs(log_of(a, "a", 9)).front() == 10);
  // With no peer connected, only the newest 4 stay.
  cut = a.state->truncate({}, {}, 4);
  REQUIRE(cut);
  CHECK(seqs(log_of(a, "a", 16)) == std::vector<uint64_t>{17, 18, 19, 20});
  a.apply({entry("b", 1, 1, "b1", "x")});
  CHECK(a.state->log_entries() == 5);
  a.reopen(); // counted again from the log
  CHECK(a.state->log_entries() == 5);
  // The delete of k1 is still there for c (a snapshot carries it) ...
  auto snap = a.state->snapshot();
  REQUIRE(snap);
  CHECK(std::any_of(snap->rows.begin(), snap->rows.end(),
                    [](const auto& r) { return r.key == "k1" && r.tombstone; }));
  // ... and c, holding 3, now needs that snapshot.
  auto behind = a.state->missing_for({{"a", 3}}, 100);
  REQUIRE(behind);
  CHECK(behind->needs_snapshot);
  // keep = 0 is no bound.
  a.commit({put("k21", "x")});
  cut = a.state->truncate({}, {}, 0);
  REQUIRE(cut);
  CHECK(cut->dropped == 0);
}

TEST_CASE("truncate drops tombstones every peer has, but not while a peer "
          "holds entries this node lacks") {
  temp_dir tmp;
  node a{tmp, "a"};
  a.commit({put("k1", "x"), put("k2", "x")});
  a.commit({erase("k1"), erase("k2")}); // seqs 3 and 4
  // b reports an entry of c that a has not seen: keep the tombstones.
  REQUIRE(a.state->truncate({{{"a", 4}, {"c", 1}}, {{"a", 4}}}));
  auto snap = a.state->snapshot();
  REQUIRE(snap);
  CHECK(snap->rows.size() == 2);
  // Now every peer has seq 3 (k1's delete) but not seq 4.
  REQUIRE(a.state->truncate({{{"a", 4}}, {{"a", 3}}}));
  snap = a.state->snapshot();
  REQUIRE(snap);
  REQUIRE(snap->rows.size() == 1);
  CHECK(snap->rows[0].key == "k2");
  CHECK(snap->rows[0].tombstone);
}

// -- snapshots and digests -------------------------------------------------------

TEST_CASE("snapshot and apply_snapshot converge two stores, tombstones included") {
  temp_dir tmp;
  node a{tmp, "a"};
  node b{tmp, "b"};
  // observe() orders the writes as if the nodes had talked in between.
  b.commit({put("only-b", "y"), put("doomed", "old")});
  a.state->clock().observe(b.state->clock().last());
  a.commit({put("shared", "a's"), put("only-a", "x")});
  a.commit({erase("doomed")});
  b.state->clock().observe(a.state->clock().last());
  b.commit({put("shared", "b's, later")});
  b.commit({erase("only-b")});
  auto snap_a = a.state->snapshot();
  REQUIRE(snap_a);
  CHECK(snap_a->from == "a");
  CHECK(snap_a->vv.at("a") == 3);
  auto changed_b = b.state->apply_snapshot(*snap_a);
  REQUIRE(changed_b);
  CHECK_FALSE(changed_b->empty());
  auto snap_b = b.state->snapshot();
  REQUIRE(snap_b);
  REQUIRE(a.state->apply_snapshot(*snap_b));
  CHECK(a.digest() == b.digest());
  CHECK(a.state->vv() == b.state->vv());
  CHECK(a.value_of("tasks", "shared") == record("b's, later"));
  CHECK(a.value_of("tasks", "only-b") == std::nullopt);
  CHECK(b.value_of("tasks", "only-a") == record("x"));
  // "doomed": a's delete is newer than b's write, on both nodes.
  CHECK(a.value_of("tasks", "doomed") == std::nullopt);
  CHECK(b.value_of("tasks", "doomed") == std::nullopt);
  // Applying the same snapshot again changes nothing.
  auto again = b.state->apply_snapshot(*snap_a);
  REQUIRE(again);
  CHECK(again->empty());
}

TEST_CASE("a snapshot in chunks covers every row once, and only its last chunk raises the "
          "version vector") {
  temp_dir tmp;
  node a{tmp, "a"};
  node b{tmp, "b"};
  std::vector<local_write> writes;
  for (int i = 0; i < 40; ++i)
    writes.push_back(put("task-" + std::to_string(i), std::string(100, 'x')));
  for (int i = 0; i < 10; ++i)
    writes.push_back({"alerts", "alert-" + std::to_string(i), record("a")});
  a.commit(writes);
  a.commit({erase("task-7")});
  auto whole = a.state->snapshot();
  REQUIRE(whole);
  REQUIRE(whole->last);
  REQUIRE(whole->rows.size() == 50); // the tombstone of task-7 included

  state_store::snapshot_cursor at;
  std::vector<brd::state_entry> rows;
  size_t chunks = 0;
  for (bool last = false; !last;) {
    auto chunk = a.state->snapshot(at, 1000);
    REQUIRE(chunk);
    REQUIRE(++chunks < 100);
    last = chunk->last;
    CHECK((!chunk->rows.empty() || last)); // the last may only carry the vector
    CHECK(chunk->vv.empty() == !last);
    rows.insert(rows.end(), chunk->rows.begin(), chunk->rows.end());
    if (chunks == 1) // a write after the first chunk: the vector stays that of the start
      a.commit({put("later", "y")});
    REQUIRE(b.state->apply_snapshot(*chunk));
    if (!last)
      CHECK(b.state->vv().empty());
    else
      CHECK(b.state->vv().at("a") == 51);
  }
  MESSAGE(rows.size() << " rows in " << chunks << " chunks of about 1000 bytes");
  CHECK(chunks > 5);
  std::vector<std::pair<std::string, std::string>> want, got;
  for (const auto& r : whole->rows)
    want.emplace_back(r.table, r.key);
  for (const auto& r : rows)
    if (r.key != "later")
      got.emplace_back(r.table, r.key);
  CHECK(got == want);
  // b now takes a's later entry from the log, as a peer would send it.
  b.apply(a.state->log_since("a", 51, 10).value());
  CHECK(a.digest() == b.digest());
  CHECK(b.value_of("tasks", "task-7") == std::nullopt);
  CHECK(b.value_of("alerts", "alert-3") == record("a"));
}

TEST_CASE("a node restored from a snapshot never reuses one of its own seqs") {
  temp_dir tmp;
  node a{tmp, "a"};
  node b{tmp, "b"};
  b.apply(a.commit({put("k1", "x"), put("k2", "x"), put("k3", "x")}));
  auto snap = b.state->snapshot();
  REQUIRE(snap);
  // a loses its data and is restored from b's snapshot.
  a.wipe();
  REQUIRE(a.state->apply_snapshot(*snap));
  CHECK(a.value_of("tasks", "k2") == record("x"));
  CHECK(seqs(a.commit({put("k4", "x")})) == std::vector<uint64_t>{4});
  a.reopen();
  CHECK(seqs(a.commit({put("k5", "x")})) == std::vector<uint64_t>{5});
}

TEST_CASE("a snapshot with an unknown table, origin or a corrupt value is refused") {
  temp_dir tmp;
  node a{tmp, "a"};
  state_snapshot bad{"b", {{"b", 1}}, {entry("b", 1, 10, "k", "x", "secrets")}};
  auto result = a.state->apply_snapshot(bad);
  REQUIRE_FALSE(result);
  CHECK(brd::describe(result.error()).find("unknown table 'secrets'")
        != std::string::npos);
  bad = {"b", {{"mallory", 1}}, {}};
  CHECK_FALSE(a.state->apply_snapshot(bad));
  auto corrupt = entry("b", 1, 10, "k", "x");
  corrupt.value = "garbage";
  bad = {"b", {{"b", 1}}, {corrupt}};
  CHECK_FALSE(a.state->apply_snapshot(bad));
  CHECK(a.state->vv().empty());
}

TEST_CASE("digests are equal when the same entries arrive in different "
          "interleavings") {
  temp_dir tmp;
  node x{tmp, "c"};
  node y{tmp, "b"};
  std::vector<state_entry> from_a, from_b;
  for (uint64_t i = 1; i <= 50; ++i) {
    auto key = "k" + std::to_string(i % 7);
    auto data = std::to_string(i);
    from_a.push_back(i % 5 == 0 ? tombstone("a", i, 1000 + 2 * i, key)
                                : entry("a", i, 1000 + 2 * i, key, "a" + data));
    from_b.push_back(entry("b", i, 1000 + 3 * i, key, "b" + data));
  }
  x.apply(from_a);
  x.apply(from_b);
  // y: interleaved one by one, b first.
  for (size_t i = 0; i < from_a.size(); ++i) {
    y.apply({from_b[i]});
    y.apply({from_a[i]});
  }
  CHECK(x.digest() == y.digest());
  CHECK(x.digest().at("tasks").size() == 16);
  CHECK(x.digest().at("tasks") != x.digest().at("nodes"));
  y.apply({entry("a", 51, 9999, "k1", "one more")});
  CHECK(x.digest() != y.digest());
}

// -- speed ----------------------------------------------------------------------

TEST_CASE("throughput of synced commits (printed, not asserted)") {
  temp_dir tmp;
  node a{tmp, "a"};
  const std::string payload(189, 'p'); // 200 bytes with the msgpack map
  const size_t total = 10'000, per_commit = 500;
  auto start = std::chrono::steady_clock::now();
  for (size_t done = 0; done < total; done += per_commit) {
    std::vector<local_write> writes;
    for (size_t i = 0; i < per_commit; ++i)
      writes.push_back(put("key-" + std::to_string(done + i), payload));
    a.commit(std::move(writes));
  }
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                               - start)
                   .count();
  CHECK(a.state->vv().at("a") == total);
  MESSAGE("commit(): " << total << " writes of " << record(payload).size()
                       << " bytes in batches of " << per_commit << ": "
                       << static_cast<long>(total / seconds) << " writes/s");
  node b{tmp, "b"};
  start = std::chrono::steady_clock::now();
  for (uint64_t after = 0; after < total; after += per_commit)
    b.apply(log_of(a, "a", after, per_commit));
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                          - start)
              .count();
  CHECK(b.digest() == a.digest());
  MESSAGE("log_since() + apply(): " << static_cast<long>(total / seconds)
                                    << " entries/s");
}
