// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/replication/engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <limits>

namespace ctsync::core {
namespace asio = boost::asio;
using namespace std::chrono_literals;
using wire::Record;

namespace {

constexpr auto kTick = 10ms;
constexpr std::size_t kMaxRetransmitsPerNack = 4096;
constexpr std::size_t kSeqBytes = 8;

std::uint64_t boot_epoch() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

bool is_data_record(const Record& r) {
    return std::holds_alternative<wire::FlowFull>(r) || std::holds_alternative<wire::FlowUpdate>(r) ||
           std::holds_alternative<wire::FlowDelete>(r) || std::holds_alternative<wire::ExpectNew>(r) ||
           std::holds_alternative<wire::ExpectDelete>(r) || std::holds_alternative<wire::BulkStart>(r) ||
           std::holds_alternative<wire::BulkProgress>(r) || std::holds_alternative<wire::BulkEnd>(r) ||
           std::holds_alternative<wire::FlowRelay>(r);
}

}  // namespace

struct Engine::Link {
    std::string name;
    sdk::Transport* transport = nullptr;
    std::unique_ptr<LinkSink> sink;
    bool carrier = true;
    Clock::time_point last_rx{};
};

class Engine::LinkSink final : public sdk::TransportSink {
  public:
    LinkSink(Engine& engine, std::size_t index) : engine_(engine), index_(index) {}
    void on_datagram(std::span<const std::byte> data) noexcept override {
        try {
            engine_.on_datagram(index_, data);
        } catch (const std::exception& e) {
            engine_.log_.error(fmt::format("event=receive_error link={} reason=\"{}\"",
                                           engine_.links_[index_]->name, e.what()));
        }
    }
    void on_link_state(sdk::LinkState state, const std::string& detail) noexcept override {
        auto& link = *engine_.links_[index_];
        link.carrier = state == sdk::LinkState::kUp;
        engine_.log_.warn(fmt::format("event=link_state link={} state={} detail=\"{}\"", link.name,
                                      link.carrier ? "up" : "down", detail));
        engine_.choose_links(Clock::now());
    }
    void on_peer_state(std::uint32_t node, sdk::PeerState state,
                       const std::string& detail) noexcept override {
        try {
            engine_.on_peer_state(index_, node, state, detail);
        } catch (const std::exception& e) {
            engine_.log_.error(fmt::format("event=peer_state_error link={} reason=\"{}\"",
                                           engine_.links_[index_]->name, e.what()));
        }
    }

  private:
    Engine& engine_;
    std::size_t index_;
};

struct Engine::Peer {
    std::uint32_t node = 0;
    std::uint64_t epoch = 0;
    wire::ReplayWindow window;
    Clock::time_point last_rx{};
    std::vector<Clock::time_point> rx_by_link;  // last authentic datagram from it, per link
    bool live = true;
    std::uint8_t role = 0;
    std::uint64_t alive_next_seq = 0;
    std::uint32_t flows = 0;

    // Its stream, as we receive it.
    bool synced = false;
    std::uint64_t expected = 0;  // next data sequence to apply
    std::map<std::uint64_t, std::vector<Record>> reorder;
    std::unordered_map<std::uint32_t, sdk::FlowKey> ids;
    std::uint64_t generation = 0;  // stamp of what we apply from it
    bool awaiting_bulk = false;
    std::uint32_t request_id = 0;
    Clock::time_point last_request{};
    bool in_bulk = false;
    bool bulk_done = false;
    std::uint32_t bulk_id = 0;
    std::uint64_t bulk_generation = 0;
    std::uint32_t bulk_total = 0;
    std::uint32_t bulk_received = 0;
    Clock::time_point bulk_started{};
    Clock::time_point bulk_logged{};
    bool ack_due = false;
    Clock::time_point last_ack{};
    Clock::time_point gap_since{};
    bool in_gap = false;
    Clock::time_point last_nack{};

    std::vector<wire::SeenSender> seen;  // from its last ALIVE: whose streams it follows, how far
    std::uint32_t bulk_origin = 0;       // the bulk being received relays this node's table (0: its own)

