// SPDX-License-Identifier: GPL-2.0-or-later
#include "ctsync/sdk/testing/conformance.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/dll/library_info.hpp>

#include "core/config/key_table.hpp"
#include "core/loader/plugin_loader.hpp"
#include "ctsync/sdk/testing/mocks.hpp"

namespace ctsync::testkit {

// The test kit speaks the SDK's types unqualified; it lives apart from ctsync::sdk so that
// `using namespace ctsync::sdk` in a test does not make gtest's ::testing ambiguous.
using namespace ::ctsync::sdk;
namespace {

using ::testing::_;
using ::testing::NiceMock;

core::LoadResult load(const ConformanceSpec& spec) {
    core::PluginLoader loader({});
    return loader.load(spec.plugin_name, spec.category, std::filesystem::path(spec.plugin_file));
}

// Validation exactly as ctsyncd does it: key table, then the plugin's own hook.
core::ConfigIssues validate(const core::LoadedPlugin& plugin, const nlohmann::json& config,
                            PluginConfig* out) {
    core::ConfigIssues issues;
    nlohmann::json values = core::validate_against(config, plugin.keys(), ".config", issues);
    if (!issues.empty()) {
        return issues;
    }
    PluginConfig typed(std::move(values));
    if (plugin.descriptor->validate != nullptr) {
        ConfigErrors errors;
        plugin.descriptor->validate(typed, errors);
        for (auto& e : errors) {
            issues.push_back({".config" + e.path, e.message});
        }
    }
    if (out != nullptr) {
        *out = std::move(typed);
    }
    return issues;
}

std::string describe(const core::ConfigIssues& issues) {
    std::string out;
    for (const auto& issue : issues) {
        out += core::format_issue(issue) + "\n";
    }
    return out;
}

template <class Body>
void add_test(const ConformanceSpec& spec, const std::string& name, Body body) {
    std::string suite = "Conformance/" + spec.plugin_name;
    ::testing::RegisterTest(suite.c_str(), name.c_str(), nullptr, nullptr, __FILE__, __LINE__,
                            [spec, body]() -> ::testing::Test* {
                                class Case : public ::testing::Test {
                                  public:
                                    Case(ConformanceSpec s, Body b)
                                        : spec_(std::move(s)), body_(std::move(b)) {}
                                    void TestBody() override { body_(spec_); }

                                  private:
                                    ConformanceSpec spec_;
                                    Body body_;
                                };
                                return new Case(spec, body);
                            });
}

}  // namespace

void register_conformance_tests(const ConformanceSpec& spec) {
    add_test(spec, "LoadsThroughHostLoader", [](const ConformanceSpec& s) {
        auto result = load(s);
        ASSERT_TRUE(result) << result.error;
        EXPECT_STREQ(result.plugin->descriptor->name, s.plugin_name.c_str());
        EXPECT_EQ(result.plugin->descriptor->category, s.category);
        EXPECT_NE(result.plugin->descriptor->summary, nullptr)
            << "a one-line summary is shown by --list-plugins";
    });
    add_test(spec, "ExportsExactlyOneAlias", [](const ConformanceSpec& s) {
        boost::dll::library_info info(s.plugin_file);
        auto aliases = info.symbols("boostdll");
        ASSERT_EQ(aliases.size(), 1u) << "a plugin exports its descriptor and nothing else through Boost.DLL";
        EXPECT_EQ(aliases.front(), kDescriptorSymbol);
    });
    add_test(spec, "KeyTableIsWellFormed", [](const ConformanceSpec& s) {
        auto result = load(s);
        ASSERT_TRUE(result) << result.error;
        auto issues = core::check_key_table(result.plugin->keys());
        EXPECT_TRUE(issues.empty()) << describe(issues);
    });
    add_test(spec, "AcceptsSampleConfig", [](const ConformanceSpec& s) {
        auto result = load(s);
        ASSERT_TRUE(result) << result.error;
        auto issues = validate(*result.plugin, s.sample_config, nullptr);
        EXPECT_TRUE(issues.empty()) << describe(issues);
    });
    add_test(spec, "CreatesAndStopsFromSampleConfig", [](const ConformanceSpec& s) {
        std::shared_ptr<Plugin> instance;
        boost::asio::io_context io;
        NiceMock<MockLogger> logger;
        FakeMetrics metrics;
        {
            auto result = load(s);
            ASSERT_TRUE(result) << result.error;
            PluginConfig config;
            auto issues = validate(*result.plugin, s.sample_config, &config);
            ASSERT_TRUE(issues.empty()) << describe(issues);
            PluginContext context{io.get_executor(), &logger, &metrics, 1, s.plugin_name};
            CreateResult created = result.plugin->descriptor->create(context, config);
            ASSERT_TRUE(created.plugin) << created.error;
            EXPECT_TRUE(created.error.empty()) << created.error;
            instance = core::hold_library<Plugin>(std::move(created.plugin), result.plugin->descriptor);
        }
        // Every handle but the instance's is gone: the library must still be loaded for these calls.
        EXPECT_EQ(instance->category(), s.category);
        instance->stop();
        instance->stop();  // idempotent
        instance.reset();
    });
    for (std::size_t i = 0; i < spec.bad_configs.size(); ++i) {
        add_test(spec, "RefusesBadConfig" + std::to_string(i), [i](const ConformanceSpec& s) {
            auto result = load(s);
            ASSERT_TRUE(result) << result.error;
            auto issues = validate(*result.plugin, s.bad_configs[i], nullptr);
            EXPECT_FALSE(issues.empty())
                << "bad config #" << i << " was accepted: " << s.bad_configs[i].dump();
            for (const auto& issue : issues) {
                EXPECT_FALSE(issue.message.empty());
                EXPECT_EQ(issue.path.rfind(".config", 0), 0u) << issue.path;
            }
        });
    }
}

}  // namespace ctsync::testkit
