// SPDX-License-Identifier: GPL-2.0-or-later
// The internal cache's writer: receives what the source reads (events and dumps) and keeps the cache equal
// to the kernel table. Dumps and events interleave; the rules that make the result exact:
//   - an event received during a dump is at least as recent as what the dump says of that entry, so the
//     dump's copy of a key an event touched (or destroyed) is ignored;
//   - every entry dumped or changed during dump N is stamped N; a complete dump then sweeps older stamps,
//     which removes what the kernel deleted while events were being lost (overrun), with no per-entry GETs.
#pragma once

#include <ctsync/sdk/filter.hpp>
#include <ctsync/sdk/host.hpp>
#include <ctsync/sdk/source.hpp>
#include <functional>
#include <unordered_set>

#include "core/cache/flow_cache.hpp"
#include "core/metrics/registry.hpp"

namespace ctsync::core {

class KernelView final : public sdk::FlowSink {
  public:
    // `accept` decides whether a flow belongs in the cache (the filters); flows it drops are removed.
    KernelView(FlowCache& cache, MetricsRegistry& metrics, sdk::Logger& log,
               std::function<bool(const sdk::FlowState&)> accept);

    void on_flow(sdk::EventKind kind, const sdk::FlowState& flow) noexcept override;
    void on_expectation(sdk::EventKind kind, const sdk::Expectation& expectation) noexcept override;
    void on_dump_begin(std::uint64_t generation) noexcept override;
    void on_dump_end(std::uint64_t generation, bool complete) noexcept override;
    void on_loss(sdk::LossReason reason, std::uint64_t count) noexcept override;

    bool dumping() const { return dumping_; }
    // Dumps completed so far.
    std::uint64_t completed_dumps() const { return completed_dumps_; }
    // The cache equals the kernel table: a dump completed, and it began after the last loss. A loss (overrun,
    // malformed event, cache error) clears it until a dump begun after the loss completes: the source starts
    // one once its queue is drained, and a dump already running when the loss happened does not count, since
    // what changed behind it was lost too.
    bool synced() const { return synced_; }

  private:
    void refresh_gauges();
    void lost(std::uint64_t count) noexcept;

    FlowCache& cache_;
    sdk::Logger& log_;
    std::function<bool(const sdk::FlowState&)> accept_;
    bool dumping_ = false;
    std::uint64_t generation_ = 0;
    std::uint64_t completed_dumps_ = 0;
    bool synced_ = false;
    bool lost_since_dump_begin_ = false;
    std::unordered_set<sdk::FlowKey, FlowKeyHash> touched_flows_;
    std::unordered_set<ExpectationKey, ExpectationKeyHash> touched_expectations_;

    sdk::Counter& events_;
    sdk::Counter& dumped_;
    sdk::Counter& swept_;
    sdk::Counter& filtered_;
    sdk::Counter& losses_;
    sdk::Counter& dumps_incomplete_;
    sdk::Gauge& flows_;
    sdk::Gauge& expectations_;
    sdk::Gauge& bytes_;
    sdk::Gauge& synced_gauge_;
};

}  // namespace ctsync::core
