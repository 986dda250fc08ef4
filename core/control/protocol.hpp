// SPDX-License-Identifier: GPL-2.0-or-later
// Control protocol between ctsyncctl and ctsyncd over a unix stream socket: one JSON object per line each
// way. Request: {"command": "status", "args": {...}}. Reply: {"ok": true, "result": ...} or
// {"ok": false, "error": "..."}. Several requests may follow each other on one connection.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace ctsync::core::control {

inline constexpr std::size_t kMaxLineBytes = 64 * 1024;
inline constexpr int kProtocolVersion = 1;

struct Request {
    std::string command;
    nlohmann::json args = nlohmann::json::object();
};

// Parses one request line (without the newline). Returns nullopt and sets `error` on anything malformed:
// not JSON, not an object, missing or non-string "command", non-object "args", unknown keys.
std::optional<Request> parse_request(const std::string& line, std::string& error,
                                     std::size_t max_bytes = kMaxLineBytes);

std::string encode_request(const Request& request);
std::string encode_ok(const nlohmann::json& result);
std::string encode_error(const std::string& message);

}  // namespace ctsync::core::control
