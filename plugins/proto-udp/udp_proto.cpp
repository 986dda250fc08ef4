// SPDX-License-Identifier: GPL-2.0-or-later
#include "udp_proto.hpp"

#include <fmt/format.h>

namespace proto_udp {
namespace sdk = ctsync::sdk;

namespace {
const sdk::ConfigKey kKeys[] = {
    {.name = "replicate_from",
     .type = sdk::KeyType::kEnum,
     .default_json = "\"assured\"",
     .description =
         "From which stage a UDP flow is sent to the peers: assured (the default: once the kernel "
         "takes it for a stream, a reply seen and traffic for more than about 2 s; one-shot "
         "queries such as DNS are never sent), replied (once a datagram came back) or new (every "
         "flow, unanswered ones included). A flow is sent in full the moment it reaches the stage.",
     .choices = "new|replied|assured"},
};
const std::uint8_t kProtocols[] = {sdk::l4::kUdp, sdk::l4::kUdplite};

bool is_udp(std::uint8_t protocol) {
    return protocol == sdk::l4::kUdp || protocol == sdk::l4::kUdplite;
}
}  // namespace

std::span<const sdk::ConfigKey> keys() {
    return kKeys;
}

bool parse_replicate_from(std::string_view text, ReplicateFrom& out) {
    if (text == "new") {
        out = ReplicateFrom::kEveryFlow;
    } else if (text == "replied") {
        out = ReplicateFrom::kOnceReplied;
    } else if (text == "assured") {
        out = ReplicateFrom::kOnceAssured;
    } else {
        return false;
    }
    return true;
}

std::string_view to_string(ReplicateFrom from) {
    switch (from) {
        case ReplicateFrom::kEveryFlow:
            return "new";
        case ReplicateFrom::kOnceReplied:
            return "replied";
        case ReplicateFrom::kOnceAssured:
            return "assured";
    }
    return "?";
}

std::span<const std::uint8_t> UdpProto::protocols() const noexcept {
    return kProtocols;
}

bool UdpProto::worth_replicating(const sdk::FlowState& flow) const noexcept {
    switch (options_.replicate_from) {
        case ReplicateFrom::kEveryFlow:
            return true;
        case ReplicateFrom::kOnceReplied:
            return (flow.status & kSeenReply) != 0;
        case ReplicateFrom::kOnceAssured:
            return (flow.status & kAssured) != 0;
    }
    return true;
}

sdk::Change UdpProto::classify(const sdk::FlowState& before, const sdk::FlowState& after) const noexcept {
    // Every datagram moves the timer (the kernel raises no event for that; a resync sees it): a refresh.
    return sdk::classify_timer_or_critical(before, after);
}

bool UdpProto::validate_peer(const sdk::FlowState& flow, std::string& reason) const noexcept {
    try {
        if (!is_udp(flow.original.protocol)) {
            reason = fmt::format("protocol {} is not UDP (17) or UDP-Lite (136)", flow.original.protocol);
            return false;
        }
        if ((flow.status & kAssured) != 0 && (flow.status & kSeenReply) == 0) {
            reason = fmt::format(
                "status 0x{:x}: ASSURED without SEEN_REPLY (the kernel assures a UDP flow only after a "
                "reply)",
                flow.status);
            return false;
        }
        if ((flow.status & kSeqAdjust) != 0 || flow.seq_original.present || flow.seq_reply.present) {
            reason = "TCP sequence adjustment on a UDP flow";
            return false;
        }
        if (flow.tcp != sdk::TcpState{} || flow.sctp != sdk::SctpState{} || flow.dccp != sdk::DccpState{}) {
            reason = "TCP, SCTP or DCCP protocol state on a UDP flow";
            return false;
        }
        if (flow.original.dst_port == 0 || flow.reply.dst_port == 0) {
            reason = fmt::format("destination port 0 (original {}, reply {})", flow.original.dst_port,
                                 flow.reply.dst_port);
            return false;
        }
    } catch (...) {
        reason = "invalid UDP flow";  // only formatting can throw
        return false;
    }
    return true;
}

}  // namespace proto_udp
