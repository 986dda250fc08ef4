// SPDX-License-Identifier: GPL-2.0-or-later
// The config loader, both phases, as `ctsyncd --check-config` runs them: the JSON text, the core's keys, then
// every slot's plugin loaded from the build tree and its "config" object validated against its key table and
// its validate hook (filter expressions compiled, keepalived instances checked, ...). Every problem must be
// reported as an issue with a path; nothing may throw out or crash.
#include <cstdint>
#include <string>

#include "core/config/daemon_config.hpp"
#include "core/config/issues.hpp"
#include "core/loader/plugin_loader.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ctsync::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // One loader for the whole run: loading a plugin file twice returns the plugin already loaded.
    static PluginLoader loader({CTSYNC_BUILD_PLUGIN_DIR});
    const std::string text(ctsync::fuzz::as_text(data, size));
    ConfigReport report;
    auto config = parse_daemon_config(text, "fuzz.json", report);
    if (!config) {
        CTSYNC_FUZZ_CHECK(!report.ok());
        return 0;
    }
    if (report.issues.empty()) {
        resolve_plugins(*config, loader, report);
    }
    for (const auto& issue : report.issues) {
        CTSYNC_FUZZ_CHECK(!issue.path.empty() && !issue.message.empty());
        (void)format_issue(issue);
    }
    return 0;
}
