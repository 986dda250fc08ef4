// SPDX-License-Identifier: GPL-2.0-or-later
// In-process lab for transport-mcast: network namespaces joined by veth pairs, and transport instances whose
// sockets were created inside them. A socket belongs to the namespace of the thread that created it, so the
// test thread enters a namespace only while it starts a transport (or opens a helper socket) there; one
// io_context on the test thread then drives every node, whatever its namespace.
#pragma once

#include <gmock/gmock.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <ctsync/sdk/testing/mocks.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mcast_transport.hpp"
#include "tests/support/netns.hpp"

namespace mcast::test {

using ctsync::test::NetNs;

// Enters `ns` on the calling thread until destroyed. Throws std::runtime_error when it cannot; aborts
// when it cannot return (a test thread left in a lab namespace would run the rest of the suite there).
class EnterNetns {
  public:
    explicit EnterNetns(const NetNs& ns);
    ~EnterNetns();
    EnterNetns(const EnterNetns&) = delete;
    EnterNetns& operator=(const EnterNetns&) = delete;

  private:
    int home_ = -1;
};

// "ip -n <ns> <args...>", 10 s bound; throws with ip's stderr on failure.
void ip(const NetNs& ns, std::vector<std::string> args);
// "tc -n <ns> <args...>", 10 s bound; throws on failure.
void tc(const NetNs& ns, std::vector<std::string> args);
// Turns duplicate address detection off for interfaces created later in `ns`, so that IPv6 link-local
// addresses are usable as soon as a link is up.
void no_dad(const NetNs& ns);
// A veth pair: `a_name` in `a`, `b_name` in `b`, both up. Each end gets the IPv4 address given (CIDR) unless
// empty.
void veth(const NetNs& a, const std::string& a_name, const std::string& a_address, const NetNs& b,
          const std::string& b_name, const std::string& b_address);
// Waits (bounded) until `ifname` in `ns` has an IPv6 link-local address.
bool wait_link_local(const NetNs& ns, const std::string& ifname);

// One transport instance with recording host services. Not copyable; the io_context outlives it.
class Node {
  public:
    Node(boost::asio::io_context& io, std::string name);
    ~Node();
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    // Creates the transport while inside `ns` and starts it.
    bool start(const NetNs& ns, TransportOptions options, std::string& error);
    bool send(const std::string& payload);

    std::int64_t counter(const std::string& name) const { return metrics_.counter_value(name); }
    std::int64_t gauge(const std::string& name) { return metrics_.gauge(name, "").value(); }
    bool logged(const std::string& fragment) const;
    McastTransport& transport() { return *transport_; }

    std::vector<std::string> datagrams;  // payloads, in arrival order
    std::vector<std::pair<ctsync::sdk::LinkState, std::string>> links;
    std::vector<std::string> log_lines;

  private:
    boost::asio::io_context& io_;
    std::string name_;
    ::testing::NiceMock<ctsync::testkit::MockLogger> logger_;
    ctsync::testkit::FakeMetrics metrics_;
    ::testing::NiceMock<ctsync::testkit::MockTransportSink> sink_;
    std::unique_ptr<McastTransport> transport_;
};

// Runs `io` until `done()` holds, at most `timeout`. Returns done().
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds timeout = std::chrono::seconds(5));
// Runs `io` for `duration`: the bounded quiet period after which "nothing else arrived" is asserted.
void run_for(boost::asio::io_context& io, std::chrono::milliseconds duration);

// A plain UDP socket opened inside a namespace, for what the transport must not do or must refuse: it can
// send with multicast loopback on, and it can observe what arrives (with TTL / hop limit).
class PlainSocket {
  public:
    PlainSocket(const NetNs& ns, int family, const std::string& ifname);
    ~PlainSocket();
    PlainSocket(const PlainSocket&) = delete;
    PlainSocket& operator=(const PlainSocket&) = delete;

    // Sends `payload` to group:port out of the interface, with multicast loopback `loop`.
    void send_to_group(const std::string& group, std::uint16_t port, const std::string& payload, bool loop);
    // Binds to group:port on the interface, joins the group there and asks for the TTL / hop limit.
    void listen(const std::string& group, std::uint16_t port);
    struct Received {
        std::string payload;
        int hop_limit = -1;  // IP TTL or IPv6 hop limit as received
    };
    // Waits up to `timeout` for one datagram.
    std::optional<Received> receive(std::chrono::milliseconds timeout);

  private:
    int fd_ = -1;
    int family_;
    int ifindex_ = 0;
};

}  // namespace mcast::test
