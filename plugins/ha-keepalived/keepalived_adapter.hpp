// SPDX-License-Identifier: GPL-2.0-or-later
// ha-keepalived: this node's role from keepalived's notify FIFO, and its readiness back to keepalived
// through a track file.
//
// The FIFO is opened read-only and non-blocking, without a write end of our own: when keepalived closes it
// (restart, reload) the read side sees end-of-file, which is logged, and the FIFO is opened again after
// `reopen_interval`. keepalived itself opens the FIFO read-write, so what it writes while nobody reads waits
// in the pipe. The path is also checked every `reopen_interval`: a different FIFO there (keepalived
// recreates the FIFOs it made itself) is switched to after what is left in the old one was read.
//
// The track file holds one integer that keepalived multiplies by the track_file weight (use 1) and adds to
// the priority: `hold_value` until the table is complete, then `ready_value` (plus a bonus from the last
// sequence with `weight_by_sequence`). It is replaced atomically (temporary file, rename) and only when
// the value changes. Everything runs on the host's executor; the plugin owns no threads.
#pragma once

#include <sys/types.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <ctsync/sdk/sdk.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "notify_line.hpp"

namespace ha_keepalived {

// With weight 1 on keepalived's side, -253 lowers any priority to 1, keepalived's lowest: the node is then
// chosen only when no other node is left. Below -253 keepalived puts the instance in FAULT instead.
inline constexpr int kDefaultHoldValue = -253;
inline constexpr int kDefaultReadyValue = 0;
inline constexpr int kDefaultSequenceBonusMax = 50;
// keepalived adds a track file's result to the priority only within [-253, 253].
inline constexpr int kMaxAddedPriority = 253;
// With weight_by_sequence the value follows the sequence; it is rewritten at most this often.
inline constexpr std::chrono::milliseconds kBonusRewriteInterval{1000};
// A failed write of the track file is tried again after this long.
inline constexpr std::chrono::milliseconds kTrackRetryInterval{1000};

struct AdapterOptions {
    std::string fifo;
    std::vector<std::string> instances;
    std::vector<std::string> groups;
    bool create_fifo = true;
    std::chrono::milliseconds reopen_interval{500};
    std::string track_file;  // empty: no feedback to keepalived
    int hold_value = kDefaultHoldValue;
    int ready_value = kDefaultReadyValue;
    bool weight_by_sequence = false;
    int sequence_bonus_max = kDefaultSequenceBonusMax;
};

// Cross-key checks (the key table checked types and bounds): at least one instance or group, names
// keepalived can have and none listed twice, distinct paths, a hold that differs from ready, a weighted
// value keepalived adds whole. Paths are relative to the plugin's config object (".instances[1]").
void validate_options(const AdapterOptions& options, ctsync::sdk::ConfigErrors& errors);

// The value the track file should hold: hold_value while the table is incomplete; ready_value once it is
// complete; with weight_by_sequence, plus last_sequence modulo (sequence_bonus_max + 1), or plus
// sequence_bonus_max while this node is primary (its table is the newest by definition).
int track_value(const AdapterOptions& options, const ctsync::sdk::SyncReadiness& readiness,
                ctsync::sdk::Role role) noexcept;

// The last state keepalived reported for each configured instance and sync group, and the role they make
// together: FAULT if any is in FAULT; PRIMARY only when every one is MASTER; otherwise BACKUP (an entity
// without any line yet counts as not MASTER); INIT while none has reported anything.
class VrrpStates {
  public:
    struct Entity {
        EntityType type = EntityType::kInstance;
        std::string name;
        std::optional<NotifyState> state;  // MASTER, BACKUP, FAULT, STOP or DELETED; unset: no line yet
        int priority = -1;                 // last priority reported; -1: none
    };

    struct Outcome {
        bool configured = false;    // the line names a configured instance or group
        bool changed = false;       // its state changed
        bool inferred = false;      // the new state was inferred from a priority event
        bool contradicted = false;  // ... which contradicted the state known before (a line was lost)
        std::optional<NotifyState> previous;
        std::optional<NotifyState> current;
    };

    VrrpStates(const std::vector<std::string>& instances, const std::vector<std::string>& groups);

    // Records what a line says. Priority events update the priority and imply a state: MASTER_* means
    // MASTER; BACKUP_PRIORITY (sent in every state but MASTER) turns an unknown or MASTER state into BACKUP.
    Outcome apply(const VrrpNotice& notice);
    ctsync::sdk::Role role() const noexcept;
    // At least one MASTER and at least one that is not (FAULT excepted): the node stays BACKUP.
    bool split() const noexcept;
    // "instance VI_1 MASTER, group G1 (no line yet)".
    std::string describe() const;
    const std::vector<Entity>& entities() const noexcept { return entities_; }

