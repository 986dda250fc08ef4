// SPDX-License-Identifier: GPL-2.0-or-later
// ctsyncd's one-shot modes, run as the real binary: --check-config, --describe, --list-plugins.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "core/config/key_table.hpp"
#include "core/loader/plugin_loader.hpp"
#include "tests/core/daemon/daemon_test_util.hpp"

namespace ctsync::test {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}

TEST(CtsyncdCheckConfig, ValidConfigExitsZeroAndSummarises) {
    TempDir dir;
    auto config = instance_config(dir.path(), 4);
    config["filters"] = {{{"plugin", "filter-fixture"}, {"config", {{"label", "x"}}}}};
    auto file = write_config(dir.path(), config);
    auto result = run({kCtsyncd, "--check-config", file.string()});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(result.out, file.string() +
                              ": configuration is valid; node 4 (fw4); 1 plugin instance: "
                              "filter-fixture (filter-fixture 1.2.3)\n");
}

TEST(CtsyncdCheckConfig, BadConfigExitsTwoWithEveryErrorAndItsPath) {
    TempDir dir;
    auto config = instance_config(dir.path(), 1);
    config["node"]["id"] = -3;
    config["daemon"]["log"]["level"] = "loud";
    config["daemon"]["sokcet"] = "/x";
    config["filters"] = {{{"plugin", "filter-fixture"}, {"config", {{"label", 5}, {"ratio", 3}}}},
                         {{"plugin", "filter-absent"}}};
    auto file = write_config(dir.path(), config);
    auto result = run({kCtsyncd, "--check-config", file.string()});
    EXPECT_EQ(result.exit_code, 2);
    EXPECT_EQ(result.out, "");
    auto lines = lines_of(result.err);
    ASSERT_EQ(lines.size(), 7u) << result.err;
    EXPECT_EQ(lines[0], file.string() + ": 6 problems:");
    EXPECT_EQ(lines[1], "  .node.id: -3 is out of range: integer in [1, 4294967295]");
    EXPECT_EQ(lines[2], "  .daemon.sokcet: unknown key");
    EXPECT_EQ(lines[3], "  .daemon.log.level: 'loud' is not one of trace|debug|info|warn|error|critical");
    EXPECT_EQ(lines[4], "  .filters[0].config.ratio: 3 is out of range: number in [0, 1]");
    EXPECT_EQ(lines[5], "  .filters[0].config.label: expected string, found number 5");
    EXPECT_THAT(lines[6], HasSubstr("  .filters[1]: plugin 'filter-absent': file not found: expected "
                                    "ctsync-filter-absent.so in one of ["));
}

TEST(CtsyncdCheckConfig, RefusedPluginAloneExitsThree) {
    TempDir dir;
    auto config = instance_config(dir.path(), 1);
    config["daemon"]["plugin_dirs"] = {(kFixtures / "faults").string()};
    config["filters"] = {{{"plugin", "filter-abimajor"}}};
    auto file = write_config(dir.path(), config);
    auto result = run({kCtsyncd, "--check-config", file.string()});
    EXPECT_EQ(result.exit_code, 3);
    EXPECT_THAT(result.err, HasSubstr(".filters[0]: plugin file '" +
                                      (kFixtures / "faults" / "ctsync-filter-abimajor.so").string() +
                                      "': ABI major mismatch: expected 1, found 2"));
}

TEST(CtsyncdCheckConfig, DaemonRefusesToStartOnBadConfig) {
    TempDir dir;
    auto config = instance_config(dir.path(), 1);
    config["node"].erase("id");
    auto file = write_config(dir.path(), config);
    auto result = run({kCtsyncd, "-C", file.string()}, std::chrono::seconds(10));
    EXPECT_EQ(result.exit_code, 2);
    EXPECT_THAT(result.err, HasSubstr(".node.id: missing required key"));
    EXPECT_FALSE(std::filesystem::exists(dir / "ctsyncd.sock"));
}

TEST(CtsyncdCheckConfig, NotJsonExitsTwo) {
    TempDir dir;
    write_file(dir / "bad.json", "node: {id: 1}\n");
    auto result = run({kCtsyncd, "--check-config", (dir / "bad.json").string()});
    EXPECT_EQ(result.exit_code, 2);
    EXPECT_THAT(result.err, HasSubstr("is not valid JSON: parse error at line 1, column 2"));
}

