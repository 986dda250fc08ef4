// SPDX-License-Identifier: GPL-2.0-or-later
// The Debian packages (dist/, built by the ctest fixture dist_packages_build into build/packages/): their
// contents and dependencies as dpkg-deb reads them, lintian, the daemon and its packaged plugins run from a
// `dpkg -x` root, the systemd units through `systemd-analyze verify`, and the SDK package alone building and
// testing the example plugin out of tree.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/dist/dist_test_util.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kPackages = fs::path(CTSYNC_BINARY_DIR) / "packages";
const std::string kVersion = CTSYNC_VERSION "-1";
const std::string kMultiarch = CTSYNC_MULTIARCH_LIBDIR;  // "lib/x86_64-linux-gnu"

std::vector<std::string> plugins() {
    return packaged_plugins();
}

fs::path deb(const std::string& package) {
    return kPackages / (package + "_" + kVersion + "_amd64.deb");
}

std::string field(const std::string& package, const std::string& name) {
    auto r = run({"dpkg-deb", "-f", deb(package).string(), name});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    while (!r.out.empty() && r.out.back() == '\n') {
        r.out.pop_back();
    }
    return r.out;
}

std::string contents(const std::string& package) {
    auto r = run({"dpkg-deb", "-c", deb(package).string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
}

void unpack(const std::string& package, const fs::path& root) {
    auto r = run({"dpkg-deb", "-x", deb(package).string(), root.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(Packages, EachHoldsItsFilesAndDependsOnTheSameAbi) {
    const auto ctsync = contents("ctsync");
    for (const char* path :
         {"./usr/sbin/ctsyncd", "./usr/sbin/ctsyncctl", "./etc/ctsync/ctsyncd.json",
          "./lib/systemd/system/ctsyncd.service", "./lib/systemd/system/ctsyncd@.service",
          "./usr/share/man/man8/ctsyncd.8.gz", "./usr/share/man/man8/ctsyncctl.8.gz",
          "./usr/share/man/man5/ctsyncd.json.5.gz", "./usr/share/bash-completion/completions/ctsyncctl",
          "./usr/share/doc/ctsync/copyright", "./usr/share/doc/ctsync/changelog.Debian.gz",
          "./usr/share/doc/ctsync/examples/primary-backup.json"}) {
        EXPECT_THAT(ctsync, HasSubstr(std::string(path) + "\n")) << path;
    }
    EXPECT_THAT(ctsync, ::testing::Not(HasSubstr("/plugins/"))) << "plugins belong in their own packages";
    EXPECT_EQ(field("ctsync", "Provides"), "ctsync-plugin-abi-1 (= 1.3)");
    const std::string depends = field("ctsync", "Depends");
    for (const char* lib : {"libc6", "libstdc++6", "libsodium23", "libsystemd0", "libspdlog1.10"}) {
        EXPECT_THAT(depends, HasSubstr(lib)) << depends;
    }
    auto control = run({"dpkg-deb", "--ctrl-tarfile", deb("ctsync").string()});
    ASSERT_EQ(control.exit_code, 0);
    auto conffiles = run({"/bin/sh", "-c", "dpkg-deb --info '" + deb("ctsync").string() + "' conffiles"});
    EXPECT_EQ(conffiles.out, "/etc/ctsync/ctsyncd.json\n");

    ASSERT_FALSE(plugins().empty());
    for (const auto& id : plugins()) {
        const std::string package = "ctsync-plugin-" + id;
        ASSERT_TRUE(fs::exists(deb(package))) << deb(package);
        EXPECT_EQ(field(package, "Package"), package);
        EXPECT_EQ(field(package, "Version"), kVersion);
        EXPECT_THAT(field(package, "Depends"), HasSubstr("ctsync-plugin-abi-1 (>= 1.3)")) << package;
        const auto files = contents(package);
        EXPECT_THAT(files, HasSubstr("./usr/" + kMultiarch + "/ctsync/plugins/ctsync-" + id + ".so\n"))
            << package;
        EXPECT_THAT(files, HasSubstr("./usr/share/doc/" + package + "/copyright\n"));
        EXPECT_THAT(files, HasSubstr("./usr/share/doc/" + package + "/README.md\n"));
    }
    // Plugins that link a library of the system depend on it (shlibdeps).
    EXPECT_THAT(field("ctsync-plugin-source-ctnetlink", "Depends"), HasSubstr("libnetfilter-conntrack3"));
    EXPECT_THAT(field("ctsync-plugin-source-ctnetlink", "Depends"), HasSubstr("libmnl0"));
    // filter-bpf's package also holds its command-line companion and that one's man page.
    const auto filter = contents("ctsync-plugin-filter-bpf");
    EXPECT_THAT(filter, HasSubstr("./usr/bin/ctsync-filter\n"));
    EXPECT_THAT(filter, HasSubstr("./usr/share/man/man1/ctsync-filter.1.gz\n"));

    const auto sdk = contents("libctsync-sdk-dev");
    const std::vector<std::string> sdk_files = {
        "./usr/include/ctsync/sdk/sdk.hpp",
        "./usr/include/ctsync/sdk/testing/conformance.hpp",
        "./usr/" + kMultiarch + "/cmake/ctsync-sdk/ctsync-sdkConfig.cmake",
        "./usr/" + kMultiarch + "/cmake/ctsync-sdk/CtsyncPlugin.cmake",
        "./usr/" + kMultiarch + "/libctsync_testkit.a",
        "./usr/share/doc/libctsync-sdk-dev/examples/filter-port/CMakeLists.txt"};
    for (const auto& path : sdk_files) {
        EXPECT_THAT(sdk, HasSubstr(path + "\n")) << path;
    }
    EXPECT_THAT(field("libctsync-sdk-dev", "Depends"), HasSubstr("libboost1.74-dev"));
}

TEST(Packages, LintianReportsNoErrors) {
    std::vector<std::string> argv = {"lintian", "--fail-on", "error"};
    for (const auto& entry : fs::directory_iterator(kPackages)) {
        if (entry.path().extension() == ".deb") {
            argv.push_back(entry.path().string());
        }
    }
    ASSERT_GE(argv.size(), 8u);
    auto r = run(argv, 600s);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_THAT(r.out, ::testing::Not(HasSubstr("E: "))) << r.out;
    std::cout << r.out;  // the warnings, for the record
}

TEST(Packages, DaemonFromAnUnpackedRootLoadsThePackagedPlugins) {
    TempDir dir("ctsync-deb");
    const auto root = dir / "root";
    ASSERT_NO_FATAL_FAILURE(unpack("ctsync", root));
    for (const auto& id : plugins()) {
        ASSERT_NO_FATAL_FAILURE(unpack("ctsync-plugin-" + id, root));
    }
    const std::string ctsyncd = (root / "usr/sbin/ctsyncd").string();
    const fs::path plugin_dir = root / "usr" / kMultiarch / "ctsync/plugins";
    // No CTSYNC_PLUGIN_PATH, no plugin_dirs: the packaged path beside the executable.
    auto listed = run({ctsyncd, "--list-plugins", "--json"}, 30s, {{"CTSYNC_PLUGIN_PATH", ""}});
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    auto list = nlohmann::json::parse(listed.out);
    std::set<std::string> ok;
    for (const auto& p : list["plugins"]) {
        if (p["status"] == "ok" && fs::path(p["file"].get<std::string>()).parent_path() == plugin_dir) {
            ok.insert(p["plugin"].get<std::string>());
        }
    }
    for (const auto& id : plugins()) {
        EXPECT_EQ(ok.count(id), 1u) << id << " not loaded from " << plugin_dir << ": " << listed.out;
    }
    // The shipped conffile is valid as it is.
    auto shipped = run({ctsyncd, "--check-config", (root / "etc/ctsync/ctsyncd.json").string()});
    EXPECT_EQ(shipped.exit_code, 0) << shipped.err;
    // A daemon with packaged plugins: each instance from the packaged file.
    auto config = instance_config(dir.path(), 4);
    config["daemon"].erase("plugin_dirs");
    config["protos"] = {{{"plugin", "proto-tcp"}}, {{"plugin", "proto-udp"}}, {{"plugin", "proto-sctp"}}};
    auto file = write_config(dir.path(), config);
    Process daemon({ctsyncd, "-C", file.string()});
    nlohmann::json loaded;
    ASSERT_TRUE(
        wait_until([&] { return !(loaded = ctl_json(file, "plugins")).is_null() || !daemon.running(); }, 10s))
        << daemon.err();
    ASSERT_TRUE(loaded.is_array()) << daemon.err();
    ASSERT_EQ(loaded.size(), 3u);
    for (const auto& p : loaded) {
        EXPECT_EQ(fs::path(p["file"].get<std::string>()).parent_path(), plugin_dir) << p.dump();
    }
    EXPECT_EQ(daemon.terminate(), 0);
}

TEST(Units, PassSystemdAnalyzeVerify) {
    TempDir dir("ctsync-units");
    const auto root = dir / "root";
    ASSERT_NO_FATAL_FAILURE(unpack("ctsync", root));
    // verify checks that ExecStart exists: point it at the unpacked binary, nothing else changes.
    const std::pair<const char*, const char*> units[] = {{"ctsyncd.service", "ctsyncd.service"},
                                                         {"ctsyncd@.service", "ctsyncd@fw-a.service"}};
    for (const auto& [unit, as] : units) {
        std::string text = read_file(root / "lib/systemd/system" / unit);
        EXPECT_THAT(text, HasSubstr("Type=notify\n"));
        EXPECT_THAT(text, HasSubstr("WatchdogSec="));
        EXPECT_THAT(text, HasSubstr("CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n"));
        text = std::regex_replace(text, std::regex("/usr/sbin/"), (root / "usr/sbin/").string());
        write_file(dir / as, text);
        auto r = run({"systemd-analyze", "verify", "--man=no", (dir / as).string()}, 60s);
        EXPECT_EQ(r.exit_code, 0) << unit << ": " << r.err;
        EXPECT_EQ(r.err, "") << unit;
    }
    // The check can fail: a misspelt directive is reported.
    write_file(dir / "broken.service", "[Service]\nType=notify\nWatchdogSecs=30s\nExecStart=/bin/true\n");
    auto broken = run({"systemd-analyze", "verify", "--man=no", (dir / "broken.service").string()}, 60s);
    EXPECT_THAT(broken.err, HasSubstr("Unknown key 'WatchdogSecs'"));
}

TEST(SdkPackage, AloneBuildsAndTestsTheExamplePlugin) {
    TempDir dir("ctsync-sdk-deb");
    const auto root = dir / "root";
    ASSERT_NO_FATAL_FAILURE(unpack("libctsync-sdk-dev", root));
    const auto example = root / "usr/share/doc/libctsync-sdk-dev/examples/filter-port";
    const auto build = dir / "build";
    const std::string cmake = CTSYNC_CMAKE_COMMAND;
    auto configure =
        run({cmake, "-S", example.string(), "-B", build.string(), "-G", "Ninja",
             "-DCMAKE_PREFIX_PATH=" + (root / "usr").string(), "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF",
             "-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF"},
            300s);
    ASSERT_EQ(configure.exit_code, 0) << configure.out << configure.err;
    EXPECT_THAT(
        read_file(build / "CMakeCache.txt"),
        HasSubstr("ctsync-sdk_DIR:PATH=" + (root / "usr" / kMultiarch / "cmake/ctsync-sdk").string()));
    auto built = run({cmake, "--build", build.string()}, 900s);
    ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
    auto tests = run({"ctest", "--test-dir", build.string(), "--output-on-failure"}, 300s);
    EXPECT_EQ(tests.exit_code, 0) << tests.out;
    EXPECT_THAT(tests.out, HasSubstr("100% tests passed"));
    EXPECT_THAT(tests.out, HasSubstr("conformance"));
}

}  // namespace
}  // namespace ctsync::test