  private:
    std::vector<Entity> entities_;
};

class KeepalivedAdapter final : public ctsync::sdk::HaAdapter {
  public:
    KeepalivedAdapter(const ctsync::sdk::PluginContext& context, AdapterOptions options);
    ~KeepalivedAdapter() override;
    KeepalivedAdapter(const KeepalivedAdapter&) = delete;
    KeepalivedAdapter& operator=(const KeepalivedAdapter&) = delete;

    // Closes the FIFO, cancels the timers and, when a track file is configured, writes hold_value: a node
    // whose ctsyncd is not running must not be preferred. Reports nothing to the sink. Idempotent.
    void stop() noexcept override;
    // Checks or creates the FIFO and opens it (a missing FIFO with create_fifo false is waited for), writes
    // the track file's first value. Fails, naming the key, when the path is not a FIFO, the FIFO cannot be
    // created or opened, or the track file cannot be written.
    bool start(ctsync::sdk::RoleSink& sink, std::string& error) noexcept override;
    void update_readiness(const ctsync::sdk::SyncReadiness& readiness) noexcept override;

    // The role last reported to the sink (INIT before the first report).
    ctsync::sdk::Role role() const noexcept { return role_; }
    bool fifo_is_open() const noexcept { return fifo_.is_open(); }
    const VrrpStates& states() const noexcept { return states_; }

  private:
    enum class ReadResult { kWouldBlock, kEndOfFile, kFailed, kBudgetSpent, kGone };

    bool open_fifo(std::string& error);
    void close_fifo() noexcept;
    void wait_fifo();
    void on_readable();
    // Up to `max_reads` reads of the FIFO, each line handled as it completes.
    ReadResult read_lines(int max_reads);
    void consume(const char* data, std::size_t size);
    void handle_line(std::string_view line);
    void handle_garbage(std::string_view text, const std::string& reason);
    void apply(const VrrpNotice& notice, std::string_view line);
    void report_role(std::string_view line);
    void on_writer_closed();
    void on_read_error(int error_number);

    void arm_check_timer();
    void on_check_timer();
    void try_reopen();
    void check_path();

    void refresh_track();
    // Replaces the track file with `value` (`complete`: a ready value, not the hold); counts the write.
    bool write_track_value(int value, bool complete, std::string& error);
    void arm_track_timer(std::chrono::steady_clock::time_point when);

    ctsync::sdk::PluginContext context_;
    AdapterOptions options_;
    ctsync::sdk::Logger& log_;
    ctsync::sdk::RoleSink* sink_ = nullptr;
    // Handlers hold a weak reference: a completion that runs after the object is gone does nothing.
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);

    VrrpStates states_;
    ctsync::sdk::Role role_ = ctsync::sdk::Role::kInit;
    ctsync::sdk::SyncReadiness readiness_;

    boost::asio::posix::stream_descriptor fifo_;
    std::uint64_t fifo_generation_ = 0;  // bumped on every open and close: stale completions do nothing
    dev_t fifo_device_ = 0;
    ino_t fifo_inode_ = 0;
    bool opened_once_ = false;
    std::string pending_;      // the current line, until its newline arrives
    bool discarding_ = false;  // skipping the rest of an over-long line
    std::size_t discarded_bytes_ = 0;
    std::string discarded_head_;  // its first bytes, for the log
    std::uint64_t line_number_ = 0;

    boost::asio::steady_timer check_timer_;
    std::uint64_t check_generation_ = 0;
    bool missing_logged_ = false;    // "waiting for the FIFO" logged once per absence
    bool refused_logged_ = false;    // "not a FIFO" / open failure logged once per streak
    bool path_gone_logged_ = false;  // the open FIFO's path was removed

    boost::asio::steady_timer track_timer_;
    std::uint64_t track_generation_ = 0;
    bool track_timer_armed_ = false;
    std::optional<int> track_written_;     // the value the file holds, as far as this instance wrote it
    bool track_written_complete_ = false;  // ... and whether it was a ready value
    bool track_failing_ = false;
    std::chrono::steady_clock::time_point track_written_at_{};

    // Garbage lines are logged at most kGarbageLogBurst times a second; the next logged one says how many
    // were left out.
    std::chrono::steady_clock::time_point garbage_window_{};
    int garbage_logged_in_window_ = 0;
    std::uint64_t garbage_suppressed_ = 0;

    bool started_ = false;
    bool stopped_ = false;

    ctsync::sdk::Counter& lines_read_;
    ctsync::sdk::Counter& lines_garbage_;
    ctsync::sdk::Counter& lines_ignored_;
    ctsync::sdk::Counter& role_changes_;
    ctsync::sdk::Counter& fifo_reopens_;
    ctsync::sdk::Counter& track_writes_;
    ctsync::sdk::Counter& track_write_errors_;
    ctsync::sdk::Gauge& role_gauge_;
    ctsync::sdk::Gauge& fifo_open_gauge_;
    ctsync::sdk::Gauge& track_value_gauge_;
};

}  // namespace ha_keepalived
