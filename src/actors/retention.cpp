#include "actors/retention.hpp"

#include <functional>
#include <memory>

#include <caf/typed_event_based_actor.hpp>

#include "io/deploy_records.hpp"
#include "io/workspace.hpp"
#include "runtime/errors.hpp"
#include "runtime/log.hpp"
#include "runtime/retention.hpp"
#include "runtime/wall_clock.hpp"

namespace brd {

namespace {

constexpr auto store_timeout = std::chrono::seconds{30};
// One bucket (~28 hours of history) per scan; the state actor caps a scan at
// scan_max_rows (100,000), far above what a fleet writes in a day.
constexpr uint64_t bucket_rows_max = 100'000;

using retention_ptr = retention_actor::pointer;

int64_t ms_of(std::chrono::days d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

void prune_logs(const retention_options& opts) {
  io::workspace ws{opts.workspace_root};
  auto removed = ws.prune_logs(wall_clock_ms() - ms_of(opts.keep_logs));
  if (!removed)
    log::deploy()->warn("cannot remove old task logs: {}", describe(removed.error()));
  else if (*removed > 0)
    log::deploy()->info("removed the task logs of {} deployment{} older than {} days",
                        *removed, *removed == 1 ? "" : "s", opts.keep_logs.count());
}

// One table's walk: its rows of this node that `expired` picks, bucket by
// bucket from the oldest row to the cutoff.
struct table_walk {
  std::string table;
  std::string head; // what keys start with before their 13 digits
  std::function<bool(const state_row&)> expired;
};

void walk_buckets(retention_ptr self, std::shared_ptr<const retention_options> opts,
                  std::shared_ptr<table_walk> walk, std::vector<std::string> buckets,
                  size_t next, size_t deleted, std::function<void()> done) {
  if (next == buckets.size()) {
    if (deleted > 0)
      log::deploy()->info("deleted {} {} row{} older than {} days", deleted, walk->table,
                          deleted == 1 ? "" : "s", opts->keep_history.count());
    done();
    return;
  }
  self->request(opts->state, store_timeout, scan_atom::value, walk->table, buckets[next],
                bucket_rows_max)
    .then(
      [=](std::vector<state_row>& rows) mutable {
        for (const auto& row : rows)
          if (row.origin == opts->self && walk->expired(row)) {
            self->request(opts->state, store_timeout, delete_atom::value, walk->table, row.key)
              .then([](write_ack&) {},
                    [table = walk->table, key = row.key](caf::error& err) {
                      log::deploy()->warn("cannot delete old {} row {}: {}", table, key,
                                          describe(err));
                    });
            ++deleted;
          }
        walk_buckets(self, opts, walk, std::move(buckets), next + 1, deleted, done);
      },
      [=](caf::error& err) {
        log::deploy()->warn("cannot read old {} rows: {}", walk->table, describe(err));
        done();
      });
}

void prune_table(retention_ptr self, std::shared_ptr<const retention_options> opts,
                 std::shared_ptr<table_walk> walk, int64_t cutoff, std::function<void()> done) {
  self->request(opts->state, store_timeout, scan_atom::value, walk->table, walk->head,
                uint64_t{1})
    .then(
      [=](std::vector<state_row>& oldest) {
        auto first = oldest.empty() ? std::nullopt : key_time_ms(oldest.front().key, walk->head);
        if (!first) {
          done();
          return;
        }
        walk_buckets(self, opts, walk, time_buckets(walk->head, *first, cutoff), 0, 0, done);
      },
      [=](caf::error& err) {
        log::deploy()->warn("cannot read old {} rows: {}", walk->table, describe(err));
        done();
      });
}

// The three history tables, one after another.
void prune_history(retention_ptr self, std::shared_ptr<const retention_options> opts) {
  auto cutoff = wall_clock_ms() - ms_of(opts->keep_history);
  io::workspace ws{opts->workspace_root};
  auto deployments = std::make_shared<table_walk>(table_walk{
    "deployments", std::string{"d-"}, [cutoff](const state_row& row) {
      auto d = io::decode<io::deployment_record>(row.value);
      return d && deployment_expired(*d, cutoff);
    }});
  auto tasks = std::make_shared<table_walk>(table_walk{
    "tasks", std::string{"d-"}, [cutoff, ws, self_name = opts->self](const state_row& row) {
      auto t = io::decode<io::task_record>(row.value);
      if (!t || !task_expired(*t, cutoff))
        return false;
      // A build this node still keeps is a rollback target: its row stays.
      return !(t->state == "succeeded" && t->node == self_name && ws.is_kept(t->repo, t->sha));
    }});
  auto alerts = std::make_shared<table_walk>(table_walk{
    "alerts", std::string{}, [cutoff](const state_row& row) {
      auto a = io::decode<io::alert_record>(row.value);
      return a && alert_expired(*a, cutoff);
    }});
  prune_table(self, opts, deployments, cutoff, [=] {
    prune_table(self, opts, tasks, cutoff, [=] { prune_table(self, opts, alerts, cutoff, [] {}); });
  });
}

retention_actor::behavior_type retention(retention_ptr self, retention_options options) {
  auto opts = std::make_shared<const retention_options>(std::move(options));
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      self->delayed_send(self, opts->every, tick_atom::value);
      prune_logs(*opts);
      prune_history(self, opts);
    },
  };
}

} // namespace

retention_actor spawn_retention(caf::actor_system& sys, retention_options opts) {
  return sys.spawn<caf::detached>(retention, std::move(opts));
}

} // namespace brd
