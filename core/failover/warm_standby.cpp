// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/failover/warm_standby.hpp"

#include <fmt/format.h>

#include <boost/asio/post.hpp>

#include "core/daemon/tables.hpp"

namespace ctsync::core {

WarmStandby::WarmStandby(boost::asio::any_io_executor executor, Tables& tables, std::size_t batch,
                         MetricsRegistry& metrics, sdk::Logger& log)
    : executor_(std::move(executor)),
      tables_(tables),
      batch_(batch == 0 ? 1 : batch),
      log_(log),
      pending_gauge_(
          metrics.gauge("failover.standby_pending", "warm standby: entries waiting to be written")),
      written_(metrics.counter("failover.standby_written", "warm standby: entries written into the kernel")),
      deleted_(metrics.counter("failover.standby_deleted", "warm standby: entries deleted from the kernel")),
      failed_(metrics.counter("failover.standby_failed",
                              "warm standby: writes the kernel refused (deletes of entries already gone "
                              "included)")),
      batches_(metrics.counter("failover.standby_batches", "warm standby: kernel writes")) {}

WarmStandby::~WarmStandby() {
    *alive_ = false;
}

void WarmStandby::set_active(bool active) {
    if (active == active_) {
        return;
    }
    active_ = active;
    pending_.clear();
    order_.clear();
    if (active) {
        tables_.external().for_each_flow([&](const sdk::FlowState& f) { queue(f.key(), std::nullopt); });
    }
    pending_gauge_.set(static_cast<std::int64_t>(order_.size()));
    log_.info(fmt::format("event=warm_standby state={} queued={}", active ? "on" : "off", order_.size()));
}

WarmStandby::Pending WarmStandby::take_pending() {
    Pending out;
    for (const auto& key : order_) {
        auto it = pending_.find(key);
        if (it == pending_.end()) {
            continue;
        }
        if (it->second) {
            out.deletes.push_back(*it->second);
        } else {
            out.upserts.push_back(key);
        }
    }
    pending_.clear();
    order_.clear();
    pending_gauge_.set(0);
    return out;
}

void WarmStandby::flow_changed(std::uint32_t, const sdk::FlowState*, const sdk::FlowState& after) {
    if (active_) {
        queue(after.key(), std::nullopt);
    }
}

void WarmStandby::flow_removed(std::uint32_t, const sdk::FlowState& last) {
    if (active_) {
        queue(last.key(), last);
    }
}

void WarmStandby::queue(const sdk::FlowKey& key, std::optional<sdk::FlowState> removed) {
    auto [it, inserted] = pending_.try_emplace(key, std::move(removed));
    if (inserted) {
        order_.push_back(key);
    } else {
        it->second = std::move(removed);  // the latest change wins: written or deleted once
    }
    pending_gauge_.set(static_cast<std::int64_t>(order_.size()));
    schedule();
}

void WarmStandby::schedule() {
    if (scheduled_ || !active_ || tables_.source() == nullptr) {
        return;
    }
    scheduled_ = true;
    // After the burst that queued it (a datagram's records, a bulk chunk): one write for all of them.
    boost::asio::post(executor_, [this, alive = alive_] {
        if (*alive) {
            scheduled_ = false;
            drain();
        }
    });
}

void WarmStandby::drain() {
    if (!active_ || order_.empty()) {
        return;
    }
    std::vector<sdk::FlowState> upserts;
    std::vector<sdk::FlowState> deletes;
    while (!order_.empty() && upserts.size() + deletes.size() < batch_) {
        sdk::FlowKey key = order_.front();
        order_.pop_front();
        auto it = pending_.find(key);
        if (it == pending_.end()) {
            continue;
        }
        if (it->second) {
            deletes.push_back(std::move(*it->second));
        } else if (const auto* flow = tables_.external().find(key)) {
            upserts.push_back(*flow);
        }
        pending_.erase(it);
    }
    pending_gauge_.set(static_cast<std::int64_t>(order_.size()));
    if (upserts.empty() && deletes.empty()) {
        return;
    }
    const std::size_t n_up = upserts.size();
    const std::size_t n_del = deletes.size();
    nlohmann::json report;
    try {
        report = tables_.write_entries(std::move(upserts), deletes, false, "standby_write", /*routine=*/true);
    } catch (const std::exception& e) {
        log_.error(fmt::format("event=standby_write_failed reason=\"{}\"", e.what()));
        return;
    }
    batches_.add();
    const auto failed = report.value("failed", std::uint64_t{0});
    failed_.add(failed);
    written_.add(n_up);
    deleted_.add(n_del);
    if (!order_.empty()) {
        schedule();  // the loop runs first: replication and timers are not held up by a long backlog
    }
}

}  // namespace ctsync::core
