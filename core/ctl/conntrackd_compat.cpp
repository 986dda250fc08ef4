// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/ctl/conntrackd_compat.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "core/cache/flow_json.hpp"

namespace ctsync::core::ctl {
namespace {

using Json = nlohmann::json;

// Members read leniently: a reply from another ctsyncd version may lack a member or give it another type, and
// -s must still print what it can (never a made-up value: a missing number makes its line disappear).
std::optional<std::int64_t> int_member(const Json& j, const std::string& key) {
    if (!j.is_object()) {
        return std::nullopt;
    }
    auto it = j.find(key);
    if (it == j.end() || !it->is_number()) {
        return std::nullopt;
    }
    return it->is_number_float() ? static_cast<std::int64_t>(it->get<double>()) : it->get<std::int64_t>();
}

std::string string_member(const Json& j, const std::string& key) {
    if (!j.is_object()) {
        return {};
    }
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool bool_member(const Json& j, const std::string& key) {
    if (!j.is_object()) {
        return false;
    }
    auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
}

const Json& member(const Json& j, const std::string& key) {
    static const Json kNull;
    if (!j.is_object()) {
        return kNull;
    }
    auto it = j.find(key);
    return it == j.end() ? kNull : *it;
}

std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return s;
}

// Appends tabs after `label` until the next character starts at `column` (tab stops every 8 columns), as
// conntrackd's hand-placed tabs do: its values start at column 32 or 40 on a terminal.
std::string tab_to(std::string label, std::size_t column) {
    std::size_t col = 0;
    for (char c : label) {
        col = c == '\t' ? (col / 8 + 1) * 8 : col + 1;
    }
    do {
        label += '\t';
        col = (col / 8 + 1) * 8;
    } while (col < column);
    return label;
}

class Metrics {
  public:
    explicit Metrics(const Json& list) {
        if (!list.is_array()) {
            return;
        }
        for (const auto& m : list) {
            auto value = int_member(m, "value");
            std::string name = string_member(m, "name");
            if (value && !name.empty()) {
                values_[name] = *value;
            }
        }
    }
    std::optional<std::int64_t> get(const std::string& name) const {
        auto it = values_.find(name);
        return it == values_.end() ? std::nullopt : std::optional<std::int64_t>(it->second);
    }
    // The sum of those of `names` that exist; nullopt when none does.
    std::optional<std::int64_t> sum(const std::vector<std::string>& names) const {
        std::optional<std::int64_t> total;
        for (const auto& n : names) {
            if (auto v = get(n)) {
                total = total.value_or(0) + *v;
            }
        }
        return total;
    }

