// SPDX-License-Identifier: GPL-2.0-or-later
// Blocking control client used by ctsyncctl and the tests: connect, send one request, read one reply.
#pragma once

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/control/protocol.hpp"

namespace ctsync::core::control {

struct Reply {
    bool ok = false;
    nlohmann::json result;
    std::string error;             // the daemon's error, or why the daemon could not be reached
    bool transport_error = false;  // true when the daemon was not reached or its reply was unreadable
};

// Never throws; every wait is bounded by `timeout`.
Reply call(const std::filesystem::path& socket, const Request& request, std::chrono::milliseconds timeout);

}  // namespace ctsync::core::control
