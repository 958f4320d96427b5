// brnode refuses a broken fleet config before it starts anything: exit 78
// and one line naming the file, the line, the key and the fix. Also the
// command line contract (--help, unknown flags) and a taken port (69).
#include <doctest/doctest.h>

#include <algorithm>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.hpp"

using namespace brd::test;

namespace {

// The 1-based line of the first line of `text` containing `needle` (after
// the first line containing `after`, when given).
int line_of(const std::string& text, const std::string& needle, const std::string& after = "") {
  auto from = after.empty() ? 0 : text.find(after);
  REQUIRE(from != std::string::npos);
  auto at = text.find(needle, from);
  REQUIRE_MESSAGE(at != std::string::npos, "test bug: '" << needle << "' not in the config");
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
}

// Runs brnode as node `name` on the config `text` written to a temp dir.
struct config_run {
  temp_dir dir;
  std::string path;
  run_result result;

  config_run(const std::string& text, const std::string& name = "a") {
    path = dir.write("fleet.toml", text);
    result = run_brnode({"--config", path, "--name", name, "--data-dir", dir.file("data")});
  }

  // "FILE:LINE: KEY: " as the error line must start.
  std::string prefix(int line, const std::string& key) const {
    return path + ":" + std::to_string(line) + ": " + key + ": ";
  }
};

// Two plain nodes a and b, with `a_extra` inserted after a's name line.
std::string two_nodes(const std::string& a_extra = "") {
  std::string text = fleet_toml("t1", make_specs(2));
  if (!a_extra.empty()) {
    auto a_at = text.find("name = \"a\"");
    text.insert(text.find('\n', a_at) + 1, a_extra + "\n");
  }
  return text;
}

} // namespace

TEST_CASE("an unknown node name exits 78 and lists the configured names") {
  config_run run{two_nodes(), "x"};
  INFO(run.result.output);
  CHECK(run.result.exit_code == 78);
  CHECK(run.result.output.find("brnode: " + run.path + ": no node named 'x'")
        != std::string::npos);
  CHECK(run.result.output.find("fix: use one of a, b or add a [[node]] entry with that name")
        != std::string::npos);
}

TEST_CASE("a duplicate port exits 78 naming both nodes, the line and the key") {
  auto specs = make_specs(2);
  specs[1].port = specs[0].port;
  auto text = fleet_toml("t1", specs);
  config_run run{text};
  INFO(run.result.output);
  CHECK(run.result.exit_code == 78);
  auto port = std::to_string(specs[0].port);
  int line = line_of(text, "port = " + port, "name = \"b\"");
  CHECK(run.result.output.find(run.prefix(line, "node[1].port")) != std::string::npos);
  CHECK(run.result.output.find("nodes \"b\" and \"a\" both use port " + port)
        != std::string::npos);
  CHECK(run.result.output.find("fix: ") != std::string::npos);
}

TEST_CASE("an unknown tier exits 78 naming the line, the key and the valid tiers") {
  auto text = fleet_toml("t1", make_specs({{"a", "cloud"}, {"b", "pi"}}));
  config_run run{text};
  INFO(run.result.output);
  CHECK(run.result.exit_code == 78);
  int line = line_of(text, "tier = \"cloud\"");
  CHECK(run.result.output.find(run.prefix(line, "node[0].tier") + "unknown tier \"cloud\"")
        != std::string::npos);
  CHECK(run.result.output.find("fix: use one of edge, backup, pi") != std::string::npos);
}

TEST_CASE("a missing required field exits 78 naming the key and how to add it") {
  auto text = two_nodes();
  auto at = text.find("http_port = ", text.find("name = \"b\""));
  text.erase(at, text.find('\n', at) - at + 1);
  config_run run{text};
  INFO(run.result.output);
  CHECK(run.result.exit_code == 78);
  // The line of a missing key is where its table starts: b's [[node]].
  int line = line_of(text, "[[node]]", "name = \"a\"\n");
  CHECK(run.result.output.find(run.prefix(line, "node[1].http_port") + "missing required key")
        != std::string::npos);
  CHECK(run.result.output.find("fix: add http_port = ") != std::string::npos);
}

TEST_CASE("a misspelt key exits 78 and suggests the right one") {
  auto text = two_nodes("hots = \"127.0.0.1\"");
  config_run run{text};
  INFO(run.result.output);
  CHECK(run.result.exit_code == 78);
  int line = line_of(text, "hots = ");
  CHECK(run.result.output.find(run.prefix(line, "node[0].hots") + "unknown key")
        != std::string::npos);
  CHECK(run.result.output.find("fix: did you mean 'host'?") != std::string::npos);
}

