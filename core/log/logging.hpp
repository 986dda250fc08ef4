// SPDX-License-Identifier: GPL-2.0-or-later
// Process-wide logging on spdlog: one sink (standard error, a file, the journal or syslog) shared by the core
// and every plugin instance, each under its own logger name.
#pragma once

#include <ctsync/sdk/host.hpp>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace spdlog {
class logger;
}

namespace ctsync::core {

// Sets up the shared sink. `level` is one of trace|debug|info|warn|error|critical; `target` stderr, file
// (needs `file`), journal or syslog (empty: the file when given, else standard error). Returns an error
// message (empty on success), e.g. when the file cannot be opened.
std::string setup_logging(const std::string& level, const std::optional<std::filesystem::path>& file,
                          const std::string& target = {});

// Reopens the log file (after logrotate moved it), for every logger. No-op when logging to standard error.
// Returns an error message, empty on success; on failure the old file stays in use.
std::string reopen_log();

// A logger named `name` writing to the shared sink (created on first use).
std::shared_ptr<spdlog::logger> get_logger(const std::string& name);

// sdk::Logger over a named spdlog logger, handed to plugins.
class HostLogger final : public sdk::Logger {
  public:
    explicit HostLogger(const std::string& name);
    void log(sdk::LogLevel level, std::string_view message) noexcept override;
    bool enabled(sdk::LogLevel level) const noexcept override;

  private:
    std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace ctsync::core
