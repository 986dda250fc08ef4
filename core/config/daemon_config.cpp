// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/config/daemon_config.hpp"

#include <fmt/format.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/config/key_table.hpp"

namespace ctsync::core {
namespace fs = std::filesystem;
using sdk::ConfigKey;
using sdk::KeyType;

namespace {

const ConfigKey kRootKeys[] = {
    {.name = "node", .type = KeyType::kObject, .required = true, .description = "This node: id and name."},
    {.name = "daemon",
     .type = KeyType::kObject,
     .default_json = "{}",
     .description = "Process settings: lock file, control socket, logging, plugin directories."},
    {.name = "source",
     .type = KeyType::kObject,
     .description =
         "The source plugin slot (kernel table reader/writer): {\"plugin\": ..., \"config\": {...}}."},
    {.name = "protos",
     .type = KeyType::kList,
     .default_json = "[]",
     .description =
         "Proto plugin slots (per-protocol handlers); protocols without one use the core's generic handler."},
    {.name = "filters",
     .type = KeyType::kList,
     .default_json = "[]",
     .description = "Filter plugin slots, evaluated in order; the first drop wins."},
    {.name = "transports",
     .type = KeyType::kList,
     .default_json = "[]",
     .description = "Transport plugin slots; several are redundant links."},
    {.name = "ha",
     .type = KeyType::kObject,
     .description = "The HA plugin slot (role changes from keepalived)."},
};

const ConfigKey kNodeKeys[] = {
    {.name = "id",
     .type = KeyType::kInteger,
     .required = true,
     .description = "Node id, unique in the cluster; carried in every datagram.",
     .min = 1,
     .max = 4294967295.0},
    {.name = "name",
     .type = KeyType::kString,
     .default_json = "\"\"",
     .description = "Human name for logs and status; empty means node<id>.",
     .min = 0},
};

const ConfigKey kDaemonKeys[] = {
    {.name = "lock_file",
     .type = KeyType::kPath,
     .default_json = "\"/run/ctsync/ctsyncd.lock\"",
     .description = "Lock file; one ctsyncd per lock file. Give each instance its own."},
    {.name = "control_socket",
     .type = KeyType::kPath,
     .default_json = "\"/run/ctsync/ctsyncd.sock\"",
     .description = "Unix socket ctsyncctl talks to. Give each instance its own."},
    {.name = "plugin_dirs",
     .type = KeyType::kStringList,
     .default_json = "[]",
     .description =
         "Extra plugin directories, searched after $CTSYNC_PLUGIN_PATH and before the built-in ones."},
    {.name = "log",
     .type = KeyType::kObject,
     .default_json = "{}",
     .description = "Logging: level and file."},
};

const ConfigKey kLogKeys[] = {
    {.name = "level",
     .type = KeyType::kEnum,
     .default_json = "\"info\"",
     .description = "Lowest level logged.",
     .choices = "trace|debug|info|warn|error|critical"},
    {.name = "file", .type = KeyType::kPath, .description = "Log file; standard error when unset."},
};

const ConfigKey kSlotKeys[] = {
    {.name = "plugin",
     .type = KeyType::kString,
     .required = true,
     .description = "Plugin id: the folder name under plugins/ (\"transport-mcast\")."},
    {.name = "name",
     .type = KeyType::kString,
     .description = "Instance name for logs, stats and control ([a-z0-9_-]); defaults to the plugin id."},
    {.name = "file",
     .type = KeyType::kPath,
     .description = "Load the plugin from this file instead of searching the plugin directories."},
    {.name = "config",
     .type = KeyType::kObject,
     .default_json = "{}",
     .description = "The plugin's own keys (see ctsyncd --describe PLUGIN)."},
};

bool valid_instance_name(const std::string& name) {
    if (name.empty() || name.size() > 64) {
        return false;
    }
    for (char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

void parse_slot(const nlohmann::json& input, sdk::Category category, const std::string& path,
                DaemonConfig& out, ConfigReport& report) {
    std::size_t before = report.issues.size();
    nlohmann::json values = validate_against(input, kSlotKeys, path, report.issues);
    if (report.issues.size() != before || !values["plugin"].is_string()) {
        return;
    }
    SlotEntry entry;
    entry.category = category;
    entry.path = path;
    entry.plugin = values["plugin"].get<std::string>();
    entry.instance = values["name"].is_string() ? values["name"].get<std::string>() : entry.plugin;
    if (values["file"].is_string()) {
        entry.file = fs::path(values["file"].get<std::string>());
    }
    entry.raw_config = values["config"];
    // The core logs as "ctsyncd" and owns the "control." and "metrics." metric names.
    static const std::set<std::string> kReserved = {"ctsyncd", "control", "metrics", "core"};
    if (kReserved.count(entry.instance) != 0) {
        report.issues.push_back(
            {join_path(path, values["name"].is_string() ? "name" : "plugin"),
             fmt::format("'{}' is reserved for the core; choose another instance name", entry.instance)});
        return;
    }
    if (!valid_instance_name(entry.instance)) {
        report.issues.push_back(
            {join_path(path, values["name"].is_string() ? "name" : "plugin"),
             fmt::format("'{}' is not a valid instance name: use 1-64 of [a-z0-9_-]", entry.instance)});
        return;
    }
    out.slots.push_back(std::move(entry));
}

}  // namespace

std::span<const ConfigKey> root_keys() {
    return kRootKeys;
}
std::span<const ConfigKey> node_keys() {
    return kNodeKeys;
}
std::span<const ConfigKey> daemon_keys() {
    return kDaemonKeys;
}
std::span<const ConfigKey> log_keys() {
    return kLogKeys;
}
std::span<const ConfigKey> slot_keys() {
    return kSlotKeys;
}

std::optional<DaemonConfig> parse_daemon_config(const std::string& text, const std::string& origin,
                                                ConfigReport& report) {
    nlohmann::json document;
    try {
        document = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        std::string what = e.what();
        if (auto pos = what.find("] "); pos != std::string::npos) {
            what = what.substr(pos + 2);
        }
        report.issues.push_back({".", fmt::format("{} is not valid JSON: {}", origin, what)});
        return std::nullopt;
    }
    DaemonConfig out;
    nlohmann::json root = validate_against(document, kRootKeys, ".", report.issues);
    if (!document.is_object()) {
        return std::nullopt;
    }
    if (root["node"].is_object()) {
        nlohmann::json node = validate_against(root["node"], kNodeKeys, ".node", report.issues);
        if (node["id"].is_number_integer()) {
            out.node_id = static_cast<std::uint32_t>(node["id"].get<std::int64_t>());
        }
        out.node_name = node["name"].is_string() ? node["name"].get<std::string>() : "";
        if (out.node_name.empty()) {
            out.node_name = fmt::format("node{}", out.node_id);
        }
    }
    if (root["daemon"].is_object()) {
        nlohmann::json daemon = validate_against(root["daemon"], kDaemonKeys, ".daemon", report.issues);
        if (daemon["lock_file"].is_string()) {
            out.lock_file = daemon["lock_file"].get<std::string>();
        }
        if (daemon["control_socket"].is_string()) {
            out.control_socket = daemon["control_socket"].get<std::string>();
            // sun_path holds 108 bytes including the terminator.
            if (out.control_socket.string().size() > 107) {
                report.issues.push_back(
                    {".daemon.control_socket",
                     fmt::format("path is {} bytes long; a unix socket path holds at most 107",
                                 out.control_socket.string().size())});
            }
        }
        if (daemon["plugin_dirs"].is_array()) {
            for (const auto& dir : daemon["plugin_dirs"]) {
                if (dir.is_string()) {
                    out.plugin_dirs.push_back(dir.get<std::string>());
                }
            }
        }
        if (daemon["log"].is_object()) {
            nlohmann::json log = validate_against(daemon["log"], kLogKeys, ".daemon.log", report.issues);
            out.log_level = log["level"].is_string() ? log["level"].get<std::string>() : "info";
            if (log["file"].is_string()) {
                out.log_file = fs::path(log["file"].get<std::string>());
            }
        }
        if (!out.lock_file.empty() && out.lock_file == out.control_socket) {
            report.issues.push_back({".daemon.control_socket", "must differ from .daemon.lock_file"});
        }
    }
    if (root["source"].is_object()) {
        parse_slot(root["source"], sdk::Category::kSource, ".source", out, report);
    }
    const std::pair<const char*, sdk::Category> lists[] = {
        {"protos", sdk::Category::kProto},
        {"filters", sdk::Category::kFilter},
        {"transports", sdk::Category::kTransport},
    };
    for (const auto& [key, category] : lists) {
        const auto& list = root[key];
        if (!list.is_array()) {
            continue;
        }
        for (std::size_t i = 0; i < list.size(); ++i) {
            parse_slot(list[i], category, join_path(std::string(".") + key, i), out, report);
        }
    }
    if (root["ha"].is_object()) {
        parse_slot(root["ha"], sdk::Category::kHa, ".ha", out, report);
    }
    // Instance names key logs, metrics and control replies: they must be unique across all slots.
    std::map<std::string, std::string> instance_paths;
    for (const auto& slot : out.slots) {
        auto [it, inserted] = instance_paths.emplace(slot.instance, slot.path);
        if (!inserted) {
            report.issues.push_back(
                {slot.path, fmt::format("instance name '{}' is already used by {}; give one of "
                                        "them a distinct \"name\"",
                                        slot.instance, it->second)});
        }
    }
    return out;
}

std::optional<DaemonConfig> read_daemon_config(const fs::path& file, ConfigReport& report) {
    std::ifstream in(file);
    if (!in) {
        report.issues.push_back(
            {".", fmt::format("cannot read config file '{}': {}", file.string(), std::strerror(errno))});
        return std::nullopt;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    auto config = parse_daemon_config(buffer.str(), file.string(), report);
    if (config) {
        std::error_code ec;
        config->source_file = fs::absolute(file, ec);
    }
    return config;
}

void resolve_plugins(DaemonConfig& config, PluginLoader& loader, ConfigReport& report) {
    std::set<std::string> proto_plugins;
    for (auto& slot : config.slots) {
        if (slot.category == sdk::Category::kProto && !proto_plugins.insert(slot.plugin).second) {
            report.issues.push_back({join_path(slot.path, "plugin"),
                                     fmt::format("proto plugin '{}' is listed twice", slot.plugin)});
            continue;
        }
        LoadResult result = loader.load(slot.plugin, slot.category, slot.file);
        if (!result) {
            report.plugin_errors.push_back(fmt::format("{}: {}", slot.path, result.error));
            continue;
        }
        slot.loaded = result.plugin;
        std::string config_path = join_path(slot.path, "config");
        std::size_t before = report.issues.size();
        nlohmann::json values =
            validate_against(slot.raw_config, result.plugin->keys(), config_path, report.issues);
        if (report.issues.size() != before) {
            continue;  // the plugin's own check may assume well-typed values
        }
        slot.config = sdk::PluginConfig(std::move(values));
        if (auto validate = result.plugin->descriptor->validate; validate != nullptr) {
            sdk::ConfigErrors errors;
            validate(slot.config, errors);
            for (auto& error : errors) {
                report.issues.push_back({config_path + error.path, std::move(error.message)});
            }
        }
    }
}

std::optional<fs::path> read_control_socket(const fs::path& file, std::string& error) {
    std::ifstream in(file);
    if (!in) {
        error = fmt::format("cannot read config file '{}': {}", file.string(), std::strerror(errno));
        return std::nullopt;
    }
    nlohmann::json document = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded() || !document.is_object()) {
        error = fmt::format("config file '{}' is not a JSON object (check it with ctsyncd --check-config)",
                            file.string());
        return std::nullopt;
    }
    auto daemon = document.find("daemon");
    if (daemon != document.end() && daemon->is_object()) {
        auto socket = daemon->find("control_socket");
        if (socket != daemon->end()) {
            if (!socket->is_string()) {
                error = fmt::format("{}: .daemon.control_socket: expected string", file.string());
                return std::nullopt;
            }
            return fs::path(socket->get<std::string>());
        }
    }
    return fs::path(kDefaultControlSocket);
}

}  // namespace ctsync::core
