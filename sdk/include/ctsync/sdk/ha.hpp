// SPDX-License-Identifier: GPL-2.0-or-later
// HA: turns an HA manager's notifications (keepalived) into role changes and feeds back sync readiness.
#pragma once

#include <cstdint>
#include <string>

#include "ctsync/sdk/plugin.hpp"

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

enum class Role : std::uint8_t { kInit = 0, kBackup = 1, kPrimary = 2, kFault = 3 };

constexpr const char* to_string(Role r) noexcept {
    switch (r) {
        case Role::kInit:
            return "INIT";
        case Role::kBackup:
            return "BACKUP";
        case Role::kPrimary:
            return "PRIMARY";
        case Role::kFault:
            return "FAULT";
    }
    return "UNKNOWN";
}

// Implemented by the core; called on the executor thread only. Never throws.
class RoleSink {
  public:
    virtual ~RoleSink() = default;
    // The HA manager wants this node in `role`; `reason` quotes what it said, for the log.
    virtual void on_role(Role role, const std::string& reason) noexcept = 0;
};

// What the core tells the HA plugin so that it can steer the HA manager (priority hold, preference).
struct SyncReadiness {
    bool table_complete = false;      // bulk transfer finished; this node may become primary
    std::uint64_t last_sequence = 0;  // highest sequence received from the primary
};

class HaAdapter : public Plugin {
  public:
    Category category() const noexcept final { return Category::kHa; }
    // Starts listening; `sink` outlives the adapter. Returns false and sets `error` when it cannot.
    virtual bool start(RoleSink& sink, std::string& error) noexcept = 0;
    // Called whenever readiness changes.
    virtual void update_readiness(const SyncReadiness& readiness) noexcept = 0;
};

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk
