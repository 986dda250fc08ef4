// SPDX-License-Identifier: GPL-2.0-or-later
// transport-mcast: UDP multicast (IPv4 or IPv6) on one interface, bound strictly to that interface and
// group.
//
// Three sockets, each with one job:
//   receive — bound to the group address and port (not the wildcard) and to the interface
//             (SO_BINDTODEVICE); joined to the group on that interface only; IP(V6)_MULTICAST_ALL off;
//             every datagram is also checked against its IP_PKTINFO / IPV6_PKTINFO (arriving interface,
//             destination) and its source (none of this interface's own addresses);
//   send    — bound to the interface, multicast interface set to it, TTL / hop limit 1, loopback off;
//             non-blocking, with a bounded queue for when the socket buffer is full;
//   rtnetlink (two sockets, see rtnetlink.hpp) — link and address changes of the interface.
// Everything runs on the host's executor; the plugin owns no threads.
#pragma once

#include <sys/socket.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <cstdint>
#include <ctsync/sdk/datagram_queue.hpp>
#include <ctsync/sdk/sdk.hpp>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "rtnetlink.hpp"

namespace mcast {

inline constexpr std::uint16_t kDefaultPort = 3781;
inline constexpr std::size_t kIpv4HeaderBytes = 20 + 8;  // IPv4 + UDP
inline constexpr std::size_t kIpv6HeaderBytes = 40 + 8;  // IPv6 + UDP
inline constexpr std::size_t kMaxIpv4Payload = 65535 - kIpv4HeaderBytes;
inline constexpr std::size_t kMaxIpv6Payload = 65535 - 8;  // the payload length excludes the IPv6 header
inline constexpr std::size_t kMinConfiguredDatagram = 512;

// A multicast group as configured: its address, and whether it needs the interface as scope (IPv6
// link-scope groups).
struct Group {
    IpAddress address;
    std::string text;
    bool link_scope = false;
};

// Parses `text` as a multicast group: an IPv4 address in 224.0.0.0/4, or an IPv6 address in ff00::/8 whose
// scope reaches the link (not interface-local, not reserved). False and a message for the operator
// otherwise.
bool parse_group(const std::string& text, Group& out, std::string& error);

// Whether `name` can be a Linux interface name (1 to 15 bytes, no '/', ':' or white space, not "." or
// ".."). False and a message otherwise.
bool valid_interface_name(const std::string& name, std::string& error);

struct TransportOptions {
    std::string interface;
    std::string group;
    std::uint16_t port = kDefaultPort;
    std::size_t send_buffer_bytes = 4u << 20;
    std::size_t receive_buffer_bytes = 4u << 20;
    // 0: the interface's MTU minus the IP and UDP headers, followed when the MTU changes. Otherwise at most
    // that (checked at start; lowered with a warning should the MTU shrink later).
    std::size_t max_datagram_bytes = 0;
    std::size_t send_queue_datagrams = 4096;
    // Not a config key: the largest datagram read whole. A larger one is truncated by the kernel and
    // dropped (rx_truncated). Tests lower it; nothing a UDP socket receives exceeds the default.
    std::size_t receive_limit_bytes = 65536;
};

class McastTransport final : public ctsync::sdk::Transport {
  public:
    McastTransport(const ctsync::sdk::PluginContext& context, TransportOptions options);
    ~McastTransport() override;
    McastTransport(const McastTransport&) = delete;
    McastTransport& operator=(const McastTransport&) = delete;

    void stop() noexcept override;
    bool start(ctsync::sdk::TransportSink& sink, std::string& error) noexcept override;
    bool send(std::span<const std::byte> datagram) noexcept override;
    std::size_t max_datagram_size() const noexcept override { return max_datagram_; }

    // How a datagram arrived, as recvmsg() reported it.
    struct Arrival {
        bool has_pktinfo = false;  // IP_PKTINFO / IPV6_PKTINFO was present
        int ifindex = 0;           // the interface it arrived on
        IpAddress destination;     // its IP destination
        IpAddress source;
        bool truncated = false;  // MSG_TRUNC: larger than the read buffer
    };
    // The receive path's checks, then the sink. Public for the tests (the kernel already refuses most of
    // what they catch).
    void on_arrival(std::span<const std::byte> data, const Arrival& arrival) noexcept;
    // One rtnetlink notification. Public for the tests.
    void on_route_message(const nlmsghdr* nlh) noexcept;

