#include "netns_lab.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

namespace brd::test {

// -- netns_lab ---------------------------------------------------------------------

netns_lab::netns_lab(size_t n) : n_(n) {
  tag_ = std::to_string(::getpid() % 1000);
  net_ = std::to_string(::getpid() % 250);
  ip_ = find_program("ip");
  if (ip_.empty()) {
    problem_ = "the `ip` program (iproute2) is not installed";
    return;
  }
  if (::geteuid() != 0) {
    problem_ = "network namespaces need root (run the test as root)";
    return;
  }
  teardown(); // leftovers of an earlier run with the same tag
  problem_ = setup();
}

netns_lab::~netns_lab() {
  if (!ip_.empty() && ::geteuid() == 0)
    teardown();
}

// Deleting a namespace deletes its veth ends, and with them their peers.
void netns_lab::teardown() {
  for (size_t i = 0; i < n_; ++i)
    ip({"netns", "del", ns(i)});
  ip({"link", "del", bridge()});
}

std::string netns_lab::ns(size_t i) const {
  return "sact" + tag_ + "-" + std::to_string(i);
}

std::string netns_lab::data_ip(size_t i) const {
  return "10.213." + net_ + "." + std::to_string(i + 1);
}

std::string netns_lab::mgmt_ip(size_t i) const {
  return "10." + std::to_string(215 + i) + "." + net_ + ".1";
}

bool netns_lab::set_link(size_t i, bool up) {
  return ip({"link", "set", "sd" + tag_ + "h" + std::to_string(i), up ? "up" : "down"}).empty();
}

bool netns_lab::set_pair_cut(size_t i, size_t j, bool cut) {
  auto verb = cut ? "add" : "del";
  return ip({"-n", ns(i), "route", verb, "blackhole", data_ip(j) + "/32"}).empty()
         && ip({"-n", ns(j), "route", verb, "blackhole", data_ip(i) + "/32"}).empty();
}

std::string netns_lab::bridge() const {
  return "sbr" + tag_;
}

std::string netns_lab::ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv{ip_};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_program(argv, 5s);
  if (r.exit_code == 0)
    return "";
  std::string cmd = "ip";
  for (const auto& a : args)
    cmd += " " + a;
  return "`" + cmd + "` failed (" + std::to_string(r.exit_code) + "): " + r.output;
}

// Each node: a veth into the bridge (data) and a veth to the root namespace
// on a subnet of its own (management).
std::string netns_lab::setup() {
  std::vector<std::vector<std::string>> cmds{
    {"link", "add", bridge(), "type", "bridge"},
    {"addr", "add", "10.213." + net_ + ".254/24", "dev", bridge()},
    {"link", "set", bridge(), "up"}};
  for (size_t i = 0; i < n_; ++i) {
    auto d = "sd" + tag_ + "h" + std::to_string(i), dn = "sd" + tag_ + "n" + std::to_string(i);
    auto m = "sm" + tag_ + "h" + std::to_string(i), mn = "sm" + tag_ + "n" + std::to_string(i);
    auto mnet = "10." + std::to_string(215 + i) + "." + net_;
    std::vector<std::vector<std::string>> node{
      {"netns", "add", ns(i)},
      {"link", "add", d, "type", "veth", "peer", "name", dn},
      {"link", "set", d, "master", bridge()},
      {"link", "set", d, "up"},
      {"link", "set", dn, "netns", ns(i)},
      {"-n", ns(i), "addr", "add", data_ip(i) + "/24", "dev", dn},
      {"-n", ns(i), "link", "set", dn, "up"},
      {"-n", ns(i), "link", "set", "lo", "up"},
      {"link", "add", m, "type", "veth", "peer", "name", mn},
      {"addr", "add", mnet + ".2/24", "dev", m},
      {"link", "set", m, "up"},
      {"link", "set", mn, "netns", ns(i)},
      {"-n", ns(i), "addr", "add", mgmt_ip(i) + "/24", "dev", mn},
      {"-n", ns(i), "link", "set", mn, "up"}};
    cmds.insert(cmds.end(), node.begin(), node.end());
  }
  for (const auto& c : cmds)
    if (auto err = ip(c); !err.empty())
      return err;
  return "";
}

// -- fleet in namespaces ------------------------------------------------------------------

bool all_alive(const std::vector<endpoint>& nodes) {
  for (const auto& n : nodes) {
    auto doc = call(n, "GET", "/api/members").doc();
    if (!doc.is_array() || doc.size() != nodes.size())
      return false;
    for (const auto& row : doc)
      if (row.value("state", "") != "alive")
        return false;
  }
  return true;
}

std::string state_of(const endpoint& at, const std::string& node) {
  auto doc = call(at, "GET", "/api/members").doc();
  if (doc.is_array())
    for (const auto& row : doc)
      if (row.value("node", "") == node)
        return row.value("state", "");
  return "";
}

netns_fleet::netns_fleet(netns_lab& lab, size_t n) {
  std::string toml = "[cluster]\nname = \"part\"\nbackoff_max_ms = 500\n\n";
  for (size_t i = 0; i < n; ++i) {
    std::string name(1, static_cast<char>('a' + i));
    nodes.push_back({name, lab.mgmt_ip(i), 4901});
    toml += "[[node]]\nname = \"" + name + "\"\ntier = \"pi\"\nroles = []\nhost = \""
            + lab.data_ip(i) + "\"\nport = 4801\nhttp_port = 4901\n\n";
  }
  auto config = dir_.write("fleet.toml", toml);
  for (size_t i = 0; i < n; ++i) {
    const auto& name = nodes[i].name;
    auto wrapper = dir_.write("run-" + name + ".sh", "#!/bin/sh\nexec " + find_program("ip")
                                                       + " netns exec " + lab.ns(i) + " "
                                                       + brnode_bin() + " \"$@\"\n");
    ::chmod(wrapper.c_str(), 0755);
    procs_.push_back(std::make_unique<node_process>(dir_.file(name + ".log")));
    procs_.back()->start(wrapper, config, name, dir_.file("data/" + name));
  }
}

netns_fleet::~netns_fleet() {
  if (current_test_failed())
    for (auto& p : procs_) {
      auto text = p->log_text();
      std::fprintf(stderr, "%s:\n%s\n", p->log_path().c_str(),
                   text.substr(text.size() > 4000 ? text.size() - 4000 : 0).c_str());
    }
}

void netns_fleet::join() {
  REQUIRE_MESSAGE(wait_until([&] { return all_alive(nodes); }, 20s, 50ms),
                  "the nodes did not join");
  REQUIRE_MESSAGE(ms_until_converged(nodes, 10s) >= 0, digest_difference(nodes));
}

} // namespace brd::test
