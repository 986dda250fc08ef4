// SPDX-License-Identifier: GPL-2.0-or-later
// Datagrams reach every peer whole, once and in order: three nodes on loopback in a private namespace, and
// two on IPv6 addresses.
#include "core/config/key_table.hpp"
#include "core/loader/plugin_loader.hpp"
#include "tcp_test_util.hpp"

namespace transport_tcp::test {
namespace {

std::size_t total_bytes(const std::vector<Bytes>& datagrams) {
    std::size_t sum = 0;
    for (const auto& d : datagrams) {
        sum += d.size();
    }
    return sum;
}

TEST_F(TransportTcpNetns, DatagramsReachEveryPeerWholeAndInOrder) {
    Node a(io_, loopback_options(1, {2, 3}));
    Node b(io_, loopback_options(2, {1, 3}));
    Node c(io_, loopback_options(3, {1, 2}));
    ASSERT_NO_FATAL_FAILURE(a.start());
    ASSERT_NO_FATAL_FAILURE(b.start());
    ASSERT_NO_FATAL_FAILURE(c.start());
    ASSERT_TRUE(run_until(
        io_, [&] { return a.connected() == 2 && b.connected() == 2 && c.connected() == 2; }, 10s))
        << a.log_text() << b.log_text() << c.log_text();
    EXPECT_EQ(a.gauge("peers_connected"), 2);
    // One transition each, reported once; its detail names the first peer that connected.
    for (Node* node : {&a, &b, &c}) {
        ASSERT_EQ(node->sink.links.size(), 1u);
        EXPECT_EQ(node->sink.links[0].first, LinkState::kUp);
        EXPECT_THAT(node->sink.links[0].second,
                    ::testing::MatchesRegex("peer 127\\.0\\.0\\.[123]:3782 connected"));
    }

    ASSERT_EQ(a.transport->max_datagram_size(), 65000u);
    // A: the largest datagram, 3000 small ones of varying size (many per TCP segment), the largest again.
    std::vector<Bytes> from_a;
    from_a.push_back(datagram(1, 0, 65000));
    for (std::size_t i = 1; i <= 3000; ++i) {
        from_a.push_back(datagram(1, i, 1 + (i * 37) % 300));
    }
    from_a.push_back(datagram(1, 3001, 65000));
    std::vector<Bytes> from_b;
    std::vector<Bytes> from_c;
    for (std::size_t i = 0; i < 200; ++i) {
        from_b.push_back(datagram(2, i, 1 + (i * 53) % 2000));
        from_c.push_back(datagram(3, i, 1 + (i * 11) % 9000));
    }
    for (const auto& d : from_a) {
        ASSERT_TRUE(a.send(d));
    }
    for (std::size_t i = 0; i < from_b.size(); ++i) {
        ASSERT_TRUE(b.send(from_b[i]));
        ASSERT_TRUE(c.send(from_c[i]));
    }
    ASSERT_TRUE(run_until(
        io_,
        [&] {
            return a.sink.datagrams.size() == from_b.size() + from_c.size() &&
                   b.sink.datagrams.size() == from_a.size() + from_c.size() &&
                   c.sink.datagrams.size() == from_a.size() + from_b.size();
        },
        20s))
        << "a got " << a.sink.datagrams.size() << ", b got " << b.sink.datagrams.size() << ", c got "
        << c.sink.datagrams.size();

    // Per sender: exactly what was sent, byte for byte, in sending order.
    EXPECT_TRUE(b.sink.from(1) == from_a);
    EXPECT_TRUE(c.sink.from(1) == from_a);
    EXPECT_TRUE(a.sink.from(2) == from_b);
    EXPECT_TRUE(c.sink.from(2) == from_b);
    EXPECT_TRUE(a.sink.from(3) == from_c);
    EXPECT_TRUE(b.sink.from(3) == from_c);

    // Nothing more arrives (no duplicates), and the counters agree with what the sinks saw.
    run_for(io_, 200ms);
    EXPECT_EQ(b.sink.datagrams.size(), from_a.size() + from_c.size());
    EXPECT_EQ(a.counter("datagrams_sent"), static_cast<std::int64_t>(2 * from_a.size()));
    EXPECT_EQ(a.counter("bytes_sent"), static_cast<std::int64_t>(2 * total_bytes(from_a)));
    EXPECT_EQ(b.counter("datagrams_received"), static_cast<std::int64_t>(from_a.size() + from_c.size()));
    EXPECT_EQ(b.counter("bytes_received"),
              static_cast<std::int64_t>(total_bytes(from_a) + total_bytes(from_c)));
    for (Node* node : {&a, &b, &c}) {
        EXPECT_EQ(node->counter("tx_dropped"), 0);
        EXPECT_EQ(node->counter("tx_dropped_disconnected"), 0);
        EXPECT_EQ(node->counter("rx_bad_frames"), 0);
        EXPECT_EQ(node->counter("rejected_connections"), 0);
        EXPECT_EQ(node->counter("connects"), 2);
        EXPECT_EQ(node->counter("disconnects"), 0);
    }
}

TEST_F(TransportTcpNetns, EmptyAndOversizedDatagramsAreRefusedLocally) {
    auto options = loopback_options(1, {2});
    options.max_datagram_bytes = 1000;
    Node a(io_, options);
    Node b(io_, loopback_options(2, {1}));
    ASSERT_NO_FATAL_FAILURE(a.start());
    ASSERT_NO_FATAL_FAILURE(b.start());
    ASSERT_TRUE(run_until(
        io_, [&] { return a.connected() == 1; }, 10s));

    EXPECT_EQ(a.transport->max_datagram_size(), 1000u);
    EXPECT_FALSE(a.send(Bytes{}));
    EXPECT_FALSE(a.send(datagram(1, 1, 1001)));
    EXPECT_EQ(a.counter("tx_dropped"), 2);
    EXPECT_TRUE(a.logged("event=datagram_refused size=0 max_datagram_bytes=1000"));
    const Bytes largest = datagram(1, 2, 1000);
    EXPECT_TRUE(a.send(largest));
    ASSERT_TRUE(run_until(
        io_, [&] { return !b.sink.datagrams.empty(); }, 5s));
    run_for(io_, 100ms);
    ASSERT_EQ(b.sink.datagrams.size(), 1u);  // only the datagram that fits
    EXPECT_TRUE(b.sink.datagrams[0] == largest);
    EXPECT_EQ(a.counter("datagrams_sent"), 1);
}

TEST_F(TransportTcpNetns, Ipv6PeersExchangeDatagrams) {
    ASSERT_NO_FATAL_FAILURE(in_netns({"ip", "addr", "add", "fd00::1/128", "dev", "lo", "nodad"}));
    ASSERT_NO_FATAL_FAILURE(in_netns({"ip", "addr", "add", "fd00::2/128", "dev", "lo", "nodad"}));
    auto options = [](const std::string& self, const std::string& peer) {
        std::string error;
        TcpOptions o;
        o.listen = *parse_endpoint("[" + self + "]:3782", error);
        o.peers = {*parse_endpoint("[" + peer + "]:3782", error)};
        o.bind_address = boost::asio::ip::make_address(self);
        o.reconnect_min = 20ms;
        o.reconnect_max = 200ms;
        return o;
    };
    Node a(io_, options("fd00::1", "fd00::2"));
    Node b(io_, options("fd00::2", "fd00::1"));
    ASSERT_NO_FATAL_FAILURE(a.start());
    ASSERT_NO_FATAL_FAILURE(b.start());
    ASSERT_TRUE(run_until(
        io_, [&] { return a.connected() == 1 && b.connected() == 1; }, 10s))
        << a.log_text() << b.log_text();
    ASSERT_EQ(a.sink.links.size(), 1u);
    EXPECT_EQ(a.sink.links[0], std::make_pair(LinkState::kUp, std::string("peer [fd00::2]:3782 connected")));

    const Bytes to_b = datagram(1, 7, 4000);
    const Bytes to_a = datagram(2, 8, 12);
    ASSERT_TRUE(a.send(to_b));
    ASSERT_TRUE(b.send(to_a));
    ASSERT_TRUE(run_until(
        io_, [&] { return !a.sink.datagrams.empty() && !b.sink.datagrams.empty(); }, 5s));
    EXPECT_TRUE(b.sink.datagrams.front() == to_b);
    EXPECT_TRUE(a.sink.datagrams.front() == to_a);
    EXPECT_TRUE(b.logged("event=peer_stream_accepted peer=[fd00::1]:3782 remote=[fd00::1]:"));
}

// The plugin file as ctsyncd loads it (its own copy of this code, behind the descriptor), talking to the
// statically linked transport: its handlers chain reads and writes on the host's io_context.
TEST_F(TransportTcpNetns, PluginFileLoadedLikeCtsyncdCarriesDatagrams) {
    ctsync::core::PluginLoader loader({});
    auto loaded = loader.load("transport-tcp", ctsync::sdk::Category::kTransport,
                              std::filesystem::path(TRANSPORT_TCP_PLUGIN_FILE));
    ASSERT_TRUE(loaded) << loaded.error;
    const nlohmann::json config = {{"listen", "127.0.0.1:3782"},
                                   {"peers", {"127.0.0.2:3782"}},
                                   {"bind_address", "127.0.0.1"},
                                   {"reconnect_min_ms", 20},
                                   {"reconnect_max_ms", 200}};
    ctsync::core::ConfigIssues issues;
    auto values =
        ctsync::core::validate_against(config, loaded.plugin->keys(), ".transports[0].config", issues);
    ASSERT_TRUE(issues.empty()) << issues.front();
    ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
    ctsync::testkit::FakeMetrics metrics;
    RecordingSink sink;
    ctsync::sdk::PluginContext context{io_.get_executor(), &logger, &metrics, 1, "sync-tcp"};
    auto created = loaded.plugin->descriptor->create(context, ctsync::sdk::PluginConfig(values));
    ASSERT_TRUE(created.plugin) << created.error;
    ASSERT_EQ(created.plugin->category(), ctsync::sdk::Category::kTransport);
    auto plugin = ctsync::core::hold_library<ctsync::sdk::Transport>(std::move(created.plugin),
                                                                     loaded.plugin->descriptor);
    std::string error;
    ASSERT_TRUE(plugin->start(sink, error)) << error;
    EXPECT_EQ(plugin->max_datagram_size(), 65000u);

    Node b(io_, loopback_options(2, {1}));
    ASSERT_NO_FATAL_FAILURE(b.start());
    ASSERT_TRUE(run_until(
        io_, [&] { return sink.links.size() == 1 && b.connected() == 1; }, 10s));
    EXPECT_EQ(sink.links[0], std::make_pair(LinkState::kUp, std::string("peer 127.0.0.2:3782 connected")));
    std::vector<Bytes> to_b;
    std::vector<Bytes> to_plugin;
    for (std::size_t i = 0; i < 500; ++i) {
        to_b.push_back(datagram(1, i, 1 + (i * 97) % 5000));
        to_plugin.push_back(datagram(2, i, 1 + (i * 61) % 5000));
        ASSERT_TRUE(plugin->send(to_b.back()));
        ASSERT_TRUE(b.send(to_plugin.back()));
    }
    ASSERT_TRUE(run_until(
        io_,
        [&] { return sink.datagrams.size() == to_plugin.size() && b.sink.datagrams.size() == to_b.size(); },
        10s));
    EXPECT_TRUE(sink.datagrams == to_plugin);
    EXPECT_TRUE(b.sink.datagrams == to_b);
    EXPECT_EQ(metrics.counter_value("datagrams_sent"), 500);
    EXPECT_EQ(metrics.counter_value("datagrams_received"), 500);

    plugin->stop();
    plugin.reset();
    // Its aborted operations complete now, while the library is still loaded (`loaded` holds it).
    run_for(io_, 100ms);
    ASSERT_TRUE(run_until(
        io_, [&] { return b.sink.links.size() == 2; }, 5s));
    EXPECT_EQ(b.sink.links[1].first, LinkState::kDown);
}

}  // namespace
}  // namespace transport_tcp::test
