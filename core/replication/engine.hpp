// SPDX-License-Identifier: GPL-2.0-or-later
// The replication engine: streams this node's internal cache to every peer and applies the peers' streams
// to the external cache, over one or more transports (redundant links). Wire format: docs/PROTOCOL.md;
// design decisions: docs/DECISIONS.md (ADR-022 onwards).
//
//   sender    — watches the internal cache (CacheObserver), asks the proto table which changes matter
//               (policy strong/weak/delayed), coalesces pending records per flow id, packs them into data
//               datagrams up to the smallest link MTU, keeps each in a bounded resend queue until every
//               live peer acknowledged it, retransmits on NACK, and serves bulk transfers paced at a rate.
//   receiver  — per sender (node, epoch): authenticates (Keyring), drops replays, orders data datagrams by
//               sequence, NACKs gaps, acknowledges, and applies records to the external cache; a bulk
//               transfer ends with a sweep of what the sender no longer has, so the cache ends exact.
//
// Single-threaded: everything runs on the daemon's executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <ctsync/sdk/host.hpp>
#include <ctsync/sdk/transport.hpp>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/cache/flow_cache.hpp"
#include "core/metrics/registry.hpp"
#include "core/replication/options.hpp"
#include "core/replication/proto_table.hpp"
#include "core/wire/records.hpp"
#include "core/wire/seal.hpp"

namespace ctsync::core {

class Engine final : public CacheObserver {
  public:
    Engine(boost::asio::any_io_executor executor, EngineOptions options, std::uint32_t node_id,
           wire::Keyring keyring, FlowCache& internal, FlowCache& external, const ProtoTable& protos,
           MetricsRegistry& metrics, sdk::Logger& log);
    ~Engine() override;
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Before start(): the transports, in config order (the first is the preferred link).
    void add_link(std::string name, sdk::Transport& transport);
    // Starts every transport and the timers. Returns an error naming the link that failed.
    std::string start();
    void stop();

    // Turns sending on (the primary) or off. Turning it on announces the whole table to every peer (a bulk
    // addressed to all), since they may hold nothing of this node's yet.
    // `announce` false: the caller announces later (announce_table), as a new primary's steps do.
    void set_sending(bool sending, bool announce = true);
    // Sends the whole table to every peer (a bulk addressed to all): `ctsyncctl -B`, a new primary.
    void announce_table();
    bool sending() const { return options_.sending; }
    // Asks every peer that is heard for a fresh bulk transfer of its table.
    void request_bulk_from_all();

    // Every sender we heard is synced and no bulk is running or awaited.
    bool complete() const;
    // Peers heard within peer_timeout.
    std::size_t live_peers() const;
    // The highest data sequence applied from any live peer (0: none): how far this node follows.
    std::uint64_t last_applied_sequence() const;
    // A live peer that sends (a primary) and whose whole table this node holds (bulk done, in sequence).
    bool holds_primary_table() const;
    nlohmann::json status() const;

    // CacheObserver (the internal cache)
    void flow_changed(std::uint32_t id, const sdk::FlowState* before, const sdk::FlowState& after) override;
    void flow_removed(std::uint32_t id, const sdk::FlowState& last) override;
    void expectation_changed(const sdk::Expectation& after) override;
    void expectation_removed(const sdk::Expectation& last) override;

    // A received datagram (public for tests: feeds the receive path directly).
    void on_datagram(std::size_t link, std::span<const std::byte> data);
    // A transport's report that a peer became reachable or unreachable over `link` (public for tests). A
    // peer reported down on a link, and heard on no other link within link_silence, is gone at once.
    void on_peer_state(std::size_t link, std::uint32_t node, sdk::PeerState state, const std::string& detail);

  private:
    using Clock = std::chrono::steady_clock;
    struct Link;
    struct Peer;
    struct BulkJob;
    class LinkSink;

    enum class PendingKind : std::uint8_t { kFull, kUpdate, kDelete };
    struct Pending {
        sdk::FlowKey key;
        PendingKind kind = PendingKind::kFull;
        std::uint8_t fields = 0;
        bool delayed = false;  // delayed policy: a new flow waiting for its window to pass
    };

    void schedule_flush();
    void flush();
    void append_record(const wire::Record& record);
    void emit_data();
    void send_data(std::uint64_t seq, const std::vector<std::byte>& payload, bool retransmit);
    void send_control(const std::vector<wire::Record>& records, bool all_links);
    std::size_t max_payload() const;
    void release_acknowledged();
    void handle_nack(Peer& peer, const wire::Nack& nack);
    void note_ack(Peer& peer, std::uint64_t seq);
    void start_bulk(std::uint32_t requester, std::uint32_t request_id, std::uint32_t origin = 0);
    void request_relays(Clock::time_point now);
    void run_bulk(Clock::time_point now);

