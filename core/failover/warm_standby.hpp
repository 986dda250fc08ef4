// SPDX-License-Identifier: GPL-2.0-or-later
// Warm standby: on a node that is not primary, what the peers send (the external cache) is written into this
// node's own kernel table as it arrives, in batches, so that the table is complete before the virtual
// addresses move — OpenBSD's pfsync keeps its backups' state tables the same way. Becoming primary then only
// writes what is still pending (see RoleMachine). ADR-031 in docs/DECISIONS.md.
//
// It watches the external cache (CacheObserver) and keeps the keys that changed since they were last written;
// a write of at most `batch` entries runs from the event loop, and the loop runs between batches, so a bulk
// transfer of 200k entries never stalls the replication engine. Expectations are not written here: they are
// few and short-lived, and the promotion commit writes them all.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <ctsync/sdk/host.hpp>
#include <ctsync/sdk/source.hpp>
#include <deque>
#include <optional>
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
    // Nothing is waiting to be written.
    bool caught_up() const { return order_.empty(); }
    std::size_t pending() const { return order_.size(); }
    // Hands over what is still pending (upserts: the keys; deletes: the last state) and forgets it: a new
    // primary writes it in its commit.
    struct Pending {
        std::vector<sdk::FlowKey> upserts;
        std::vector<sdk::FlowState> deletes;
    };
    Pending take_pending();

    // CacheObserver (the external cache)
    void flow_changed(std::uint32_t id, const sdk::FlowState* before, const sdk::FlowState& after) override;
    void flow_removed(std::uint32_t id, const sdk::FlowState& last) override;
    void expectation_changed(const sdk::Expectation&) override {}
    void expectation_removed(const sdk::Expectation&) override {}

  private:
    void queue(const sdk::FlowKey& key, std::optional<sdk::FlowState> removed);
    void schedule();
    void drain();

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
};

}  // namespace ctsync::core
