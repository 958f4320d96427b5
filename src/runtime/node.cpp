#include "runtime/node.hpp"

#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include <charconv>

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/health.hpp"
#include "actors/state.hpp"
#include "io/codec.hpp"
#include "io/http_server.hpp"
#include "io/metrics.hpp"
#include "io/state_store.hpp"
#include "io/store.hpp"
#include "io/sysinfo.hpp"
#include "runtime/deploy_service.hpp"
#include "runtime/errors.hpp"
#include "runtime/fleet_health.hpp"
#include "runtime/log.hpp"
#include "runtime/systemd.hpp"
#include "runtime/type_registry.hpp"
#include "runtime/wall_clock.hpp"

namespace brd {

namespace {

namespace fs = std::filesystem;

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
// this node, and records the new incarnation. Returns the incarnation and
// the node's registry record (the state actor replicates it as nodes/NAME).
caf::expected<std::pair<uint64_t, std::string>> claim_identity(io::store& db, const fleet_config& fleet,
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
  rec.started_at_ms = wall_clock_ms();
  io::batch b;
  auto bytes = io::encode(rec);
  b.put("meta", "identity", bytes);
  if (auto err = db.write(b, true))
    return err;
  return std::pair{rec.incarnation, bytes};
}

caf::expected<uint16_t> publish(caf::actor_system& sys, const health_actor& h,
                                uint16_t port, bool tls) {
  if (tls)
    return caf::openssl::publish(h, port, nullptr, true);
  return sys.middleman().publish(h, port, nullptr, true);
}

void unpublish(caf::actor_system& sys, const health_actor& h, uint16_t port,
               bool tls) {
  // caf::openssl::unpublish does not compile in CAF 0.17.6; both managers
  // take the same message.
  auto mm = tls ? sys.openssl_manager().actor_handle()
                : sys.middleman().actor_handle();
  caf::anon_send(mm, caf::unpublish_atom::value, h.address(), port);
}

// The actor system's destructor waits for every detached actor to be
// released; CAF 0.17 occasionally keeps one referenced after a clean stop
// (seen about once in twenty stops under load; a private thread waits in
// await_self_destroyed forever: CAF issue #1196, fixed in 0.18 by #1202).
// The node has already left the fleet and synced its store by then, so a
// stuck teardown must not keep systemd waiting: exit anyway after `grace`.
void arm_exit_watchdog(std::chrono::seconds grace) {
  std::thread{[grace] {
    std::this_thread::sleep_for(grace);
    log::node()->warn("actor system teardown stuck for {} s after a clean "
                      "stop; exiting anyway",
                      grace.count());
    spdlog::shutdown();
    std::_Exit(exit_ok);
  }}.detach();
}

void install_build_metrics(io::metrics_registry& m, const node_config& self,
                           const fleet_config& fleet) {
  m.gauge("brnode_build_info", "Build and identity of this brnode",
          {{"version", BRD_VERSION}, {"allocator", io::allocator_name()},
           {"node", self.name},
           {"cluster", fleet.cluster}, {"tier", to_string(self.tier)}})
    .set(1);
  m.on_collect([](io::metrics_registry& r) {
    r.gauge("brnode_process_resident_memory_bytes",
            "Resident memory of this brnode process", {})
      .set(static_cast<double>(io::resident_memory_bytes()));
    r.gauge("brnode_malloc_allocated_bytes",
            "Bytes this brnode holds from malloc, as its allocator counts them",
            {})
      .set(static_cast<double>(io::malloc_allocated_bytes()));
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

// -- /api/state: the replicated tables over HTTP (tests, benchmarks, brsh) ---

constexpr auto state_read_timeout = std::chrono::seconds(5);
constexpr auto state_write_timeout = std::chrono::seconds(8); // > wait_timeout

// Asks the state actor and waits for its one-value reply.
template <class Reply, class... Ts>
caf::expected<Reply> ask_state(caf::actor_system& sys, const state_actor& st,
                               caf::timespan timeout, Ts&&... xs) {
  caf::scoped_actor self{sys};
  caf::expected<Reply> out{Reply{}};
  self->request(st, timeout, std::forward<Ts>(xs)...)
    .receive([&](Reply& reply) { out = std::move(reply); },
             [&](caf::error& err) { out = std::move(err); });
  return out;
}

io::http_response state_failure(const caf::error& err) {
  return json_reply(http_status_of(err), {{"error", describe(err)}});
}

// The value is shown decoded (msgpack -> JSON) and as hex bytes.
nlohmann::json row_json(const state_row& row) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : row.value)
    hex += {digits[c >> 4], digits[c & 15]};
  auto value = nlohmann::json::from_msgpack(row.value, true, false);
  return {{"table", row.table}, {"key", row.key},
          {"value", value.is_discarded() ? nlohmann::json{} : value},
          {"value_hex", hex}, {"hlc", row.hlc}, {"origin", row.origin},
          {"seq", row.seq}};
}

// A non-negative integer query parameter, or `fallback` when absent.
std::optional<uint64_t> number_param(const io::http_request& req,
                                     const std::string& name,
                                     uint64_t fallback) {
  auto i = req.params.find(name);
  if (i == req.params.end() || i->second.empty())
    return fallback;
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(i->second.data(),
                                   i->second.data() + i->second.size(), n);
  if (ec != std::errc{} || end != i->second.data() + i->second.size())
    return std::nullopt;
  return n;
}

std::vector<io::http_route> state_routes(caf::actor_system& sys, state_actor st,
                                         const node_name& self) {
  using req_t = const io::http_request&;
  auto write = [&sys, st](bool erase) {
    return [&sys, st, erase](req_t req) {
      auto wait_for = number_param(req, "wait_for", 0);
      if (!wait_for || *wait_for > UINT32_MAX)
        return json_reply(400, {{"error", "wait_for must be a number of peers"}});
      const auto& table = req.captures[0];
      const auto& key = req.captures[1];
      auto n = static_cast<uint32_t>(*wait_for);
      auto ack = erase ? ask_state<write_ack>(sys, st, state_write_timeout,
                                              delete_atom::value, table, key, n)
                       : ask_state<write_ack>(sys, st, state_write_timeout,
                                              put_atom::value, table, key,
                                              req.body, n);
      if (!ack)
        return state_failure(ack.error());
      return json_reply(erase ? 200 : 201, {{"hlc", ack->hlc},
                                            {"origin", ack->origin},
                                            {"seq", ack->seq}});
    };
  };
  const std::string row_path = "/api/state/([^/]+)/(.+)";
  return {
    {"GET", "/api/state/digest",
     [&sys, st, self](req_t) {
       caf::scoped_actor scope{sys};
       io::http_response out = json_reply(504, {{"error", "no reply"}});
       scope->request(st, state_read_timeout, digest_atom::value)
         .receive(
           [&](std::map<std::string, std::string>& tables,
               std::map<std::string, uint64_t>& vv) {
             out = json_reply(200, {{"node", self}, {"tables", tables},
                                    {"vv", vv}});
           },
           [&](caf::error& err) { out = state_failure(err); });
       return out;
     }},
    {"GET", row_path,
     [&sys, st](req_t req) {
       auto rows = ask_state<std::vector<state_row>>(
         sys, st, state_read_timeout, get_atom::value, req.captures[0],
         req.captures[1]);
       if (!rows)
         return state_failure(rows.error());
       if (rows->empty())
         return json_reply(404, {{"error", "no row " + req.captures[0] + "/"
                                             + req.captures[1]}});
       return json_reply(200, row_json(rows->front()));
     }},
    {"GET", "/api/state/([^/]+)",
     [&sys, st](req_t req) {
       auto limit = number_param(req, "limit", 1000);
       if (!limit)
         return json_reply(400, {{"error", "limit must be a number"}});
       auto prefix = req.params.count("prefix") ? req.params.at("prefix") : "";
       auto rows = ask_state<std::vector<state_row>>(
         sys, st, state_read_timeout, scan_atom::value, req.captures[0],
         prefix, *limit);
       if (!rows)
         return state_failure(rows.error());
       auto out = nlohmann::json::array();
       for (const auto& row : *rows)
         out.push_back(row_json(row));
       return json_reply(200, out);
     }},
    {"PUT", row_path, write(false)},
    {"POST", row_path, write(false)},
    {"DELETE", row_path, write(true)},
  };
}

std::vector<io::http_route> http_routes(caf::actor_system& sys, health_actor h,
                                   state_actor st,
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
  auto routes = state_routes(sys, std::move(st), self);
  std::vector<io::http_route> base{
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
  routes.insert(routes.begin(), base.begin(), base.end());
  return routes;
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
  auto db = io::store::open(data_dir, io::state_column_families());
  if (!db)
    return fail(exit_cant_create, describe(db.error()));
  auto identity = claim_identity(**db, *fleet, *self);
  if (!identity)
    return fail(exit_cant_create, describe(identity.error()));
  auto incarnation = identity->first;
  std::vector<std::string> origins;
  for (const auto& n : fleet->nodes)
    origins.push_back(n.name);
  auto tables = io::state_store::open(**db, self->name, origins);
  if (!tables)
    return fail(exit_cant_create, describe(tables.error()));
  log::node()->info("starting {} (tier {}, roles [{}]) of cluster '{}', "
                    "incarnation {}, data in {}",
                    self->name, to_string(self->tier),
                    fmt::join(self->roles, ", "), fleet->cluster, incarnation,
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
  auto health = spawn_health(sys, {*fleet, self->name, data_dir, incarnation,
                                   metrics, joined});
  auto state = spawn_state(sys, {*fleet, self->name, std::move(*tables), health,
                                 metrics});
  caf::anon_send(health, put_atom::value, std::string{"state"},
                 caf::actor_cast<caf::actor>(state));
  caf::anon_send(state, put_atom::value, std::string{"nodes"}, self->name,
                 identity->second);
  std::vector<caf::actor> extras;
  if (opts.extra_actors)
    for (auto& [name, actor] : opts.extra_actors(sys, caf::actor_cast<caf::actor>(state))) {
      caf::anon_send(health, put_atom::value, name, actor);
      extras.push_back(actor);
    }
  auto deploy = deploy_service::start(sys, {*fleet, self->name, data_dir, health, state, metrics});
  auto stop_actors = [&] {
    for (auto& extra : extras)
      caf::anon_send_exit(extra, caf::exit_reason::user_shutdown);
    if (deploy)
      (*deploy)->stop();
    caf::anon_send_exit(state, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(health, caf::exit_reason::user_shutdown);
  };
  if (!deploy) {
    stop_actors();
    return fail(exit_config, describe(deploy.error()));
  }
  if (auto port = publish(sys, health, self->port, tls.enabled()); !port) {
    stop_actors();
    return fail(exit_unavailable,
                "cannot listen for peers on actor port "
                  + std::to_string(self->port) + ": " + describe(port.error())
                  + "; fix: stop the process using it or change node '"
                  + self->name + "' port in " + fleet->file);
  }
  auto routes = http_routes(sys, health, state, *fleet, self->name, joined, metrics);
  routes.insert(routes.end(), (*deploy)->routes().begin(), (*deploy)->routes().end());
  // Handlers block on asks to actors (a webhook waits for its record to be
  // durable), so more workers than cores keep group commits full.
  constexpr size_t http_workers = 16;
  auto http = io::http_server::start("0.0.0.0", self->http_port, std::move(routes),
                                     (*deploy)->max_body_bytes(), http_workers);
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
  unpublish(sys, health, self->port, tls.enabled());
  stop_actors();
  log::node()->info("stopped");
  // A normal teardown takes milliseconds; 3 s keeps a stuck one well inside
  // the 5 s an operator (and cluster_membership) gives a SIGTERM.
  arm_exit_watchdog(std::chrono::seconds(3));
  return exit_ok;
}

} // namespace brd
