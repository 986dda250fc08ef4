// SPDX-License-Identifier: GPL-2.0-or-later
// Configuration and start-up errors: address syntax, the plugin's checks as ctsyncd runs them on the built
// plugin file (key table, then the validate hook), the SDK's conformance suite, and start() refusals that
// name the key and the address.
#include <ctsync/sdk/testing/conformance.hpp>

#include "core/config/key_table.hpp"
#include "core/loader/plugin_loader.hpp"
#include "tcp_test_util.hpp"

namespace transport_tcp::test {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const nlohmann::json kSample = {{"listen", "192.0.2.1:3782"},
                                {"peers", {"192.0.2.2:3782", "192.0.2.3:3782"}}};

// The SDK's suite on the built file: handshake, one alias, key table, sample accepted and created, bad
// configurations refused with a path.
const bool kConformanceRegistered = [] {
    ctsync::testkit::register_conformance_tests({
        .plugin_file = TRANSPORT_TCP_PLUGIN_FILE,
        .plugin_name = "transport-tcp",
        .category = ctsync::sdk::Category::kTransport,
        .sample_config = kSample,
        .bad_configs = {nlohmann::json::object(),
                        {{"listen", "192.0.2.1"}, {"peers", {"192.0.2.2:3782"}}},
                        {{"listen", "192.0.2.1:3782"}, {"peers", nlohmann::json::array()}},
                        {{"listen", "192.0.2.1:3782"}, {"peers", {"fd00::2:3782"}}},
                        {{"listen", "192.0.2.1:3782"},
                         {"peers", {"192.0.2.2:3782"}},
                         {"reconnect_min_ms", 5}}},
    });
    return true;
}();

std::string parse_error(const std::string& text) {
    std::string error;
    auto endpoint = parse_endpoint(text, error);
    return endpoint ? std::string("(parsed)") : error;
}

TEST(TransportTcpConfig, ParsesAddressAndPort) {
    std::string error;
    auto v4 = parse_endpoint("192.0.2.1:3782", error);
    ASSERT_TRUE(v4) << error;
    EXPECT_EQ(*v4, endpoint("192.0.2.1"));
    auto v6 = parse_endpoint("[fd00::1]:65535", error);
    ASSERT_TRUE(v6) << error;
    EXPECT_EQ(*v6, Endpoint(boost::asio::ip::make_address("fd00::1"), 65535));
    EXPECT_EQ(format_endpoint(*v4), "192.0.2.1:3782");
    EXPECT_EQ(format_endpoint(*v6), "[fd00::1]:65535");
    EXPECT_EQ(format_endpoint(*parse_endpoint("[::1]:1", error)), "[::1]:1");
}

TEST(TransportTcpConfig, BadAddressesAreExplained) {
    EXPECT_EQ(parse_error(""), "is empty: expected address:port, such as 192.0.2.1:3782 or [fd00::1]:3782");
    EXPECT_EQ(parse_error("192.0.2.1"),
              "'192.0.2.1' has no port: expected address:port, such as 192.0.2.1:3782");
    EXPECT_EQ(parse_error("192.0.2.1:"), "'192.0.2.1:': port '' is not a number in [1, 65535]");
    EXPECT_EQ(parse_error("192.0.2.1:0"), "'192.0.2.1:0': port '0' is not a number in [1, 65535]");
    EXPECT_EQ(parse_error("192.0.2.1:65536"),
              "'192.0.2.1:65536': port '65536' is not a number in [1, 65535]");
    EXPECT_EQ(parse_error("192.0.2.1:ssh"), "'192.0.2.1:ssh': port 'ssh' is not a number in [1, 65535]");
    EXPECT_EQ(
        parse_error("192.0.2.256:3782"),
        "'192.0.2.256:3782': '192.0.2.256' is not an IPv4 or IPv6 address (host names are not resolved)");
    EXPECT_EQ(
        parse_error("fw2.example:3782"),
        "'fw2.example:3782': 'fw2.example' is not an IPv4 or IPv6 address (host names are not resolved)");
    EXPECT_EQ(parse_error(":3782"),
              "':3782': '' is not an IPv4 or IPv6 address (host names are not resolved)");
    EXPECT_EQ(parse_error("fd00::2:3782"),
              "'fd00::2:3782': an IPv6 address must be in brackets, as in [fd00::1]:3782");
    EXPECT_EQ(parse_error("[fd00::2]3782"),
              "'[fd00::2]3782' has no ':port' after ']': expected [address]:port, such as [fd00::1]:3782");
    EXPECT_EQ(parse_error("[fd00::2:3782"),
              "'[fd00::2:3782' opens '[' without ']': expected [address]:port, such as [fd00::1]:3782");
}

// Validation exactly as ctsyncd runs it for `.transports[0]`: the loaded file's key table, then its hook.
std::vector<std::string> problems(const nlohmann::json& config) {
    ctsync::core::PluginLoader loader({});
    auto loaded = loader.load("transport-tcp", ctsync::sdk::Category::kTransport,
                              std::filesystem::path(TRANSPORT_TCP_PLUGIN_FILE));
    if (!loaded) {
        return {"load failed: " + loaded.error};
    }
    const std::string slot = ".transports[0].config";
    ctsync::core::ConfigIssues issues;
    auto values = ctsync::core::validate_against(config, loaded.plugin->keys(), slot, issues);
    if (issues.empty()) {
        ctsync::sdk::ConfigErrors errors;
        loaded.plugin->descriptor->validate(ctsync::sdk::PluginConfig(values), errors);
        for (const auto& e : errors) {
            issues.push_back({slot + e.path, e.message});
        }
    }
    std::vector<std::string> out;
    for (const auto& issue : issues) {
        out.push_back(ctsync::core::format_issue(issue));
    }
    return out;
}

nlohmann::json with(nlohmann::json config, const nlohmann::json& changes) {
    config.update(changes);
    return config;
}

TEST(TransportTcpConfig, PluginAcceptsAGoodConfig) {
    EXPECT_THAT(problems(kSample), IsEmpty());
    EXPECT_THAT(problems(with(kSample, {{"listen", "[::]:3782"},
                                        {"peers", {"[fd00::2]:3782", "192.0.2.2:3782"}},
                                        {"reconnect_min_ms", 5000},
                                        {"reconnect_max_ms", 5000}})),
                IsEmpty());
    EXPECT_THAT(problems(with(kSample, {{"peers", {"[fd00::2]:3782"}}, {"bind_address", "fd00::1"}})),
                IsEmpty());
}

TEST(TransportTcpConfig, PluginNamesEachProblemWithItsPath) {
    EXPECT_THAT(problems(nlohmann::json::object()),
                ElementsAre(::testing::StartsWith(".transports[0].config.listen: missing required key"),
                            ::testing::StartsWith(".transports[0].config.peers: missing required key")));
    EXPECT_THAT(
        problems(with(kSample, {{"listen", "192.0.2.1"}})),
        ElementsAre(".transports[0].config.listen: '192.0.2.1' has no port: expected address:port, such "
                    "as 192.0.2.1:3782"));
    EXPECT_THAT(problems(with(kSample, {{"listen", "224.0.0.18:3782"}})),
                ElementsAre(".transports[0].config.listen: '224.0.0.18:3782' is a multicast address"));
    EXPECT_THAT(problems(with(kSample, {{"peers", nlohmann::json::array()}})),
                ElementsAre(".transports[0].config.peers: must name at least one peer (\"address:port\" of "
                            "another node's listen)"));
    EXPECT_THAT(
        problems(with(kSample, {{"peers",
                                 {"192.0.2.2:3782", "fd00::2:3782", "192.0.2.2:3782", "192.0.2.1:3782",
                                  "0.0.0.0:3782"}}})),
        ElementsAre(".transports[0].config.peers[1]: 'fd00::2:3782': an IPv6 address must be in "
                    "brackets, as in [fd00::1]:3782",
                    ".transports[0].config.peers[2]: '192.0.2.2:3782' is listed twice (also .peers[0])",
                    ".transports[0].config.peers[3]: '192.0.2.1:3782' is this node's own listen address",
                    ".transports[0].config.peers[4]: '0.0.0.0:3782' is not a peer's address (unspecified)"));
    EXPECT_THAT(problems(with(kSample, {{"peers", {"192.0.2.2:3782", "[fd00::3]:3782"}},
                                        {"bind_address", "192.0.2.1"}})),
                ElementsAre(".transports[0].config.bind_address: '192.0.2.1' is IPv4 but .peers[1] "
                            "'[fd00::3]:3782' is IPv6"));
    EXPECT_THAT(
        problems(with(kSample, {{"reconnect_min_ms", 2000}, {"reconnect_max_ms", 1000}})),
        ElementsAre(".transports[0].config.reconnect_max_ms: must be at least .reconnect_min_ms (2000)"));
    EXPECT_THAT(problems(with(kSample, {{"max_datagram_bytes", 100000}, {"send_queue_bytes", 65536}})),
                ElementsAre(".transports[0].config.send_queue_bytes: must hold one datagram of "
                            ".max_datagram_bytes plus its 4-byte header (100004 bytes)"));
    // The key table's own rules, for completeness: types, bounds, unknown keys.
    EXPECT_THAT(problems(with(kSample, {{"peer", "192.0.2.2:3782"}})),
                ElementsAre(".transports[0].config.peer: unknown key (did you mean 'peers'?)"));
    EXPECT_THAT(
        problems(with(kSample, {{"user_timeout_ms", 100}})),
        ElementsAre(".transports[0].config.user_timeout_ms: 100 is out of range: integer in [500, 600000]"));
    EXPECT_THAT(
        problems(with(kSample, {{"bind_address", "192.0.2.300"}})),
        ElementsAre(".transports[0].config.bind_address: '192.0.2.300' is not an IPv4 or IPv6 address"));
}

TEST_F(TransportTcpNetns, StartNamesTheAddressItCannotUse) {
    std::string error;
    {
        auto options = loopback_options(1, {2});
        options.listen = endpoint("192.0.2.77");  // not on any interface of this namespace
        Node a(io_, options);
        EXPECT_FALSE(a.start(error));
        EXPECT_EQ(error, "listen 192.0.2.77:3782: cannot bind: cannot assign requested address");
    }
    {
        auto options = loopback_options(1, {2});
        options.bind_address = boost::asio::ip::make_address("198.51.100.7");
        Node a(io_, options);
        EXPECT_FALSE(a.start(error));
        EXPECT_EQ(error, "bind_address 198.51.100.7: cannot bind: cannot assign requested address");
    }
    Node first(io_, loopback_options(1, {2}));
    ASSERT_NO_FATAL_FAILURE(first.start());
    EXPECT_FALSE(first.start(error));
    EXPECT_EQ(error, "the transport is already started");
    Node second(io_, loopback_options(1, {3}));
    EXPECT_FALSE(second.start(error));
    EXPECT_EQ(error, "listen 127.0.0.1:3782: cannot bind: address already in use");
    // A refused start leaves nothing behind: sending is a counted local drop.
    EXPECT_FALSE(second.send(datagram(1, 0, 10)));
    EXPECT_EQ(second.counter("tx_dropped"), 1);
}

}  // namespace
}  // namespace transport_tcp::test
