// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/replication/proto_table.hpp"

#include <fmt/format.h>

#include "core/wire/records.hpp"

namespace ctsync::core {

std::string ProtoTable::add(const sdk::ProtoHandler& handler) {
    for (std::uint8_t protocol : handler.protocols()) {
        if (handlers_[protocol] != nullptr) {
            return fmt::format("two proto handlers claim layer-4 protocol {}", protocol);
        }
        handlers_[protocol] = &handler;
    }
    return {};
}

bool ProtoTable::worth_replicating(const sdk::FlowState& flow) const {
    const auto* h = handler_for(flow.original.protocol);
    return h == nullptr || h->worth_replicating(flow);
}

sdk::Change ProtoTable::classify(const sdk::FlowState& before, const sdk::FlowState& after) const {
    const auto* h = handler_for(after.original.protocol);
    return h == nullptr ? generic_proto::classify(before, after) : h->classify(before, after);
}

void ProtoTable::adjust_for_commit(sdk::FlowState& flow) const {
    if (const auto* h = handler_for(flow.original.protocol)) {
        h->adjust_for_commit(flow);
    }
}

bool ProtoTable::validate_peer(const sdk::FlowState& flow, std::string& reason) const {
    if (!generic_proto::validate_peer(flow, reason)) {
        return false;
    }
    const auto* h = handler_for(flow.original.protocol);
    return h == nullptr || h->validate_peer(flow, reason);
}

namespace generic_proto {

sdk::Change classify(const sdk::FlowState& before, const sdk::FlowState& after) {
    const std::uint8_t fields = wire::changed_fields(before, after);
    if (fields == 0) {
        return sdk::Change::kNone;
    }
    return fields == wire::field::kTimeout ? sdk::Change::kRefresh : sdk::Change::kCritical;
}

bool validate_peer(const sdk::FlowState& flow, std::string& reason) {
    const auto& o = flow.original;
    const auto& r = flow.reply;
    if (o.family != sdk::Family::kIpv4 && o.family != sdk::Family::kIpv6) {
        reason = "unknown address family";
        return false;
    }
    if (r.family != o.family || r.protocol != o.protocol) {
        reason = "reply tuple's family or protocol differs from the original's";
        return false;
    }
    if (flow.zone.directions > sdk::Zone::kDirBoth) {
        reason = "zone directions out of range";
        return false;
    }
    return true;
}

}  // namespace generic_proto
}  // namespace ctsync::core
