// SPDX-License-Identifier: GPL-2.0-or-later
#include "sctp_proto.hpp"

#include <fmt/format.h>

namespace proto_sctp {
namespace sdk = ctsync::sdk;

namespace {
const sdk::ConfigKey kKeys[] = {
    {.name = "replicate_handshake",
     .type = sdk::KeyType::kBool,
     .default_json = "true",
     .description =
         "Send associations whose INIT is not answered yet (COOKIE_WAIT). Off: fewer records under "
         "INIT floods; such an association is sent once its cookie is echoed."},
};
const std::uint8_t kProtocols[] = {sdk::l4::kSctp};
constexpr std::string_view kStateNames[] = {
    "NONE",          "CLOSED",        "COOKIE_WAIT",       "COOKIE_ECHOED",  "ESTABLISHED",
    "SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT", "HEARTBEAT_ACKED",
};
static_assert(std::size(kStateNames) == kStateCount, "one name per SCTP_CONNTRACK_* state");
}  // namespace

std::span<const sdk::ConfigKey> keys() {
    return kKeys;
}

std::string_view state_name(std::uint8_t state) {
    return state < kStateCount ? kStateNames[state] : std::string_view("?");
}

std::span<const std::uint8_t> SctpProto::protocols() const noexcept {
    return kProtocols;
}

bool SctpProto::worth_replicating(const sdk::FlowState& flow) const noexcept {
    const std::uint8_t state = flow.sctp.state;
    if (state == kStateNone || state == kStateClosed || state >= kStateCount) {
        return false;  // nothing yet, or over: a closed association is withdrawn from the peers
    }
    return options_.replicate_handshake || state != kStateCookieWait;
}

sdk::Change SctpProto::classify(const sdk::FlowState& before, const sdk::FlowState& after) const noexcept {
    return sdk::classify_timer_or_critical(before, after);
}

bool SctpProto::validate_peer(const sdk::FlowState& flow, std::string& reason) const noexcept {
    try {
        if (flow.original.protocol != sdk::l4::kSctp) {
            reason = fmt::format("protocol {} is not SCTP (132)", flow.original.protocol);
            return false;
        }
        const auto& s = flow.sctp;
        if (s.state >= kStateCount) {
            reason = fmt::format("SCTP state {} is not a kernel SCTP_CONNTRACK_* state (0-{})", s.state,
                                 kStateCount - 1);
            return false;
        }
        // The tag for the reply direction comes with INIT, the original direction's with INIT ACK; RFC 9260
        // forbids a zero Initiate Tag. Past the handshake both are known.
        if (s.state >= kStateCookieEchoed && (s.vtag_original == 0 || s.vtag_reply == 0)) {
            reason = fmt::format(
                "SCTP {} without both verification tags (original 0x{:08x}, reply 0x{:08x}): the kernel "
                "would drop the association's packets",
                state_name(s.state), s.vtag_original, s.vtag_reply);
            return false;
        }
        if (s.state == kStateCookieWait && s.vtag_reply == 0) {
            reason = "SCTP COOKIE_WAIT without the reply direction's verification tag (from the INIT)";
            return false;
        }
        if (flow.tcp != sdk::TcpState{} || flow.dccp != sdk::DccpState{}) {
            reason = "TCP or DCCP protocol state on an SCTP flow";
            return false;
        }
        if (flow.seq_original.present || flow.seq_reply.present) {
            reason = "TCP sequence adjustment on an SCTP flow";
            return false;
        }
    } catch (...) {
        reason = "invalid SCTP flow";  // only formatting can throw
        return false;
    }
    return true;
}

}  // namespace proto_sctp
