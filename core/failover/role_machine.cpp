// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/failover/role_machine.hpp"

#include <fmt/format.h>

#include <unordered_set>

#include "core/daemon/tables.hpp"
#include "core/failover/warm_standby.hpp"
#include "core/replication/engine.hpp"

namespace ctsync::core {
namespace {

constexpr auto kTick = std::chrono::milliseconds(100);

std::string lower(sdk::Role role) {
    std::string s = sdk::to_string(role);
    for (auto& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

double ms_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

RoleMachine::RoleMachine(boost::asio::any_io_executor executor, const FailoverOptions& options,
                         Tables& tables, Engine* engine, WarmStandby* standby,
                         std::chrono::milliseconds peer_timeout, MetricsRegistry& metrics, sdk::Logger& log)
    : executor_(executor),
      options_(options),
      tables_(tables),
      engine_(engine),
      standby_(standby),
      peer_timeout_(peer_timeout),
      log_(log),
      timer_(executor),
      role_gauge_(metrics.gauge("failover.role", "this node's role: 0 INIT, 1 BACKUP, 2 PRIMARY, 3 FAULT")),
      ready_gauge_(metrics.gauge(
          "failover.ready", "1 when this node may become primary (told to the HA plugin's priority hold)")),
      changes_(metrics.counter("failover.role_changes", "role changes")),
      promotions_(metrics.counter("failover.promotions", "times this node became primary")),
      commit_us_(metrics.gauge("failover.promote_commit_us", "last promotion: commit step, microseconds")),
      flush_us_(metrics.gauge("failover.promote_flush_us", "last promotion: flush step, microseconds")),
      send_us_(metrics.gauge("failover.promote_send_us", "last promotion: start sending, microseconds")),
      resync_us_(metrics.gauge("failover.promote_resync_us", "last promotion: resync peers, microseconds")),
      total_us_(
          metrics.gauge("failover.promote_total_us",
                        "last promotion: role change received -> all committed and sending, microseconds")),
      committed_(
          metrics.gauge("failover.promote_committed", "last promotion: entries written into the kernel")),
      commit_failed_(metrics.gauge("failover.promote_failed", "last promotion: entries the kernel refused")),
      flushed_(
          metrics.gauge("failover.promote_flushed",
                        "last promotion: stale kernel entries deleted (the old primary never had them)")) {}

RoleMachine::~RoleMachine() {
    stop();
}

void RoleMachine::start(sdk::Role initial) {
    stopped_ = false;
    role_ = initial;
    since_ = alone_since_ = Clock::now();
    role_gauge_.set(static_cast<std::int64_t>(role_));
    if (engine_ != nullptr && role_ != sdk::Role::kPrimary) {
        engine_->set_sending(false);
    }
    if (standby_ != nullptr) {
        standby_->set_active(role_ != sdk::Role::kPrimary);
    }
    // What the kernel holds at start is stale once another node's table arrives: captured after the dump.
    capture_at_sync_ = role_ != sdk::Role::kPrimary;
    log_.info(fmt::format("event=role_initial role={} standby={} flush_unknown={}", lower(role_),
                          standby_ != nullptr ? "warm" : "cold", options_.flush_unknown));
    push_readiness(true);
    schedule_tick();
}

void RoleMachine::stop() {
    stopped_ = true;
    timer_.cancel();
}

void RoleMachine::on_role(sdk::Role role, const std::string& reason) noexcept {
    try {
        set_role(role, reason);
    } catch (const std::exception& e) {
        log_.error(fmt::format("event=role_change_failed to={} reason=\"{}\" error=\"{}\"", lower(role),
                               reason, e.what()));
    }
}

void RoleMachine::capture_stale() {
    std::vector<sdk::FlowKey> keys;
    keys.reserve(tables_.internal().flow_count());
    tables_.internal().for_each_flow([&](const sdk::FlowState& f) { keys.push_back(f.key()); });
    log_.info(fmt::format("event=stale_candidates entries={}", keys.size()));
    stale_ = std::move(keys);
    primary_table_seen_ = false;
}

nlohmann::json RoleMachine::set_role(sdk::Role role, const std::string& reason) {
    const sdk::Role from = role_;
    if (role == sdk::Role::kPrimary) {
        if (from == sdk::Role::kPrimary) {
            // conntrackd's -c on a primary: commit again; nothing else changes.
            if (tables_.source() == nullptr) {
                return {{"role", sdk::to_string(role_)},
                        {"unchanged", true},
                        {"commit", {{"skipped", "no source plugin: no kernel to write"}}}};
            }
            nlohmann::json commit = tables_.commit(nlohmann::json::object());
            return {{"role", sdk::to_string(role_)}, {"unchanged", true}, {"commit", commit}};
        }
        return promote(reason);
    }
    if (role == from) {
        return {{"role", sdk::to_string(role_)}, {"unchanged", true}};
    }
    const auto started = Clock::now();
    changes_.add();
    if (from == sdk::Role::kPrimary) {
        capture_stale();
    }
    role_ = role;
    since_ = started;
    role_gauge_.set(static_cast<std::int64_t>(role_));
    if (engine_ != nullptr) {
        engine_->set_sending(false);
    }
    if (standby_ != nullptr) {
        standby_->set_active(true);
    }
    complete_seen_ = false;  // a new bulk transfer is asked for (backup) or the node is unfit (fault)
    if (role == sdk::Role::kBackup) {
        alone_since_ = started;
        if (engine_ != nullptr) {
            engine_->request_bulk_from_all();
        }
    }
    log_.info(fmt::format("event=role_change from={} to={} reason=\"{}\" ms={:.1f}", lower(from), lower(role),
                          reason, ms_since(started)));
    push_readiness(true);
    return {{"role", sdk::to_string(role_)}, {"from", sdk::to_string(from)}};
}

nlohmann::json RoleMachine::promote(const std::string& reason) {
    const auto started = Clock::now();
    const sdk::Role from = role_;
    log_.info(fmt::format("event=promote step=begin from={} reason=\"{}\" external_flows={} standby={}",
                          lower(from), reason, tables_.external().flow_count(),
                          standby_ != nullptr ? "warm" : "cold"));
    nlohmann::json steps = nlohmann::json::array();
    auto record = [&](const char* step, Clock::time_point t0, sdk::Gauge& gauge, nlohmann::json detail) {
        const double ms = ms_since(t0);
        gauge.set(static_cast<std::int64_t>(ms * 1000.0));
        detail["step"] = step;
        detail["ms"] = ms;
        std::string fields;
        for (const auto& [k, v] : detail.items()) {
            if (k != "step" && k != "ms" && !v.is_object() && !v.is_array()) {
                fields += fmt::format(" {}={}", k, v.dump());
            }
        }
        log_.info(fmt::format("event=promote step={} ms={:.1f}{}", step, ms, fields));
        steps.push_back(std::move(detail));
    };

    // 1. commit: what the kernel lacks of the external cache.
    auto t0 = Clock::now();
    std::uint64_t committed = 0;
    std::uint64_t failed = 0;
    if (tables_.source() != nullptr) {
        std::vector<sdk::FlowState> upserts;
        std::vector<sdk::FlowState> deletes;
        if (standby_ != nullptr) {
            WarmStandby::Pending pending = standby_->take_pending();
            standby_->set_active(false);
            std::unordered_set<sdk::FlowKey, FlowKeyHash> dirty(pending.upserts.begin(),
                                                                pending.upserts.end());
            tables_.external().for_each_flow([&](const sdk::FlowState& f) {
                const auto key = f.key();
                if (dirty.count(key) != 0 || tables_.internal().find(key) == nullptr) {
                    upserts.push_back(f);
                }
            });
            deletes = std::move(pending.deletes);
        } else {
            tables_.external().for_each_flow([&](const sdk::FlowState& f) { upserts.push_back(f); });
        }
        nlohmann::json report = tables_.write_entries(std::move(upserts), deletes, true, "promote_commit");
        committed = report.value("applied", std::uint64_t{0});
        failed = report.value("failed", std::uint64_t{0});
        record("commit", t0, commit_us_,
               {{"flows", report["flows"]},
                {"deletes", report["deletes"]},
                {"expectations", report["expectations"]},
                {"applied", committed},
                {"failed", failed},
                {"errors", report["errors"]}});
    } else {
        record("commit", t0, commit_us_, {{"skipped", "no source plugin: no kernel to write"}});
    }
    committed_.set(static_cast<std::int64_t>(committed));
    commit_failed_.set(static_cast<std::int64_t>(failed));

    // 2. flush: stale entries the old primary never had.
    t0 = Clock::now();
    note_primary_table();  // completed since the last tick
    std::size_t flushed = 0;
    nlohmann::json flush_detail;
    if (!options_.flush_unknown) {
        flush_detail["skipped"] = "failover.flush_unknown is off";
    } else if (tables_.source() == nullptr) {
        flush_detail["skipped"] = "no source plugin";
    } else if (!stale_) {
        flush_detail["skipped"] = "the kernel table was not read yet";
    } else if (!primary_table_seen_) {
        // Without the old primary's whole table nothing is known to be stale: keep everything (a ctsyncd
        // restarted on a working primary must not empty its kernel).
        flush_detail["skipped"] =
            "no primary's complete table was held since this node stopped being primary";
    } else {
        std::vector<sdk::FlowState> deletes;
        for (const auto& key : *stale_) {
            const auto* flow = tables_.internal().find(key);
            if (flow != nullptr && tables_.external().find(key) == nullptr) {
                deletes.push_back(*flow);
            }
        }
        nlohmann::json report = tables_.write_entries({}, deletes, false, "promote_flush");
        flushed = report.value("applied", std::size_t{0});
        flush_detail = {{"candidates", stale_->size()}, {"deleted", flushed}, {"failed", report["failed"]}};
    }
    stale_.reset();
    flushed_.set(static_cast<std::int64_t>(flushed));
    record("flush", t0, flush_us_, flush_detail);

    // 3. send: this node's changes go to the peers; the external cache is in the kernel now.
    t0 = Clock::now();
    role_ = sdk::Role::kPrimary;
    since_ = started;
    role_gauge_.set(static_cast<std::int64_t>(role_));
    const std::size_t released = tables_.external().flow_count() + tables_.external().expectation_count();
    tables_.external().clear();
    if (engine_ != nullptr) {
        engine_->set_sending(true, /*announce=*/false);
    }
    record("send", t0, send_us_, {{"external_released", released}, {"replication", engine_ != nullptr}});

    // 4. resync: the whole table to every peer.
    t0 = Clock::now();
    if (engine_ != nullptr) {
        engine_->announce_table();
    }
    record("resync", t0, resync_us_, {{"bulk_to_all_queued", engine_ != nullptr}});

    const double total = ms_since(started);
    total_us_.set(static_cast<std::int64_t>(total * 1000.0));
    promotions_.add();
    changes_.add();
    log_.info(fmt::format("event=promote step=done from={} total_ms={:.1f} committed={} failed={} flushed={}",
                          lower(from), total, committed, failed, flushed));
    last_promotion_ = {{"from", sdk::to_string(from)},
                       {"reason", reason},
                       {"total_ms", total},
                       {"committed", committed},
                       {"failed", failed},
                       {"flushed", flushed},
                       {"steps", steps}};
    push_readiness(true);
    nlohmann::json out = last_promotion_;
    out["role"] = sdk::to_string(role_);
    return out;
}

bool RoleMachine::ready() const {
    if (role_ == sdk::Role::kPrimary) {
        return true;
    }
    if (role_ == sdk::Role::kFault) {
        return false;
    }
    if (standby_ != nullptr && !standby_->caught_up()) {
        return false;
    }
    if (engine_ == nullptr || engine_->complete()) {
        return true;
    }
    if (engine_->live_peers() != 0) {
        return false;  // a peer's table is awaited or arriving
    }
    // Nobody left: a table that was complete when the peers went stays the best there is (the primary
    // died: this backup must not lower its priority now); otherwise, alone long enough, the last node left
    // must be able to take over.
    return complete_seen_ || Clock::now() - alone_since_ >= peer_timeout_;
}

void RoleMachine::push_readiness(bool force) {
    sdk::SyncReadiness r;
    r.table_complete = ready();
    r.last_sequence = engine_ != nullptr ? engine_->last_applied_sequence() : 0;
    ready_gauge_.set(r.table_complete ? 1 : 0);
    const bool changed = !pushed_ || pushed_->table_complete != r.table_complete;
    const bool sequence_moved = pushed_ && pushed_->last_sequence != r.last_sequence;
    if (!force && !changed && !sequence_moved) {
        return;
    }
    if (changed && pushed_) {
        log_.info(fmt::format("event=readiness ready={} role={}", r.table_complete, lower(role_)));
    }
    pushed_ = r;
    for (auto* adapter : adapters_) {
        adapter->update_readiness(r);
    }
}

void RoleMachine::note_primary_table() {
    if (engine_ != nullptr && role_ != sdk::Role::kPrimary && stale_ && engine_->holds_primary_table()) {
        primary_table_seen_ = true;
    }
}

void RoleMachine::tick() {
    if (engine_ != nullptr) {
        if (role_ != sdk::Role::kPrimary && engine_->complete()) {
            complete_seen_ = true;
        }
        const bool alone = engine_->live_peers() == 0;
        if (alone && !was_alone_) {
            alone_since_ = Clock::now();
        }
        was_alone_ = alone;
        note_primary_table();
    }
    if (capture_at_sync_ && tables_.internal_synced()) {
        capture_at_sync_ = false;
        if (role_ != sdk::Role::kPrimary && !stale_) {
            capture_stale();
        }
    }
    push_readiness(false);
}

void RoleMachine::schedule_tick() {
    if (stopped_) {
        return;
    }
    timer_.expires_after(kTick);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopped_) {
            return;
        }
        tick();
        schedule_tick();
    });
}

nlohmann::json RoleMachine::status() const {
    const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since_).count();
    return {{"role", sdk::to_string(role_)},
            {"since_ms", since},
            {"ready", ready()},
            {"standby", standby_ != nullptr ? "warm" : "cold"},
            {"standby_pending", standby_ != nullptr ? standby_->pending() : 0},
            {"flush_unknown", options_.flush_unknown},
            {"stale_candidates", stale_ ? stale_->size() : 0},
            {"primary_table_seen", primary_table_seen_},
            {"last_promotion", last_promotion_}};
}

}  // namespace ctsync::core
