// SPDX-License-Identifier: GPL-2.0-or-later
// Shared by the dist/ tests: the plugins this build packages (CTSYNC_PACKAGED_PLUGINS, comma-separated).
#pragma once

#include <string>
#include <vector>

namespace ctsync::test {

inline std::vector<std::string> packaged_plugins() {
    std::vector<std::string> out;
    const std::string list = CTSYNC_PACKAGED_PLUGINS;
    std::size_t start = 0;
    while (start < list.size()) {
        auto end = list.find(',', start);
        out.push_back(list.substr(start, end == std::string::npos ? std::string::npos : end - start));
        if (end == std::string::npos) {
            break;
        }
        start = end + 1;
    }
    return out;
}

}  // namespace ctsync::test
