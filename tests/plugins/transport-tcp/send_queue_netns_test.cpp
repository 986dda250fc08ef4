// SPDX-License-Identifier: GPL-2.0-or-later
// A peer that stops reading fills its send queue: datagrams for it are dropped and counted, send() says
// so, the connection stays, and the other peer still gets everything. What the slow peer does get is
// whole frames in order, with gaps exactly where send() reported drops.
#include <set>

#include "tcp_test_util.hpp"

namespace transport_tcp::test {
namespace {

constexpr std::size_t kDatagramBytes = 16000;

TEST_F(TransportTcpNetns, FullSendQueueDropsForThatPeerOnly) {
    auto options = loopback_options(1, {2, 3});
    options.send_queue_bytes = 65536;  // four frames of 16004 bytes
    Node a(io_, options);
    Node b(io_, loopback_options(2, {1}));
    // Peer 3 is a socket that accepts nothing until told to: the kernel completes the connection, then
    // its buffers fill and A's queue for it with them.
    RawSocket slow_listener = RawSocket::listen(loopback(3));
    ASSERT_TRUE(slow_listener.valid());
    ASSERT_NO_FATAL_FAILURE(a.start());
    ASSERT_NO_FATAL_FAILURE(b.start());
    ASSERT_TRUE(run_until(
        io_, [&] { return a.connected() == 2; }, 10s))
        << a.log_text();

    std::set<std::size_t> refused;
    std::size_t sent = 0;
    // Bounded: 4000 datagrams are 64 MB, far more than the kernel buffers on both ends of one connection.
    for (std::size_t i = 0; i < 4000 && refused.size() < 20; ++i) {
        if (!a.send(datagram(1, i, kDatagramBytes))) {
            refused.insert(i);
        }
        ++sent;
        // Let B keep up, so that only the slow peer's queue can fill.
        ASSERT_TRUE(run_until(
            io_, [&] { return b.sink.datagrams.size() == sent; }, 5s))
            << "b got " << b.sink.datagrams.size() << " of " << sent;
    }
    ASSERT_EQ(refused.size(), 20u) << "the slow peer's queue never filled";
    EXPECT_EQ(a.counter("tx_dropped"), 20);  // one per refused datagram: only the slow peer dropped
    EXPECT_EQ(a.counter("tx_dropped_disconnected"), 0);
    EXPECT_TRUE(a.logged("event=send_queue_full peer=127.0.0.3:3782")) << a.log_text();
    EXPECT_EQ(a.connected(), 2u) << "a full queue is not a reason to disconnect";
    EXPECT_EQ(a.sink.links.size(), 1u);
    for (std::size_t i = 0; i < sent; ++i) {
        ASSERT_TRUE(b.sink.datagrams[i] == datagram(1, i, kDatagramBytes)) << "datagram " << i;
    }

    // The slow peer reads at last: whole frames, in order, every datagram but the refused ones.
    RawSocket slow;
    ASSERT_TRUE(run_until(
        io_, [&] { return (slow = slow_listener.accept()).valid(); }, 5s));
    const std::size_t expected = sent - refused.size();
    Bytes stream;
    std::size_t parsed = 0;
    std::vector<std::size_t> indices;
    bool framing_ok = true;
    ASSERT_TRUE(run_until(
        io_,
        [&] {
            EXPECT_TRUE(slow.read_available(stream));
            while (stream.size() - parsed >= 4) {
                const std::uint32_t length = (std::to_integer<std::uint32_t>(stream[parsed]) << 24) |
                                             (std::to_integer<std::uint32_t>(stream[parsed + 1]) << 16) |
                                             (std::to_integer<std::uint32_t>(stream[parsed + 2]) << 8) |
                                             std::to_integer<std::uint32_t>(stream[parsed + 3]);
                if (length != kDatagramBytes) {
                    framing_ok = false;
                    return true;
                }
                if (stream.size() - parsed < 4 + length) {
                    break;
                }
                const Bytes body(stream.begin() + static_cast<std::ptrdiff_t>(parsed + 4),
                                 stream.begin() + static_cast<std::ptrdiff_t>(parsed + 4 + length));
                // Which datagram is this? The pattern depends on the index; the refused ones are skipped.
                std::size_t next = indices.empty() ? 0 : indices.back() + 1;
                while (refused.count(next) != 0) {
                    ++next;
                }
                if (body != datagram(1, next, kDatagramBytes)) {
                    framing_ok = false;
                    return true;
                }
                indices.push_back(next);
                parsed += 4 + length;
            }
            return indices.size() == expected;
        },
        20s))
        << "slow peer got " << indices.size() << " of " << expected;
    ASSERT_TRUE(framing_ok) << "frame " << indices.size() << " is not the next datagram that was not refused";
    EXPECT_EQ(stream.size(), parsed) << "nothing after the last whole frame";
    EXPECT_EQ(a.counter("datagrams_sent"), static_cast<std::int64_t>(sent + expected));
    // The queue has room again: the next datagram goes to both peers.
    EXPECT_TRUE(a.send(datagram(1, sent, kDatagramBytes)));
    EXPECT_TRUE(run_until(
        io_, [&] { return b.sink.datagrams.size() == sent + 1; }, 5s));
    EXPECT_TRUE(a.logged("event=send_queue_recovered peer=127.0.0.3:3782 dropped=")) << a.log_text();
}

}  // namespace
}  // namespace transport_tcp::test
