// The etcd side of the replication benchmark: a 3-member etcd cluster on
// loopback under the same load shape (writers at every member, same value
// size), through etcd's HTTP/JSON gateway (POST /v3/kv/put).
#pragma once

#include <string>

#include "brd_load.hpp"

namespace bench {

struct etcd_result {
  std::string skipped;  // why etcd did not run ("" when it did)
  std::string failure;  // the run did not complete
  std::string version;
  size_t writes = 0, errors = 0;
  double seconds_acked = 0, seconds_everywhere = 0;
};

etcd_result run_etcd(const load_options& opts);

} // namespace bench