  private:
    std::map<std::string, std::int64_t> values_;
};

// "<label><tabs><value>\n" with the value right-aligned in `width`, or nothing when the value is unknown.
std::string line(const std::string& label, std::size_t column, int width, std::optional<std::int64_t> value) {
    if (!value) {
        return {};
    }
    return fmt::format("{}{:>{}}\n", tab_to(label, column), *value, width);
}

struct Link {
    std::string name;
    std::string plugin;
    bool carrier = false;
    bool active = false;
};

std::vector<Link> links_of(const StatsInput& in) {
    std::map<std::string, std::string> plugin_of;
    if (in.plugins.is_array()) {
        for (const auto& p : in.plugins) {
            plugin_of[string_member(p, "instance")] = string_member(p, "plugin");
        }
    }
    std::vector<Link> out;
    const Json& links = member(member(in.status, "replication"), "links");
    if (!links.is_array()) {
        return out;
    }
    for (const auto& l : links) {
        Link link{string_member(l, "name"), "", bool_member(l, "carrier"), bool_member(l, "active")};
        link.plugin = plugin_of[link.name];
        out.push_back(std::move(link));
    }
    return out;
}

std::string traffic_kind(const std::string& plugin) {
    if (plugin == "transport-mcast") {
        return "multicast traffic";
    }
    if (plugin == "transport-tcp") {
        return "TCP traffic";
    }
    return fmt::format("{} traffic", plugin.empty() ? std::string("link") : plugin);
}

// conntrackd's channel counters: "%20llu Bytes sent %20llu Bytes recv" and so on. A pair is printed only when
// the link's transport has both metrics (transport-mcast and transport-tcp count bytes and datagrams;
// only transport-mcast counts socket errors).
std::string link_counters(const Link& link, const Metrics& m) {
    std::string out;
    auto pair = [&](const std::string& tx, const std::string& rx, const char* tx_label,
                    const char* rx_label) {
        auto sent = m.get(link.name + "." + tx);
        auto received = m.get(link.name + "." + rx);
        if (sent && received) {
            out += fmt::format("{:>20} {} {:>20} {}\n", *sent, tx_label, *received, rx_label);
        }
    };
    pair("bytes_sent", "bytes_received", "Bytes sent", "Bytes recv");
    pair("datagrams_sent", "datagrams_received", "Pckts sent", "Pckts recv");
    pair("tx_errors", "rx_errors", "Error send", "Error recv");
    return out;
}

// The default -s shows the link(s) carrying data, as conntrackd shows its active channel.
std::string active_links(const StatsInput& in, const Metrics& m) {
    std::string out;
    for (const auto& link : links_of(in)) {
        if (link.active) {
            out += fmt::format("{} (active link={}):\n{}\n", traffic_kind(link.plugin), link.name,
                               link_counters(link, m));
        }
    }
    return out;
}

const std::vector<std::string> kMalformed = {
    "replication.rx_malformed",         "replication.rx_dropped_truncated",
    "replication.rx_dropped_bad_magic", "replication.rx_dropped_bad_version",
    "replication.rx_dropped_bad_type",  "replication.rx_dropped_bad_header",
    "replication.rx_dropped_bad_length"};

std::string cache_summary(const std::string& name, std::optional<std::int64_t> active) {
    return fmt::format("cache {}:\n{}\n", name, line("current active connections:", 32, 12, active));
}

// A step's member as text: strings as they are (quoted when they hold a space), the rest as JSON.
std::string value_text(const Json& value) {
    if (!value.is_string()) {
        return value.dump();
    }
    const auto& text = value.get_ref<const std::string&>();
    return text.find(' ') == std::string::npos ? text : value.dump();
}

// "this node is PRIMARY (was BACKUP)", from a role reply.
std::string role_line(const Json& result, const std::string& asked) {
    std::string role = upper(string_member(result, "role"));
    std::string out = fmt::format("this node is {}", role.empty() ? asked : role);
    if (std::string from = upper(string_member(result, "from")); !from.empty()) {
        out += fmt::format(" (was {})", from);
    }
    return out;
}

bool has_replication(const StatsInput& in) {
    return member(in.status, "replication").is_object();
}

std::string default_sections(const StatsInput& in, const Metrics& m, bool expectations) {
    const Json& tables = member(in.status, "tables");
    const char* kind = expectations ? "expectations" : "flows";
    std::string out = cache_summary("internal", int_member(tables, fmt::format("internal_{}", kind)));
    out += cache_summary("external", int_member(tables, fmt::format("external_{}", kind)));
    if (has_replication(in)) {
        out += active_links(in, m);
        if (auto malformed = m.sum(kMalformed)) {
            out += fmt::format("message tracking:\n{:>20} Malformed msgs\n\n", *malformed);
        }
    }
    return out;
}

std::string cache_sections(const StatsInput& in, const Metrics& m) {
    const Json& tables = member(in.status, "tables");
    std::string out = line("cache:internal\tactive objects:", 40, 12, int_member(tables, "internal_flows"));
    out += line("\texpectations:", 40, 12, int_member(tables, "internal_expectations"));
    out += line("\tkernel events applied:", 40, 12, m.get("internal.events"));
    out += line("\tentries read by dumps:", 40, 12, m.get("internal.dumped"));
    out += line("\tentries swept:", 40, 12, m.get("internal.swept"));
    out += line("\tflows filtered out:", 40, 12, m.get("internal.filtered"));
    out += line("\tevent losses:", 40, 12, m.get("internal.losses"));
    out += line("\tincomplete dumps:", 40, 12, m.get("internal.dumps_incomplete"));
    out += line("\theap bytes:", 40, 12, m.get("internal.bytes"));
    out += "\n";
    out += line("cache:external\tactive objects:", 40, 12, int_member(tables, "external_flows"));
    out += line("\texpectations:", 40, 12, int_member(tables, "external_expectations"));
    out += line("\tcommits:", 40, 12, m.get("commit.runs"));
    out += line("\tentries refused at commit:", 40, 12, m.get("commit.failed_entries"));
    out += "\n";
    return out;
}

std::string source_instance(const StatsInput& in) {
    if (in.plugins.is_array()) {
        for (const auto& p : in.plugins) {
            if (string_member(p, "category") == "source") {
                return string_member(p, "instance");
            }
        }
    }
    return {};
}

std::string runtime_sections(const StatsInput& in, const Metrics& m) {
    std::string out;
    if (auto uptime = int_member(in.status, "uptime_s")) {
        out += fmt::format("daemon uptime: {}\n\n", format_uptime(*uptime));
    }
    if (const std::string src = source_instance(in); !src.empty()) {
        out += "netlink stats:\n";
        out += line("\tevents received:", 32, 20,
                    m.sum({src + ".events_new", src + ".events_update", src + ".events_destroy",
                           src + ".expectation_events"}));
        out += line("\tevents filtered:", 32, 20, m.get("internal.filtered"));
        out += line("\tnetlink overrun:", 40, 12, m.get(src + ".event_overruns"));
        out += line("\tmalformed messages:", 40, 12, m.get(src + ".malformed_messages"));
        out += line("\tresync with kernel table:", 40, 12, m.get(src + ".dumps"));
        out += line("\tcurrent buffer size (in bytes):", 40, 12, m.get(src + ".event_buffer_bytes"));
        out += "\n";
    }
    out += "runtime stats:\n";
    out += line("\tcontrol requests answered:", 40, 12, m.get("control.requests"));
    out += line("\tcontrol requests refused:", 40, 12, m.get("control.bad_requests"));
    out += line("\tcontrol requests failed:", 40, 12, m.get("control.failed_requests"));
    out += "\n";
    return out;
}

std::string network_sections(const StatsInput& in, const Metrics& m) {
    auto r = [&](const std::string& name) { return m.get("replication." + name); };
    std::string out = "network statistics:\n\trecv:\n";
    out += line("\t\tMalformed messages:", 40, 20, m.sum(kMalformed));
    out += line("\t\tWrong protocol version:", 40, 20, r("rx_dropped_bad_version"));
    out += line("\t\tMalformed header:", 40, 20, r("rx_dropped_bad_header"));
    out += line("\t\tMalformed payload:", 40, 20, r("rx_malformed"));
    out += line("\t\tBad message type:", 40, 20, r("rx_dropped_bad_type"));
    out += line("\t\tTruncated message:", 40, 20, r("rx_dropped_truncated"));
    out += line("\t\tBad message size:", 40, 20, r("rx_dropped_bad_length"));
    out += line("\t\tBad magic:", 40, 20, r("rx_dropped_bad_magic"));
    out += line("\t\tUnknown key id:", 40, 20, r("rx_dropped_unknown_key"));
    out += line("\t\tNot encrypted:", 40, 20, r("rx_dropped_not_encrypted"));
    out += line("\t\tBad tag (forged):", 40, 20, r("rx_dropped_bad_tag"));
    out += line("\t\tReplayed:", 40, 20, r("rx_replayed"));
    out += line("\t\tStale epoch:", 40, 20, r("rx_stale_epoch"));
    out += line("\t\tOwn node id:", 40, 20, r("rx_own"));
    out += "\tsend:\n";
    out += line("\t\tRefused by transport:", 40, 20, r("tx_local_drops"));
    out += line("\t\tRetransmitted:", 40, 20, r("retransmits"));
    out += "\nsequence tracking statistics:\n\trecv:\n";
    out += line("\t\tDuplicates:", 40, 20, r("rx_duplicates"));
    out += line("\t\tReorder overflows:", 40, 20, r("rx_reorder_overflows"));
    out += line("\t\tNACKs sent:", 40, 20, r("nacks_sent"));
    out += "\n";
    out += active_links(in, m);
    return out;
}

std::string link_sections(const StatsInput& in, const Metrics& m) {
    std::string out;
    for (const auto& link : links_of(in)) {
        out += fmt::format("{} link={} status={} role={}:\n{}\n", traffic_kind(link.plugin), link.name,
                           link.carrier ? "RUNNING" : "NO-CARRIER", link.active ? "ACTIVE" : "BACKUP",
                           link_counters(link, m));
    }
    return out;
}

std::string rsqueue_section(const StatsInput& in) {
    const Json& queue = member(member(in.status, "replication"), "resend_queue");
    auto len = int_member(queue, "datagrams");
    std::string out = len ? fmt::format("resent queue (len={})\n", *len) : std::string("resent queue\n");
    out += line("bytes held:", 32, 12, int_member(queue, "bytes"));
    if (len.value_or(0) > 0) {
        out += line("oldest sequence:", 32, 12, int_member(queue, "oldest"));
    }
    return out;
}

std::string queue_sections(const StatsInput& in, const Metrics& m) {
    const Json& queue = member(member(in.status, "replication"), "resend_queue");
    std::string out = "queue resend:\n";
    out += line("current elements:", 32, 12, int_member(queue, "datagrams"));
    out += line("current bytes:", 32, 12, int_member(queue, "bytes"));
    out += "\n";
    for (const auto& link : links_of(in)) {
        if (auto waiting = m.get(link.name + ".send_queue_datagrams")) {
            out += fmt::format("queue {}:\n{}\n", link.name, line("current elements:", 32, 12, waiting));
        }
    }
    return out;
}

}  // namespace

std::string_view flag_name(CompatAction action) {
    switch (action) {
        case CompatAction::kCommit:
            return "-c";
        case CompatAction::kFlushCaches:
            return "-f";
        case CompatAction::kFlushKernel:
            return "-F";
        case CompatAction::kResync:
            return "-R";
        case CompatAction::kSendBulk:
            return "-B";
        case CompatAction::kRequestBulk:
            return "-n";
        case CompatAction::kLeavePrimary:
            return "-t";
        case CompatAction::kKill:
            return "-k";
        case CompatAction::kStats:
            return "-s";
        case CompatAction::kDumpInternal:
            return "-i";
        case CompatAction::kDumpExternal:
            return "-e";
    }
    return "?";
}

std::vector<std::string> flag_choices(CompatAction action) {
    switch (action) {
        case CompatAction::kCommit:
        case CompatAction::kFlushKernel:
        case CompatAction::kResync:
        case CompatAction::kDumpInternal:
        case CompatAction::kDumpExternal:
            return {"ct", "expect"};
        case CompatAction::kFlushCaches:
            return {"internal", "external"};
        case CompatAction::kStats:
            return {"network", "cache", "runtime", "link", "rsqueue", "process", "queue", "ct", "expect"};
        case CompatAction::kSendBulk:
        case CompatAction::kRequestBulk:
        case CompatAction::kLeavePrimary:
        case CompatAction::kKill:
            return {};
    }
    return {};
}

std::vector<control::Request> requests_for(const CompatCommand& command) {
    using control::Request;
    switch (command.action) {
        case CompatAction::kCommit:
            return {Request{"role", {{"role", "primary"}}}};
        case CompatAction::kFlushCaches: {
            std::vector<Request> out;
            // ctsync's internal cache is the kernel's table as read: "flushing" it means reading the kernel
            // again (a dump with mark and sweep), not emptying it.
            if (command.argument != "external") {
                out.push_back(Request{"resync", Json::object()});
            }
            if (command.argument != "internal") {
                out.push_back(Request{"flush", {{"target", "external"}}});
            }
            return out;
        }
        case CompatAction::kFlushKernel:
            return {Request{"flush", {{"target", "kernel"}}}};
        case CompatAction::kResync:
            return {Request{"resync", Json::object()}};
        case CompatAction::kSendBulk:
            return {Request{"send-bulk", Json::object()}};
        case CompatAction::kRequestBulk:
            return {Request{"request-bulk", Json::object()}};
        case CompatAction::kLeavePrimary:
            return {Request{"role", {{"role", "backup"}}}};
        case CompatAction::kKill:
            return {Request{"shutdown", Json::object()}};
        case CompatAction::kStats:
            return {Request{"status", Json::object()}, Request{"stats", Json::object()},
                    Request{"plugins", Json::object()}};
        case CompatAction::kDumpInternal:
            return {Request{"dump", {{"cache", "internal"}}}};
        case CompatAction::kDumpExternal:
            return {Request{"dump", {{"cache", "external"}}}};
    }
    return {Request{"status", Json::object()}};
}

std::string describe_reply(const control::Request& request, const Json& result) {
    const std::string& cmd = request.command;
    if (cmd == "role" && string_member(request.args, "role") == "primary") {
        std::string out;
        const Json& steps = member(result, "steps");
        for (const auto& step : steps.is_array() ? steps : Json::array()) {
            std::string text = fmt::format("  {}:", string_member(step, "step"));
            if (const Json& ms = member(step, "ms"); ms.is_number()) {
                text += fmt::format(" {:.2f} ms", ms.get<double>());
            }
            if (step.is_object()) {
                for (const auto& [key, value] : step.items()) {
                    if (key != "step" && key != "ms") {
                        text += fmt::format(" {}={}", key, value_text(value));
                    }
                }
            }
            out += text + "\n";
        }
        out += role_line(result, "PRIMARY");
        std::vector<std::string> counts;
        for (const char* key : {"committed", "failed", "flushed"}) {
            if (auto n = int_member(result, key)) {
                counts.push_back(fmt::format("{} {}", *n, key));
            }
        }
        if (const Json& total = member(result, "total_ms"); total.is_number()) {
            counts.push_back(fmt::format("{:.2f} ms", total.get<double>()));
        }
        if (!counts.empty()) {
            out += fmt::format(": {}", fmt::join(counts, ", "));
        }
        return out + "\n";
    }
    if (cmd == "role") {
        return role_line(result, "BACKUP") + ": it no longer sends its table\n";
    }
    if (cmd == "flush") {
        std::string target = string_member(request.args, "target");
        if (target == "kernel") {
            return "flushed the kernel conntrack table\n";
        }
        auto removed = int_member(result, "removed");
        return removed ? fmt::format("flushed the {} cache: {} entries removed\n", target, *removed)
                       : fmt::format("flushed the {} cache\n", target);
    }
    if (cmd == "resync") {
        return "internal cache: a dump of the kernel table was requested (mark and sweep)\n";
    }
    if (cmd == "send-bulk") {
        return "bulk transfer of this node's table queued for every peer\n";
    }
    if (cmd == "request-bulk") {
        return "bulk transfer requested from every live peer\n";
    }
    if (cmd == "shutdown") {
        return "ctsyncd is stopping\n";
    }
    return result.dump() + "\n";
}

bool reply_reports_failure(const control::Request& request, const Json& result) {
    return request.command == "role" && string_member(request.args, "role") == "primary" &&
           int_member(result, "failed").value_or(0) != 0;
}

std::string format_dump(const Json& reply, bool expectations) {
    ConfigIssues ignored;
    std::size_t n = 0;
    std::string out;
    const std::string cache = string_member(reply, "cache");
    if (expectations) {
        const Json& list = member(reply, "expectations");
        for (const auto& e : list.is_array() ? list : Json::array()) {
            if (auto parsed = expectation_from_json(e, ".", ignored)) {
                out += to_line(*parsed) + "\n";
                ++n;
            }
        }
        return out + fmt::format("{} expectation{} in the {} cache\n", n, n == 1 ? "" : "s", cache);
    }
    const Json& list = member(reply, "flows");
    for (const auto& f : list.is_array() ? list : Json::array()) {
        if (auto parsed = flow_from_json(f, ".", ignored)) {
            out += to_line(*parsed) + "\n";
            ++n;
        }
    }
    return out + fmt::format("{} flow{} in the {} cache\n", n, n == 1 ? "" : "s", cache);
}

std::optional<std::string> format_stats(const std::string& section, const StatsInput& input,
                                        std::string& error) {
    const Metrics metrics(input.stats);
    if (section.empty() || section == "ct" || section == "expect") {
        return default_sections(input, metrics, section == "expect");
    }
    if (section == "cache") {
        return cache_sections(input, metrics);
    }
    if (section == "runtime") {
        return runtime_sections(input, metrics);
    }
    if (section == "process") {
        auto pid = int_member(input.status, "pid");
        return pid ? fmt::format("ctsyncd runs no child processes (daemon PID={})\n", *pid)
                   : std::string("ctsyncd runs no child processes\n");
    }
    if (section != "network" && section != "link" && section != "rsqueue" && section != "queue") {
        error = fmt::format("unknown -s section '{}'", section);
        return std::nullopt;
    }
    if (!has_replication(input)) {
        error = fmt::format("replication is not configured (no transports in the config): -s {} shows it",
                            section);
        return std::nullopt;
    }
    if (section == "network") {
        return network_sections(input, metrics);
    }
    if (section == "link") {
        return link_sections(input, metrics);
    }
    if (section == "rsqueue") {
        return rsqueue_section(input);
    }
    return queue_sections(input, metrics);
}

std::string format_uptime(std::int64_t seconds) {
    seconds = std::max<std::int64_t>(seconds, 0);
    const std::int64_t days = seconds / 86400;
    const std::int64_t minutes_total = seconds / 60;
    const std::int64_t hours = (minutes_total / 60) % 24;
    const std::int64_t minutes = minutes_total % 60;
    std::string out = days != 0 ? fmt::format("{} day{} ", days, days != 1 ? "s" : "") : std::string();
    out += hours != 0 ? fmt::format("{} h {} min", hours, minutes) : fmt::format("{} min", minutes);
    return out;
}

}  // namespace ctsync::core::ctl
