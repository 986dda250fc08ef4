// SPDX-License-Identifier: GPL-2.0-or-later
// ha-keepalived's configuration as ctsyncd sees it: the built plugin file loaded by the host loader, the
// operator's JSON validated against its key table and its cross-key check, ctsyncd --check-config naming the
// slot, the README's key and metrics tables equal to the code's, the SDK's conformance suite on the same
// file, and the shared object driven through sdk::HaAdapter.
#include <boost/asio/io_context.hpp>
#include <ctsync/sdk/testing/conformance.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/config/key_table.hpp"
#include "core/loader/plugin_loader.hpp"
#include "ha_test_util.hpp"

namespace ha_keepalived::test {
namespace {

using ctsync::core::ConfigIssues;
using nlohmann::json;

const json kSample = {{"fifo", "/run/ctsync/keepalived.fifo"}, {"instances", {"VI_1"}}};

const bool kConformanceRegistered = [] {
    ctsync::testkit::register_conformance_tests({
        .plugin_file = CTSYNC_HA_KEEPALIVED_PLUGIN,
        .plugin_name = "ha-keepalived",
        .category = ctsync::sdk::Category::kHa,
        .sample_config = kSample,
        .bad_configs = {json::object(),                                              // fifo required
                        {{"fifo", "/run/ctsync/keepalived.fifo"}},                   // no instance, no group
                        {{"fifo", "keepalived.fifo"}, {"instances", {"VI_1"}}},      // not absolute
                        {{"fifo", "/run/k.fifo"}, {"instances", {"VI_1", "VI_1"}}},  // listed twice
                        {{"fifo", "/run/k.fifo"}, {"groups", {""}}},
                        {{"fifo", "/run/k.fifo"}, {"instances", {"VI_1"}}, {"track_file", "/run/k.fifo"}},
                        {{"fifo", "/run/k.fifo"}, {"instances", {"VI_1"}}, {"hold_value", 0}},
                        {{"fifo", "/run/k.fifo"}, {"instances", {"VI_1"}}, {"hold_value", -300}},
                        {{"fifo", "/run/k.fifo"}, {"instances", {"VI_1"}}, {"reopen_ms", 10}},
                        {{"fifo", "/run/k.fifo"},
                         {"instances", {"VI_1"}},
                         {"track_file", "/run/ready"},
                         {"weight_by_sequence", true},
                         {"ready_value", 220}},
                        {{"fifo", "/run/k.fifo"}, {"instances", {"VI_1"}}, {"weight_by_sequence", true}},
                        {{"fifo", "/run/k.fifo"}, {"instance", {"VI_1"}}}},  // unknown key
    });
    return true;
}();

class HaKeepalivedConfig : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(kConformanceRegistered);
        auto result = loader_.load("ha-keepalived", ctsync::sdk::Category::kHa,
                                   std::filesystem::path(CTSYNC_HA_KEEPALIVED_PLUGIN));
        ASSERT_TRUE(result) << result.error;
        plugin_ = result.plugin;
    }

