// SPDX-License-Identifier: GPL-2.0-or-later
// transport-tipc: the core's datagrams as TIPC service multicast, and peer supervision by TIPC's topology
// service.
//
// Two sockets:
//   datagram — AF_TIPC SOCK_RDM, non-blocking, bound to the service {service_type, node.id} with scope
//              cluster or node; send() multicasts to {service_type, 0 .. 2^32-1}, which TIPC carries
//              reliably over its broadcast link (or replicates over its unicast links) to every socket
//              bound in that range, ours included (dropped by port id). Datagrams the kernel refuses at
//              our socket (its receive queue full) are counted from the socket's drop count; datagrams TIPC
//              returns undelivered (TIPC_DEST_DROPPABLE 0) are counted by the sender (tx_returned);
//   topology — AF_TIPC SOCK_SEQPACKET connected to the node's topology server, subscribed to every port
//              publishing the service: a node id that gains its first port is a peer up, one that loses
//              its last port (its socket closed, or TIPC lost the link to its node) a peer down. A lost
//              connection is reopened with backoff; the table is then rebuilt and only differences are
//              reported.
// Everything runs on the host's executor; the plugin owns no threads.
#pragma once

#include <linux/tipc.h>
#include <sys/socket.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <ctsync/sdk/datagram_queue.hpp>
#include <ctsync/sdk/sdk.hpp>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "peer_table.hpp"

namespace tipc {

inline constexpr std::uint32_t kDefaultServiceType = 18061;
inline constexpr std::uint32_t kFirstUserServiceType = TIPC_RESERVED_TYPES;  // 0..63 are TIPC's own
inline constexpr std::size_t kMaxUserMessage = TIPC_MAX_USER_MSG_SIZE;       // 66000
inline constexpr std::size_t kMinConfiguredDatagram = 512;

enum class Scope : std::uint8_t { kCluster, kNode };
// TIPC's message importance; the values are the kernel's (TIPC_LOW_IMPORTANCE ... TIPC_CRITICAL_IMPORTANCE).
enum class Importance : std::uint8_t { kLow = 0, kMedium = 1, kHigh = 2, kCritical = 3 };

const char* to_string(Scope scope);
const char* to_string(Importance importance);
// "cluster" / "node", "low" / "medium" / "high" / "critical"; false for anything else.
bool parse_scope(const std::string& text, Scope& out);
bool parse_importance(const std::string& text, Importance& out);

// Largest receive_buffer_bytes that works with `importance`: TIPC caps a datagram socket's receive queue at
// the granted buffer (twice the request) shifted left by the importance of the arriving message, computed
// in 32 bits, so a larger buffer wraps the limit to (nearly) zero and every datagram is refused.
std::size_t max_receive_buffer(Importance importance);

// Whether this kernel offers TIPC sockets (socket(AF_TIPC, SOCK_RDM)). False with a sentence for the
// operator: "this kernel has no TIPC (socket: EAFNOSUPPORT); load the tipc module", or the error.
bool probe_kernel(std::string& error);

struct TransportOptions {
    std::uint32_t service_type = kDefaultServiceType;
    Scope scope = Scope::kCluster;
    Importance importance = Importance::kHigh;
    std::size_t max_datagram_bytes = 65000;
    std::size_t send_buffer_bytes = 4u << 20;
    std::size_t receive_buffer_bytes = 4u << 20;
    std::size_t send_queue_datagrams = 4096;
    // Not config keys. The wait before reconnecting to the topology server: random in [max(min, d/2), d],
    // d doubling from min to max with each failure. Tests lengthen it to act while the connection is down.
    std::chrono::milliseconds topology_retry_min{100};
    std::chrono::milliseconds topology_retry_max{5000};
    // Bound on connecting to the topology server and on its answer to the subscription.
    std::chrono::milliseconds topology_timeout{2000};
};

// The transport object the factory returns. Created, used and destroyed on the executor thread; no member
// throws. Pending completions hold a weak reference only: it may be destroyed at any time after stop().
class TipcTransport final : public ctsync::sdk::Transport {
  public:
    // Registers the metrics; opens nothing.
    TipcTransport(const ctsync::sdk::PluginContext& context, TransportOptions options);
    ~TipcTransport() override;
    TipcTransport(const TipcTransport&) = delete;
    TipcTransport& operator=(const TipcTransport&) = delete;

    // Closes both sockets (withdrawing our publication: the peers see this node go down) and cancels the
    // timers; queued datagrams are discarded. Reports nothing to the sink. Idempotent.
    void stop() noexcept override;
    // Opens and binds the datagram socket, connects to the topology server and subscribes, in the calling
    // thread's network namespace (a reconnect later reopens the topology socket there too). The first
    // peer and link reports follow from the executor once the server has listed the current publications.
    bool start(ctsync::sdk::TransportSink& sink, std::string& error) noexcept override;
    // Multicasts the datagram to the service, or queues it while TIPC reports the link congested.
    bool send(std::span<const std::byte> datagram) noexcept override;
    std::size_t max_datagram_size() const noexcept override { return options_.max_datagram_bytes; }

