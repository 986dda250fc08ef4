// SPDX-License-Identifier: GPL-2.0-or-later
// ctsyncctl: talks to a running ctsyncd over its control socket.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <vector>

#include "core/config/daemon_config.hpp"
#include "core/control/client.hpp"
#include "core/ctl/conntrackd_compat.hpp"
#include "core/version.hpp"

namespace {
namespace fs = std::filesystem;
using namespace ctsync;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

void print_replication(const nlohmann::json& r) {
    std::cout << fmt::format(
        "node {} epoch {}: {}, next sequence {}, resend queue {} datagrams ({} bytes), {}\n",
        r.value("node_id", 0), r.value("epoch", std::uint64_t{0}),
        r.value("sending", false) ? "sending (primary)" : "not sending (backup)",
        r.value("next_seq", std::uint64_t{0}), r["resend_queue"].value("datagrams", 0),
        r["resend_queue"].value("bytes", 0),
        r.value("complete", false) ? "complete: every peer's table is held"
                                   : "incomplete: a bulk transfer is awaited or running");
    for (const auto& l : r.value("links", nlohmann::json::array())) {
        std::cout << fmt::format("link {}: carrier {}, {}, last heard {} ms ago\n", l.value("name", ""),
                                 l.value("carrier", false) ? "up" : "down",
                                 l.value("active", false) ? "active" : "standby", l.value("silent_ms", 0));
    }
    for (const auto& p : r.value("peers", nlohmann::json::array())) {
        const auto& b = p["bulk"];
        std::cout << fmt::format(
            "peer {}: {}, {}, heard {} ms ago, {}, next expected {}, acked ours {}, bulk {} ({}/{})\n",
            p.value("node", 0), p.value("live", false) ? "live" : "gone", p.value("role", ""),
            p.value("silent_ms", 0), p.value("synced", false) ? "synced" : "not synced",
            p.value("next_expected", std::uint64_t{0}), p.value("acked_ours", std::uint64_t{0}),
            b.value("state", ""), b.value("received", 0), b.value("total", 0));
    }
    for (const auto& j : r.value("bulks_serving", nlohmann::json::array())) {
        std::cout << fmt::format("serving bulk {} to {}: {}/{} sent\n", j.value("bulk_id", 0),
                                 j.value("requester", 0) == 0
                                     ? std::string("every peer")
                                     : fmt::format("node {}", j.value("requester", 0)),
                                 j.value("sent", 0), j.value("total", 0));
    }
}

void print_status(const nlohmann::json& s) {
    std::cout << fmt::format("node:            {} (id {})\n", s.value("node_name", ""),
                             s.value("node_id", 0));
    std::cout << fmt::format("role:            {}\n", s.value("role", ""));
    std::cout << fmt::format("pid:             {}\n", s.value("pid", 0));
    std::cout << fmt::format("uptime:          {} s\n", s.value("uptime_s", 0));
    std::cout << fmt::format("plugins:         {}\n", s.value("plugins", 0));
    std::cout << fmt::format("network ns:      {}\n", s.value("network_namespace", ""));
    std::cout << fmt::format("config file:     {}\n", s.value("config_file", ""));
    std::cout << fmt::format("control socket:  {}\n", s.value("control_socket", ""));
    std::cout << fmt::format("lock file:       {}\n", s.value("lock_file", ""));
    std::cout << fmt::format("version:         {}\n", s.value("version", ""));
}

void print_stats(const nlohmann::json& list) {
    std::size_t width = 4;
    for (const auto& m : list) {
        width = std::max(width, m.value("name", std::string()).size());
    }
    for (const auto& m : list) {
        std::cout << fmt::format("{:<{}}  {:>14}  {}\n", m.value("name", std::string()), width,
                                 m.value("value", std::int64_t{0}), m.value("help", std::string()));
    }
    if (list.empty()) {
        std::cout << "(no metrics)\n";
    }
}

void print_plugins(const nlohmann::json& list) {
    for (const auto& p : list) {
        std::cout << fmt::format("{:<20} {:<24} {:<10} {:<8} abi {}  {}\n", p.value("instance", ""),
                                 p.value("plugin", ""), p.value("category", ""), p.value("version", ""),
                                 p.value("abi", ""), p.value("file", ""));
    }
    if (list.empty()) {
        std::cout << "(no plugins loaded)\n";
    }
}

// `filters`: the kernel-side program, then each filter in chain order with what it decides where.
void print_filters(const nlohmann::json& r) {
    const auto& kernel = r.value("kernel_program", nlohmann::json::object());
    if (kernel.value("instructions", 0) == 0) {
        std::cout << "kernel program: none (every filter runs in process)\n";
    } else {
        std::cout << fmt::format("kernel program: {} instructions on the source's event socket, {}\n",
                                 kernel.value("instructions", 0),
                                 kernel.value("attached", false)
                                     ? std::string("attached")
                                     : "refused (" + kernel.value("error", std::string("?")) + ")");
    }
    const auto& filters = r.value("filters", nlohmann::json::array());
    if (filters.empty()) {
        std::cout << "(no filters configured: every flow is replicated)\n";
    }
    auto join = [](const nlohmann::json& list) {
        std::string out;
        for (const auto& a : list) {
            out += out.empty() ? "" : ", ";
            out += a.get<std::string>();
        }
        return out.empty() ? std::string("(none)") : out;
    };
    for (const auto& f : filters) {
        std::cout << fmt::format("{} ({})\n", f.value("instance", ""), f.value("plugin", ""));
        const auto& d = f.value("describe", nlohmann::json::object());
        if (d.contains("expression")) {
            std::cout << fmt::format("  expression:  {}\n", d.value("expression", ""));
        }
        std::cout << fmt::format("  kernel:      {}", f.value("kernel", ""));
        if (f.value("kernel", "") == "attached") {
            const bool exact = d.value("kernel", nlohmann::json::object()).value("exact", false);
            std::cout << fmt::format(", {} instructions{}", f.value("kernel_instructions", 0),
                                     exact ? ", the whole verdict" : "");
        }
        if (f.contains("reason")) {
            std::cout << " (" << f.value("reason", "") << ")";
        }
        std::cout << "\n";
        if (d.contains("kernel") && f.value("kernel", "") == "attached") {
            std::cout << "    decides:   " << join(d["kernel"].value("atoms", nlohmann::json::array()))
                      << "\n";
        }
        if (d.contains("process")) {
            std::cout << "  process:     the whole expression; only here: "
                      << join(d["process"].value("atoms", nlohmann::json::array())) << "\n";
        }
        if (d.contains("counters")) {
            const auto& c = d["counters"];
            std::cout << fmt::format("  counters:    seen {}, accepted {}, dropped in process {}",
                                     c.value("seen", 0), c.value("accepted", 0),
                                     c.value("dropped_in_process", 0));
        }
        if (f.contains("dropped_in_kernel")) {
            std::cout << fmt::format(
                "{}dropped in kernel {}",
                d.contains("counters") ? ", " : "  counters:    ", f.value("dropped_in_kernel", 0));
        }
        if (d.contains("counters") || f.contains("dropped_in_kernel")) {
            std::cout << "\n";
        }
    }
}

// The remaining time before `deadline`, at least 1 ms: several requests share one --timeout.
std::chrono::milliseconds remaining(std::chrono::steady_clock::time_point deadline) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return std::max(left, std::chrono::milliseconds(1));
}

