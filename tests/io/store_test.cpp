// The RocksDB store and the record codec (both live in brd_store).
#include "io/codec.hpp"
#include "io/store.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <doctest/doctest.h>
#include <msgpack.hpp>

#include "runtime/errors.hpp"
#include "../support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using brd::brd_errc;
using brd::io::batch;
using brd::io::node_record;
using brd::io::store;

using brd_test::temp_dir;

std::unique_ptr<store> open_store(const std::string& dir,
                                  std::vector<std::string> cfs = {"nodes",
                                                                  "tasks"}) {
  auto opened = store::open(dir, std::move(cfs));
  REQUIRE_MESSAGE(opened, brd::describe(opened.error()));
  return std::move(*opened);
}

std::optional<std::string> must_get(store& db, const char* cf, const char* key) {
  auto got = db.get(cf, key);
  REQUIRE_MESSAGE(got, brd::describe(got.error()));
  return *got;
}

} // namespace

// -- store --------------------------------------------------------------------

TEST_CASE("put, get and erase keep column families apart") {
  temp_dir tmp;
  auto db = open_store(tmp.sub("data"));
  CHECK_FALSE(db->put("nodes", "lucidia", "pi-1"));
  CHECK_FALSE(db->put("tasks", "lucidia", "deploy", false));
  CHECK(must_get(*db, "nodes", "lucidia") == "pi-1");
  CHECK(must_get(*db, "tasks", "lucidia") == "deploy");
  CHECK(must_get(*db, "nodes", "absent") == std::nullopt);
  CHECK_FALSE(db->erase("nodes", "lucidia"));
  CHECK(must_get(*db, "nodes", "lucidia") == std::nullopt);
  CHECK(must_get(*db, "tasks", "lucidia") == "deploy");
  CHECK_FALSE(db->erase("nodes", "never-written"));
  CHECK(db->dir() == tmp.sub("data"));
}

TEST_CASE("multi_get answers each key in order, absent and repeated keys too") {
  temp_dir tmp;
  auto db = open_store(tmp.sub("data"));
  CHECK_FALSE(db->put("tasks", "b", "2"));
  CHECK_FALSE(db->put("tasks", "a", "1", false));
  CHECK_FALSE(db->put("nodes", "c", "other family"));
  std::vector<std::string_view> keys{"b", "c", "a", "b"};
  auto got = db->multi_get("tasks", keys);
  REQUIRE(got);
  REQUIRE(got->size() == 4);
  CHECK((*got)[0] == "2");
  CHECK((*got)[1] == std::nullopt);
  CHECK((*got)[2] == "1");
  CHECK((*got)[3] == "2");
  auto none = db->multi_get("tasks", {});
  REQUIRE(none);
  CHECK(none->empty());
  auto unknown = db->multi_get("nope", keys);
  REQUIRE_FALSE(unknown);
  CHECK(to_string(unknown.error()).find("'nope'") != std::string::npos);
}

TEST_CASE("scan returns the keys with a prefix in key order up to a limit") {
  temp_dir tmp;
  auto db = open_store(tmp.sub("data"));
  for (auto key : {"node/c", "node/a", "nod", "nodf", "node/b", "other",
                   "\xff\xff" "a", "\xff\xff"})
    REQUIRE_FALSE(db->put("nodes", key, std::string{"v:"} + key));
  auto all = db->scan("nodes", "node/");
  REQUIRE(all);
  REQUIRE(all->size() == 3);
  CHECK((*all)[0] == store::key_value{"node/a", "v:node/a"});
  CHECK((*all)[1].first == "node/b");
  CHECK((*all)[2].first == "node/c");
  auto first_two = db->scan("nodes", "node/", 2);
  REQUIRE(first_two);
  CHECK(first_two->size() == 2);
  auto none = db->scan("nodes", "zzz");
  REQUIRE(none);
  CHECK(none->empty());
  auto everything = db->scan("nodes", "");
  REQUIRE(everything);
  CHECK(everything->size() == 8);
  auto high = db->scan("nodes", "\xff\xff");
  REQUIRE(high);
  CHECK(high->size() == 2);
  auto other_family = db->scan("tasks", "");
  REQUIRE(other_family);
  CHECK(other_family->empty());
}

