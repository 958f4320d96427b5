// Network namespaces for partition tests (root only): each node runs in its
// own namespace with a data link into a bridge (the fleet's addresses) and a
// management link to the test, so a cut isolates nodes from each other but
// never from the test driving them over HTTP.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"
#include "state_client.hpp"

namespace brd::test {

// `n` namespaces and their links; everything is removed on destruction.
class netns_lab {
public:
  explicit netns_lab(size_t n);
  ~netns_lab();
  netns_lab(const netns_lab&) = delete;
  netns_lab& operator=(const netns_lab&) = delete;

  // Why the lab could not be made; "" when it works.
  const std::string& problem() const { return problem_; }

  std::string ns(size_t i) const;
  std::string data_ip(size_t i) const; // where peers reach node i
  std::string mgmt_ip(size_t i) const; // where the test reaches node i

  // Takes node i's data link down (cut from every peer) or up (heal).
  bool set_link(size_t i, bool up);
  // Cuts (or restores) nodes i and j from each other only, with blackhole
  // routes in both namespaces.
  bool set_pair_cut(size_t i, size_t j, bool cut);

private:
  std::string bridge() const;
  std::string ip(const std::vector<std::string>& args); // "" or what failed
  std::string setup();
  void teardown();

  size_t n_;
  std::string tag_, net_, ip_, problem_;
};

// Nodes a, b, ... of cluster "part", node i in namespace i of `lab`, with
// backoff_max_ms = 500. Prints every node's log tail when the test failed.
class netns_fleet {
public:
  netns_fleet(netns_lab& lab, size_t n);
  ~netns_fleet();
  netns_fleet(const netns_fleet&) = delete;
  netns_fleet& operator=(const netns_fleet&) = delete;

  // REQUIREs that every node sees every node alive and the digests agree.
  void join();

  std::vector<endpoint> nodes;

private:
  temp_dir dir_;
  std::vector<std::unique_ptr<node_process>> procs_;
};

// True when every node lists every node (itself included) as alive.
bool all_alive(const std::vector<endpoint>& nodes);

// The membership state of `node` as `at` sees it, or "".
std::string state_of(const endpoint& at, const std::string& node);

} // namespace brd::test
