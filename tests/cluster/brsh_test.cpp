// brsh against a 3-node local fleet of real brnode processes: one-shot
// commands and their JSON, error sentences and exit codes, scripts with
// wait-for, the interactive shell driven through tmux (completion, history),
// and a node killed under a connected shell.
#include <doctest/doctest.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <sstream>
#include <thread>

#include "brsh_run.hpp"
#include "harness.hpp"

using namespace brd::test;
using nlohmann::json;

namespace {

// A fleet of edge, droplet (backup) and lucidia (pi): names that complete
// uniquely from two letters.
std::vector<node_spec> three_nodes() {
  return make_specs({{"edge", "edge"}, {"droplet", "backup"}, {"lucidia", "pi"}});
}

// The fleet has a state actor when `state tables` does not say it has none.
bool has_state(const fleet& fl) {
  auto r = brsh(fl, {"--node", "edge", "state", "tables"});
  if (r.exit_code == 0)
    return true;
  MESSAGE("state commands skipped: " << r.output);
  return false;
}

// An interactive brsh in a detached tmux session on its own server socket.
class tmux_shell {
public:
  // The tmux server's socket lives in `home`, so it goes with the directory.
  tmux_shell(const std::string& command, const std::string& home)
    : socket_(home + "/tmux.sock") {
    auto r = run_program({tmux_, "-S", socket_, "new-session", "-d", "-x", "160", "-y", "50",
                          "-s", "brsh", "env HOME=" + home + " TERM=xterm " + command});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }
  ~tmux_shell() { run_program({tmux_, "-S", socket_, "kill-server"}); }

  void keys(const std::vector<std::string>& keys) {
    std::vector<std::string> argv{tmux_, "-S", socket_, "send-keys", "-t", "brsh"};
    argv.insert(argv.end(), keys.begin(), keys.end());
    REQUIRE(run_program(argv).exit_code == 0);
  }
  // Literal text, no key names.
  void type(const std::string& text) { keys({"-l", text}); }

  std::string screen() {
    return run_program({tmux_, "-S", socket_, "capture-pane", "-p", "-t", "brsh"}).output;
  }
  bool wait_for_screen(const std::function<bool(const std::string&)>& pred, millis timeout = 10s) {
    return wait_until([&] { return pred(screen()); }, timeout, 50ms);
  }
  bool wait_for_text(const std::string& text, millis timeout = 10s) {
    return wait_for_screen([&](const std::string& s) { return contains(s, text); }, timeout);
  }

  static bool available() { return !find_program("tmux").empty(); }

private:
  std::string tmux_ = find_program("tmux");
  std::string socket_;
};

// Certificates made with the openssl CLI under `dir`: a CA (ca.pem, ca.key)
// and one NAME.pem / NAME.key per name, signed by it.
bool make_certs(const temp_dir& dir, const std::vector<std::string>& names) {
  auto openssl = find_program("openssl");
  if (openssl.empty())
    return false;
  auto ext = dir.write("ext.cnf", "basicConstraints = CA:FALSE\n"
                                  "extendedKeyUsage = serverAuth, clientAuth\n"
                                  "subjectAltName = IP:127.0.0.1\n");
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), openssl);
    auto r = run_program(args, 30s);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  };
  run({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=brsh-test-ca",
       "-keyout", dir.file("ca.key"), "-out", dir.file("ca.pem")});
  int serial = 100;
  for (const auto& name : names) {
    run({"req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name, "-keyout",
         dir.file(name + ".key"), "-out", dir.file(name + ".csr")});
    run({"x509", "-req", "-in", dir.file(name + ".csr"), "-CA", dir.file("ca.pem"), "-CAkey",
         dir.file("ca.key"), "-set_serial", std::to_string(++serial), "-days", "2", "-extfile",
         ext, "-out", dir.file(name + ".pem")});
  }
  return true;
}

size_t occurrences(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1))
    ++n;
  return n;
}

// A running 3-node fleet and an interactive brsh connected to edge, at its
// prompt, with its history in a fresh home directory.
struct shell_session {
  fleet fl;
  temp_dir home;
  std::unique_ptr<tmux_shell> sh;

  explicit shell_session(const std::string& cluster) : fl{cluster, three_nodes()} {
    fl.start_all();
    REQUIRE(fl.wait_all_alive(15s));
    sh = std::make_unique<tmux_shell>(
      brsh_bin() + " --config " + fl.config_path() + " --node edge", home.path());
    REQUIRE_MESSAGE(sh->wait_for_text("brsh edge>"), sh->screen());
  }
};

