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
      batches_(metrics.counter("failover.standby_batches", "warm standby: kernel writes")),
      threaded_(tables.writes_off_loop()) {
    if (threaded_) {
        writer_ = std::thread([this] { run_writer(); });
    }
}

WarmStandby::~WarmStandby() {
    stop();
    *alive_ = false;
}

void WarmStandby::stop() {
    if (!writer_.joinable()) {
        return;
    }
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    writer_.join();
}

// The writer thread: one batch at a time, its outcome posted back to the loop.
void WarmStandby::run_writer() {
    for (;;) {
        Batch batch;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || handed_.has_value(); });
            if (!handed_) {
                return;  // stopping, nothing left to write
            }
            batch = std::move(*handed_);
            handed_.reset();
            writing_ = true;
        }
        nlohmann::json report;
        try {
            report = tables_.write_adjusted(batch.upserts, batch.deletes, "standby_write");
        } catch (const std::exception& e) {
            report = {{"failed", batch.upserts.size() + batch.deletes.size()}, {"error", e.what()}};
        }
        const std::size_t n_up = batch.upserts.size();
        const std::size_t n_del = batch.deletes.size();
        {
            std::lock_guard lock(mutex_);
            writing_ = false;
        }
        idle_.notify_all();
        boost::asio::post(executor_, [this, alive = alive_, report = std::move(report), n_up, n_del] {
            if (*alive) {
                in_flight_ = false;
                written(report, n_up, n_del);
            }
        });
    }
}

void WarmStandby::wait_idle() {
    if (!threaded_) {
        return;
    }
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return !handed_.has_value() && !writing_; });
}

void WarmStandby::set_active(bool active) {
    if (active == active_) {
        return;
    }
    active_ = active;
    wait_idle();  // a batch being written finishes first: the new role's writes never race it
    pending_.clear();
    order_.clear();
    if (active) {
        tables_.external().for_each_flow([&](const sdk::FlowState& f) { queue(f.key(), std::nullopt); });
    }
    pending_gauge_.set(static_cast<std::int64_t>(order_.size()));
    log_.info(fmt::format("event=warm_standby state={} queued={} writer={}", active ? "on" : "off",
                          order_.size(), threaded_ ? "thread" : "loop"));
}

WarmStandby::Pending WarmStandby::take_pending() {
    wait_idle();
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
    if (!active_ || order_.empty() || in_flight_) {
        return;  // a batch in flight: its completion drains again
    }
    Batch batch;
    while (!order_.empty() && batch.upserts.size() + batch.deletes.size() < batch_) {
        sdk::FlowKey key = order_.front();
        order_.pop_front();
        auto it = pending_.find(key);
        if (it == pending_.end()) {
            continue;
        }
        if (it->second) {
            batch.deletes.push_back(std::move(*it->second));
        } else if (const auto* flow = tables_.external().find(key)) {
            batch.upserts.push_back(*flow);
        }
        pending_.erase(it);
    }
    pending_gauge_.set(static_cast<std::int64_t>(order_.size()));
    if (batch.upserts.empty() && batch.deletes.empty()) {
        return;
    }
    tables_.adjust_for_commit(batch.upserts);  // proto handlers run on the loop only
    if (threaded_) {
        in_flight_ = true;
        {
            std::lock_guard lock(mutex_);
            handed_ = std::move(batch);
        }
        wake_.notify_one();
        return;
    }
    nlohmann::json report;
    try {
        report = tables_.write_adjusted(batch.upserts, batch.deletes, "standby_write");
    } catch (const std::exception& e) {
        report = {{"failed", batch.upserts.size() + batch.deletes.size()}, {"error", e.what()}};
    }
    written(report, batch.upserts.size(), batch.deletes.size());
}

void WarmStandby::written(const nlohmann::json& report, std::size_t upserts, std::size_t deletes) {
    if (auto error = report.find("error"); error != report.end()) {
        log_.error(fmt::format("event=standby_write_failed reason=\"{}\"", error->get<std::string>()));
    } else {
        batches_.add();
        failed_.add(report.value("failed", std::uint64_t{0}));
        written_.add(upserts);
        deleted_.add(deletes);
    }
    if (!order_.empty()) {
        schedule();  // the loop runs first: replication and timers are not held up by a long backlog
    }
}

}  // namespace ctsync::core
