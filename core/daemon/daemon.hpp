// SPDX-License-Identifier: GPL-2.0-or-later
// The ctsyncd process after its configuration was accepted: lock file, event loop, plugin instances,
// control socket, signals.
#pragma once

#include <chrono>
#include <string>

#include "core/config/daemon_config.hpp"

namespace ctsync::core {

struct DaemonOptions {
    bool notify_systemd = true;  // sd_notify READY=1 / STOPPING=1 when NOTIFY_SOCKET is set
    int ready_fd = -1;           // when >= 0: "ok\n" or "error: <reason>\n" is written once, then closed
};

// ctsyncd's exit codes (docs/CONFIG.md, ADR-002).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitConfig = 2;
inline constexpr int kExitPlugin = 3;

// Runs until SIGTERM or SIGINT. Returns the process exit code: 0 after a clean shutdown; when start-up
// failed (the reason is logged): 3 when a plugin's factory refused to start (its kernel lacks what it needs,
// say) or built an object of another category, 2 when two proto handlers claim one layer-4 protocol, 1 for
// everything else (lock held, socket unusable, a source or transport refused start()).
int run_daemon(DaemonConfig config, DaemonOptions options);

}  // namespace ctsync::core
