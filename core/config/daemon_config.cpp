// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/config/daemon_config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/config/key_table.hpp"
#include "core/metrics/http_endpoint.hpp"

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
    {.name = "replication",
     .type = KeyType::kObject,
     .default_json = "{}",
     .description = "The replication engine: mode, policy, bulk rate, timers, redundant links."},
    {.name = "security",
     .type = KeyType::kObject,
     .default_json = "{}",
     .description = "Datagram authentication: pre-shared key files, send key id, encryption."},
    {.name = "failover",
     .type = KeyType::kObject,
     .default_json = "{}",
     .description = "Role changes: warm or cold standby, what a new primary flushes."},
};

const ConfigKey kFailoverKeys[] = {
    {.name = "standby",
     .type = KeyType::kEnum,
     .default_json = "\"warm\"",
     .description =
         "warm: a backup writes what its peers send into its own kernel table as it arrives, so that its "
         "table is complete before the virtual addresses move (pfsync's way); cold: only the external "
         "cache holds it until this node becomes primary (conntrackd's way; less work for a backup, "
         "a longer commit at takeover).",
     .choices = "warm|cold"},
    {.name = "standby_batch",
     .type = KeyType::kInteger,
     .default_json = "2000",
     .description = "Warm standby: at most this many entries per kernel write before the loop runs again.",
     .min = 1,
     .max = 1000000},
    {
        .name = "flush_unknown",
        .type = KeyType::kBool,
        .default_json = "true",
        .description =
            "Becoming primary: delete the kernel entries this node held when it stopped being primary (or "
            "at start) that the old primary never had: connections that ended while another node forwarded "
            "them. Entries created since are kept.",
    },
};

const ConfigKey kReplicationKeys[] = {
    {.name = "mode",
     .type = KeyType::kEnum,
     .default_json = "\"reliable\"",
     .description =
         "reliable: ACK/NACK retransmission and bulk repair; alarm: best effort plus a full refresh "
         "every alarm_interval_s; best-effort: no repair but bulk transfers.",
     .choices = "reliable|alarm|best-effort"},
    {.name = "policy",
     .type = KeyType::kEnum,
     .default_json = "\"weak\"",
     .description =
         "strong: every change; weak: only critical changes (state, status, NAT, mark, labels, "
         "helper), not timer refreshes; delayed: like weak, and flows that end within delay_ms are "
         "never sent.",
     .choices = "strong|weak|delayed"},
    {.name = "delay_ms",
     .type = KeyType::kInteger,
     .default_json = "2000",
     .description = "The delayed policy's window.",
     .min = 1,
     .max = 600000},
    {.name = "flush_interval_ms",
     .type = KeyType::kInteger,
     .default_json = "10",
     .description =
         "Changes wait this long before they are sent: every change of a flow within it becomes one "
         "record, and records share datagrams (0: send after each burst of kernel events).",
     .min = 0,
     .max = 1000},
    {.name = "initial_role",
     .type = KeyType::kEnum,
     .default_json = "\"backup\"",
     .description = "Role until an HA plugin or `ctsyncctl role` says otherwise: a primary sends its table.",
     .choices = "primary|backup"},
    {.name = "resend_queue_bytes",
     .type = KeyType::kInteger,
     .default_json = "67108864",
     .description = "Sent data kept until every live peer acknowledged it; a peer that falls further behind "
                    "gets a bulk transfer (counted in replication.resend_overflows).",
     .min = 65536,
     .max = 4294967296.0},
    {.name = "bulk_rate",
     .type = KeyType::kInteger,
     .default_json = "100000",
     .description = "Entries per second a bulk transfer sends; live changes always go first.",
     .min = 100,
     .max = 10000000},
    {.name = "alive_interval_ms",
     .type = KeyType::kInteger,
     .default_json = "200",
     .description = "ALIVE (with the last sequence seen from every peer) on every link this often.",
     .min = 10,
     .max = 60000},
    {.name = "peer_timeout_ms",
     .type = KeyType::kInteger,
     .default_json = "3000",
     .description = "A peer silent this long is gone: its acknowledgements no longer hold the resend queue.",
     .min = 50,
     .max = 600000},
    {.name = "ack_interval_ms",
     .type = KeyType::kInteger,
     .default_json = "20",
     .description = "At most one ACK per peer this often while data arrives.",
     .min = 1,
     .max = 10000},
    {.name = "nack_retry_ms",
     .type = KeyType::kInteger,
     .default_json = "100",
     .description = "A range still missing is asked for again after this long.",
     .min = 5,
     .max = 60000},
    {.name = "alarm_interval_s",
     .type = KeyType::kInteger,
     .default_json = "30",
     .description = "Alarm mode: full refresh of the table this often.",
     .min = 1,
     .max = 86400},
    {.name = "link_mode",
     .type = KeyType::kEnum,
     .default_json = "\"failover\"",
     .description = "Several transports: failover sends data on the first healthy one (carrier up and heard "
                    "within link_silence_ms); parallel sends on all and drops the copies.",
     .choices = "failover|parallel"},
    {.name = "link_silence_ms",
     .type = KeyType::kInteger,
     .default_json = "1000",
     .description = "Failover: a link on which no peer was heard this long is dead (carrier or not).",
     .min = 20,
     .max = 600000},
};

