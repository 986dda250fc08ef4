// SPDX-License-Identifier: GPL-2.0-or-later
// ctsyncctl: talks to a running ctsyncd over its control socket.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "core/config/daemon_config.hpp"
#include "core/control/client.hpp"
#include "core/version.hpp"

namespace {
namespace fs = std::filesystem;
using namespace ctsync;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

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

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ctsyncctl: query and command a running ctsyncd", "ctsyncctl"};
    app.set_version_flag("-v,--version", std::string("ctsyncctl ") + core::kVersion);
    app.require_subcommand(1);
    std::string config_file = core::kDefaultConfigFile;
    std::string socket_path;
    int timeout_ms = 5000;
    bool json = false;
    app.add_option("-C,--config", config_file,
                   "ctsyncd configuration file: the control socket is read from it")
        ->capture_default_str();
    app.add_option("-S,--socket", socket_path, "Control socket path (overrides --config)");
    app.add_option("--timeout", timeout_ms, "Milliseconds to wait for the daemon")
        ->capture_default_str()
        ->check(CLI::Range(1, 600000));
    auto* status = app.add_subcommand("status", "Node, role, pid, uptime, namespace, paths");
    auto* stats = app.add_subcommand("stats", "Counters and gauges");
    auto* plugins = app.add_subcommand("plugins", "Loaded plugin instances");
    auto* version = app.add_subcommand("version", "Daemon version, plugin ABI and build fingerprint");
    for (auto* sub : {status, stats, plugins, version}) {
        sub->add_flag("--json", json, "Print the daemon's JSON reply");
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? kExitOk : kExitUsage;
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
    auto* chosen = app.get_subcommands().front();
    core::control::Request request{chosen->get_name(), nlohmann::json::object()};
    auto reply = core::control::call(socket, request, std::chrono::milliseconds(timeout_ms));
    if (!reply.ok) {
        std::cerr << "ctsyncctl: " << (reply.transport_error ? "" : "ctsyncd: ") << reply.error << "\n";
        return kExitFailure;
    }
    if (json) {
        std::cout << reply.result.dump(2) << "\n";
        return kExitOk;
    }
    if (chosen == status) {
        print_status(reply.result);
    } else if (chosen == stats) {
        print_stats(reply.result);
    } else if (chosen == plugins) {
        print_plugins(reply.result);
    } else {
        std::cout << fmt::format(
            "ctsyncd {} (plugin ABI {}, control protocol {})\nfingerprint: {}\nctsyncctl {}\n",
            reply.result.value("version", ""), reply.result.value("abi", ""),
            reply.result.value("protocol", 0), reply.result.value("fingerprint", ""), core::kVersion);
    }
    return kExitOk;
}
