#include "runtime/config.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>

#include "runtime/errors.hpp"

namespace fs = std::filesystem;
using namespace brd;
using namespace std::chrono_literals;

namespace {

// The error text for a fleet file that must be refused. Messages name the
// origin "conf/bad.toml".
std::string problems_in(const std::string& text) {
  auto fleet = parse_fleet_config(text, "conf/bad.toml");
  REQUIRE_FALSE(fleet);
  CHECK(fleet.error().category() == caf::atom("brd"));
  CHECK(fleet.error().code() == static_cast<uint8_t>(brd_errc::bad_config));
  return describe(fleet.error());
}

// Checks that `text` holds the problem line `where` (FILE:LINE: KEY:), with
// `what` after it and a fix.
void check_problem(const std::string& text, const std::string& where, const std::string& what) {
  INFO(text);
  auto at = text.find(where);
  REQUIRE(at != std::string::npos);
  auto line = text.substr(at, text.find('\n', at) - at);
  CHECK(line.find(what) != std::string::npos);
  CHECK(line.find("; fix: ") != std::string::npos);
}

// A [[node]] section of six lines: header, name, tier, host, port, http_port.
std::string node_section(const std::string& name, int port, int http_port,
                         const std::string& host = "127.0.0.1") {
  return "[[node]]\nname = \"" + name + "\"\ntier = \"pi\"\nhost = \"" + host +
         "\"\nport = " + std::to_string(port) + "\nhttp_port = " + std::to_string(http_port) +
         "\n";
}

// A fleet that is fine: [cluster] on lines 1-2, node[0] "a" on lines 3-8
// (name 4, tier 5, host 6, port 7, http_port 8). A second node goes on 9-14.
const std::string good = "[cluster]\nname = \"test\"\n" + node_section("a", 4801, 8801);

// `good` with `lines` added to [cluster], after line 2.
std::string with_cluster_lines(const std::string& lines) {
  return "[cluster]\nname = \"test\"\n" + lines + node_section("a", 4801, 8801);
}

std::optional<fleet_config> shipped(const std::string& name) {
  const char* root = std::getenv("BRD_SOURCE_ROOT");
  if (!root) {
    MESSAGE("BRD_SOURCE_ROOT is not set: skipping config/", name);
    return std::nullopt;
  }
  auto fleet = load_fleet_config((fs::path{root} / "config" / name).string());
  INFO(describe(fleet.error()));
  REQUIRE(fleet);
  return *fleet;
}

fs::path scratch_dir() {
  auto dir = fs::temp_directory_path() / ("brd-config-test-" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir;
}

} // namespace

TEST_CASE("the shipped fleet.toml loads as the six-node seed fleet") {
  auto fleet = shipped("fleet.toml");
  if (!fleet)
    return;
  CHECK(fleet->cluster == "blackroad");
  REQUIRE(fleet->nodes.size() == 6);
  const auto* droplet = fleet->find("droplet");
  REQUIRE(droplet);
  CHECK(droplet->tier == tier::backup);
  CHECK(droplet->roles == std::vector<std::string>{"backup", "triage"});
  CHECK(fleet->find("edge")->tier == tier::edge);
  CHECK(fleet->find("edge")->roles == std::vector<std::string>{"bridge"});
  for (auto name : {"lucidia", "alice", "aria", "octavia"}) {
    REQUIRE(fleet->find(name));
    CHECK(fleet->find(name)->tier == tier::pi);
  }
  for (const auto& node : fleet->nodes) {
    CHECK(node.port == 4801);
    CHECK(node.http_port == 8801);
  }
  CHECK_FALSE(fleet->tls.enabled());
}

TEST_CASE("the shipped local.toml puts the seed fleet on loopback with its own ports") {
  auto fleet = shipped("local.toml");
  if (!fleet)
    return;
  CHECK(fleet->cluster == "blackroad-local");
  REQUIRE(fleet->nodes.size() == 6);
  std::set<uint16_t> ports, http_ports;
  for (const auto& node : fleet->nodes) {
    CHECK(node.host == "127.0.0.1");
    ports.insert(node.port);
    http_ports.insert(node.http_port);
  }
  CHECK(ports == std::set<uint16_t>{4801, 4802, 4803, 4804, 4805, 4806});
  CHECK(http_ports == std::set<uint16_t>{8801, 8802, 8803, 8804, 8805, 8806});
  CHECK(fleet->find("octavia")->roles == std::vector<std::string>{"render3d"});
}

TEST_CASE("a minimal fleet gets the detector defaults and no roles") {
  auto fleet = parse_fleet_config(good, "mem.toml");
  REQUIRE(fleet);
  CHECK(fleet->file == "mem.toml");
  CHECK(fleet->cluster == "test");
  CHECK(fleet->detector.heartbeat_interval == 200ms);
  CHECK(fleet->detector.phi_threshold == 8.0);
  CHECK(fleet->detector.backoff_max == 5000ms);
  REQUIRE(fleet->nodes.size() == 1);
  CHECK(fleet->nodes[0].roles.empty());
  CHECK(fleet->nodes[0].port == 4801);
  CHECK(fleet->nodes[0].http_port == 8801);
}

TEST_CASE("cluster tuning keys override the detector defaults") {
  auto fleet = parse_fleet_config(with_cluster_lines(R"(heartbeat_interval_ms = 50
sample_interval_ms = 250
phi_suspect = 2
phi_threshold = 6.5
min_std_dev_ms = 20
acceptable_pause_ms = 0
window = 10
connect_timeout_ms = 400
backoff_min_ms = 10
backoff_max_ms = 10
log_keep = 5000
replication_backlog = 0
)"), "mem.toml");
  INFO(describe(fleet.error()));
  REQUIRE(fleet);
  const auto& d = fleet->detector;
  CHECK(d.heartbeat_interval == 50ms);
  CHECK(d.sample_interval == 250ms);
  CHECK(d.phi_suspect == 2.0);
  CHECK(d.phi_threshold == 6.5);
  CHECK(d.min_std_dev == 20ms);
  CHECK(d.acceptable_pause == 0ms);
  CHECK(d.window == 10);
  CHECK(d.connect_timeout == 400ms);
  CHECK(d.backoff_min == 10ms);
  CHECK(d.backoff_max == 10ms);
  CHECK(fleet->log_keep == 5000);
  CHECK(parse_fleet_config(good, "mem.toml")->log_keep == 100'000);
  CHECK(fleet->replication_backlog == 0); // backpressure off
  CHECK(parse_fleet_config(good, "mem.toml")->replication_backlog == 1024);
}

TEST_CASE("find returns the named node, or nullptr for a stranger") {
  auto fleet = parse_fleet_config(good, "mem.toml");
  REQUIRE(fleet);
  REQUIRE(fleet->find("a"));
  CHECK(fleet->find("a")->host == "127.0.0.1");
  CHECK(fleet->find("b") == nullptr);
}

TEST_CASE("tiers print as edge, backup and pi") {
  CHECK(to_string(tier::edge) == "edge");
  CHECK(to_string(tier::backup) == "backup");
  CHECK(to_string(tier::pi) == "pi");
}

TEST_CASE("resolve_tls puts in the node name and resolves paths against the file's directory") {
  auto text = good + R"([tls]
ca = "certs/ca.pem"
cert = "certs/{name}.pem"
key = "/etc/blackroad/{name}-{name}.key"
)";
  auto fleet = parse_fleet_config(text, "/srv/br/config/fleet.toml");
  INFO(describe(fleet.error()));
  REQUIRE(fleet);
  CHECK(fleet->tls.enabled());
  CHECK(fleet->tls.cert == "certs/{name}.pem");
  auto tls = resolve_tls(*fleet, "lucidia");
  CHECK(tls.ca == "/srv/br/config/certs/ca.pem");
  CHECK(tls.cert == "/srv/br/config/certs/lucidia.pem");
  CHECK(tls.key == "/etc/blackroad/lucidia-lucidia.key");
}

TEST_CASE("resolve_tls of a fleet without [tls] is disabled") {
  auto fleet = parse_fleet_config(good, "/srv/br/fleet.toml");
  REQUIRE(fleet);
  CHECK_FALSE(resolve_tls(*fleet, "a").enabled());
}

TEST_CASE("load_fleet_config reads a file and remembers its path") {
  auto dir = scratch_dir();
  auto path = (dir / "fleet.toml").string();
  std::ofstream{path} << good;
  auto fleet = load_fleet_config(path);
  fs::remove_all(dir);
  INFO(describe(fleet.error()));
  REQUIRE(fleet);
  CHECK(fleet->file == path);
  CHECK(fleet->nodes.size() == 1);
}

TEST_CASE("a missing file is reported with its path and a fix") {
  auto fleet = load_fleet_config("/nonexistent/blackroad/fleet.toml");
  REQUIRE_FALSE(fleet);
  auto text = describe(fleet.error());
  CHECK(text.find("/nonexistent/blackroad/fleet.toml: cannot read the fleet file: ")
        == 0);
  CHECK(text.find("No such file") != std::string::npos);
  CHECK(text.find("; fix: ") != std::string::npos);
}

TEST_CASE("a directory given as the fleet file is reported") {
  auto dir = scratch_dir();
  auto fleet = load_fleet_config(dir.string());
  fs::remove_all(dir);
  REQUIRE_FALSE(fleet);
  CHECK(describe(fleet.error()).find("it is a directory; fix: ") != std::string::npos);
}

TEST_CASE("a TOML syntax error names the file, line and column") {
  auto text = problems_in(good + "port = \n");
  CHECK(text.find("conf/bad.toml:9:8: TOML syntax error: ") == 0);
  CHECK(text.find("; fix: correct the TOML at line 9, column 8") != std::string::npos);
}

TEST_CASE("a file without [cluster] is refused") {
  auto text = problems_in(node_section("a", 4801, 8801));
  check_problem(text, "conf/bad.toml:1: cluster: ", "missing section [cluster]");
}

TEST_CASE("a cluster without a name is refused at the [cluster] line") {
  auto text = problems_in("\n\n[cluster]\nwindow = 5\n" + node_section("a", 4801, 8801));
  check_problem(text, "conf/bad.toml:3: cluster.name: ", "missing required key");
  CHECK(text.find("fix: add name = \"blackroad\" to [cluster]") != std::string::npos);
}

TEST_CASE("a cluster name with capitals or spaces is refused") {
  auto text = problems_in("[cluster]\nname = \"Black Road\"\n" + node_section("a", 4801, 8801));
  check_problem(text, "conf/bad.toml:2: cluster.name: ", "\"Black Road\" is not a valid name");
}

TEST_CASE("a node without a required field names the field and its [[node]] line") {
  auto text = problems_in(R"([cluster]
name = "test"
[[node]]
name = "a"
tier = "pi"
port = 4801
http_port = 8801
)");
  check_problem(text, "conf/bad.toml:3: node[0].host: ", "missing required key");
  CHECK(text.find("fix: add host = ") != std::string::npos);
}

TEST_CASE("an unknown tier lists the valid tiers") {
  auto text = problems_in(good + R"([[node]]
name = "b"
tier = "rasp"
host = "127.0.0.1"
port = 4802
http_port = 8802
)");
  CHECK(text == "conf/bad.toml:11: node[1].tier: unknown tier \"rasp\"; "
                "fix: use one of edge, backup, pi");
}

TEST_CASE("a value of the wrong type names the expected type") {
  auto text = problems_in(with_cluster_lines("heartbeat_interval_ms = \"200\"\n") + R"([[node]]
name = "b"
tier = "pi"
host = "127.0.0.1"
port = "4802"
http_port = 8802
)");
  check_problem(text, "conf/bad.toml:3: cluster.heartbeat_interval_ms: ",
                "expected an integer, found a string");
  check_problem(text, "conf/bad.toml:14: node[1].port: ", "expected an integer, found a string");
  CHECK(text.find("fix: write it like port = 4801") != std::string::npos);
}

TEST_CASE("roles that are not a list of strings are refused") {
  auto text = problems_in(good + node_section("b", 4802, 8802) + "roles = \"ops\"\n" +
                          node_section("c", 4803, 8803) + "roles = [\"ops\", 3]\n");
  check_problem(text, "conf/bad.toml:15: node[1].roles: ",
                "expected an array of strings, found a string");
  check_problem(text, "conf/bad.toml:22: node[2].roles[1]: ",
                "expected a string, found an integer");
}

TEST_CASE("a duplicate node name points at the first use") {
  auto text = problems_in(good + node_section("a", 4802, 8802));
  check_problem(text, "conf/bad.toml:10: node[1].name: ",
                "duplicate node name \"a\", already used by node[0] at line 4");
}

TEST_CASE("a port reused on one host names both nodes") {
  auto text = problems_in(good + node_section("b", 4801, 8802));
  check_problem(text, "conf/bad.toml:13: node[1].port: ",
                "nodes \"b\" and \"a\" both use port 4801 on 127.0.0.1 (node[0].port at line 7)");
}

TEST_CASE("an http_port equal to another node's actor port on the same host is refused") {
  auto text = problems_in(good + node_section("b", 4802, 4801));
  check_problem(text, "conf/bad.toml:14: node[1].http_port: ",
                "nodes \"b\" and \"a\" both use port 4801");
}

TEST_CASE("a node whose http_port equals its own port is refused") {
  auto text = problems_in("[cluster]\nname = \"test\"\n" + node_section("a", 4801, 4801));
  check_problem(text, "conf/bad.toml:8: node[0].http_port: ",
                "node \"a\" uses port 4801 on 127.0.0.1 (node[0].port at line 7)");
}

TEST_CASE("the same ports on different hosts are fine") {
  auto fleet = parse_fleet_config(good + node_section("b", 4801, 8801, "192.168.4.38"),
                                  "mem.toml");
  INFO(describe(fleet.error()));
  CHECK(fleet);
}

TEST_CASE("a port out of range is refused") {
  auto text = problems_in("[cluster]\nname = \"test\"\n" + node_section("a", 0, 70000));
  check_problem(text, "conf/bad.toml:7: node[0].port: ", "port 0 is out of range");
  check_problem(text, "conf/bad.toml:8: node[0].http_port: ", "port 70000 is out of range");
  CHECK(text.find("fix: use a port between 1 and 65535") != std::string::npos);
}

TEST_CASE("a misspelt key names the nearest known key") {
  auto text = problems_in(good + "hots = \"127.0.0.1\"\n");
  check_problem(text, "conf/bad.toml:9: node[0].hots: ", "unknown key; fix: did you mean 'host'?");
  text = problems_in(with_cluster_lines("phi_treshold = 9.0\n"));
  check_problem(text, "conf/bad.toml:3: cluster.phi_treshold: ",
                "fix: did you mean 'phi_threshold'?");
}

TEST_CASE("an unknown key far from every known key lists the known keys") {
  auto text = problems_in(good + "owner = \"ops\"\n");
  check_problem(text, "conf/bad.toml:9: node[0].owner: ",
                "unknown key; fix: remove it, or use one of name, tier, roles, host, port, "
                "http_port");
}

TEST_CASE("a misspelt section name names the nearest section") {
  auto text = problems_in(good + "[tsl]\nca = \"ca.pem\"\n");
  check_problem(text, "conf/bad.toml:9: tsl: ", "unknown key; fix: did you mean 'tls'?");
}

TEST_CASE("a cluster key written above [cluster] is told to move there") {
  auto text = problems_in("window = 5\n" + good);
  check_problem(text, "conf/bad.toml:1: window: ", "fix: move it under [cluster]");
}

TEST_CASE("tls with only some of its paths is refused") {
  auto text = problems_in(good + "[tls]\nca = \"certs/ca.pem\"\n");
  check_problem(text, "conf/bad.toml:9: tls.cert: ", "[tls] sets ca but not cert");
  check_problem(text, "conf/bad.toml:9: tls.key: ",
                "fix: set all three of ca, cert and key, or remove [tls]");
}

TEST_CASE("an unknown placeholder in a tls path is refused") {
  auto text = problems_in(good + "[tls]\nca = \"ca.pem\"\ncert = \"{node}.pem\"\nkey = \"k\"\n");
  check_problem(text, "conf/bad.toml:11: tls.cert: ", "unknown placeholder \"{node}\"");
}

TEST_CASE("a fleet without nodes is refused") {
  auto text = problems_in("[cluster]\nname = \"test\"\n");
  check_problem(text, "conf/bad.toml:1: node: ", "the fleet has no nodes");
}

TEST_CASE("a [node] with single brackets is refused") {
  auto text = problems_in("[cluster]\nname = \"test\"\n[node]\nname = \"a\"\n");
  check_problem(text, "conf/bad.toml:3: node: ", "expected [[node]] sections, found a table");
}

TEST_CASE("an interval of zero or less is refused") {
  auto text = problems_in(with_cluster_lines(R"(heartbeat_interval_ms = 0
connect_timeout_ms = -5
acceptable_pause_ms = -1
window = 0
log_keep = 0
replication_backlog = -1
)"));
  check_problem(text, "conf/bad.toml:7: cluster.log_keep: ", "must be greater than 0");
  check_problem(text, "conf/bad.toml:8: cluster.replication_backlog: ",
                "replication_backlog is -1, but must be 0 or more; fix: write it like "
                "replication_backlog = 1024");
  check_problem(text, "conf/bad.toml:3: cluster.heartbeat_interval_ms: ",
                "heartbeat_interval_ms is 0, but must be greater than 0");
  check_problem(text, "conf/bad.toml:4: cluster.connect_timeout_ms: ",
                "must be greater than 0; fix: write it like connect_timeout_ms = 1000");
  check_problem(text, "conf/bad.toml:5: cluster.acceptable_pause_ms: ", "must be 0 or more");
  check_problem(text, "conf/bad.toml:6: cluster.window: ", "must be greater than 0");
}

TEST_CASE("phi_suspect at or above phi_threshold is refused") {
  auto text = problems_in(with_cluster_lines("phi_suspect = 8\n"));
  check_problem(text, "conf/bad.toml:3: cluster.phi_suspect: ",
                "phi_suspect (8) is not below phi_threshold (8)");
}

TEST_CASE("backoff_min_ms above backoff_max_ms is refused") {
  auto text = problems_in(with_cluster_lines("backoff_max_ms = 50\n"));
  check_problem(text, "conf/bad.toml:3: cluster.backoff_max_ms: ",
                "backoff_min_ms (100) is above backoff_max_ms (50)");
  text = problems_in(with_cluster_lines("backoff_min_ms = 900\nbackoff_max_ms = 50\n"));
  check_problem(text, "conf/bad.toml:3: cluster.backoff_min_ms: ",
                "backoff_min_ms (900) is above backoff_max_ms (50)");
}

TEST_CASE("every problem in a file is reported at once, in line order") {
  auto text = problems_in("[cluster]\nname = \"test\"\nwindw = 5\n" +
                          node_section("a", 4801, 99999) + "tiers = \"pi\"\n");
  INFO(text);
  auto window = text.find("conf/bad.toml:3: cluster.windw: ");
  auto port = text.find("\nconf/bad.toml:9: node[0].http_port: port 99999");
  auto tiers = text.find("\nconf/bad.toml:10: node[0].tiers: unknown key; fix: did you mean 'tier'?");
  CHECK(window == 0);
  CHECK(port != std::string::npos);
  CHECK(tiers != std::string::npos);
  CHECK(port < tiers);
}