const char* tls_section = "[tls]\nca = \"ca.pem\"\ncert = \"{name}.pem\"\nkey = \"{name}.key\"\n";

// Makes certificates for the nodes and brsh, starts the fleet and waits for
// it; false, after saying so, when the openssl CLI is missing.
bool start_with_certs(fleet& fl) {
  if (!make_certs(fl.dir(), {"edge", "droplet", "lucidia", "brsh"})) {
    MESSAGE("openssl CLI not found: TLS test skipped");
    return false;
  }
  fl.start_all();
  REQUIRE(fl.wait_all_alive(15s));
  return true;
}

} // namespace

TEST_CASE("members list and health as JSON match what the nodes serve over HTTP") {
  fleet fl{"brsh1", three_nodes()};
  fl.start_all();
  REQUIRE(fl.wait_all_alive(15s));

  auto members = brsh(fl, {"--node", "edge", "members", "list", "-o", "json"});
  REQUIRE(members.exit_code == 0);
  auto rows = parse_json(members);
  REQUIRE(rows.is_array());
  CHECK(rows.size() == 3);
  std::map<std::string, json> by_node;
  for (const auto& row : rows)
    by_node[row.value("node", "")] = row;
  CHECK(by_node["edge"].value("tier", "") == "edge");
  CHECK(by_node["droplet"].value("tier", "") == "backup");
  CHECK(by_node["lucidia"].value("tier", "") == "pi");
  for (const auto& name : {"edge", "droplet", "lucidia"}) {
    CHECK(by_node[name].value("state", "") == "alive");
    CHECK(by_node[name].value("address", "")
          == "127.0.0.1:" + std::to_string(fl.spec(name).port));
  }
  CHECK(by_node["edge"].value("self", false));

  auto health = brsh(fl, {"--node", "droplet", "health", "-o", "json"});
  REQUIRE(health.exit_code == 0);
  auto h = parse_json(health);
  auto http = http_get_json(fl.http_port("droplet"), "/health");
  REQUIRE(http.status == 200);
  CHECK(h["cluster"] == http.body["cluster"]);
  CHECK(h["node"] == "droplet");
  CHECK(h["edge"] == "online");
  CHECK(h["backup"] == "online");
  CHECK(h["pi_cluster"]["lucidia"]["status"] == http.body["pi_cluster"]["lucidia"]["status"]);
  CHECK(h["tiers"]["edge"]["edge"]["status"] == "online");

  auto table = brsh(fl, {"--node", "edge", "members", "list"});
  REQUIRE(table.exit_code == 0);
  CHECK(contains(table.output, "NODE"));
  CHECK(contains(table.output, "droplet"));
}