TEST_CASE("a batch applies puts and erases across column families together") {
  temp_dir tmp;
  auto db = open_store(tmp.sub("data"));
  REQUIRE_FALSE(db->put("nodes", "old", "x"));
  batch b;
  b.put("nodes", "a", "1");
  b.put("tasks", "t1", "queued");
  b.erase("nodes", "old");
  CHECK(b.size() == 3);
  CHECK_FALSE(db->write(b, true));
  CHECK(must_get(*db, "nodes", "a") == "1");
  CHECK(must_get(*db, "tasks", "t1") == "queued");
  CHECK(must_get(*db, "nodes", "old") == std::nullopt);
  b.clear();
  CHECK(b.empty());
  CHECK_FALSE(db->write(b, false));
}

TEST_CASE("a batch naming an unknown column family writes nothing") {
  temp_dir tmp;
  auto db = open_store(tmp.sub("data"));
  batch b;
  b.put("nodes", "a", "1");
  b.put("deployments", "d1", "x");
  auto err = db->write(b, true);
  REQUIRE(err);
  CHECK(has_code(err, brd_errc::store_failure));
  CHECK(brd::describe(err).find("'deployments'") != std::string::npos);
  CHECK(must_get(*db, "nodes", "a") == std::nullopt);
}

TEST_CASE("an unknown column family is an error that names it") {
  temp_dir tmp;
  auto db = open_store(tmp.sub("data"));
  auto names_it = [](const caf::error& err) {
    return has_code(err, brd_errc::store_failure)
           && brd::describe(err).find("unknown column family 'nope'")
                != std::string::npos;
  };
  CHECK(names_it(db->put("nope", "k", "v")));
  CHECK(names_it(db->erase("nope", "k")));
  auto got = db->get("nope", "k");
  REQUIRE_FALSE(got);
  CHECK(names_it(got.error()));
  auto scanned = db->scan("nope", "");
  REQUIRE_FALSE(scanned);
  CHECK(names_it(scanned.error()));
}