const ConfigKey kSecurityKeys[] = {
    {.name = "keys",
     .type = KeyType::kList,
     .default_json = "[]",
     .description =
         "Pre-shared keys: [{\"id\": 1, \"file\": \"/etc/ctsync/sync.key\"}]; each file holds 64 hex "
         "digits or 32 bytes and must not be readable by group or others. Required with transports."},
    {.name = "send_key_id",
     .type = KeyType::kInteger,
     .description = "Key id this node sends with (any configured key is accepted); defaults to the only key.",
     .min = 0,
     .max = 255},
    {
        .name = "encrypt",
        .type = KeyType::kBool,
        .default_json = "false",
        .description = "Encrypt the payload too (always authenticated: XChaCha20-Poly1305).",
    },
};

const ConfigKey kKeyEntryKeys[] = {
    {.name = "id",
     .type = KeyType::kInteger,
     .required = true,
     .description = "Key id, 0-255.",
     .min = 0,
     .max = 255},
    {.name = "file", .type = KeyType::kPath, .required = true, .description = "Key file."},
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
    {.name = "epoch_file",
     .type = KeyType::kPath,
     .default_json = "\"/var/lib/ctsync/ctsyncd.epoch\"",
     .description = "Where the node keeps its last replication epoch, so that the next run's is higher even "
                    "if the clock stepped back meanwhile (peers drop an older epoch). Give each instance its "
                    "own."},
    {.name = "plugin_dirs",
     .type = KeyType::kStringList,
     .default_json = "[]",
     .description =
         "Extra plugin directories, searched after $CTSYNC_PLUGIN_PATH and before the built-in ones."},
    {.name = "log",
     .type = KeyType::kObject,
     .default_json = "{}",
     .description = "Logging: level, file, or the journal or syslog."},
    {.name = "metrics",
     .type = KeyType::kObject,
     .default_json = "{}",
     .description = "The Prometheus metrics endpoint (off unless `listen` is set)."},
};

const ConfigKey kMetricsKeys[] = {
    {.name = "listen",
     .type = KeyType::kString,
     .description =
         "ADDRESS:PORT ([IPV6]:PORT) to serve GET /metrics on, e.g. \"127.0.0.1:9469\"; unset: no "
         "endpoint. The metrics are not authenticated: keep it on loopback or a management network."},
};