TEST_CASE("a misspelt cluster tuning key exits 78 and suggests the right one") {
  auto text = fleet_toml("t1", make_specs(2), "heartbeat_intervall_ms = 100");
  config_run run{text};
  INFO(run.result.output);
  CHECK(run.result.exit_code == 78);
  int line = line_of(text, "heartbeat_intervall_ms");
  CHECK(run.result.output.find(run.prefix(line, "cluster.heartbeat_intervall_ms"))
        != std::string::npos);
  CHECK(run.result.output.find("did you mean 'heartbeat_interval_ms'?") != std::string::npos);
}

TEST_CASE("a TLS file that does not exist exits 78 naming the key and the path") {
  temp_dir certs;
  auto ca = certs.write("ca.pem", "not really a CA, but readable\n");
  auto specs = make_specs(2);
  SUBCASE("the CA") {
    config_run run{fleet_toml("t1", specs, "",
                              "[tls]\nca = \"missing-ca.pem\"\ncert = \"{name}.pem\"\n"
                              "key = \"{name}.key\"\n")};
    INFO(run.result.output);
    CHECK(run.result.exit_code == 78);
    CHECK(run.result.output.find("brnode: " + run.path + ": tls.ca: ") != std::string::npos);
    CHECK(run.result.output.find(run.dir.file("missing-ca.pem")) != std::string::npos);
    CHECK(run.result.output.find("fix: ") != std::string::npos);
  }
  SUBCASE("the node's certificate, with {name} filled in") {
    config_run run{fleet_toml("t1", specs, "",
                              "[tls]\nca = \"" + ca + "\"\ncert = \"certs/{name}.pem\"\n"
                              "key = \"certs/{name}.key\"\n")};
    INFO(run.result.output);
    CHECK(run.result.exit_code == 78);
    CHECK(run.result.output.find("tls.cert") != std::string::npos);
    CHECK(run.result.output.find(run.dir.file("certs/a.pem")) != std::string::npos);
    CHECK(run.result.output.find("fix: ") != std::string::npos);
  }
  SUBCASE("the node's key") {
    temp_dir dir;
    dir.write("a.pem", "cert placeholder\n");
    auto path = dir.write("fleet.toml",
                          fleet_toml("t1", specs, "",
                                     "[tls]\nca = \"" + ca
                                       + "\"\ncert = \"{name}.pem\"\nkey = \"{name}.key\"\n"));
    auto r = run_brnode({"--config", path, "--name", "a", "--data-dir", dir.file("data")});
    INFO(r.output);
    CHECK(r.exit_code == 78);
    CHECK(r.output.find("tls.key") != std::string::npos);
    CHECK(r.output.find(dir.file("a.key")) != std::string::npos);
  }
}

TEST_CASE("a fleet file that cannot be read exits 78 naming the path") {
  temp_dir dir;
  auto missing = dir.file("nope.toml");
  auto r = run_brnode({"--config", missing, "--name", "a", "--data-dir", dir.file("data")});
  INFO(r.output);
  CHECK(r.exit_code == 78);
  CHECK(r.output.find(missing) != std::string::npos);
  CHECK(r.output.find("fix: ") != std::string::npos);
}

TEST_CASE("--help exits 0 and documents --config") {
  auto r = run_brnode({"--help"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("--config") != std::string::npos);
  CHECK(r.output.find("--name") != std::string::npos);
}

TEST_CASE("an unknown flag exits 64 and names the flag") {
  auto r = run_brnode({"--confg", "x.toml"});
  INFO(r.output);
  CHECK(r.exit_code == 64);
  CHECK(r.output.find("--confg") != std::string::npos);
}

TEST_CASE("no --config and no BRNODE_CONFIG exits 64") {
  auto r = run_brnode({"--name", "a"}, 10s, {"BRNODE_CONFIG="});
  INFO(r.output);
  CHECK(r.exit_code == 64);
  CHECK(r.output.find("--config") != std::string::npos);
}

TEST_CASE("an actor port already taken exits 69 naming the port") {
  auto specs = make_specs(1);
  // Hold a's actor port with a listening socket of our own.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(specs[0].port);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  temp_dir dir;
  auto path = dir.write("fleet.toml", fleet_toml("t1", specs));
  auto r = run_brnode({"--config", path, "--name", "a", "--data-dir", dir.file("data")});
  ::close(fd);
  INFO(r.output);
  CHECK(r.exit_code == 69);
  CHECK(r.output.find(std::to_string(specs[0].port)) != std::string::npos);
}
