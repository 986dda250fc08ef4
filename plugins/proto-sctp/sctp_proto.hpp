// SPDX-License-Identifier: GPL-2.0-or-later
// proto-sctp: SCTP's replication decisions (protocol 132). Linux conntrack tracks an association per address
// pair with a state (SCTP_CONNTRACK_*) and, per direction, the verification tag the packets in that direction
// must carry (the peer's Initiate Tag, learnt from INIT and INIT ACK). A backup's kernel that gets the entry
// without its two vtags drops the association's packets after a failover, so both are replicated, and peer
// data that would write an established association without them is refused.
#pragma once

// glibc's in.h before the kernel's (which nf_conntrack_sctp.h pulls in), or their definitions clash.
// clang-format off
#include <netinet/in.h>
#include <linux/netfilter/nf_conntrack_sctp.h>
// clang-format on

#include <cstdint>
#include <ctsync/sdk/sdk.hpp>
#include <span>
#include <string>
#include <string_view>

namespace proto_sctp {

// The kernel's states, from its uapi header (the values are ABI).
inline constexpr std::uint8_t kStateNone = SCTP_CONNTRACK_NONE;
inline constexpr std::uint8_t kStateClosed = SCTP_CONNTRACK_CLOSED;
inline constexpr std::uint8_t kStateCookieWait = SCTP_CONNTRACK_COOKIE_WAIT;
inline constexpr std::uint8_t kStateCookieEchoed = SCTP_CONNTRACK_COOKIE_ECHOED;
inline constexpr std::uint8_t kStateEstablished = SCTP_CONNTRACK_ESTABLISHED;
inline constexpr std::uint8_t kStateHeartbeatSent = SCTP_CONNTRACK_HEARTBEAT_SENT;
inline constexpr std::uint8_t kStateCount = SCTP_CONNTRACK_MAX;
// The kernel's name of a state ("ESTABLISHED"), or "?" out of range.
std::string_view state_name(std::uint8_t state);

struct Options {
    bool replicate_handshake = true;  // COOKIE_WAIT: INIT seen, not answered yet
};

class SctpProto final : public ctsync::sdk::ProtoHandler {
  public:
    explicit SctpProto(Options options) : options_(options) {}
    void stop() noexcept override {}
    std::span<const std::uint8_t> protocols() const noexcept override;
    bool worth_replicating(const ctsync::sdk::FlowState& flow) const noexcept override;
    ctsync::sdk::Change classify(const ctsync::sdk::FlowState& before,
                                 const ctsync::sdk::FlowState& after) const noexcept override;
    // Nothing to adjust: the state and both vtags are written as the primary had them, which is what the
    // backup's kernel checks the association's packets against.
    void adjust_for_commit(ctsync::sdk::FlowState&) const noexcept override {}
    bool validate_peer(const ctsync::sdk::FlowState& flow, std::string& reason) const noexcept override;

  private:
    Options options_;
};

std::span<const ctsync::sdk::ConfigKey> keys();

}  // namespace proto_sctp