TEST_CASE("node status, actors and actor inspect report real numbers from the node") {
  fleet fl{"brsh2", three_nodes()};
  fl.start_all();
  REQUIRE(fl.wait_all_alive(15s));

  auto status = brsh(fl, {"--node", "edge", "node", "status", "lucidia", "-o", "json"});
  REQUIRE(status.exit_code == 0);
  auto st = parse_json(status);
  CHECK(st["node"] == "lucidia");
  CHECK(st["data_dir_bytes"].get<uint64_t>() > 0);
  CHECK(st["actor_count"].get<uint64_t>() >= 2);
  CHECK(st["sample"]["mem_total_bytes"].get<uint64_t>() > 0);
  CHECK(contains(st["data_dir"].get<std::string>(), "lucidia"));

  auto actors = brsh(fl, {"--node", "edge", "actors", "-o", "json"});
  REQUIRE(actors.exit_code == 0);
  std::map<std::string, json> by_kind;
  for (const auto& a : parse_json(actors))
    by_kind[a.value("kind", "")] = a;
  REQUIRE(by_kind.count("health") == 1);
  REQUIRE(by_kind.count("connector") == 1);
  // Heartbeats alone make health handle several messages a second.
  CHECK(by_kind["health"]["handled"].get<int64_t>() > 10);
  CHECK(by_kind["health"]["mailbox_size"].get<int64_t>() >= 0);
  REQUIRE(by_kind.count("state") == 1); // ticks 10 times a second
  CHECK(by_kind["state"]["handled"].get<int64_t>() > 10);

  auto inspect = brsh(fl, {"--node", "edge", "actor", "inspect", "droplet", "health", "-o", "json"});
  REQUIRE(inspect.exit_code == 0);
  auto summary = parse_json(inspect);
  CHECK(summary["node"] == "droplet");
  CHECK(summary["facts"]["peers connected"] == "2 of 2");
  std::map<std::string, std::string> peer_state;
  for (const auto& row : summary["rows"])
    peer_state[row.value("peer", "")] = row.value("state", "");
  CHECK(peer_state["edge"] == "alive");
  CHECK(peer_state["lucidia"] == "alive");

  // The state actor: its tables, and how far each peer is behind it (each
  // node wrote its registry record; the peers' replies say they hold them
  // within a second).
  json replication;
  std::map<std::string, json> peers;
  auto caught_up = [&] {
    auto state = brsh(fl, {"--node", "edge", "actor", "inspect", "droplet", "state", "-o", "json"});
    if (state.exit_code != 0)
      return false;
    replication = parse_json(state);
    peers.clear();
    for (const auto& row : replication["rows"])
      peers[row.value("peer", "")] = row;
    return peers.size() == 2 && peers["edge"]["behind (entries)"] == "0"
           && peers["lucidia"]["behind (entries)"] == "0";
  };
  CHECK_MESSAGE(wait_until(caught_up, 10s, 200ms), replication.dump());
  CHECK(contains(replication["facts"].value("table nodes", ""), "3 rows"));
  CHECK(replication["facts"].contains("log entries"));
  for (const auto* name : {"edge", "lucidia"}) {
    CHECK(peers[name]["connected"] == "yes");
    CHECK(peers[name]["sending"] == "new writes");
  }
}

TEST_CASE("mistakes are sentences: unknown command with the nearest match, usage, exit codes") {
  fleet fl{"brsh3", three_nodes()}; // nodes not started: none of these connects

  auto typo = brsh(fl, {"memebrs", "list"});
  CHECK(typo.exit_code == 2);
  CHECK(contains(typo.output, "unknown command 'memebrs'; did you mean 'members'?"));

  auto sub = brsh(fl, {"state", "gte", "nodes", "x"});
  CHECK(sub.exit_code == 2);
  CHECK(contains(sub.output, "did you mean 'state get'?"));

  auto args = brsh(fl, {"state", "get", "nodes"});
  CHECK(args.exit_code == 2);
  CHECK(contains(args.output, "usage: state get TABLE KEY"));

  auto format = brsh(fl, {"members", "list", "-o", "yaml"});
  CHECK(format.exit_code == 2);
  CHECK(contains(format.output, "'yaml' is not one of table, json"));

  auto deploys = brsh(fl, {"deploys", "list"});
  CHECK(deploys.exit_code == 69);
  CHECK(contains(deploys.output, "node edge at 127.0.0.1:" + std::to_string(fl.spec("edge").port)
                                   + " is unreachable"));

  auto state = brsh(fl, {"wait-for", "deploy", "d-1", "is", "succeeded"});
  CHECK(state.exit_code == 2);
  CHECK(contains(state.output, "'succeeded' is not a deployment state (pending, success, "
                               "failure); did you mean 'success'?"));

  auto rollback = brsh(fl, {"deploy", "rollback", "web"});
  CHECK(rollback.exit_code == 2);
  CHECK(contains(rollback.output, "exactly one of --node X or --role X"));
}

TEST_CASE("an unreachable node is named with the address brsh tried") {
  fleet fl{"brsh4", three_nodes()};
  auto r = brsh(fl, {"--node", "droplet", "members", "list"});
  CHECK(r.exit_code == 69);
  CHECK(contains(r.output, "node droplet at 127.0.0.1:" + std::to_string(fl.spec("droplet").port)
                             + " is unreachable"));
  CHECK(contains(r.output, "--node"));
}

TEST_CASE("with TLS on, brsh presents its own certificate from the fleet CA, or says which is missing") {
  fleet fl{"brsh9", three_nodes(), "", tls_section};
  if (!start_with_certs(fl))
    return;

  auto ok = brsh(fl, {"--node", "lucidia", "members", "list", "-o", "json"});
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  CHECK(parse_json(ok).size() == 3);

  auto missing = brsh(fl, {"members", "list"}, 20s, {"BRSH_CERT_NAME=operator"});
  CHECK(missing.exit_code == 78);
  CHECK(contains(missing.output, "cannot read its cert file '" + fl.dir().file("operator.pem")));
  CHECK(contains(missing.output, "BRSH_CERT_NAME"));
}

