// SPDX-License-Identifier: GPL-2.0-or-later
// ctsyncd: the connection-tracking replication daemon.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <ctsync/sdk/sdk.hpp>
#include <iostream>

#include "core/config/daemon_config.hpp"
#include "core/config/key_table.hpp"
#include "core/daemon/daemon.hpp"
#include "core/daemon/huge_pages.hpp"
#include "core/loader/plugin_loader.hpp"
#include "core/log/logging.hpp"
#include "core/version.hpp"

namespace {
namespace fs = std::filesystem;
using namespace ctsync;

using core::kExitConfig;
using core::kExitFailure;
using core::kExitOk;
using core::kExitPlugin;

fs::path self_executable(const char* argv0) {
    std::error_code ec;
    auto self = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path(argv0) : self;
}

void print_report(const core::ConfigReport& report, const std::string& origin) {
    std::size_t total = report.issues.size() + report.plugin_errors.size();
    std::cerr << fmt::format("{}: {} problem{}:\n", origin, total, total == 1 ? "" : "s");
    for (const auto& issue : report.issues) {
        std::cerr << "  " << core::format_issue(issue) << "\n";
    }
    for (const auto& error : report.plugin_errors) {
        std::cerr << "  " << error << "\n";
    }
}

// Both phases of config reading; prints every problem. Returns nullopt (and the exit code) on failure.
std::optional<core::DaemonConfig> load_config(const fs::path& file, const fs::path& executable,
                                              int& exit_code) {
    core::ConfigReport report;
    auto config = core::read_daemon_config(file, report);
    if (config) {
        core::PluginLoader loader(core::default_search_path(config->plugin_dirs, executable));
        core::resolve_plugins(*config, loader, report);
    }
    if (!report.ok()) {
        print_report(report, file.string());
        exit_code = report.exit_code();
        return std::nullopt;
    }
    return config;
}

std::string default_text(const sdk::ConfigKey& key) {
    if (key.required) {
        return "(required)";
    }
    return key.default_json != nullptr ? key.default_json : "(unset)";
}

void print_key_table(std::ostream& out, std::span<const sdk::ConfigKey> keys) {
    std::size_t name_width = 3;
    std::size_t type_width = 4;
    std::size_t default_width = 7;
    for (const auto& key : keys) {
        name_width = std::max(name_width, std::strlen(key.name));
        type_width = std::max(type_width, core::describe_type(key).size());
        default_width = std::max(default_width, default_text(key).size());
    }
    out << fmt::format("  {:<{}}  {:<{}}  {:<{}}  {}\n", "KEY", name_width, "TYPE", type_width, "DEFAULT",
                       default_width, "DESCRIPTION");
    for (const auto& key : keys) {
        out << fmt::format("  {:<{}}  {:<{}}  {:<{}}  {}\n", key.name, name_width, core::describe_type(key),
                           type_width, default_text(key), default_width, key.description);
    }
    if (keys.empty()) {
        out << "  (no keys)\n";
    }
}

nlohmann::json key_table_json(std::span<const sdk::ConfigKey> keys) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& key : keys) {
        out.push_back(
            {{"name", key.name},
             {"type", sdk::to_string(key.type)},
             {"accepts", core::describe_type(key)},
             {"required", key.required},
             {"default", key.default_json != nullptr ? nlohmann::json(key.default_json) : nlohmann::json()},
             {"description", key.description}});
    }
    return out;
}

