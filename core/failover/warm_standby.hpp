// SPDX-License-Identifier: GPL-2.0-or-later
// Warm standby: on a node that is not primary, what the peers send (the external cache) is written into this
// node's own kernel table as it arrives, in batches, so that the table is complete before the virtual
// addresses move — OpenBSD's pfsync keeps its backups' state tables the same way. Becoming primary then only
// writes what is still pending (see RoleMachine). ADR-031 in docs/DECISIONS.md.
//
// It watches the external cache (CacheObserver) and keeps the keys that changed since they were last written.
// Batches of at most `batch` entries are written by a thread of its own when the source allows it
// (Source::concurrent_writes, ABI 1.2): the loop only copies the entries out of the external cache and hands
// them over, so receiving replication never waits on the kernel, and while one batch is written the next
// one gathers (a burst is written in batches as large as `batch`). One batch is in flight at a time: the
// writes reach the kernel in the order the changes came. With a source that writes on the executor only,
// a batch is written from the loop, and the loop runs between batches. Either way a bulk of 200k entries
// never stalls the replication engine. Expectations are not written here: they are few and short-lived,
// and the promotion commit writes them all. ADR-031, ADR-037.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <condition_variable>
#include <cstdint>
#include <ctsync/sdk/host.hpp>
#include <ctsync/sdk/source.hpp>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/cache/flow_cache.hpp"
#include "core/metrics/registry.hpp"

namespace ctsync::core {

class Tables;

class WarmStandby final : public CacheObserver {
  public:
    WarmStandby(boost::asio::any_io_executor executor, Tables& tables, std::size_t batch,
                MetricsRegistry& metrics, sdk::Logger& log);
    ~WarmStandby() override;
    WarmStandby(const WarmStandby&) = delete;
    WarmStandby& operator=(const WarmStandby&) = delete;

    // On: every change of the external cache is written; turning it on queues the whole external cache.
    // Off (this node is primary): nothing is written and what was pending is forgotten.
    void set_active(bool active);
    bool active() const { return active_; }
    // Nothing is waiting to be written, and no batch is being written.
    bool caught_up() const { return order_.empty() && !in_flight_; }
    std::size_t pending() const { return order_.size(); }
    // Whether batches are written by the standby's own thread.
    bool threaded() const { return threaded_; }
    // Hands over what is still pending (upserts: the keys; deletes: the last state) and forgets it: a new
    // primary writes it in its commit. A batch being written is first waited for (it is in the kernel when
    // this returns), so that the commit never races it.
    struct Pending {
        std::vector<sdk::FlowKey> upserts;
        std::vector<sdk::FlowState> deletes;
    };
    Pending take_pending();
    // Waits for the batch being written, then ends the writer thread. Before the source is stopped.
    void stop();

    // CacheObserver (the external cache)
    void flow_changed(std::uint32_t id, const sdk::FlowState* before, const sdk::FlowState& after) override;
    void flow_removed(std::uint32_t id, const sdk::FlowState& last) override;
    void expectation_changed(const sdk::Expectation&) override {}
    void expectation_removed(const sdk::Expectation&) override {}

  private:
    struct Batch {
        std::vector<sdk::FlowState> upserts;  // adjusted for the kernel
        std::vector<sdk::FlowState> deletes;
    };
    void queue(const sdk::FlowKey& key, std::optional<sdk::FlowState> removed);
    void schedule();
    void drain();
    void written(const nlohmann::json& report, std::size_t upserts, std::size_t deletes);
    void run_writer();
    void wait_idle();

    boost::asio::any_io_executor executor_;
    Tables& tables_;
    const std::size_t batch_;
    sdk::Logger& log_;
    bool active_ = false;
    bool scheduled_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    // Per key: nullopt = write the external cache's current entry; a state = delete it (the last state).
    std::unordered_map<sdk::FlowKey, std::optional<sdk::FlowState>, FlowKeyHash> pending_;
    std::deque<sdk::FlowKey> order_;  // first change first; every key once
    sdk::Gauge& pending_gauge_;
    sdk::Counter& written_;
    sdk::Counter& deleted_;
    sdk::Counter& failed_;
    sdk::Counter& batches_;
    // A batch handed to the writer thread whose completion has not yet run on the loop.
    bool in_flight_ = false;
    const bool threaded_;
    // Shared with the writer thread, under mutex_.
    std::mutex mutex_;
    std::condition_variable wake_;  // a batch for the thread, or stop
    std::condition_variable idle_;  // the thread finished its batch
    std::optional<Batch> handed_;
    bool writing_ = false;
    bool stopping_ = false;
    std::thread writer_;
};

}  // namespace ctsync::core
