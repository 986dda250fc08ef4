// SPDX-License-Identifier: GPL-2.0-or-later
// transport-tipc's peer supervision, inside the test VM: a transport that stops is reported down at the
// others within milliseconds, a node whose link is cut after TIPC's link tolerance (both measured and
// printed); a node with two ports stays up until the last goes; a lost topology connection keeps the last
// known peers, and the relisting after the reconnect reports only what changed; scope node keeps to its
// TIPC node; start() refusals name the problem.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>

#include "tipc_lab.hpp"

namespace tipc::test {
namespace {

using ctsync::sdk::LinkState;
using ctsync::sdk::PeerState;
using namespace std::chrono_literals;

class TipcMembership : public TipcVmTest {};

TEST_F(TipcMembership, StoppedTransportIsReportedDownAtTheOthers) {
    ASSERT_NO_FATAL_FAILURE(start_cluster(3));
    const auto link_reports = node(1).links.size();  // down first perhaps (started alone), then up
    const auto stopped = Clock::now();
    node(3).stop();
    ASSERT_TRUE(run_until(io_, [&] {
        return node(1).reports(3, PeerState::kDown) == 1 && node(2).reports(3, PeerState::kDown) == 1;
    }));
    for (std::uint32_t id : {1u, 2u}) {
        const auto report = node(id).reports(3).back();
        print_measured("node " + std::to_string(id) + " reports stopped node 3 down after",
                       ms_between(stopped, report.at));
        EXPECT_LT(ms_between(stopped, report.at), 2000.0) << "a closed socket's withdrawal travels at once";
        EXPECT_NE(report.detail.find("tipc: node 3 withdrew service 18061 (port "), std::string::npos)
            << report.detail;
        EXPECT_TRUE(node(id).link_up()) << "another peer is still up";
        EXPECT_EQ(node(id).gauge("peers_up"), 1);
        EXPECT_TRUE(node(id).logged("event=peer_down node=3 service=18061"));
    }
    EXPECT_EQ(node(1).links.size(), link_reports) << "the link stayed up: no report";
    // The last peer going takes the link down, saying why.
    node(2).stop();
    ASSERT_TRUE(
        run_until(io_, [&] { return node(1).reports(2, PeerState::kDown) == 1 && !node(1).link_up(); }));
    EXPECT_NE(node(1).links.back().detail.find("tipc: no peer left (node 2 withdrew service 18061"),
              std::string::npos)
        << node(1).links.back().detail;
    EXPECT_EQ(node(1).gauge("link_up"), 0);
    EXPECT_EQ(node(1).gauge("peers_up"), 0);
    EXPECT_EQ(node(1).counter("peer_changes"), 4) << "two up, two down";
    EXPECT_TRUE(node(1).send("nobody listens")) << "sent all the same (only our own socket gets it)";
}

TEST_F(TipcMembership, CutLinkIsReportedDownAfterTheLinkToleranceAndBackUpWhenRestored) {
    ASSERT_NO_FATAL_FAILURE(start_cluster(3));
    const auto cut = Clock::now();
    lab_->cut(2);  // node 3's bridge port: node 3 loses carrier, nodes 1 and 2 only stop hearing it
    ASSERT_TRUE(run_until(
        io_,
        [&] {
            return node(1).reports(3, PeerState::kDown) == 1 && node(2).reports(3, PeerState::kDown) == 1 &&
                   node(3).reports(1, PeerState::kDown) == 1 && node(3).reports(2, PeerState::kDown) == 1 &&
                   !node(3).link_up();
        },
        20s))
        << "node 1: " << node(1).reports(3, PeerState::kDown) << ", node 3 link " << node(3).link_up();
    for (std::uint32_t id : {1u, 2u}) {
        const double ms = ms_between(cut, node(id).reports(3).back().at);
        print_measured("node " + std::to_string(id) + " reports cut-off node 3 down after", ms);
        // TIPC's default link tolerance is 1.5 s: the link is declared lost once it has been silent that
        // long.
        EXPECT_GT(ms, 500.0) << "faster than any link supervision: was it a carrier event?";
        EXPECT_LT(ms, 8000.0);
        EXPECT_TRUE(node(id).link_up());
    }
    print_measured("node 3 (carrier lost) reports its link down after",
                   ms_between(cut, node(3).links.back().at));
    EXPECT_NE(node(3).links.back().detail.find("tipc: no peer left"), std::string::npos);
    ASSERT_TRUE(node(1).send("while 3 is away"));
    ASSERT_TRUE(run_until(io_, [&] { return node(2).datagrams.size() == 1; }));

    const auto restored = Clock::now();
    lab_->restore(2);
    ASSERT_TRUE(run_until(
        io_,
        [&] {
            return node(1).sees_up(3) && node(2).sees_up(3) && node(3).sees_up(1) && node(3).sees_up(2) &&
                   node(3).link_up();
        },
        30s))
        << lab_->links(2);
    print_measured("node 1 reports node 3 up again after the port came back",
                   ms_between(restored, node(1).reports(3).back().at));
    ASSERT_TRUE(node(3).send("back"));
    ASSERT_TRUE(
        run_until(io_, [&] { return node(1).datagrams.size() == 1 && node(2).datagrams.size() == 2; }));
    EXPECT_EQ(node(1).datagrams.back(), "back");
    EXPECT_EQ(node(3).datagrams.size(), 0u) << "nothing sent while it was away reaches it later";
}

TEST_F(TipcMembership, ANodeWithTwoPortsStaysUpUntilTheLastOneCloses) {
    ASSERT_NO_FATAL_FAILURE(start_cluster(2));
    // A second transport with node id 2 in node 2's namespace: a restarting ctsyncd whose old socket lives
    // on.
    Node second(io_, 2, "tipc2-second");
    std::string error;
    ASSERT_TRUE(second.start(lab_->ns(1), TransportOptions{}, error)) << error;
    ASSERT_TRUE(
        run_until(io_, [&] { return node(1).transport().peers().ports(2) == 2 && second.sees_up(1); }));
    EXPECT_EQ(node(1).reports(2, PeerState::kUp), 1u) << "a second port is no new peer";
    // Each node-2 socket sees the other publish its own id: a misconfiguration, logged as such.
    ASSERT_TRUE(run_until(io_, [&] { return node(2).counter("topology_ignored") >= 1; }));
    EXPECT_TRUE(node(2).logged("event=node_id_conflict reason=own_node_id"));
    EXPECT_GE(second.counter("topology_ignored"), 1);

    node(2).stop();
    ASSERT_TRUE(run_until(io_, [&] { return node(1).transport().peers().ports(2) == 1; }));
    run_for(io_, 500ms);
    EXPECT_EQ(node(1).reports(2, PeerState::kDown), 0u) << "one port left: node 2 is still up";
    EXPECT_TRUE(node(1).link_up());
    ASSERT_TRUE(second.send("from the second port"));
    ASSERT_TRUE(run_until(io_, [&] { return node(1).datagrams.size() == 1; }));

    second.stop();
    ASSERT_TRUE(
        run_until(io_, [&] { return node(1).reports(2, PeerState::kDown) == 1 && !node(1).link_up(); }));
}

TEST_F(TipcMembership, LostTopologyConnectionKeepsThePeersAndTheRelistingReportsOnlyChanges) {
    // A longer first retry (1 s instead of 100 ms), so that a change happens while node 1 is disconnected.
    TransportOptions options;
    options.topology_retry_min = 1000ms;
    options.topology_retry_max = 2000ms;
    ASSERT_NO_FATAL_FAILURE(start_cluster(3, options));
    Node& relisting = node(1);

    // The connection ends (as if the topology server had hung up); then node 3 goes away.
    const int fd = relisting.transport().topology_fd();
    ASSERT_GE(fd, 0);
    const auto lost = Clock::now();
    ASSERT_EQ(::shutdown(fd, SHUT_RDWR), 0);
    node(3).stop();
    ASSERT_TRUE(run_until(io_, [&] { return node(2).reports(3, PeerState::kDown) == 1; }));
    EXPECT_TRUE(relisting.transport().peers().up(3)) << "the last known state holds while disconnected";
    EXPECT_EQ(relisting.reports(3, PeerState::kDown), 0u);
    EXPECT_TRUE(run_until(
        io_, [&] { return relisting.logged("event=topology_lost"); }, 2s));

    ASSERT_TRUE(run_until(
        io_, [&] { return relisting.reports(3, PeerState::kDown) == 1; }, 10s));
    const auto report = relisting.reports(3).back();
    print_measured("reconnect and relisting after the topology connection was lost",
                   ms_between(lost, report.at));
    EXPECT_GE(ms_between(lost, report.at), 900.0) << "not before the first retry (1 s)";
    EXPECT_NE(report.detail.find("tipc: node 3 no longer publishes service 18061, found when the topology "
                                 "server listed the service again"),
              std::string::npos)
        << report.detail;
    EXPECT_EQ(relisting.counter("topology_reconnects"), 1);
    EXPECT_TRUE(relisting.logged("event=topology_reconnected"));
    // Node 2 was up before and after: not reported again; the link never went down.
    run_for(io_, 300ms);
    EXPECT_EQ(relisting.reports(2).size(), 1u);
    const auto link_reports = relisting.links.size();
    EXPECT_EQ(relisting.links.back().state, LinkState::kUp);
    EXPECT_TRUE(relisting.link_up());
    EXPECT_EQ(relisting.links.size(), link_reports) << "no link report during or after the relisting";
    // The new connection is live: changes are reported as they happen again.
    node(2).stop();
    ASSERT_TRUE(
        run_until(io_, [&] { return relisting.reports(2, PeerState::kDown) == 1 && !relisting.link_up(); }));
    EXPECT_NE(relisting.reports(2).back().detail.find("withdrew"), std::string::npos);
}

TEST_F(TipcMembership, NodeScopeKeepsToThisTipcNode) {
    lab_ = std::make_unique<TipcLab>(2);
    std::string why;
    ASSERT_TRUE(lab_->wait_links(30s, why)) << why;
    // Two node-scope instances in one namespace (one TIPC node), and a cluster-scope one on the other node.
    TransportOptions local;
    local.scope = Scope::kNode;
    Node a(io_, 1), b(io_, 2), remote(io_, 3);
    std::string error;
    ASSERT_TRUE(a.start(lab_->ns(0), local, error)) << error;
    ASSERT_TRUE(b.start(lab_->ns(0), local, error)) << error;
    ASSERT_TRUE(remote.start(lab_->ns(1), TransportOptions{}, error)) << error;
    ASSERT_TRUE(run_until(io_, [&] { return a.sees_up(2) && b.sees_up(1) && a.link_up() && b.link_up(); }));
    // The remote instance publishes cluster-wide: seen by the subscription, ignored under scope node.
    ASSERT_TRUE(run_until(
        io_, [&] { return a.counter("topology_ignored") >= 1 && b.counter("topology_ignored") >= 1; }));
    EXPECT_TRUE(a.logged("event=publication_ignored reason=other_tipc_node"));
    ASSERT_TRUE(a.send("a"));
    ASSERT_TRUE(remote.send("remote"));
    ASSERT_TRUE(run_until(io_, [&] { return b.datagrams.size() == 1; }));
    run_for(io_, 500ms);
    EXPECT_EQ(b.datagrams, (std::vector<std::string>{"a"}));
    EXPECT_TRUE(a.datagrams.empty()) << "neither its own nor the remote node's";
    EXPECT_EQ(a.reports(3).size(), 0u);
    EXPECT_EQ(remote.transport_peers_up(), 0u) << "node-scope publications never leave their node";
    EXPECT_FALSE(remote.link_up());
}

TEST_F(TipcMembership, StartRefusalsNameTheProblem) {
    lab_ = std::make_unique<TipcLab>(1);
    {
        TransportOptions reserved;
        reserved.service_type = 10;
        Node n(io_, 1);
        std::string error;
        EXPECT_FALSE(n.start(lab_->ns(0), reserved, error));
        EXPECT_EQ(error, "service_type 10 is reserved by TIPC (0 to 63 are)");
        EXPECT_FALSE(n.send("x"));
        EXPECT_EQ(n.counter("tx_dropped"), 1);
    }
    {
        TransportOptions wraps;
        wraps.importance = Importance::kCritical;
        wraps.receive_buffer_bytes = 268435456;
        Node n(io_, 1);
        std::string error;
        EXPECT_FALSE(n.start(lab_->ns(0), wraps, error));
        EXPECT_EQ(error,
                  "receive_buffer_bytes 268435456 is too large for importance critical (at most 268435455)");
    }
    {
        Node n(io_, 1);
        std::string error;
        ASSERT_TRUE(n.start(lab_->ns(0), TransportOptions{}, error)) << error;
        ::testing::NiceMock<ctsync::testkit::MockTransportSink> other;
        EXPECT_FALSE(n.transport().start(other, error));
        EXPECT_EQ(error, "transport-tipc: already started");
        // Alone: the listing completes with nobody, and the link is reported down with the reason.
        ASSERT_TRUE(run_until(io_, [&] { return !n.links.empty(); }));
        EXPECT_EQ(n.links.front().state, LinkState::kDown);
        EXPECT_EQ(n.links.front().detail, "tipc: no peer publishes service 18061 yet");
        n.stop();
        EXPECT_FALSE(n.transport().start(other, error));
        EXPECT_EQ(error, "transport-tipc: start after stop");
        EXPECT_TRUE(n.logged("event=transport_stopped"));
    }
}

}  // namespace
}  // namespace tipc::test
