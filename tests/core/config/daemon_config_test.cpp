// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/config/daemon_config.hpp"

#include <gtest/gtest.h>

namespace ctsync::core {
namespace {

namespace fs = std::filesystem;
const fs::path kGood = fs::path(CTSYNC_FIXTURE_DIR) / "good";

std::vector<std::string> formatted(const ConfigReport& report) {
    std::vector<std::string> out;
    for (const auto& issue : report.issues) {
        out.push_back(format_issue(issue));
    }
    for (const auto& error : report.plugin_errors) {
        out.push_back(error);
    }
    return out;
}

ConfigReport check(const std::string& text, std::optional<DaemonConfig>* out = nullptr) {
    ConfigReport report;
    auto config = parse_daemon_config(text, "test.json", report);
    if (config) {
        PluginLoader loader({kGood});
        resolve_plugins(*config, loader, report);
    }
    if (out != nullptr) {
        *out = std::move(config);
    }
    return report;
}

TEST(DaemonConfig, MinimalConfigGetsDefaults) {
    std::optional<DaemonConfig> config;
    auto report = check(R"({"node": {"id": 7}})", &config);
    ASSERT_TRUE(report.ok()) << ::testing::PrintToString(formatted(report));
    EXPECT_EQ(config->node_id, 7u);
    EXPECT_EQ(config->node_name, "node7");
    EXPECT_EQ(config->lock_file, kDefaultLockFile);
    EXPECT_EQ(config->control_socket, kDefaultControlSocket);
    EXPECT_EQ(config->log_level, "info");
    EXPECT_FALSE(config->log_file.has_value());
    EXPECT_TRUE(config->slots.empty());
    EXPECT_EQ(report.exit_code(), 0);
}

TEST(DaemonConfig, SlotsAreLoadedTypedAndDefaulted) {
    std::optional<DaemonConfig> config;
    auto report = check(R"({"node": {"id": 1, "name": "fw1"},
        "filters": [{"plugin": "filter-fixture", "config": {"label": "x", "max_port": 1024}}],
        "transports": [{"plugin": "transport-fixture", "name": "link-a"}],
        "security": {"keys": [{"id": 1, "file": "/etc/ctsync/sync.key"}]}})",
                        &config);
    ASSERT_TRUE(report.ok()) << ::testing::PrintToString(formatted(report));
    ASSERT_EQ(config->slots.size(), 2u);
    const auto& filter = config->slots[0];
    EXPECT_EQ(filter.path, ".filters[0]");
    EXPECT_EQ(filter.instance, "filter-fixture");
    EXPECT_EQ(filter.config.get_int("max_port"), 1024);
    EXPECT_EQ(filter.config.get_int("min_port"), 1);
    EXPECT_EQ(filter.config.get_string("mode"), "fast");
    EXPECT_FALSE(filter.config.has("state_file"));
    EXPECT_EQ(config->slots[1].instance, "link-a");
    EXPECT_EQ(config->slots[1].category, sdk::Category::kTransport);
}

TEST(DaemonConfig, ReportsCoreAndPluginProblemsTogether) {
    auto report = check(R"({
        "node": {"id": "1", "nmae": "fw1"},
        "daemon": {"lock_file": "run/x.lock", "control_socket": "/run/x.sock", "log": {"level": "chatty"}},
        "filters": [
            {"plugin": "filter-fixture", "config": {"min_port": 2000, "max_port": 1000, "mode": "slow", "bogus": 1}},
            {"plugin": "filter-absent"},
            {"plugin": "transport-fixture"},
            {"config": {}}
        ],
        "transports": {"plugin": "transport-fixture"},
        "extra": true})");
    std::vector<std::string> expected = {
        ".extra: unknown key",
        ".transports: expected array, found object {\"plugin\":\"transport-fixture\"}",
        ".node.nmae: unknown key (did you mean 'name'?)",
        ".node.id: expected integer, found string \"1\"",
        ".daemon.lock_file: 'run/x.lock' is not an absolute path",
        ".daemon.log.level: 'chatty' is not one of trace|debug|info|warn|error|critical",
        ".filters[3].plugin: missing required key (string: Plugin id: the folder name under plugins/ "
        "(\"transport-mcast\").)",
        ".filters[0].config.bogus: unknown key",
        ".filters[0].config.label: missing required key (string: A required label.)",
        ".filters[0].config.mode: 'slow' is not one of fast|safe",
    };
    auto lines = formatted(report);
    ASSERT_GE(lines.size(), expected.size() + 2) << ::testing::PrintToString(lines);
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(lines[i], expected[i]);
    }
    // Plugin refusals come last, each naming its slot.
    EXPECT_EQ(lines[expected.size()].rfind(".filters[1]: plugin 'filter-absent': file not found", 0), 0u)
        << lines[expected.size()];
    EXPECT_EQ(lines[expected.size() + 1].rfind(".filters[2]: plugin file '", 0), 0u);
    EXPECT_NE(
        lines[expected.size() + 1].find("wrong category for this slot: expected filter, found transport"),
        std::string::npos);
    EXPECT_EQ(report.exit_code(), 2);
}

