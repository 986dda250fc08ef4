// SPDX-License-Identifier: GPL-2.0-or-later
// The daemon's plugin search path. Kept apart from the loader because it bakes in this build's directories,
// which the SDK's test kit (which links the loader) must not carry.
#include <cstdlib>
#include <cstring>

#include "core/loader/plugin_loader.hpp"

#ifndef CTSYNC_BUILD_DIR
#define CTSYNC_BUILD_DIR ""
#endif
#ifndef CTSYNC_BUILD_PLUGIN_DIR
#define CTSYNC_BUILD_PLUGIN_DIR ""
#endif
#ifndef CTSYNC_INSTALL_PLUGIN_DIR
#define CTSYNC_INSTALL_PLUGIN_DIR "/usr/local/lib/ctsync/plugins"
#endif
// The plugin folder relative to the installed executable's folder ("../lib/<multiarch>/ctsync/plugins"), so
// that an installed tree unpacked elsewhere (dpkg -x, a container image) finds its own plugins.
#ifndef CTSYNC_PLUGIN_DIR_FROM_SBIN
#define CTSYNC_PLUGIN_DIR_FROM_SBIN "../lib/ctsync/plugins"
#endif

namespace ctsync::core {
namespace fs = std::filesystem;
namespace {

bool is_under(const fs::path& child, const fs::path& parent) {
    if (parent.empty()) {
        return false;
    }
    auto c = child.lexically_normal().string();
    auto p = parent.lexically_normal().string();
    return c.size() > p.size() && c.compare(0, p.size(), p) == 0 && (p.back() == '/' || c[p.size()] == '/');
}

}  // namespace

std::vector<fs::path> default_search_path(const std::vector<std::string>& config_dirs,
                                          const fs::path& executable) {
    std::vector<fs::path> dirs;
    if (const char* env = std::getenv("CTSYNC_PLUGIN_PATH"); env != nullptr) {
        std::string value = env;
        std::size_t start = 0;
        while (start <= value.size()) {
            std::size_t end = value.find(':', start);
            if (end == std::string::npos) {
                end = value.size();
            }
            if (end > start) {
                dirs.emplace_back(value.substr(start, end - start));
            }
            start = end + 1;
        }
    }
    for (const auto& dir : config_dirs) {
        dirs.emplace_back(dir);
    }
    std::error_code ec;
    fs::path exe = fs::weakly_canonical(executable, ec);
    if (std::strlen(CTSYNC_BUILD_PLUGIN_DIR) > 0 && is_under(exe, CTSYNC_BUILD_DIR)) {
        dirs.emplace_back(CTSYNC_BUILD_PLUGIN_DIR);
    } else if (!ec && exe.has_parent_path()) {
        fs::path beside = (exe.parent_path() / CTSYNC_PLUGIN_DIR_FROM_SBIN).lexically_normal();
        if (beside != fs::path(CTSYNC_INSTALL_PLUGIN_DIR).lexically_normal()) {
            dirs.push_back(std::move(beside));
        }
    }
    dirs.emplace_back(CTSYNC_INSTALL_PLUGIN_DIR);
    return dirs;
}

}  // namespace ctsync::core