int describe(const std::string& name, bool json, const std::vector<std::string>& plugin_dirs,
             const fs::path& executable) {
    if (name == "core") {
        const auto sections = core::core_sections();
        if (json) {
            nlohmann::json out = nlohmann::json::object();
            for (const auto& section : sections) {
                out[section.path] = key_table_json(section.keys);
            }
            std::cout << out.dump(2) << "\n";
            return kExitOk;
        }
        std::cout << "ctsyncd core configuration " << core::kVersion << "\n";
        for (const auto& section : sections) {
            std::cout << "\n" << section.path << "\n";
            print_key_table(std::cout, section.keys);
        }
        return kExitOk;
    }
    core::PluginLoader loader(core::default_search_path(plugin_dirs, executable));
    auto result = loader.load(name, std::nullopt);
    if (!result) {
        std::cerr << "ctsyncd: " << result.error << "\n";
        return kExitPlugin;
    }
    const auto& d = *result.plugin->descriptor;
    if (json) {
        nlohmann::json out = {{"plugin", d.name},
                              {"category", sdk::to_string(d.category)},
                              {"version", d.version},
                              {"abi", fmt::format("{}.{}", d.abi_major, d.abi_minor)},
                              {"file", result.plugin->file.string()},
                              {"summary", d.summary != nullptr ? d.summary : ""},
                              {"keys", key_table_json(result.plugin->keys())}};
        std::cout << out.dump(2) << "\n";
        return kExitOk;
    }
    std::cout << fmt::format(
        "plugin:   {}\ncategory: {}\nversion:  {}\nabi:      {}.{}\nfile:     {}\nsummary:  {}\n\n", d.name,
        sdk::to_string(d.category), d.version, d.abi_major, d.abi_minor, result.plugin->file.string(),
        d.summary != nullptr ? d.summary : "");
    std::cout << "keys (under \"config\" of the plugin's slot):\n";
    print_key_table(std::cout, result.plugin->keys());
    return kExitOk;
}

int list(bool json, const std::vector<std::string>& plugin_dirs, const fs::path& executable) {
    auto search_path = core::default_search_path(plugin_dirs, executable);
    auto listed = core::list_plugins(search_path);
    if (json) {
        nlohmann::json out = {{"search_path", nlohmann::json::array()}, {"plugins", nlohmann::json::array()}};
        for (const auto& dir : search_path) {
            out["search_path"].push_back(dir.string());
        }
        for (const auto& p : listed) {
            nlohmann::json entry = {{"file", p.file.string()}};
            if (!p.shadowed_by.empty()) {
                entry["status"] = "shadowed";
                entry["shadowed_by"] = p.shadowed_by.string();
            } else if (p.plugin) {
                const auto& d = *p.plugin->descriptor;
                entry.update({{"status", "ok"},
                              {"plugin", d.name},
                              {"category", sdk::to_string(d.category)},
                              {"version", d.version},
                              {"summary", d.summary != nullptr ? d.summary : ""}});
            } else {
                entry["status"] = "refused";
                entry["error"] = p.error;
            }
            out["plugins"].push_back(entry);
        }
        std::cout << out.dump(2) << "\n";
        return kExitOk;
    }
    std::cout << "search path (first match wins):\n";
    for (const auto& dir : search_path) {
        std::error_code ec;
        std::cout << "  " << dir.string() << (fs::is_directory(dir, ec) ? "" : "  (missing)") << "\n";
    }
    std::cout << "plugins:\n";
    std::size_t usable = 0;
    for (const auto& p : listed) {
        if (!p.shadowed_by.empty()) {
            std::cout << fmt::format("  {:<24} shadowed by {}\n", p.file.filename().string(),
                                     p.shadowed_by.string());
        } else if (p.plugin) {
            const auto& d = *p.plugin->descriptor;
            ++usable;
            std::cout << fmt::format("  {:<24} {:<10} {:<8} {}  ({})\n", d.name, sdk::to_string(d.category),
                                     d.version, d.summary != nullptr ? d.summary : "", p.file.string());
        } else {
            std::cout << fmt::format("  {:<24} REFUSED: {}\n", p.file.filename().string(), p.error);
        }
    }
    if (listed.empty()) {
        std::cout << "  (none found)\n";
    }
    std::cout << fmt::format("{} usable plugin{}\n", usable, usable == 1 ? "" : "s");
    return kExitOk;
}

// Classic double fork. The parent waits until the daemon reports start-up (or its failure) through a pipe,
// so that `ctsyncd -d` exits non-zero when the daemon could not start.
int daemonize(int& ready_fd) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        std::perror("ctsyncd: pipe");
        return kExitFailure;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("ctsyncd: fork");
        return kExitFailure;
    }
    if (pid > 0) {
        ::close(pipe_fds[1]);
        std::string message;
        char buffer[512];
        ssize_t n;
        while ((n = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0) {
            message.append(buffer, static_cast<std::size_t>(n));
        }
        int status = 0;
        ::waitpid(pid, &status, 0);  // the intermediate child exits right after the second fork
        if (message == "ok\n") {
            std::exit(kExitOk);
        }
        std::cerr << "ctsyncd: daemon did not start: " << (message.empty() ? "no report\n" : message);
        std::exit(kExitFailure);
    }
    ::close(pipe_fds[0]);
    ::setsid();
    pid = ::fork();
    if (pid < 0) {
        std::exit(kExitFailure);
    }
    if (pid > 0) {
        std::_Exit(kExitOk);
    }
    if (::chdir("/") != 0) {
        std::_Exit(kExitFailure);
    }
    int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
        ::dup2(null_fd, STDIN_FILENO);
        ::dup2(null_fd, STDOUT_FILENO);
        ::dup2(null_fd, STDERR_FILENO);
        if (null_fd > STDERR_FILENO) {
            ::close(null_fd);
        }
    }
    ready_fd = pipe_fds[1];
    return -1;  // continue as the daemon
}

}  // namespace

