#include "actors/introspect.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>

#include <caf/actor_system.hpp>
#include <caf/detail/behavior_impl.hpp>
#include <caf/scheduled_actor.hpp>

namespace brd::introspect {

namespace {

struct actor_stats {
  const caf::actor_system* sys = nullptr;
  std::string kind;
  uint64_t id = 0;
  std::atomic<int64_t> mailbox_size{0};
  std::atomic<int64_t> handled{0};
};

// Every instrumented actor of this process, by actor system. Entries expire
// with the behavior that owns them.
struct stats_registry {
  std::mutex mtx;
  std::vector<std::weak_ptr<actor_stats>> entries;

  void add(std::shared_ptr<actor_stats> st) {
    std::lock_guard<std::mutex> guard{mtx};
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [](auto& w) { return w.expired(); }),
                  entries.end());
    entries.push_back(std::move(st));
  }
};

stats_registry& registry() {
  static stats_registry instance;
  return instance;
}

// Runs the wrapped behavior; counts what it handled. CAF calls the
// type-erased overload for every non-empty message and invoke_empty for the
// empty one, so both count.
class counting_behavior : public caf::detail::behavior_impl {
public:
  counting_behavior(caf::scheduled_actor* self, std::shared_ptr<actor_stats> st,
                    pointer inner)
    : behavior_impl(inner->timeout()),
      self_(self),
      stats_(std::move(st)),
      inner_(std::move(inner)) {
  }

  caf::match_case::result invoke_empty(caf::detail::invoke_result_visitor& f) override {
    return count(inner_->invoke_empty(f));
  }

  caf::match_case::result invoke(caf::detail::invoke_result_visitor& f,
                                 caf::type_erased_tuple& xs) override {
    stats_->mailbox_size.store(static_cast<int64_t>(self_->mailbox().size()),
                               std::memory_order_relaxed);
    return count(inner_->invoke(f, xs));
  }

  void handle_timeout() override {
    inner_->handle_timeout();
  }

private:
  caf::match_case::result count(caf::match_case::result r) {
    if (r == caf::match_case::match)
      stats_->handled.fetch_add(1, std::memory_order_relaxed);
    return r;
  }

  caf::scheduled_actor* self_;
  std::shared_ptr<actor_stats> stats_;
  pointer inner_;
};

} // namespace

caf::behavior counted(caf::scheduled_actor* self, std::string kind,
                      caf::behavior inner) {
  auto st = std::make_shared<actor_stats>();
  st->sys = &self->home_system();
  st->kind = std::move(kind);
  st->id = self->id();
  registry().add(st);
  caf::behavior::impl_ptr impl{caf::make_counted<counting_behavior>(
    self, std::move(st), inner.as_behavior_impl())};
  return caf::behavior{std::move(impl)};
}

std::vector<actor_info>
local_actors(const caf::actor_system& sys,
             const std::vector<std::pair<std::string, caf::actor_addr>>& known) {
  std::vector<actor_info> out;
  {
    auto& reg = registry();
    std::lock_guard<std::mutex> guard{reg.mtx};
    for (auto& weak : reg.entries)
      if (auto st = weak.lock(); st && st->sys == &sys)
        out.push_back({st->kind, st->id,
                       st->mailbox_size.load(std::memory_order_relaxed),
                       st->handled.load(std::memory_order_relaxed)});
  }
  for (const auto& [kind, addr] : known) {
    if (!addr)
      continue;
    auto id = addr.id();
    auto same = [id](const actor_info& a) { return a.id == id; };
    if (std::none_of(out.begin(), out.end(), same))
      out.push_back({kind, id, -1, -1});
  }
  std::sort(out.begin(), out.end(),
            [](const actor_info& a, const actor_info& b) { return a.id < b.id; });
  return out;
}

} // namespace brd::introspect
