// SPDX-License-Identifier: GPL-2.0-or-later
// What arrives on the listening port is untrusted: connections from addresses outside `peers` are closed
// at once, a frame length of 0 or above max_datagram_bytes closes that connection (counted, logged with
// the peer's name), and none of it stops good connections from working. Raw sockets play the bad peers.
#include "tcp_test_util.hpp"

namespace transport_tcp::test {
namespace {

TEST_F(TransportTcpNetns, ConnectionFromAnAddressNotInPeersIsRejected) {
    Node a(io_, loopback_options(1, {2}));
    ASSERT_NO_FATAL_FAILURE(a.start());

    RawSocket stranger = RawSocket::connect("127.0.0.9", loopback(1));
    ASSERT_TRUE(stranger.valid());
    ASSERT_TRUE(stranger.write(frame(5, bytes_of("hello"))));  // well-formed, still refused
    ASSERT_TRUE(run_until(
        io_, [&] { return a.counter("rejected_connections") == 1 && stranger.closed_by_peer(); }, 5s))
        << a.log_text();
    EXPECT_TRUE(a.logged("event=connection_rejected remote=127.0.0.9:")) << a.log_text();

    // The listener goes on accepting: the configured peer's address gets through.
    RawSocket peer = RawSocket::connect(loopback(2), loopback(1));
    ASSERT_TRUE(peer.valid());
    ASSERT_TRUE(peer.write(frame(6, bytes_of("from b"))));
    ASSERT_TRUE(run_until(
        io_, [&] { return a.sink.datagrams.size() == 1; }, 5s))
        << a.log_text();
    EXPECT_TRUE(a.sink.datagrams[0] == bytes_of("from b"));  // and nothing from the stranger
    EXPECT_EQ(a.counter("rejected_connections"), 1);
    EXPECT_FALSE(peer.closed_by_peer());
}

TEST_F(TransportTcpNetns, BadFramesCloseTheConnectionAndAreCounted) {
    auto options = loopback_options(1, {2});
    options.max_datagram_bytes = 1000;
    Node a(io_, options);
    ASSERT_NO_FATAL_FAILURE(a.start());
    auto send_and_wait_close = [&](const Bytes& bytes, std::int64_t expected_bad_frames) {
        RawSocket raw = RawSocket::connect(loopback(2), loopback(1));
        ASSERT_TRUE(raw.valid());
        ASSERT_TRUE(raw.write(bytes));
        ASSERT_TRUE(run_until(
            io_, [&] { return a.counter("rx_bad_frames") == expected_bad_frames && raw.closed_by_peer(); },
            5s))
            << a.log_text();
    };

    // Length 0.
    ASSERT_NO_FATAL_FAILURE(send_and_wait_close(frame(0, bytes_of("trailing")), 1));
    EXPECT_TRUE(a.sink.datagrams.empty());
    EXPECT_TRUE(a.logged("event=bad_frame peer=127.0.0.2:3782 remote=127.0.0.2:")) << a.log_text();
    EXPECT_TRUE(a.logged("length=0 max_datagram_bytes=1000")) << a.log_text();

    // A good frame, then one a byte longer than allowed: the first is delivered, then the connection goes.
    const Bytes hello = frame(5, bytes_of("hello"));
    const Bytes too_long = frame(1001, datagram(2, 0, 1001));
    Bytes stream(hello.size() + too_long.size());
    std::memcpy(stream.data(), hello.data(), hello.size());
    std::memcpy(stream.data() + hello.size(), too_long.data(), too_long.size());
    ASSERT_NO_FATAL_FAILURE(send_and_wait_close(stream, 2));
    ASSERT_EQ(a.sink.datagrams.size(), 1u);
    EXPECT_TRUE(a.sink.datagrams[0] == bytes_of("hello"));
    EXPECT_TRUE(a.logged("length=1001 max_datagram_bytes=1000")) << a.log_text();

    // The largest length the header can say.
    ASSERT_NO_FATAL_FAILURE(send_and_wait_close(frame(0xffffffffu, bytes_of("xxxxxxxx")), 3));
    EXPECT_TRUE(a.logged("length=4294967295")) << a.log_text();

    // A frame cut short by the peer closing: nothing delivered, nothing counted as bad, nothing crashes.
    {
        RawSocket raw = RawSocket::connect(loopback(2), loopback(1));
        ASSERT_TRUE(raw.valid());
        ASSERT_TRUE(raw.write(frame(100, datagram(2, 1, 10))));
    }
    ASSERT_TRUE(run_until(
        io_, [&] { return a.logged("reason=\"closed by peer inside a frame\""); }, 5s))
        << a.log_text();
    EXPECT_EQ(a.sink.datagrams.size(), 1u);
    EXPECT_EQ(a.counter("rx_bad_frames"), 3);

    // Exactly max_datagram_bytes is fine, and the connection stays.
    RawSocket raw = RawSocket::connect(loopback(2), loopback(1));
    ASSERT_TRUE(raw.valid());
    const Bytes largest = datagram(2, 2, 1000);
    ASSERT_TRUE(raw.write(frame(1000, largest)));
    ASSERT_TRUE(run_until(
        io_, [&] { return a.sink.datagrams.size() == 2; }, 5s))
        << a.log_text();
    EXPECT_TRUE(a.sink.datagrams[1] == largest);
    EXPECT_FALSE(raw.closed_by_peer());

    // And a real peer connecting afterwards works as if nothing had happened.
    Node b(io_, loopback_options(2, {1}));
    ASSERT_NO_FATAL_FAILURE(b.start());
    ASSERT_TRUE(run_until(
        io_, [&] { return b.connected() == 1; }, 5s))
        << b.log_text();
    const Bytes good = datagram(2, 3, 700);
    ASSERT_TRUE(b.send(good));
    ASSERT_TRUE(run_until(
        io_, [&] { return a.sink.datagrams.size() == 3; }, 5s))
        << a.log_text();
    EXPECT_TRUE(a.sink.datagrams[2] == good);
    EXPECT_EQ(a.counter("rx_bad_frames"), 3);
    EXPECT_EQ(a.counter("datagrams_received"), 3);
}

TEST_F(TransportTcpNetns, NewConnectionFromAPeerReplacesItsOldOne) {
    Node a(io_, loopback_options(1, {2}));
    ASSERT_NO_FATAL_FAILURE(a.start());
    // A peer that restarted after a crash: its old connection looks alive here until something says
    // otherwise, so the new one from the same address takes its place.
    RawSocket first = RawSocket::connect(loopback(2), loopback(1));
    ASSERT_TRUE(first.valid());
    ASSERT_TRUE(first.write(frame(3, bytes_of("one"))));
    ASSERT_TRUE(run_until(
        io_, [&] { return a.sink.datagrams.size() == 1; }, 5s));
    RawSocket second = RawSocket::connect(loopback(2), loopback(1));
    ASSERT_TRUE(second.valid());
    ASSERT_TRUE(second.write(frame(3, bytes_of("two"))));
    ASSERT_TRUE(run_until(
        io_, [&] { return a.sink.datagrams.size() == 2 && first.closed_by_peer(); }, 5s))
        << a.log_text();
    EXPECT_TRUE(a.sink.datagrams[1] == bytes_of("two"));
    EXPECT_TRUE(a.logged("event=peer_stream_replaced peer=127.0.0.2:3782")) << a.log_text();
    EXPECT_FALSE(second.closed_by_peer());
}

}  // namespace
}  // namespace transport_tcp::test
