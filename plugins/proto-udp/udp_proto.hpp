// SPDX-License-Identifier: GPL-2.0-or-later
// proto-udp: UDP's replication decisions (protocol 17, and UDP-Lite, 136, which the kernel tracks the same
// way). Linux conntrack marks a UDP flow SEEN_REPLY at the first datagram back, and ASSURED only once it has
// seen a reply and carried on for more than about 2 s (a stream: nf_conntrack_proto_udp.c); a DNS query and
// its answer stay unassured and expire after 30 s. By default only assured flows are sent: a burst of
// one-shot queries costs the sync link nothing, and a long-lived session is sent the moment it is assured.
#pragma once

#include <cstdint>
#include <ctsync/sdk/sdk.hpp>
#include <span>
#include <string>
#include <string_view>

namespace proto_udp {

// The kernel's IPS_* status bits that matter here (include/uapi/linux/netfilter/nf_conntrack_common.h).
inline constexpr std::uint32_t kSeenReply = 1u << 1;
inline constexpr std::uint32_t kAssured = 1u << 2;
inline constexpr std::uint32_t kSeqAdjust = 1u << 6;

// From which stage of its life a UDP flow is sent to the peers.
enum class ReplicateFrom : std::uint8_t {
    kEveryFlow,    // every flow, the unanswered ones too
    kOnceReplied,  // once a datagram came back (SEEN_REPLY)
    kOnceAssured,  // once the kernel took it for a stream (ASSURED): the default
};
bool parse_replicate_from(std::string_view text, ReplicateFrom& out);
std::string_view to_string(ReplicateFrom from);

struct Options {
    ReplicateFrom replicate_from = ReplicateFrom::kOnceAssured;
};

class UdpProto final : public ctsync::sdk::ProtoHandler {
  public:
    explicit UdpProto(Options options) : options_(options) {}
    void stop() noexcept override {}
    std::span<const std::uint8_t> protocols() const noexcept override;
    bool worth_replicating(const ctsync::sdk::FlowState& flow) const noexcept override;
    ctsync::sdk::Change classify(const ctsync::sdk::FlowState& before,
                                 const ctsync::sdk::FlowState& after) const noexcept override;
    // Nothing to adjust: UDP conntrack keeps no protocol state, and the status bits (ASSURED included, which
    // keeps the entry out of the kernel's early drop when the table is full) are written as the primary had
    // them.
    void adjust_for_commit(ctsync::sdk::FlowState&) const noexcept override {}
    bool validate_peer(const ctsync::sdk::FlowState& flow, std::string& reason) const noexcept override;

  private:
    Options options_;
};

std::span<const ctsync::sdk::ConfigKey> keys();

}  // namespace proto_udp
