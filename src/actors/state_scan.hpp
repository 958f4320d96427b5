// For clients of the state actor (actors/state.hpp): reading a history table
// whose keys start with "d-<13-digit creation ms>" (deployment ids, task
// keys) one time bucket at a time (runtime/retention.hpp, ~28 hours each),
// so that months of history never make one message, nor keep the state
// actor busy building it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "actors/state.hpp"
#include "runtime/messages.hpp"
#include "runtime/retention.hpp"
#include "runtime/wall_clock.hpp"

namespace brd {

namespace state_scan_detail {

template <class Self, class State>
void scan_buckets(Self self, State state, std::string table,
                  std::chrono::milliseconds timeout,
                  std::shared_ptr<const std::vector<std::string>> buckets, size_t next,
                  std::function<void(std::vector<state_row>&)> each,
                  std::function<void(const caf::error&)> done) {
  if (next == buckets->size()) {
    done(caf::error{});
    return;
  }
  self->request(state, timeout, scan_atom::value, table, (*buckets)[next], scan_all)
    .then(
      [=](std::vector<state_row>& rows) {
        each(rows);
        scan_buckets(self, state, table, timeout, buckets, next + 1, each, done);
      },
      [=](const caf::error& err) { done(err); });
}

} // namespace state_scan_detail

// Calls `each` with the rows of `table` under "d-", a time bucket at a
// time, oldest first, from the oldest row's bucket to that of a day past
// now (ids made by a node whose clock is ahead are read too); then `done`
// with no error, or with the first error (no more buckets are read then).
// Every request has `timeout`. `state` is the state actor's handle, typed
// (state_actor) or not.
template <class Self, class State>
void scan_by_time(Self self, const State& state, std::string table,
                  std::chrono::milliseconds timeout,
                  std::function<void(std::vector<state_row>&)> each,
                  std::function<void(const caf::error&)> done) {
  auto until = wall_clock_ms() + 86'400'000;
  self->request(state, timeout, scan_atom::value, table, std::string{"d-"}, uint64_t{1})
    .then(
      [=](std::vector<state_row>& oldest) {
        auto first = oldest.empty() ? std::nullopt : key_time_ms(oldest.front().key, "d-");
        auto buckets = first ? time_buckets("d-", *first, until) : std::vector<std::string>{};
        state_scan_detail::scan_buckets(
          self, state, table, timeout,
          std::make_shared<const std::vector<std::string>>(std::move(buckets)), 0, each, done);
      },
      [=](const caf::error& err) { done(err); });
}

} // namespace brd
