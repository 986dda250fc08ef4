// SPDX-License-Identifier: GPL-2.0-or-later
// Creates the plugin instances the config asks for, gives each its host services, and owns them. Instances
// are destroyed in reverse creation order, each before its library is released.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <ctsync/sdk/sdk.hpp>
#include <memory>
#include <string>
#include <vector>

#include "core/config/daemon_config.hpp"
#include "core/log/logging.hpp"
#include "core/metrics/registry.hpp"

namespace ctsync::core {

// The category each plugin interface implements.
template <class Interface>
constexpr sdk::Category category_of();
template <>
constexpr sdk::Category category_of<sdk::Source>() {
    return sdk::Category::kSource;
}
template <>
constexpr sdk::Category category_of<sdk::ProtoHandler>() {
    return sdk::Category::kProto;
}
template <>
constexpr sdk::Category category_of<sdk::Filter>() {
    return sdk::Category::kFilter;
}
template <>
constexpr sdk::Category category_of<sdk::Transport>() {
    return sdk::Category::kTransport;
}
template <>
constexpr sdk::Category category_of<sdk::HaAdapter>() {
    return sdk::Category::kHa;
}

struct PluginInstance {
    SlotEntry slot;
    std::unique_ptr<HostLogger> logger;
    std::unique_ptr<ScopedMetrics> metrics;
    std::shared_ptr<sdk::Plugin> object;  // keeps the library loaded

    // The instance as `Interface`, or null when it implements another category.
    template <class Interface>
    Interface* as() const {
        return object && object->category() == category_of<Interface>()
                   ? static_cast<Interface*>(object.get())
                   : nullptr;
    }
};

class PluginHost {
  public:
    PluginHost(boost::asio::any_io_executor executor, MetricsRegistry& metrics, std::uint32_t node_id);
    ~PluginHost();

    // What stopped create_all(): a plugin (its factory refused, or it built an object of another category),
    // or the configuration (two proto handlers for one layer-4 protocol).
    enum class Refusal : std::uint8_t { kNone, kPlugin, kConfiguration };

    // Runs every slot's factory in config order. On the first refusal (factory error, wrong category, two
    // proto handlers for one layer-4 protocol) stops and destroys what was created, in reverse order, and
    // returns "<slot path>: plugin '<id>' (instance '<name>') ..."; refusal() says which kind it was. Empty
    // on success.
    std::string create_all(const std::vector<SlotEntry>& slots);
    Refusal refusal() const { return refusal_; }
    // stop() on every instance, in reverse order. Idempotent.
    void stop_all();

    const std::vector<PluginInstance>& instances() const { return instances_; }

  private:
    void destroy_all();

    boost::asio::any_io_executor executor_;
    MetricsRegistry& metrics_;
    std::uint32_t node_id_;
    std::vector<PluginInstance> instances_;
    bool stopped_ = false;
    Refusal refusal_ = Refusal::kNone;
};

}  // namespace ctsync::core
