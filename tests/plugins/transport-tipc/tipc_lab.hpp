// SPDX-License-Identifier: GPL-2.0-or-later
// In-process TIPC lab for transport-tipc, inside the test VM: network namespaces, each its own TIPC node,
// joined by veth pairs to one bridge (TIPC does not route: with three nodes or more they need a shared
// segment). A socket belongs to the namespace of the thread that created it, so the test thread enters a
// namespace only while it starts a transport (or opens a helper socket) there; one io_context on the test
// thread then drives every node. The transport reopens its topology socket in its own namespace by itself.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <ctsync/sdk/testing/mocks.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/netns.hpp"
#include "tipc_transport.hpp"

namespace tipc::test {

using ctsync::test::NetNs;
using Clock = std::chrono::steady_clock;

// Fails the test unless the kernel has TIPC: these tests run inside the VM (vm-run.sh), never on the host.
void require_tipc();

// Enters `ns` on the calling thread until destroyed. Throws std::runtime_error when it cannot; aborts when it
// cannot return (a test thread left in a lab namespace would run the rest of the suite there).
class EnterNetns {
  public:
    explicit EnterNetns(const NetNs& ns);
    ~EnterNetns();
    EnterNetns(const EnterNetns&) = delete;
    EnterNetns& operator=(const EnterNetns&) = delete;

  private:
    int home_ = -1;
};

// `nodes` namespaces ("<prefix>tn<lab>-<i>"), each with eth0 joined to bridge br0 in a switch namespace
// through port p<i> (STP off, so ports forward at once), each a TIPC node with identity "l<lab>n<i>" and an
// eth bearer on eth0. Everything is deleted with the lab.
class TipcLab {
  public:
    explicit TipcLab(std::size_t nodes);
    TipcLab(const TipcLab&) = delete;
    TipcLab& operator=(const TipcLab&) = delete;

    std::size_t size() const { return nodes_.size(); }
    const NetNs& ns(std::size_t i) const { return *nodes_.at(i); }
    // Waits (bounded) until every node has a TIPC link up to every other one; false with `why` otherwise.
    bool wait_links(std::chrono::milliseconds limit, std::string& why) const;
    // `tipc link list` in node i.
    std::string links(std::size_t i) const;
    // Takes node i's bridge port down: node i loses carrier at once (its bearer resets), the others only
    // notice through TIPC's link supervision (the link tolerance, 1.5 s by default).
    void cut(std::size_t i);
    void restore(std::size_t i);
    // Drops every frame arriving on node i's eth0 (nftables, netdev ingress) / stops doing so. Node i then
    // gets no acknowledgements: its links fill up and TIPC reports them congested. The carrier stays up.
    void block_ingress(std::size_t i);
    void unblock_ingress(std::size_t i);

  private:
    std::unique_ptr<NetNs> switch_;
    std::vector<std::unique_ptr<NetNs>> nodes_;
};

// One transport instance with recording host services. Not copyable; the io_context outlives it.
class Node {
  public:
    Node(boost::asio::io_context& io, std::uint32_t node_id, std::string name = {});
    ~Node();
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    // Creates the transport while inside `ns` and starts it.
    bool start(const NetNs& ns, TransportOptions options, std::string& error);
    bool send(const std::string& payload);
    void stop() { transport_->stop(); }

    std::int64_t counter(const std::string& name) const { return metrics_.counter_value(name); }
    std::int64_t gauge(const std::string& name) { return metrics_.gauge(name, "").value(); }
    bool logged(const std::string& fragment) const;
    TipcTransport& transport() { return *transport_; }
    std::size_t transport_peers_up() const { return transport_->peers().peers_up(); }
    std::uint32_t id() const { return id_; }

    struct PeerReport {
        std::uint32_t node;
        ctsync::sdk::PeerState state;
        std::string detail;
        Clock::time_point at;
    };
    struct LinkReport {
        ctsync::sdk::LinkState state;
        std::string detail;
        Clock::time_point at;
    };
    // Reports about `node` in `state` (all when `state` is omitted).
    std::vector<PeerReport> reports(std::uint32_t node) const;
    std::size_t reports(std::uint32_t node, ctsync::sdk::PeerState state) const;
    // Whether the last report about `node` says up.
    bool sees_up(std::uint32_t node) const;
    bool link_up() const { return !links.empty() && links.back().state == ctsync::sdk::LinkState::kUp; }

    std::vector<std::string> datagrams;  // payloads, in arrival order
    std::vector<PeerReport> peers;
    std::vector<LinkReport> links;
    std::vector<std::string> log_lines;

  private:
    boost::asio::io_context& io_;
    std::uint32_t id_;
    std::string name_;
    ::testing::NiceMock<ctsync::testkit::MockLogger> logger_;
    ctsync::testkit::FakeMetrics metrics_;
    ::testing::NiceMock<ctsync::testkit::MockTransportSink> sink_;
    std::unique_ptr<TipcTransport> transport_;
};

// Runs `io` until `done()` holds, at most `timeout`. Returns done().
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds timeout = std::chrono::seconds(10));
// Runs `io` for `duration`: the bounded quiet period after which "nothing else arrived" is asserted.
void run_for(boost::asio::io_context& io, std::chrono::milliseconds duration);
// Milliseconds from `from` to `to`.
double ms_between(Clock::time_point from, Clock::time_point to);
// Prints "measured: <what> <ms> ms" (the host test repeats these lines) and records it as a test property.
void print_measured(const std::string& what, double ms);

// A lab of `n` TIPC nodes with a transport each (node ids 1..n, node i in namespace i - 1).
class TipcVmTest : public ::testing::Test {
  protected:
    void SetUp() override;
    // Builds the lab, waits for TIPC's links, starts every transport with `options` and waits until each
    // reports every other node up and its link up.
    void start_cluster(std::size_t n, const TransportOptions& options = {});
    // The same with options per node: node i + 1 gets per_node[i].
    void start_cluster(const std::vector<TransportOptions>& per_node);
    // Whether node `index` reports every node in `ids` up (and no other peer).
    bool sees_exactly(std::size_t index, const std::vector<std::uint32_t>& ids) const;
    Node& node(std::uint32_t id) { return *nodes_.at(id - 1); }

    boost::asio::io_context io_;  // declared first: outlives the transports
    std::unique_ptr<TipcLab> lab_;
    std::vector<std::unique_ptr<Node>> nodes_;
};

}  // namespace tipc::test
