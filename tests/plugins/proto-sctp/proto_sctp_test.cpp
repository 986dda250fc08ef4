// SPDX-License-Identifier: GPL-2.0-or-later
// proto-sctp: which association states are sent (a table of every kernel SCTP_CONNTRACK_* state against both
// settings), which changes matter (a vtag or a state is critical, the timer a refresh), peer data that is
// refused (states out of range, missing verification tags, other protocols' state) with the reason, the key
// table against the README, and the SDK's conformance suite.
#include <gtest/gtest.h>

#include <ctsync/sdk/testing/conformance.hpp>
#include <filesystem>
#include <string>

#include "core/config/key_table.hpp"
#include "sctp_proto.hpp"
#include "tests/support/process.hpp"

namespace proto_sctp::test {
namespace {
namespace sdk = ctsync::sdk;

const bool kConformanceRegistered = [] {
    ctsync::testkit::register_conformance_tests({
        .plugin_file = PROTO_SCTP_PLUGIN_FILE,
        .plugin_name = "proto-sctp",
        .category = sdk::Category::kProto,
        .sample_config = {{"replicate_handshake", false}},
        .bad_configs = {{{"replicate_handshake", "no"}}, {{"replicate_handshake", 1}}, {{"unknown", true}}},
    });
    return true;
}();

// An association 192.0.2.10:40000 -> 203.0.113.20:3868 in `state`, with both vtags.
sdk::FlowState association(std::uint8_t state) {
    sdk::FlowState f;
    f.original.family = f.reply.family = sdk::Family::kIpv4;
    f.original.protocol = f.reply.protocol = sdk::l4::kSctp;
    f.original.src.bytes = {192, 0, 2, 10};
    f.original.dst.bytes = {203, 0, 113, 20};
    f.original.src_port = 40000;
    f.original.dst_port = 3868;
    f.reply.src = f.original.dst;
    f.reply.dst = f.original.src;
    f.reply.src_port = 3868;
    f.reply.dst_port = 40000;
    f.status = 0x0e;  // SEEN_REPLY | ASSURED | CONFIRMED
    f.timeout = 210;
    f.sctp.state = state;
    f.sctp.vtag_original = 0x1a2b3c4d;
    f.sctp.vtag_reply = 0x5e6f7081;
    return f;
}

TEST(ProtoSctp, EveryKernelStateHasItsNameAndAVerdict) {
    struct Row {
        std::uint8_t state;
        const char* name;
        bool sent, sent_without_handshake;
    };
    const Row rows[] = {
        {0, "NONE", false, false},         {1, "CLOSED", false, false},
        {2, "COOKIE_WAIT", true, false},   {3, "COOKIE_ECHOED", true, true},
        {4, "ESTABLISHED", true, true},    {5, "SHUTDOWN_SENT", true, true},
        {6, "SHUTDOWN_RECD", true, true},  {7, "SHUTDOWN_ACK_SENT", true, true},
        {8, "HEARTBEAT_SENT", true, true}, {9, "HEARTBEAT_ACKED", true, true},
    };
    ASSERT_EQ(std::size(rows), kStateCount) << "a state the table does not cover";
    for (const auto& r : rows) {
        EXPECT_EQ(state_name(r.state), r.name);
        EXPECT_EQ(SctpProto({}).worth_replicating(association(r.state)), r.sent) << r.name;
        EXPECT_EQ(SctpProto({.replicate_handshake = false}).worth_replicating(association(r.state)),
                  r.sent_without_handshake)
            << r.name;
    }
    EXPECT_EQ(state_name(kStateCount), "?");
    EXPECT_FALSE(SctpProto({}).worth_replicating(association(kStateCount)));
}

TEST(ProtoSctp, TimerOnlyIsARefreshStatesAndVtagsAreCritical) {
    SctpProto p({});
    const auto established = association(kStateEstablished);
    auto timer = established;
    timer.timeout = 100;
    auto shutdown = established;
    shutdown.sctp.state = 5;
    auto retagged = established;  // a restarted association (new INIT on the same addresses)
    retagged.sctp.vtag_reply = 0x0badcafe;
    auto closed = established;
    closed.sctp.state = kStateClosed;
    EXPECT_EQ(p.classify(established, established), sdk::Change::kNone);
    EXPECT_EQ(p.classify(established, timer), sdk::Change::kRefresh);
    EXPECT_EQ(p.classify(established, shutdown), sdk::Change::kCritical);
    EXPECT_EQ(p.classify(established, retagged), sdk::Change::kCritical);
    EXPECT_EQ(p.classify(established, closed), sdk::Change::kCritical);
    auto handshake = association(kStateCookieWait);
    handshake.sctp.vtag_original = 0;
    EXPECT_EQ(p.classify(handshake, association(kStateCookieEchoed)), sdk::Change::kCritical);
}

TEST(ProtoSctp, CommitWritesStateAndBothVtagsAsTheyCame) {
    auto f = association(kStateEstablished);
    SctpProto({}).adjust_for_commit(f);
    EXPECT_EQ(f, association(kStateEstablished));
}

TEST(ProtoSctp, PeerDataTheKernelWouldMisuseIsRefusedWithTheReason) {
    SctpProto p({});
    std::string reason;
    for (std::uint8_t s = 0; s < kStateCount; ++s) {
        EXPECT_TRUE(p.validate_peer(association(s), reason)) << state_name(s) << ": " << reason;
    }
    auto handshake = association(kStateCookieWait);
    handshake.sctp.vtag_original = 0;  // INIT ACK not seen yet: only the reply direction's tag is known
    EXPECT_TRUE(p.validate_peer(handshake, reason)) << reason;

    struct Bad {
        const char* name;
        sdk::FlowState flow;
        std::string reason;
    };
    auto udp = association(kStateEstablished);
    udp.original.protocol = udp.reply.protocol = sdk::l4::kUdp;
    auto no_reply_tag = association(kStateEstablished);
    no_reply_tag.sctp.vtag_reply = 0;
    auto no_original_tag = association(5);
    no_original_tag.sctp.vtag_original = 0;
    auto init_without_tag = association(kStateCookieWait);
    init_without_tag.sctp.vtag_reply = 0;
    auto tcp_state = association(kStateEstablished);
    tcp_state.tcp.state = 3;
    auto seq = association(kStateEstablished);
    seq.seq_original.present = true;
    const Bad bad[] = {
        {"another protocol", udp, "protocol 17 is not SCTP (132)"},
        {"state out of range", association(kStateCount),
         "SCTP state 10 is not a kernel SCTP_CONNTRACK_* state (0-9)"},
        {"state 255", association(255), "SCTP state 255 is not a kernel SCTP_CONNTRACK_* state (0-9)"},
        {"established without the reply tag", no_reply_tag,
         "SCTP ESTABLISHED without both verification tags (original 0x1a2b3c4d, reply 0x00000000): the "
         "kernel would drop the association's packets"},
        {"shutdown without the original tag", no_original_tag,
         "SCTP SHUTDOWN_SENT without both verification tags (original 0x00000000, reply 0x5e6f7081): the "
         "kernel would drop the association's packets"},
        {"COOKIE_WAIT without the INIT's tag", init_without_tag,
         "SCTP COOKIE_WAIT without the reply direction's verification tag (from the INIT)"},
        {"TCP state", tcp_state, "TCP or DCCP protocol state on an SCTP flow"},
        {"sequence adjustment", seq, "TCP sequence adjustment on an SCTP flow"},
    };
    for (const auto& b : bad) {
        reason.clear();
        EXPECT_FALSE(p.validate_peer(b.flow, reason)) << b.name;
        EXPECT_EQ(reason, b.reason) << b.name;
    }
}

TEST(ProtoSctpConfig, ReadmeKeyTableMatchesTheCode) {
    const std::string readme =
        ctsync::test::read_file(std::filesystem::path(CTSYNC_SOURCE_DIR) / "plugins/proto-sctp/README.md");
    for (const auto& key : keys()) {
        const std::string row = "| `" + std::string(key.name) + "` | " + ctsync::core::describe_type(key) +
                                " | `" + std::string(key.default_json) + "` | " + key.description + " |";
        EXPECT_NE(readme.find(row + "\n"), std::string::npos) << "README lacks the row\n" << row;
    }
}

}  // namespace
}  // namespace proto_sctp::test
