// Test-side access to the replicated state of real brnode processes: the
// /api/state HTTP endpoints (writes, reads, digests) and a CAF client that
// reaches a node's state actor the way a peer or brsh does.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "runtime/messages.hpp"

namespace brd::test {

// A node as the test reaches it: over loopback, or at its own address when
// it runs in a network namespace.
struct endpoint {
  std::string name;
  std::string host = "127.0.0.1";
  uint16_t http_port = 0;
};

std::vector<endpoint> endpoints_of(fleet& fl);

struct reply {
  int status = 0; // 0: no answer
  std::string body;
  nlohmann::json doc() const { return nlohmann::json::parse(body, nullptr, false); }
};

// GET, PUT (body as msgpack) or DELETE.
reply call(const endpoint& to, const std::string& method, const std::string& path,
           const std::string& body = "");

// A msgpack record {"v": 1, ...fields}.
std::string record(nlohmann::json fields);
std::string hex(const std::string& bytes);

// What a node acknowledged for one write.
struct acked_write {
  std::string key;
  std::string value_hex; // "" for a delete
  uint64_t hlc = 0;
  std::string origin;
};

// Writes through /api/state; nullopt unless acknowledged (201 / 200).
std::optional<acked_write> put(const endpoint& to, const std::string& table,
                               const std::string& key, const std::string& value,
                               int wait_for = 0);
std::optional<acked_write> erase(const endpoint& to, const std::string& table,
                                 const std::string& key);

// key -> value_hex of the live rows under `prefix`; nullopt when the node
// does not answer.
std::optional<std::map<std::string, std::string>>
rows(const endpoint& at, const std::string& table, const std::string& prefix);

// The node's digest ({"tables": ..., "vv": ...}), or null.
nlohmann::json digest(const endpoint& at);

// "" when every node shows the same digest and version vector, else what
// differs.
std::string digest_difference(const std::vector<endpoint>& nodes);

// Milliseconds until the digests agree, or -1 after `timeout`.
long ms_until_converged(const std::vector<endpoint>& nodes, millis timeout);

// "" when every write of `expected` (key -> value_hex) is on `at`.
std::string missing_on(const endpoint& at, const std::string& table, const std::string& prefix,
                       const std::map<std::string, std::string>& expected);

// CHECKs that every node holds, per key, the acked write that wins by the
// merge rule (highest (hlc, origin)); keys whose winner is a delete absent.
void check_winners(const std::vector<endpoint>& nodes, const std::string& table,
                   const std::string& prefix, const std::vector<acked_write>& writes);

// Starts every node of `fl`, REQUIREs that they join and that their digests
// agree (each node writes its own nodes/NAME record on start).
void start_and_join(fleet& fl);

// A CAF node of the fleet's cluster (same app identifier) that reaches a
// node's state actor through its health actor, as a peer (or brsh) would.
class caf_client {
public:
  caf_client(const std::string& cluster, uint16_t actor_port);
  ~caf_client();
  caf_client(const caf_client&) = delete;
  caf_client& operator=(const caf_client&) = delete;

  // Pushes `batch` as a peer would; the node's version vector as JSON, or
  // "error: ...".
  std::string push(repl_batch batch);

  // Subscribes to `table`; next_change() then waits for one change.
  void subscribe(const std::string& table);
  std::optional<state_entry> next_change(millis timeout);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace brd::test
