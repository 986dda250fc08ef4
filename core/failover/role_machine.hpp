// SPDX-License-Identifier: GPL-2.0-or-later
// The role state machine: INIT, BACKUP, PRIMARY, FAULT. HA plugins (keepalived) and `ctsyncctl role` / `-c`
// / `-t` drive it; it drives the tables, the replication engine and the warm standby.
//
//   -> PRIMARY, in order, each step timed (log: event=promote step=...; stats: failover.promote_*_us):
//        1. commit   — write into the kernel what it lacks of the external cache: everything (cold standby),
//                      or what the warm standby had not written yet and what the kernel dropped meanwhile;
//                      then every expectation. Proto handlers adjust each entry (TCP: window tracking off).
//        2. flush    — delete the kernel entries this node held when it stopped being primary (or at start)
//                      that the old primary never had (config failover.flush_unknown).
//        3. send     — the replication engine sends this node's changes; the external cache, now in the
//                      kernel, is emptied.
//        4. resync   — the whole table goes to every peer (a bulk addressed to all).
//   -> BACKUP: stop sending, warm standby on, ask every peer for a bulk transfer.
//   -> FAULT: stop sending (keepalived found this node unfit); keep receiving.
//
// Readiness for the HA plugin's priority hold: a primary is ready; a backup is ready once the engine holds
// every peer's table (bulk done) and the warm standby wrote it; when every peer is gone, a backup that was
// complete stays ready (the primary died), one that never was becomes ready after a whole peer_timeout alone
// (the last node left must be able to take over); FAULT is not ready.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <ctsync/sdk/ha.hpp>
#include <ctsync/sdk/host.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/config/daemon_config.hpp"
#include "core/metrics/registry.hpp"

namespace ctsync::core {

class Engine;
class Tables;
class WarmStandby;

class RoleMachine final : public sdk::RoleSink {
  public:
    // `engine` and `standby` may be null (no replication configured; cold standby).
    RoleMachine(boost::asio::any_io_executor executor, const FailoverOptions& options, Tables& tables,
                Engine* engine, WarmStandby* standby, std::chrono::milliseconds peer_timeout,
                MetricsRegistry& metrics, sdk::Logger& log);
    ~RoleMachine() override;
    RoleMachine(const RoleMachine&) = delete;
    RoleMachine& operator=(const RoleMachine&) = delete;

    // Enters `initial` (from the config when no HA plugin decides) and starts the readiness timer.
    void start(sdk::Role initial);
    void stop();
    // HA plugins told of readiness changes.
    void add_adapter(sdk::HaAdapter& adapter) { adapters_.push_back(&adapter); }

    // sdk::RoleSink (HA plugins).
    void on_role(sdk::Role role, const std::string& reason) noexcept override;
    // The same for the control socket; returns what was done (the promotion's steps). Throws
    // std::runtime_error when a step could not run (no source for a commit).
    nlohmann::json set_role(sdk::Role role, const std::string& reason);

    sdk::Role role() const { return role_; }
    bool ready() const;
    nlohmann::json status() const;

  private:
    using Clock = std::chrono::steady_clock;
    nlohmann::json promote(const std::string& reason);
    void capture_stale();
    // Records that a primary's whole table is held (the flush step's precondition).
    void note_primary_table();
    void tick();
    void schedule_tick();
    void push_readiness(bool force);

    boost::asio::any_io_executor executor_;
    FailoverOptions options_;
    Tables& tables_;
    Engine* engine_;
    WarmStandby* standby_;
    const std::chrono::milliseconds peer_timeout_;
    sdk::Logger& log_;
    std::vector<sdk::HaAdapter*> adapters_;
    boost::asio::steady_timer timer_;
    bool stopped_ = true;

    sdk::Role role_ = sdk::Role::kInit;
    Clock::time_point since_{};
    Clock::time_point alone_since_{};  // no live peer since (or since becoming backup)
    bool was_alone_ = true;
    bool complete_seen_ = false;  // the engine was complete since this node became backup
    // Keys this node's kernel held when it stopped being primary (or at start): flushed at the next
    // promotion unless the old primary had them.
    std::optional<std::vector<sdk::FlowKey>> stale_;
    bool capture_at_sync_ = false;     // capture the stale candidates once the first dump is complete
    bool primary_table_seen_ = false;  // since the capture, a primary's whole table was held
    std::optional<sdk::SyncReadiness> pushed_;
    Clock::time_point pushed_at_{};
    nlohmann::json last_promotion_ = nullptr;

    sdk::Gauge& role_gauge_;
    sdk::Gauge& ready_gauge_;
    sdk::Counter& changes_;
    sdk::Counter& promotions_;
    sdk::Gauge& commit_us_;
    sdk::Gauge& flush_us_;
    sdk::Gauge& send_us_;
    sdk::Gauge& resync_us_;
    sdk::Gauge& total_us_;
    sdk::Gauge& committed_;
    sdk::Gauge& commit_failed_;
    sdk::Gauge& flushed_;
};

}  // namespace ctsync::core