    // Our stream, as it acknowledges it. Only a peer that follows it (has acknowledged something of this
    // epoch) holds the resend queue; one that does not yet waits for its bulk transfer anyway.
    bool follows = false;
    bool resync_pending = false;    // a bulk for it is queued: its acknowledgements do not count
    std::uint64_t restart_seq = 0;  // its bulk started here: only acknowledgements from here on count
    std::uint64_t acked = 0;
    std::uint32_t served_request = 0;
};

struct Engine::BulkJob {
    std::uint32_t requester = 0;
    std::uint32_t origin = 0;  // 0: our own table (internal cache); else the copy we hold of that node's
    std::uint32_t bulk_id = 0;
    std::vector<sdk::FlowKey> flows;
    std::vector<ExpectationKey> expectations;
    std::size_t flow_pos = 0;
    std::size_t expectation_pos = 0;
    std::uint32_t total = 0;
    std::uint32_t sent = 0;
    bool started = false;
    Clock::time_point begun{};
    Clock::time_point last_progress{};
    double allowance = 0;
};

Engine::Engine(asio::any_io_executor executor, EngineOptions options, std::uint32_t node_id,
               wire::Keyring keyring, FlowCache& internal, FlowCache& external, const ProtoTable& protos,
               MetricsRegistry& metrics, sdk::Logger& log)
    : executor_(executor),
      options_(options),
      node_id_(node_id),
      epoch_(options.epoch != 0 ? options.epoch : boot_epoch()),
      keyring_(std::move(keyring)),
      internal_(internal),
      external_(external),
      protos_(protos),
      log_(log),
      tick_timer_(executor),
      flush_timer_(executor),
      tx_datagrams_(metrics.counter("replication.tx_datagrams", "datagrams sent (each link counts once)")),
      tx_bytes_(metrics.counter("replication.tx_bytes", "bytes sent, headers and tags included")),
      tx_records_(metrics.counter("replication.tx_records", "flow and expectation records sent")),
      tx_local_drops_(metrics.counter("replication.tx_local_drops",
                                      "datagrams a transport refused (queue full); repaired by NACK")),
      retransmits_(metrics.counter("replication.retransmits", "data datagrams sent again after a NACK")),
      resend_overflows_(metrics.counter("replication.resend_overflows",
                                        "peers that fell behind the bounded resend queue (each got a bulk)")),
      bulks_served_(metrics.counter("replication.bulks_served", "bulk transfers sent to completion")),
      bulk_entries_sent_(metrics.counter("replication.bulk_entries_sent", "entries sent by bulk transfers")),
      rx_datagrams_(metrics.counter("replication.rx_datagrams", "datagrams received")),
      rx_bytes_(metrics.counter("replication.rx_bytes", "bytes received")),
      rx_records_(metrics.counter("replication.rx_records", "records applied")),
      rx_duplicates_(metrics.counter("replication.rx_duplicates", "data datagrams received twice (dropped)")),
      rx_replayed_(
          metrics.counter("replication.rx_replayed",
                          "authentic datagrams whose packet number was already seen: replays, or the "
                          "copy of the parallel link (dropped)")),
      rx_stale_epoch_(metrics.counter("replication.rx_stale_epoch",
                                      "authentic datagrams from an older epoch of their node (dropped)")),
      rx_own_(metrics.counter("replication.rx_own", "datagrams carrying this node's id (dropped)")),
      rx_malformed_(metrics.counter("replication.rx_malformed",
                                    "authentic datagrams whose records do not decode (dropped)")),
      rx_unknown_flow_(metrics.counter("replication.rx_unknown_flow",
                                       "updates or deletes naming a flow id not held (ignored)")),
      rx_rejected_(metrics.counter("replication.rx_rejected", "flows the proto handler refused (ignored)")),
      rx_reorder_overflows_(metrics.counter("replication.rx_reorder_overflows",
                                            "out-of-order datagrams beyond the reorder limit (bulk asked)")),
      nacks_sent_(metrics.counter("replication.nacks_sent", "NACK records sent")),
      restarts_resent_(
          metrics.counter("replication.restarts_resent",
                          "restart datagrams sent again to a peer still asking for what came before")),
      acks_sent_(metrics.counter("replication.acks_sent", "ACK records sent")),
      bulk_requests_sent_(metrics.counter("replication.bulk_requests_sent", "bulk transfers asked for")),
      bulks_completed_(metrics.counter("replication.bulks_completed", "bulk transfers received to the end")),
      bulks_receiving_(metrics.gauge("replication.bulks_receiving", "bulk transfers being received now")),
      bulk_receiving_entries_(metrics.gauge("replication.bulk_receiving_entries",
                                            "entries received so far of the bulk transfers being received")),
      bulk_receiving_total_(
          metrics.gauge("replication.bulk_receiving_total",
                        "entries announced by the bulk transfers being received (0: unknown yet)")),
      relays_completed_(
          metrics.counter("replication.relays_completed",
                          "tables of gone nodes received from the peer that saw the most of them")),
      link_failovers_(metrics.counter("replication.link_failovers", "changes of the active link")),
      suppressed_refreshes_(
          metrics.counter("replication.suppressed_refreshes", "timer-only changes not sent (weak policy)")),
      delayed_never_sent_(metrics.counter("replication.delayed_never_sent",
                                          "flows that ended inside the delayed policy's window")),
      flows_held_back_(metrics.counter(
          "replication.flows_held_back",
          "new flows their proto handler did not find worth sending yet (sent once they are)")),
      resend_queue_gauge_(metrics.gauge("replication.resend_queue_bytes", "bytes held for retransmission")),
      peers_gauge_(metrics.gauge("replication.peers_live", "peers heard within peer_timeout")),
      peer_reports_(
          metrics.counter("replication.peer_reports",
                          "peer up/down reports from transports that supervise their peers (TIPC)")),
      peers_lost_by_transport_(metrics.counter(
          "replication.peers_lost_by_transport",
          "peers taken for gone on a transport's report (link supervision), before ALIVE silence")) {
    for (const char* reason : {"truncated", "bad_magic", "bad_version", "bad_type", "bad_header",
                               "bad_length", "unknown_key", "not_encrypted", "bad_tag"}) {
        rx_auth_drops_[reason] =
            &metrics.counter(fmt::format("replication.rx_dropped_{}", reason),
                             fmt::format("datagrams dropped before authentication succeeded: {}", reason));
    }
}

Engine::~Engine() {
    stop();
}

void Engine::add_link(std::string name, sdk::Transport& transport) {
    auto link = std::make_unique<Link>();
    link->name = std::move(name);
    link->transport = &transport;
    link->sink = std::make_unique<LinkSink>(*this, links_.size());
    links_.push_back(std::move(link));
}

std::string Engine::start() {
    stopped_ = false;
    for (auto& link : links_) {
        std::string error;
        if (!link->transport->start(*link->sink, error)) {
            return fmt::format("transport '{}': {}", link->name, error);
        }
        link->last_rx = Clock::now();  // a grace period of link_silence before a quiet link counts as dead
    }
    log_.info(fmt::format(
        "event=replication_started node={} epoch={} links={} mode={} policy={} sending={} max_payload={}",
        node_id_, epoch_, links_.size(),
        options_.mode == EngineOptions::Mode::kReliable ? "reliable"
        : options_.mode == EngineOptions::Mode::kAlarm  ? "alarm"
                                                        : "best-effort",
        options_.policy == EngineOptions::Policy::kStrong ? "strong"
        : options_.policy == EngineOptions::Policy::kWeak ? "weak"
                                                          : "delayed",
        options_.sending, max_payload()));
    last_alarm_ = started_at_ = Clock::now();
    if (options_.sending) {
        start_bulk(0, 0);
    }
    schedule_tick();
    return {};
}

void Engine::stop() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    tick_timer_.cancel();
    flush_timer_.cancel();
    flush_scheduled_ = false;
}

void Engine::set_sending(bool sending, bool announce) {
    if (sending == options_.sending) {
        return;
    }
    options_.sending = sending;
    log_.info(fmt::format("event=sending state={}", sending ? "on" : "off"));
    pending_.clear();
    order_.clear();
    delayed_.clear();
    pending_expectations_.clear();
    bulks_.clear();
    if (sending && announce) {
        announce_table();  // the peers may hold nothing of ours yet
    }
}

void Engine::announce_table() {
    if (!stopped_) {
        start_bulk(0, 0);
    }
}

nlohmann::json Engine::down_on(std::uint32_t node) const {
    nlohmann::json names = nlohmann::json::array();
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (reported_down(node, i)) {
            names.push_back(links_[i]->name);
        }
    }
    return names;
}

std::size_t Engine::live_peers() const {
    std::size_t n = 0;
    for (const auto& [node, peer] : peers_) {
        n += peer->live ? 1 : 0;
    }
    return n;
}

bool Engine::holds_primary_table() const {
    return std::any_of(peers_.begin(), peers_.end(), [](const auto& entry) {
        const Peer& p = *entry.second;
        return p.live && p.role == 2 && p.synced && p.bulk_done && !p.awaiting_bulk && !p.in_bulk;
    });
}

std::uint64_t Engine::last_applied_sequence() const {
    std::uint64_t last = 0;
    for (const auto& [node, peer] : peers_) {
        if (peer->live && peer->synced && peer->expected > 0) {
            last = std::max(last, peer->expected - 1);
        }
    }
    return last;
}

void Engine::request_bulk_from_all() {
    for (auto& [node, peer] : peers_) {
        if (peer->live) {
            request_bulk(*peer, "operator");
        }
    }
}

bool Engine::complete() const {
    bool any = false;
    for (const auto& [node, peer] : peers_) {
        if (!peer->live) {
            continue;
        }
        any = true;
        if (!peer->synced || peer->awaiting_bulk || peer->in_bulk || !peer->bulk_done) {
            return false;
        }
    }
    return any && relays_.empty();  // nobody heard yet: nothing to claim
}

// ---------------------------------------------------------------------------------------------------------
// Sender

