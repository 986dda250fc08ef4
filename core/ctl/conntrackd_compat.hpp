// SPDX-License-Identifier: GPL-2.0-or-later
// conntrackd's client flags in ctsyncctl (-c, -f, -F, -R, -B, -n, -t, -k, -s, -i, -e): which control requests
// each one sends, and how their replies are printed, in conntrackd's layout where ctsync has the numbers.
// Pure functions over JSON; ctsyncctl's main() does the I/O, so that this unit is tested without a daemon.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/control/protocol.hpp"

namespace ctsync::core::ctl {

// One conntrackd client flag as given on the command line.
enum class CompatAction {
    kCommit,        // -c [ct|expect]: the takeover (role primary)
    kFlushCaches,   // -f [internal|external]
    kFlushKernel,   // -F [ct|expect]
    kResync,        // -R [ct|expect]
    kSendBulk,      // -B
    kRequestBulk,   // -n
    kLeavePrimary,  // -t: role backup
    kKill,          // -k
    kStats,         // -s [section]
    kDumpInternal,  // -i [ct|expect]
    kDumpExternal,  // -e [ct|expect]
};

struct CompatCommand {
    CompatAction action = CompatAction::kStats;
    std::string argument;  // the flag's optional argument; "" when none was given
};

// The flag as typed ("-c"), for messages.
std::string_view flag_name(CompatAction action);

// Accepted arguments of each flag (the empty string, for none, is always accepted).
std::vector<std::string> flag_choices(CompatAction action);

// The control requests a flag sends, in order. kStats sends status, stats and plugins: their replies are the
// input of format_stats(). Never empty.
std::vector<control::Request> requests_for(const CompatCommand& command);

// One line (or a few) saying what a request's successful reply means, for every request requests_for()
// returns except dump and the kStats ones. Role primary: one line per promotion step, then a summary.
std::string describe_reply(const control::Request& request, const nlohmann::json& result);

// Whether a successful reply still means failure for the exit code: entries the kernel refused at commit.
bool reply_reports_failure(const control::Request& request, const nlohmann::json& result);

// A dump reply as conntrack -L style lines and a count line (flows, or expectations).
std::string format_dump(const nlohmann::json& reply, bool expectations);

// What -s prints. `status`, `stats` and `plugins` are the daemon's replies to those commands. `section` is
// one of flag_choices(kStats), "" for conntrackd's default sections. Sections that need replication return
// nullopt and set `error` when it is not configured.
struct StatsInput {
    nlohmann::json status;
    nlohmann::json stats;
    nlohmann::json plugins;
};
std::optional<std::string> format_stats(const std::string& section, const StatsInput& input,
                                        std::string& error);

// conntrackd's uptime text: "2 days 3 h 4 min", "5 min".
std::string format_uptime(std::int64_t seconds);

}  // namespace ctsync::core::ctl