int main(int argc, char** argv) {
    core::reexec_with_huge_pages(argv);  // first: glibc reads its tunables only at start (ADR-040)
    CLI::App app{"ctsyncd: replicates the kernel connection-tracking table between firewall nodes",
                 "ctsyncd"};
    app.set_version_flag("-v,--version", std::string("ctsyncd ") + core::kVersion);
    std::string config_file = core::kDefaultConfigFile;
    std::string check_file;
    std::string describe_name;
    std::string log_level;
    std::vector<std::string> plugin_dirs;
    bool list_flag = false;
    bool json = false;
    bool daemon_mode = false;
    app.add_option("-C,--config", config_file, "Configuration file (JSON)")->capture_default_str();
    auto* check =
        app.add_option("--check-config", check_file,
                       "Validate FILE completely (keys, types, plugins) and exit: 0 valid, 2 config "
                       "errors, 3 plugin refused");
    auto* describe_opt = app.add_option("--describe", describe_name,
                                        "Print the config key table of PLUGIN (or 'core') and exit");
    auto* list_opt =
        app.add_flag("--list-plugins", list_flag, "List the plugins found in the search path and exit");
    app.add_flag("--json", json, "With --describe or --list-plugins: print JSON");
    app.add_option("--plugin-dir", plugin_dirs,
                   "Extra plugin directory for --describe/--list-plugins (repeatable)");
    auto* daemon_opt =
        app.add_flag("-d,--daemon", daemon_mode,
                     "Detach into the background (default: stay in the foreground, for supervisors)");
    app.add_option("--log-level", log_level, "Override .daemon.log.level")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical"}));
    check->excludes(describe_opt)->excludes(list_opt)->excludes(daemon_opt);
    describe_opt->excludes(list_opt)->excludes(daemon_opt);
    list_opt->excludes(daemon_opt);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? kExitOk : kExitConfig;
    }
    const fs::path executable = self_executable(argv[0]);

    if (list_flag) {
        return list(json, plugin_dirs, executable);
    }
    if (!describe_name.empty()) {
        return describe(describe_name, json, plugin_dirs, executable);
    }
    if (!check_file.empty()) {
        int exit_code = kExitOk;
        auto config = load_config(check_file, executable, exit_code);
        if (!config) {
            return exit_code;
        }
        std::string plugins;
        for (const auto& slot : config->slots) {
            plugins += fmt::format("{}{} ({} {})", plugins.empty() ? "" : ", ", slot.instance, slot.plugin,
                                   slot.loaded->descriptor->version);
        }
        std::cout << fmt::format("{}: configuration is valid; node {} ({}); {} plugin instance{}{}{}\n",
                                 check_file, config->node_id, config->node_name, config->slots.size(),
                                 config->slots.size() == 1 ? "" : "s", plugins.empty() ? "" : ": ", plugins);
        return kExitOk;
    }

    int exit_code = kExitOk;
    auto config = load_config(config_file, executable, exit_code);
    if (!config) {
        return exit_code;
    }
    if (!log_level.empty()) {
        config->log_level = log_level;
    }
    if (daemon_mode && config->log_target == "stderr") {
        std::cerr << fmt::format(
            "{}: .daemon.log.file: required with --daemon unless .daemon.log.target is journal or syslog "
            "(standard error goes to /dev/null)\n",
            config_file);
        return kExitConfig;
    }
    if (std::string error = core::setup_logging(config->log_level, config->log_file, config->log_target);
        !error.empty()) {
        std::cerr << "ctsyncd: " << error << "\n";
        return kExitFailure;
    }
    core::DaemonOptions options;
    if (daemon_mode) {
        if (int rc = daemonize(options.ready_fd); rc >= 0) {
            return rc;
        }
    }
    return core::run_daemon(std::move(*config), options);
}
