// SPDX-License-Identifier: GPL-2.0-or-later
// Validation of a JSON object against a key table (sdk::ConfigKey), shared by the core's own sections and
// every plugin's "config" object, so that both follow one set of rules and one error format.
#pragma once

#include <ctsync/sdk/config.hpp>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "core/config/issues.hpp"

namespace ctsync::core {

// Checks `input` (expected to be an object) at `path` against `keys`: unknown keys (with a suggestion),
// missing required keys, types, bounds, enum choices, paths and addresses. Appends every problem to
// `issues` and returns the object with defaults filled in for absent keys (null for optional keys without
// default). Never throws.
nlohmann::json validate_against(const nlohmann::json& input, std::span<const sdk::ConfigKey> keys,
                                const std::string& path, ConfigIssues& issues);

// Problems in a key table itself (a plugin bug): duplicate or malformed names, required keys with a default,
// defaults that are not valid JSON or do not satisfy their own key, enums without choices. Each issue's path
// is the key name.
ConfigIssues check_key_table(std::span<const sdk::ConfigKey> keys);

// The closest known name within edit distance 2, or empty.
std::string suggest(const std::string& unknown, std::span<const sdk::ConfigKey> keys);

// Human description of what a key accepts: "integer in [1, 65535]", "one of reliable|alarm".
std::string describe_type(const sdk::ConfigKey& key);

}  // namespace ctsync::core