TEST_CASE("brsh's connections over TLS leave the fleet's own links up") {
  fleet fl{"brsh10", three_nodes(), "", tls_section};
  if (!start_with_certs(fl))
    return;
  // Without brsh, the links stay up.
  CHECK(first_break(fl.watchers_except("lucidia"), "lucidia", "alive", 2s) == "");
  // Each brsh run probes lucidia's port, connects with TLS, asks, and exits
  // (CAF closes the connection without a TLS close_notify).
  std::vector<int> codes;
  std::thread operator_shell{[&] {
    for (int i = 0; i < 8; ++i)
      codes.push_back(brsh(fl, {"--node", "lucidia", "members", "list"}).exit_code);
  }};
  auto broke = first_break(fl.watchers_except("lucidia"), "lucidia", "alive", 4s);
  operator_shell.join();
  CHECK(broke == "");
  CHECK(codes == std::vector<int>(8, 0));
  CHECK_MESSAGE(fl.process("lucidia").log_text().find("connection lost") == std::string::npos,
                "lucidia lost a connection to a peer");
}

TEST_CASE("a script's wait-for succeeds; one that times out exits 3 with a sentence") {
  fleet fl{"brsh5", three_nodes()};
  fl.start("edge");
  fl.start("droplet");
  auto ok = fl.dir().write("ok.brsh",
                           "# lucidia comes up while the script waits\n"
                           "wait-for node lucidia is alive --timeout 15s\n"
                           "check all nodes are alive\n"
                           "members list -o json\n");
  // brsh runs on a thread of its own; lucidia starts from this one (a child
  // dies with the thread that started it: PR_SET_PDEATHSIG).
  run_result r;
  std::thread script{[&] { r = brsh(fl, {"--node", "edge", "-f", ok}, 30s); }};
  std::this_thread::sleep_for(500ms);
  fl.start("lucidia");
  script.join();
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.output, "node lucidia is alive (after "));
  CHECK(contains(r.output, "every node is alive"));

  auto slow = fl.dir().write("slow.brsh",
                             "members list\n"
                             "\n"
                             "wait-for node droplet is down --timeout 1s   # it is not\n"
                             "echo never printed\n");
  auto t = brsh(fl, {"--node", "edge", "-f", slow}, 30s);
  INFO(t.output);
  CHECK(t.exit_code == 3);
  CHECK(contains(t.output, slow + ":3: timed out after 1s waiting for node droplet to be down; "
                                  "it is alive"));
  CHECK_FALSE(contains(t.output, "never printed"));
}

TEST_CASE("state digest --all is equal across nodes after writes") {
  fleet fl{"brsh6", three_nodes()};
  fl.start_all();
  REQUIRE(fl.wait_all_alive(15s));
  if (!has_state(fl))
    return;
  auto script = fl.dir().write(
    "writes.brsh",
    "state put deployments d1 '{\"v\":1,\"status\":\"started\"}'\n"
    "connect droplet\n"
    "state put deployments d2 '{\"v\":1,\"status\":\"done\",\"replicas\":3}'\n"
    "connect lucidia\n"
    "wait-for state deployments d1 status = started --timeout 10s\n"
    "wait-for state deployments d2 replicas = 3 --timeout 10s\n"
    "wait-for digests equal --timeout 10s\n");
  auto w = brsh(fl, {"--node", "edge", "-f", script}, 60s);
  INFO(w.output);
  REQUIRE(w.exit_code == 0);

  std::vector<json> digests;
  for (const auto& node : {"edge", "droplet", "lucidia"}) {
    auto r = brsh(fl, {"--node", node, "state", "digest", "--all", "-o", "json"});
    INFO("brsh --node " << node << ": " << r.output);
    REQUIRE(r.exit_code == 0);
    auto j = parse_json(r);
    CHECK(j["converged"] == true);
    CHECK(j["differing_tables"].empty());
    REQUIRE(j["nodes"].size() == 3);
    CHECK(j["nodes"]["edge"]["tables"] == j["nodes"]["droplet"]["tables"]);
    CHECK(j["nodes"]["edge"]["tables"] == j["nodes"]["lucidia"]["tables"]);
    digests.push_back(j["nodes"]["edge"]["tables"]);
  }
  CHECK(digests[0] == digests[1]);
  CHECK(digests[0] == digests[2]);

  auto get = brsh(fl, {"--node", "lucidia", "state", "get", "deployments", "d2", "-o", "json"});
  REQUIRE(get.exit_code == 0);
  auto row = parse_json(get);
  CHECK(row["value"]["status"] == "done");
  CHECK(row["origin"] == "droplet");
}