void Engine::flow_changed(std::uint32_t id, const sdk::FlowState* before, const sdk::FlowState& after) {
    if (!options_.sending || stopped_) {
        return;
    }
    const bool worth_after = protos_.worth_replicating(after);
    const bool worth_before = before != nullptr && protos_.worth_replicating(*before);
    PendingKind kind = PendingKind::kUpdate;
    std::uint8_t fields = 0;
    bool known = worth_before;  // the peers hold this flow already (or will, from a pending record)
    if (!worth_before && !worth_after) {
        if (before == nullptr) {
            flows_held_back_.add();
        }
        return;
    }
    if (!worth_before) {
        kind = PendingKind::kFull;
    } else if (!worth_after) {
        kind = PendingKind::kDelete;
    } else {
        const sdk::Change change = protos_.classify(*before, after);
        if (change == sdk::Change::kNone) {
            return;
        }
        if (change == sdk::Change::kRefresh && options_.policy != EngineOptions::Policy::kStrong) {
            suppressed_refreshes_.add();
            return;
        }
        fields = wire::changed_fields(*before, after);
        kind = (fields & wire::kNeedsFull) != 0 ? PendingKind::kFull : PendingKind::kUpdate;
    }
    auto [it, inserted] = pending_.try_emplace(id);
    Pending& p = it->second;
    if (inserted) {
        p.key = after.key();
        p.kind = kind;
        p.fields = fields;
        if (kind == PendingKind::kFull && !known && options_.policy == EngineOptions::Policy::kDelayed) {
            p.delayed = true;
            delayed_.emplace_back(Clock::now() + options_.delay, id);
        } else {
            order_.push_back(id);
        }
        // A full record for a flow the peers already hold replaces it; remember that they hold it.
        p.fields = known ? static_cast<std::uint8_t>(fields | wire::kNeedsFull) : fields;
    } else if (p.kind == PendingKind::kUpdate && kind == PendingKind::kUpdate) {
        p.fields |= fields;  // superseded in place: the values are read when the record is built
    } else if (kind == PendingKind::kDelete) {
        p.kind = PendingKind::kDelete;
    } else if (p.kind != PendingKind::kDelete) {
        p.kind = PendingKind::kFull;
    }
    schedule_flush();
}

void Engine::flow_removed(std::uint32_t id, const sdk::FlowState& last) {
    if (!options_.sending || stopped_) {
        return;
    }
    auto it = pending_.find(id);
    if (it != pending_.end()) {
        Pending& p = it->second;
        const bool peers_hold_it = p.kind != PendingKind::kFull || (p.fields & wire::kNeedsFull) != 0;
        if (!peers_hold_it) {
            // Created and gone before it was ever sent: the peers never hear of it.
            if (p.delayed) {
                delayed_never_sent_.add();
            }
            pending_.erase(it);
            return;
        }
        p.kind = PendingKind::kDelete;
        schedule_flush();
        return;
    }
    if (!protos_.worth_replicating(last)) {
        return;
    }
    Pending p;
    p.key = last.key();
    p.kind = PendingKind::kDelete;
    pending_.emplace(id, p);
    order_.push_back(id);
    schedule_flush();
}

void Engine::expectation_changed(const sdk::Expectation& after) {
    if (!options_.sending || stopped_) {
        return;
    }
    pending_expectations_.push_back(wire::ExpectNew{after});
    schedule_flush();
}

void Engine::expectation_removed(const sdk::Expectation& last) {
    if (!options_.sending || stopped_) {
        return;
    }
    pending_expectations_.push_back(wire::ExpectDelete{last});
    schedule_flush();
}

void Engine::schedule_flush() {
    if (flush_scheduled_ || stopped_) {
        return;
    }
    flush_scheduled_ = true;
    auto run = [this, alive = std::weak_ptr<int>(alive_)] {
        if (alive.expired()) {
            return;
        }
        flush_scheduled_ = false;
        if (!stopped_) {
            flush();
        }
    };
    if (options_.flush_interval.count() == 0) {
        asio::post(executor_, run);  // after the current burst of events
        return;
    }
    // Every change within the window coalesces into one record per flow (a short connection's whole life,
    // SYN to TIME_WAIT, becomes one full record) and the records share datagrams.
    flush_timer_.expires_after(options_.flush_interval);
    flush_timer_.async_wait([run](const boost::system::error_code& ec) {
        if (!ec) {
            run();
        }
    });
}

void Engine::flush() {
    auto build = [this](std::uint32_t id, const Pending& p) {
        if (p.kind == PendingKind::kDelete) {
            append_record(wire::FlowDelete{id});
            return;
        }
        const sdk::FlowState* flow = internal_.find(p.key);
        if (flow == nullptr) {
            return;  // gone meanwhile; its removal queued a delete (or cancelled this record)
        }
        if (p.kind == PendingKind::kFull) {
            append_record(wire::FlowFull{id, *flow});
        } else {
            wire::FlowUpdate update;
            update.flow_id = id;
            update.fields = static_cast<std::uint8_t>(p.fields & wire::field::kAll);
            update.values = *flow;
            append_record(update);
        }
    };
    for (std::uint32_t id : order_) {
        auto it = pending_.find(id);
        if (it == pending_.end() || it->second.delayed) {
            continue;
        }
        build(id, it->second);
        pending_.erase(it);
    }
    order_.clear();
    const auto now = Clock::now();
    while (!delayed_.empty() && delayed_.front().first <= now) {
        const std::uint32_t id = delayed_.front().second;
        delayed_.pop_front();
        auto it = pending_.find(id);
        if (it != pending_.end() && it->second.delayed) {
            build(id, it->second);
            pending_.erase(it);
        }
    }
    for (const auto& record : pending_expectations_) {
        append_record(record);
    }
    pending_expectations_.clear();
    emit_data();
}

std::size_t Engine::max_payload() const {
    std::size_t smallest = 65507;
    for (const auto& link : links_) {
        smallest = std::min(smallest, link->transport->max_datagram_size());
    }
    const std::size_t overhead = wire::kHeaderSize + wire::kTagBytes;
    return smallest > overhead + 256 ? smallest - overhead : 256;
}

void Engine::append_record(const Record& record) {
    scratch_payload_.clear();
    wire::Writer w(scratch_payload_);
    wire::encode_record(w, record);
    if (!building_.empty() && kSeqBytes + building_.size() + scratch_payload_.size() > max_payload()) {
        emit_data();
    }
    building_.insert(building_.end(), scratch_payload_.begin(), scratch_payload_.end());
    tx_records_.add();
}

void Engine::emit_data() {
    if (building_.empty()) {
        return;
    }
    const std::uint64_t seq = next_seq_++;
    std::vector<std::byte> payload;
    payload.reserve(kSeqBytes + building_.size());
    wire::Writer w(payload);
    w.u64(seq);
    w.bytes(building_.data(), building_.size());
    building_.clear();
    send_data(seq, payload, false);
    if (options_.mode != EngineOptions::Mode::kReliable) {
        return;
    }
    resend_bytes_ += payload.size();
    resend_.push_back(std::move(payload));
    // Bounded: the oldest datagrams go, and every live peer that had not acknowledged them gets a bulk.
    while (resend_bytes_ > options_.resend_queue_bytes && resend_.size() > 1) {
        resend_bytes_ -= resend_.front().size();
        resend_.pop_front();
        const std::uint64_t dropped = resend_base_++;
        for (auto& [node, peer] : peers_) {
            if (peer->live && peer->follows && peer->acked + 1 == dropped) {
                resend_overflows_.add();
                log_.warn(fmt::format("event=resend_overflow peer={} acked={} dropped={} action=bulk", node,
                                      peer->acked, dropped));
                start_bulk(node, 0);
            }
        }
    }
    resend_queue_gauge_.set(static_cast<std::int64_t>(resend_bytes_));
}

