// SPDX-License-Identifier: GPL-2.0-or-later
// proto-tcp: which flows and changes are worth sending, the be-liberal adjustment written at commit (what
// lets a failed-back firewall whose kernel still holds the connection's old entry accept its segments: the
// failover lab's failback shows it end to end), peer data checks, and the SDK's conformance suite.
#include <gtest/gtest.h>

#include <ctsync/sdk/testing/conformance.hpp>

#include "tcp_proto.hpp"

namespace proto_tcp::test {
namespace {
namespace sdk = ctsync::sdk;

const bool kConformanceRegistered = [] {
    ctsync::testkit::register_conformance_tests({
        .plugin_file = PROTO_TCP_PLUGIN_FILE,
        .plugin_name = "proto-tcp",
        .category = sdk::Category::kProto,
        .sample_config = {{"window_tracking", false}},
        .bad_configs = {{{"window_tracking", "no"}}, {{"replicate_syn_sent", 1}}, {{"unknown", true}}},
    });
    return true;
}();

sdk::FlowState established() {
    sdk::FlowState f;
    f.original.family = sdk::Family::kIpv4;
    f.original.protocol = sdk::l4::kTcp;
    f.reply = f.original;
    f.tcp.state = 3;  // ESTABLISHED
    f.tcp.wscale_original = 7;
    f.tcp.wscale_reply = 7;
    f.timeout = 432000;
    return f;
}

TEST(ProtoTcp, CommitMarksBothDirectionsBeLiberalUnlessWindowTrackingIsKept) {
    auto f = established();
    f.tcp.flags_original = 0x01;  // WINDOW_SCALE: kept
    TcpProto({}).adjust_for_commit(f);
    EXPECT_EQ(f.tcp.flags_original, 0x01 | kFlagBeLiberal);
    EXPECT_EQ(f.tcp.flags_reply, kFlagBeLiberal);
    auto g = established();
    TcpProto({.window_tracking = true}).adjust_for_commit(g);
    EXPECT_EQ(g, established());
}

TEST(ProtoTcp, TimerOnlyIsARefreshAnythingElseCritical) {
    TcpProto p({});
    auto before = established();
    EXPECT_EQ(p.classify(before, before), sdk::Change::kNone);
    auto timer = before;
    timer.timeout = 431000;
    EXPECT_EQ(p.classify(before, timer), sdk::Change::kRefresh);
    auto closing = timer;
    closing.tcp.state = 4;  // FIN_WAIT
    EXPECT_EQ(p.classify(before, closing), sdk::Change::kCritical);
    auto marked = before;
    marked.mark = 7;
    EXPECT_EQ(p.classify(before, marked), sdk::Change::kCritical);
}

TEST(ProtoTcp, UnansweredConnectionsAreSentUnlessTurnedOff) {
    auto syn = established();
    syn.tcp.state = kStateSynSent;
    EXPECT_TRUE(TcpProto({}).worth_replicating(syn));
    EXPECT_FALSE(TcpProto({.replicate_syn_sent = false}).worth_replicating(syn));
    EXPECT_TRUE(TcpProto({.replicate_syn_sent = false}).worth_replicating(established()));
    auto none = established();
    none.tcp.state = kStateNone;
    EXPECT_FALSE(TcpProto({}).worth_replicating(none));
}

TEST(ProtoTcp, PeerDataOutsideTheKernelsRangesIsRefusedWithAReason) {
    TcpProto p({});
    std::string reason;
    EXPECT_TRUE(p.validate_peer(established(), reason)) << reason;
    auto state = established();
    state.tcp.state = 10;
    EXPECT_FALSE(p.validate_peer(state, reason));
    EXPECT_EQ(reason, "TCP state 10 is not a kernel TCP_CONNTRACK_* state (0-9)");
    auto scale = established();
    scale.tcp.wscale_reply = 15;
    EXPECT_FALSE(p.validate_peer(scale, reason));
    EXPECT_EQ(reason, "TCP window scale 7/15 exceeds 14");
    auto udp = established();
    udp.original.protocol = sdk::l4::kUdp;
    EXPECT_FALSE(p.validate_peer(udp, reason));
    EXPECT_EQ(reason, "not a TCP flow");
}

}  // namespace
}  // namespace proto_tcp::test
