// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/log/logging.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

#include <mutex>

namespace ctsync::core {
namespace {

std::mutex g_mutex;
spdlog::sink_ptr g_sink;
std::optional<std::filesystem::path> g_file;
spdlog::level::level_enum g_level = spdlog::level::info;

// ISO-8601 time with milliseconds, level, logger name, message ("event=... key=value").
constexpr const char* kPattern = "%Y-%m-%dT%H:%M:%S.%e%z %l [%n] %v";
// The journal and syslog record time and priority themselves.
constexpr const char* kSystemPattern = "[%n] %v";

spdlog::sink_ptr sink_locked() {
    if (!g_sink) {
        g_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        g_sink->set_pattern(kPattern);
    }
    return g_sink;
}

spdlog::level::level_enum to_spdlog(sdk::LogLevel level) {
    switch (level) {
        case sdk::LogLevel::kTrace:
            return spdlog::level::trace;
        case sdk::LogLevel::kDebug:
            return spdlog::level::debug;
        case sdk::LogLevel::kInfo:
            return spdlog::level::info;
        case sdk::LogLevel::kWarn:
            return spdlog::level::warn;
        case sdk::LogLevel::kError:
            return spdlog::level::err;
        case sdk::LogLevel::kCritical:
            return spdlog::level::critical;
    }
    return spdlog::level::info;
}

}  // namespace

std::string setup_logging(const std::string& level, const std::optional<std::filesystem::path>& file,
                          const std::string& target) {
    auto parsed = spdlog::level::from_str(level == "warn" ? "warning" : level);
    if (parsed == spdlog::level::off && level != "off") {
        return "unknown log level '" + level + "'";
    }
    spdlog::sink_ptr sink;
    const char* pattern = kPattern;
    if (target == "journal") {
        sink = std::make_shared<spdlog::sinks::systemd_sink_mt>("ctsyncd", /*enable_formatting=*/true);
        pattern = kSystemPattern;
    } else if (target == "syslog") {
        sink = std::make_shared<spdlog::sinks::syslog_sink_mt>("ctsyncd", LOG_PID, LOG_DAEMON,
                                                               /*enable_formatting=*/true);
        pattern = kSystemPattern;
    } else if (target != "stderr" && target != "file" && !target.empty()) {
        return "unknown log target '" + target + "'";
    } else if (file) {
        try {
            sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file->string(), /*truncate=*/false);
        } catch (const spdlog::spdlog_ex& e) {
            return "cannot open log file '" + file->string() + "': " + e.what();
        }
    } else {
        sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    }
    sink->set_pattern(pattern);
    std::lock_guard lock(g_mutex);
    g_sink = sink;
    g_file = target == "journal" || target == "syslog" ? std::nullopt : file;
    g_level = parsed;
    spdlog::drop_all();
    return {};
}

std::string reopen_log() {
    std::lock_guard lock(g_mutex);
    if (!g_file) {
        return {};
    }
    spdlog::sink_ptr sink;
    try {
        sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(g_file->string(), /*truncate=*/false);
    } catch (const spdlog::spdlog_ex& e) {
        return "cannot reopen log file '" + g_file->string() + "': " + e.what();
    }
    sink->set_pattern(kPattern);
    g_sink = sink;
    // Loggers are used from the event-loop thread only (plugins own no threads), which also runs this.
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& logger) { logger->sinks() = {sink}; });
    return {};
}

std::shared_ptr<spdlog::logger> get_logger(const std::string& name) {
    std::lock_guard lock(g_mutex);
    if (auto existing = spdlog::get(name)) {
        return existing;
    }
    auto logger = std::make_shared<spdlog::logger>(name, sink_locked());
    logger->set_level(g_level);
    logger->flush_on(spdlog::level::info);
    spdlog::register_logger(logger);
    return logger;
}

HostLogger::HostLogger(const std::string& name) : logger_(get_logger(name)) {}

void HostLogger::log(sdk::LogLevel level, std::string_view message) noexcept {
    try {
        logger_->log(to_spdlog(level), "{}", message);
    } catch (...) {
        // Logging must never take the daemon down; spdlog reports its own sink errors.
    }
}

bool HostLogger::enabled(sdk::LogLevel level) const noexcept {
    return logger_->should_log(to_spdlog(level));
}

}  // namespace ctsync::core
