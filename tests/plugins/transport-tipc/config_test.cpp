// SPDX-License-Identifier: GPL-2.0-or-later
// transport-tipc's configuration as ctsyncd sees it, on the host (no TIPC here): the built plugin file
// loaded by the host loader, the operator's JSON validated against its key table and its cross-key check,
// the README's tables equal to the code's, and the factory's refusal on a kernel without TIPC. The SDK's
// full conformance suite creates an instance, which needs TIPC: it runs inside the VM
// (delivery_vm_test.cpp); the checks of it that need no kernel run here too.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/dll/library_info.hpp>
#include <cerrno>
#include <ctsync/sdk/testing/mocks.hpp>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/config/key_table.hpp"
#include "core/loader/plugin_loader.hpp"
#include "tests/support/process.hpp"
#include "tipc_transport.hpp"

namespace tipc::test {
namespace {

using ctsync::core::ConfigIssues;
using nlohmann::json;

const std::string kNoTipc = "this kernel has no TIPC (socket: EAFNOSUPPORT); load the tipc module";

bool kernel_has_tipc() {
    const int fd = ::socket(AF_TIPC, SOCK_RDM, 0);
    if (fd >= 0) {
        ::close(fd);
        return true;
    }
    return false;
}

class TransportTipcConfig : public ::testing::Test {
  protected:
    void SetUp() override {
        auto result = loader_.load("transport-tipc", ctsync::sdk::Category::kTransport,
                                   std::filesystem::path(CTSYNC_TRANSPORT_TIPC_PLUGIN));
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

TEST_F(TransportTipcConfig, EmptyConfigGetsTheDefaults) {
    json values;
    auto issues = validate(json::object(), &values);
    EXPECT_TRUE(issues.empty()) << ::testing::PrintToString(issues);
    EXPECT_EQ(values["service_type"], 18061);
    EXPECT_EQ(values["scope"], "cluster");
    EXPECT_EQ(values["importance"], "high");
    EXPECT_EQ(values["max_datagram_bytes"], 65000);
    EXPECT_EQ(values["send_buffer_bytes"], 4194304);
    EXPECT_EQ(values["receive_buffer_bytes"], 4194304);
    EXPECT_EQ(values["send_queue_datagrams"], 4096);
    EXPECT_TRUE(validate({{"service_type", 64},
                          {"scope", "node"},
                          {"importance", "critical"},
                          {"max_datagram_bytes", 66000},
                          {"send_queue_datagrams", 1}})
                    .empty());
    EXPECT_TRUE(validate({{"service_type", 4294967295u}, {"importance", "low"}, {"max_datagram_bytes", 512}})
                    .empty());
}

TEST_F(TransportTipcConfig, ReservedServiceTypesAreRefused) {
    EXPECT_EQ(validate({{"service_type", 63}}),
              (ConfigIssues{{".config.service_type", "63 is out of range: integer in [64, 4294967295]"}}));
    EXPECT_EQ(validate({{"service_type", 0}}),
              (ConfigIssues{{".config.service_type", "0 is out of range: integer in [64, 4294967295]"}}));
    EXPECT_EQ(validate({{"service_type", 4294967296}}).size(), 1u);
    EXPECT_EQ(validate({{"service_type", "18061"}}).size(), 1u) << "a string is not an integer";
}

TEST_F(TransportTipcConfig, ScopeAndImportanceMustBeNamedValues) {
    EXPECT_EQ(validate({{"scope", "zone"}}),
              (ConfigIssues{{".config.scope", "'zone' is not one of cluster|node"}}));
    EXPECT_EQ(validate({{"importance", "urgent"}}),
              (ConfigIssues{{".config.importance", "'urgent' is not one of low|medium|high|critical"}}));
    EXPECT_EQ(validate({{"importance", 2}}).size(), 1u) << "the number of TIPC's constant is not accepted";
}

TEST_F(TransportTipcConfig, DatagramSizeStaysWithinWhatTipcCarries) {
    EXPECT_EQ(validate({{"max_datagram_bytes", 511}}),
              (ConfigIssues{{".config.max_datagram_bytes", "511 is out of range: integer in [512, 66000]"}}));
    EXPECT_EQ(
        validate({{"max_datagram_bytes", 66001}}),
        (ConfigIssues{{".config.max_datagram_bytes", "66001 is out of range: integer in [512, 66000]"}}));
    EXPECT_EQ(validate({{"send_queue_datagrams", 0}}).size(), 1u);
    EXPECT_EQ(validate({{"send_buffer_bytes", 16383}}).size(), 1u);
}

// TIPC computes a datagram socket's receive limit as (2 x buffer) << importance in 32 bits.
TEST_F(TransportTipcConfig, ReceiveBufferThatWouldWrapTipcsLimitIsRefused) {
    EXPECT_EQ(validate({{"receive_buffer_bytes", 536870912}}),
              (ConfigIssues{{".config.receive_buffer_bytes",
                             "536870912 is too large for importance high: TIPC limits the receive queue to "
                             "twice the buffer times 4 in 32 bits, which wraps above 536870911"}}));
    EXPECT_TRUE(validate({{"receive_buffer_bytes", 536870911}}).empty());
    EXPECT_EQ(validate({{"receive_buffer_bytes", 268435456}, {"importance", "critical"}}),
              (ConfigIssues{{".config.receive_buffer_bytes",
                             "268435456 is too large for importance critical: TIPC limits the receive queue "
                             "to twice the buffer times 8 in 32 bits, which wraps above 268435455"}}));
    EXPECT_TRUE(validate({{"receive_buffer_bytes", 1073741823}, {"importance", "medium"}}).empty());
    EXPECT_TRUE(validate({{"receive_buffer_bytes", 1073741823}, {"importance", "low"}}).empty());
    EXPECT_EQ(max_receive_buffer(Importance::kLow), 1073741823u);
    EXPECT_EQ(max_receive_buffer(Importance::kMedium), 1073741823u);
    EXPECT_EQ(max_receive_buffer(Importance::kHigh), 536870911u);
    EXPECT_EQ(max_receive_buffer(Importance::kCritical), 268435455u);
}

TEST_F(TransportTipcConfig, UnknownKeysAreRefused) {
    // Bearers are the operator's business (tipc bearer enable ...): there is no interface key.
    auto issues = validate({{"interface", "eth1"}});
    ASSERT_EQ(issues.size(), 1u) << ::testing::PrintToString(issues);
    EXPECT_EQ(issues[0].path, ".config.interface");
}

// ctsyncd itself refuses such a config before anything starts, naming the slot; no TIPC is needed for that.
TEST_F(TransportTipcConfig, CheckConfigNamesTheSlotOfABadKey) {
    ctsync::test::TempDir dir("ctsync-tipc");
    ctsync::test::write_file(dir / "ctsyncd.json",
                             R"({"node": {"id": 1}, "transports": [{"plugin": "transport-tipc", )"
                             R"("config": {"service_type": 63, "scope": "zone"}}]})");
    auto result = ctsync::test::run({CTSYNC_CTSYNCD, "--check-config", (dir / "ctsyncd.json").string()},
                                    std::chrono::seconds(30));
    EXPECT_EQ(result.exit_code, 2) << result.out << result.err;
    const auto all = result.out + result.err;
    EXPECT_NE(all.find(".transports[0].config.service_type: 63 is out of range: integer in [64, 4294967295]"),
              std::string::npos)
        << all;
    EXPECT_NE(all.find(".transports[0].config.scope: 'zone' is not one of cluster|node"), std::string::npos)
        << all;
}

// The parts of the SDK's conformance suite that need no TIPC kernel (the VM runs all of it).
TEST_F(TransportTipcConfig, LoadsWithOneAliasAndAWellFormedKeyTable) {
    EXPECT_STREQ(plugin_->descriptor->name, "transport-tipc");
    EXPECT_EQ(plugin_->descriptor->category, ctsync::sdk::Category::kTransport);
    ASSERT_NE(plugin_->descriptor->summary, nullptr);
    boost::dll::library_info info(CTSYNC_TRANSPORT_TIPC_PLUGIN);
    EXPECT_EQ(info.symbols("boostdll").size(), 1u);
    auto issues = ctsync::core::check_key_table(plugin_->keys());
    EXPECT_TRUE(issues.empty()) << ::testing::PrintToString(issues);
}

// On this kernel the factory refuses with the exact sentence ctsyncd prints; no object, no exception.
TEST_F(TransportTipcConfig, FactoryRefusesOnAKernelWithoutTipc) {
    if (kernel_has_tipc()) {
        GTEST_SKIP() << "this kernel has TIPC: the refusal is for kernels without it";
    }
    boost::asio::io_context io;
    ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
    ctsync::testkit::FakeMetrics metrics;
    ctsync::sdk::PluginContext context{io.get_executor(), &logger, &metrics, 1, "sync-tipc"};
    json values;
    ASSERT_TRUE(validate(json::object(), &values).empty());
    auto created = plugin_->descriptor->create(context, ctsync::sdk::PluginConfig(values));
    EXPECT_EQ(created.plugin, nullptr);
    EXPECT_EQ(created.error, kNoTipc);
    std::string error;
    EXPECT_FALSE(probe_kernel(error));
    EXPECT_EQ(error, kNoTipc);
}

TEST(TransportTipcNames, ScopesAndImportancesRoundTrip) {
    for (auto scope : {Scope::kCluster, Scope::kNode}) {
        Scope parsed{};
        ASSERT_TRUE(parse_scope(to_string(scope), parsed));
        EXPECT_EQ(parsed, scope);
    }
    for (auto importance :
         {Importance::kLow, Importance::kMedium, Importance::kHigh, Importance::kCritical}) {
        Importance parsed{};
        ASSERT_TRUE(parse_importance(to_string(importance), parsed));
        EXPECT_EQ(parsed, importance);
    }
    Scope scope{};
    Importance importance{};
    EXPECT_FALSE(parse_scope("zone", scope));
    EXPECT_FALSE(parse_importance("system", importance));
    // The values are the kernel's own (TIPC_*_IMPORTANCE), passed to setsockopt(TIPC_IMPORTANCE) as they are.
    EXPECT_EQ(static_cast<int>(Importance::kLow), TIPC_LOW_IMPORTANCE);
    EXPECT_EQ(static_cast<int>(Importance::kCritical), TIPC_CRITICAL_IMPORTANCE);
}

// A transport that was never started refuses to send and counts it; stop() is idempotent. No kernel needed.
TEST(TransportTipcUnstarted, RefusesToSendAndCountsIt) {
    boost::asio::io_context io;
    ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
    ctsync::testkit::FakeMetrics metrics;
    ctsync::sdk::PluginContext context{io.get_executor(), &logger, &metrics, 1, "sync-tipc"};
    TipcTransport transport(context, TransportOptions{});
    const std::byte byte{1};
    EXPECT_FALSE(transport.send(std::span<const std::byte>(&byte, 1)));
    EXPECT_EQ(metrics.counter_value("tx_dropped"), 1);
    EXPECT_EQ(transport.max_datagram_size(), 65000u);
    EXPECT_FALSE(transport.link_up());
    EXPECT_EQ(transport.topology_fd(), -1);
    transport.stop();
    transport.stop();
}

TEST(TransportTipcUnstarted, StartOnAKernelWithoutTipcSaysSo) {
    if (kernel_has_tipc()) {
        GTEST_SKIP() << "this kernel has TIPC";
    }
    boost::asio::io_context io;
    ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
    ctsync::testkit::FakeMetrics metrics;
    ::testing::NiceMock<ctsync::testkit::MockTransportSink> sink;
    ctsync::sdk::PluginContext context{io.get_executor(), &logger, &metrics, 1, "sync-tipc"};
    TipcTransport transport(context, TransportOptions{});
    std::string error;
    EXPECT_FALSE(transport.start(sink, error));
    EXPECT_EQ(error, kNoTipc);
    // Nothing was opened, nothing is reported, and the object is unusable rather than half started.
    EXPECT_EQ(transport.topology_fd(), -1);
    io.run_for(std::chrono::milliseconds(20));
}

// The README's key table is what `ctsyncd --describe transport-tipc` prints, row for row.
TEST_F(TransportTipcConfig, ReadmeKeyTableMatchesTheCode) {
    const std::string readme = ctsync::test::read_file(std::filesystem::path(CTSYNC_SOURCE_DIR) /
                                                       "plugins/transport-tipc/README.md");
    std::size_t rows = 0;
    for (const auto& key : plugin_->keys()) {
        std::string escaped;
        for (char c : ctsync::core::describe_type(key)) {
            escaped += c == '|' ? std::string("\\|") : std::string(1, c);
        }
        const std::string shown_default =
            key.required ? "(required)" : "`" + std::string(key.default_json ? key.default_json : "") + "`";
        const std::string row = "| `" + std::string(key.name) + "` | " + escaped + " | " + shown_default +
                                " | " + key.description + " |";
        EXPECT_NE(readme.find(row + "\n"), std::string::npos) << "README lacks the row\n" << row;
        ++rows;
    }
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
TEST(TransportTipcReadme, MetricsTableMatchesTheCode) {
    boost::asio::io_context io;
    ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
    ListingMetrics metrics;
    ctsync::sdk::PluginContext context{io.get_executor(), &logger, &metrics, 1, "sync-tipc"};
    TipcTransport transport(context, TransportOptions{});
    ASSERT_FALSE(metrics.listed.empty());

    const std::string readme = ctsync::test::read_file(std::filesystem::path(CTSYNC_SOURCE_DIR) /
                                                       "plugins/transport-tipc/README.md");
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

}  // namespace
}  // namespace tipc::test
