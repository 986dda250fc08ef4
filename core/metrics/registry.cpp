// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/metrics/registry.hpp"

namespace ctsync::core {

bool MetricsRegistry::valid_name(const std::string& name) {
    if (name.empty() || name.size() > 128 || name.front() == '.' || name.back() == '.') {
        return false;
    }
    for (char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

void MetricsRegistry::count_invalid_locked() {
    auto& invalid = entries_["metrics.invalid_names"];
    if (!invalid.counter) {
        invalid.help = "metrics requested with an invalid or already taken name (not listed)";
        invalid.counter = std::make_unique<sdk::Counter>();
    }
    invalid.counter->add();
}

sdk::Counter& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                       const MetricOwner& owner) {
    std::lock_guard lock(mutex_);
    if (!valid_name(name) || (entries_.count(name) != 0 && entries_[name].gauge)) {
        count_invalid_locked();
        return *detached_counters_.emplace_back(std::make_unique<sdk::Counter>());
    }
    auto& entry = entries_[name];
    if (!entry.counter) {
        entry.help = help;
        entry.owner = owner;
        entry.counter = std::make_unique<sdk::Counter>();
    }
    return *entry.counter;
}

sdk::Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                                   const MetricOwner& owner) {
    std::lock_guard lock(mutex_);
    if (!valid_name(name) || (entries_.count(name) != 0 && entries_[name].counter)) {
        count_invalid_locked();
        return *detached_gauges_.emplace_back(std::make_unique<sdk::Gauge>());
    }
    auto& entry = entries_[name];
    if (!entry.gauge) {
        entry.help = help;
        entry.owner = owner;
        entry.gauge = std::make_unique<sdk::Gauge>();
    }
    return *entry.gauge;
}

std::vector<MetricSample> MetricsRegistry::snapshot() const {
    std::lock_guard lock(mutex_);
    std::vector<MetricSample> out;
    for (const auto& [name, entry] : entries_) {
        if (entry.counter) {
            out.push_back({name, "counter", entry.help, static_cast<std::int64_t>(entry.counter->value()),
                           entry.owner.plugin, entry.owner.instance, entry.owner.local_name});
        } else if (entry.gauge) {
            out.push_back({name, "gauge", entry.help, entry.gauge->value(), entry.owner.plugin,
                           entry.owner.instance, entry.owner.local_name});
        }
    }
    return out;
}

sdk::Counter& ScopedMetrics::counter(std::string_view name, std::string_view help) noexcept {
    return registry_.counter(prefix_ + "." + std::string(name), std::string(help),
                             {plugin_, prefix_, std::string(name)});
}

sdk::Gauge& ScopedMetrics::gauge(std::string_view name, std::string_view help) noexcept {
    return registry_.gauge(prefix_ + "." + std::string(name), std::string(help),
                           {plugin_, prefix_, std::string(name)});
}

}  // namespace ctsync::core
