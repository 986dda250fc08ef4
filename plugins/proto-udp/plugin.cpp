// SPDX-License-Identifier: GPL-2.0-or-later
// The descriptor of proto-udp: its keys and the factory.
#include <ctsync/sdk/sdk.hpp>
#include <memory>
#include <stdexcept>

#include "udp_proto.hpp"

namespace {
using namespace ctsync::sdk;

std::unique_ptr<Plugin> create(const PluginContext&, const PluginConfig& config) {
    proto_udp::Options options;
    if (!proto_udp::parse_replicate_from(config.get_string("replicate_from"), options.replicate_from)) {
        throw std::invalid_argument("replicate_from has a value the key table should have refused");
    }
    return std::make_unique<proto_udp::UdpProto>(options);
}

const PluginDescriptor kDescriptor{
    .category = Category::kProto,
    .name = "proto-udp",
    .version = "1.0.0",
    .summary = "UDP and UDP-Lite replication decisions; by default only assured streams are sent",
    .keys = proto_udp::keys().data(),
    .key_count = static_cast<std::uint32_t>(proto_udp::keys().size()),
    .validate = nullptr,
    .create = guarded_create<create>,
};

}  // namespace

CTSYNC_PLUGIN(kDescriptor)
