// SPDX-License-Identifier: GPL-2.0-or-later
// The daemon's configuration file: the core's own sections (declared as key tables, like a plugin's) and
// the plugin slots. Reading happens in two phases so that every problem is reported at once:
//   1. parse_daemon_config: JSON syntax and the core's keys;
//   2. resolve_plugins: load each slot's plugin and validate its "config" object against its key table.
// Nothing is started until both phases report no problem.
#pragma once

#include <ctsync/sdk/config.hpp>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/config/issues.hpp"
#include "core/loader/plugin_loader.hpp"
#include "core/replication/options.hpp"
#include "core/wire/seal.hpp"

namespace ctsync::core {

// Key tables of the core's own sections, printed by `ctsyncd --describe core`.
std::span<const sdk::ConfigKey> root_keys();
std::span<const sdk::ConfigKey> node_keys();
std::span<const sdk::ConfigKey> daemon_keys();
std::span<const sdk::ConfigKey> log_keys();
std::span<const sdk::ConfigKey> metrics_keys();
// Every core section with its JSON path (".", ".node", ... and "plugin slot"), in the order documented:
// `ctsyncd --describe core` and the ctsyncd.json(5) page print them.
struct CoreSection {
    const char* path;
    std::span<const sdk::ConfigKey> keys;
};
std::span<const CoreSection> core_sections();
std::span<const sdk::ConfigKey> slot_keys();
std::span<const sdk::ConfigKey> replication_keys();
std::span<const sdk::ConfigKey> security_keys();
std::span<const sdk::ConfigKey> failover_keys();

// The `failover` section: what role changes do besides starting and stopping replication.
struct FailoverOptions {
    bool warm_standby = true;          // a backup writes replicated entries into its kernel as they come
    std::size_t standby_batch = 2000;  // entries per warm write
    bool flush_unknown = true;         // a new primary deletes stale entries the old primary never had
};

// One plugin instance requested by the config.
struct SlotEntry {
    sdk::Category category = sdk::Category::kFilter;
    std::string path;      // ".transports[1]"
    std::string plugin;    // plugin id
    std::string instance;  // unique instance name (defaults to the plugin id)
    std::optional<std::filesystem::path> file;
    nlohmann::json raw_config = nlohmann::json::object();
    // Filled by resolve_plugins:
    std::shared_ptr<const LoadedPlugin> loaded;
    sdk::PluginConfig config;
};

struct DaemonConfig {
    std::filesystem::path source_file;  // where it was read from (empty for in-memory text)
    std::uint32_t node_id = 0;
    std::string node_name;
    std::filesystem::path lock_file;
    std::filesystem::path control_socket;
    std::filesystem::path epoch_file;  // this node's last epoch, kept across restarts
    std::vector<std::string> plugin_dirs;
    std::string log_level;
    std::optional<std::filesystem::path> log_file;
    std::string log_target = "stderr";          // stderr | file | journal | syslog (auto resolved)
    std::optional<std::string> metrics_listen;  // ADDRESS:PORT of the metrics endpoint
    std::vector<SlotEntry> slots;               // source, protos, filters, transports, ha: in that order
    EngineOptions replication;
    std::vector<wire::KeyFile> keys;
    std::uint8_t send_key_id = 0;
    bool encrypt = false;
    FailoverOptions failover;
};

// Everything wrong with a configuration. Config issues mean exit code 2; plugin refusals alone mean 3.
struct ConfigReport {
    ConfigIssues issues;
    std::vector<std::string> plugin_errors;
    bool ok() const { return issues.empty() && plugin_errors.empty(); }
    int exit_code() const { return !issues.empty() ? 2 : (!plugin_errors.empty() ? 3 : 0); }
};

// Phase 1 on text already read. `origin` names the text in messages (a file path). Returns nullopt only when
// the text is not a JSON object; otherwise returns what could be read, and problems go to `report` (the
// caller must check report.ok()), so that phase 2 can still report plugin problems in the same run.
std::optional<DaemonConfig> parse_daemon_config(const std::string& text, const std::string& origin,
                                                ConfigReport& report);
// Phase 1 from a file: unreadable files and JSON syntax errors are issues at path ".".
std::optional<DaemonConfig> read_daemon_config(const std::filesystem::path& file, ConfigReport& report);

// Phase 2: loads every slot's plugin through `loader` and validates its config (key table, then the
// plugin's validate hook). Also refuses two proto handlers of one plugin. Never throws.
void resolve_plugins(DaemonConfig& config, PluginLoader& loader, ConfigReport& report);

// Reads only `.daemon.control_socket` (with its default) for ctsyncctl, tolerating everything else.
// Returns nullopt with `error` set when the file cannot be read or is not JSON.
std::optional<std::filesystem::path> read_control_socket(const std::filesystem::path& file,
                                                         std::string& error);

inline constexpr const char* kDefaultConfigFile = "/etc/ctsync/ctsyncd.json";
inline constexpr const char* kDefaultControlSocket = "/run/ctsync/ctsyncd.sock";
inline constexpr const char* kDefaultLockFile = "/run/ctsync/ctsyncd.lock";

}  // namespace ctsync::core
