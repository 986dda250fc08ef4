// SPDX-License-Identifier: GPL-2.0-or-later
// The peer table of transport-tipc: which node ids are up, from the topology server's port events.
#include "peer_table.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

namespace tipc::test {
namespace {

constexpr std::uint32_t kOwn = 1;
constexpr PortId kPortA{0x1001002, 100};
constexpr PortId kPortB{0x1001002, 200};  // a second socket on the same TIPC node
constexpr PortId kPortC{0x1001003, 300};  // another TIPC node

TEST(TipcPeerTable, FirstPortBringsANodeUpAndItsLastPortTakesItDown) {
    PeerTable table(kOwn);
    EXPECT_FALSE(table.up(2));
    EXPECT_EQ(table.publish(2, kPortA), (PeerTransition{2, true, kPortA}));
    EXPECT_TRUE(table.up(2));
    EXPECT_EQ(table.peers_up(), 1u);
    EXPECT_EQ(table.ports(2), 1u);
    EXPECT_EQ(table.withdraw(2, kPortA), (PeerTransition{2, false, kPortA}));
    EXPECT_FALSE(table.up(2));
    EXPECT_EQ(table.peers_up(), 0u);
    EXPECT_EQ(table.ports(2), 0u);
}

TEST(TipcPeerTable, ANodeWithSeveralPortsStaysUpUntilTheLastOneGoes) {
    PeerTable table(kOwn);
    ASSERT_TRUE(table.publish(2, kPortA));
    EXPECT_EQ(table.publish(2, kPortB), std::nullopt) << "a second port is no transition";
    EXPECT_EQ(table.ports(2), 2u);
    EXPECT_EQ(table.withdraw(2, kPortA), std::nullopt) << "one port left: still up";
    EXPECT_TRUE(table.up(2));
    EXPECT_EQ(table.ports(2), 1u);
    EXPECT_EQ(table.withdraw(2, kPortB), (PeerTransition{2, false, kPortB})) << "the last port reports down";
    EXPECT_FALSE(table.up(2));
}

TEST(TipcPeerTable, NodesAreIndependent) {
    PeerTable table(kOwn);
    ASSERT_TRUE(table.publish(2, kPortA));
    ASSERT_TRUE(table.publish(3, kPortC));
    EXPECT_EQ(table.nodes_up(), (std::vector<std::uint32_t>{2, 3}));
    EXPECT_EQ(table.withdraw(3, kPortA), std::nullopt) << "node 2's port is not node 3's";
    EXPECT_EQ(table.withdraw(3, kPortC), (PeerTransition{3, false, kPortC}));
    EXPECT_EQ(table.nodes_up(), (std::vector<std::uint32_t>{2}));
}

TEST(TipcPeerTable, OwnNodeIsNeverAPeer) {
    PeerTable table(kOwn);
    EXPECT_EQ(table.publish(kOwn, kPortA), std::nullopt);
    EXPECT_FALSE(table.up(kOwn));
    EXPECT_EQ(table.peers_up(), 0u);
    EXPECT_EQ(table.withdraw(kOwn, kPortA), std::nullopt);
}

TEST(TipcPeerTable, RepeatedEventsChangeNothing) {
    PeerTable table(kOwn);
    ASSERT_TRUE(table.publish(2, kPortA));
    EXPECT_EQ(table.publish(2, kPortA), std::nullopt);
    EXPECT_EQ(table.ports(2), 1u);
    ASSERT_TRUE(table.withdraw(2, kPortA));
    EXPECT_EQ(table.withdraw(2, kPortA), std::nullopt);
    EXPECT_EQ(table.withdraw(7, kPortB), std::nullopt) << "a node never seen";
    EXPECT_EQ(table.peers_up(), 0u);
}

TEST(TipcPeerTable, RebuildKeepsTheLastStateAndReportsOnlyDifferences) {
    PeerTable table(kOwn);
    ASSERT_TRUE(table.publish(2, kPortA));
    ASSERT_TRUE(table.publish(3, kPortC));
    table.begin_rebuild();
    EXPECT_TRUE(table.rebuilding());
    // The listing: node 2 again (through another port now), node 4 new, node 3 missing, our own instance.
    EXPECT_EQ(table.publish(2, kPortB), std::nullopt);
    EXPECT_EQ(table.publish(4, {0x1001004, 400}), std::nullopt);
    EXPECT_EQ(table.publish(kOwn, {0x1001001, 1}), std::nullopt);
    // Meanwhile the last known state holds.
    EXPECT_TRUE(table.up(3));
    EXPECT_FALSE(table.up(4));
    EXPECT_EQ(table.peers_up(), 2u);
    const auto changes = table.finish_rebuild();
    EXPECT_EQ(changes, (std::vector<PeerTransition>{{3, false, kPortC}, {4, true, {0x1001004, 400}}}));
    EXPECT_FALSE(table.rebuilding());
    EXPECT_EQ(table.nodes_up(), (std::vector<std::uint32_t>{2, 4}));
    EXPECT_EQ(table.ports(2), 1u) << "the rebuilt table holds only what was listed";
    // Live again: transitions are reported as before.
    EXPECT_EQ(table.withdraw(2, kPortB), (PeerTransition{2, false, kPortB}));
}

TEST(TipcPeerTable, EventsDuringARebuildAreAppliedToTheNewTable) {
    PeerTable table(kOwn);
    ASSERT_TRUE(table.publish(2, kPortA));
    table.begin_rebuild();
    EXPECT_EQ(table.publish(2, kPortA), std::nullopt);
    EXPECT_EQ(table.withdraw(2, kPortA), std::nullopt) << "gone again before the listing ended";
    EXPECT_TRUE(table.up(2));
    EXPECT_EQ(table.finish_rebuild(), (std::vector<PeerTransition>{{2, false, kPortA}}));
}

TEST(TipcPeerTable, ASecondRebuildStartsOverAndFinishWithoutRebuildIsEmpty) {
    PeerTable table(kOwn);
    EXPECT_TRUE(table.finish_rebuild().empty());
    table.begin_rebuild();
    EXPECT_EQ(table.publish(5, kPortA), std::nullopt);
    table.begin_rebuild();  // the connection broke again during the listing
    EXPECT_EQ(table.publish(6, kPortB), std::nullopt);
    EXPECT_EQ(table.finish_rebuild(), (std::vector<PeerTransition>{{6, true, kPortB}}));
    EXPECT_FALSE(table.up(5));
}

TEST(TipcPeerTable, CountsTheTipcNodesBehindANodeId) {
    PeerTable table(kOwn);
    ASSERT_TRUE(table.publish(2, kPortA));
    EXPECT_EQ(table.publish(2, kPortB), std::nullopt);
    EXPECT_EQ(table.tipc_nodes(2), 1u) << "two sockets of one machine";
    EXPECT_EQ(table.publish(2, kPortC), std::nullopt);
    EXPECT_EQ(table.tipc_nodes(2), 2u) << "two machines with one node id";
    EXPECT_EQ(table.tipc_nodes(9), 0u);
}

TEST(TipcPeerTable, FormatsPortsAsTipcDoes) {
    EXPECT_EQ(format_port({0x1001002, 3938447364u}), "1001002:3938447364");
    EXPECT_EQ(format_port({0, 7}), "0:7");
}

}  // namespace
}  // namespace tipc::test
