// SPDX-License-Identifier: GPL-2.0-or-later
// The SDK's mocks implement every interface and can drive a plugin; the fixture filter is driven here
// through its public descriptor exactly as the host would.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <ctsync/sdk/testing/mocks.hpp>

#include "core/loader/plugin_loader.hpp"

namespace ctsync {
namespace {

using ::testing::HasSubstr;
using ::testing::NiceMock;

TEST(SdkMocks, EveryInterfaceHasAMock) {
    NiceMock<testkit::MockSource> source;
    NiceMock<testkit::MockProtoHandler> proto;
    NiceMock<testkit::MockFilter> filter;
    NiceMock<testkit::MockTransport> transport;
    NiceMock<testkit::MockHaAdapter> ha;
    const sdk::Plugin* plugins[] = {&source, &proto, &filter, &transport, &ha};
    const sdk::Category expected[] = {sdk::Category::kSource, sdk::Category::kProto, sdk::Category::kFilter,
                                      sdk::Category::kTransport, sdk::Category::kHa};
    for (std::size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(plugins[i]->category(), expected[i]);
    }
}

TEST(SdkMocks, DriveTheFixtureFilterThroughItsDescriptor) {
    core::PluginLoader loader({std::filesystem::path(CTSYNC_FIXTURE_DIR) / "good"});
    auto loaded = loader.load("filter-fixture", sdk::Category::kFilter);
    ASSERT_TRUE(loaded) << loaded.error;
    boost::asio::io_context io;
    testkit::MockLogger logger;
    testkit::FakeMetrics metrics;
    EXPECT_CALL(logger, log(sdk::LogLevel::kInfo, HasSubstr("event=fixture_created")));
    sdk::PluginContext context{io.get_executor(), &logger, &metrics, 3, "f"};
    nlohmann::json values = {{"enabled", true},
                             {"min_port", 20},
                             {"max_port", 21},
                             {"ratio", 0.5},
                             {"label", "x"},
                             {"mode", "fast"},
                             {"state_file", nullptr},
                             {"peer", nullptr},
                             {"tags", nlohmann::json::array()},
                             {"extra", nlohmann::json::object()},
                             {"items", nlohmann::json::array()}};
    auto created = loaded.plugin->descriptor->create(context, sdk::PluginConfig(values));
    ASSERT_TRUE(created.plugin) << created.error;
    auto filter = core::hold_library<sdk::Filter>(std::move(created.plugin), loaded.plugin->descriptor);
    sdk::FlowState ftp;
    ftp.original.dst_port = 21;
    sdk::FlowState web;
    web.original.dst_port = 443;
    EXPECT_EQ(filter->evaluate(ftp), sdk::Verdict::kDrop);
    EXPECT_EQ(filter->evaluate(web), sdk::Verdict::kAccept);
    EXPECT_EQ(metrics.counter_value("evaluated"), 2);
}

}  // namespace
}  // namespace ctsync
