// SPDX-License-Identifier: GPL-2.0-or-later
// Flows and expectations as JSON (ctsyncctl dump --json, import) and as conntrack-style text lines.
// Reading is strict: every problem is reported with its JSON path and nothing is half-read.
#pragma once

#include <ctsync/sdk/flow.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/config/issues.hpp"

namespace ctsync::core {

nlohmann::json to_json(const sdk::FlowState& flow);
nlohmann::json to_json(const sdk::Expectation& expectation);

// Appends problems to `issues` (paths below `path`) and returns nullopt when there is any.
std::optional<sdk::FlowState> flow_from_json(const nlohmann::json& j, const std::string& path,
                                             ConfigIssues& issues);
std::optional<sdk::Expectation> expectation_from_json(const nlohmann::json& j, const std::string& path,
                                                      ConfigIssues& issues);

// "tcp 6 431999 ESTABLISHED src=192.0.2.1 dst=198.51.100.1 sport=40000 dport=80 src=... [ASSURED] mark=0
// zone=0"
std::string to_line(const sdk::FlowState& flow);
std::string to_line(const sdk::Expectation& expectation);

std::string address_to_string(const sdk::Address& address, sdk::Family family);

}  // namespace ctsync::core