    // Exactly what ctsyncd does with the ha slot's "config": key table, then the plugin's own check.
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

TEST_F(HaKeepalivedConfig, MinimalConfigGetsTheDefaults) {
    json values;
    auto issues = validate(kSample, &values);
    EXPECT_TRUE(issues.empty()) << ::testing::PrintToString(issues);
    EXPECT_EQ(values["groups"], json::array());
    EXPECT_EQ(values["create_fifo"], true);
    EXPECT_EQ(values["reopen_ms"], 500);
    EXPECT_TRUE(values["track_file"].is_null());
    EXPECT_EQ(values["hold_value"], -253);
    EXPECT_EQ(values["ready_value"], 0);
    EXPECT_EQ(values["weight_by_sequence"], false);
    EXPECT_EQ(values["sequence_bonus_max"], 50);
    EXPECT_TRUE(validate({{"fifo", "/run/k.fifo"}, {"groups", {"G1"}}}).empty());
    EXPECT_TRUE(validate({{"fifo", "/run/k.fifo"},
                          {"instances", {"VI_LAN", "VI_WAN"}},
                          {"track_file", "/run/ctsync/ready"},
                          {"weight_by_sequence", true},
                          {"sequence_bonus_max", 253}})
                    .empty());
}

TEST_F(HaKeepalivedConfig, ProblemsAreNamedWithTheirPaths) {
    auto missing = validate(json::object());
    ASSERT_EQ(missing.size(), 1u) << ::testing::PrintToString(missing);
    EXPECT_EQ(missing[0].path, ".config.fifo");
    EXPECT_EQ(missing[0].message.rfind("missing required key (path: keepalived's notify FIFO", 0), 0u)
        << missing[0].message;
    EXPECT_EQ(
        validate({{"fifo", "/run/k.fifo"}}),
        (ConfigIssues{{".config.instances",
                       "no instance and no group: name at least one keepalived vrrp_instance here or one "
                       "vrrp_sync_group in groups; the role comes from their states"}}));
    EXPECT_EQ(validate({{"fifo", "/run/k.fifo"}, {"instances", {"VI_1"}}, {"groups", {"G1", "G1"}}}),
              (ConfigIssues{{".config.groups[1]", "'G1' is listed twice"}}));
    EXPECT_EQ(validate({{"fifo", "/run/k.fifo"}, {"instances", {"VI_1"}}, {"ready_value", -253}}),
              (ConfigIssues{{".config.hold_value",
                             "equals ready_value (-253): holding would not change the priority"}}));
    auto issues = validate({{"fifo", "/run/k.fifo"}, {"instances", {"VI_1"}}, {"hold_value", 300}});
    ASSERT_EQ(issues.size(), 1u);
    EXPECT_EQ(issues[0].path, ".config.hold_value");
    EXPECT_EQ(issues[0].message, "300 is out of range: integer in [-254, 254]");
}

// ctsyncd itself refuses such a config before anything starts, naming the slot.
TEST_F(HaKeepalivedConfig, CheckConfigNamesTheSlot) {
    ctsync::test::TempDir dir("ctsync-ha-config");
    ctsync::test::write_file(dir / "ctsyncd.json",
                             R"({"node": {"id": 1}, "ha": {"plugin": "ha-keepalived", )"
                             R"("config": {"fifo": "/run/k.fifo", "instances": ["VI_1", "VI_1"]}}})");
    auto result = ctsync::test::run({CTSYNC_CTSYNCD, "--check-config", (dir / "ctsyncd.json").string()},
                                    std::chrono::seconds(30));
    EXPECT_EQ(result.exit_code, 2) << result.out << result.err;
    EXPECT_NE((result.out + result.err).find(".ha.config.instances[1]: 'VI_1' is listed twice"),
              std::string::npos)
        << result.out << result.err;
}

std::string readme() {
    return ctsync::test::read_file(std::filesystem::path(CTSYNC_SOURCE_DIR) /
                                   "plugins/ha-keepalived/README.md");
}

// The README's key table is what `ctsyncd --describe ha-keepalived` prints, row for row.
TEST_F(HaKeepalivedConfig, ReadmeKeyTableMatchesTheCode) {
    const std::string text = readme();
    std::size_t rows = 0;
    for (const auto& key : plugin_->keys()) {
        std::string escaped;
        for (char c : ctsync::core::describe_type(key)) {
            escaped += c == '|' ? std::string("\\|") : std::string(1, c);
        }
        const std::string shown_default =
            key.required ? "(required)"
                         : (key.default_json ? "`" + std::string(key.default_json) + "`" : "(unset)");
        const std::string row = "| `" + std::string(key.name) + "` | " + escaped + " | " + shown_default +
                                " | " + key.description + " |";
        EXPECT_NE(text.find(row + "\n"), std::string::npos) << "README lacks the row\n" << row;
        ++rows;
    }
    const auto start = text.find("| Key | Accepts | Default | Description |");
    ASSERT_NE(start, std::string::npos);
    std::size_t table_rows = 0;
    std::size_t at = text.find('\n', start) + 1;
    at = text.find('\n', at) + 1;  // the |---| line
    while (at < text.size() && text[at] == '|') {
        ++table_rows;
        at = text.find('\n', at) + 1;
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

TEST(HaKeepalivedReadme, MetricsTableMatchesTheCode) {
    boost::asio::io_context io;
    ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
    ListingMetrics metrics;
    ctsync::sdk::PluginContext context{io.get_executor(), &logger, &metrics, 1, "ha"};
    AdapterOptions options;
    options.fifo = "/nonexistent/k.fifo";
    options.instances = {"VI_1"};
    KeepalivedAdapter adapter(context, options);
    ASSERT_FALSE(metrics.listed.empty());

    const std::string text = readme();
    const auto start = text.find("| name | kind | help |");
    ASSERT_NE(start, std::string::npos);
    std::map<std::string, std::string> documented;
    std::istringstream lines(text.substr(start));
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

// The shared object as ctsyncd uses it: loaded, validated, created by its factory, held only by its instance,
// driven through sdk::HaAdapter.
TEST_F(HaKeepalivedConfig, LoadedPluginReportsARole) {
    Harness h;
    ConfigIssues issues;
    const json values = ctsync::core::validate_against({{"fifo", h.fifo().string()},
                                                        {"groups", {"G1"}},
                                                        {"track_file", h.path("ready").string()},
                                                        {"reopen_ms", 50}},
                                                       plugin_->keys(), ".config", issues);
    ASSERT_TRUE(issues.empty()) << ::testing::PrintToString(issues);
    auto created = plugin_->descriptor->create(h.context(), ctsync::sdk::PluginConfig(values));
    ASSERT_TRUE(created.plugin) << created.error;
    ASSERT_EQ(created.plugin->category(), ctsync::sdk::Category::kHa);
    auto adapter =
        ctsync::core::hold_library<ctsync::sdk::HaAdapter>(std::move(created.plugin), plugin_->descriptor);
    plugin_ = nullptr;  // only the instance holds the library now
    std::string error;
    ASSERT_TRUE(adapter->start(h.sink, error)) << error;
    EXPECT_EQ(file_text(h.path("ready")), "-253\n");
    FifoWriter keepalived(h.fifo());
    keepalived.write("GROUP \"G1\" MASTER 0\n");
    ASSERT_TRUE(h.run_until([&] { return !h.roles.empty(); }));
    EXPECT_EQ(h.roles[0].first, Role::kPrimary);
    adapter->update_readiness(ctsync::sdk::SyncReadiness{true, 7});
    EXPECT_EQ(file_text(h.path("ready")), "0\n");
    adapter->stop();
    adapter->stop();
    EXPECT_EQ(file_text(h.path("ready")), "-253\n");
    adapter.reset();
}

}  // namespace
}  // namespace ha_keepalived::test
