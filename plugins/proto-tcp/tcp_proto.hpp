// SPDX-License-Identifier: GPL-2.0-or-later
// proto-tcp: TCP's replication decisions. The part that matters at failover is adjust_for_commit: an entry
// written into a kernel that did not see the connection's segments carries no usable window data (an entry
// updated in place keeps stale window data from before the failover), so by default it is marked "be
// liberal" in both directions and the kernel stops checking sequence windows for it — conntrackd's
// TCPWindowTracking Off. Every packet still goes through state tracking.
#pragma once

#include <ctsync/sdk/sdk.hpp>
#include <span>
#include <string>

namespace proto_tcp {

// The kernel's TCP_CONNTRACK_* states (include/uapi/linux/netfilter/nf_conntrack_tcp.h).
inline constexpr std::uint8_t kStateNone = 0;
inline constexpr std::uint8_t kStateSynSent = 1;
inline constexpr std::uint8_t kStateCount = 10;  // NONE .. SYN_SENT2
// IP_CT_TCP_FLAG_BE_LIBERAL.
inline constexpr std::uint8_t kFlagBeLiberal = 0x08;
inline constexpr std::uint8_t kMaxWindowScale = 14;  // RFC 7323

struct Options {
    bool window_tracking = false;    // keep the kernel's window checks for committed entries
    bool replicate_syn_sent = true;  // send connections that are not answered yet
};

class TcpProto final : public ctsync::sdk::ProtoHandler {
  public:
    explicit TcpProto(Options options) : options_(options) {}
    void stop() noexcept override {}
    std::span<const std::uint8_t> protocols() const noexcept override;
    bool worth_replicating(const ctsync::sdk::FlowState& flow) const noexcept override;
    ctsync::sdk::Change classify(const ctsync::sdk::FlowState& before,
                                 const ctsync::sdk::FlowState& after) const noexcept override;
    void adjust_for_commit(ctsync::sdk::FlowState& flow) const noexcept override;
    bool validate_peer(const ctsync::sdk::FlowState& flow, std::string& reason) const noexcept override;

  private:
    Options options_;
};

std::span<const ctsync::sdk::ConfigKey> keys();

}  // namespace proto_tcp