    void receive_data(Peer& peer, std::uint64_t seq, std::vector<wire::Record> records);
    void apply(Peer& peer, std::uint64_t seq, const std::vector<wire::Record>& records);
    void apply_record(Peer& peer, const wire::Record& record);
    void drain_reorder(Peer& peer);
    void request_bulk(Peer& peer, const char* why);
    Peer& peer_for(std::uint32_t node, std::uint64_t epoch, bool& fresh);
    bool reported_down(std::uint32_t node, std::size_t link) const;
    nlohmann::json down_on(std::uint32_t node) const;

    void tick();
    void schedule_tick();
    void choose_links(Clock::time_point now);

    boost::asio::any_io_executor executor_;
    EngineOptions options_;
    const std::uint32_t node_id_;
    const std::uint64_t epoch_;
    wire::Keyring keyring_;
    FlowCache& internal_;
    FlowCache& external_;
    const ProtoTable& protos_;
    sdk::Logger& log_;
    boost::asio::steady_timer tick_timer_;
    boost::asio::steady_timer flush_timer_;
    bool stopped_ = true;
    // Expires with the engine: a timer or posted handler already queued when the engine is destroyed (its
    // completion cannot be cancelled any more) sees it and does not touch the engine.
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);

    std::vector<std::unique_ptr<Link>> links_;
    std::size_t active_link_ = 0;

    // Sender.
    std::uint64_t next_packet_ = 1;
    std::uint64_t next_seq_ = 1;
    std::unordered_map<std::uint32_t, Pending> pending_;
    std::deque<std::uint32_t> order_;                                  // flow ids, first change first
    std::deque<std::pair<Clock::time_point, std::uint32_t>> delayed_;  // delayed policy: due time, id
    std::vector<wire::Record> pending_expectations_;
    bool flush_scheduled_ = false;
    std::vector<std::byte> building_;            // the data datagram being filled (records only)
    std::deque<std::vector<std::byte>> resend_;  // payloads of data datagrams resend_base_ ...
    std::uint64_t resend_base_ = 1;
    std::size_t resend_bytes_ = 0;
    std::deque<BulkJob> bulks_;
    std::uint32_t next_bulk_id_ = 1;
    Clock::time_point last_bulk_run_{};
    Clock::time_point last_alive_{};
    Clock::time_point last_alarm_{};
    bool hello_sent_ = false;

    // Relays (scenario B of the SNE paper): the tables of senders that are gone, taken from the peer that saw
    // the most of them. By origin node.
    struct RelayWant {
        std::uint32_t source = 0;
        std::uint32_t request_id = 0;
        std::uint64_t epoch = 0;
        std::uint64_t seq = 0;
        Clock::time_point last{};
        bool receiving = false;
    };
    std::map<std::uint32_t, RelayWant> relays_;
    std::map<std::uint32_t, std::uint64_t> relayed_;  // origin -> epoch of the copy we took
    Clock::time_point started_at_{};

    // Receiver and peers, by node id.
    std::map<std::uint32_t, std::unique_ptr<Peer>> peers_;
    // By node id, per link: the link's transport reported the node unreachable (and not reachable since).
    // Kept apart from Peer, which a new epoch replaces: the report is about the node, not one of its runs.
    std::map<std::uint32_t, std::vector<bool>> peer_link_down_;
    std::uint64_t next_generation_ = 1;
    std::uint32_t next_request_id_ = 1;
    std::vector<wire::Record> scratch_records_;
    std::vector<std::byte> scratch_payload_;

    // Metrics.
    sdk::Counter& tx_datagrams_;
    sdk::Counter& tx_bytes_;
    sdk::Counter& tx_records_;
    sdk::Counter& tx_local_drops_;
    sdk::Counter& retransmits_;
    sdk::Counter& resend_overflows_;
    sdk::Counter& bulks_served_;
    sdk::Counter& bulk_entries_sent_;
    sdk::Counter& rx_datagrams_;
    sdk::Counter& rx_bytes_;
    sdk::Counter& rx_records_;
    sdk::Counter& rx_duplicates_;
    sdk::Counter& rx_replayed_;
    sdk::Counter& rx_stale_epoch_;
    sdk::Counter& rx_own_;
    sdk::Counter& rx_malformed_;
    sdk::Counter& rx_unknown_flow_;
    sdk::Counter& rx_rejected_;
    sdk::Counter& rx_reorder_overflows_;
    sdk::Counter& nacks_sent_;
    sdk::Counter& restarts_resent_;
    sdk::Counter& acks_sent_;
    sdk::Counter& bulk_requests_sent_;
    sdk::Counter& bulks_completed_;
    sdk::Gauge& bulks_receiving_;
    sdk::Gauge& bulk_receiving_entries_;
    sdk::Gauge& bulk_receiving_total_;
    sdk::Counter& relays_completed_;
    sdk::Counter& link_failovers_;
    sdk::Counter& suppressed_refreshes_;
    sdk::Counter& delayed_never_sent_;
    sdk::Counter& flows_held_back_;
    std::map<std::string, sdk::Counter*> rx_auth_drops_;  // by reason
    sdk::Gauge& resend_queue_gauge_;
    sdk::Gauge& peers_gauge_;
    sdk::Counter& peer_reports_;
    sdk::Counter& peers_lost_by_transport_;
};

}  // namespace ctsync::core
