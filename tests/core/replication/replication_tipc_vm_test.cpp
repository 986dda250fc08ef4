// SPDX-License-Identifier: GPL-2.0-or-later
// Replication over transport-tipc, inside the test VM (Debian's stock kernel has TIPC; the host's does not):
// three ctsyncd nodes, each a TIPC node in its own namespace with a bearer on a shared bridge, replicate 10k
// NATed entries and every backup's external cache must equal the primary's kernel table exactly (the checker
// of replication_netns_test.cpp). A node that dies is seen through TIPC's topology service — its service
// withdrawn when its socket closes, or its link lost when it vanishes from the network — and the engine takes
// it for gone at once (reason=transport), well before replication.peer_timeout_ms of ALIVE silence (1500 ms
// in this lab). Runs only inside the VM: the host test replication_tipc_vm (label vm) boots it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "tests/core/replication/replication_lab.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
constexpr int kFlows = 10000;
constexpr auto kPeerTimeout = 1500ms;  // the lab's replication.peer_timeout_ms

void require_tipc() {
    const int fd = ::socket(AF_TIPC, SOCK_RDM, 0);
    ASSERT_GE(fd, 0)
        << "no TIPC in this kernel: this test runs inside the VM (tests/vm, replication_tipc_vm)";
    ::close(fd);
}

// How many peers the primary takes for live.
std::size_t live_peers(ReplicationLab& lab) {
    std::size_t live = 0;
    const auto status = lab.primary().status();  // (kept: the loop below refers into it)
    for (const auto& p : status["replication"]["peers"]) {
        live += p["live"].get<bool>() ? 1 : 0;
    }
    return live;
}

// Waits until the primary has lost one more peer through its transport; the time it took, or nullopt.
std::optional<std::chrono::milliseconds> time_to_loss(ReplicationLab& lab, std::int64_t before,
                                                      std::chrono::steady_clock::time_point since) {
    if (!wait_until([&] { return lab.primary().stat("replication.peers_lost_by_transport") > before; }, 10s,
                    5ms)) {
        return std::nullopt;
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since);
}

TEST(ReplicationTipc, ThreeNodesHoldThePrimaryTableExactly) {
    require_tipc();
    ReplicationLab lab(Kind::kTipc, 1, kFlows);
    lab.start_all();
    lab.load();
    lab.expect_converged(240s);
    for (int b : {1, 2}) {
        EXPECT_EQ(lab.backup(b).stat("replication.rx_dropped_bad_tag"), 0);
        EXPECT_EQ(lab.backup(b).stat("replication.rx_malformed"), 0);
        EXPECT_EQ(lab.backup(b).stat("replication.rx_own"), 0) << "TIPC's multicast echoed our own datagrams";
    }
    EXPECT_GT(lab.primary().stat("tipc.datagrams_sent"), 0);
}

TEST(ReplicationTipc, AKilledDaemonIsSeenGoneThroughTheTopologyServiceBeforeAliveSilence) {
    require_tipc();
    ReplicationLab lab(Kind::kTipc, 1, kFlows);
    lab.start_all();
    ASSERT_TRUE(wait_until([&] { return live_peers(lab) == 2; }, 30s, 50ms)) << lab.primary().status().dump();
    const auto before = lab.primary().stat("replication.peers_lost_by_transport");
    const auto killed = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(lab.backup(2).daemon->pid(), SIGKILL), 0);
    const auto took = time_to_loss(lab, before, killed);
    ASSERT_TRUE(took.has_value()) << "the primary did not learn of the dead node from TIPC: "
                                  << lab.primary().status().dump();
    std::cerr << "SIGKILLed node seen gone through the topology service after " << took->count() << " ms\n";
    EXPECT_LT(*took, kPeerTimeout / 2) << "no faster than waiting for ALIVE silence";
    const auto log = read_file(lab.log_file(0));
    EXPECT_NE(log.find("event=peer_lost node=3 reason=transport"), std::string::npos) << log;
    EXPECT_EQ(log.find("event=peer_lost node=3 reason=silence"), std::string::npos);
    EXPECT_EQ(live_peers(lab), 1u) << "the other backup is untouched";
}

TEST(ReplicationTipc, ANodeCutOffTheNetworkIsSeenGoneByTipcLinkSupervisionBeforeAliveSilence) {
    require_tipc();
    ReplicationLab lab(Kind::kTipc, 1, kFlows);
    // TIPC's link tolerance (default 1500 ms) is the kernel's to tune, per bearer; set below peer_timeout.
    for (int n : {0, 1, 2}) {
        auto& node = n == 0 ? lab.primary() : lab.backup(n);
        must(node.ns->exec({"tipc", "bearer", "set", "tolerance", "400", "media", "eth", "dev", "sync0"}));
    }
    lab.start_all();
    ASSERT_TRUE(wait_until([&] { return live_peers(lab) == 2; }, 30s, 50ms)) << lab.primary().status().dump();
    const auto before = lab.primary().stat("replication.peers_lost_by_transport");
    // The node vanishes without a word, no carrier change anywhere: its switch port drops what it sends and
    // its own interface drops what reaches it (netdev ingress: the bridge family's rules need modules the
    // VM's initramfs does not carry).
    const auto drop_all = [](const char* device) {
        return fmt::format(
            "add table netdev ctsync_cut; add chain netdev ctsync_cut in {{ type filter hook ingress device "
            "\"{}\" priority 0; }}; add rule netdev ctsync_cut in drop",
            device);
    };
    must(lab.sw().exec({"nft", drop_all("s0n3")}));
    must(lab.backup(2).ns->exec({"nft", drop_all("sync0")}));
    const auto cut = std::chrono::steady_clock::now();
    const auto took = time_to_loss(lab, before, cut);
    ASSERT_TRUE(took.has_value()) << "the primary did not learn of the lost node from TIPC: "
                                  << lab.primary().status().dump();
    std::cerr << "node cut off the network seen gone by TIPC link supervision after " << took->count()
              << " ms (tolerance 400 ms)\n";
    EXPECT_LT(*took, kPeerTimeout) << "no faster than waiting for ALIVE silence";
    const auto log = read_file(lab.log_file(0));
    EXPECT_NE(log.find("event=peer_lost node=3 reason=transport"), std::string::npos) << log;
}

}  // namespace
}  // namespace ctsync::test