const ConfigKey kLogKeys[] = {
    {.name = "level",
     .type = KeyType::kEnum,
     .default_json = "\"info\"",
     .description = "Lowest level logged.",
     .choices = "trace|debug|info|warn|error|critical"},
    {.name = "file", .type = KeyType::kPath, .description = "Log file; standard error when unset."},
    {.name = "target",
     .type = KeyType::kEnum,
     .default_json = "\"auto\"",
     .description = "Where lines go: auto (the file when `file` is set, else standard error), stderr, file, "
                    "journal (systemd journal, with the level as priority) or syslog (facility daemon).",
     .choices = "auto|stderr|file|journal|syslog"},
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

std::int64_t int_of(const nlohmann::json& values, const char* key, std::int64_t fallback) {
    const auto& v = values[key];
    return v.is_number_integer() ? v.get<std::int64_t>() : fallback;
}

void parse_replication(const nlohmann::json& r, EngineOptions& o, ConfigReport& report) {
    const std::string mode = r["mode"].is_string() ? r["mode"].get<std::string>() : "reliable";
    o.mode = mode == "alarm"         ? EngineOptions::Mode::kAlarm
             : mode == "best-effort" ? EngineOptions::Mode::kBestEffort
                                     : EngineOptions::Mode::kReliable;
    const std::string policy = r["policy"].is_string() ? r["policy"].get<std::string>() : "weak";
    o.policy = policy == "strong"    ? EngineOptions::Policy::kStrong
               : policy == "delayed" ? EngineOptions::Policy::kDelayed
                                     : EngineOptions::Policy::kWeak;
    o.delay = std::chrono::milliseconds(int_of(r, "delay_ms", 2000));
    o.flush_interval = std::chrono::milliseconds(int_of(r, "flush_interval_ms", 10));
    o.sending = r["initial_role"].is_string() && r["initial_role"].get<std::string>() == "primary";
    o.resend_queue_bytes = static_cast<std::size_t>(int_of(r, "resend_queue_bytes", 64 << 20));
    o.bulk_rate = static_cast<std::uint32_t>(int_of(r, "bulk_rate", 100000));
    o.alive_interval = std::chrono::milliseconds(int_of(r, "alive_interval_ms", 200));
    o.peer_timeout = std::chrono::milliseconds(int_of(r, "peer_timeout_ms", 3000));
    o.ack_interval = std::chrono::milliseconds(int_of(r, "ack_interval_ms", 20));
    o.nack_retry = std::chrono::milliseconds(int_of(r, "nack_retry_ms", 100));
    o.alarm_interval = std::chrono::seconds(int_of(r, "alarm_interval_s", 30));
    o.link_mode = r["link_mode"].is_string() && r["link_mode"].get<std::string>() == "parallel"
                      ? EngineOptions::LinkMode::kParallel
                      : EngineOptions::LinkMode::kFailover;
    o.link_silence = std::chrono::milliseconds(int_of(r, "link_silence_ms", 1000));
    if (o.peer_timeout <= 2 * o.alive_interval) {
        report.issues.push_back(
            {".replication.peer_timeout_ms",
             fmt::format("must exceed twice alive_interval_ms ({} ms): one lost ALIVE must "
                         "not make a peer gone",
                         o.alive_interval.count())});
    }
    if (o.link_silence <= 2 * o.alive_interval) {
        report.issues.push_back(
            {".replication.link_silence_ms",
             fmt::format("must exceed twice alive_interval_ms ({} ms): every link carries "
                         "ALIVEs, and one lost ALIVE must not fail a link over",
                         o.alive_interval.count())});
    }
}

void parse_security(const nlohmann::json& s, DaemonConfig& out, ConfigReport& report) {
    out.encrypt = s["encrypt"].is_boolean() && s["encrypt"].get<bool>();
    const auto& keys = s["keys"];
    std::set<std::int64_t> ids;
    for (std::size_t i = 0; keys.is_array() && i < keys.size(); ++i) {
        const std::string path = join_path(".security.keys", i);
        std::size_t before = report.issues.size();
        nlohmann::json entry = validate_against(keys[i], kKeyEntryKeys, path, report.issues);
        if (report.issues.size() != before || !entry["id"].is_number_integer() ||
            !entry["file"].is_string()) {
            continue;
        }
        const auto id = entry["id"].get<std::int64_t>();
        if (!ids.insert(id).second) {
            report.issues.push_back({join_path(path, "id"), fmt::format("key id {} is given twice", id)});
            continue;
        }
        out.keys.push_back({static_cast<std::uint8_t>(id), fs::path(entry["file"].get<std::string>())});
    }
    if (s["send_key_id"].is_number_integer()) {
        const auto id = s["send_key_id"].get<std::int64_t>();
        if (ids.count(id) == 0) {
            report.issues.push_back(
                {".security.send_key_id", fmt::format("key id {} is not among .security.keys", id)});
        }
        out.send_key_id = static_cast<std::uint8_t>(id);
    } else if (out.keys.size() == 1) {
        out.send_key_id = out.keys.front().id;
    } else if (out.keys.size() > 1) {
        report.issues.push_back(
            {".security.send_key_id", "several keys are configured: say which one to send with"});
    }
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
std::span<const ConfigKey> metrics_keys() {
    return kMetricsKeys;
}
std::span<const CoreSection> core_sections() {
    static const CoreSection sections[] = {
        {".", root_keys()},
        {".node", node_keys()},
        {".daemon", daemon_keys()},
        {".daemon.log", log_keys()},
        {".daemon.metrics", metrics_keys()},
        {".replication", replication_keys()},
        {".security", security_keys()},
        {".failover", failover_keys()},
        {"plugin slot", slot_keys()},
    };
    return sections;
}
std::span<const ConfigKey> slot_keys() {
    return kSlotKeys;
}
std::span<const ConfigKey> replication_keys() {
    return kReplicationKeys;
}
std::span<const ConfigKey> security_keys() {
    return kSecurityKeys;
}
std::span<const ConfigKey> failover_keys() {
    return kFailoverKeys;
}

std::optional<DaemonConfig> parse_daemon_config(const std::string& text, const std::string& origin,
                                                ConfigReport& report) {
    nlohmann::json document;
    try {
        document = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        // parse_error, and out_of_range for a number too large for a double (found by the config fuzzer).
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
        if (daemon["epoch_file"].is_string()) {
            out.epoch_file = daemon["epoch_file"].get<std::string>();
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
            std::string target = log["target"].is_string() ? log["target"].get<std::string>() : "auto";
            if (target == "auto") {
                target = out.log_file ? "file" : "stderr";
            }
            if (target == "file" && !out.log_file) {
                report.issues.push_back({".daemon.log.target", "\"file\" needs .daemon.log.file"});
            } else if (target != "file" && out.log_file) {
                report.issues.push_back(
                    {".daemon.log.file", fmt::format("is set, but .daemon.log.target is \"{}\"", target)});
            }
            out.log_target = target;
        }
        if (daemon["metrics"].is_object()) {
            nlohmann::json metrics =
                validate_against(daemon["metrics"], kMetricsKeys, ".daemon.metrics", report.issues);
            if (metrics["listen"].is_string()) {
                std::string error;
                if (!parse_listen_address(metrics["listen"].get<std::string>(), error)) {
                    report.issues.push_back({".daemon.metrics.listen", error});
                } else {
                    out.metrics_listen = metrics["listen"].get<std::string>();
                }
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
    if (root["replication"].is_object()) {
        parse_replication(
            validate_against(root["replication"], kReplicationKeys, ".replication", report.issues),
            out.replication, report);
    }
    if (root["security"].is_object()) {
        nlohmann::json security =
            validate_against(root["security"], kSecurityKeys, ".security", report.issues);
        parse_security(security, out, report);
    }
    if (root["failover"].is_object()) {
        nlohmann::json f = validate_against(root["failover"], kFailoverKeys, ".failover", report.issues);
        out.failover.warm_standby = !f["standby"].is_string() || f["standby"].get<std::string>() == "warm";
        out.failover.standby_batch = static_cast<std::size_t>(int_of(f, "standby_batch", 2000));
        out.failover.flush_unknown = !f["flush_unknown"].is_boolean() || f["flush_unknown"].get<bool>();
    }
    const bool has_transports = std::any_of(out.slots.begin(), out.slots.end(), [](const SlotEntry& s) {
        return s.category == sdk::Category::kTransport;
    });
    if (has_transports && out.keys.empty()) {
        report.issues.push_back(
            {".security.keys",
             "transports are configured, so at least one key is required: every datagram is "
             "authenticated (see docs/CONFIG.md, security)"});
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
