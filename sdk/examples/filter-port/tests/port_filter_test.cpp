// SPDX-License-Identifier: GPL-2.0-or-later
// Unit tests of the logic library, with the SDK's mocks standing in for the host.
#include "port_filter.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <ctsync/sdk/testing/mocks.hpp>

namespace {

using namespace ctsync::sdk;
using ::testing::HasSubstr;
using ::testing::NiceMock;

FlowState flow(std::uint8_t protocol, std::uint16_t dport) {
    FlowState f;
    f.original.family = Family::kIpv4;
    f.original.protocol = protocol;
    f.original.dst_port = dport;
    return f;
}

TEST(PortFilter, DropsListedPortsOfListedProtocolsOnly) {
    boost::asio::io_context io;
    ctsync::testkit::MockLogger logger;
    ctsync::testkit::FakeMetrics metrics;
    EXPECT_CALL(logger, log(LogLevel::kInfo, HasSubstr("event=filter_ready ports=2 protocols=1")));
    PluginConfig config(nlohmann::json{{"ports", {22, 179}}, {"protocols", {"tcp"}}, {"log_drops", false}});
    filter_port::PortFilter filter(PluginContext{io.get_executor(), &logger, &metrics, 1, "f"}, config);
    EXPECT_EQ(filter.evaluate(flow(l4::kTcp, 22)), Verdict::kDrop);
    EXPECT_EQ(filter.evaluate(flow(l4::kTcp, 179)), Verdict::kDrop);
    EXPECT_EQ(filter.evaluate(flow(l4::kTcp, 80)), Verdict::kAccept);
    EXPECT_EQ(filter.evaluate(flow(l4::kUdp, 22)), Verdict::kAccept);
    EXPECT_EQ(metrics.counter_value("dropped"), 2);
    EXPECT_EQ(metrics.counter_value("accepted"), 2);
}

TEST(PortFilter, ValidateNamesEachBadElement) {
    ConfigErrors errors;
    filter_port::validate(PluginConfig(nlohmann::json{
                              {"ports", {22, 0, "x"}}, {"protocols", {"tcp", "icmp"}}, {"log_drops", false}}),
                          errors);
    ASSERT_EQ(errors.size(), 3u);
    EXPECT_EQ(errors[0].path, ".ports[1]");
    EXPECT_EQ(errors[1].path, ".ports[2]");
    EXPECT_EQ(errors[2].path, ".protocols[1]");
    EXPECT_EQ(errors[2].message, "'icmp' is not one of tcp, udp, sctp, udplite, dccp");
}

}  // namespace
