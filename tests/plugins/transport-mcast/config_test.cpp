// SPDX-License-Identifier: GPL-2.0-or-later
// transport-mcast's configuration as ctsyncd sees it: the built plugin file loaded by the host loader, the
// operator's JSON validated against its key table and its cross-key check, the README's key table equal to
// the code's; and the SDK's conformance suite on the same file.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <ctsync/sdk/testing/conformance.hpp>
#include <ctsync/sdk/testing/mocks.hpp>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/config/key_table.hpp"
#include "core/loader/plugin_loader.hpp"
#include "mcast_transport.hpp"
#include "tests/support/process.hpp"

namespace mcast::test {
namespace {

using ctsync::core::ConfigIssue;
using ctsync::core::ConfigIssues;
using nlohmann::json;

const bool kConformanceRegistered = [] {
    ctsync::testkit::register_conformance_tests({
        .plugin_file = CTSYNC_TRANSPORT_MCAST_PLUGIN,
        .plugin_name = "transport-mcast",
        .category = ctsync::sdk::Category::kTransport,
        .sample_config = {{"interface", "sync0"}, {"group", "239.255.37.81"}},
        .bad_configs = {json::object(),                                          // both keys are required
                        {{"interface", "sync0"}, {"group", "192.0.2.1"}},        // not multicast
                        {{"interface", "sync0"}, {"group", "ff01::1"}},          // interface-local
                        {{"interface", "sync0/x"}, {"group", "239.255.37.81"}},  // not a name
                        {{"interface", "sync0"}, {"group", "239.255.37.81"}, {"port", 0}},
                        {{"interface", "sync0"}, {"group", "239.255.37.81"}, {"max_datagram_bytes", 100}},
                        {{"interface", "sync0"}, {"group", "239.255.37.81"}, {"ttl", 1}}},  // unknown key
    });
    return true;
}();

class TransportMcastConfig : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(kConformanceRegistered);
        auto result = loader_.load("transport-mcast", ctsync::sdk::Category::kTransport,
                                   std::filesystem::path(CTSYNC_TRANSPORT_MCAST_PLUGIN));
        ASSERT_TRUE(result) << result.error;
        plugin_ = result.plugin;
    }

    // Exactly what ctsyncd does with a transport slot's "config": key table, then the plugin's own check.
    ConfigIssues validate(const json& config, json* values = nullptr) {
        ConfigIssues issues;
        json filled = ctsync::core::validate_against(config, plugin_->keys(), ".config", issues);
        if (issues.empty() && plugin_->descriptor->validate != nullptr) {
            ctsync::sdk::ConfigErrors errors;
            plugin_->descriptor->validate(ctsync::sdk::PluginConfig(filled), errors);
            for (auto& e : errors) {
                issues.push_back({".config" + e.path, e.message});
            }
        }
        if (values != nullptr) {
            *values = filled;
        }
        return issues;
    }

    ctsync::core::PluginLoader loader_{{}};
    std::shared_ptr<const ctsync::core::LoadedPlugin> plugin_;
};

TEST_F(TransportMcastConfig, MinimalConfigGetsTheDefaults) {
    json values;
    auto issues = validate({{"interface", "sync0"}, {"group", "239.255.37.81"}}, &values);
    EXPECT_TRUE(issues.empty()) << ::testing::PrintToString(issues);
    EXPECT_EQ(values["port"], 3781);
    EXPECT_EQ(values["send_buffer_bytes"], 4194304);
    EXPECT_EQ(values["receive_buffer_bytes"], 4194304);
    EXPECT_EQ(values["max_datagram_bytes"], 0);
    EXPECT_EQ(values["send_queue_datagrams"], 4096);
    EXPECT_TRUE(validate({{"interface", "sync0"}, {"group", "ff02::3781"}}).empty());
    EXPECT_TRUE(
        validate({{"interface", "sync0"}, {"group", "ff12::3781"}, {"max_datagram_bytes", 65527}}).empty());
    EXPECT_TRUE(validate({{"interface", "bond0.100"}, {"group", "224.0.0.200"}}).empty());
}

TEST_F(TransportMcastConfig, MissingKeysAreNamed) {
    auto issues = validate(json::object());
    ASSERT_EQ(issues.size(), 2u) << ::testing::PrintToString(issues);
    EXPECT_EQ(issues[0].path, ".config.interface");
    EXPECT_EQ(issues[1].path, ".config.group");
}

