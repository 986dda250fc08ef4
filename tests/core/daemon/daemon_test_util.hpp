// SPDX-License-Identifier: GPL-2.0-or-later
// Helpers for tests that run the real ctsyncd and ctsyncctl binaries.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/process.hpp"

namespace ctsync::test {

inline const std::string kCtsyncd = CTSYNC_CTSYNCD;
inline const std::string kCtsyncctl = CTSYNC_CTSYNCCTL;
inline const std::filesystem::path kFixtures = CTSYNC_FIXTURE_DIR;

// A config for one instance whose lock file, socket and log all live in `dir`.
inline nlohmann::json instance_config(const std::filesystem::path& dir, int node_id) {
    return {{"node", {{"id", node_id}, {"name", fmt::format("fw{}", node_id)}}},
            {"daemon",
             {{"lock_file", (dir / "ctsyncd.lock").string()},
              {"control_socket", (dir / "ctsyncd.sock").string()},
              {"epoch_file", (dir / "ctsyncd.epoch").string()},
              {"plugin_dirs", {(kFixtures / "good").string()}},
              {"log", {{"level", "debug"}}}}}};
}

// Writes a pre-shared key (mode 0600) into `dir` and points the config's security section at it: every
// config with transports needs one.
inline void add_sync_key(nlohmann::json& config, const std::filesystem::path& dir) {
    const auto key = dir / "sync.key";
    write_file(key, std::string(64, 'c') + "\n");
    std::filesystem::permissions(key,
                                 std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                 std::filesystem::perm_options::replace);
    config["security"] = {{"keys", {{{"id", 1}, {"file", key.string()}}}}};
}

inline std::filesystem::path write_config(const std::filesystem::path& dir, const nlohmann::json& config,
                                          const std::string& name = "ctsyncd.json") {
    auto file = dir / name;
    write_file(file, config.dump(2));
    return file;
}

// ctsyncctl -C <config> <args...> --json, parsed; null JSON when it failed.
inline nlohmann::json ctl_json(const std::filesystem::path& config, const std::string& command,
                               std::vector<std::string> prefix = {}, int timeout_ms = 5000) {
    prefix.insert(prefix.end(), {kCtsyncctl, "-C", config.string(), "--timeout", std::to_string(timeout_ms),
                                 command, "--json"});
    auto result = run(prefix, std::chrono::milliseconds(timeout_ms + 5000));
    if (result.exit_code != 0) {
        return nullptr;
    }
    return nlohmann::json::parse(result.out, nullptr, false);
}

// Starts ctsyncd with `config` and waits (10 s) until it answers `status`; a failure to come up is a test
// failure that quotes its standard error.
inline std::unique_ptr<Process> start_daemon(const std::filesystem::path& config) {
    auto daemon = std::make_unique<Process>(std::vector<std::string>{kCtsyncd, "-C", config.string()});
    bool up = wait_until([&] { return !ctl_json(config, "status").is_null() || !daemon->running(); },
                         std::chrono::seconds(10), std::chrono::milliseconds(50));
    EXPECT_TRUE(up && daemon->running()) << "ctsyncd did not come up: " << daemon->err();
    return daemon;
}

// The value of one metric in `ctsyncctl stats --json` output, or -1 when it is not there.
inline std::int64_t metric(const nlohmann::json& stats, const std::string& name) {
    for (const auto& m : stats) {
        if (m["name"] == name) {
            return m["value"].get<std::int64_t>();
        }
    }
    return -1;
}

}  // namespace ctsync::test
