#include "runtime/node.hpp"

#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/health.hpp"
#include "io/codec.hpp"
#include "io/http_server.hpp"
#include "io/metrics.hpp"
#include "io/store.hpp"
#include "io/sysinfo.hpp"
#include "runtime/errors.hpp"
#include "runtime/fleet_health.hpp"
#include "runtime/log.hpp"
#include "runtime/systemd.hpp"
#include "runtime/type_registry.hpp"

namespace brd {

namespace {

namespace fs = std::filesystem;

// Column families of the local store. The replicated tables come with the
// state actor; `meta` holds this node's identity.
const std::vector<std::string> column_families = {
  "meta", "nodes", "deployments", "tasks", "artifacts",
  "rollouts", "triage", "alerts"};

int fail(int code, const std::string& text) {
  std::fprintf(stderr, "brnode: %s\n", text.c_str());
  return code;
}

// Every configured TLS file must be readable before anything starts.
caf::error check_tls_files(const fleet_config& fleet, const tls_config& tls) {
  for (auto [key, path] : {std::pair{"tls.ca", tls.ca}, {"tls.cert", tls.cert},
                           {"tls.key", tls.key}}) {
    if (::access(path.c_str(), R_OK) != 0)
      return make_error(brd_errc::bad_config,
                        fleet.file + ": " + key + ": cannot read '" + path
                          + "': " + std::strerror(errno)
                          + "; fix: create the file (see README, TLS) or "
                            "remove the [tls] section to run in clear");
  }
  return caf::none;
}

// Reads the identity kept in the data directory, checks that it belongs to
// this node, and records the new incarnation. Returns the incarnation.
caf::expected<uint64_t> claim_identity(io::store& db, const fleet_config& fleet,
                                       const node_config& self) {
  io::node_record rec;
  auto stored = db.get("meta", "identity");
  if (!stored)
    return stored.error();
  if (*stored) {
    auto old = io::decode_node_record(**stored);
    if (!old)
      return old.error();
    if (old->name != self.name || old->cluster != fleet.cluster)
      return make_error(brd_errc::store_locked,
                        "data directory " + db.dir() + " belongs to node '"
                          + old->name + "' of cluster '" + old->cluster
                          + "'; fix: pass --data-dir with this node's own "
                            "directory");
    rec = *old;
  }
  rec.name = self.name;
  rec.cluster = fleet.cluster;
  rec.tier = to_string(self.tier);
  rec.roles = self.roles;
  rec.host = self.host;
  rec.port = self.port;
  rec.http_port = self.http_port;
  rec.version = BRD_VERSION;
  rec.incarnation += 1;
  rec.started_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  io::batch b;
  auto bytes = io::encode(rec);
  b.put("meta", "identity", bytes);
  b.put("nodes", self.name, bytes);
  if (auto err = db.write(b, true))
    return err;
  return rec.incarnation;
}

caf::expected<uint16_t> publish(caf::actor_system& sys, const health_actor& h,
                                uint16_t port, bool tls) {
  if (tls)
    return caf::openssl::publish(h, port, nullptr, true);
  return sys.middleman().publish(h, port, nullptr, true);
}

void install_build_metrics(io::metrics_registry& m, const node_config& self,
                           const fleet_config& fleet) {
  m.gauge("brnode_build_info", "Build and identity of this brnode",
          {{"version", BRD_VERSION}, {"node", self.name},
           {"cluster", fleet.cluster}, {"tier", to_string(self.tier)}})
    .set(1);
  m.on_collect([](io::metrics_registry& r) {
    r.gauge("brnode_process_resident_memory_bytes",
            "Resident memory of this brnode process", {})
      .set(static_cast<double>(io::resident_memory_bytes()));
  });
}

io::http_response json_reply(int status, const nlohmann::json& body) {
  io::http_response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

// Asks the health actor for the membership table, bounded by a timeout.
caf::expected<std::vector<member_view>> members(caf::actor_system& sys,
                                                const health_actor& h) {
  caf::scoped_actor self{sys};
  caf::expected<std::vector<member_view>> result{std::vector<member_view>{}};
  self->request(h, std::chrono::seconds(2), get_atom::value, members_atom::value)
    .receive([&](std::vector<member_view>& rows) { result = std::move(rows); },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

std::vector<io::http_route> http_routes(caf::actor_system& sys, health_actor h,
                                   const fleet_config& fleet,
                                   const node_name& self,
                                   std::shared_ptr<std::atomic<bool>> joined,
                                   std::shared_ptr<io::metrics_registry> m) {
  auto fleet_view = [&sys, h](auto render) {
    return [&sys, h, render](const io::http_request&) {
      auto rows = members(sys, h);
      if (!rows)
        return json_reply(503, {{"error", describe(rows.error())}});
      return json_reply(200, render(*rows));
    };
  };
  return {
    {"GET", "/livez",
     [](const io::http_request&) {
       return io::http_response{200, "text/plain", "ok\n", {}};
     }},
    {"GET", "/readyz",
     [joined](const io::http_request&) {
       if (joined->load())
         return json_reply(200, {{"ready", true}});
       return json_reply(503, {{"ready", false},
                               {"waiting_for", "a first connection attempt to every peer"}});
     }},
    {"GET", "/health", fleet_view([&fleet, self](const auto& rows) {
       return health_json(fleet, self, rows);
     })},
    {"GET", "/api/members", fleet_view([&fleet](const auto& rows) {
       return members_json(fleet, rows);
     })},
    {"GET", "/metrics",
     [m](const io::http_request&) {
       return io::http_response{200, io::prometheus_content_type, m->render(),
                                {}};
     }},
  };
}

// Waits for SIGTERM or SIGINT; tells systemd once the node has joined.
int await_stop_signal(const std::atomic<bool>& joined) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  bool told_ready = false;
  timespec poll_every{0, 50'000'000};
  for (;;) {
    if (!told_ready && joined.load()) {
      systemd::notify_ready();
      told_ready = true;
    }
    int sig = sigtimedwait(&set, nullptr, &poll_every);
    if (sig > 0)
      return sig;
  }
}

} // namespace

void block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

int run_node(const node_options& opts) {
  auto fleet = load_fleet_config(opts.config_path);
  if (!fleet)
    return fail(exit_config, describe(fleet.error()));
  const auto* self = fleet->find(opts.name);
  if (self == nullptr) {
    std::string names;
    for (const auto& n : fleet->nodes)
      names += (names.empty() ? "" : ", ") + n.name;
    return fail(exit_config,
                fleet->file + ": no node named '" + opts.name
                  + "'; fix: use one of " + names
                  + " or add a [[node]] entry with that name");
  }
  log::init(self->name, opts.log_level);
  auto tls = resolve_tls(*fleet, self->name);
  if (tls.enabled()) {
    if (auto err = check_tls_files(*fleet, tls))
      return fail(exit_config, describe(err));
  } else {
    log::net()->warn("traffic between nodes is in clear: {} has no [tls] "
                     "section (see README, TLS)",
                     fleet->file);
  }
  auto data_dir = opts.data_dir.empty() ? "data/" + self->name : opts.data_dir;
  auto db = io::store::open(data_dir, column_families);
  if (!db)
    return fail(exit_cant_create, describe(db.error()));
  auto incarnation = claim_identity(**db, *fleet, *self);
  if (!incarnation)
    return fail(exit_cant_create, describe(incarnation.error()));
  log::node()->info("starting {} (tier {}, roles [{}]) of cluster '{}', "
                    "incarnation {}, data in {}",
                    self->name, to_string(self->tier),
                    fmt::join(self->roles, ", "), fleet->cluster, *incarnation,
                    data_dir);

  system_config cfg{fleet->cluster, tls.enabled()};
  if (tls.enabled()) {
    cfg.openssl_cafile = tls.ca;
    cfg.openssl_certificate = tls.cert;
    cfg.openssl_key = tls.key;
  }
  caf::actor_system sys{cfg};
  auto metrics = std::make_shared<io::metrics_registry>();
  install_build_metrics(*metrics, *self, *fleet);
  auto joined = std::make_shared<std::atomic<bool>>(false);
  auto health = spawn_health(sys, {*fleet, self->name, data_dir, *incarnation,
                                   metrics, joined});
  auto stop_actors = [&] { caf::anon_send_exit(health, caf::exit_reason::user_shutdown); };
  if (auto port = publish(sys, health, self->port, tls.enabled()); !port) {
    stop_actors();
    return fail(exit_unavailable,
                "cannot listen for peers on actor port "
                  + std::to_string(self->port) + ": " + describe(port.error())
                  + "; fix: stop the process using it or change node '"
                  + self->name + "' port in " + fleet->file);
  }
  auto http = io::http_server::start(
    "0.0.0.0", self->http_port,
    http_routes(sys, health, *fleet, self->name, joined, metrics));
  if (!http) {
    stop_actors();
    return fail(exit_unavailable, describe(http.error()));
  }
  (*http)->set_metrics(metrics.get());
  log::node()->info("listening: actors on port {}{}, HTTP on port {}",
                    self->port, tls.enabled() ? " (mutual TLS)" : "",
                    self->http_port);

  int sig = await_stop_signal(*joined);
  log::node()->info("stopping on {}: leaving the fleet", strsignal(sig));
  systemd::notify_stopping();
  {
    caf::scoped_actor scope{sys};
    scope->request(health, std::chrono::seconds(1), leave_atom::value)
      .receive([](bool) {}, [](caf::error&) {});
  }
  // Give the goodbye a moment to cross the wire before connections close.
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  (*http)->stop();
  stop_actors();
  log::node()->info("stopped");
  return exit_ok;
}

} // namespace brd