TEST(DaemonConfig, PluginValidateHookRunsAfterTypesAndIsPrefixed) {
    auto report = check(R"({"node": {"id": 1},
        "filters": [{"plugin": "filter-fixture", "config": {"label": "x", "min_port": 2000, "max_port": 1000}}]})");
    EXPECT_EQ(formatted(report),
              std::vector<std::string>{".filters[0].config.min_port: must not exceed .max_port"});
}

TEST(DaemonConfig, PluginRefusalAloneIsExitCodeThree) {
    auto report = check(R"({"node": {"id": 1}, "ha": {"plugin": "ha-absent"}})");
    EXPECT_TRUE(report.issues.empty());
    ASSERT_EQ(report.plugin_errors.size(), 1u);
    EXPECT_EQ(report.exit_code(), 3);
}

TEST(DaemonConfig, InstanceNamesMustBeValidAndUnique) {
    auto report = check(R"({"node": {"id": 1},
        "filters": [{"plugin": "filter-fixture", "name": "Bad Name", "config": {"label": "x"}},
                    {"plugin": "filter-fixture", "name": "a", "config": {"label": "x"}}],
        "transports": [{"plugin": "transport-fixture", "name": "a"}],
        "security": {"keys": [{"id": 1, "file": "/etc/ctsync/sync.key"}]}})");
    EXPECT_EQ(
        formatted(report),
        (std::vector<std::string>{
            ".filters[0].name: 'Bad Name' is not a valid instance name: use 1-64 of [a-z0-9_-]",
            ".transports[0]: instance name 'a' is already used by .filters[1]; give one of them a distinct "
            "\"name\""}));
}

TEST(DaemonConfig, CoreNamesAreReservedForInstances) {
    auto report = check(R"({"node": {"id": 1},
        "filters": [{"plugin": "filter-fixture", "name": "control", "config": {"label": "x"}}]})");
    EXPECT_EQ(formatted(report),
              std::vector<std::string>{".filters[0].name: 'control' is reserved for the core; choose another "
                                       "instance name"});
}

TEST(DaemonConfig, SameProtoPluginTwiceIsRefused) {
    auto report = check(R"({"node": {"id": 1},
        "protos": [{"plugin": "proto-fixture", "config": {"protocols": [6]}},
                   {"plugin": "proto-fixture", "name": "again", "config": {"protocols": [17]}}]})");
    EXPECT_EQ(formatted(report),
              std::vector<std::string>{".protos[1].plugin: proto plugin 'proto-fixture' is listed twice"});
}

// Found by the config fuzzer: nlohmann reports a number too large for a double as out_of_range, not
// parse_error; it ended ctsyncd with an uncaught exception.
TEST(DaemonConfig, ANumberTooLargeIsAConfigErrorNotACrash) {
    auto report = check("{\"node\": {\"id\": 1E999999}}");
    ASSERT_EQ(report.issues.size(), 1u);
    EXPECT_EQ(report.issues[0].path, ".");
    EXPECT_NE(report.issues[0].message.find("test.json is not valid JSON: number overflow"),
              std::string::npos)
        << report.issues[0].message;
    EXPECT_EQ(report.exit_code(), 2);
}

TEST(DaemonConfig, SyntaxErrorNamesLineAndColumn) {
    auto report = check("{\"node\": {\"id\": 1,}\n}");
    ASSERT_EQ(report.issues.size(), 1u);
    EXPECT_EQ(report.issues[0].path, ".");
    EXPECT_NE(report.issues[0].message.find("test.json is not valid JSON: parse error at line 1, column 19"),
              std::string::npos)
        << report.issues[0].message;
    EXPECT_EQ(report.exit_code(), 2);
}

