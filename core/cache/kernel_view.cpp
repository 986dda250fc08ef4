// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/cache/kernel_view.hpp"

#include <fmt/format.h>

#include <optional>

namespace ctsync::core {

using sdk::EventKind;

namespace {

// An UPDATE event carries what changed (ctnetlink_conntrack_event): the protocol info only when it changed
// (a mark set on a later packet arrives without the TCP state), the labels only when they changed, the
// sequence adjustment only when it changed. What it leaves out keeps the value the cache holds. An all-zero
// protocol info is never a real one after confirmation (TCP, SCTP and DCCP state NONE precede the first
// packet); all-zero labels are taken for absent, so labels cleared all at once through ctnetlink stay until
// the next dump.
sdk::FlowState complete_update(const sdk::FlowState& update, const sdk::FlowState& held) {
    sdk::FlowState f = update;
    if (f.tcp == sdk::TcpState{}) {
        f.tcp = held.tcp;
    }
    if (f.sctp == sdk::SctpState{}) {
        f.sctp = held.sctp;
    }
    if (f.dccp == sdk::DccpState{}) {
        f.dccp = held.dccp;
    }
    if (f.labels == sdk::Labels{}) {
        f.labels = held.labels;
    }
    if (!f.seq_original.present) {
        f.seq_original = held.seq_original;
    }
    if (!f.seq_reply.present) {
        f.seq_reply = held.seq_reply;
    }
    return f;
}

}  // namespace

KernelView::KernelView(FlowCache& cache, MetricsRegistry& metrics, sdk::Logger& log,
                       std::function<bool(const sdk::FlowState&)> accept)
    : cache_(cache),
      log_(log),
      accept_(std::move(accept)),
      events_(metrics.counter("internal.events", "kernel events applied to the internal cache")),
      dumped_(metrics.counter("internal.dumped", "entries read by dumps")),
      swept_(metrics.counter("internal.swept", "entries removed by mark and sweep after a dump")),
      filtered_(metrics.counter("internal.filtered", "flows left out by the filters")),
      losses_(
          metrics.counter("internal.losses", "times the source reported lost events (repaired by a dump)")),
      dumps_incomplete_(metrics.counter("internal.dumps_incomplete", "dumps that ended early (no sweep)")),
      flows_(metrics.gauge("internal.flows", "flows in the internal cache")),
      expectations_(metrics.gauge("internal.expectations", "expectations in the internal cache")),
      bytes_(metrics.gauge("internal.bytes", "heap bytes of the internal cache")),
      synced_gauge_(
          metrics.gauge("internal.synced",
                        "1 while the internal cache equals the kernel table (a dump begun after the "
                        "last loss completed), else 0")) {}

void KernelView::lost(std::uint64_t count) noexcept {
    losses_.add(count);
    synced_ = false;
    lost_since_dump_begin_ = true;
    synced_gauge_.set(0);
}

void KernelView::refresh_gauges() {
    flows_.set(static_cast<std::int64_t>(cache_.flow_count()));
    expectations_.set(static_cast<std::int64_t>(cache_.expectation_count()));
}

void KernelView::on_flow(EventKind kind, const sdk::FlowState& flow) noexcept {
    try {
        const auto key = flow.key();
        if (kind == EventKind::kDump) {
            dumped_.add();
            if (dumping_ && touched_flows_.count(key) != 0) {
                cache_.touch(key, generation_);  // an event during this dump already said more
                return;
            }
        } else {
            events_.add();
            if (dumping_) {
                touched_flows_.insert(key);
            }
        }
        if (kind == EventKind::kDestroy) {
            cache_.erase(key);
            refresh_gauges();
            return;
        }
        // Only an UPDATE of a held entry is completed (a copy); everything else is taken as it came.
        std::optional<sdk::FlowState> completed;
        if (kind == EventKind::kUpdate) {
            if (const sdk::FlowState* held = cache_.find(key)) {
                completed = complete_update(flow, *held);
            }
        }
        const sdk::FlowState& complete = completed ? *completed : flow;
        if (accept_ && !accept_(complete)) {
            filtered_.add();
            cache_.erase(key);
        } else {
            cache_.upsert(complete, generation_);
        }
        refresh_gauges();
    } catch (const std::exception& e) {
        // Out of memory in the middle of the event path: count as a loss and let a dump repair it.
        lost(1);
        log_.error(fmt::format("event=internal_cache_error reason=\"{}\"", e.what()));
    }
}

void KernelView::on_expectation(EventKind kind, const sdk::Expectation& expectation) noexcept {
    try {
        const auto key = key_of(expectation);
        if (kind == EventKind::kDump) {
            dumped_.add();
            if (dumping_ && touched_expectations_.count(key) != 0) {
                cache_.touch(key, generation_);
                return;
            }
        } else {
            events_.add();
            if (dumping_) {
                touched_expectations_.insert(key);
            }
        }
        if (kind == EventKind::kDestroy) {
            cache_.erase(key);
        } else {
            cache_.upsert(expectation, generation_);
        }
        refresh_gauges();
    } catch (const std::exception& e) {
        lost(1);
        log_.error(fmt::format("event=internal_cache_error reason=\"{}\"", e.what()));
    }
}

void KernelView::on_dump_begin(std::uint64_t generation) noexcept {
    dumping_ = true;
    generation_ = generation;
    touched_flows_.clear();
    touched_expectations_.clear();
    lost_since_dump_begin_ = false;
    log_.debug(fmt::format("event=dump_begin generation={}", generation));
}

void KernelView::on_dump_end(std::uint64_t generation, bool complete) noexcept {
    dumping_ = false;
    touched_flows_.clear();
    touched_expectations_.clear();
    if (!complete) {
        dumps_incomplete_.add();
        log_.warn(fmt::format("event=dump_incomplete generation={} action=keep_cache", generation));
        return;
    }
    std::size_t removed = cache_.sweep(generation);
    swept_.add(removed);
    ++completed_dumps_;
    if (!lost_since_dump_begin_) {
        synced_ = true;
        synced_gauge_.set(1);
    }
    bytes_.set(static_cast<std::int64_t>(cache_.memory_bytes()));
    refresh_gauges();
    log_.info(fmt::format("event=dump_complete generation={} flows={} expectations={} swept={} synced={}",
                          generation, cache_.flow_count(), cache_.expectation_count(), removed, synced_));
}

void KernelView::on_loss(sdk::LossReason reason, std::uint64_t count) noexcept {
    lost(count);
    log_.warn(fmt::format("event=events_lost reason={} count={} action=resync",
                          reason == sdk::LossReason::kOverrun ? "overrun" : "malformed", count));
}

}  // namespace ctsync::core
