// SPDX-License-Identifier: GPL-2.0-or-later
// The SDK as an integrator meets it: install ctsync into a prefix, build sdk/examples/filter-port out of
// tree against that prefix only, run its own tests (unit + conformance), install it, and have the real
// ctsyncd load it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/core/daemon/daemon_test_util.hpp"

namespace ctsync::test {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

void expect_ok(const RunResult& r, const std::string& what) {
    ASSERT_EQ(r.exit_code, 0) << what << " failed" << (r.timed_out ? " (timed out)" : "") << "\nstdout:\n"
                              << r.out << "\nstderr:\n"
                              << r.err;
}

TEST(SdkExample, BuildsOutOfTreeAgainstInstalledSdkAndLoadsInCtsyncd) {
    TempDir dir("ctsync-sdk");
    const auto prefix = dir / "prefix";
    const auto build = dir / "build";
    const std::string cmake = CTSYNC_CMAKE_COMMAND;

    ASSERT_NO_FATAL_FAILURE(expect_ok(
        run({cmake, "--install", CTSYNC_BINARY_DIR, "--prefix", prefix.string()}, 300s), "install ctsync"));
    ASSERT_TRUE(std::filesystem::exists(prefix / "include/ctsync/sdk/sdk.hpp"));

    // Only the temporary prefix: no package registry, no build tree.
    ASSERT_NO_FATAL_FAILURE(expect_ok(
        run({cmake, "-S", std::string(CTSYNC_SOURCE_DIR) + "/sdk/examples/filter-port", "-B", build.string(),
             "-G", "Ninja", "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DCMAKE_PREFIX_PATH=" + prefix.string(),
             "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF", "-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF"},
            300s),
        "configure the example"));
    std::string cache = read_file(build / "CMakeCache.txt");
    EXPECT_THAT(cache, HasSubstr("ctsync-sdk_DIR:PATH=" + prefix.string()));

    ASSERT_NO_FATAL_FAILURE(expect_ok(run({cmake, "--build", build.string()}, 600s), "build the example"));
    auto tests = run({"ctest", "--test-dir", build.string(), "--output-on-failure"}, 300s);
    ASSERT_NO_FATAL_FAILURE(expect_ok(tests, "the example's own tests"));
    EXPECT_THAT(tests.out, HasSubstr("100% tests passed"));
    EXPECT_THAT(tests.out, HasSubstr("conformance"));

    ASSERT_NO_FATAL_FAILURE(expect_ok(
        run({cmake, "--install", build.string(), "--prefix", prefix.string()}, 120s), "install the example"));
    // ctsync_add_plugin installs into <prefix>/<libdir>/ctsync/plugins; find it whatever libdir is.
    std::filesystem::path plugin_dir;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(prefix)) {
        if (entry.path().filename() == "ctsync-filter-port.so") {
            plugin_dir = entry.path().parent_path();
        }
    }
    ASSERT_FALSE(plugin_dir.empty());
    EXPECT_EQ(plugin_dir.filename(), "plugins");

    auto config = instance_config(dir.path(), 9);
    config["daemon"]["plugin_dirs"] = {plugin_dir.string()};
    config["filters"] = {{{"plugin", "filter-port"}, {"name", "no-bgp"}, {"config", {{"ports", {179}}}}}};
    auto file = write_config(dir.path(), config);
    auto check = run({kCtsyncd, "--check-config", file.string()});
    ASSERT_NO_FATAL_FAILURE(expect_ok(check, "ctsyncd --check-config"));

    Process daemon({kCtsyncd, "-C", file.string()});
    nlohmann::json plugins;
    ASSERT_TRUE(wait_until(
        [&] { return !(plugins = ctl_json(file, "plugins")).is_null() || !daemon.running(); }, 10s))
        << daemon.err();
    ASSERT_TRUE(plugins.is_array()) << daemon.err();
    ASSERT_EQ(plugins.size(), 1u);
    EXPECT_EQ(plugins[0]["plugin"], "filter-port");
    EXPECT_EQ(plugins[0]["instance"], "no-bgp");
    EXPECT_EQ(plugins[0]["version"], "1.0.0");
    EXPECT_EQ(plugins[0]["file"], (plugin_dir / "ctsync-filter-port.so").string());
    EXPECT_THAT(daemon.err(), HasSubstr("[no-bgp] event=filter_ready ports=1 protocols=2"));
    EXPECT_EQ(daemon.terminate(10s).value_or(-1), 0);

    // A bad config for it is refused by ctsyncd with the plugin's own message and path.
    config["filters"][0]["config"]["ports"] = {0};
    file = write_config(dir.path(), config);
    auto bad = run({kCtsyncd, "--check-config", file.string()});
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_THAT(bad.err, HasSubstr(".filters[0].config.ports[0]: expected a port number 1-65535, found 0"));
}

}  // namespace
}  // namespace ctsync::test
