// SPDX-License-Identifier: GPL-2.0-or-later
// A committed entry gets the NAT binding its peer had, ports included, for every protocol with ports the
// kernel tracks: libnetfilter_conntrack 1.0.9 writes CTA_NAT_PROTO for TCP and UDP only, so without the
// source's own NAT attributes an SCTP or UDP-Lite entry came out with its address translated and its port
// not (in the VM lab the server answered the backup's untranslated port with an ABORT).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;

nlohmann::json natted_flow(int protocol, int index) {
    const std::string client = "192.0.2." + std::to_string(30 + index);
    const std::string server = "198.51.100." + std::to_string(30 + index);
    nlohmann::json f = {{"original",
                         {{"family", "ipv4"},
                          {"protocol", protocol},
                          {"src", client},
                          {"dst", "203.0.113.5"},
                          {"sport", 5000},
                          {"dport", 80}}},
                        // As the primary's kernel reports it: from the DNAT target's port 8080 to the SNAT
                        // address's port 61000.
                        {"reply",
                         {{"family", "ipv4"},
                          {"protocol", protocol},
                          {"src", server},
                          {"dst", "198.51.100.1"},
                          {"sport", 8080},
                          {"dport", 61000 + index}}},
                        {"status", 14},  // seen reply, assured, confirmed
                        {"timeout", 300},
                        {"snat", {{"address", "198.51.100.1"}, {"port", 61000 + index}}},
                        {"dnat", {{"address", server}, {"port", 8080}}}};
    if (protocol == 6) {
        f["tcp"] = {{"state", 3}};  // ESTABLISHED
    } else if (protocol == 132) {
        f["sctp"] = {{"state", 4}, {"vtag_original", 0x1234}, {"vtag_reply", 0x5678}};  // ESTABLISHED
    }
    return f;
}

TEST(SourceCtnetlinkNatPorts, EveryProtocolsCommitKeepsItsTranslatedPorts) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    TempDir dir;
    NetNs fw("natports");
    auto config = instance_config(dir.path(), 2);
    config["source"] = {{"plugin", "source-ctnetlink"}};
    auto file = write_config(dir.path(), config, "fw.json");
    Process daemon(fw.exec({kCtsyncd, "-C", file.string()}));
    ASSERT_TRUE(wait_until([&] { return !ctl_json(file, "status").is_null(); }, 10s, 50ms)) << daemon.err();

    const std::vector<std::pair<int, std::string>> protocols = {
        {6, "tcp"}, {17, "udp"}, {136, "udplite"}, {132, "sctp"}};
    nlohmann::json table = {{"flows", nlohmann::json::array()}, {"expectations", nlohmann::json::array()}};
    for (std::size_t i = 0; i < protocols.size(); ++i) {
        table["flows"].push_back(natted_flow(protocols[i].first, static_cast<int>(i)));
    }
    write_file(dir / "flows.json", table.dump());
    auto imported = run({kCtsyncctl, "-C", file.string(), "import", (dir / "flows.json").string()});
    ASSERT_EQ(imported.exit_code, 0) << imported.out << imported.err;
    auto commit = run({kCtsyncctl, "-C", file.string(), "commit", "--json"});
    ASSERT_EQ(commit.exit_code, 0) << commit.out << commit.err;
    auto report = nlohmann::json::parse(commit.out, nullptr, false);
    EXPECT_EQ(report["applied"], protocols.size()) << commit.out;
    EXPECT_EQ(report["failed"], 0) << commit.out;

    const std::string listing = run(fw.exec({"conntrack", "-L"})).out;
    for (std::size_t i = 0; i < protocols.size(); ++i) {
        SCOPED_TRACE(protocols[i].second);
        const std::string expected = "src=198.51.100." + std::to_string(30 + i) +
                                     " dst=198.51.100.1 sport=8080 dport=" + std::to_string(61000 + i);
        EXPECT_THAT(listing, ::testing::HasSubstr(expected)) << listing;
    }
}

}  // namespace
}  // namespace ctsync::test