void Engine::send_data(std::uint64_t seq, const std::vector<std::byte>& payload, bool retransmit) {
    (void)seq;
    wire::Header h;
    h.type = wire::DatagramType::kData;
    h.node_id = node_id_;
    h.epoch = epoch_;
    h.packet = next_packet_++;
    const auto datagram = keyring_.seal(h, payload);
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (options_.link_mode == EngineOptions::LinkMode::kFailover && i != active_link_) {
            continue;
        }
        if (!links_[i]->transport->send(datagram)) {
            tx_local_drops_.add();
        }
        tx_datagrams_.add();
        tx_bytes_.add(datagram.size());
    }
    if (retransmit) {
        retransmits_.add();
    }
}

void Engine::send_control(const std::vector<Record>& records, bool all_links) {
    std::vector<std::byte> payload;
    auto emit = [&] {
        if (payload.empty()) {
            return;
        }
        wire::Header h;
        h.type = wire::DatagramType::kControl;
        h.node_id = node_id_;
        h.epoch = epoch_;
        h.packet = next_packet_++;
        const auto datagram = keyring_.seal(h, payload);
        for (std::size_t i = 0; i < links_.size(); ++i) {
            if (!all_links && i != active_link_) {
                continue;
            }
            if (!links_[i]->transport->send(datagram)) {
                tx_local_drops_.add();
            }
            tx_datagrams_.add();
            tx_bytes_.add(datagram.size());
        }
        payload.clear();
    };
    std::vector<std::byte> one;
    for (const auto& record : records) {
        one.clear();
        wire::Writer w(one);
        wire::encode_record(w, record);
        if (!payload.empty() && payload.size() + one.size() > max_payload()) {
            emit();
        }
        payload.insert(payload.end(), one.begin(), one.end());
    }
    emit();
}

void Engine::release_acknowledged() {
    if (options_.mode != EngineOptions::Mode::kReliable) {
        return;
    }
    std::uint64_t floor = std::numeric_limits<std::uint64_t>::max();
    for (const auto& [node, peer] : peers_) {
        if (peer->live && peer->follows) {
            floor = std::min(floor, peer->acked);
        }
    }
    while (!resend_.empty() && resend_base_ <= floor) {
        resend_bytes_ -= resend_.front().size();
        resend_.pop_front();
        ++resend_base_;
    }
    resend_queue_gauge_.set(static_cast<std::int64_t>(resend_bytes_));
}

void Engine::note_ack(Peer& peer, std::uint64_t seq) {
    if (peer.resync_pending || seq < peer.restart_seq) {
        return;  // about what it had before its bulk: the bulk replaces it
    }
    peer.acked = std::max(peer.acked, seq);
    peer.follows = true;
}

void Engine::handle_nack(Peer& peer, const wire::Nack& nack) {
    std::size_t budget = kMaxRetransmitsPerNack;
    // A peer asking for what came before its restart did not get the datagram that restarts it (lost), and
    // its NACK, which names the oldest gaps first, may never reach it: send that datagram again.
    const bool before_restart = std::any_of(nack.ranges.begin(), nack.ranges.end(), [&](const auto& range) {
        return range.first < peer.restart_seq;
    });
    if (before_restart && !peer.resync_pending && options_.mode == EngineOptions::Mode::kReliable &&
        peer.restart_seq >= resend_base_ && peer.restart_seq - resend_base_ < resend_.size()) {
        send_data(peer.restart_seq, resend_[peer.restart_seq - resend_base_], true);
        restarts_resent_.add();
        --budget;
    }
    for (const auto& [first, last] : nack.ranges) {
        const std::uint64_t end = std::min(last, next_seq_ - 1);
        for (std::uint64_t seq = std::max(first, peer.restart_seq); seq <= end && budget > 0;
             ++seq, --budget) {
            // (Below its restart point: what it had before its bulk started, which the bulk replaces.)
            if (seq < resend_base_ || options_.mode != EngineOptions::Mode::kReliable) {
                // No longer held: the peer cannot catch up record by record; it gets the whole table.
                resend_overflows_.add();
                log_.warn(fmt::format("event=nack_unservable peer={} seq={} oldest_held={} action=bulk",
                                      peer.node, seq, resend_base_));
                start_bulk(peer.node, 0);
                return;
            }
            if (seq - resend_base_ < resend_.size()) {
                send_data(seq, resend_[seq - resend_base_], true);
            }
        }
    }
}

void Engine::start_bulk(std::uint32_t requester, std::uint32_t request_id, std::uint32_t origin) {
    const bool queued = std::any_of(bulks_.begin(), bulks_.end(), [&](const BulkJob& job) {
        return job.requester == requester && !job.started;
    });
    if (queued && request_id == 0) {
        return;  // our own decision, already queued
    }
    if (requester != 0) {
        auto it = peers_.find(requester);
        if (it != peers_.end()) {
            if (request_id != 0 && it->second->served_request == request_id) {
                return;  // a repeat of a request we are serving
            }
            it->second->served_request = request_id;
            // Until its bulk starts it no longer holds the resend queue: the bulk replaces what it missed.
            it->second->follows = false;
            it->second->resync_pending = true;
        }
    }
    // A newer request from the same requester replaces an older one (it did not see the start).
    std::erase_if(bulks_, [&](const BulkJob& job) { return job.requester == requester && !job.started; });
    BulkJob job;
    job.requester = requester;
    job.origin = origin;
    job.bulk_id = next_bulk_id_++;
    log_.info(fmt::format("event=bulk_queued requester={} bulk_id={} origin={} queued_before={}", requester,
                          job.bulk_id, origin, bulks_.size()));
    bulks_.push_back(std::move(job));
}

