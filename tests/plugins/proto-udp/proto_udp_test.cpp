// SPDX-License-Identifier: GPL-2.0-or-later
// proto-udp: which flows are worth sending at each stage of a UDP flow's life (a table of the kernel's status
// combinations against each replicate_from), which changes matter, peer data that is refused (with the
// reason), the key table against the README and the JSON paths of bad values, and the SDK's conformance
// suite. End to end (a long-lived session through a failover, a burst of one-shot queries not sent): the
// failover lab, tests/lab/failover_lab_test.cpp.
#include <gtest/gtest.h>

#include <ctsync/sdk/testing/conformance.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config/key_table.hpp"
#include "tests/support/process.hpp"
#include "udp_proto.hpp"

namespace proto_udp::test {
namespace {
namespace sdk = ctsync::sdk;

const bool kConformanceRegistered = [] {
    ctsync::testkit::register_conformance_tests({
        .plugin_file = PROTO_UDP_PLUGIN_FILE,
        .plugin_name = "proto-udp",
        .category = sdk::Category::kProto,
        .sample_config = {{"replicate_from", "replied"}},
        .bad_configs = {{{"replicate_from", "always"}}, {{"replicate_from", 1}}, {{"unknown", true}}},
    });
    return true;
}();

constexpr std::uint32_t kConfirmed = 1u << 3;
constexpr std::uint32_t kSrcNat = 1u << 4;

// A NATed UDP flow 192.0.2.10:40000 -> 203.0.113.53:53 with the given status.
sdk::FlowState udp_flow(std::uint32_t status, std::uint8_t protocol = sdk::l4::kUdp) {
    sdk::FlowState f;
    f.original.family = f.reply.family = sdk::Family::kIpv4;
    f.original.protocol = f.reply.protocol = protocol;
    f.original.src.bytes = {192, 0, 2, 10};
    f.original.dst.bytes = {203, 0, 113, 53};
    f.original.src_port = 40000;
    f.original.dst_port = 53;
    f.reply.src = f.original.dst;
    f.reply.dst.bytes = {198, 51, 100, 1};
    f.reply.src_port = 53;
    f.reply.dst_port = 40000;
    f.snat.present = true;
    f.snat.address = f.reply.dst;
    f.status = status;
    f.timeout = 30;
    return f;
}

TEST(ProtoUdp, ServesUdpAndUdpLite) {
    UdpProto p({});
    EXPECT_EQ(std::vector<std::uint8_t>(p.protocols().begin(), p.protocols().end()),
              (std::vector<std::uint8_t>{sdk::l4::kUdp, sdk::l4::kUdplite}));
}

// The kernel's stages of a UDP flow, each against each setting: true where it is sent.
TEST(ProtoUdp, WhatIsSentAtEachStageOfAFlowsLife) {
    struct Stage {
        const char* name;
        std::uint32_t status;
        bool sent_new, sent_replied, sent_assured;
    };
    const Stage stages[] = {
        {"unreplied (a query, no answer yet)", kConfirmed | kSrcNat, true, false, false},
        {"replied, not assured (a query and its answer: one-shot)", kConfirmed | kSrcNat | kSeenReply, true,
         true, false},
        {"assured (a stream: replies and traffic for more than 2 s)",
         kConfirmed | kSrcNat | kSeenReply | kAssured, true, true, true},
    };
    for (const auto& s : stages) {
        const auto f = udp_flow(s.status);
        EXPECT_EQ(UdpProto({.replicate_from = ReplicateFrom::kEveryFlow}).worth_replicating(f), s.sent_new)
            << s.name;
        EXPECT_EQ(UdpProto({.replicate_from = ReplicateFrom::kOnceReplied}).worth_replicating(f),
                  s.sent_replied)
            << s.name;
        EXPECT_EQ(UdpProto({.replicate_from = ReplicateFrom::kOnceAssured}).worth_replicating(f),
                  s.sent_assured)
            << s.name;
        EXPECT_EQ(UdpProto({}).worth_replicating(f), s.sent_assured) << s.name << ": the default is assured";
    }
}

// Transitions: the timer alone is a refresh (the weak policy keeps it off the wire), a stage reached or any
// other field changed is critical.
TEST(ProtoUdp, TimerOnlyIsARefreshAStageReachedOrAnythingElseIsCritical) {
    UdpProto p({});
    const auto replied = udp_flow(kConfirmed | kSrcNat | kSeenReply);
    struct Transition {
        const char* name;
        sdk::FlowState after;
        sdk::Change expected;
    };
    auto timer = replied;
    timer.timeout = 120;
    auto assured = replied;
    assured.status |= kAssured;
    assured.timeout = 180;
    auto marked = replied;
    marked.mark = 0x10;
    auto relabelled = replied;
    relabelled.labels[0] = 1;
    auto renatted = replied;
    renatted.reply.dst.bytes = {198, 51, 100, 2};
    const Transition transitions[] = {
        {"nothing", replied, sdk::Change::kNone},
        {"timer", timer, sdk::Change::kRefresh},
        {"assured (and the stream timeout)", assured, sdk::Change::kCritical},
        {"mark", marked, sdk::Change::kCritical},
        {"labels", relabelled, sdk::Change::kCritical},
        {"NAT binding", renatted, sdk::Change::kCritical},
    };
    for (const auto& t : transitions) {
        EXPECT_EQ(p.classify(replied, t.after), t.expected) << t.name;
    }
    auto reply_seen = udp_flow(kConfirmed | kSrcNat);
    EXPECT_EQ(p.classify(reply_seen, replied), sdk::Change::kCritical) << "SEEN_REPLY set";
}

TEST(ProtoUdp, CommitWritesTheFlowAsItCame) {
    auto f = udp_flow(kConfirmed | kSrcNat | kSeenReply | kAssured);
    UdpProto({}).adjust_for_commit(f);
    EXPECT_EQ(f, udp_flow(kConfirmed | kSrcNat | kSeenReply | kAssured));
}

TEST(ProtoUdp, PeerDataThatMakesNoSenseForUdpIsRefusedWithTheReason) {
    UdpProto p({});
    std::string reason;
    EXPECT_TRUE(p.validate_peer(udp_flow(kConfirmed | kSeenReply | kAssured), reason)) << reason;
    EXPECT_TRUE(p.validate_peer(udp_flow(kConfirmed), reason)) << reason;
    EXPECT_TRUE(p.validate_peer(udp_flow(kConfirmed | kSeenReply, sdk::l4::kUdplite), reason)) << reason;

    struct Bad {
        const char* name;
        sdk::FlowState flow;
        std::string reason;
    };
    auto tcp = udp_flow(kConfirmed);
    tcp.original.protocol = tcp.reply.protocol = sdk::l4::kTcp;
    auto assured_unreplied = udp_flow(kConfirmed | kAssured);
    auto seq_bit = udp_flow(kConfirmed | kSeenReply | kSeqAdjust);
    auto seq_block = udp_flow(kConfirmed | kSeenReply);
    seq_block.seq_reply.present = true;
    auto tcp_state = udp_flow(kConfirmed | kSeenReply);
    tcp_state.tcp.state = 3;
    auto sctp_vtag = udp_flow(kConfirmed | kSeenReply);
    sctp_vtag.sctp.vtag_original = 0x1234;
    auto port0 = udp_flow(kConfirmed);
    port0.original.dst_port = 0;
    const Bad bad[] = {
        {"another protocol", tcp, "protocol 6 is not UDP (17) or UDP-Lite (136)"},
        {"assured without a reply", assured_unreplied,
         "status 0xc: ASSURED without SEEN_REPLY (the kernel assures a UDP flow only after a reply)"},
        {"sequence adjustment bit", seq_bit, "TCP sequence adjustment on a UDP flow"},
        {"sequence adjustment block", seq_block, "TCP sequence adjustment on a UDP flow"},
        {"TCP state", tcp_state, "TCP, SCTP or DCCP protocol state on a UDP flow"},
        {"SCTP vtag", sctp_vtag, "TCP, SCTP or DCCP protocol state on a UDP flow"},
        {"destination port 0", port0, "destination port 0 (original 0, reply 40000)"},
    };
    for (const auto& b : bad) {
        reason.clear();
        EXPECT_FALSE(p.validate_peer(b.flow, reason)) << b.name;
        EXPECT_EQ(reason, b.reason) << b.name;
    }
}

TEST(ProtoUdpConfig, ReplicateFromNamesItsChoicesAndABadValueItsPath) {
    ctsync::core::ConfigIssues issues;
    const auto filled =
        ctsync::core::validate_against(nlohmann::json::object(), keys(), ".protos[1].config", issues);
    EXPECT_TRUE(issues.empty());
    EXPECT_EQ(filled["replicate_from"], "assured");
    ctsync::core::validate_against(nlohmann::json{{"replicate_from", "always"}}, keys(), ".protos[1].config",
                                   issues);
    ASSERT_EQ(issues.size(), 1u);
    EXPECT_EQ(issues[0].path, ".protos[1].config.replicate_from");
    EXPECT_NE(issues[0].message.find("new|replied|assured"), std::string::npos) << issues[0].message;
    for (const char* name : {"new", "replied", "assured"}) {
        ReplicateFrom from{};
        ASSERT_TRUE(parse_replicate_from(name, from)) << name;
        EXPECT_EQ(to_string(from), name);
    }
    ReplicateFrom from{};
    EXPECT_FALSE(parse_replicate_from("always", from));
}

TEST(ProtoUdpConfig, ReadmeKeyTableMatchesTheCode) {
    const std::string readme =
        ctsync::test::read_file(std::filesystem::path(CTSYNC_SOURCE_DIR) / "plugins/proto-udp/README.md");
    for (const auto& key : keys()) {
        std::string escaped;
        for (char c : ctsync::core::describe_type(key)) {
            escaped += c == '|' ? std::string("\\|") : std::string(1, c);
        }
        const std::string row = "| `" + std::string(key.name) + "` | " + escaped + " | `" +
                                std::string(key.default_json) + "` | " + key.description + " |";
        EXPECT_NE(readme.find(row + "\n"), std::string::npos) << "README lacks the row\n" << row;
    }
}

}  // namespace
}  // namespace proto_udp::test
