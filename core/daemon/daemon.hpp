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

// Runs until SIGTERM or SIGINT. Returns the process exit code: 0 after a clean shutdown, 1 when start-up
// failed (lock held, socket unusable, a plugin refused to start) — the reason is logged.
int run_daemon(DaemonConfig config, DaemonOptions options);

}  // namespace ctsync::core
