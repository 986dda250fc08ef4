// SPDX-License-Identifier: GPL-2.0-or-later
// A kernel UPDATE event carries only what changed: a mark set by nftables on a later packet of an
// established TCP connection arrives without the TCP state (no CTA_PROTOINFO). The internal cache keeps the
// state it held (KernelView completes the update), and a filter on the state keeps judging the whole entry:
// without that, the flow would read as state NONE and `tcp and state established` would take it out of
// replication.
#include <gtest/gtest.h>

#include <thread>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;

const std::string kLabPeer = CTSYNC_LAB_PEER;

TEST(PartialUpdates, AMarkSetOnALaterPacketKeepsTheTcpStateAndTheFilterVerdict) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    TempDir dir;
    NetNs ns("partial");
    // Client to server data packets only (longer than a bare ACK): the mark comes after ESTABLISHED.
    write_file(dir.path() / "mark.nft", R"(table inet ctsync_test {
    chain out {
        type filter hook output priority 0;
        tcp dport 5555 ct state established meta length > 52 ct mark set 7
    }
}
)");
    auto nft = run(ns.exec({"nft", "-f", (dir.path() / "mark.nft").string()}));
    ASSERT_EQ(nft.exit_code, 0) << nft.err;
    auto config = instance_config(dir.path(), 1);
    config["source"] = {{"plugin", "source-ctnetlink"}, {"config", {{"expectations", false}}}};
    config["filters"] = {{{"plugin", "filter-bpf"},
                          {"name", "established"},
                          {"config", {{"expression", "tcp and state established"}}}}};
    auto file = write_config(dir.path(), config);
    Process daemon(ns.exec({kCtsyncd, "-C", file.string()}));
    ASSERT_TRUE(wait_until(
        [&] {
            auto s = ctl_json(file, "status");
            return !s.is_null() && s["tables"]["internal_synced"].get<bool>();
        },
        10s))
        << daemon.err();
    Process server(ns.exec({kLabPeer, "tcp-server", "5555"}));
    std::this_thread::sleep_for(200ms);
    Process client(
        ns.exec({kLabPeer, "tcp-client", "127.0.0.1", "5555", "--send", "hello", "--hold-ms", "5000"}));
    nlohmann::json held;
    EXPECT_TRUE(wait_until(
        [&] {
            auto dump = ctl_json(file, "dump");
            for (const auto& f : dump.value("flows", nlohmann::json::array())) {
                if (f["original"]["dport"] == 5555 && f["mark"] == 7) {
                    held = f;
                    return true;
                }
            }
            return false;
        },
        10s))
        << "the flow with mark 7 is not in the internal cache: " << ctl_json(file, "dump").dump();
    EXPECT_EQ(held["tcp"]["state"], 3) << held.dump();  // ESTABLISHED, as before the mark-only update
    auto stats = ctl_json(file, "stats");
    EXPECT_GE(metric(stats, "source-ctnetlink.events_update"), 2);
    EXPECT_EQ(client.wait(10s).value_or(-1), 0) << client.err();
    EXPECT_EQ(daemon.terminate(10s).value_or(-1), 0);
}

}  // namespace
}  // namespace ctsync::test