void Engine::run_bulk(Clock::time_point now) {
    if (bulks_.empty()) {
        return;
    }
    // Live changes first: what waits for the flush window goes out now, ahead of the bulk (waiting for an
    // empty queue would starve the bulk under steady load). And never let the bulk push the resend queue past
    // half its bound.
    if (!order_.empty()) {
        flush();
    }
    // The bound holds within one run too: a bulk larger than the queue sent in one go would push out its own
    // start before the requester could acknowledge it, and restart it again and again.
    auto queue_half_full = [&] {
        return options_.mode == EngineOptions::Mode::kReliable &&
               resend_bytes_ > options_.resend_queue_bytes / 2;
    };
    if (queue_half_full()) {
        return;
    }
    BulkJob& job = bulks_.front();
    if (!job.started) {
        // The snapshot is taken when the start marker is sent: what changes from here on follows it in the
        // stream, which is all the requester applies (a requester not yet synced drops what came before).
        if (job.origin != 0) {
            // A relay: the copy we hold of another node's table (it is gone; the requester rejoins).
            external_.for_each_flow_from(job.origin,
                                         [&](const sdk::FlowState& f) { job.flows.push_back(f.key()); });
        } else if (options_.sending) {
            job.flows.reserve(internal_.flow_count());
            internal_.for_each_flow([&](const sdk::FlowState& f) {
                if (protos_.worth_replicating(f)) {
                    job.flows.push_back(f.key());
                }
            });
            internal_.for_each_expectation(
                [&](const sdk::Expectation& e) { job.expectations.push_back(key_of(e)); });
        }
        job.total = static_cast<std::uint32_t>(job.flows.size() + job.expectations.size());
        job.started = true;
        if (auto it = peers_.find(job.requester); it != peers_.end()) {
            // From the start marker on, the requester needs every datagram: hold them for it.
            it->second->resync_pending = false;
            it->second->restart_seq = next_seq_;  // the datagram being built (or the next) carries the marker
            it->second->acked = next_seq_ - 1;
            it->second->follows = true;
        }
        job.begun = job.last_progress = now;
        last_bulk_run_ = now;
        job.allowance = static_cast<double>(options_.bulk_rate) / 100.0;
        append_record(wire::BulkStart{job.requester, job.bulk_id, job.total, job.origin});
        log_.info(fmt::format("event=bulk_start requester={} bulk_id={} origin={} entries={} rate={}",
                              job.requester, job.bulk_id, job.origin, job.total, options_.bulk_rate));
    } else {
        const double dt = std::chrono::duration<double>(now - last_bulk_run_).count();
        job.allowance = std::min(job.allowance + dt * options_.bulk_rate, options_.bulk_rate / 10.0 + 1);
        last_bulk_run_ = now;
    }
    while (job.origin != 0 && job.allowance >= 1 && job.flow_pos < job.flows.size() && !queue_half_full()) {
        const auto& key = job.flows[job.flow_pos++];
        if (const sdk::FlowState* flow = external_.find(key)) {
            append_record(wire::FlowRelay{job.origin, *flow});
            ++job.sent;
            bulk_entries_sent_.add();
            job.allowance -= 1;
        }
    }
    while (job.allowance >= 1 && job.flow_pos < job.flows.size() && !queue_half_full()) {
        const auto& key = job.flows[job.flow_pos++];
        if (const sdk::FlowState* flow = internal_.find(key)) {
            const std::uint32_t id = internal_.id_of(key);
            append_record(wire::FlowFull{id, *flow});
            // The peers hold it now: a pending first record (delayed policy) must not be cancelled by the
            // flow's end, or they would keep it.
            if (auto p = pending_.find(id); p != pending_.end() && p->second.kind == PendingKind::kFull) {
                p->second.fields |= wire::kNeedsFull;
            }
            ++job.sent;
            bulk_entries_sent_.add();
            job.allowance -= 1;
        }
    }
    while (job.allowance >= 1 && job.flow_pos == job.flows.size() &&
           job.expectation_pos < job.expectations.size() && !queue_half_full()) {
        const auto& key = job.expectations[job.expectation_pos++];
        if (const sdk::Expectation* e = internal_.find(key)) {
            append_record(wire::ExpectNew{*e});
            ++job.sent;
            bulk_entries_sent_.add();
            job.allowance -= 1;
        }
    }
    const bool done = job.flow_pos == job.flows.size() && job.expectation_pos == job.expectations.size();
    if (!done && now - job.last_progress >= 1s) {
        job.last_progress = now;
        append_record(wire::BulkProgress{job.requester, job.bulk_id, job.sent, job.total});
        log_.info(fmt::format("event=bulk_progress requester={} bulk_id={} sent={} total={} percent={:.0f}",
                              job.requester, job.bulk_id, job.sent, job.total,
                              job.total ? 100.0 * job.sent / job.total : 100.0));
    }
    if (done) {
        append_record(wire::BulkEnd{job.requester, job.bulk_id, job.sent});
        log_.info(fmt::format("event=bulk_done requester={} bulk_id={} sent={} ms={:.0f}", job.requester,
                              job.bulk_id, job.sent, ms_between(job.begun, now)));
        bulks_served_.add();
        bulks_.pop_front();
    }
    emit_data();
}

// ---------------------------------------------------------------------------------------------------------
// Receiver

bool Engine::reported_down(std::uint32_t node, std::size_t link) const {
    auto it = peer_link_down_.find(node);
    return it != peer_link_down_.end() && link < it->second.size() && it->second[link];
}

void Engine::on_peer_state(std::size_t link, std::uint32_t node, sdk::PeerState state,
                           const std::string& detail) {
    if (stopped_ || node == node_id_ || node == 0) {
        return;
    }
    const bool down = state == sdk::PeerState::kDown;
    auto& flags = peer_link_down_[node];
    flags.resize(links_.size(), false);
    peer_reports_.add();
    log_.info(fmt::format("event=peer_state link={} node={} state={} detail=\"{}\"", links_[link]->name, node,
                          down ? "down" : "up", detail));
    flags[link] = down;
    if (!down) {
        return;  // its next datagram brings it back, if it was gone
    }
    auto it = peers_.find(node);
    if (it == peers_.end() || !it->second->live) {
        return;
    }
    Peer& peer = *it->second;
    const auto now = Clock::now();
    // Another link that the peer's transport did not report down, and that still hears it, carries it.
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (!flags[i] && i < peer.rx_by_link.size() && now - peer.rx_by_link[i] <= options_.link_silence) {
            log_.info(fmt::format("event=peer_still_heard node={} down_on={} heard_on={}", node,
                                  links_[link]->name, links_[i]->name));
            return;
        }
    }
    peer.live = false;
    peers_lost_by_transport_.add();
    log_.warn(fmt::format("event=peer_lost node={} reason=transport link={} silent_ms={:.0f} detail=\"{}\"",
                          node, links_[link]->name, ms_between(peer.last_rx, now), detail));
}

Engine::Peer& Engine::peer_for(std::uint32_t node, std::uint64_t epoch, bool& fresh) {
    auto& slot = peers_[node];
    fresh = false;
    if (!slot || slot->epoch != epoch) {
        if (slot) {
            log_.warn(
                fmt::format("event=peer_restarted node={} old_epoch={} epoch={}", node, slot->epoch, epoch));
        } else {
            log_.info(fmt::format("event=peer_new node={} epoch={}", node, epoch));
        }
        slot = std::make_unique<Peer>();
        slot->node = node;
        slot->epoch = epoch;
        slot->generation = next_generation_++;
        fresh = true;
    }
    return *slot;
}

