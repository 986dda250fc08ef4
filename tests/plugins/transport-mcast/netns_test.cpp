// SPDX-License-Identifier: GPL-2.0-or-later
// transport-mcast against the real kernel, in network namespaces this test creates (root): delivery over
// IPv4 and IPv6 groups, strict binding to the interface, own datagrams, TTL 1, size limits, the bounded
// send queue, truncation, link state from carrier, and start-up errors.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "core/config/key_table.hpp"
#include "core/loader/plugin_loader.hpp"
#include "mcast_lab.hpp"
#include "tests/support/process.hpp"

namespace mcast::test {
namespace {

using ctsync::sdk::LinkState;
using namespace std::chrono_literals;

constexpr const char* kGroup4 = "239.255.37.81";
constexpr const char* kGroup6 = "ff12::3781";
constexpr std::uint16_t kPort = 3781;

TransportOptions options_for(const std::string& ifname, const std::string& group) {
    TransportOptions options;
    options.interface = ifname;
    options.group = group;
    options.port = kPort;
    return options;
}

class TransportMcastNetns : public ::testing::Test {
  protected:
    void SetUp() override {
        // The suite runs as root (scripts/test.sh): a missing privilege is a failure, not a skip.
        ASSERT_TRUE(ctsync::test::can_create_netns()) << "this test needs root (network namespaces)";
    }
    // Two namespaces joined by sync0 <-> sync0: 192.0.2.1/24 in A, 192.0.2.2/24 in B.
    void make_pair() {
        a_ = std::make_unique<NetNs>("mc-a");
        b_ = std::make_unique<NetNs>("mc-b");
        no_dad(*a_);
        no_dad(*b_);
        veth(*a_, "sync0", "192.0.2.1/24", *b_, "sync0", "192.0.2.2/24");
    }
    void start(Node& node, const NetNs& ns, const TransportOptions& options) {
        std::string error;
        ASSERT_TRUE(node.start(ns, options, error)) << error;
    }
    static bool up(const Node& node) {
        return !node.links.empty() && node.links.back().first == LinkState::kUp;
    }