TEST_F(TransportMcastConfig, NonMulticastGroupIsRefusedWithTheRangesToUse) {
    const std::string hint =
        "use an IPv4 group in 224.0.0.0/4 (239.0.0.0/8 is for local use) "
        "or an IPv6 group in ff00::/8 (ff02::/16 and ff12::/16 are link-local)";
    EXPECT_EQ(validate({{"interface", "sync0"}, {"group", "192.0.2.1"}}),
              (ConfigIssues{{".config.group", "'192.0.2.1' is not a multicast address: " + hint}}));
    EXPECT_EQ(validate({{"interface", "sync0"}, {"group", "fd00::1"}}),
              (ConfigIssues{{".config.group", "'fd00::1' is not a multicast address: " + hint}}));
    EXPECT_EQ(
        validate({{"interface", "sync0"}, {"group", "ff01::1"}}),
        (ConfigIssues{{".config.group",
                       "'ff01::1' has interface-local scope: its datagrams never leave this node; use a "
                       "link-scope group (ff02::/16 or ff12::/16) or a wider one"}}));
    // Not an address at all: the key table's own check.
    auto issues = validate({{"interface", "sync0"}, {"group", "sync-group"}});
    ASSERT_EQ(issues.size(), 1u);
    EXPECT_EQ(issues[0].path, ".config.group");
}

TEST_F(TransportMcastConfig, BadInterfaceNamesAndSizesAreRefused) {
    EXPECT_EQ(
        validate({{"interface", "a-very-long-name0"}, {"group", "239.255.37.81"}}),
        (ConfigIssues{{".config.interface",
                       "'a-very-long-name0' has 17 characters; Linux interface names have at most 15"}}));
    EXPECT_EQ(validate({{"interface", "eth 1"}, {"group", "239.255.37.81"}}),
              (ConfigIssues{{".config.interface",
                             "'eth 1' is not an interface name: no '/', ':' or white space allowed"}}));
    EXPECT_EQ(validate({{"interface", "sync0"}, {"group", "239.255.37.81"}, {"max_datagram_bytes", 100}}),
              (ConfigIssues{{".config.max_datagram_bytes",
                             "100 is too small: 0 (derive from the MTU) or at least 512"}}));
    EXPECT_EQ(validate({{"interface", "sync0"}, {"group", "239.255.37.81"}, {"max_datagram_bytes", 65520}}),
              (ConfigIssues{{".config.max_datagram_bytes",
                             "65520 is more than a UDP datagram over IPv4 holds (65507)"}}));
    EXPECT_EQ(
        validate({{"interface", "sync0"}, {"group", "239.255.37.81"}, {"send_queue_datagrams", 0}}).size(),
        1u);
}

// ctsyncd itself refuses such a config before anything starts, naming the slot.
TEST_F(TransportMcastConfig, CheckConfigNamesTheSlotOfABadGroup) {
    ctsync::test::TempDir dir("ctsync-mcast");
    ctsync::test::write_file(dir / "ctsyncd.json",
                             R"({"node": {"id": 1}, "transports": [{"plugin": "transport-mcast", )"
                             R"("config": {"interface": "sync0", "group": "192.0.2.1"}}]})");
    auto result = ctsync::test::run({CTSYNC_CTSYNCD, "--check-config", (dir / "ctsyncd.json").string()},
                                    std::chrono::seconds(30));
    EXPECT_EQ(result.exit_code, 2) << result.out << result.err;
    EXPECT_NE(
        (result.out + result.err).find(".transports[0].config.group: '192.0.2.1' is not a multicast address"),
        std::string::npos)
        << result.out << result.err;
}