void Engine::on_datagram(std::size_t link_index, std::span<const std::byte> data) {
    if (stopped_) {
        return;
    }
    rx_datagrams_.add();
    rx_bytes_.add(data.size());
    wire::Header header;
    std::string reason;
    if (!keyring_.open(data, header, scratch_payload_, reason)) {
        auto it = rx_auth_drops_.find(reason);
        if (it != rx_auth_drops_.end()) {
            it->second->add();
        }
        return;
    }
    if (header.node_id == node_id_) {
        rx_own_.add();
        return;
    }
    auto existing = peers_.find(header.node_id);
    if (existing != peers_.end() && header.epoch < existing->second->epoch) {
        rx_stale_epoch_.add();
        return;
    }
    // Decode before touching any state: a datagram that does not decode changes nothing.
    wire::Reader reader(scratch_payload_);
    std::uint64_t seq = 0;
    if (header.type == wire::DatagramType::kData) {
        seq = reader.u64();
    }
    std::vector<Record> records;
    const std::size_t offset = header.type == wire::DatagramType::kData ? kSeqBytes : 0;
    if (!reader.ok() || (seq == 0 && header.type == wire::DatagramType::kData) ||
        !wire::decode_records(std::span(scratch_payload_).subspan(offset), records, reason)) {
        rx_malformed_.add();
        log_.warn(fmt::format("event=datagram_malformed node={} reason=\"{}\"", header.node_id,
                              reason.empty() ? "no sequence" : reason));
        return;
    }
    for (const auto& r : records) {
        if (is_data_record(r) != (header.type == wire::DatagramType::kData)) {
            rx_malformed_.add();
            log_.warn(
                fmt::format("event=datagram_malformed node={} reason=\"record not allowed in a {} datagram\"",
                            header.node_id, header.type == wire::DatagramType::kData ? "data" : "control"));
            return;
        }
    }
    bool fresh = false;
    Peer& peer = peer_for(header.node_id, header.epoch, fresh);
    const auto now = Clock::now();
    // An authentic datagram proves this link works, and carries this peer, even when it is the losing copy
    // of one sent on every link (control, or parallel mode), which the replay window then drops.
    links_[link_index]->last_rx = now;
    peer.rx_by_link.resize(links_.size());
    peer.rx_by_link[link_index] = now;
    if (!peer.window.accept(header.packet)) {
        rx_replayed_.add();
        return;
    }
    peer.last_rx = now;
    // A datagram still queued on a link whose transport reported the peer gone does not bring it back: only
    // the transport's own report that it is up again does, or a datagram on another link.
    if (!peer.live && !reported_down(peer.node, link_index)) {
        peer.live = true;
        log_.info(fmt::format("event=peer_back node={}", peer.node));
    }
    if (header.type == wire::DatagramType::kData) {
        receive_data(peer, seq, std::move(records));
        return;
    }
    for (const auto& r : records) {
        if (const auto* ack = std::get_if<wire::Ack>(&r)) {
            if (ack->peer == node_id_ && ack->epoch == epoch_ && ack->seq < next_seq_) {
                note_ack(peer, ack->seq);
            }
        } else if (const auto* nack = std::get_if<wire::Nack>(&r)) {
            if (nack->peer == node_id_ && nack->epoch == epoch_) {
                handle_nack(peer, *nack);
            }
        } else if (const auto* alive = std::get_if<wire::Alive>(&r)) {
            peer.role = alive->role;
            peer.alive_next_seq = alive->next_seq;
            peer.flows = alive->flows;
            peer.seen = alive->seen;
            for (const auto& s : alive->seen) {
                if (s.node == node_id_ && s.epoch == epoch_ && s.seq < next_seq_) {
                    note_ack(peer, s.seq);
                }
            }
            if (!peer.synced && !peer.awaiting_bulk) {
                request_bulk(peer, fresh ? "new peer" : "not synced");
            }
        } else if (const auto* request = std::get_if<wire::BulkRequest>(&r)) {
            if (request->target == node_id_) {
                start_bulk(peer.node, request->request_id, request->origin);
            }
        }
    }
    release_acknowledged();
}

void Engine::receive_data(Peer& peer, std::uint64_t seq, std::vector<Record> records) {
    auto starts_my_bulk = [&](const std::vector<Record>& recs) {
        for (const auto& r : recs) {
            if (const auto* b = std::get_if<wire::BulkStart>(&r); b != nullptr && b->requester == node_id_) {
                return true;
            }
        }
        return false;
    };
    if (options_.mode != EngineOptions::Mode::kReliable) {
        // Best effort: apply in arrival order, no repair but the bulk transfers.
        if (!peer.synced) {
            peer.synced = true;
            if (!peer.awaiting_bulk && !peer.bulk_done) {
                request_bulk(peer, "new peer");
            }
        }
        apply(peer, seq, records);
        peer.expected = std::max(peer.expected, seq + 1);
        return;
    }
    if (!peer.synced) {
        if (!starts_my_bulk(records)) {
            if (!peer.awaiting_bulk) {
                request_bulk(peer, "data before sync");
            }
            return;  // what came before our bulk starts is covered by the bulk
        }
        peer.synced = true;
        peer.expected = seq;
        peer.reorder.clear();
    } else if (seq > peer.expected && starts_my_bulk(records)) {
        // The sender could not repair our gap and restarts us from here: keep what we hold, then jump. A bulk
        // in progress is abandoned first: with records missing, its end must not sweep anything.
        if (peer.in_bulk) {
            log_.warn(fmt::format("event=bulk_abandoned node={} bulk_id={} received={}", peer.node,
                                  peer.bulk_id, peer.bulk_received));
            peer.in_bulk = false;
            if (auto want = relays_.find(peer.bulk_origin); peer.bulk_origin != 0 && want != relays_.end()) {
                want->second.receiving = false;  // asked again by request_relays()
            }
            peer.bulk_origin = 0;
        }
        for (auto it = peer.reorder.begin(); it != peer.reorder.end() && it->first < seq;) {
            apply(peer, it->first, it->second);
            it = peer.reorder.erase(it);
        }
        log_.warn(fmt::format("event=stream_restart node={} from={} to={}", peer.node, peer.expected, seq));
        peer.expected = seq;
    }
    if (seq < peer.expected) {
        rx_duplicates_.add();
        peer.ack_due = true;
        return;
    }
    if (seq > peer.expected) {
        if (peer.reorder.size() >= options_.reorder_datagrams) {
            rx_reorder_overflows_.add();
            if (!peer.awaiting_bulk) {
                request_bulk(peer, "reorder overflow");
            }
            return;
        }
        if (!peer.reorder.emplace(seq, std::move(records)).second) {
            rx_duplicates_.add();
        }
        if (!peer.in_gap) {
            peer.in_gap = true;
            peer.gap_since = Clock::now();
        }
        return;
    }
    apply(peer, seq, records);
    ++peer.expected;
    drain_reorder(peer);
    peer.ack_due = true;
}

void Engine::drain_reorder(Peer& peer) {
    while (!peer.reorder.empty()) {
        auto it = peer.reorder.begin();
        if (it->first < peer.expected) {
            peer.reorder.erase(it);
            continue;
        }
        if (it->first != peer.expected) {
            break;
        }
        apply(peer, it->first, it->second);
        peer.reorder.erase(it);
        ++peer.expected;
    }
    if (peer.reorder.empty() && (peer.alive_next_seq == 0 || peer.expected >= peer.alive_next_seq)) {
        peer.in_gap = false;
    }
}

void Engine::apply(Peer& peer, std::uint64_t, const std::vector<Record>& records) {
    for (const auto& r : records) {
        apply_record(peer, r);
        rx_records_.add();
    }
}

