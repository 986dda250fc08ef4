// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/config/issues.hpp"

namespace ctsync::core {

std::string join_path(const std::string& parent, const std::string& key) {
    return (parent == "." ? std::string() : parent) + "." + key;
}

std::string join_path(const std::string& parent, std::size_t index) {
    return (parent == "." ? std::string() : parent) + "[" + std::to_string(index) + "]";
}

std::string format_issue(const ConfigIssue& issue) {
    return (issue.path.empty() ? std::string(".") : issue.path) + ": " + issue.message;
}

}  // namespace ctsync::core