void print_error(const core::control::Reply& reply) {
    std::cerr << "ctsyncctl: " << (reply.transport_error ? "" : "ctsyncd: ") << reply.error << "\n";
}

// A conntrackd-style flag: its requests in order, each reply printed as it comes. A failed request does not
// stop the next one (-f without argument refreshes the internal cache and empties the external one, and
// one of them failing is no reason to skip the other), but it makes the exit code 1.
int run_compat(const fs::path& socket, const core::ctl::CompatCommand& command, int timeout_ms, bool json) {
    using core::ctl::CompatAction;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    const auto requests = core::ctl::requests_for(command);
    if (command.action == CompatAction::kStats) {
        core::ctl::StatsInput input;
        nlohmann::json* replies[] = {&input.status, &input.stats, &input.plugins};
        for (std::size_t i = 0; i < requests.size() && i < std::size(replies); ++i) {
            auto reply = core::control::call(socket, requests[i], remaining(deadline));
            if (!reply.ok) {
                print_error(reply);
                return kExitFailure;
            }
            *replies[i] = std::move(reply.result);
        }
        if (json) {
            nlohmann::json out = {
                {"status", input.status}, {"stats", input.stats}, {"plugins", input.plugins}};
            std::cout << out.dump(2) << "\n";
            return kExitOk;
        }
        std::string error;
        auto text = core::ctl::format_stats(command.argument, input, error);
        if (!text) {
            std::cerr << "ctsyncctl: " << error << "\n";
            return kExitFailure;
        }
        std::cout << *text;
        return kExitOk;
    }
    int code = kExitOk;
    nlohmann::json results = nlohmann::json::array();
    for (const auto& request : requests) {
        auto reply = core::control::call(socket, request, remaining(deadline));
        if (!reply.ok) {
            print_error(reply);
            code = kExitFailure;
            continue;
        }
        if (core::ctl::reply_reports_failure(request, reply.result)) {
            code = kExitFailure;
        }
        if (json) {
            results.push_back(std::move(reply.result));
        } else if (request.command == "dump") {
            std::cout << core::ctl::format_dump(reply.result, command.argument == "expect");
        } else {
            std::cout << core::ctl::describe_reply(request, reply.result);
        }
    }
    if (json && !results.empty()) {
        std::cout << (results.size() == 1 ? results[0] : results).dump(2) << "\n";
    }
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    using core::ctl::CompatAction;
    CLI::App app{"ctsyncctl: query and command a running ctsyncd", "ctsyncctl"};
    app.set_version_flag("-v,--version", std::string("ctsyncctl ") + core::kVersion);
    app.require_subcommand(0, 1);
    std::string config_file = core::kDefaultConfigFile;
    std::string socket_path;
    int timeout_ms = 5000;
    bool json = false;
    app.add_option("-C,--config", config_file,
                   "ctsyncd configuration file: the control socket is read from it")
        ->capture_default_str();
    app.add_option("-S,--socket", socket_path, "Control socket path (overrides --config)");
    app.add_option("--timeout", timeout_ms,
                   "Milliseconds to wait for the daemon (for all requests of a call)")
        ->capture_default_str()
        ->check(CLI::Range(1, 600000));
    app.add_flag("--json", json, "With a conntrackd-style flag: print the daemon's JSON reply");

    // conntrackd's client flags: each one is a command of its own, like a subcommand.
    const std::string compat_group = "conntrackd-compatible commands (one per call, instead of a subcommand)";
    struct CompatOption {
        CompatAction action;
        CLI::Option* option;
        std::string argument;
    };
    std::vector<CompatOption> compat;
    for (auto action : {CompatAction::kCommit, CompatAction::kFlushCaches, CompatAction::kFlushKernel,
                        CompatAction::kResync, CompatAction::kSendBulk, CompatAction::kRequestBulk,
                        CompatAction::kLeavePrimary, CompatAction::kKill, CompatAction::kStats,
                        CompatAction::kDumpInternal, CompatAction::kDumpExternal}) {
        compat.push_back(CompatOption{action, nullptr, std::string()});
    }
    // CLI11 keeps pointers to each `argument` from here on: `compat` must not grow any more.
    const std::map<CompatAction, std::string> compat_help = {
        {CompatAction::kCommit,
         "Take over as primary: commit the external cache into the kernel (role primary: the promotion); "
         "ct and expect both commit flows and expectations"},
        {CompatAction::kFlushCaches,
         "Flush the caches, both without argument: internal re-reads the kernel table (resync), external "
         "empties the external cache"},
        {CompatAction::kFlushKernel,
         "Flush the kernel conntrack table (flows and expectations for either argument)"},
        {CompatAction::kResync,
         "Resync the internal cache with the kernel table (a fresh dump, flows and expectations for either "
         "argument)"},
        {CompatAction::kSendBulk, "Send this node's whole table to the peers (a bulk transfer)"},
        {CompatAction::kRequestBulk,
         "Request a resync from the other node(s): a bulk transfer of their tables"},
        {CompatAction::kLeavePrimary,
         "Stop being primary (role backup: stop sending, keep receiving); conntrackd's -t flushes the kernel "
         "table after PurgeTimeout instead (docs/MIGRATION.md)"},
        {CompatAction::kKill, "Stop the daemon"},
        {CompatAction::kStats, "Statistics in conntrackd's layout; without section: the default sections"},
        {CompatAction::kDumpInternal,
         "List the internal cache: flows (ct, default) or expectations (expect)"},
        {CompatAction::kDumpExternal,
         "List the external cache: flows (ct, default) or expectations (expect)"},
    };
    for (auto& c : compat) {
        const std::string name(core::ctl::flag_name(c.action));
        const auto choices = core::ctl::flag_choices(c.action);
        if (choices.empty()) {
            c.option = app.add_flag(name, compat_help.at(c.action));
        } else {
            c.option = app.add_option(name, c.argument, compat_help.at(c.action))
                           ->expected(0, 1)
                           ->check(CLI::IsMember(choices).description(""))
                           ->type_name(fmt::format("[{}]", fmt::join(choices, "|")));
        }
        c.option->group(compat_group);
    }
    bool daemon_flag = false;
    bool xml_flag = false;
    app.add_flag("-d", daemon_flag, "conntrackd's daemon mode: not here, use ctsyncd -d")
        ->group(compat_group);
    app.add_flag("-x", xml_flag, "conntrackd's XML output: not supported, use --json")->group(compat_group);

    auto* status = app.add_subcommand("status", "Node, role, pid, uptime, namespace, paths");
    auto* stats = app.add_subcommand("stats", "Counters and gauges");
    bool prometheus = false;
    stats->add_flag("--prometheus", prometheus,
                    "The Prometheus text format, as the metrics endpoint serves it (docs/METRICS.md)");
    auto* plugins = app.add_subcommand("plugins", "Loaded plugin instances");
    auto* filters =
        app.add_subcommand("filters", "Filters in chain order: what the kernel and the process decide");
    auto* version = app.add_subcommand("version", "Daemon version, plugin ABI and build fingerprint");
    auto* dump =
        app.add_subcommand("dump", "List a cache: the internal one (this kernel) or the external one");
    bool external = false;
    bool expectations = false;
    dump->add_flag("--external", external,
                   "The external cache (what peers sent) instead of the internal one");
    dump->add_flag("--expectations", expectations, "Expectations instead of flows");
    auto* import =
        app.add_subcommand("import", "Load flows into the external cache from a `dump --json` file");
    std::string import_file;
    bool replace = false;
    import->add_option("FILE", import_file, "JSON as printed by `ctsyncctl dump --json`")->required();
    import->add_flag("--replace", replace, "Empty the external cache first");
    auto* commit = app.add_subcommand("commit", "Write the external cache into the kernel table");
    auto* flush =
        app.add_subcommand("flush", "Empty a cache (internal: refilled by a dump) or the kernel table");
    std::string flush_target;
    flush->add_option("TARGET", flush_target, "internal, external or kernel")
        ->required()
        ->check(CLI::IsMember({"internal", "external", "kernel"}));
    auto* resync = app.add_subcommand("resync", "Re-read the kernel table into the internal cache");
    auto* replication =
        app.add_subcommand("replication", "Peers, links, sequence numbers, bulk transfers in progress");
    auto* request_bulk =
        app.add_subcommand("request-bulk", "Ask every live peer for a fresh bulk transfer of its table");
    auto* role = app.add_subcommand("role", "Set this node's role by hand (an HA plugin normally does)");
    std::string role_name;
    role->add_option("ROLE", role_name, "primary (sends its table) or backup")
        ->required()
        ->check(CLI::IsMember({"primary", "backup"}));
    for (auto* sub : {status, stats, plugins, filters, version, dump, import, commit, flush, resync,
                      replication, request_bulk, role}) {
        sub->add_flag("--json", json, "Print the daemon's JSON reply");
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? kExitOk : kExitUsage;
    }
    if (daemon_flag) {
        std::cerr
            << "ctsyncctl: -d runs conntrackd as a daemon; ctsyncctl is only the client: use ctsyncd -d "
               "(see ctsyncd --help)\n";
        return kExitUsage;
    }
    if (xml_flag) {
        std::cerr << "ctsyncctl: -x (XML output) is not supported: use --json (with -i or -e, for example)\n";
        return kExitUsage;
    }

    // Exactly one command: a subcommand or one conntrackd-style flag.
    std::vector<std::string> given;
    const CompatOption* chosen_flag = nullptr;
    for (const auto& c : compat) {
        if (c.option->count() > 0) {
            given.emplace_back(core::ctl::flag_name(c.action));
            chosen_flag = &c;
        }
    }
    for (const auto* sub : app.get_subcommands()) {
        given.push_back(sub->get_name());
    }
    if (given.empty()) {
        std::cerr
            << "ctsyncctl: no command given: name a subcommand (status, dump, ...) or a conntrackd-style "
               "flag (-s, -c, ...); see ctsyncctl --help\n";
        return kExitUsage;
    }
    if (given.size() > 1) {
        std::cerr << fmt::format("ctsyncctl: one command per call, but {} were given: {}\n", given.size(),
                                 fmt::join(given, ", "));
        return kExitUsage;
    }

    fs::path socket;
    if (!socket_path.empty()) {
        socket = socket_path;
    } else {
        std::string error;
        auto found = core::read_control_socket(config_file, error);
        if (!found) {
            std::cerr << "ctsyncctl: " << error << "\n";
            return kExitFailure;
        }
        socket = *found;
    }
    if (chosen_flag != nullptr) {
        return run_compat(socket, core::ctl::CompatCommand{chosen_flag->action, chosen_flag->argument},
                          timeout_ms, json);
    }
    auto* chosen = app.get_subcommands().front();
    core::control::Request request{chosen->get_name(), nlohmann::json::object()};
    if (chosen == stats && prometheus) {
        request.command = "metrics";
    } else if (chosen == dump) {
        request.args["cache"] = external ? "external" : "internal";
    } else if (chosen == flush) {
        request.args["target"] = flush_target;
    } else if (chosen == role) {
        request.args["role"] = role_name;
    } else if (chosen == import) {
        std::ifstream in(import_file);
        if (!in) {
            std::cerr << fmt::format("ctsyncctl: cannot read '{}': {}\n", import_file, std::strerror(errno));
            return kExitFailure;
        }
        nlohmann::json content = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
        if (content.is_discarded() || !content.is_object()) {
            std::cerr << fmt::format(
                "ctsyncctl: '{}' is not a JSON object (expected the output of dump --json)\n", import_file);
            return kExitFailure;
        }
        request.args["flows"] = content.value("flows", nlohmann::json::array());
        request.args["expectations"] = content.value("expectations", nlohmann::json::array());
        request.args["replace"] = replace;
    }
    auto reply = core::control::call(socket, request, std::chrono::milliseconds(timeout_ms));
    if (!reply.ok) {
        print_error(reply);
        return kExitFailure;
    }
    if (chosen == stats && prometheus) {
        std::cout << reply.result.value("text", std::string());
        return kExitOk;
    }
    if (json) {
        std::cout << reply.result.dump(2) << "\n";
        // A commit that left entries out is a failure whatever the output format.
        return chosen == commit && reply.result.value("failed", 0) != 0 ? kExitFailure : kExitOk;
    }
    if (chosen == status) {
        print_status(reply.result);
    } else if (chosen == stats) {
        print_stats(reply.result);
    } else if (chosen == plugins) {
        print_plugins(reply.result);
    } else if (chosen == filters) {
        print_filters(reply.result);
    } else if (chosen == dump) {
        std::cout << core::ctl::format_dump(reply.result, expectations);
    } else if (chosen == import) {
        std::cout << fmt::format(
            "imported {} flows and {} expectations; the external cache holds {} flows and {} "
            "expectations\n",
            reply.result.value("flows", 0), reply.result.value("expectations", 0),
            reply.result.value("external_flows", 0), reply.result.value("external_expectations", 0));
    } else if (chosen == commit) {
        std::cout << fmt::format(
            "committed {} flows and {} expectations: {} applied, {} failed, {:.1f} ms ({:.0f} "
            "entries/s)\n",
            reply.result.value("flows", 0), reply.result.value("expectations", 0),
            reply.result.value("applied", 0), reply.result.value("failed", 0), reply.result.value("ms", 0.0),
            reply.result.value("entries_per_s", 0.0));
        for (const auto& e : reply.result.value("errors", nlohmann::json::array())) {
            std::cout << fmt::format("  {}: {}\n", e.value("entry", std::string("?")),
                                     e.value("message", ""));
        }
        return reply.result.value("failed", 0) == 0 ? kExitOk : kExitFailure;
    } else if (chosen == flush) {
        std::cout << fmt::format("flushed {}\n", flush_target);
    } else if (chosen == resync) {
        std::cout << "dump of the kernel table requested\n";
    } else if (chosen == replication) {
        print_replication(reply.result);
    } else if (chosen == request_bulk) {
        std::cout << "bulk transfer requested from every live peer\n";
    } else if (chosen == role) {
        // The same text as -c / -t: the promotion's steps, or the change.
        std::cout << core::ctl::describe_reply(request, reply.result);
        return core::ctl::reply_reports_failure(request, reply.result) ? kExitFailure : kExitOk;
    } else {
        std::cout << fmt::format(
            "ctsyncd {} (plugin ABI {}, control protocol {})\nfingerprint: {}\nctsyncctl {}\n",
            reply.result.value("version", ""), reply.result.value("abi", ""),
            reply.result.value("protocol", 0), reply.result.value("fingerprint", ""), core::kVersion);
    }
    return kExitOk;
}