TEST(DaemonConfig, LongSocketPathIsRefused) {
    auto report =
        check(R"({"node": {"id": 1}, "daemon": {"control_socket": "/)" + std::string(120, 'x') + "\"}}");
    ASSERT_EQ(report.issues.size(), 1u);
    EXPECT_EQ(report.issues[0].message, "path is 121 bytes long; a unix socket path holds at most 107");
}

TEST(DaemonConfig, UnreadableFileIsAnIssue) {
    ConfigReport report;
    auto config = read_daemon_config("/nonexistent/ctsyncd.json", report);
    EXPECT_FALSE(config);
    ASSERT_EQ(report.issues.size(), 1u);
    EXPECT_EQ(format_issue(report.issues[0]),
              ".: cannot read config file '/nonexistent/ctsyncd.json': No such file or directory");
}

TEST(DaemonConfig, ReplicationAndSecurityAreCheckedTogether) {
    ConfigReport report;
    auto config = parse_daemon_config(R"({"node": {"id": 1},
        "transports": [{"plugin": "transport-fixture"}],
        "replication": {"mode": "sometimes", "alive_interval_ms": 500, "peer_timeout_ms": 600},
        "security": {"keys": [{"id": 1, "file": "/k1"}, {"id": 1, "file": "/k2"}, {"id": 300, "file": "/k3"}],
                     "send_key_id": 9}})",
                                      "test", report);
    ASSERT_TRUE(config);
    const auto messages = formatted(report);
    auto has = [&](const std::string& needle) {
        return std::any_of(messages.begin(), messages.end(),
                           [&](const std::string& m) { return m.find(needle) != std::string::npos; });
    };
    EXPECT_TRUE(has(".replication.mode")) << testing::PrintToString(messages);
    EXPECT_TRUE(has(".replication.peer_timeout_ms: must exceed twice alive_interval_ms (500 ms)"));
    EXPECT_TRUE(has(".security.keys[1].id: key id 1 is given twice"));
    EXPECT_TRUE(has(".security.keys[2].id"));
    EXPECT_TRUE(has(".security.send_key_id: key id 9 is not among .security.keys"));
    ConfigReport missing;
    parse_daemon_config(R"({"node": {"id": 1}, "transports": [{"plugin": "transport-fixture"}]})", "test",
                        missing);
    EXPECT_EQ(formatted(missing),
              std::vector<std::string>{".security.keys: transports are configured, so at least "
                                       "one key is required: every datagram is authenticated "
                                       "(see docs/CONFIG.md, security)"});
}

TEST(DaemonConfig, FailoverSectionDefaultsToWarmStandbyAndIsChecked) {
    std::optional<DaemonConfig> config;
    auto report = check(R"({"node": {"id": 1}})", &config);
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(config->failover.warm_standby);
    EXPECT_TRUE(config->failover.flush_unknown);
    EXPECT_EQ(config->failover.standby_batch, 2000u);
    report = check(R"({"node": {"id": 1}, "failover": {"standby": "cold", "flush_unknown": false,
                        "standby_batch": 10}})",
                   &config);
    ASSERT_TRUE(report.ok()) << ::testing::PrintToString(formatted(report));
    EXPECT_FALSE(config->failover.warm_standby);
    EXPECT_FALSE(config->failover.flush_unknown);
    EXPECT_EQ(config->failover.standby_batch, 10u);
    report = check(
        R"({"node": {"id": 1}, "failover": {"standby": "lukewarm", "standby_batch": 0, "flush": true}})");
    const auto messages = formatted(report);
    ASSERT_EQ(messages.size(), 3u) << ::testing::PrintToString(messages);
    EXPECT_EQ(report.exit_code(), 2);
    auto has = [&](const std::string& needle) {
        return std::any_of(messages.begin(), messages.end(),
                           [&](const std::string& m) { return m.find(needle) != std::string::npos; });
    };
    EXPECT_TRUE(has(".failover.standby")) << ::testing::PrintToString(messages);
    EXPECT_TRUE(has(".failover.standby_batch"));
    EXPECT_TRUE(has(".failover.flush"));
}

}  // namespace
}  // namespace ctsync::core