    boost::asio::io_context io_;  // declared first: outlives every node
    std::unique_ptr<NetNs> a_;
    std::unique_ptr<NetNs> b_;
    std::unique_ptr<NetNs> c_;
};

TEST_F(TransportMcastNetns, Ipv4GroupReachesThePeerButNeverTheSender) {
    make_pair();
    Node a(io_, "a");
    Node b(io_, "b");
    start(a, *a_, options_for("sync0", kGroup4));
    start(b, *b_, options_for("sync0", kGroup4));
    ASSERT_TRUE(run_until(io_, [&] { return up(a) && up(b); }));
    EXPECT_EQ(a.links.front().second, "carrier up on sync0");

    ASSERT_TRUE(a.send("from a"));
    ASSERT_TRUE(b.send("from b"));
    ASSERT_TRUE(run_until(io_, [&] { return !a.datagrams.empty() && !b.datagrams.empty(); }));
    run_for(io_, 200ms);  // anything looped back to a sender would have arrived with the peer's copy
    EXPECT_EQ(b.datagrams, std::vector<std::string>{"from a"});
    EXPECT_EQ(a.datagrams, std::vector<std::string>{"from b"});
    EXPECT_EQ(a.counter("datagrams_sent"), 1);
    EXPECT_EQ(a.counter("bytes_sent"), 6);
    EXPECT_EQ(b.counter("datagrams_received"), 1);
    EXPECT_EQ(b.counter("bytes_received"), 6);
    EXPECT_EQ(a.counter("rx_own"), 0);  // loopback off: the kernel never hands it back
    EXPECT_EQ(b.counter("rx_foreign"), 0);
    EXPECT_EQ(a.transport().max_datagram_size(), 1500u - 28u);
    // Root: SO_SNDBUFFORCE / SO_RCVBUFFORCE grant the 4 MiB default; the kernel reports twice that.
    EXPECT_EQ(a.gauge("send_buffer_bytes"), 8 << 20);
    EXPECT_EQ(a.gauge("receive_buffer_bytes"), 8 << 20);
    EXPECT_TRUE(a.logged("event=transport_started interface=sync0"));
    EXPECT_TRUE(a.logged("send_buffer_bytes=8388608 receive_buffer_bytes=8388608"));
}

TEST_F(TransportMcastNetns, Ipv6GroupReachesThePeerButNeverTheSender) {
    make_pair();
    ASSERT_TRUE(wait_link_local(*a_, "sync0"));
    ASSERT_TRUE(wait_link_local(*b_, "sync0"));
    Node a(io_, "a");
    Node b(io_, "b");
    start(a, *a_, options_for("sync0", kGroup6));
    start(b, *b_, options_for("sync0", kGroup6));
    ASSERT_TRUE(run_until(io_, [&] { return up(a) && up(b); }));
    EXPECT_EQ(a.transport().max_datagram_size(), 1500u - 48u);

    const std::string largest(a.transport().max_datagram_size(), 'x');
    ASSERT_TRUE(a.send(largest));
    ASSERT_TRUE(b.send("from b"));
    ASSERT_TRUE(run_until(io_, [&] { return !a.datagrams.empty() && !b.datagrams.empty(); }));
    run_for(io_, 200ms);
    EXPECT_EQ(b.datagrams, std::vector<std::string>{largest});
    EXPECT_EQ(a.datagrams, std::vector<std::string>{"from b"});
    EXPECT_EQ(a.counter("rx_own") + b.counter("rx_own"), 0);
    EXPECT_TRUE(a.logged("family=IPv6"));
}

TEST_F(TransportMcastNetns, TtlAndHopLimitAreOne) {
    make_pair();
    ASSERT_TRUE(wait_link_local(*a_, "sync0"));
    ASSERT_TRUE(wait_link_local(*b_, "sync0"));
    Node a4(io_, "a4");
    Node a6(io_, "a6");
    start(a4, *a_, options_for("sync0", kGroup4));
    start(a6, *a_, options_for("sync0", kGroup6));
    ASSERT_TRUE(run_until(io_, [&] { return up(a4) && up(a6); }));
    PlainSocket observer4(*b_, AF_INET, "sync0");
    PlainSocket observer6(*b_, AF_INET6, "sync0");
    observer4.listen(kGroup4, kPort);
    observer6.listen(kGroup6, kPort);
    ASSERT_TRUE(a4.send("ttl"));
    ASSERT_TRUE(a6.send("hops"));
    auto got4 = observer4.receive(5s);
    auto got6 = observer6.receive(5s);
    ASSERT_TRUE(got4.has_value());
    ASSERT_TRUE(got6.has_value());
    EXPECT_EQ(got4->payload, "ttl");
    EXPECT_EQ(got4->hop_limit, 1);
    EXPECT_EQ(got6->payload, "hops");
    EXPECT_EQ(got6->hop_limit, 1);
}

TEST_F(TransportMcastNetns, DatagramFromOwnAddressIsRefused) {
    make_pair();
    Node a(io_, "a");
    Node b(io_, "b");
    start(a, *a_, options_for("sync0", kGroup4));
    start(b, *b_, options_for("sync0", kGroup4));
    ASSERT_TRUE(run_until(io_, [&] { return up(a) && up(b); }));
    // Another program on A sends to the group with loopback on: A's kernel hands A's transport a datagram
    // whose source is A's own address (as a reflecting switch would).
    PlainSocket other_program(*a_, AF_INET, "sync0");
    other_program.send_to_group(kGroup4, kPort, "echo", /*loop=*/true);
    ASSERT_TRUE(run_until(io_, [&] { return !b.datagrams.empty() && a.counter("rx_own") == 1; }));
    EXPECT_EQ(b.datagrams, std::vector<std::string>{"echo"});  // it was on the wire, from another source
    EXPECT_TRUE(a.datagrams.empty());
    EXPECT_EQ(a.counter("datagrams_received"), 0);
    EXPECT_TRUE(a.logged("event=datagram_refused reason=own_source interface=sync0"));
}

TEST_F(TransportMcastNetns, DatagramOnAnotherInterfaceIsNotDelivered) {
    // A --sync0-- B --other0-- C, one group and port on both of B's links, one transport per link in B.
    make_pair();
    c_ = std::make_unique<NetNs>("mc-c");
    veth(*c_, "other0", "198.51.100.3/24", *b_, "other0", "198.51.100.2/24");
    Node a(io_, "a");
    Node b_sync(io_, "b-sync");
    Node b_other(io_, "b-other");
    Node c(io_, "c");
    start(a, *a_, options_for("sync0", kGroup4));
    start(b_sync, *b_, options_for("sync0", kGroup4));
    start(b_other, *b_, options_for("other0", kGroup4));
    start(c, *c_, options_for("other0", kGroup4));
    ASSERT_TRUE(run_until(io_, [&] { return up(a) && up(b_sync) && up(b_other) && up(c); }));

    ASSERT_TRUE(c.send("from c on other0"));
    ASSERT_TRUE(a.send("from a on sync0"));
    ASSERT_TRUE(run_until(io_, [&] { return !b_sync.datagrams.empty() && !b_other.datagrams.empty(); }));
    run_for(io_, 200ms);
    EXPECT_EQ(b_sync.datagrams, std::vector<std::string>{"from a on sync0"});
    EXPECT_EQ(b_other.datagrams, std::vector<std::string>{"from c on other0"});
    // Refused by the socket's binding in the kernel, before the plugin's own check would have to.
    EXPECT_EQ(b_sync.counter("rx_foreign"), 0);
    EXPECT_EQ(b_other.counter("rx_foreign"), 0);
}

TEST_F(TransportMcastNetns, PacketInfoCheckRefusesForeignArrivals) {
    // What the kernel's binding already prevents, checked once more by the plugin: fed directly.
    make_pair();
    Node b(io_, "b");
    start(b, *b_, options_for("sync0", kGroup4));
    McastTransport& t = b.transport();
    IpAddress group{AF_INET, {239, 255, 37, 81}};
    IpAddress peer{AF_INET, {192, 0, 2, 1}};
    IpAddress own{AF_INET, {192, 0, 2, 2}};
    const std::string payload = "payload";
    auto data = std::as_bytes(std::span<const char>(payload.data(), payload.size()));

    McastTransport::Arrival right{true, t.ifindex(), group, peer, false};
    McastTransport::Arrival other_interface = right;
    other_interface.ifindex = t.ifindex() + 100;
    McastTransport::Arrival other_destination = right;
    other_destination.destination = IpAddress{AF_INET, {239, 255, 37, 82}};
    McastTransport::Arrival no_pktinfo = right;
    no_pktinfo.has_pktinfo = false;
    McastTransport::Arrival from_own = right;
    from_own.source = own;
    McastTransport::Arrival truncated = right;
    truncated.truncated = true;

    t.on_arrival(data, other_interface);
    t.on_arrival(data, other_destination);
    t.on_arrival(data, no_pktinfo);
    EXPECT_EQ(b.counter("rx_foreign"), 3);
    t.on_arrival(data, from_own);
    EXPECT_EQ(b.counter("rx_own"), 1);
    t.on_arrival(data, truncated);
    EXPECT_EQ(b.counter("rx_truncated"), 1);
    EXPECT_TRUE(b.datagrams.empty());
    t.on_arrival(data, right);
    EXPECT_EQ(b.datagrams, std::vector<std::string>{payload});
    EXPECT_EQ(b.counter("datagrams_received"), 1);
    EXPECT_TRUE(b.logged("event=datagram_refused reason=foreign interface=sync0"));
}

TEST_F(TransportMcastNetns, TruncatedDatagramIsDroppedAndCounted) {
    make_pair();
    Node a(io_, "a");
    Node b(io_, "b");
    start(a, *a_, options_for("sync0", kGroup4));
    auto small_reader = options_for("sync0", kGroup4);
    small_reader.receive_limit_bytes = 600;
    start(b, *b_, small_reader);
    ASSERT_TRUE(run_until(io_, [&] { return up(a) && up(b); }));
    ASSERT_TRUE(a.send(std::string(1000, 'L')));
    ASSERT_TRUE(a.send("short"));
    ASSERT_TRUE(run_until(io_, [&] { return !b.datagrams.empty(); }));
    EXPECT_EQ(b.datagrams, std::vector<std::string>{"short"});
    EXPECT_EQ(b.counter("rx_truncated"), 1);
}

TEST_F(TransportMcastNetns, OversizeSendIsRefused) {
    make_pair();
    Node a(io_, "a");
    Node b(io_, "b");
    Node a_small(io_, "a-small");
    start(a, *a_, options_for("sync0", kGroup4));
    start(b, *b_, options_for("sync0", kGroup4));
    auto configured = options_for("sync0", kGroup4);
    configured.port = kPort + 1;
    configured.max_datagram_bytes = 1000;
    start(a_small, *a_, configured);
    ASSERT_TRUE(run_until(io_, [&] { return up(a) && up(b); }));

    EXPECT_FALSE(a.send(std::string(1473, 'x')));
    EXPECT_EQ(a.counter("tx_dropped"), 1);
    EXPECT_EQ(a.counter("tx_oversize"), 1);
    EXPECT_EQ(a.counter("datagrams_sent"), 0);
    EXPECT_TRUE(a.logged("event=datagram_refused reason=oversize interface=sync0 bytes=1473"));
    EXPECT_FALSE(a_small.send(std::string(1001, 'x')));
    EXPECT_TRUE(a_small.send(std::string(1000, 'x')));
    EXPECT_EQ(a_small.transport().max_datagram_size(), 1000u);

    const std::string largest(1472, 'y');
    ASSERT_TRUE(a.send(largest));
    ASSERT_TRUE(run_until(io_, [&] { return !b.datagrams.empty(); }));
    EXPECT_EQ(b.datagrams, std::vector<std::string>{largest});

    // A configured maximum the interface cannot carry is a start-up error.
    Node too_big(io_, "too-big");
    auto nine_k = options_for("sync0", kGroup4);
    nine_k.port = kPort + 2;
    nine_k.max_datagram_bytes = 9000;
    std::string error;
    EXPECT_FALSE(too_big.start(*a_, nine_k, error));
    EXPECT_EQ(
        error,
        "max_datagram_bytes 9000 is more than interface sync0 carries: MTU 1500 minus 28 bytes of IPv4 and "
        "UDP headers leaves 1472");
}

TEST_F(TransportMcastNetns, MaximumFollowsTheMtu) {
    make_pair();
    Node b(io_, "b");
    start(b, *b_, options_for("sync0", kGroup4));
    ASSERT_EQ(b.transport().max_datagram_size(), 1472u);
    ip(*b_, {"link", "set", "sync0", "mtu", "1400"});
    ASSERT_TRUE(run_until(io_, [&] { return b.transport().max_datagram_size() == 1372u; }));
    EXPECT_EQ(b.gauge("max_datagram_bytes"), 1372);
    EXPECT_TRUE(b.logged("event=mtu_changed interface=sync0 mtu=1400"));
}

TEST_F(TransportMcastNetns, SendQueueHoldsDatagramsWhileTheBufferIsFullAndRefusesBeyondIt) {
    make_pair();
    // A slow link: a token bucket holds sent datagrams, which keep the socket buffer charged until they go.
    tc(*a_, {"qdisc", "add", "dev", "sync0", "root", "tbf", "rate", "1mbit", "burst", "4kb", "limit", "2mb"});
    Node a(io_, "a");
    Node b(io_, "b");
    auto slow = options_for("sync0", kGroup4);
    slow.send_buffer_bytes = 16384;
    slow.send_queue_datagrams = 20;
    start(a, *a_, slow);
    start(b, *b_, options_for("sync0", kGroup4));
    ASSERT_TRUE(run_until(io_, [&] { return up(a) && up(b); }));

    std::vector<std::string> accepted;
    for (int i = 0; i < 200; ++i) {  // one turn of the event loop: nothing drains meanwhile
        std::string payload = std::to_string(i);
        payload.resize(1000, '.');
        if (a.send(payload)) {
            accepted.push_back(payload);
        }
    }
    ASSERT_LT(accepted.size(), 200u);
    EXPECT_EQ(a.counter("tx_queued"), 20);
    EXPECT_EQ(a.gauge("send_queue_datagrams"), 20);
    EXPECT_EQ(a.counter("tx_dropped"), static_cast<std::int64_t>(200 - accepted.size()));
    EXPECT_TRUE(a.logged("event=datagram_refused reason=send_queue_full interface=sync0"));

    ASSERT_TRUE(run_until(
        io_, [&] { return b.datagrams.size() >= accepted.size(); }, 20s))
        << b.datagrams.size() << " of " << accepted.size();
    EXPECT_EQ(b.datagrams, accepted);  // every accepted datagram, once, in order
    EXPECT_EQ(a.gauge("send_queue_datagrams"), 0);
    EXPECT_EQ(a.counter("datagrams_sent"), static_cast<std::int64_t>(accepted.size()));
    EXPECT_EQ(a.counter("tx_errors"), 0);
}

TEST_F(TransportMcastNetns, LinkStateFollowsTheCarrier) {
    make_pair();
    ip(*a_, {"link", "set", "sync0", "down"});
    Node b(io_, "b");
    start(b, *b_, options_for("sync0", kGroup4));
    using Event = std::pair<LinkState, std::string>;
    ASSERT_TRUE(run_until(io_, [&] { return b.links.size() == 1; }));
    EXPECT_EQ(b.links.back(), Event(LinkState::kDown, "no carrier on sync0"));
    EXPECT_EQ(b.gauge("link_up"), 0);

    ip(*a_, {"link", "set", "sync0", "up"});
    ASSERT_TRUE(run_until(io_, [&] { return b.links.size() == 2; }));
    EXPECT_EQ(b.links.back(), Event(LinkState::kUp, "carrier restored on sync0"));
    EXPECT_EQ(b.gauge("link_up"), 1);

    Node a(io_, "a");
    start(a, *a_, options_for("sync0", kGroup4));
    ASSERT_TRUE(run_until(io_, [&] { return up(a); }));
    ip(*a_, {"link", "set", "sync0", "down"});  // the peer's side of the veth: B loses its carrier
    ASSERT_TRUE(run_until(io_, [&] { return b.links.size() == 3 && a.links.size() == 2; }));
    EXPECT_EQ(b.links.back(), Event(LinkState::kDown, "carrier lost on sync0"));
    EXPECT_EQ(a.links.back(), Event(LinkState::kDown, "sync0 is administratively down"));
    EXPECT_TRUE(b.logged("event=link_state interface=sync0 state=down detail=\"carrier lost on sync0\""));

    ip(*a_, {"link", "set", "sync0", "up"});
    ASSERT_TRUE(run_until(io_, [&] { return b.links.size() == 4; }));
    EXPECT_EQ(b.links.back(), Event(LinkState::kUp, "carrier restored on sync0"));
    EXPECT_EQ(b.counter("link_changes"), 3);  // the first report is the initial state, not a change

    // Traffic flows again after the carrier came back.
    ASSERT_TRUE(run_until(io_, [&] { return up(a); }));
    ASSERT_TRUE(a.send("after the flap"));
    ASSERT_TRUE(run_until(io_, [&] { return !b.datagrams.empty(); }));
    EXPECT_EQ(b.datagrams.back(), "after the flap");

    ip(*a_, {"link", "del", "sync0"});  // removes both ends (B's is closed first: a down report may precede)
    ASSERT_TRUE(
        run_until(io_, [&] { return b.links.back() == Event(LinkState::kDown, "sync0 was removed"); }));
    EXPECT_TRUE(b.logged("event=interface_removed interface=sync0"));
}

// The shared object as ctsyncd uses it: loaded by the host loader, its config validated against its key
// table, created by its factory, driven through the SDK interface only.
TEST_F(TransportMcastNetns, LoadedPluginExchangesDatagrams) {
    make_pair();
    ctsync::core::PluginLoader loader({});
    auto loaded = loader.load("transport-mcast", ctsync::sdk::Category::kTransport,
                              std::filesystem::path(CTSYNC_TRANSPORT_MCAST_PLUGIN));
    ASSERT_TRUE(loaded) << loaded.error;
    ctsync::core::ConfigIssues issues;
    auto values = ctsync::core::validate_against({{"interface", "sync0"}, {"group", kGroup4}},
                                                 loaded.plugin->keys(), ".config", issues);
    ASSERT_TRUE(issues.empty());
    const ctsync::sdk::PluginConfig config(values);

    struct Peer {
        ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
        ctsync::testkit::FakeMetrics metrics;
        ::testing::NiceMock<ctsync::testkit::MockTransportSink> sink;
        std::vector<std::string> received;
        std::shared_ptr<ctsync::sdk::Transport> transport;
    };
    Peer peers[2];
    const NetNs* spaces[2] = {a_.get(), b_.get()};
    for (int i = 0; i < 2; ++i) {
        Peer& peer = peers[i];
        ON_CALL(peer.sink, on_datagram(::testing::_)).WillByDefault([&peer](std::span<const std::byte> data) {
            peer.received.emplace_back(reinterpret_cast<const char*>(data.data()), data.size());
        });
        EnterNetns inside(*spaces[i]);
        ctsync::sdk::PluginContext context{io_.get_executor(), &peer.logger, &peer.metrics,
                                           static_cast<std::uint32_t>(i + 1), "sync"};
        auto created = loaded.plugin->descriptor->create(context, config);
        ASSERT_TRUE(created.plugin) << created.error;
        ASSERT_EQ(created.plugin->category(), ctsync::sdk::Category::kTransport);
        peer.transport = ctsync::core::hold_library<ctsync::sdk::Transport>(std::move(created.plugin),
                                                                            loaded.plugin->descriptor);
        std::string error;
        ASSERT_TRUE(peer.transport->start(peer.sink, error)) << error;
    }
    loaded = {};  // only the instances hold the library now
    EXPECT_CALL(peers[0].sink, on_link_state(LinkState::kUp, "carrier up on sync0"));
    EXPECT_CALL(peers[1].sink, on_link_state(LinkState::kUp, "carrier up on sync0"));
    const std::string hello = "hello through the shared object";
    ASSERT_TRUE(peers[0].transport->send(std::as_bytes(std::span<const char>(hello.data(), hello.size()))));
    ASSERT_TRUE(run_until(io_, [&] { return !peers[1].received.empty(); }));
    run_for(io_, 100ms);
    EXPECT_EQ(peers[1].received, std::vector<std::string>{hello});
    EXPECT_TRUE(peers[0].received.empty());
    EXPECT_EQ(peers[0].metrics.counter_value("datagrams_sent"), 1);
    EXPECT_EQ(peers[1].metrics.counter_value("datagrams_received"), 1);
    for (auto& peer : peers) {
        peer.transport->stop();
        peer.transport->stop();  // idempotent
    }
    // The cancelled waits complete (operation_aborted) with code of the library: let them run while the
    // instances still hold it, as ctsyncd does by keeping its plugins loaded until its io_context is gone.
    io_.restart();
    io_.poll();
    for (auto& peer : peers) {
        peer.transport.reset();  // the last one unloads the library
    }
}

TEST_F(TransportMcastNetns, StartErrorsNameTheProblem) {
    make_pair();
    std::string error;

    Node missing(io_, "missing");
    EXPECT_FALSE(missing.start(*b_, options_for("nosuch0", kGroup4), error));
    EXPECT_EQ(error, "interface 'nosuch0' does not exist in this network namespace");

    Node unicast(io_, "unicast");
    EXPECT_FALSE(unicast.start(*b_, options_for("sync0", "192.0.2.7"), error));
    EXPECT_EQ(error.rfind("group: '192.0.2.7' is not a multicast address", 0), 0u) << error;

    Node first(io_, "first");
    Node second(io_, "second");
    ASSERT_TRUE(first.start(*b_, options_for("sync0", kGroup4), error)) << error;
    EXPECT_FALSE(second.start(*b_, options_for("sync0", kGroup4), error));
    EXPECT_EQ(error.rfind("cannot bind the receive socket to 239.255.37.81:3781 on interface sync0: Address "
                          "already in use",
                          0),
              0u)
        << error;

    // A transport that did not start refuses to send, and counts it.
    EXPECT_FALSE(second.send("nowhere"));
    EXPECT_EQ(second.counter("tx_dropped"), 1);
}

}  // namespace
}  // namespace mcast::test
