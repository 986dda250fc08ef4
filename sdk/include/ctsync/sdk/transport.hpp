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

// Implemented by the core; called on the executor thread only. Never throws.
class TransportSink {
  public:
    virtual ~TransportSink() = default;
    // A datagram arrived. `data` is only valid during the call; it is untrusted input.
    virtual void on_datagram(std::span<const std::byte> data) noexcept = 0;
    // The link changed (carrier, connection, bearer). `detail` says why, for the log.
    virtual void on_link_state(LinkState state, const std::string& detail) noexcept = 0;
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
