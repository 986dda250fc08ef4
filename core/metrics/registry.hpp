// SPDX-License-Identifier: GPL-2.0-or-later
// The daemon's metrics: counters and gauges by dotted name, read by `ctsyncctl stats`.
#pragma once

#include <ctsync/sdk/host.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace ctsync::core {

struct MetricSample {
    std::string name;  // as listed by `ctsyncctl stats`: "<section>.<name>", a plugin's "<instance>.<name>"
    std::string kind;  // "counter" or "gauge"
    std::string help;
    std::int64_t value = 0;
    // For a plugin instance's metric: the plugin id, the instance name and the name the plugin asked for.
    // Empty for the core's own.
    std::string plugin;
    std::string instance;
    std::string local_name;
};

// Who asked for a metric: the core (empty) or a plugin instance.
struct MetricOwner {
    std::string plugin;
    std::string instance;
    std::string local_name;
};

// Thread-safe. Metric objects are never removed, so references stay valid for the registry's lifetime.
class MetricsRegistry {
  public:
    // Names: non-empty, at most 128 bytes, [a-z0-9_.-]. An invalid name, or one already taken by a metric of
    // the other kind, gets a detached metric (never listed) and is counted in "metrics.invalid_names".
    sdk::Counter& counter(const std::string& name, const std::string& help, const MetricOwner& owner = {});
    sdk::Gauge& gauge(const std::string& name, const std::string& help, const MetricOwner& owner = {});
    std::vector<MetricSample> snapshot() const;

    static bool valid_name(const std::string& name);

  private:
    void count_invalid_locked();
    struct Entry {
        std::string help;
        MetricOwner owner;
        std::unique_ptr<sdk::Counter> counter;
        std::unique_ptr<sdk::Gauge> gauge;
    };
    mutable std::mutex mutex_;
    std::map<std::string, Entry> entries_;
    std::vector<std::unique_ptr<sdk::Counter>> detached_counters_;
    std::vector<std::unique_ptr<sdk::Gauge>> detached_gauges_;
};

// sdk::Metrics for one plugin instance: names become "<instance>.<name>".
class ScopedMetrics final : public sdk::Metrics {
  public:
    ScopedMetrics(MetricsRegistry& registry, std::string prefix, std::string plugin = {})
        : registry_(registry), prefix_(std::move(prefix)), plugin_(std::move(plugin)) {}
    sdk::Counter& counter(std::string_view name, std::string_view help) noexcept override;
    sdk::Gauge& gauge(std::string_view name, std::string_view help) noexcept override;

  private:
    MetricsRegistry& registry_;
    std::string prefix_;
    std::string plugin_;
};

}  // namespace ctsync::core
