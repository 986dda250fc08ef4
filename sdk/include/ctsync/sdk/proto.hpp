// SPDX-License-Identifier: GPL-2.0-or-later
// Proto: per-protocol replication decisions. The replication engine has no protocol-specific branches;
// it asks the handler registered for the flow's layer-4 protocol (or the core's generic handler).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "ctsync/sdk/flow.hpp"
#include "ctsync/sdk/plugin.hpp"

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

// How much a change matters to a peer.
enum class Change : std::uint8_t {
    kNone = 0,      // nothing a peer needs
    kRefresh = 1,   // only timers moved: sent by the strong policy, not by the weak one
    kCritical = 2,  // state, NAT, mark, labels or status changed: always sent
};

// The classification most protocols want, for their classify(): no change; only the timer moved (a refresh,
// which the weak policy does not send); anything else (state, status, NAT, mark, labels...) critical.
// Header-only: compiled into the plugin, no ABI surface.
inline Change classify_timer_or_critical(const FlowState& before, const FlowState& after) noexcept {
    if (before == after) {
        return Change::kNone;
    }
    FlowState same_timer = after;
    same_timer.timeout = before.timeout;
    return same_timer == before ? Change::kRefresh : Change::kCritical;
}

// All members are pure functions of their arguments, called on the executor thread, never throwing.
class ProtoHandler : public Plugin {
  public:
    Category category() const noexcept final { return Category::kProto; }
    // Layer-4 protocol numbers this handler serves (see l4::). The host refuses to start when two handlers
    // claim one number.
    virtual std::span<const std::uint8_t> protocols() const noexcept = 0;
    // Whether a flow in this state is worth sending at all (e.g. TCP SYN_SENT may be skipped).
    virtual bool worth_replicating(const FlowState& flow) const noexcept = 0;
    // Classifies the change from `before` to `after` (same key).
    virtual Change classify(const FlowState& before, const FlowState& after) const noexcept = 0;
    // Adjusts an entry received from a peer before it is written into this node's kernel (e.g. TCP
    // be-liberal, window tracking reset).
    virtual void adjust_for_commit(FlowState& flow) const noexcept = 0;
    // Checks peer data for values the kernel would reject or that make no sense for the protocol; returns
    // false and sets `reason` to a short explanation (counted and logged by the host).
    virtual bool validate_peer(const FlowState& flow, std::string& reason) const noexcept = 0;
};

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk
