// SPDX-License-Identifier: GPL-2.0-or-later
// transport-tcp: datagrams over TCP to configured peers, for sync links that cross routers.
//
// Every node listens on one address and connects out to every peer. A node's own datagrams travel only on
// its outgoing connections; its incoming connections only deliver the peers' datagrams. So each pair of
// nodes has two connections, and reconnecting (with exponential backoff and jitter) is the connecting
// side's job alone. On the wire a datagram is a frame: a 4-byte big-endian length, then the bytes.
// Everything runs on the host's executor; the plugin owns no threads.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <ctsync/sdk/sdk.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace transport_tcp {

using Endpoint = boost::asio::ip::tcp::endpoint;

// Bytes in front of every datagram on the wire: its length, big-endian.
constexpr std::size_t kFrameHeaderBytes = 4;

struct TcpOptions {
    Endpoint listen;
    std::vector<Endpoint> peers;
    // Source address of outgoing connections; the kernel picks one by route when unset. A peer accepts a
    // connection only from an address in its own peers list, so routed setups usually set it.
    std::optional<boost::asio::ip::address> bind_address;
    std::size_t max_datagram_bytes = 65000;
    // Per peer, frames waiting to be written (headers included); beyond it datagrams for that peer drop.
    std::size_t send_queue_bytes = 16u << 20;
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{5000};
    std::chrono::milliseconds connect_timeout{2000};
    // TCP_USER_TIMEOUT: data unacknowledged for this long (or unanswered keepalives) ends the connection.
    std::chrono::milliseconds user_timeout{3000};
    std::chrono::seconds keepalive_idle{1};
    std::chrono::seconds keepalive_interval{1};
    int keepalive_count = 3;
};

// Parses "192.0.2.1:3782" or "[fd00::1]:3782" (numeric addresses only: no name lookups on the event
// loop). Returns nullopt and sets `error` to a sentence naming the text and what is wrong.
std::optional<Endpoint> parse_endpoint(std::string_view text, std::string& error);
// "192.0.2.1:3782", "[fd00::1]:3782".
std::string format_endpoint(const Endpoint& endpoint);

namespace detail {
class Link;
}

// The transport object the factory returns. Created, used and destroyed on the executor thread; no member
// throws. Pending I/O holds the internal state alive, never this object, so it may be destroyed at any
// time after stop().
class TcpTransport final : public ctsync::sdk::Transport {
  public:
    TcpTransport(const ctsync::sdk::PluginContext& context, TcpOptions options);
    ~TcpTransport() override;
    TcpTransport(const TcpTransport&) = delete;
    TcpTransport& operator=(const TcpTransport&) = delete;

    // Closes every socket and cancels timers; queued datagrams are discarded. Reports nothing to the sink.
    void stop() noexcept override;
    // Binds `listen` (and checks that `bind_address` can be bound), then connects to every peer.
    bool start(ctsync::sdk::TransportSink& sink, std::string& error) noexcept override;
    // Queues the datagram for every peer with an established outgoing connection. Returns true only when
    // it was queued for every configured peer; otherwise counts each peer it was dropped for.
    bool send(std::span<const std::byte> datagram) noexcept override;
    std::size_t max_datagram_size() const noexcept override;

    // Established outgoing connections (what the link state is derived from).
    std::size_t peers_connected() const noexcept;

  private:
    std::shared_ptr<detail::Link> link_;
};

}  // namespace transport_tcp
