#include "writers.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "util.hpp"

namespace bench {

namespace {

using namespace std::chrono_literals;

struct writer_state {
  brd::state_actor target;
  std::string prefix, value;
  uint64_t next = 0, count = 0, done = 0;
  size_t batch = 1; // writes per request
  std::shared_ptr<write_counts> counts;
};

using writer_ptr = caf::stateful_actor<writer_state>*;

void issue(writer_ptr self);

// `n` writes were answered together (one request).
void finished(writer_ptr self, uint64_t n, bool ok) {
  auto& st = self->state;
  (ok ? st.counts->acked : st.counts->errors) += n;
  st.done += n;
  if (st.done == st.count) {
    ++st.counts->writers_done;
    self->quit();
    return;
  }
  issue(self);
}

void issue(writer_ptr self) {
  auto& st = self->state;
  if (st.next >= st.count)
    return;
  if (st.batch <= 1) {
    auto key = st.prefix + std::to_string(st.next++);
    self
      ->request(st.target, 120s, brd::put_atom::value, std::string{"tasks"}, std::move(key),
                st.value)
      .then([=](brd::write_ack&) { finished(self, 1, true); },
            [=](caf::error&) { finished(self, 1, false); });
    return;
  }
  auto n = std::min<uint64_t>(st.batch, st.count - st.next);
  std::vector<std::string> keys, values(n, st.value);
  for (uint64_t i = 0; i < n; ++i)
    keys.push_back(st.prefix + std::to_string(st.next++));
  self
    ->request(st.target, 120s, brd::put_atom::value, std::string{"tasks"}, std::move(keys),
              std::move(values))
    .then([=](brd::write_ack&) { finished(self, n, true); },
          [=](caf::error&) { finished(self, n, false); });
}

// Keeps `window` requests of `batch` puts outstanding until `count` puts
// are answered.
caf::behavior writer(writer_ptr self, brd::state_actor target, std::string prefix,
                     uint64_t count, size_t window, size_t batch, std::string value,
                     std::shared_ptr<write_counts> counts) {
  auto& st = self->state;
  st.batch = batch;
  st.target = std::move(target);
  st.prefix = std::move(prefix);
  st.value = std::move(value);
  st.count = count;
  st.counts = std::move(counts);
  for (size_t i = 0; i < window; ++i)
    issue(self);
  return {[](brd::tick_atom) {}};
}

// A request to the writer host, answered once its writers are done.
struct run {
  std::shared_ptr<write_counts> counts;
  uint64_t writers;
  caf::response_promise promise;
};

} // namespace

void spawn_writers(caf::actor_system& sys, const brd::state_actor& target,
                   const writer_plan& plan, std::shared_ptr<write_counts> counts) {
  for (size_t w = 0; w < plan.writers; ++w)
    sys.spawn(writer, target, plan.prefix + std::to_string(w) + "-", plan.per_writer,
              plan.window, plan.batch, plan.value, counts);
}

caf::behavior writer_host(caf::event_based_actor* self, brd::state_actor state) {
  auto runs = std::make_shared<std::vector<run>>();
  return {
    [=](brd::put_atom, std::string prefix, uint64_t per_writer, uint64_t writers,
        uint64_t window, uint64_t batch, uint64_t value_size) {
      auto counts = std::make_shared<write_counts>();
      writer_plan plan{std::move(prefix), per_writer, writers, window, batch,
                       record_of_size(value_size)};
      spawn_writers(self->system(), state, plan, counts);
      auto promise = self->make_response_promise();
      if (runs->empty())
        self->send(self, brd::tick_atom::value);
      runs->push_back({counts, writers, promise});
      return promise;
    },
    // Every millisecond while writers run: answers the runs that are done.
    [=](brd::tick_atom) {
      std::erase_if(*runs, [](run& r) {
        if (r.counts->writers_done < r.writers)
          return false;
        r.promise.deliver(r.counts->acked.load(), r.counts->errors.load());
        return true;
      });
      if (!runs->empty())
        self->delayed_send(self, 1ms, brd::tick_atom::value);
    },
  };
}

} // namespace bench