void Engine::apply_record(Peer& peer, const Record& record) {
    std::string reason;
    if (const auto* full = std::get_if<wire::FlowFull>(&record)) {
        if (!protos_.validate_peer(full->flow, reason)) {
            rx_rejected_.add();
            log_.debug(fmt::format("event=record_rejected node={} reason=\"{}\"", peer.node, reason));
            return;
        }
        peer.ids[full->flow_id] = full->flow.key();
        external_.upsert(full->flow, peer.generation, peer.node);
        if (peer.in_bulk) {
            ++peer.bulk_received;
        }
    } else if (const auto* update = std::get_if<wire::FlowUpdate>(&record)) {
        auto it = peer.ids.find(update->flow_id);
        const sdk::FlowState* current = it == peer.ids.end() ? nullptr : external_.find(it->second);
        if (current == nullptr) {
            rx_unknown_flow_.add();
            return;
        }
        sdk::FlowState next = *current;
        wire::copy_fields(next, update->values, update->fields);
        if (!protos_.validate_peer(next, reason)) {
            rx_rejected_.add();
            return;
        }
        external_.upsert(next, peer.generation, peer.node);
    } else if (const auto* del = std::get_if<wire::FlowDelete>(&record)) {
        auto it = peer.ids.find(del->flow_id);
        if (it == peer.ids.end()) {
            rx_unknown_flow_.add();
            return;
        }
        external_.erase(it->second);
        peer.ids.erase(it);
    } else if (const auto* exp = std::get_if<wire::ExpectNew>(&record)) {
        external_.upsert(exp->expectation, peer.generation, peer.node);
        if (peer.in_bulk) {
            ++peer.bulk_received;
        }
    } else if (const auto* exp_del = std::get_if<wire::ExpectDelete>(&record)) {
        external_.erase(key_of(exp_del->expectation));
    } else if (const auto* start = std::get_if<wire::BulkStart>(&record)) {
        if (start->requester != node_id_ && start->requester != 0) {
            return;
        }
        peer.in_bulk = true;
        peer.bulk_origin = start->requester == node_id_ ? start->origin : 0;
        peer.bulk_id = start->bulk_id;
        peer.bulk_generation = next_generation_++;
        peer.generation = peer.bulk_generation;
        peer.bulk_total = start->total;
        peer.bulk_received = 0;
        peer.bulk_started = peer.bulk_logged = Clock::now();
        if (start->requester == node_id_) {
            peer.awaiting_bulk = false;
        }
        if (auto want = relays_.find(peer.bulk_origin); peer.bulk_origin != 0 && want != relays_.end()) {
            want->second.receiving = true;
        }
        log_.info(fmt::format("event=bulk_receiving node={} bulk_id={} origin={} entries={}", peer.node,
                              start->bulk_id, peer.bulk_origin, start->total));
    } else if (const auto* relay = std::get_if<wire::FlowRelay>(&record)) {
        // Only inside a relay bulk we asked for (another requester's relay is no business of ours).
        if (!peer.in_bulk || peer.bulk_origin == 0 || relay->origin != peer.bulk_origin) {
            return;
        }
        if (!protos_.validate_peer(relay->flow, reason)) {
            rx_rejected_.add();
            return;
        }
        external_.upsert(relay->flow, peer.bulk_generation, relay->origin);
        ++peer.bulk_received;
    } else if (const auto* progress = std::get_if<wire::BulkProgress>(&record)) {
        if (peer.in_bulk && progress->bulk_id == peer.bulk_id) {
            peer.bulk_total = progress->total;
            log_.info(
                fmt::format("event=bulk_progress node={} bulk_id={} received={} total={} percent={:.0f}",
                            peer.node, peer.bulk_id, peer.bulk_received, progress->total,
                            progress->total ? 100.0 * peer.bulk_received / progress->total : 100.0));
        }
    } else if (const auto* end = std::get_if<wire::BulkEnd>(&record)) {
        if (!peer.in_bulk || end->bulk_id != peer.bulk_id) {
            return;
        }
        // Everything the sender still has was stamped since the start: the rest it no longer has.
        const std::uint32_t origin = peer.bulk_origin != 0 ? peer.bulk_origin : peer.node;
        const std::size_t swept = external_.sweep_origin(peer.bulk_generation, origin);
        if (peer.bulk_origin != 0) {
            auto want = relays_.find(origin);
            relayed_[origin] = want != relays_.end() ? want->second.epoch : 0;
            if (want != relays_.end()) {
                relays_.erase(want);
            }
            relays_completed_.add();
            log_.info(fmt::format("event=relay_complete origin={} from={} received={} swept={}", origin,
                                  peer.node, peer.bulk_received, swept));
            peer.bulk_origin = 0;
        }
        std::erase_if(peer.ids, [&](const auto& kv) { return external_.find(kv.second) == nullptr; });
        peer.in_bulk = false;
        peer.bulk_done = true;
        bulks_completed_.add();
        log_.info(fmt::format("event=bulk_complete node={} bulk_id={} received={} swept={} ms={:.0f}",
                              peer.node, peer.bulk_id, peer.bulk_received, swept,
                              ms_between(peer.bulk_started, Clock::now())));
    }
}

void Engine::request_bulk(Peer& peer, const char* why) {
    peer.awaiting_bulk = true;
    peer.request_id = next_request_id_++;
    peer.last_request = Clock::now();
    bulk_requests_sent_.add();
    log_.info(fmt::format("event=bulk_request node={} request_id={} reason=\"{}\"", peer.node,
                          peer.request_id, why));
    send_control({wire::BulkRequest{peer.node, peer.request_id}}, true);
}

// ---------------------------------------------------------------------------------------------------------
// Timers and links

void Engine::schedule_tick() {
    if (stopped_) {
        return;
    }
    tick_timer_.expires_after(kTick);
    tick_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
        if (ec || alive.expired() || stopped_) {
            return;
        }
        try {
            tick();
        } catch (const std::exception& e) {
            log_.error(fmt::format("event=replication_tick_error reason=\"{}\"", e.what()));
        }
        schedule_tick();
    });
}

void Engine::tick() {
    const auto now = Clock::now();
    if (!delayed_.empty() && delayed_.front().first <= now) {
        flush();
    }
    if (options_.mode == EngineOptions::Mode::kAlarm && options_.sending &&
        now - last_alarm_ >= options_.alarm_interval) {
        last_alarm_ = now;
        start_bulk(0, 0);
    }
    run_bulk(now);
    request_relays(now);

    std::vector<Record> control;
    std::int64_t live = 0;
    for (auto& [node, peer_ptr] : peers_) {
        Peer& peer = *peer_ptr;
        if (peer.live && now - peer.last_rx > options_.peer_timeout) {
            peer.live = false;
            log_.warn(fmt::format("event=peer_lost node={} reason=silence silent_ms={:.0f}", node,
                                  ms_between(peer.last_rx, now)));
        }
        live += peer.live ? 1 : 0;
        if (!peer.live) {
            continue;
        }
        if (peer.awaiting_bulk && now - peer.last_request >= options_.bulk_request_retry) {
            request_bulk(peer, "retry");
        }
        if (options_.mode != EngineOptions::Mode::kReliable || !peer.synced) {
            continue;
        }
        if (peer.ack_due && now - peer.last_ack >= options_.ack_interval) {
            control.push_back(wire::Ack{node, peer.epoch, peer.expected - 1});
            peer.ack_due = false;
            peer.last_ack = now;
            acks_sent_.add();
        }
        const bool tail_missing = peer.alive_next_seq > peer.expected;
        if (!peer.reorder.empty() || tail_missing) {
            if (!peer.in_gap) {
                peer.in_gap = true;
                peer.gap_since = now;
            }
            if (now - peer.gap_since >= options_.ack_interval &&
                now - peer.last_nack >= options_.nack_retry) {
                wire::Nack nack{node, peer.epoch, {}};
                std::uint64_t from = peer.expected;
                for (const auto& [s, recs] : peer.reorder) {
                    if (nack.ranges.size() == wire::kMaxNackRanges) {
                        break;
                    }
                    if (s > from) {
                        nack.ranges.emplace_back(from, s - 1);
                    }
                    from = s + 1;
                }
                if (tail_missing && peer.alive_next_seq > from && nack.ranges.size() < wire::kMaxNackRanges) {
                    nack.ranges.emplace_back(from, peer.alive_next_seq - 1);
                }
                if (!nack.ranges.empty()) {
                    control.push_back(std::move(nack));
                    peer.last_nack = now;
                    nacks_sent_.add();
                }
            }
        } else {
            peer.in_gap = false;
        }
    }
    peers_gauge_.set(live);
    // Bulk transfers this node is receiving: how many, and how far (progress for dashboards).
    std::int64_t receiving = 0;
    std::int64_t received = 0;
    std::int64_t expected = 0;
    for (const auto& [node, peer_ptr] : peers_) {
        if (peer_ptr->in_bulk) {
            ++receiving;
            received += peer_ptr->bulk_received;
            expected += peer_ptr->bulk_total;
        }
    }
    bulks_receiving_.set(receiving);
    bulk_receiving_entries_.set(received);
    bulk_receiving_total_.set(expected);
    if (now - last_alive_ >= options_.alive_interval) {
        last_alive_ = now;
        wire::Alive alive;
        alive.role = options_.sending ? 2 : 1;
        alive.flags = hello_sent_ ? 0 : wire::kAliveHello;
        hello_sent_ = true;
        alive.next_seq = next_seq_;
        alive.flows = static_cast<std::uint32_t>(internal_.flow_count());
        for (const auto& [node, peer] : peers_) {
            // Gone senders too: we still hold their tables, which a rejoining node may ask us to relay.
            if (peer->synced && alive.seen.size() < wire::kMaxAliveSeen) {
                alive.seen.push_back({node, peer->epoch, peer->expected - 1});
            }
        }
        control.push_back(std::move(alive));
    }
    if (!control.empty()) {
        send_control(control, true);
    }
    release_acknowledged();
    choose_links(now);
}