    int ifindex() const { return ifindex_; }
    bool link_up() const { return link_up_; }
    std::size_t send_queue_depth() const { return queue_.size(); }

  private:
    using SendResult = ctsync::sdk::SendResult;
    using Throttle = ctsync::sdk::LogThrottle;

    bool open_send_socket(std::string& error);
    bool open_receive_socket(std::string& error);
    bool set_option(int fd, int level, int name, const void* value, std::size_t length, const char* option,
                    const char* socket_role, std::string& error);
    // SO_SNDBUFFORCE / SO_RCVBUFFORCE (root: not capped by net.core.[rw]mem_max), else the capped option.
    // `granted` is what the kernel reports afterwards (twice the request: its bookkeeping overhead).
    bool set_buffer(int fd, bool send_side, std::size_t bytes, std::size_t& granted, std::string& error);
    void close_sockets() noexcept;

    SendResult send_now(std::span<const std::byte> datagram) noexcept;

    void wait_receive();
    void read_datagrams();
    void wait_route();
    void read_route();
    // Re-reads the link and its addresses (at start, and after the event socket overran).
    void refresh_link();
    void refresh_addresses();
    void apply_link(const LinkInfo& link);
    // A change of the link's state: counted, logged and passed to the sink.
    void report_link(bool up, const std::string& detail);
    void update_max_datagram(std::uint32_t mtu);
    std::size_t header_bytes() const;

    ctsync::sdk::PluginContext context_;
    TransportOptions options_;
    ctsync::sdk::Logger& log_;
    ctsync::sdk::TransportSink* sink_ = nullptr;
    // Handlers hold a weak reference: a completion that runs after the object is gone does nothing.
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);

    Group group_;
    int family_ = 0;
    int ifindex_ = 0;
    std::string interface_name_;
    std::uint32_t mtu_ = 0;
    std::size_t max_datagram_ = 0;
    bool link_up_ = false;
    bool link_removed_ = false;
    std::string link_detail_;  // why the link is in its state, as last reported
    std::vector<IpAddress> own_addresses_;

    sockaddr_storage destination_{};  // the group and port, with the interface as scope when needed
    socklen_t destination_length_ = 0;

    std::unique_ptr<RouteNetlink> route_;
    boost::asio::posix::stream_descriptor send_socket_;
    boost::asio::posix::stream_descriptor receive_socket_;
    std::unique_ptr<boost::asio::posix::stream_descriptor> route_wait_;  // wraps a libmnl socket: released
    std::vector<std::byte> receive_buffer_;
    std::vector<char> route_buffer_;
    bool started_ = false;
    bool stopped_ = false;

    Throttle tx_error_log_;
    Throttle tx_drop_log_;
    Throttle rx_refused_log_;
    Throttle rx_error_log_;

    ctsync::sdk::Counter& datagrams_sent_;
    ctsync::sdk::Counter& bytes_sent_;
    ctsync::sdk::Counter& datagrams_received_;
    ctsync::sdk::Counter& bytes_received_;
    ctsync::sdk::Counter& tx_dropped_;
    ctsync::sdk::Counter& tx_oversize_;
    ctsync::sdk::Counter& tx_queued_;
    ctsync::sdk::Counter& tx_errors_;
    ctsync::sdk::Counter& rx_foreign_;
    ctsync::sdk::Counter& rx_own_;
    ctsync::sdk::Counter& rx_truncated_;
    ctsync::sdk::Counter& rx_errors_;
    ctsync::sdk::Counter& link_changes_;
    ctsync::sdk::Counter& link_monitor_overruns_;
    ctsync::sdk::Gauge& send_buffer_gauge_;
    ctsync::sdk::Gauge& receive_buffer_gauge_;
    ctsync::sdk::Gauge& queue_gauge_;
    ctsync::sdk::Gauge& max_datagram_gauge_;
    ctsync::sdk::Gauge& link_up_gauge_;
    // Datagrams waiting while the socket buffer is full (after the metrics it updates).
    ctsync::sdk::DatagramSendQueue queue_;
};

}  // namespace mcast
