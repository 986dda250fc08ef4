// SPDX-License-Identifier: GPL-2.0-or-later
// The descriptor of proto-tcp: its keys and the factory.
#include <ctsync/sdk/sdk.hpp>
#include <memory>

#include "tcp_proto.hpp"

namespace {
using namespace ctsync::sdk;

std::unique_ptr<Plugin> create(const PluginContext&, const PluginConfig& config) {
    proto_tcp::Options options;
    options.window_tracking = config.get_bool("window_tracking");
    options.replicate_syn_sent = config.get_bool("replicate_syn_sent");
    return std::make_unique<proto_tcp::TcpProto>(options);
}

const PluginDescriptor kDescriptor{
    .category = Category::kProto,
    .name = "proto-tcp",
    .version = "1.0.0",
    .summary = "TCP replication decisions; committed entries are be-liberal unless window_tracking is on",
    .keys = proto_tcp::keys().data(),
    .key_count = static_cast<std::uint32_t>(proto_tcp::keys().size()),
    .validate = nullptr,
    .create = guarded_create<create>,
};

}  // namespace

CTSYNC_PLUGIN(kDescriptor)