TEST(CtsyncdDescribe, OutputMatchesTheKeyTable) {
    auto result =
        run({kCtsyncd, "--describe", "filter-fixture", "--plugin-dir", (kFixtures / "good").string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    core::PluginLoader loader({kFixtures / "good"});
    auto loaded = loader.load("filter-fixture", sdk::Category::kFilter);
    ASSERT_TRUE(loaded) << loaded.error;
    const auto& d = *loaded.plugin->descriptor;
    auto lines = lines_of(result.out);
    EXPECT_EQ(lines[0], "plugin:   filter-fixture");
    EXPECT_EQ(lines[1], "category: filter");
    EXPECT_EQ(lines[2], "version:  1.2.3");
    EXPECT_EQ(lines[3], "abi:      1.3");
    EXPECT_EQ(lines[5], std::string("summary:  ") + d.summary);
    // After the header row, one row per key, in table order, each holding its name, type, default and
    // description in columns.
    auto header =
        std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.find("KEY") == 2; });
    ASSERT_NE(header, lines.end());
    std::size_t type_col = header->find("TYPE");
    std::size_t default_col = header->find("DEFAULT");
    std::size_t description_col = header->find("DESCRIPTION");
    auto keys = loaded.plugin->keys();
    ASSERT_EQ(static_cast<std::size_t>(lines.end() - header - 1), keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        const std::string& row = *(header + 1 + static_cast<std::ptrdiff_t>(i));
        auto field = [&](std::size_t from, std::size_t to) {
            std::string s = row.substr(from, to == std::string::npos ? std::string::npos : to - from);
            while (!s.empty() && s.back() == ' ') {
                s.pop_back();
            }
            return s;
        };
        EXPECT_EQ(field(2, type_col), keys[i].name);
        EXPECT_EQ(field(type_col, default_col), core::describe_type(keys[i]));
        std::string expected_default =
            keys[i].required ? "(required)" : (keys[i].default_json ? keys[i].default_json : "(unset)");
        EXPECT_EQ(field(default_col, description_col), expected_default);
        EXPECT_EQ(field(description_col, std::string::npos), keys[i].description);
    }
}

TEST(CtsyncdDescribe, JsonOutputMatchesTheKeyTable) {
    auto result = run(
        {kCtsyncd, "--describe", "filter-fixture", "--json", "--plugin-dir", (kFixtures / "good").string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    auto out = nlohmann::json::parse(result.out);
    core::PluginLoader loader({kFixtures / "good"});
    auto loaded = loader.load("filter-fixture", sdk::Category::kFilter);
    auto keys = loaded.plugin->keys();
    ASSERT_EQ(out["keys"].size(), keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        EXPECT_EQ(out["keys"][i]["name"], keys[i].name);
        EXPECT_EQ(out["keys"][i]["type"], sdk::to_string(keys[i].type));
        EXPECT_EQ(out["keys"][i]["required"], keys[i].required);
        EXPECT_EQ(out["keys"][i]["description"], keys[i].description);
    }
}

TEST(CtsyncdDescribe, UnknownPluginExitsThree) {
    auto result = run({kCtsyncd, "--describe", "transport-nowhere"});
    EXPECT_EQ(result.exit_code, 3);
    EXPECT_THAT(result.err, HasSubstr("plugin 'transport-nowhere': file not found"));
}

TEST(CtsyncdDescribe, CoreSectionsAreDescribed) {
    auto result = run({kCtsyncd, "--describe", "core"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_THAT(result.out, HasSubstr("\n.daemon\n"));
    EXPECT_THAT(result.out, HasSubstr("control_socket"));
    EXPECT_THAT(result.out, HasSubstr("integer in [1, 4294967295]"));
}

TEST(CtsyncdListPlugins, ShowsUsableRefusedAndShadowedPlugins) {
    auto result =
        run({kCtsyncd, "--list-plugins", "--plugin-dir", (kFixtures / "dup").string(), "--plugin-dir",
             (kFixtures / "good").string(), "--plugin-dir", (kFixtures / "faults").string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_THAT(result.out, HasSubstr("filter-fixture           filter     1.2.3"));
    EXPECT_THAT(result.out, HasSubstr("ctsync-filter-fixture.so shadowed by " +
                                      (kFixtures / "dup" / "ctsync-filter-fixture.so").string()));
    EXPECT_THAT(result.out, HasSubstr("ctsync-filter-abimajor.so REFUSED: plugin file"));
    EXPECT_THAT(result.out, HasSubstr("transport-fixture"));
}

TEST(CtsyncdListPlugins, EnvironmentPathComesFirst) {
    auto result = run({kCtsyncd, "--list-plugins", "--json"}, std::chrono::seconds(30),
                      {{"CTSYNC_PLUGIN_PATH", (kFixtures / "good").string() + ":/nonexistent"}});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    auto out = nlohmann::json::parse(result.out);
    EXPECT_EQ(out["search_path"][0], (kFixtures / "good").string());
    EXPECT_EQ(out["search_path"][1], "/nonexistent");
    // ctsyncd runs from the build tree: the build tree's plugin directory is searched next.
    EXPECT_EQ(out["search_path"][2], std::string(CTSYNC_BINARY_DIR) + "/lib/ctsync/plugins");
}

TEST(CtsyncdCli, UsageErrorsExitTwo) {
    auto result = run({kCtsyncd, "--no-such-flag"});
    EXPECT_EQ(result.exit_code, 2);
    auto both = run({kCtsyncd, "--list-plugins", "--describe", "core"});
    EXPECT_EQ(both.exit_code, 2);
    EXPECT_THAT(both.err, HasSubstr("excludes"));
}

}  // namespace
}  // namespace ctsync::test
