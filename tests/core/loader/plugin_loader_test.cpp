// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/loader/plugin_loader.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <link.h>

#include <boost/asio/io_context.hpp>
#include <boost/weak_ptr.hpp>
#include <ctsync/sdk/testing/mocks.hpp>

namespace ctsync::core {
namespace {

namespace fs = std::filesystem;
const fs::path kGood = fs::path(CTSYNC_FIXTURE_DIR) / "good";
const fs::path kFaults = fs::path(CTSYNC_FIXTURE_DIR) / "faults";
const fs::path kDup = fs::path(CTSYNC_FIXTURE_DIR) / "dup";

std::string fault_file(const std::string& name) {
    return (kFaults / ("ctsync-filter-" + name + ".so")).string();
}

LoadResult load_fault(const std::string& name) {
    PluginLoader loader({kFaults});
    return loader.load("filter-" + name, sdk::Category::kFilter);
}

struct TempDirForLoader {
    fs::path path;
    TempDirForLoader() {
        std::string pattern = (fs::temp_directory_path() / "ctsync-loader-XXXXXX").string();
        path = ::mkdtemp(pattern.data());
    }
    ~TempDirForLoader() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

bool is_mapped(const std::string& file) {
    struct Search {
        std::string file;
        bool found = false;
    } search{fs::canonical(file).string()};
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) {
            auto* s = static_cast<Search*>(data);
            if (info->dlpi_name != nullptr && s->file == info->dlpi_name) {
                s->found = true;
            }
            return 0;
        },
        &search);
    return search.found;
}

TEST(PluginLoader, LoadsGoodPluginFromSearchPath) {
    PluginLoader loader({"/nonexistent", kGood});
    auto result = loader.load("filter-fixture", sdk::Category::kFilter);
    ASSERT_TRUE(result) << result.error;
    EXPECT_STREQ(result.plugin->descriptor->name, "filter-fixture");
    EXPECT_STREQ(result.plugin->descriptor->version, "1.2.3");
    EXPECT_EQ(result.plugin->file, kGood / "ctsync-filter-fixture.so");
    EXPECT_EQ(result.plugin->keys().size(), 11u);
}

TEST(PluginLoader, FirstDirectoryInSearchPathWins) {
    PluginLoader loader({kDup, kGood});
    auto result = loader.load("filter-fixture", sdk::Category::kFilter);
    ASSERT_TRUE(result) << result.error;
    EXPECT_EQ(result.plugin->file, kDup / "ctsync-filter-fixture.so");
}

TEST(PluginLoader, DirectoriesAndDanglingLinksNamedLikePluginsAreSkipped) {
    TempDirForLoader dir;
    fs::create_directory(dir.path / "ctsync-filter-fixture.so");
    fs::create_symlink(dir.path / "nowhere.so", dir.path / "ctsync-transport-fixture.so");
    PluginLoader loader({dir.path, kGood});
    auto filter = loader.load("filter-fixture", sdk::Category::kFilter);
    ASSERT_TRUE(filter) << filter.error;
    EXPECT_EQ(filter.plugin->file, kGood / "ctsync-filter-fixture.so");
    auto listed = list_plugins({dir.path, kGood});
    for (const auto& p : listed) {
        EXPECT_NE(p.file.parent_path(), dir.path) << p.file;
        EXPECT_TRUE(p.shadowed_by.empty()) << p.file;
    }
}

TEST(PluginLoader, SameFileTwiceIsTheSamePlugin) {
    PluginLoader loader({kGood});
    auto a = loader.load("filter-fixture", sdk::Category::kFilter);
    auto b = loader.load("filter-fixture", sdk::Category::kFilter, kGood / "ctsync-filter-fixture.so");
    ASSERT_TRUE(a) << a.error;
    ASSERT_TRUE(b) << b.error;
    EXPECT_EQ(a.plugin, b.plugin);
}

TEST(PluginLoader, RefusesMissingFile) {
    PluginLoader loader({"/nonexistent/a", kGood});
    auto result = loader.load("filter-absent", sdk::Category::kFilter);
    EXPECT_FALSE(result);
    EXPECT_EQ(result.error,
              fmt::format("plugin 'filter-absent': file not found: expected ctsync-filter-absent.so in "
                          "one of [/nonexistent/a, {}], found none",
                          kGood.string()));
}

TEST(PluginLoader, RefusesMissingExplicitFile) {
    PluginLoader loader({});
    auto result = loader.load("filter-fixture", sdk::Category::kFilter, fs::path("/nonexistent/x.so"));
    EXPECT_EQ(result.error, "plugin file '/nonexistent/x.so': file not found");
}

TEST(PluginLoader, RefusesMissingSymbol) {
    auto result = load_fault("nosymbol");
    EXPECT_FALSE(result);
    EXPECT_EQ(result.error,
              fmt::format("plugin file '{}': not a ctsync plugin: expected exported symbol "
                          "'ctsync_plugin', found none (export the descriptor with CTSYNC_PLUGIN())",
                          fault_file("nosymbol")));
}

TEST(PluginLoader, RefusesUnloadableFileWithDynamicLinkerReason) {
    auto result = load_fault("undefined");
    EXPECT_FALSE(result);
    EXPECT_EQ(result.error, fmt::format("plugin file '{0}': cannot be loaded: {0}: undefined symbol: "
                                        "ctsync_fixture_missing_function",
                                        fault_file("undefined")));
}

TEST(PluginLoader, RefusesAbiMajorMismatch) {
    auto result = load_fault("abimajor");
    EXPECT_EQ(result.error,
              fmt::format("plugin file '{}': ABI major mismatch: expected 1, found 2 (rebuild the "
                          "plugin against this ctsync SDK)",
                          fault_file("abimajor")));
}

TEST(PluginLoader, RefusesAbiMinorNewerThanHost) {
    auto result = load_fault("abiminor");
    EXPECT_EQ(result.error,
              fmt::format("plugin file '{}': ABI minor newer than this ctsyncd: expected at most {}.{}, "
                          "found {}.{} (upgrade ctsyncd or rebuild the plugin)",
                          fault_file("abiminor"), sdk::kAbiMajor, sdk::kAbiMinor, sdk::kAbiMajor,
                          sdk::kAbiMinor + 1));
}

TEST(PluginLoader, RefusesTooSmallDescriptor) {
    auto result = load_fault("smalldesc");
    EXPECT_EQ(result.error,
              fmt::format("plugin file '{}': descriptor too small: expected at least {} bytes, found 12",
                          fault_file("smalldesc"), sizeof(sdk::PluginDescriptor)));
}

TEST(PluginLoader, RefusesBuildFingerprintMismatch) {
    auto result = load_fault("fingerprint");
    EXPECT_EQ(result.error,
              fmt::format("plugin file '{}': build fingerprint mismatch: expected '{}', found "
                          "'compiler=gcc-99;cxx11_abi=0;boost=100000;nlohmann_json=2.0;cxx=201703'",
                          fault_file("fingerprint"), CTSYNC_SDK_BUILD_FINGERPRINT));
}

TEST(PluginLoader, RefusesWrongName) {
    auto result = load_fault("wrongname");
    EXPECT_EQ(result.error,
              fmt::format("plugin file '{}': wrong plugin name: expected 'filter-wrongname', found "
                          "'filter-somebody-else'",
                          fault_file("wrongname")));
}

TEST(PluginLoader, RefusesWrongCategoryForSlot) {
    PluginLoader loader({kGood});
    auto result = loader.load("filter-fixture", sdk::Category::kTransport);
    EXPECT_EQ(result.error,
              fmt::format("plugin file '{}': wrong category for this slot: expected transport, found "
                          "filter",
                          (kGood / "ctsync-filter-fixture.so").string()));
}

TEST(PluginLoader, RefusesWrongCategoryAlsoWhenAlreadyLoaded) {
    PluginLoader loader({kGood});
    ASSERT_TRUE(loader.load("filter-fixture", sdk::Category::kFilter));
    auto result = loader.load("filter-fixture", sdk::Category::kHa);
    EXPECT_EQ(result.error,
              fmt::format("plugin file '{}': wrong category for this slot: expected ha, found filter",
                          (kGood / "ctsync-filter-fixture.so").string()));
}

TEST(PluginLoader, RefusesDuplicateName) {
    PluginLoader loader({kGood});
    ASSERT_TRUE(loader.load("filter-fixture", sdk::Category::kFilter));
    auto result = loader.load("filter-fixture", sdk::Category::kFilter, kDup / "ctsync-filter-fixture.so");
    EXPECT_FALSE(result);
    EXPECT_EQ(result.error, fmt::format("plugin file '{0}/ctsync-filter-fixture.so': duplicate plugin name "
                                        "'filter-fixture': expected one file, found it in "
                                        "'{1}/ctsync-filter-fixture.so' and '{0}/ctsync-filter-fixture.so'",
                                        kDup.string(), kGood.string()));
}

TEST(PluginLoader, RefusesInvalidKeyTable) {
    auto result = load_fault("badkeys");
    EXPECT_EQ(
        result.error,
        fmt::format("plugin file '{}': plugin 'filter-badkeys' has an invalid config key table: key 'Port': "
                    "key name must be snake_case ([a-z0-9_]); key 'Port': default does not satisfy the key: "
                    "70000 is out of range: integer in [1, 65535]; key 'mode': enum key without choices; key "
                    "'mode': required key with a default",
                    fault_file("badkeys")));
}

TEST(PluginLoader, FactoryExceptionBecomesRefusalMessage) {
    auto result = load_fault("throws");
    ASSERT_TRUE(result) << result.error;  // the descriptor itself is fine
    boost::asio::io_context io;
    ::testing::NiceMock<testkit::MockLogger> logger;
    testkit::FakeMetrics metrics;
    sdk::PluginContext context{io.get_executor(), &logger, &metrics, 1, "t"};
    auto created = result.plugin->descriptor->create(context, sdk::PluginConfig());
    EXPECT_EQ(created.plugin, nullptr);
    EXPECT_EQ(created.error, "cannot open /dev/fixture: No such device");
}

TEST(PluginLoader, LibraryStaysLoadedWhileAnInstanceLives) {
    const std::string file = (kGood / "ctsync-transport-fixture.so").string();
    boost::asio::io_context io;
    ::testing::NiceMock<testkit::MockLogger> logger;
    testkit::FakeMetrics metrics;
    std::shared_ptr<sdk::Transport> transport;
    boost::weak_ptr<const sdk::PluginDescriptor> library;  // observes the host's handles on the library
    {
        PluginLoader loader({kGood});
        auto result = loader.load("transport-fixture", sdk::Category::kTransport);
        ASSERT_TRUE(result) << result.error;
        sdk::PluginContext context{io.get_executor(), &logger, &metrics, 1, "t"};
        auto created = result.plugin->descriptor->create(context, sdk::PluginConfig());
        ASSERT_TRUE(created.plugin) << created.error;
        transport = hold_library<sdk::Transport>(std::move(created.plugin), result.plugin->descriptor);
        library = result.plugin->descriptor;
    }
    // Loader and descriptor handles are gone; only the instance keeps the library.
    ASSERT_FALSE(library.expired());
    ASSERT_TRUE(is_mapped(file));
    ::testing::StrictMock<testkit::MockTransportSink> sink;
    std::string error;
    ASSERT_TRUE(transport->start(sink, error));
    const std::byte payload[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
    EXPECT_CALL(sink, on_datagram(::testing::SizeIs(3)));
    EXPECT_TRUE(transport->send(payload));
    EXPECT_EQ(transport->max_datagram_size(), 1400u);
    transport->stop();
    transport.reset();
    // With the last instance gone the host holds no handle any more: the library is dlclose()d. (Whether the
    // dynamic linker then unmaps it is its own business: a library that defines GNU_UNIQUE symbols, as every
    // user of Boost.Asio does, may stay mapped.)
    EXPECT_TRUE(library.expired());
}

TEST(PluginLoader, ListsPluginsWithRefusalsAndShadowing) {
    auto listed = list_plugins({kDup, kGood, kFaults});
    std::map<std::string, const ListedPlugin*> by_file;
    for (const auto& p : listed) {
        by_file[p.file.string()] = &p;
    }
    auto dup = by_file.at((kDup / "ctsync-filter-fixture.so").string());
    ASSERT_NE(dup->plugin, nullptr) << dup->error;
    auto shadowed = by_file.at((kGood / "ctsync-filter-fixture.so").string());
    EXPECT_EQ(shadowed->shadowed_by, kDup / "ctsync-filter-fixture.so");
    auto refused = by_file.at(fault_file("abimajor"));
    EXPECT_EQ(refused->plugin, nullptr);
    EXPECT_NE(refused->error.find("ABI major mismatch"), std::string::npos);
    auto wrongname = by_file.at(fault_file("wrongname"));
    EXPECT_EQ(wrongname->plugin, nullptr);
    EXPECT_NE(wrongname->error.find("wrong plugin name: expected 'filter-wrongname'"), std::string::npos);
}

}  // namespace
}  // namespace ctsync::core