TEST_CASE("the interactive shell completes words and recalls history with the up arrow") {
  if (!tmux_shell::available()) {
    MESSAGE("tmux not found: interactive test skipped");
    return;
  }
  shell_session session{"brsh7"};
  auto& sh = *session.sh;

  sh.type("memb");
  sh.keys({"Tab"});
  REQUIRE_MESSAGE(sh.wait_for_text("brsh edge> members"), sh.screen());
  sh.type("l");
  sh.keys({"Tab"});
  REQUIRE_MESSAGE(sh.wait_for_text("brsh edge> members list"), sh.screen());
  sh.keys({"Enter"});
  REQUIRE_MESSAGE(sh.wait_for_text("(* the node brsh is connected to"), sh.screen());

  sh.type("node status dr");
  sh.keys({"Tab"});
  REQUIRE_MESSAGE(sh.wait_for_text("brsh edge> node status droplet"), sh.screen());
  sh.keys({"Enter"});
  REQUIRE_MESSAGE(sh.wait_for_text("data directory:"), sh.screen());

  if (has_state(session.fl)) {
    sh.type("state scan dep");
    sh.keys({"Tab"});
    REQUIRE_MESSAGE(sh.wait_for_text("brsh edge> state scan deployments"), sh.screen());
    sh.keys({"C-u"});
  }
  sh.type("wait-for node lu");
  sh.keys({"Tab"});
  sh.type("is al");
  sh.keys({"Tab"});
  REQUIRE_MESSAGE(sh.wait_for_text("brsh edge> wait-for node lucidia is alive"), sh.screen());
  sh.keys({"Enter"});
  REQUIRE_MESSAGE(sh.wait_for_text("node lucidia is alive (after"), sh.screen());

  // `members list` is three commands back: Up three times recalls it, and
  // running it again prints a second table.
  sh.keys({"Up"});
  sh.keys({"Up"});

  sh.keys({"Up"});
  REQUIRE_MESSAGE(sh.wait_for_screen([](const std::string& s) {
                    return s.rfind("brsh edge> members list") > s.rfind("node lucidia is alive");
                  }),
                  sh.screen());
  sh.keys({"Enter"});
  REQUIRE_MESSAGE(sh.wait_for_screen([](const std::string& s) {
                    return occurrences(s, "(* the node brsh is connected to") == 2;
                  }),
                  sh.screen());

  sh.type("exit");
  sh.keys({"Enter"});
  // libedit's history file escapes spaces as \040.
  REQUIRE(wait_until(
    [&] {
      return contains(read_file(session.home.file(".brsh_history")),
                      "node\\040status\\040droplet");
    },
    5s));
}

TEST_CASE("a node killed under a connected shell: the next command names another live node") {
  if (!tmux_shell::available()) {
    MESSAGE("tmux not found: interactive test skipped");
    return;
  }
  shell_session session{"brsh8"};
  auto& sh = *session.sh;
  auto& fl = session.fl;
  sh.type("members list");
  sh.keys({"Enter"});
  REQUIRE_MESSAGE(sh.wait_for_text("(* the node brsh is connected to"), sh.screen());

  fl.process("edge").kill9();
  std::this_thread::sleep_for(300ms);
  sh.type("members list");
  sh.keys({"Enter"});
  auto port = std::to_string(fl.spec("edge").port);
  REQUIRE_MESSAGE(sh.wait_for_text("node edge at 127.0.0.1:" + port + " is unreachable"),
                  sh.screen());
  auto screen = sh.screen();
  CHECK(contains(screen, "nodes alive when last seen: droplet, lucidia"));
  CHECK(contains(screen, "try `connect droplet`"));

  sh.type("connect droplet");
  sh.keys({"Enter"});
  REQUIRE_MESSAGE(sh.wait_for_text("brsh droplet>"), sh.screen());
}
