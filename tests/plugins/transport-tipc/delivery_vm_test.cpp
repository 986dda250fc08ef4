// SPDX-License-Identifier: GPL-2.0-or-later
// transport-tipc carrying datagrams, inside the test VM (Debian's stock kernel with tipc.ko): every other
// node receives each datagram whole and the sender does not; datagrams up to the maximum arrive whole and
// larger ones are refused; a congested link queues datagrams and the queue bounds them; datagrams a peer
// cannot take are counted there; the built plugin file works as ctsyncd loads it; and the SDK's
// conformance suite.
#include <gtest/gtest.h>

#include <algorithm>
#include <ctsync/sdk/testing/conformance.hpp>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/config/key_table.hpp"
#include "core/loader/plugin_loader.hpp"
#include "tipc_lab.hpp"

namespace tipc::test {
namespace {

using ctsync::sdk::LinkState;
using ctsync::sdk::PeerState;
using nlohmann::json;
using namespace std::chrono_literals;

// The whole suite: here the factory can create an instance (the kernel has TIPC).
const bool kConformanceRegistered = [] {
    ctsync::testkit::register_conformance_tests({
        .plugin_file = CTSYNC_TRANSPORT_TIPC_PLUGIN,
        .plugin_name = "transport-tipc",
        .category = ctsync::sdk::Category::kTransport,
        .sample_config = json::object(),
        .bad_configs = {{{"service_type", 63}},                 // reserved by TIPC
                        {{"scope", "zone"}},                    // not a scope
                        {{"importance", "urgent"}},             // not an importance
                        {{"max_datagram_bytes", 511}},          // below the minimum
                        {{"max_datagram_bytes", 66001}},        // above TIPC_MAX_USER_MSG_SIZE
                        {{"receive_buffer_bytes", 536870912}},  // wraps TIPC's limit at importance high
                        {{"interface", "eth0"}}},               // bearers are not the plugin's business
    });
    return true;
}();

// A payload that says where it comes from and where in it each byte is.
std::string pattern(std::size_t size, int seed) {
    std::string out(size, '\0');
    for (std::size_t i = 0; i < size; ++i) {
        out[i] = static_cast<char>((i * 7 + static_cast<std::size_t>(seed) * 13) % 251);
    }
    return out;
}

class TipcDelivery : public TipcVmTest {};

TEST_F(TipcDelivery, DatagramsReachEveryOtherNodeButNotTheSender) {
    ASSERT_TRUE(kConformanceRegistered);
    ASSERT_NO_FATAL_FAILURE(start_cluster(3));
    for (std::uint32_t id = 1; id <= 3; ++id) {
        ASSERT_TRUE(node(id).send("from-" + std::to_string(id)));
    }
    ASSERT_TRUE(run_until(io_, [&] {
        return node(1).datagrams.size() == 2 && node(2).datagrams.size() == 2 &&
               node(3).datagrams.size() == 2;
    }));
    run_for(io_, 300ms);  // nothing more arrives: not our own datagram, nothing twice
    for (std::uint32_t id = 1; id <= 3; ++id) {
        Node& n = node(id);
        std::set<std::string> expected;
        for (std::uint32_t other = 1; other <= 3; ++other) {
            if (other != id) {
                expected.insert("from-" + std::to_string(other));
            }
        }
        EXPECT_EQ(std::set<std::string>(n.datagrams.begin(), n.datagrams.end()), expected) << "node " << id;
        EXPECT_EQ(n.datagrams.size(), 2u) << "node " << id;
        EXPECT_EQ(n.counter("datagrams_sent"), 1);
        EXPECT_EQ(n.counter("bytes_sent"), 6);
        EXPECT_EQ(n.counter("datagrams_received"), 2);
        EXPECT_EQ(n.counter("bytes_received"), 12);
        EXPECT_EQ(n.counter("rx_own"), 1) << "the multicast reaches our own socket too; dropped there";
        EXPECT_EQ(n.counter("tx_dropped"), 0);
        EXPECT_EQ(n.counter("tx_returned"), 0);
        // Each other node reported up exactly once, nobody down; the link up; the gauges agree.
        for (std::uint32_t other = 1; other <= 3; ++other) {
            if (other != id) {
                EXPECT_EQ(n.reports(other, PeerState::kUp), 1u) << "node " << id << " about " << other;
                EXPECT_EQ(n.reports(other, PeerState::kDown), 0u) << "node " << id << " about " << other;
            }
        }
        EXPECT_EQ(n.reports(id).size(), 0u) << "a node never reports itself";
        EXPECT_TRUE(n.link_up());
        EXPECT_EQ(n.gauge("peers_up"), 2);
        EXPECT_EQ(n.gauge("link_up"), 1);
        EXPECT_GE(n.gauge("receive_buffer_bytes"), 2 * 4194304) << "SO_RCVBUFFORCE as root";
        EXPECT_TRUE(n.logged("event=transport_started service=18061 instance=" + std::to_string(id)));
        EXPECT_TRUE(n.logged("event=peer_up node="));
    }
    // A peer's report says what TIPC said, with the port.
    const auto about2 = node(1).reports(2);
    ASSERT_FALSE(about2.empty());
    EXPECT_NE(about2.front().detail.find("tipc: node 2 "), std::string::npos) << about2.front().detail;
    EXPECT_NE(about2.front().detail.find("service 18061"), std::string::npos) << about2.front().detail;
}

TEST_F(TipcDelivery, LargeDatagramArrivesWholeAndOversizeIsRefused) {
    ASSERT_NO_FATAL_FAILURE(start_cluster(3));
    const std::string big = pattern(60000, 1);
    const std::string largest = pattern(65000, 2);
    EXPECT_EQ(node(1).transport().max_datagram_size(), 65000u);
    ASSERT_TRUE(node(1).send(big));
    ASSERT_TRUE(node(1).send(largest));
    EXPECT_FALSE(node(1).send(pattern(65001, 3)));
    EXPECT_EQ(node(1).counter("tx_oversize"), 1);
    EXPECT_EQ(node(1).counter("tx_dropped"), 1);
    EXPECT_TRUE(
        node(1).logged("event=datagram_refused reason=oversize service=18061 bytes=65001 "
                       "max_datagram_bytes=65000"));
    ASSERT_TRUE(
        run_until(io_, [&] { return node(2).datagrams.size() == 2 && node(3).datagrams.size() == 2; }));
    run_for(io_, 200ms);
    for (std::uint32_t id : {2u, 3u}) {
        ASSERT_EQ(node(id).datagrams.size(), 2u);
        EXPECT_TRUE(node(id).datagrams[0] == big) << "node " << id << " got " << node(id).datagrams[0].size();
        EXPECT_TRUE(node(id).datagrams[1] == largest)
            << "node " << id << " got " << node(id).datagrams[1].size();
        EXPECT_EQ(node(id).counter("rx_truncated"), 0);
    }
}

TEST_F(TipcDelivery, CongestedLinkQueuesDatagramsAndTheQueueIsBounded) {
    TransportOptions options;
    options.send_queue_datagrams = 8;
    ASSERT_NO_FATAL_FAILURE(start_cluster(3, options));
    constexpr int kSent = 400;
    std::vector<std::string> payloads;
    for (int i = 0; i < kSent; ++i) {
        payloads.push_back(pattern(60000, i));
        const std::string tag = std::to_string(i) + ":";
        payloads.back().replace(0, tag.size(), tag);
    }
    // Node 1 hears nothing for a moment (well within the link tolerance): no acknowledgements, so its link
    // window and backlog fill, TIPC answers EAGAIN, 8 datagrams wait in the queue (which cannot drain
    // before the event loop runs) and the rest are refused.
    lab_->block_ingress(0);
    const auto blocked = Clock::now();
    std::vector<int> accepted;
    for (int i = 0; i < kSent; ++i) {
        if (node(1).send(payloads[static_cast<std::size_t>(i)])) {
            accepted.push_back(i);
        }
    }
    lab_->unblock_ingress(0);
    print_measured("ingress of node 1 blocked for", ms_between(blocked, Clock::now()));
    std::cout << "accepted " << accepted.size() << " of " << kSent << " 60000-byte datagrams in one turn"
              << std::endl;
    EXPECT_LT(accepted.size(), static_cast<std::size_t>(kSent)) << "the link never reported congestion";
    EXPECT_EQ(node(1).counter("tx_queued"), 8);
    EXPECT_EQ(node(1).transport().send_queue_depth(), 8u);
    EXPECT_EQ(node(1).gauge("send_queue"), 8);
    EXPECT_EQ(node(1).counter("tx_dropped"), kSent - static_cast<std::int64_t>(accepted.size()));
    EXPECT_TRUE(node(1).logged("event=datagram_refused reason=send_queue_full"));
    const auto started = Clock::now();
    ASSERT_TRUE(run_until(
        io_,
        [&] {
            return node(2).datagrams.size() >= accepted.size() &&
                   node(3).datagrams.size() >= accepted.size() && node(1).transport().send_queue_depth() == 0;
        },
        60s))
        << "node 2 got " << node(2).datagrams.size() << ", node 3 " << node(3).datagrams.size() << " of "
        << accepted.size() << "; queued " << node(1).transport().send_queue_depth();
    print_measured("delivery of the accepted 60000-byte datagrams to 2 peers after the block",
                   ms_between(started, Clock::now()));
    run_for(io_, 300ms);
    for (std::uint32_t id : {2u, 3u}) {
        // Exactly the accepted datagrams, whole, in order, once each.
        ASSERT_EQ(node(id).datagrams.size(), accepted.size()) << "node " << id;
        for (std::size_t k = 0; k < accepted.size(); ++k) {
            ASSERT_TRUE(node(id).datagrams[k] == payloads[static_cast<std::size_t>(accepted[k])])
                << "node " << id << " datagram " << k << " is not datagram " << accepted[k];
        }
        EXPECT_EQ(node(id).counter("rx_overflows"), 0);
        EXPECT_TRUE(node(id).sees_up(1)) << "the block was shorter than the link tolerance";
    }
    EXPECT_EQ(node(1).gauge("send_queue"), 0);
    EXPECT_EQ(node(1).counter("datagrams_sent"), static_cast<std::int64_t>(accepted.size()));
    EXPECT_EQ(node(1).counter("tx_errors"), 0);
}

// A peer whose receive queue is full: the kernel refuses the datagram there and, the socket not being
// TIPC_DEST_DROPPABLE, returns it to its sender. The loss is counted on both sides: by the receiving
// transport from its socket's drop count (rx_overflows), by the sender as returned (tx_returned). Only the
// receiver has the small queue here; the sender's own copy of its multicast fits its default one.
TEST_F(TipcDelivery, DatagramsAPeerCannotTakeAreCountedThere) {
    TransportOptions small;
    small.importance = Importance::kLow;  // the receive limit: 2 x 16384 bytes, times 1
    small.receive_buffer_bytes = 16384;
    TransportOptions sender;
    sender.importance = Importance::kLow;
    ASSERT_NO_FATAL_FAILURE(start_cluster({sender, small}));
    constexpr int kSent = 20;
    std::vector<std::string> payloads;
    for (int i = 0; i < kSent; ++i) {
        payloads.push_back(pattern(20000, i));
    }
    // In one turn: node 2 reads only once the event loop runs, and its queue holds about one of them.
    for (const auto& payload : payloads) {
        ASSERT_TRUE(node(1).send(payload));
    }
    ASSERT_TRUE(run_until(
        io_,
        [&] {
            return node(1).transport().send_queue_depth() == 0 &&
                   static_cast<std::int64_t>(node(2).datagrams.size()) + node(2).counter("rx_overflows") ==
                       kSent;
        },
        20s))
        << "received " << node(2).datagrams.size() << ", overflows " << node(2).counter("rx_overflows");
    run_for(io_, 300ms);
    std::cout << "of " << kSent << " datagrams of 20000 bytes, the kernel refused "
              << node(2).counter("rx_overflows") << " at the peer's 16 KiB socket" << std::endl;
    EXPECT_GE(node(2).counter("rx_overflows"), 5);
    EXPECT_TRUE(node(2).logged("event=receive_queue_overflow service=18061"));
    // What did arrive is whole and in order, each once.
    std::size_t next = 0;
    for (const auto& got : node(2).datagrams) {
        while (next < payloads.size() && payloads[next] != got) {
            ++next;
        }
        ASSERT_LT(next, payloads.size()) << "a datagram that was not sent, or out of order";
        ++next;
    }
    ASSERT_TRUE(run_until(
        io_, [&] { return node(1).counter("tx_returned") == node(2).counter("rx_overflows"); }, 5s))
        << "returned " << node(1).counter("tx_returned") << ", refused " << node(2).counter("rx_overflows");
    EXPECT_TRUE(node(1).logged("event=datagram_returned service=18061"));
    EXPECT_EQ(node(1).counter("tx_errors"), 0);
    EXPECT_EQ(node(1).counter("rx_overflows"), 0) << "the sender's own copy fit its queue";
    EXPECT_EQ(node(1).counter("rx_own"), kSent);
}

// The shared object as ctsyncd uses it: loaded by the host loader, its config validated against its key
// table, created by its factory inside a namespace, held only by its instance, driven through
// sdk::Transport, against a statically linked transport in another namespace.
TEST_F(TipcDelivery, LoadedPluginExchangesDatagrams) {
    lab_ = std::make_unique<TipcLab>(2);
    std::string why;
    ASSERT_TRUE(lab_->wait_links(30s, why)) << why;

    ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
    ctsync::testkit::FakeMetrics metrics;
    ::testing::NiceMock<ctsync::testkit::MockTransportSink> sink;
    std::vector<std::string> received;
    std::vector<std::uint32_t> up;
    std::vector<LinkState> links;
    ON_CALL(sink, on_datagram(::testing::_)).WillByDefault([&](std::span<const std::byte> data) {
        received.emplace_back(reinterpret_cast<const char*>(data.data()), data.size());
    });
    ON_CALL(sink, on_peer_state(::testing::_, ::testing::_, ::testing::_))
        .WillByDefault([&](std::uint32_t n, PeerState state, const std::string&) {
            if (state == PeerState::kUp) {
                up.push_back(n);
            }
        });
    ON_CALL(sink, on_link_state(::testing::_, ::testing::_))
        .WillByDefault([&](LinkState state, const std::string&) { links.push_back(state); });

    std::shared_ptr<ctsync::sdk::Transport> transport;
    {
        ctsync::core::PluginLoader loader({});
        auto loaded = loader.load("transport-tipc", ctsync::sdk::Category::kTransport,
                                  std::filesystem::path(CTSYNC_TRANSPORT_TIPC_PLUGIN));
        ASSERT_TRUE(loaded) << loaded.error;
        ctsync::core::ConfigIssues issues;
        json values = ctsync::core::validate_against(json{{"send_queue_datagrams", 64}},
                                                     loaded.plugin->keys(), ".config", issues);
        ASSERT_TRUE(issues.empty());
        EnterNetns inside(lab_->ns(0));
        ctsync::sdk::PluginContext context{io_.get_executor(), &logger, &metrics, 1, "sync-tipc"};
        auto created = loaded.plugin->descriptor->create(context, ctsync::sdk::PluginConfig(values));
        ASSERT_TRUE(created.plugin) << created.error;
        ASSERT_EQ(created.plugin->category(), ctsync::sdk::Category::kTransport);
        transport = ctsync::core::hold_library<ctsync::sdk::Transport>(std::move(created.plugin),
                                                                       loaded.plugin->descriptor);
        std::string error;
        ASSERT_TRUE(transport->start(sink, error)) << error;
    }  // the loader and its handles are gone: only the instance holds the library now

    Node peer(io_, 2);
    std::string error;
    ASSERT_TRUE(peer.start(lab_->ns(1), TransportOptions{}, error)) << error;
    ASSERT_TRUE(run_until(io_, [&] {
        return std::count(up.begin(), up.end(), 2u) == 1 && !links.empty() &&
               links.back() == LinkState::kUp && peer.sees_up(1);
    }));
    EXPECT_EQ(transport->max_datagram_size(), 65000u);
    const std::string hello = "from the plugin file";
    ASSERT_TRUE(transport->send(std::as_bytes(std::span<const char>(hello.data(), hello.size()))));
    ASSERT_TRUE(peer.send("from the static library"));
    ASSERT_TRUE(run_until(io_, [&] { return received.size() == 1 && peer.datagrams.size() == 1; }));
    run_for(io_, 200ms);
    EXPECT_EQ(received, (std::vector<std::string>{"from the static library"}));
    EXPECT_EQ(peer.datagrams, (std::vector<std::string>{hello}));
    EXPECT_EQ(metrics.counter_value("rx_own"), 1);
    transport->stop();
    transport->stop();
    ASSERT_TRUE(run_until(io_, [&] { return peer.reports(1, PeerState::kDown) == 1; }));
    transport.reset();  // unloads the library after the instance's destructor ran
}

}  // namespace
}  // namespace tipc::test
