// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/cache/flow_json.hpp"

#include <gtest/gtest.h>

namespace ctsync::core {
namespace {

sdk::FlowState sample() {
    sdk::FlowState f;
    f.zone = {4, sdk::Zone::kDirReply};
    f.original.family = sdk::Family::kIpv6;
    f.original.protocol = sdk::l4::kTcp;
    f.original.src.bytes = {0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
    f.original.dst.bytes = {0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
    f.original.src_port = 40000;
    f.original.dst_port = 443;
    f.reply = f.original;
    std::swap(f.reply.src, f.reply.dst);
    std::swap(f.reply.src_port, f.reply.dst_port);
    f.status = 14;
    f.mark = 42;
    f.timeout = 3600;
    f.labels[1] = 0x81;
    sdk::set_helper_name(f.helper, "sip");
    f.snat = {true, f.reply.dst, 1234};
    f.seq_reply = {true, 5, -2, 3};
    f.tcp = {3, 7, 8, 2, 3};
    return f;
}

TEST(FlowJson, RoundTripsEveryField) {
    ConfigIssues issues;
    auto back = flow_from_json(to_json(sample()), ".", issues);
    ASSERT_TRUE(back) << ::testing::PrintToString(issues);
    EXPECT_EQ(*back, sample());
}

TEST(FlowJson, ExpectationRoundTrips) {
    sdk::Expectation e;
    e.master = sample().original;
    e.expected = sample().reply;
    e.mask = e.expected;
    e.timeout = 30;
    e.flags = 1;
    e.nat = {true, sample().original.src, 99};
    sdk::set_helper_name(e.helper, "ftp");
    ConfigIssues issues;
    auto back = expectation_from_json(to_json(e), ".", issues);
    ASSERT_TRUE(back) << ::testing::PrintToString(issues);
    EXPECT_EQ(*back, e);
}

TEST(FlowJson, BadInputNamesEveryProblemAndReadsNothing) {
    auto j = to_json(sample());
    j["original"]["src"] = "192.0.2.1";  // IPv4 in an IPv6 tuple
    j["mark"] = -1;
    j["labels"] = "xyz";
    j["helper"] = "a-helper-name-that-is-far-too-long";
    j["tcp"]["state"] = 42;
    j["surprise"] = true;
    ConfigIssues issues;
    EXPECT_FALSE(flow_from_json(j, ".flows[3]", issues));
    std::vector<std::string> lines;
    for (const auto& i : issues) {
        lines.push_back(format_issue(i));
    }
    EXPECT_EQ(lines, (std::vector<std::string>{
                         ".flows[3].surprise: unknown key",
                         ".flows[3].original.src: '192.0.2.1' is not an IPv6 address",
                         ".flows[3].mark: -1 does not fit",
                         ".flows[3].labels: expected 32 lower-case hex digits (128 label bits)",
                         ".flows[3].helper: helper names have at most 15 characters",
                         ".flows[3].tcp.state: 42 is not a TCP conntrack state",
                     }));
}

TEST(FlowJson, ConntrackStyleLine) {
    EXPECT_EQ(to_line(sample()),
              "tcp     6 3600 ESTABLISHED src=fd00:1::10 dst=fd00:2::10 sport=40000 dport=443 src=fd00:2::10 "
              "dst=fd00:1::10 sport=443 dport=40000 [ASSURED] mark=42 zone=4 helper=sip");
}

}  // namespace
}  // namespace ctsync::core
