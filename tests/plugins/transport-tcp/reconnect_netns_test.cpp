// SPDX-License-Identifier: GPL-2.0-or-later
// Reconnecting: a peer that starts late is reached by the backoff; a peer that stops and comes back is
// reconnected, with the link state going down and up; a peer that goes silent (its packets dropped by
// nftables) is noticed through TCP_USER_TIMEOUT.
#include "tcp_test_util.hpp"

namespace transport_tcp::test {
namespace {

TEST_F(TransportTcpNetns, LatePeerIsConnectedByBackoffThenReceives) {
    auto options = loopback_options(1, {2});
    options.reconnect_min = 50ms;
    options.reconnect_max = 800ms;
    Node a(io_, options);
    ASSERT_NO_FATAL_FAILURE(a.start());

    // Nobody listens at 127.0.0.2: each attempt is refused at once, so the attempts in a window show the
    // waits. Waits of 50, 50-100, 100-200, 200-400, 400-800, 400-800... ms allow 6 to 9 attempts in 2 s;
    // without backoff there would be 40.
    run_for(io_, 2000ms);
    const auto failures = a.counter("connect_failures");
    EXPECT_GE(failures, 5) << a.log_text();
    EXPECT_LE(failures, 10) << a.log_text();
    EXPECT_EQ(a.counter("connects"), 0);
    EXPECT_TRUE(a.sink.links.empty()) << "no transition yet: the link starts down";
    EXPECT_TRUE(
        a.logged("event=connect_failed peer=127.0.0.2:3782 reason=\"connection refused\" failed_attempts=1"))
        << a.log_text();
    // While the peer is away its datagrams are dropped, counted, and send() says so.
    EXPECT_FALSE(a.send(datagram(1, 0, 100)));
    EXPECT_EQ(a.counter("tx_dropped_disconnected"), 1);

    Node b(io_, loopback_options(2, {1}));
    ASSERT_NO_FATAL_FAILURE(b.start());
    // The next attempt comes within the longest wait.
    ASSERT_TRUE(run_until(
        io_, [&] { return a.connected() == 1; }, 800ms + 2s))
        << a.log_text();
    ASSERT_EQ(a.sink.links.size(), 1u);
    EXPECT_EQ(a.sink.links[0], std::make_pair(LinkState::kUp, std::string("peer 127.0.0.2:3782 connected")));
    EXPECT_EQ(a.counter("connects"), 1);
    EXPECT_EQ(a.gauge("peers_connected"), 1);

    const Bytes d = datagram(1, 1, 500);
    ASSERT_TRUE(a.send(d));
    ASSERT_TRUE(run_until(
        io_, [&] { return !b.sink.datagrams.empty(); }, 5s));
    EXPECT_TRUE(b.sink.datagrams[0] == d);
}

TEST_F(TransportTcpNetns, StoppedPeerIsReconnectedWhenItComesBack) {
    Node a(io_, loopback_options(1, {2}));
    auto b = std::make_unique<Node>(io_, loopback_options(2, {1}));
    ASSERT_NO_FATAL_FAILURE(a.start());
    ASSERT_NO_FATAL_FAILURE(b->start());
    ASSERT_TRUE(run_until(
        io_, [&] { return a.connected() == 1 && b->connected() == 1; }, 10s));
    const Bytes before = datagram(1, 1, 300);
    ASSERT_TRUE(a.send(before));
    ASSERT_TRUE(run_until(
        io_, [&] { return b->sink.datagrams.size() == 1; }, 5s));

    // The peer goes away (its sockets close, as when its process dies).
    b.reset();
    ASSERT_TRUE(run_until(
        io_, [&] { return a.sink.links.size() == 2; }, 5s))
        << a.log_text();
    EXPECT_EQ(a.sink.links[1],
              std::make_pair(LinkState::kDown, std::string("peer 127.0.0.2:3782 closed by peer")));
    EXPECT_EQ(a.counter("disconnects"), 1);
    EXPECT_EQ(a.gauge("peers_connected"), 0);
    EXPECT_TRUE(a.logged("event=peer_disconnected peer=127.0.0.2:3782 reason=\"closed by peer\""))
        << a.log_text();
    EXPECT_FALSE(a.send(datagram(1, 2, 300)));
    EXPECT_EQ(a.counter("tx_dropped_disconnected"), 1);
    // Its connection to us is gone too.
    ASSERT_TRUE(run_until(
        io_, [&] { return a.logged("event=peer_stream_closed peer=127.0.0.2:3782"); }, 5s));

    // Back on the same address and port: reconnected without anything being done on this side.
    b = std::make_unique<Node>(io_, loopback_options(2, {1}));
    ASSERT_NO_FATAL_FAILURE(b->start());
    ASSERT_TRUE(run_until(
        io_, [&] { return a.connected() == 1 && b->connected() == 1; }, 10s))
        << a.log_text();
    ASSERT_EQ(a.sink.links.size(), 3u);
    EXPECT_EQ(a.sink.links[2], std::make_pair(LinkState::kUp, std::string("peer 127.0.0.2:3782 connected")));
    EXPECT_EQ(a.counter("connects"), 2);

    const Bytes after = datagram(1, 3, 300);
    const Bytes back = datagram(2, 4, 300);
    ASSERT_TRUE(a.send(after));
    ASSERT_TRUE(b->send(back));
    ASSERT_TRUE(run_until(
        io_, [&] { return !b->sink.datagrams.empty() && !a.sink.datagrams.empty(); }, 5s));
    ASSERT_EQ(b->sink.datagrams.size(), 1u);
    EXPECT_TRUE(b->sink.datagrams[0] == after);  // not the one sent while it was away
    EXPECT_TRUE(a.sink.datagrams[0] == back);
}

TEST_F(TransportTcpNetns, SilentPeerIsNoticedByUserTimeout) {
    auto options = loopback_options(1, {2});
    options.user_timeout = 1000ms;
    Node a(io_, options);
    Node b(io_, loopback_options(2, {1}));
    ASSERT_NO_FATAL_FAILURE(a.start());
    ASSERT_NO_FATAL_FAILURE(b.start());
    ASSERT_TRUE(run_until(
        io_, [&] { return a.connected() == 1; }, 10s));

    // From now on nothing from A reaches B's port: no FIN, no RST, B simply never answers.
    ASSERT_NO_FATAL_FAILURE(in_netns({"nft", "add", "table", "inet", "ctsync_tcp_test"}));
    ASSERT_NO_FATAL_FAILURE(in_netns({"nft", "add", "chain", "inet", "ctsync_tcp_test", "input",
                                      "{ type filter hook input priority 0; policy accept; }"}));
    ASSERT_NO_FATAL_FAILURE(
        in_netns({"nft", "add", "rule", "inet", "ctsync_tcp_test", "input", "ip", "saddr", "127.0.0.1", "ip",
                  "daddr", "127.0.0.2", "tcp", "dport", "3782", "drop"}));
    const auto silenced = std::chrono::steady_clock::now();
    ASSERT_TRUE(a.send(datagram(1, 1, 200)));
    ASSERT_TRUE(run_until(
        io_, [&] { return a.sink.links.size() == 2; }, 6s))
        << a.log_text();
    const auto noticed = std::chrono::steady_clock::now() - silenced;
    EXPECT_EQ(a.sink.links[1].first, LinkState::kDown);
    EXPECT_EQ(a.sink.links[1].second, "peer 127.0.0.2:3782 connection timed out");
    EXPECT_LT(noticed, 4s);
    EXPECT_GE(noticed, 900ms);
    // Unanswered SYNs: the connect timeout ends each attempt.
    ASSERT_TRUE(run_until(
        io_, [&] { return a.logged("reason=\"connect timeout after 500 ms\""); }, 5s))
        << a.log_text();

    ASSERT_NO_FATAL_FAILURE(in_netns({"nft", "delete", "table", "inet", "ctsync_tcp_test"}));
    ASSERT_TRUE(run_until(
        io_, [&] { return a.connected() == 1; }, 5s))
        << a.log_text();
    ASSERT_EQ(a.sink.links.size(), 3u);
    EXPECT_EQ(a.sink.links[2].first, LinkState::kUp);
    const Bytes d = datagram(1, 2, 200);
    ASSERT_TRUE(a.send(d));
    // B's old stream from A is replaced by the new one; the datagram arrives on it.
    ASSERT_TRUE(run_until(
        io_, [&] { return !b.sink.datagrams.empty() && b.sink.datagrams.back() == d; }, 5s));
}

}  // namespace
}  // namespace transport_tcp::test