TEST_CASE("a family written once does not keep the write-ahead log growing") {
  temp_dir tmp;
  auto dir = tmp.sub("data");
  auto db = open_store(dir);
  REQUIRE_FALSE(db->put("nodes", "once", "pins the first log file"));
  // 160 MB into the other family, 1 MB per batch, unsynced.
  std::string value(64 << 10, 'x');
  for (int i = 0; i < 160; ++i) {
    batch b;
    for (int j = 0; j < 16; ++j) {
      value[j] = static_cast<char>('a' + (i + j) % 26); // not all one value
      b.put("tasks", std::to_string(i) + "-" + std::to_string(j), value);
    }
    REQUIRE_FALSE(db->write(b, false));
  }
  auto wal_bytes = [&] {
    uintmax_t sum = 0;
    for (const auto& f : fs::directory_iterator(dir))
      if (f.path().extension() == ".log")
        sum += f.file_size();
    return sum;
  };
  // Flushes and file deletions run in the background.
  for (int i = 0; i < 100 && wal_bytes() > (96u << 20); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  MESSAGE("write-ahead log after 160 MB: " << (wal_bytes() >> 20) << " MB");
  CHECK(wal_bytes() <= (96u << 20));
  CHECK(must_get(*db, "nodes", "once") == "pins the first log file");
}

TEST_CASE("data survives closing and reopening the store") {
  temp_dir tmp;
  auto dir = tmp.sub("data");
  {
    auto db = open_store(dir);
    REQUIRE_FALSE(db->put("nodes", "durable", "yes"));
    REQUIRE_FALSE(db->put("tasks", "unsynced", "also", false));
  }
  // Reopening with fewer families still opens the ones on disk.
  auto db = open_store(dir, {"nodes"});
  CHECK(must_get(*db, "nodes", "durable") == "yes");
  CHECK(must_get(*db, "tasks", "unsynced") == "also");
}

TEST_CASE("a second open of the same directory is refused with store_locked") {
  temp_dir tmp;
  auto dir = tmp.sub("data");
  {
    auto first = open_store(dir);
    auto second = store::open(dir, {"nodes"});
    REQUIRE_FALSE(second);
    CHECK(has_code(second.error(), brd_errc::store_locked));
    auto text = brd::describe(second.error());
    CHECK(text.find("already in use") != std::string::npos);
    CHECK(text.find(dir) != std::string::npos);
    CHECK(text.find("(pid " + std::to_string(::getpid()) + ")")
          != std::string::npos);
    CHECK(text.find("--data-dir") != std::string::npos);
    // The refused open left the owner working.
    CHECK_FALSE(first->put("nodes", "still", "works"));
  }
  // Closing releases the directory.
  auto again = open_store(dir);
  CHECK(must_get(*again, "nodes", "still") == "works");
}

TEST_CASE("the lock file holds the owner's pid") {
  temp_dir tmp;
  auto db = open_store(tmp.sub("data"));
  std::ifstream in{tmp.sub("data") + "/brnode.lock"};
  std::string pid;
  in >> pid;
  CHECK(pid == std::to_string(::getpid()));
}

TEST_CASE("open creates missing parent directories") {
  temp_dir tmp;
  auto dir = tmp.sub("a/b/c");
  auto db = open_store(dir);
  CHECK(fs::is_directory(dir));
  CHECK(fs::exists(dir + "/CURRENT"));
}

TEST_CASE("a directory that cannot be created is a store_failure naming it") {
  temp_dir tmp;
  std::ofstream{tmp.sub("file")} << "not a directory";
  auto dir = tmp.sub("file/data");
  auto opened = store::open(dir, {"nodes"});
  REQUIRE_FALSE(opened);
  CHECK(has_code(opened.error(), brd_errc::store_failure));
  auto text = brd::describe(opened.error());
  CHECK(text.find(dir) != std::string::npos);
  CHECK(text.find("Not a directory") != std::string::npos);
}

TEST_CASE("a store RocksDB cannot open is a store_failure with its reason") {
  temp_dir tmp;
  auto dir = tmp.sub("data");
  open_store(dir);
  std::ofstream{dir + "/CURRENT", std::ios::trunc} << "garbage\n";
  auto opened = store::open(dir, {"nodes"});
  REQUIRE_FALSE(opened);
  CHECK(has_code(opened.error(), brd_errc::store_failure));
  auto text = brd::describe(opened.error());
  CHECK(text.find(dir) != std::string::npos);
  CHECK(text.find("Corruption") != std::string::npos);
  // The failed open released the directory lock.
  auto lock = store::open(dir, {"nodes"});
  REQUIRE_FALSE(lock);
  CHECK(has_code(lock.error(), brd_errc::store_failure));
}

TEST_CASE("approximate size grows with the data written") {
  temp_dir tmp;
  auto db = open_store(tmp.sub("data"));
  auto before = db->approximate_size_bytes();
  batch b;
  for (int i = 0; i < 1000; ++i)
    b.put("tasks", "task/" + std::to_string(i), std::string(200, 'x'));
  REQUIRE_FALSE(db->write(b, false));
  CHECK(db->approximate_size_bytes() > before + 100'000);
}

// -- codec --------------------------------------------------------------------

namespace {

node_record sample_record() {
  node_record x;
  x.name = "lucidia";
  x.cluster = "blackroad";
  x.tier = "pi";
  x.roles = {"worker", "gateway"};
  x.host = "192.168.4.38";
  x.port = 4801;
  x.http_port = 8080;
  x.version = "0.1.0";
  x.incarnation = 42;
  x.started_at_ms = 1'700'000'000'123;
  return x;
}

bool same(const node_record& a, const node_record& b) {
  return a.v == b.v && a.name == b.name && a.cluster == b.cluster
         && a.tier == b.tier && a.roles == b.roles && a.host == b.host
         && a.port == b.port && a.http_port == b.http_port
         && a.version == b.version && a.incarnation == b.incarnation
         && a.started_at_ms == b.started_at_ms;
}

// Packs a map of the given fields, as another writer might.
template <class F>
std::string pack_map(uint32_t size, F fields) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> out{buf};
  out.pack_map(size);
  fields(out);
  return {buf.data(), buf.size()};
}

bool is_corrupt(const caf::expected<node_record>& x) {
  return !x && has_code(x.error(), brd_errc::io_failure)
         && brd::describe(x.error()).find("corrupt record") == 0;
}

} // namespace

TEST_CASE("a node record survives encode and decode") {
  auto original = sample_record();
  auto decoded = brd::io::decode_node_record(brd::io::encode(original));
  REQUIRE_MESSAGE(decoded, brd::describe(decoded.error()));
  CHECK(same(*decoded, original));
  auto empty = brd::io::decode_node_record(brd::io::encode(node_record{}));
  REQUIRE(empty);
  CHECK(same(*empty, node_record{}));
}

TEST_CASE("records decode one after another, whatever came before") {
  // Decoding reuses one scratch zone per thread and points into the input:
  // a big value, a corrupt record and a small value in turn must not leak
  // into each other.
  brd::io::row_envelope big;
  big.hlc = 7;
  big.origin = "a";
  big.seq = 1;
  big.val = std::string(64 * 1024, 'x');
  brd::io::row_envelope small = big;
  small.val = "tiny";
  small.origin = "b";
  auto big_bytes = brd::io::encode(big);
  auto small_bytes = brd::io::encode(small);
  for (int round = 0; round < 3; ++round) {
    auto x = brd::io::decode_row_envelope(big_bytes);
    REQUIRE(x);
    CHECK(x->val == big.val);
    CHECK_FALSE(brd::io::decode_row_envelope(big_bytes.substr(0, 100)));
    auto y = brd::io::decode_row_envelope(small_bytes);
    REQUIRE(y);
    CHECK(y->val == "tiny");
    CHECK(y->origin == "b");
    CHECK(x->val.size() == big.val.size()); // still its own copy
  }
}

TEST_CASE("a newer record with unknown fields decodes the fields we know") {
  auto bytes = pack_map(7, [](auto& out) {
    out.pack(std::string{"v"});
    out.pack(uint32_t{9});
    out.pack(std::string{"name"});
    out.pack(std::string{"octavia"});
    out.pack(std::string{"gpu_count"});
    out.pack(uint32_t{2});
    out.pack(std::string{"labels"});
    out.pack(std::map<std::string, std::string>{{"zone", "attic"}});
    out.pack(std::string{"port"});
    out.pack(uint16_t{4802});
    out.pack(uint8_t{7}); // a non-string key is ignored too
    out.pack(std::string{"x"});
    out.pack(std::string{"roles"});
    out.pack(std::vector<std::string>{"worker"});
  });
  auto decoded = brd::io::decode_node_record(bytes);
  REQUIRE_MESSAGE(decoded, brd::describe(decoded.error()));
  CHECK(decoded->v == 9);
  CHECK(decoded->name == "octavia");
  CHECK(decoded->port == 4802);
  CHECK(decoded->roles == std::vector<std::string>{"worker"});
  CHECK(decoded->cluster.empty()); // absent: default
  CHECK(decoded->incarnation == 0);
  // Re-encoding writes what this build knows: version 1, no unknown fields.
  auto again = brd::io::decode_node_record(brd::io::encode(*decoded));
  REQUIRE(again);
  CHECK(again->v == node_record::current_version);
  CHECK(again->name == "octavia");
}

TEST_CASE("every truncation of a record is an error, not a crash") {
  auto bytes = brd::io::encode(sample_record());
  for (size_t n = 0; n < bytes.size(); ++n) {
    CAPTURE(n);
    CHECK(is_corrupt(brd::io::decode_node_record(bytes.substr(0, n))));
  }
}

TEST_CASE("malformed records are errors that say what is wrong") {
  auto reason = [](const std::string& bytes) {
    auto x = brd::io::decode_node_record(bytes);
    REQUIRE(is_corrupt(x));
    return brd::describe(x.error());
  };
  CHECK(reason(brd::io::encode(sample_record()) + "x").find("trailing")
        != std::string::npos);
  CHECK(reason("\x93\x01\x02\x03").find("not a msgpack map")
        != std::string::npos);
  auto no_version = pack_map(1, [](auto& out) {
    out.pack(std::string{"name"});
    out.pack(std::string{"a"});
  });
  CHECK(reason(no_version).find("\"v\"") != std::string::npos);
  auto port_too_big = pack_map(2, [](auto& out) {
    out.pack(std::string{"v"});
    out.pack(1);
    out.pack(std::string{"port"});
    out.pack(70000);
  });
  CHECK(reason(port_too_big).find("'port'") != std::string::npos);
  auto name_not_string = pack_map(2, [](auto& out) {
    out.pack(std::string{"v"});
    out.pack(1);
    out.pack(std::string{"name"});
    out.pack(3.5);
  });
  CHECK(reason(name_not_string).find("'name'") != std::string::npos);
  // Declares a map of 2^32-1 pairs in five bytes: refused before allocating.
  reason(std::string{"\xdf\xff\xff\xff\xff", 5});
  reason(std::string{"\x81\xa1v\xdd\xff\xff\xff\xff", 8});
  reason(std::string{"\xc1", 1});
}

TEST_CASE("records with bytes flipped decode or fail, never crash") {
  auto bytes = brd::io::encode(sample_record());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int value : {0x00, 0x7f, 0x80, 0xc1, 0xdd, 0xdf, 0xff}) {
      auto copy = bytes;
      copy[i] = static_cast<char>(value);
      auto x = brd::io::decode_node_record(copy);
      CHECK((x || is_corrupt(x)));
    }
  }
}
