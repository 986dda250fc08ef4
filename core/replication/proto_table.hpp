// SPDX-License-Identifier: GPL-2.0-or-later
// Per-protocol replication decisions: the handler a proto plugin registered for the flow's layer-4
// protocol, or the core's generic handler for every other protocol. The engine asks this table and never
// branches on protocols itself.
#pragma once

#include <array>
#include <ctsync/sdk/proto.hpp>
#include <span>
#include <string>

namespace ctsync::core {

class ProtoTable {
  public:
    // Registers a plugin handler for the protocols it claims. Returns an error naming the protocol when
    // another handler already claimed one.
    std::string add(const sdk::ProtoHandler& handler);

    bool worth_replicating(const sdk::FlowState& flow) const;
    sdk::Change classify(const sdk::FlowState& before, const sdk::FlowState& after) const;
    void adjust_for_commit(sdk::FlowState& flow) const;
    bool validate_peer(const sdk::FlowState& flow, std::string& reason) const;

  private:
    const sdk::ProtoHandler* handler_for(std::uint8_t protocol) const { return handlers_[protocol]; }
    std::array<const sdk::ProtoHandler*, 256> handlers_{};
};

// The generic handler: every state is worth sending; a change of timeout alone is a refresh, any other
// change is critical; nothing to adjust; peer data must be self-consistent (family, protocol, zone).
namespace generic_proto {
sdk::Change classify(const sdk::FlowState& before, const sdk::FlowState& after);
bool validate_peer(const sdk::FlowState& flow, std::string& reason);
}  // namespace generic_proto

}  // namespace ctsync::core
