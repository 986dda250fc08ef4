// SPDX-License-Identifier: GPL-2.0-or-later
// Services the host hands to every plugin: an executor, a logger, metrics.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "ctsync/sdk/abi.hpp"

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

enum class LogLevel : std::uint8_t { kTrace, kDebug, kInfo, kWarn, kError, kCritical };

// A named log sink owned by the host. Thread-safe; never throws; outlives every plugin it is given to.
// Messages are single lines in "event=name key=value ..." form so that they stay greppable.
class Logger {
  public:
    virtual ~Logger() = default;
    virtual void log(LogLevel level, std::string_view message) noexcept = 0;
    virtual bool enabled(LogLevel level) const noexcept = 0;

    void debug(std::string_view m) noexcept { log(LogLevel::kDebug, m); }
    void info(std::string_view m) noexcept { log(LogLevel::kInfo, m); }
    void warn(std::string_view m) noexcept { log(LogLevel::kWarn, m); }
    void error(std::string_view m) noexcept { log(LogLevel::kError, m); }
};

// A monotonically increasing count. Lock-free, safe from any thread; storage owned by the host.
class Counter {
  public:
    void add(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (queue depth, entries in a cache). Same contract as Counter.
class Gauge {
  public:
    void set(std::int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
    void add(std::int64_t d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
    std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<std::int64_t> value_{0};
};

// Registry of a plugin instance's metrics; names are scoped to the instance by the host
// ("<instance>.<name>"). Call from the executor thread (typically in the factory). The returned reference
// stays valid for the host's lifetime, which exceeds the plugin's. Asking twice for a name returns the same
// object. Never throws: an invalid name (empty, longer than 128 bytes, characters outside [a-z0-9_.-], or
// taken by a metric of the other kind) gets a detached metric, never listed, counted in
// metrics.invalid_names.
class Metrics {
  public:
    virtual ~Metrics() = default;
    virtual Counter& counter(std::string_view name, std::string_view help) noexcept = 0;
    virtual Gauge& gauge(std::string_view name, std::string_view help) noexcept = 0;
};

// What a factory receives. Every pointer is non-null and outlives the plugin instance. The executor runs on
// the host's single event-loop thread: a plugin posts its I/O completions there and never blocks it for
// long; it owns no threads of its own unless its README says so.
struct PluginContext {
    boost::asio::any_io_executor executor;
    Logger* logger = nullptr;
    Metrics* metrics = nullptr;
    std::uint32_t node_id = 0;  // this node's id from the config (node.id)
    std::string instance_name;  // the slot entry's "name" (defaults to the plugin name)
};

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk
