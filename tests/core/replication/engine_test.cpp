// SPDX-License-Identifier: GPL-2.0-or-later
// The replication engine between in-process nodes over a fake datagram bus with configurable loss: exact
// convergence of every backup's external cache with the primary's internal cache under live changes, loss,
// late joiners and resend-queue overflow; policies; and hostile input (forged, replayed, truncated, garbled)
// that must change nothing and be counted.
#include "core/replication/engine.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <random>

#include "tests/support/flows.hpp"

namespace ctsync::core {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

class NullLogger final : public sdk::Logger {
  public:
    void log(sdk::LogLevel, std::string_view m) noexcept override {
        if (getenv("CTSYNC_TEST_VERBOSE") != nullptr) {
            fprintf(stderr, "%.*s\n", static_cast<int>(m.size()), m.data());
        }
    }
    bool enabled(sdk::LogLevel) const noexcept override { return true; }
};

class Bus;

class FakeLink final : public sdk::Transport {
  public:
    FakeLink(Bus& bus, asio::io_context& io) : bus_(bus), io_(io) {}
    void stop() noexcept override {}
    bool start(sdk::TransportSink& sink, std::string&) noexcept override {
        sink_ = &sink;
        return true;
    }
    bool send(std::span<const std::byte> datagram) noexcept override;
    std::size_t max_datagram_size() const noexcept override { return 1400; }
    // Posted handlers hold a weak reference: a datagram still in flight when its link is destroyed (a node
    // restarted by the test) is dropped, as the network would.
    void deliver(std::vector<std::byte> data) {
        asio::post(io_, [this, alive = std::weak_ptr<int>(alive_), data = std::move(data)] {
            if (!alive.expired() && sink_ != nullptr && !deaf) {
                sink_->on_datagram(data);
            }
        });
    }
    // What a supervising transport (TIPC's topology service) does: tells the core a peer came or went.
    void report_peer(std::uint32_t node, sdk::PeerState state) {
        asio::post(io_, [this, alive = std::weak_ptr<int>(alive_), node, state] {
            if (!alive.expired() && sink_ != nullptr) {
                sink_->on_peer_state(node, state, "test report");
            }
        });
    }
    bool deaf = false;                         // drops everything addressed to it
    std::vector<std::vector<std::byte>> sent;  // kept when `record` is set
    bool record = false;

  private:
    Bus& bus_;
    asio::io_context& io_;
    sdk::TransportSink* sink_ = nullptr;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

class Bus {
  public:
    double loss = 0;
    // Drops chosen by the test (a datagram to `to`), on top of the random loss.
    std::function<bool(const FakeLink* to, std::span<const std::byte> datagram)> drop;
    std::vector<FakeLink*> links;
    std::mt19937 rng{42};
    void send(FakeLink* from, std::span<const std::byte> data) {
        for (auto* to : links) {
            if (to == from) {
                continue;
            }
            if (std::uniform_real_distribution<double>(0, 1)(rng) < loss || (drop && drop(to, data))) {
                continue;
            }
            to->deliver(std::vector<std::byte>(data.begin(), data.end()));
        }
    }
};

bool FakeLink::send(std::span<const std::byte> datagram) noexcept {
    if (record) {
        sent.emplace_back(datagram.begin(), datagram.end());
    }
    bus_.send(this, datagram);
    return true;
}

wire::Keyring test_keyring(std::uint8_t fill = 7) {
    std::array<std::uint8_t, wire::kKeyBytes> key{};
    key.fill(fill);
    return wire::Keyring({{1, key}}, 1, false);
}

sdk::FlowState make_flow(std::uint32_t i) {
    return test::nated_tcp_flow(i);
}

struct Node {
    Node(asio::io_context& io, Bus& bus, std::uint32_t id, EngineOptions options,
         wire::Keyring keys = test_keyring())
        : link(bus, io) {
        bus.links.push_back(&link);
        engine = std::make_unique<Engine>(io.get_executor(), options, id, std::move(keys), internal, external,
                                          protos, metrics, log);
        engine->add_link("fake", link);
        internal.set_observer(engine.get());
    }
    std::uint64_t counter(const std::string& name) const {
        for (const auto& s : metrics.snapshot()) {
            if (s.name == "replication." + name) {
                return static_cast<std::uint64_t>(s.value);
            }
        }
        return 0;
    }
    FlowCache internal, external;
    ProtoTable protos;
    MetricsRegistry metrics;
    NullLogger log;
    FakeLink link;
    std::unique_ptr<Engine> engine;
};

// Equal apart from what legitimately differs between nodes: the timer (weak policy sends no refreshes) and
// the kernel's own id.
bool same_table(const FlowCache& primary, const FlowCache& backup, std::string& why) {
    if (primary.flow_count() != backup.flow_count()) {
        why = fmt::format("{} flows against {}", backup.flow_count(), primary.flow_count());
        return false;
    }
    bool same = true;
    primary.for_each_flow([&](const sdk::FlowState& f) {
        const auto* b = backup.find(f.key());
        if (b == nullptr) {
            same = false;
            why = "a flow is missing";
            return;
        }
        auto a = f, c = *b;
        a.timeout = c.timeout = 0;
        a.kernel_id = c.kernel_id = 0;
        if (!(a == c)) {
            same = false;
            why = "a flow differs";
        }
    });
    if (same && primary.expectation_count() != backup.expectation_count()) {
        why = "expectations differ";
        return false;
    }
    return same;
}

template <class Pred>
bool run_until(asio::io_context& io, Pred pred, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        io.run_for(10ms);
        if (pred()) {
            return true;
        }
    }
    return false;
}

EngineOptions primary_options() {
    EngineOptions o;
    o.sending = true;
    o.bulk_rate = 1000000;
    o.alive_interval = 50ms;
    o.peer_timeout = 500ms;
    o.nack_retry = 30ms;
    o.bulk_request_retry = 200ms;
    o.link_silence = 300ms;
    return o;
}
EngineOptions backup_options() {
    auto o = primary_options();
    o.sending = false;
    return o;
}

// Creates, updates and deletes flows on the primary while everything runs, as a kernel would.
void churn(asio::io_context& io, Node& p, std::uint32_t first, std::uint32_t count) {
    for (std::uint32_t i = first; i < first + count; ++i) {
        p.internal.upsert(make_flow(i));
        if (i % 3 == 0) {
            auto f = make_flow(i);
            f.tcp.state = 4;  // critical change
            f.mark = 99;
            p.internal.upsert(f);
        }
        if (i % 5 == 0) {
            p.internal.erase(make_flow(i - 2).key());
        }
        if (i % 500 == 0) {
            io.run_for(1ms);
        }
    }
}

class EngineTest : public ::testing::TestWithParam<double> {};

TEST_P(EngineTest, ThreeNodesConvergeExactlyUnderLoss) {
    asio::io_context io;
    Bus bus;
    bus.loss = GetParam();
    Node p(io, bus, 1, primary_options()), b1(io, bus, 2, backup_options()), b2(io, bus, 3, backup_options());
    for (std::uint32_t i = 0; i < 3000; ++i) {
        p.internal.upsert(make_flow(100000 + i));  // already there when the engines start: needs a bulk
    }
    for (auto* n : {&p, &b1, &b2}) {
        ASSERT_EQ(n->engine->start(), "");
    }
    churn(io, p, 0, 20000);
    std::string why1, why2;
    ASSERT_TRUE(run_until(
        io,
        [&] {
            return same_table(p.internal, b1.external, why1) && same_table(p.internal, b2.external, why2) &&
                   b1.engine->complete() && b2.engine->complete();
        },
        60s))
        << "b1: " << why1 << "; b2: " << why2 << "\n"
        << b1.engine->status().dump(1) << "\nprimary: " << p.engine->status().dump(1);
    if (GetParam() > 0) {
        EXPECT_GT(p.counter("retransmits"), 0u);
        EXPECT_GT(b1.counter("nacks_sent") + b2.counter("nacks_sent"), 0u);
    }
    EXPECT_EQ(b1.counter("rx_malformed"), 0u);
    EXPECT_EQ(b1.counter("rx_rejected"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Loss, EngineTest, ::testing::Values(0.0, 0.05, 0.20),
                         [](const ::testing::TestParamInfo<double>& p) {
                             return fmt::format("loss_{}pct", static_cast<int>(p.param * 100));
                         });

// ABI 1.1: a transport that supervises its peers reports one gone; the engine takes it for gone at once
// instead of after peer_timeout of silence, and datagrams still queued on that link do not bring it back;
// the transport's report that it is up again does.
TEST(Engine, PeerReportedDownByItsTransportIsGoneBeforeSilence) {
    asio::io_context io;
    Bus bus;
    auto slow = backup_options();
    slow.peer_timeout = 10s;  // silence alone would take this long
    auto primary = primary_options();
    primary.peer_timeout = 10s;
    Node p(io, bus, 1, primary), b(io, bus, 2, slow);
    ASSERT_EQ(p.engine->start(), "");
    ASSERT_EQ(b.engine->start(), "");
    ASSERT_TRUE(run_until(
        io, [&] { return b.engine->live_peers() == 1 && p.engine->live_peers() == 1; }, 5s));

    const auto reported = std::chrono::steady_clock::now();
    b.link.report_peer(1, sdk::PeerState::kDown);
    ASSERT_TRUE(run_until(
        io, [&] { return b.engine->live_peers() == 0; }, 1s));
    EXPECT_LT(std::chrono::steady_clock::now() - reported, 500ms);
    EXPECT_EQ(b.counter("peers_lost_by_transport"), 1u);
    EXPECT_EQ(b.counter("peer_reports"), 1u);
    EXPECT_EQ(b.engine->status()["peers"][0]["reported_down_on"], nlohmann::json::array({"fake"}));
    // The primary still sends ALIVE every 50 ms on that link: none of them revives it.
    io.run_for(400ms);
    EXPECT_EQ(b.engine->live_peers(), 0u);

    b.link.report_peer(1, sdk::PeerState::kUp);
    ASSERT_TRUE(run_until(
        io, [&] { return b.engine->live_peers() == 1; }, 2s));
    EXPECT_EQ(b.engine->status()["peers"][0]["reported_down_on"], nlohmann::json::array());
    // A report about an unknown node or about this node itself changes nothing.
    b.link.report_peer(9, sdk::PeerState::kDown);
    b.link.report_peer(2, sdk::PeerState::kDown);
    io.run_for(100ms);
    EXPECT_EQ(b.engine->live_peers(), 1u);
    EXPECT_EQ(b.counter("peers_lost_by_transport"), 1u);
}

// Redundant links: a peer that one link's transport reports down but another link still hears stays.
TEST(Engine, PeerReportedDownOnOneLinkButHeardOnAnotherStays) {
    asio::io_context io;
    Bus bus, bus2;
    Node p(io, bus, 1, primary_options()), b(io, bus, 2, backup_options());
    FakeLink p2(bus2, io), b2(bus2, io);
    bus2.links = {&p2, &b2};
    p.engine->add_link("fake2", p2);
    b.engine->add_link("fake2", b2);
    ASSERT_EQ(p.engine->start(), "");
    ASSERT_EQ(b.engine->start(), "");
    ASSERT_TRUE(run_until(
        io, [&] { return b.engine->live_peers() == 1; }, 5s));
    io.run_for(200ms);  // ALIVE goes on every link: both have heard the primary
    b.link.report_peer(1, sdk::PeerState::kDown);
    io.run_for(300ms);
    EXPECT_EQ(b.engine->live_peers(), 1u);
    EXPECT_EQ(b.counter("peers_lost_by_transport"), 0u);
    // Now the second link goes quiet as well: reported down there too, the peer is gone.
    b2.deaf = true;
    io.run_for(400ms);  // longer than link_silence (300 ms)
    b2.report_peer(1, sdk::PeerState::kDown);
    ASSERT_TRUE(run_until(
        io, [&] { return b.engine->live_peers() == 0; }, 1s));
    EXPECT_EQ(b.counter("peers_lost_by_transport"), 1u);
}

TEST(Engine, LateJoinerGetsBulkAndLaggardBeyondResendQueueIsRepaired) {
    asio::io_context io;
    Bus bus;
    auto popts = primary_options();
    popts.resend_queue_bytes = 65536;  // a few dozen datagrams
    Node p(io, bus, 1, popts), b1(io, bus, 2, backup_options());
    ASSERT_EQ(p.engine->start(), "");
    ASSERT_EQ(b1.engine->start(), "");
    churn(io, p, 0, 2000);
    std::string why;
    ASSERT_TRUE(run_until(
        io, [&] { return same_table(p.internal, b1.external, why); }, 20s))
        << why;
    // b1 hears nothing for a while (its link is cut) while the primary keeps changing the table: far more
    // than the resend queue holds.
    b1.link.deaf = true;
    churn(io, p, 2000, 20000);
    run_until(
        io, [] { return false; }, 200ms);
    b1.link.deaf = false;
    // A node that starts now asks for the whole table.
    Node b2(io, bus, 3, backup_options());
    ASSERT_EQ(b2.engine->start(), "");
    // Its bulk's progress is in gauges while it arrives.
    std::uint64_t most_receiving = 0;
    std::uint64_t most_received = 0;
    std::uint64_t total_seen = 0;
    ASSERT_TRUE(run_until(
        io,
        [&] {
            most_receiving = std::max(most_receiving, b2.counter("bulks_receiving"));
            most_received = std::max(most_received, b2.counter("bulk_receiving_entries"));
            total_seen = std::max(total_seen, b2.counter("bulk_receiving_total"));
            return same_table(p.internal, b1.external, why) && same_table(p.internal, b2.external, why) &&
                   b1.engine->complete() && b2.engine->complete();
        },
        60s))
        << why << "\n"
        << b1.engine->status().dump(1);
    EXPECT_GE(p.counter("resend_overflows"), 1u);
    EXPECT_GE(p.counter("bulks_served"), 2u);
    EXPECT_EQ(most_receiving, 1u);
    EXPECT_GT(most_received, 0u);
    EXPECT_GE(total_seen, most_received);
    // The gauge falls back once no bulk is arriving. Under load b2 may have asked again (a retry the primary
    // serves as a second bulk after the first), so wait, bounded, for the last one to end.
    EXPECT_TRUE(run_until(
        io, [&] { return b2.counter("bulks_receiving") == 0 && b2.engine->complete(); }, 20s))
        << b2.engine->status().dump(1);
    EXPECT_EQ(b2.counter("bulk_receiving_entries"), 0u);
    EXPECT_GE(b2.counter("bulks_completed"), 1u);
    EXPECT_TRUE(same_table(p.internal, b2.external, why)) << why;
}

// A data datagram's sequence and records, opened with the test key (nullopt for control datagrams).
std::optional<std::pair<std::uint64_t, std::vector<wire::Record>>> open_data(
    std::span<const std::byte> datagram) {
    static const auto keys = test_keyring();
    wire::Header h;
    std::vector<std::byte> payload;
    std::string reason;
    if (!keys.open(datagram, h, payload, reason) || h.type != wire::DatagramType::kData) {
        return std::nullopt;
    }
    wire::Reader r(payload);
    const std::uint64_t seq = r.u64();
    std::vector<wire::Record> records;
    if (!r.ok() || !wire::decode_records(std::span(payload).subspan(8), records, reason)) {
        return std::nullopt;
    }
    return std::make_pair(seq, std::move(records));
}

// The primary cannot repair a backup's gap and restarts it with a bulk, but the datagram carrying the
// bulk's start is lost, and the backup has more gaps below it than one NACK names: every range it asks for
// lies before the restart. The primary must send the restart again (it used to send nothing, and the backup
// waited forever; seen under ASan timing in the loss test above).
TEST(Engine, ALostRestartIsResentWhenTheBackupOnlyAsksForWhatCameBeforeIt) {
    asio::io_context io;
    Bus bus;
    auto popts = primary_options();
    popts.resend_queue_bytes = 256 * 1024;  // about 200 datagrams: far more gaps than one NACK names
    Node p(io, bus, 1, popts), b1(io, bus, 2, backup_options());
    ASSERT_EQ(p.engine->start(), "");
    ASSERT_EQ(b1.engine->start(), "");
    churn(io, p, 0, 2000);
    std::string why;
    ASSERT_TRUE(run_until(
        io, [&] { return same_table(p.internal, b1.external, why) && b1.engine->complete(); }, 20s))
        << why;
    const auto bulks_before = p.counter("bulks_served");
    // Every odd data datagram to b1 is lost (retransmissions too) until the primary restarts b1, and the
    // datagram carrying that restart is lost as well; nothing is lost after it.
    bool lossy = true;
    std::uint64_t restart_seq = 0;
    bus.drop = [&](const FakeLink* to, std::span<const std::byte> datagram) {
        if (to != &b1.link || !lossy) {
            return false;
        }
        const auto data = open_data(datagram);
        if (!data) {
            return false;
        }
        for (const auto& r : data->second) {
            if (const auto* b = std::get_if<wire::BulkStart>(&r); b != nullptr && b->requester == 2) {
                restart_seq = data->first;
                lossy = false;
                return true;
            }
        }
        return data->first % 2 == 1;
    };
    // Small steps, so that the table stops changing as soon as the restart is sent: then nothing but the
    // bulk follows it, and nothing overflows the resend queue again (which would restart b1 a second time).
    for (std::uint32_t round = 0; round < 5000 && lossy; ++round) {
        churn(io, p, 10000 + round * 20, 20);
        io.run_for(1ms);
    }
    ASSERT_FALSE(lossy) << "the primary never restarted b1";
    EXPECT_TRUE(run_until(
        io, [&] { return same_table(p.internal, b1.external, why) && b1.engine->complete(); }, 20s))
        << why << " (restart at " << restart_seq << ")\n"
        << b1.engine->status().dump(1) << "\nprimary: " << p.engine->status().dump(1);
    EXPECT_GT(b1.counter("nacks_sent"), 0u);
    EXPECT_GE(p.counter("restarts_resent"), 1u);
    EXPECT_GE(p.counter("resend_overflows"), 1u);
    // Restarted once for the gap: a bulk larger than half the resend queue waits for acknowledgements
    // instead of pushing its own start out of the queue and restarting b1 again and again.
    EXPECT_EQ(p.counter("bulks_served"), bulks_before + 1);
}

TEST(Engine, WeakPolicySendsNoTimerRefreshesStrongDoes) {
    for (auto policy : {EngineOptions::Policy::kWeak, EngineOptions::Policy::kStrong}) {
        asio::io_context io;
        Bus bus;
        auto popts = primary_options();
        popts.policy = policy;
        Node p(io, bus, 1, popts), b(io, bus, 2, backup_options());
        ASSERT_EQ(p.engine->start(), "");
        ASSERT_EQ(b.engine->start(), "");
        p.internal.upsert(make_flow(1));
        std::string why;
        ASSERT_TRUE(run_until(
            io, [&] { return same_table(p.internal, b.external, why); }, 5s))
            << why;
        const auto records = p.counter("tx_records");
        auto f = make_flow(1);
        f.timeout = 120;  // only the timer moved
        p.internal.upsert(f);
        run_until(
            io, [] { return false; }, 100ms);
        if (policy == EngineOptions::Policy::kWeak) {
            EXPECT_EQ(p.counter("tx_records"), records);
            EXPECT_EQ(p.counter("suppressed_refreshes"), 1u);
            EXPECT_EQ(b.external.find(f.key())->timeout, 300u);
        } else {
            EXPECT_EQ(p.counter("tx_records"), records + 1);
            EXPECT_EQ(b.external.find(f.key())->timeout, 120u);
        }
    }
}

TEST(Engine, DelayedPolicyNeverSendsShortFlows) {
    asio::io_context io;
    Bus bus;
    auto popts = primary_options();
    popts.policy = EngineOptions::Policy::kDelayed;
    popts.delay = 300ms;
    Node p(io, bus, 1, popts), b(io, bus, 2, backup_options());
    ASSERT_EQ(p.engine->start(), "");
    ASSERT_EQ(b.engine->start(), "");
    ASSERT_TRUE(run_until(
        io, [&] { return b.engine->complete(); }, 5s));
    p.internal.upsert(make_flow(1));  // lives long
    p.internal.upsert(make_flow(2));  // ends inside the window
    run_until(
        io, [] { return false; }, 100ms);
    EXPECT_EQ(b.external.flow_count(), 0u);  // not yet: the window has not passed
    p.internal.erase(make_flow(2).key());
    std::string why;
    ASSERT_TRUE(run_until(
        io, [&] { return same_table(p.internal, b.external, why); }, 5s))
        << why;
    EXPECT_EQ(p.counter("delayed_never_sent"), 1u);
    EXPECT_EQ(b.counter("rx_unknown_flow"), 0u);
}

// A proto handler that holds flows back until they are assured (as proto-udp does by default).
class AssuredOnly final : public sdk::ProtoHandler {
  public:
    void stop() noexcept override {}
    std::span<const std::uint8_t> protocols() const noexcept override { return kProtocols; }
    bool worth_replicating(const sdk::FlowState& f) const noexcept override { return (f.status & 0x4) != 0; }
    sdk::Change classify(const sdk::FlowState& before, const sdk::FlowState& after) const noexcept override {
        return before == after ? sdk::Change::kNone : sdk::Change::kCritical;
    }
    void adjust_for_commit(sdk::FlowState&) const noexcept override {}
    bool validate_peer(const sdk::FlowState&, std::string&) const noexcept override { return true; }

  private:
    static constexpr std::uint8_t kProtocols[] = {sdk::l4::kTcp};
};

TEST(Engine, FlowsHeldBackByTheirProtoHandlerAreCountedOnceAndSentInFullWhenWorthIt) {
    asio::io_context io;
    Bus bus;
    AssuredOnly handler;
    Node p(io, bus, 1, primary_options()), b(io, bus, 2, backup_options());
    ASSERT_EQ(p.protos.add(handler), "");
    ASSERT_EQ(p.engine->start(), "");
    ASSERT_EQ(b.engine->start(), "");
    ASSERT_TRUE(run_until(
        io, [&] { return b.engine->complete(); }, 5s));
    auto f = make_flow(1);
    f.status = 0x1ba;  // not ASSURED
    p.internal.upsert(f);
    f.mark = 5;  // a change, still not worth sending
    p.internal.upsert(f);
    auto one_shot = make_flow(2);
    one_shot.status = 0x1ba;
    p.internal.upsert(one_shot);
    p.internal.erase(one_shot.key());  // ends unsent
    run_until(
        io, [] { return false; }, 100ms);
    EXPECT_EQ(b.external.flow_count(), 0u);
    EXPECT_EQ(p.counter("flows_held_back"), 2u) << "each new flow once, not each of its changes";
    f.status |= 0x4;  // assured: now worth it
    p.internal.upsert(f);
    ASSERT_TRUE(run_until(
        io, [&] { return b.external.find(f.key()) != nullptr; }, 5s));
    EXPECT_EQ(b.external.find(f.key())->mark, 5u) << "sent in full, with what changed while held back";
    EXPECT_EQ(p.counter("flows_held_back"), 2u);
    EXPECT_EQ(b.counter("rx_unknown_flow"), 0u);
}

TEST(Engine, ForgedReplayedTruncatedGarbledChangeNothing) {
    asio::io_context io;
    Bus bus;
    Node p(io, bus, 1, primary_options()), b(io, bus, 2, backup_options());
    p.link.record = true;
    ASSERT_EQ(p.engine->start(), "");
    ASSERT_EQ(b.engine->start(), "");
    p.internal.upsert(make_flow(1));
    std::string why;
    ASSERT_TRUE(run_until(
        io, [&] { return same_table(p.internal, b.external, why); }, 5s))
        << why;
    const auto before = b.external.flow_count();

    // The attacker's datagrams: a flow record sealed with a wrong key, and copies of the primary's own.
    std::vector<std::byte> payload;
    wire::Writer w(payload);
    w.u64(1000);
    wire::encode_record(w, wire::FlowFull{77, make_flow(999)});
    wire::Header h;
    h.type = wire::DatagramType::kData;
    h.node_id = 1;
    h.epoch = std::numeric_limits<std::uint64_t>::max() / 2;
    h.packet = 1;
    auto forged = test_keyring(9).seal(h, payload);
    // The primary's first data datagram: long delivered, so sending it again is a replay.
    auto genuine = *std::find_if(p.link.sent.begin(), p.link.sent.end(), [](const auto& d) {
        return d.size() > wire::kHeaderSize && d[5] == std::byte{1};
    });
    auto truncated = std::vector<std::byte>(genuine.begin(), genuine.begin() + genuine.size() / 2);
    auto garbled = genuine;
    garbled[wire::kHeaderSize + 3] ^= std::byte{0x5a};

    b.engine->on_datagram(0, forged);
    b.engine->on_datagram(0, genuine);  // a replay: the primary already sent it
    b.engine->on_datagram(0, truncated);
    b.engine->on_datagram(0, garbled);
    b.engine->on_datagram(0, std::vector<std::byte>(10, std::byte{0}));
    EXPECT_EQ(b.counter("rx_dropped_bad_tag"), 2u);  // forged and garbled
    EXPECT_EQ(b.counter("rx_replayed"), 1u);
    EXPECT_EQ(b.counter("rx_dropped_bad_length"), 1u);
    EXPECT_EQ(b.counter("rx_dropped_truncated"), 1u);
    EXPECT_EQ(b.external.flow_count(), before);
    EXPECT_EQ(b.external.find(make_flow(999).key()), nullptr);
}

TEST(Engine, RejoiningBackupTakesAGonePrimarysTableFromTheBackupThatSawMost) {
    asio::io_context io;
    Bus bus;
    auto p = std::make_unique<Node>(io, bus, 1, primary_options());
    auto b1 = std::make_unique<Node>(io, bus, 2, backup_options());
    Node b2(io, bus, 3, backup_options());
    for (auto* n : {p.get(), b1.get(), &b2}) {
        ASSERT_EQ(n->engine->start(), "");
    }
    churn(io, *p, 0, 5000);
    std::string why;
    ASSERT_TRUE(run_until(
        io,
        [&] {
            return same_table(p->internal, b1->external, why) && same_table(p->internal, b2.external, why);
        },
        20s))
        << why;
    // The primary dies (its table survives in its kernel: here, its internal cache), and b1 restarts.
    std::erase(bus.links, &p->link);
    p->engine->stop();
    std::erase(bus.links, &b1->link);
    b1.reset();
    b1 = std::make_unique<Node>(io, bus, 2, backup_options());
    ASSERT_EQ(b1->engine->start(), "");
    ASSERT_TRUE(run_until(
        io, [&] { return same_table(p->internal, b1->external, why) && b1->engine->complete(); }, 20s))
        << why << "\n"
        << b1->engine->status().dump(1);
    EXPECT_EQ(b1->counter("relays_completed"), 1u);
    EXPECT_EQ(b1->engine->status()["relays"][0]["origin"], 1);
    // b2 held the primary's table from the primary itself: it had nothing to ask anyone for.
    EXPECT_EQ(b2.counter("relays_completed"), 0u);
}

// Found by the sanitizer run in the test above (UBSan: the tick handler ran on a destroyed engine): a
// handler the engine posted, or whose timer had fired, before it was destroyed must not touch it. Here the
// flush it posts for a change (flush_interval 0) is still queued when the node goes; ASan reports a
// heap-use-after-free in io.run_for without the guard.
TEST(Engine, HandlersQueuedBeforeTheEngineIsDestroyedDoNotTouchIt) {
    asio::io_context io;
    Bus bus;
    auto options = primary_options();
    options.flush_interval = 0ms;
    auto p = std::make_unique<Node>(io, bus, 1, options);
    ASSERT_EQ(p->engine->start(), "");
    p->internal.upsert(make_flow(1));  // the engine posts its flush
    std::erase(bus.links, &p->link);
    p.reset();
    io.run_for(50ms);
    SUCCEED();
}

TEST(Engine, AlarmAndBestEffortModesConverge) {
    for (auto mode : {EngineOptions::Mode::kAlarm, EngineOptions::Mode::kBestEffort}) {
        asio::io_context io;
        Bus bus;
        auto popts = primary_options();
        popts.mode = mode;
        popts.alarm_interval = std::chrono::seconds(1);
        auto bopts = backup_options();
        bopts.mode = mode;
        Node p(io, bus, 1, popts), b(io, bus, 2, bopts);
        ASSERT_EQ(p.engine->start(), "");
        ASSERT_EQ(b.engine->start(), "");
        churn(io, p, 0, 3000);
        std::string why;
        ASSERT_TRUE(run_until(
            io, [&] { return same_table(p.internal, b.external, why); }, 10s))
            << why;
        EXPECT_EQ(b.counter("nacks_sent"), 0u);  // neither mode repairs record by record
        if (mode == EngineOptions::Mode::kAlarm) {
            // Records lost for good (here: the backup deaf for a while) come back with the next full refresh.
            ASSERT_TRUE(run_until(
                io, [&] { return b.engine->complete(); }, 10s));
            const auto served = p.counter("bulks_served");
            const auto asked = b.counter("bulk_requests_sent");
            b.link.deaf = true;
            churn(io, p, 3000, 500);
            run_until(
                io, [] { return false; }, 100ms);
            b.link.deaf = false;
            ASSERT_FALSE(same_table(p.internal, b.external, why));  // records were lost
            ASSERT_TRUE(run_until(
                io, [&] { return same_table(p.internal, b.external, why); }, 10s))
                << why;
            EXPECT_GT(p.counter("bulks_served"), served);       // the periodic refresh repaired it,
            EXPECT_EQ(b.counter("bulk_requests_sent"), asked);  // not a bulk the backup asked for
        }
    }
}

TEST(Engine, ParallelLinksDeliverOnceAndSurviveOneLinkDying) {
    asio::io_context io;
    Bus bus_a, bus_b;
    auto opts = primary_options();
    opts.link_mode = EngineOptions::LinkMode::kParallel;
    auto bopts = backup_options();
    bopts.link_mode = EngineOptions::LinkMode::kParallel;
    Node p(io, bus_a, 1, opts), b(io, bus_a, 2, bopts);
    FakeLink p_second(bus_b, io), b_second(bus_b, io);
    bus_b.links = {&p_second, &b_second};
    // Node wires one link; the second goes in before start().
    p.engine->add_link("second", p_second);
    b.engine->add_link("second", b_second);
    ASSERT_EQ(p.engine->start(), "");
    ASSERT_EQ(b.engine->start(), "");
    churn(io, p, 0, 2000);
    std::string why;
    ASSERT_TRUE(run_until(
        io, [&] { return same_table(p.internal, b.external, why); }, 10s))
        << why;
    EXPECT_GT(b.counter("rx_replayed"), 0u);  // the copies from the other link, dropped
    EXPECT_EQ(b.counter("rx_duplicates"), 0u);
    bus_a.loss = 1.0;  // the first link dies: nothing is lost
    churn(io, p, 2000, 2000);
    ASSERT_TRUE(run_until(
        io, [&] { return same_table(p.internal, b.external, why); }, 10s))
        << why;
    EXPECT_EQ(p.counter("retransmits"), 0u);
}

TEST(Engine, KeyRotation) {
    // Step 1 of a rotation: every node knows keys 1 and 2 and still sends with 1; step 2: the sender moves to
    // 2; step 3: key 1 is removed. A receiver that knows both accepts either; one that knows only the old key
    // drops the new one as unknown.
    std::array<std::uint8_t, wire::kKeyBytes> k1{}, k2{};
    k1.fill(1);
    k2.fill(2);
    asio::io_context io;
    Bus bus;
    Node p(io, bus, 1, primary_options(), wire::Keyring({{1, k1}, {2, k2}}, 2, false));
    Node b(io, bus, 2, backup_options(), wire::Keyring({{1, k1}, {2, k2}}, 1, false));
    Node old(io, bus, 3, backup_options(), wire::Keyring({{1, k1}}, 1, false));
    for (auto* n : {&p, &b, &old}) {
        ASSERT_EQ(n->engine->start(), "");
    }
    p.internal.upsert(make_flow(1));
    std::string why;
    ASSERT_TRUE(run_until(
        io, [&] { return same_table(p.internal, b.external, why); }, 5s))
        << why;
    EXPECT_GT(old.counter("rx_dropped_unknown_key"), 0u);
    EXPECT_EQ(old.external.flow_count(), 0u);
}

TEST(Engine, BulkCompletesUnderSteadyLoad) {
    // Changes every 2 ms keep a flush pending at all times (the flush window is 10 ms): the bulk must still
    // run, after the pending changes, not wait for a moment without any.
    asio::io_context io;
    Bus bus;
    auto popts = primary_options();
    popts.bulk_rate = 100000;
    Node p(io, bus, 1, popts);
    for (std::uint32_t i = 0; i < 20000; ++i) {
        p.internal.upsert(make_flow(i));
    }
    Node b(io, bus, 2, backup_options());
    ASSERT_EQ(p.engine->start(), "");
    ASSERT_EQ(b.engine->start(), "");
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    std::uint32_t n = 0;
    while (!b.engine->complete() && std::chrono::steady_clock::now() < deadline) {
        auto f = make_flow(n++ % 20000);
        f.mark = n;  // a critical change
        p.internal.upsert(f);
        io.run_for(2ms);
    }
    EXPECT_TRUE(b.engine->complete()) << b.engine->status().dump(1);
    std::string why;
    EXPECT_TRUE(run_until(
        io, [&] { return same_table(p.internal, b.external, why); }, 5s))
        << why;
}

TEST(Engine, DeletesAreCompact) {
    std::vector<std::byte> out;
    wire::Writer w(out);
    wire::encode_record(w, wire::FlowDelete{123456});
    EXPECT_EQ(out.size(), 7u);  // type, length, flow id
    out.clear();
    wire::encode_record(w, wire::FlowFull{1, make_flow(1)});
    EXPECT_LE(out.size(), 64u);  // a NATed IPv4 TCP flow in full
}

}  // namespace
}  // namespace ctsync::core