    bool link_up() const noexcept { return link_up_; }
    const PeerTable& peers() const noexcept { return table_; }
    std::size_t send_queue_depth() const noexcept { return queue_.size(); }
    // This transport's datagram socket (valid after start()).
    PortId own_port() const noexcept { return own_port_; }
    // The topology connection's descriptor, -1 while there is none. For tests that cut it.
    int topology_fd() noexcept;

  private:
    using SendResult = ctsync::sdk::SendResult;
    using Throttle = ctsync::sdk::LogThrottle;
    enum class TopologyState { kClosed, kConnecting, kListing, kLive };

    bool open_datagram_socket(std::string& error);
    bool set_buffer(int fd, bool send_side, std::size_t bytes, std::size_t& granted, std::string& error);
    int open_topology_socket(std::string& error);
    bool subscribe(int fd, std::string& error);
    void close_all() noexcept;
    // Whether `node` is this TIPC node's address / `port` our datagram socket (re-reads our address once
    // when it does not match: TIPC may have changed it).
    bool on_own_node(std::uint32_t node);
    bool is_own_port(PortId port);

    SendResult send_now(std::span<const std::byte> datagram) noexcept;
    void wait_receive();
    void read_datagrams();
    void on_returned(std::uint32_t error_code, std::uint32_t bytes, PortId by);
    void count_overflows();

    void wait_topology();
    void read_topology();
    void on_topology_event(const tipc_event& event);
    void on_listing_complete();
    void topology_failed(const std::string& reason);
    void schedule_reconnect();
    void connect_topology();
    void on_topology_writable();
    void topology_attempt_failed(const std::string& reason);
    void arm_topology_deadline(const char* waiting_for);

    void report_peer(const PeerTransition& transition, const std::string& detail);
    void report_link(bool up, const std::string& detail);
    std::string peer_detail(const PeerTransition& transition, bool relisted) const;

    ctsync::sdk::PluginContext context_;
    TransportOptions options_;
    ctsync::sdk::Logger& log_;
    ctsync::sdk::TransportSink* sink_ = nullptr;
    // Handlers hold a weak reference: a completion that runs after the object is gone does nothing.
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);

    sockaddr_tipc destination_{};  // {service_type, 0, ~0}: every node's socket, ours included
    PortId own_port_;
    int home_netns_ = -1;  // the network namespace start() ran in, for reopening the topology socket

    boost::asio::posix::stream_descriptor socket_;
    boost::asio::posix::stream_descriptor topology_;
    boost::asio::steady_timer topology_deadline_;
    boost::asio::steady_timer reconnect_timer_;
    TopologyState topology_state_ = TopologyState::kClosed;
    std::uint64_t topology_generation_ = 0;  // bumped per connection: completions of an old one do nothing
    std::chrono::milliseconds backoff_;
    std::uint64_t failed_attempts_ = 0;
    std::minstd_rand random_;

    PeerTable table_;
    bool link_reported_ = false;  // the first listing is done and the link state was reported once
    bool link_up_ = false;

    std::vector<std::byte> receive_buffer_;
    bool started_ = false;
    bool stopped_ = false;
    std::uint32_t kernel_drops_ = 0;  // the socket's SK_MEMINFO_DROPS as last read

    Throttle tx_error_log_;
    Throttle tx_drop_log_;
    Throttle tx_returned_log_;
    Throttle rx_refused_log_;
    Throttle rx_error_log_;
    Throttle rx_overflow_log_;
    Throttle topology_ignored_log_;

    ctsync::sdk::Counter& datagrams_sent_;
    ctsync::sdk::Counter& bytes_sent_;
    ctsync::sdk::Counter& datagrams_received_;
    ctsync::sdk::Counter& bytes_received_;
    ctsync::sdk::Counter& tx_dropped_;
    ctsync::sdk::Counter& tx_oversize_;
    ctsync::sdk::Counter& tx_queued_;
    ctsync::sdk::Counter& tx_errors_;
    ctsync::sdk::Counter& tx_returned_;
    ctsync::sdk::Counter& rx_own_;
    ctsync::sdk::Counter& rx_foreign_;
    ctsync::sdk::Counter& rx_truncated_;
    ctsync::sdk::Counter& rx_errors_;
    ctsync::sdk::Counter& rx_overflows_;
    ctsync::sdk::Counter& peer_changes_;
    ctsync::sdk::Counter& topology_reconnects_;
    ctsync::sdk::Counter& topology_ignored_;
    ctsync::sdk::Gauge& peers_up_gauge_;
    ctsync::sdk::Gauge& queue_gauge_;
    ctsync::sdk::Gauge& link_up_gauge_;
    ctsync::sdk::Gauge& send_buffer_gauge_;
    ctsync::sdk::Gauge& receive_buffer_gauge_;
    // Datagrams waiting while TIPC reports the link congested (after the metrics it updates).
    ctsync::sdk::DatagramSendQueue queue_;
};

}  // namespace tipc
