// SPDX-License-Identifier: GPL-2.0-or-later
#include "tcp_proto.hpp"

#include <fmt/format.h>

namespace proto_tcp {
namespace sdk = ctsync::sdk;

namespace {
const sdk::ConfigKey kKeys[] = {
    {.name = "window_tracking",
     .type = sdk::KeyType::kBool,
     .default_json = "false",
     .description = "Keep the kernel's TCP window checks for entries written from a peer's table. Off (the "
                    "default, as conntrackd's TCPWindowTracking): they are marked be-liberal in both "
                    "directions, since this kernel never saw their segments and an entry updated in place "
                    "keeps stale windows that would make the first segments after a failover INVALID."},
    {.name = "replicate_syn_sent",
     .type = sdk::KeyType::kBool,
     .default_json = "true",
     .description = "Send connections whose SYN is not answered yet (off: fewer records under SYN floods; "
                    "such a connection is sent once answered)."},
};
const std::uint8_t kProtocols[] = {sdk::l4::kTcp};
}  // namespace

std::span<const sdk::ConfigKey> keys() {
    return kKeys;
}

std::span<const std::uint8_t> TcpProto::protocols() const noexcept {
    return kProtocols;
}

bool TcpProto::worth_replicating(const sdk::FlowState& flow) const noexcept {
    if (flow.tcp.state == kStateNone) {
        return false;
    }
    return options_.replicate_syn_sent || flow.tcp.state != kStateSynSent;
}

sdk::Change TcpProto::classify(const sdk::FlowState& before, const sdk::FlowState& after) const noexcept {
    return sdk::classify_timer_or_critical(before, after);
}

void TcpProto::adjust_for_commit(sdk::FlowState& flow) const noexcept {
    if (!options_.window_tracking) {
        flow.tcp.flags_original |= kFlagBeLiberal;
        flow.tcp.flags_reply |= kFlagBeLiberal;
    }
}

bool TcpProto::validate_peer(const sdk::FlowState& flow, std::string& reason) const noexcept {
    if (flow.original.protocol != sdk::l4::kTcp) {
        reason = "not a TCP flow";
        return false;
    }
    if (flow.tcp.state >= kStateCount) {
        reason = fmt::format("TCP state {} is not a kernel TCP_CONNTRACK_* state (0-{})", flow.tcp.state,
                             kStateCount - 1);
        return false;
    }
    if (flow.tcp.wscale_original > kMaxWindowScale || flow.tcp.wscale_reply > kMaxWindowScale) {
        reason = fmt::format("TCP window scale {}/{} exceeds {}", flow.tcp.wscale_original,
                             flow.tcp.wscale_reply, kMaxWindowScale);
        return false;
    }
    return true;
}

}  // namespace proto_tcp