void Engine::request_relays(Clock::time_point now) {
    // Not before we had the time to hear every live node: a live origin serves its own table.
    if (options_.mode != EngineOptions::Mode::kReliable || now - started_at_ < options_.peer_timeout) {
        return;
    }
    std::map<std::uint32_t, RelayWant> best;
    for (const auto& [node, peer] : peers_) {
        if (!peer->live) {
            continue;
        }
        for (const auto& s : peer->seen) {
            if (s.node == node_id_ || s.node == node) {
                continue;
            }
            auto origin = peers_.find(s.node);
            if (origin != peers_.end() && (origin->second->live || origin->second->bulk_done)) {
                continue;  // it serves itself, or we hold what it sent us
            }
            if (auto held = relayed_.find(s.node); held != relayed_.end() && held->second >= s.epoch) {
                continue;
            }
            auto& b = best[s.node];
            if (b.source == 0 || s.epoch > b.epoch || (s.epoch == b.epoch && s.seq > b.seq)) {
                b.source = node;
                b.epoch = s.epoch;
                b.seq = s.seq;
            }
        }
    }
    // A relay nobody needs any more (its origin is back, or nobody lists it), or whose source went quiet
    // while serving it, is dropped or asked again elsewhere.
    for (auto it = relays_.begin(); it != relays_.end();) {
        auto source = peers_.find(it->second.source);
        const bool source_gone = source == peers_.end() || !source->second->live;
        if (best.count(it->first) == 0 && (!it->second.receiving || source_gone)) {
            it = relays_.erase(it);
            continue;
        }
        if (it->second.receiving && source_gone) {
            it->second.receiving = false;
            it->second.request_id = 0;  // ask again, now
        }
        ++it;
    }
    for (const auto& [origin, candidate] : best) {
        auto& want = relays_[origin];
        if (want.receiving || (want.request_id != 0 && now - want.last < options_.bulk_request_retry)) {
            continue;
        }
        want.source = candidate.source;
        want.epoch = candidate.epoch;
        want.seq = candidate.seq;
        want.request_id = next_request_id_++;
        want.last = now;
        bulk_requests_sent_.add();
        log_.info(fmt::format("event=relay_request origin={} from={} seen_seq={} request_id={}", origin,
                              candidate.source, candidate.seq, want.request_id));
        send_control({wire::BulkRequest{candidate.source, want.request_id, origin}}, true);
    }
}

void Engine::choose_links(Clock::time_point now) {
    if (options_.link_mode != EngineOptions::LinkMode::kFailover || links_.empty()) {
        return;
    }
    bool any_peer = false;
    for (const auto& [node, peer] : peers_) {
        any_peer = any_peer || peer->live;
    }
    auto healthy = [&](const Link& link) {
        return link.carrier && (!any_peer || now - link.last_rx <= options_.link_silence);
    };
    std::size_t chosen = active_link_;
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (healthy(*links_[i])) {
            chosen = i;
            break;
        }
    }
    if (chosen != active_link_) {
        const Link& from = *links_[active_link_];
        log_.warn(fmt::format("event=link_failover from={} to={} reason={}", from.name, links_[chosen]->name,
                              !from.carrier ? "carrier" : (healthy(from) ? "preferred_back" : "silence")));
        link_failovers_.add();
        active_link_ = chosen;
    }
}

nlohmann::json Engine::status() const {
    const auto now = Clock::now();
    nlohmann::json peers = nlohmann::json::array();
    for (const auto& [node, p] : peers_) {
        nlohmann::json bulk = {{"state", p->in_bulk         ? "receiving"
                                         : p->awaiting_bulk ? "requested"
                                         : p->bulk_done     ? "done"
                                                            : "none"},
                               {"received", p->bulk_received},
                               {"total", p->bulk_total}};
        peers.push_back({{"node", node},
                         {"epoch", p->epoch},
                         {"live", p->live},
                         {"reported_down_on", down_on(node)},
                         {"role", p->role == 2 ? "primary" : "backup"},
                         {"silent_ms", static_cast<std::int64_t>(ms_between(p->last_rx, now))},
                         {"synced", p->synced},
                         {"next_expected", p->expected},
                         {"reorder_held", p->reorder.size()},
                         {"acked_ours", p->acked},
                         {"bulk", bulk}});
    }
    nlohmann::json links = nlohmann::json::array();
    for (std::size_t i = 0; i < links_.size(); ++i) {
        const auto& l = *links_[i];
        links.push_back(
            {{"name", l.name},
             {"carrier", l.carrier},
             {"active", options_.link_mode == EngineOptions::LinkMode::kParallel || i == active_link_},
             {"silent_ms", static_cast<std::int64_t>(ms_between(l.last_rx, now))}});
    }
    nlohmann::json relays = nlohmann::json::array();
    for (const auto& [origin, want] : relays_) {
        relays.push_back({{"origin", origin}, {"from", want.source}, {"receiving", want.receiving}});
    }
    for (const auto& [origin, epoch] : relayed_) {
        relays.push_back({{"origin", origin}, {"held_epoch", epoch}, {"done", true}});
    }
    nlohmann::json serving = nlohmann::json::array();
    for (const auto& job : bulks_) {
        serving.push_back({{"requester", job.requester},
                           {"bulk_id", job.bulk_id},
                           {"sent", job.sent},
                           {"total", job.total},
                           {"started", job.started}});
    }
    return {
        {"node_id", node_id_},
        {"epoch", epoch_},
        {"sending", options_.sending},
        {"next_seq", next_seq_},
        {"resend_queue", {{"datagrams", resend_.size()}, {"bytes", resend_bytes_}, {"oldest", resend_base_}}},
        {"complete", complete()},
        {"peers", peers},
        {"links", links},
        {"bulks_serving", serving},
        {"relays", relays}};
}

}  // namespace ctsync::core