// The README's key table is what `ctsyncd --describe transport-mcast` prints, row for row.
TEST_F(TransportMcastConfig, ReadmeKeyTableMatchesTheCode) {
    const std::string readme = ctsync::test::read_file(std::filesystem::path(CTSYNC_SOURCE_DIR) /
                                                       "plugins/transport-mcast/README.md");
    std::size_t rows = 0;
    for (const auto& key : plugin_->keys()) {
        std::string accepts = ctsync::core::describe_type(key);
        std::string escaped;
        for (char c : accepts) {
            escaped += c == '|' ? std::string("\\|") : std::string(1, c);
        }
        const std::string shown_default =
            key.required ? "(required)" : "`" + std::string(key.default_json ? key.default_json : "") + "`";
        const std::string row = "| `" + std::string(key.name) + "` | " + escaped + " | " + shown_default +
                                " | " + key.description + " |";
        EXPECT_NE(readme.find(row + "\n"), std::string::npos) << "README lacks the row\n" << row;
        ++rows;
    }
    // No row for a key the code does not have: count the table's rows.
    const auto start = readme.find("| Key | Accepts | Default | Description |");
    ASSERT_NE(start, std::string::npos);
    std::size_t table_rows = 0;
    std::size_t at = readme.find('\n', start) + 1;
    at = readme.find('\n', at) + 1;  // the |---| line
    while (at < readme.size() && readme[at] == '|') {
        ++table_rows;
        at = readme.find('\n', at) + 1;
    }
    EXPECT_EQ(table_rows, rows);
}

// Records every metric an instance registers, with its kind and help.
class ListingMetrics : public ctsync::sdk::Metrics {
  public:
    ctsync::sdk::Counter& counter(std::string_view name, std::string_view help) noexcept override {
        listed[std::string(name)] = "counter | " + std::string(help);
        return counters_[std::string(name)];
    }
    ctsync::sdk::Gauge& gauge(std::string_view name, std::string_view help) noexcept override {
        listed[std::string(name)] = "gauge | " + std::string(help);
        return gauges_[std::string(name)];
    }
    std::map<std::string, std::string> listed;

  private:
    std::map<std::string, ctsync::sdk::Counter> counters_;
    std::map<std::string, ctsync::sdk::Gauge> gauges_;
};

// The README's metrics table lists exactly what an instance registers: name, kind and help.
TEST(TransportMcastReadme, MetricsTableMatchesTheCode) {
    boost::asio::io_context io;
    ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
    ListingMetrics metrics;
    ctsync::sdk::PluginContext context{io.get_executor(), &logger, &metrics, 1, "sync"};
    McastTransport transport(context, TransportOptions{});
    ASSERT_FALSE(metrics.listed.empty());

    const std::string readme = ctsync::test::read_file(std::filesystem::path(CTSYNC_SOURCE_DIR) /
                                                       "plugins/transport-mcast/README.md");
    const auto start = readme.find("| name | kind | help |");
    ASSERT_NE(start, std::string::npos);
    std::map<std::string, std::string> documented;
    std::istringstream lines(readme.substr(start));
    std::string line;
    std::getline(lines, line);  // header
    std::getline(lines, line);  // |---|
    while (std::getline(lines, line) && line.rfind("| `", 0) == 0) {
        const auto name_end = line.find("` | ");
        ASSERT_NE(name_end, std::string::npos) << line;
        documented[line.substr(3, name_end - 3)] = line.substr(name_end + 4, line.size() - name_end - 6);
    }
    EXPECT_EQ(documented, metrics.listed);
}

TEST(TransportMcastGroup, ParsesFamiliesAndScopes) {
    Group group;
    std::string error;
    ASSERT_TRUE(parse_group("239.255.37.81", group, error)) << error;
    EXPECT_EQ(group.address.family, AF_INET);
    EXPECT_FALSE(group.link_scope);
    EXPECT_EQ(group.address.to_string(), "239.255.37.81");
    ASSERT_TRUE(parse_group("ff02::3781", group, error)) << error;
    EXPECT_EQ(group.address.family, AF_INET6);
    EXPECT_TRUE(group.link_scope);
    ASSERT_TRUE(parse_group("ff12::3781", group, error)) << error;
    EXPECT_TRUE(group.link_scope);
    ASSERT_TRUE(parse_group("ff05::3781", group, error)) << error;  // site scope: no interface needed
    EXPECT_FALSE(group.link_scope);
    EXPECT_FALSE(parse_group("223.255.255.255", group, error));
    EXPECT_FALSE(parse_group("240.0.0.1", group, error));
    EXPECT_FALSE(parse_group("ff00::1", group, error));
    EXPECT_EQ(error.rfind("'ff00::1' has a reserved multicast scope (0)", 0), 0u) << error;
}

}  // namespace
}  // namespace mcast::test
