// SPDX-License-Identifier: GPL-2.0-or-later
// The descriptor of proto-sctp: its keys and the factory.
#include <ctsync/sdk/sdk.hpp>
#include <memory>

#include "sctp_proto.hpp"

namespace {
using namespace ctsync::sdk;

std::unique_ptr<Plugin> create(const PluginContext&, const PluginConfig& config) {
    proto_sctp::Options options;
    options.replicate_handshake = config.get_bool("replicate_handshake");
    return std::make_unique<proto_sctp::SctpProto>(options);
}

const PluginDescriptor kDescriptor{
    .category = Category::kProto,
    .name = "proto-sctp",
    .version = "1.0.0",
    .summary = "SCTP replication decisions: states and both verification tags, closed associations withdrawn",
    .keys = proto_sctp::keys().data(),
    .key_count = static_cast<std::uint32_t>(proto_sctp::keys().size()),
    .validate = nullptr,
    .create = guarded_create<create>,
};

}  // namespace

CTSYNC_PLUGIN(kDescriptor)
