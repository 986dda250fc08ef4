// SPDX-License-Identifier: GPL-2.0-or-later
// Transport: moves opaque, already authenticated datagrams between nodes and reports link health.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "ctsync/sdk/plugin.hpp"

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

enum class LinkState : std::uint8_t { kDown = 0, kUp = 1 };
// Whether one peer node is reachable over a transport, as the transport itself knows it (ABI 1.1).
enum class PeerState : std::uint8_t { kDown = 0, kUp = 1 };

// Implemented by the core; called on the executor thread only. Never throws.
class TransportSink {
  public:
    virtual ~TransportSink() = default;
    // A datagram arrived. `data` is only valid during the call; it is untrusted input.
    virtual void on_datagram(std::span<const std::byte> data) noexcept = 0;
    // The link changed (carrier, connection, bearer). `detail` says why, for the log.
    virtual void on_link_state(LinkState state, const std::string& detail) noexcept = 0;
    // ABI 1.1. A transport that supervises its peers itself (TIPC's topology service and link supervision)
    // reports one peer, by its node id (node.id of that node's config), becoming reachable or unreachable.
    // The core then treats a peer that is down on every link as gone at once, instead of waiting for
    // replication.peer_timeout of ALIVE silence. Transports that cannot tell (multicast) never call it.
    // `detail` says why, for the log. Appended in ABI 1.1: a host of ABI 1.0 refuses plugins built
    // against 1.1, so a plugin may call it unconditionally.
    virtual void on_peer_state(std::uint32_t node, PeerState state, const std::string& detail) noexcept {
        (void)node;
        (void)state;
        (void)detail;
    }
};

class Transport : public Plugin {
  public:
    Category category() const noexcept final { return Category::kTransport; }
    // Opens sockets and starts receiving into `sink` (which outlives the transport). Returns false and sets
    // `error` when the link cannot be opened (no such interface, address in use).
    virtual bool start(TransportSink& sink, std::string& error) noexcept = 0;
    // Queues one datagram for every peer on this link; returns false (and counts it) when the datagram is
    // dropped locally (queue full, larger than max_datagram_size()). Never blocks.
    virtual bool send(std::span<const std::byte> datagram) noexcept = 0;
    // Largest datagram send() accepts (path MTU minus headers for datagram links).
    virtual std::size_t max_datagram_size() const noexcept = 0;
};

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk
