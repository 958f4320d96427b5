// Mutual TLS between nodes (CAF's OpenSSL module): nodes with certificates
// from the fleet's CA join; a node whose certificate comes from another CA is
// refused. Certificates are made with the openssl CLI in the test's temp dir.
#include <doctest/doctest.h>

#include <filesystem>

#include "harness.hpp"

using namespace brd::test;

namespace {

const char* tls_section = "[tls]\nca = \"ca.pem\"\ncert = \"{name}.pem\"\nkey = \"{name}.key\"\n";

// Makes certificates with the openssl CLI; every file goes under `dir`.
class cert_maker {
public:
  cert_maker(std::string openssl, const temp_dir& dir) : openssl_(std::move(openssl)), dir_(dir) {
    ext_ = dir_.write("node-ext.cnf",
                      "basicConstraints = CA:FALSE\n"
                      "keyUsage = digitalSignature, keyEncipherment\n"
                      "extendedKeyUsage = serverAuth, clientAuth\n"
                      "subjectAltName = IP:127.0.0.1, DNS:localhost\n");
  }

  // A self-signed CA: PREFIX.pem and PREFIX.key.
  void make_ca(const std::string& prefix) {
    run({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=" + prefix + "-test", "-keyout", dir_.file(prefix + ".key"), "-out",
         dir_.file(prefix + ".pem")});
  }

  // A node certificate with CN = node, signed by CA (a prefix given to
  // make_ca), written as PREFIX/NODE.pem and PREFIX/NODE.key ("" for none).
  void make_node(const std::string& node, const std::string& ca, const std::string& prefix = "") {
    auto base = dir_.file(prefix.empty() ? node : prefix + "/" + node);
    std::filesystem::create_directories(std::filesystem::path{base}.parent_path());
    run({"req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + node, "-keyout",
         base + ".key", "-out", base + ".csr"});
    run({"x509", "-req", "-in", base + ".csr", "-CA", dir_.file(ca + ".pem"), "-CAkey",
         dir_.file(ca + ".key"), "-set_serial", std::to_string(++serial_), "-days", "2",
         "-extfile", ext_, "-out", base + ".pem"});
  }

private:
  void run(std::vector<std::string> args) {
    args.insert(args.begin(), openssl_);
    auto r = run_program(args, 30s);
    INFO(r.output);
    REQUIRE_MESSAGE(r.exit_code == 0, "openssl " << args[1] << " failed");
  }

  std::string openssl_;
  const temp_dir& dir_;
  std::string ext_;
  int serial_ = 1000;
};

// openssl's path, or "" after telling the reader the test is skipped.
std::string openssl_or_skip() {
  auto path = find_program("openssl");
  if (path.empty())
    MESSAGE("openssl CLI not found on PATH: TLS cluster test skipped");
  return path;
}

// Makes the fleet's CA with certificates for `fleet_nodes`, a rogue CA with
// a certificate for c, and writes the intruder's config: it trusts the
// fleet's CA but presents the rogue certificate. Returns that config's path.
std::string make_intruder(const std::string& openssl, fleet& fl,
                          const std::vector<node_spec>& specs,
                          std::initializer_list<const char*> fleet_nodes) {
  cert_maker certs{openssl, fl.dir()};
  certs.make_ca("ca");
  certs.make_ca("rogue-ca");
  for (const std::string node : fleet_nodes)
    certs.make_node(node, "ca");
  certs.make_node("c", "rogue-ca", "rogue");
  return fl.dir().write(
    "rogue.toml", fleet_toml("t1", specs, "",
                             "[tls]\nca = \"ca.pem\"\ncert = \"rogue/{name}.pem\"\n"
                             "key = \"rogue/{name}.key\"\n"));
}

} // namespace

TEST_CASE("nodes with certificates from the fleet's CA join over mutual TLS") {
  auto openssl = openssl_or_skip();
  if (openssl.empty())
    return;
  fleet fl{"t1", make_specs(2), "", tls_section};
  cert_maker certs{openssl, fl.dir()};
  certs.make_ca("ca");
  certs.make_node("a", "ca");
  certs.make_node("b", "ca");
  fl.start_all();
  REQUIRE(fl.wait_all_alive(10s));
  // Joined means joined for good, not one lucky poll between reconnects.
  CHECK(fl.first_break_of_join(3s) == "");
  for (const std::string node : {"a", "b"}) {
    CAPTURE(node);
    auto log = fl.process(node).log_text();
    CHECK(log.find("(mutual TLS)") != std::string::npos);
    CHECK_MESSAGE(log.find("in clear") == std::string::npos, "a TLS node warned 'in clear'");
    CHECK_MESSAGE(log.find("connection lost") == std::string::npos,
                  "a TLS node lost a connection to its peer");
  }
}

TEST_CASE("a node whose certificate comes from another CA is never alive on the fleet") {
  auto openssl = openssl_or_skip();
  if (openssl.empty())
    return;
  auto specs = make_specs(3);
  fleet fl{"t1", specs, "", tls_section};
  // The intruder trusts the fleet's CA but presents a certificate of its own CA.
  auto rogue_config = make_intruder(openssl, fl, specs, {"a", "b", "c"});
  fl.start("a");
  fl.start("b");
  REQUIRE(fl.wait_all_alive(10s));

  auto& intruder = fl.start("c", rogue_config);
  auto watchers = fl.watchers_except("c");
  CHECK_FALSE(ever_in_state(watchers, "c", "alive", 3s));

  // Control: the same node with the fleet's certificate is let in.
  intruder.kill9();
  auto started_at = steady::now();
  fl.start("c");
  auto alive = ms_until_state(watchers, "c", "alive", started_at, 10s);
  MESSAGE("c with the fleet's certificate: alive after " << describe_times(alive));
  CHECK(alive.size() == watchers.size());
}

TEST_CASE("a fleet without [tls] logs a warning that traffic is in clear") {
  fleet fl{"t1", make_specs(1)};
  auto& a = fl.start("a");
  REQUIRE(wait_until([&] { return http_get_text(fl.http_port("a"), "/livez").status == 200; },
                     10s));
  auto line = line_with(a.log_text(), "in clear");
  CAPTURE(line);
  CHECK(line.find(" warn") != std::string::npos);
  CHECK(line.find(fl.config_path()) != std::string::npos);
}

// A refused TLS handshake with an intruder used to drop the fleet's other
// TLS connections for a moment: CAF 0.17's OpenSSL transport leaves the
// failure on the thread's OpenSSL error queue (io/openssl_clean_queue.cpp).
TEST_CASE("the fleet's own TLS links stay up while an intruder knocks") {
  auto openssl = openssl_or_skip();
  if (openssl.empty())
    return;
  auto specs = make_specs(3);
  fleet fl{"t1", specs, "", tls_section};
  auto rogue_config = make_intruder(openssl, fl, specs, {"a", "b"});
  fl.start("a");
  fl.start("b");
  REQUIRE(fl.wait_all_alive(10s));
  fl.start("c", rogue_config);
  CHECK(first_break({{"a", fl.http_port("a")}}, "b", "alive", 3s) == "");
  CHECK(first_break({{"b", fl.http_port("b")}}, "a", "alive", 3s) == "");
}
