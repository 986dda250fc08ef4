// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/plugin_host.hpp"

#include <fmt/format.h>

#include <map>

namespace ctsync::core {

PluginHost::PluginHost(boost::asio::any_io_executor executor, MetricsRegistry& metrics, std::uint32_t node_id)
    : executor_(std::move(executor)), metrics_(metrics), node_id_(node_id) {}

PluginHost::~PluginHost() {
    destroy_all();
}

void PluginHost::destroy_all() {
    stop_all();
    while (!instances_.empty()) {
        instances_.pop_back();  // reverse creation order; each object before its logger and metrics
    }
}

std::string PluginHost::create_all(const std::vector<SlotEntry>& slots) {
    // Undoes a partial start: the refused object (if any) is stopped and destroyed first, while its library
    // is still held by the slot's descriptor, then everything created before it, in reverse order.
    refusal_ = Refusal::kNone;
    auto refuse = [&](std::unique_ptr<sdk::Plugin> stray, std::string message,
                      Refusal kind = Refusal::kPlugin) {
        refusal_ = kind;
        if (stray) {
            stray->stop();
            stray.reset();
        }
        destroy_all();
        return message;
    };
    std::map<std::uint8_t, std::string> proto_owner;  // layer-4 protocol -> instance serving it
    for (const auto& slot : slots) {
        PluginInstance instance;
        instance.slot = slot;
        instance.logger = std::make_unique<HostLogger>(slot.instance);
        instance.metrics = std::make_unique<ScopedMetrics>(metrics_, slot.instance, slot.plugin);
        sdk::PluginContext context;
        context.executor = executor_;
        context.logger = instance.logger.get();
        context.metrics = instance.metrics.get();
        context.node_id = node_id_;
        context.instance_name = slot.instance;
        const auto& descriptor = slot.loaded->descriptor;
        sdk::CreateResult result = descriptor->create(context, slot.config);
        if (!result.plugin || !result.error.empty()) {
            std::string reason = result.error.empty() ? "factory returned no object" : result.error;
            return refuse(std::move(result.plugin),
                          fmt::format("{}: plugin '{}' (instance '{}') refused to start: {}", slot.path,
                                      slot.plugin, slot.instance, reason));
        }
        if (result.plugin->category() != descriptor->category) {
            auto found = result.plugin->category();
            return refuse(
                std::move(result.plugin),
                fmt::format("{}: plugin '{}' created an object of category {}, its descriptor says {}",
                            slot.path, slot.plugin, sdk::to_string(found),
                            sdk::to_string(descriptor->category)));
        }
        if (result.plugin->category() == sdk::Category::kProto) {
            const auto& proto = static_cast<const sdk::ProtoHandler&>(*result.plugin);
            for (std::uint8_t protocol : proto.protocols()) {
                auto [it, inserted] = proto_owner.emplace(protocol, slot.instance);
                if (!inserted) {
                    return refuse(
                        std::move(result.plugin),
                        fmt::format("{}: plugin '{}' (instance '{}') claims layer-4 protocol {}, already "
                                    "served by instance '{}'",
                                    slot.path, slot.plugin, slot.instance, protocol, it->second),
                        Refusal::kConfiguration);
                }
            }
        }
        instance.object = hold_library<sdk::Plugin>(std::move(result.plugin), descriptor);
        instances_.push_back(std::move(instance));
        stopped_ = false;
    }
    return {};
}

void PluginHost::stop_all() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
        if (it->object) {
            it->object->stop();
        }
    }
}

}  // namespace ctsync::core
