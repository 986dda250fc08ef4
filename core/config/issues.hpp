// SPDX-License-Identifier: GPL-2.0-or-later
// Problems found while reading a configuration, each with the JSON path it concerns.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace ctsync::core {

// `path` is in jq syntax from the document root (".transports[1].config.port"; "." for the root).
struct ConfigIssue {
    std::string path;
    std::string message;
    friend bool operator==(const ConfigIssue&, const ConfigIssue&) = default;
};
using ConfigIssues = std::vector<ConfigIssue>;

// Joins a parent path and an object key / array index into a jq-style path.
std::string join_path(const std::string& parent, const std::string& key);
std::string join_path(const std::string& parent, std::size_t index);

// "path: message" — the form every tool prints.
std::string format_issue(const ConfigIssue& issue);

// For test frameworks and logs.
inline std::ostream& operator<<(std::ostream& out, const ConfigIssue& issue) {
    return out << format_issue(issue);
}

}  // namespace ctsync::core
