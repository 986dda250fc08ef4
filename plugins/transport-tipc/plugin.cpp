// SPDX-License-Identifier: GPL-2.0-or-later
// The descriptor of transport-tipc: its keys, the cross-key check and the factory.
#include <fmt/format.h>

#include <ctsync/sdk/sdk.hpp>
#include <stdexcept>
#include <string>

#include "tipc_transport.hpp"

namespace {
using namespace ctsync::sdk;

const ConfigKey kKeys[] = {
    {.name = "service_type",
     .type = KeyType::kInteger,
     .default_json = "18061",
     .description = "TIPC service type of the sync link: each node binds {service_type, its node.id} and "
                    "multicasts to every instance of it. Types 0 to 63 are reserved by TIPC.",
     .min = static_cast<double>(tipc::kFirstUserServiceType),
     .max = 4294967295.0},
    {.name = "scope",
     .type = KeyType::kEnum,
     .default_json = "\"cluster\"",
     .description = "Binding scope: cluster (peers on the other TIPC nodes) or node (only ctsync instances "
                    "on this TIPC node, such as several daemons on one host).",
     .choices = "cluster|node"},
    {.name = "importance",
     .type = KeyType::kEnum,
     .default_json = "\"high\"",
     .description = "TIPC importance of the datagrams: a peer's receive queue holds up to 2, 4, 8 or 16 "
                    "times its receive_buffer_bytes of them, and the link's backlog grows with it too.",
     .choices = "low|medium|high|critical"},
    {.name = "max_datagram_bytes",
     .type = KeyType::kInteger,
     .default_json = "65000",
     .description =
         "Largest datagram send() accepts; TIPC fragments it over the bearer's MTU and delivers it "
         "whole (TIPC_MAX_USER_MSG_SIZE is 66000).",
     .min = static_cast<double>(tipc::kMinConfiguredDatagram),
     .max = static_cast<double>(tipc::kMaxUserMessage)},
    {.name = "send_buffer_bytes",
     .type = KeyType::kInteger,
     .default_json = "4194304",
     .description = "Send socket buffer (SO_SNDBUFFORCE, else SO_SNDBUF capped by net.core.wmem_max); the "
                    "kernel's grant is logged and in a gauge.",
     .min = 16384,
     .max = 1073741823},
    {.name = "receive_buffer_bytes",
     .type = KeyType::kInteger,
     .default_json = "4194304",
     .description = "Receive socket buffer (SO_RCVBUFFORCE, else SO_RCVBUF capped by net.core.rmem_max); the "
                    "kernel's grant is logged and in a gauge.",
     .min = 16384,
     .max = 1073741823},
    {.name = "send_queue_datagrams",
     .type = KeyType::kInteger,
     .default_json = "4096",
     .description = "Datagrams held while TIPC reports the link congested; send() refuses more (tx_dropped).",
     .min = 1,
     .max = 1048576},
};

void validate(const PluginConfig& config, ConfigErrors& errors) noexcept {
    try {
        tipc::Importance importance = tipc::Importance::kHigh;
        if (!tipc::parse_importance(config.get_string("importance"), importance)) {
            errors.push_back({".importance", fmt::format("'{}' is not one of low|medium|high|critical",
                                                         config.get_string("importance"))});
            return;
        }
        const auto receive = config.get_int("receive_buffer_bytes");
        const auto most = tipc::max_receive_buffer(importance);
        if (receive > static_cast<std::int64_t>(most)) {
            errors.push_back(
                {".receive_buffer_bytes",
                 fmt::format("{} is too large for importance {}: TIPC limits the receive queue to twice the "
                             "buffer times {} in 32 bits, which wraps above {}",
                             receive, tipc::to_string(importance), 1u << static_cast<unsigned>(importance),
                             most)});
        }
    } catch (const std::exception& e) {
        errors.push_back({"", fmt::format("cannot be checked: {}", e.what())});
    }
}

std::unique_ptr<Plugin> create(const PluginContext& context, const PluginConfig& config) {
    // Without TIPC in the kernel nothing of this plugin can work: refuse now, so that ctsyncd does not
    // start with a link that can never come up.
    std::string error;
    if (!tipc::probe_kernel(error)) {
        throw std::runtime_error(error);
    }
    tipc::TransportOptions options;
    options.service_type = static_cast<std::uint32_t>(config.get_int("service_type"));
    if (!tipc::parse_scope(config.get_string("scope"), options.scope) ||
        !tipc::parse_importance(config.get_string("importance"), options.importance)) {
        throw std::invalid_argument("scope or importance has a value the key table should have refused");
    }
    options.max_datagram_bytes = static_cast<std::size_t>(config.get_int("max_datagram_bytes"));
    options.send_buffer_bytes = static_cast<std::size_t>(config.get_int("send_buffer_bytes"));
    options.receive_buffer_bytes = static_cast<std::size_t>(config.get_int("receive_buffer_bytes"));
    options.send_queue_datagrams = static_cast<std::size_t>(config.get_int("send_queue_datagrams"));
    return std::make_unique<tipc::TipcTransport>(context, std::move(options));
}

const PluginDescriptor kDescriptor{
    .category = Category::kTransport,
    .name = "transport-tipc",
    .version = "0.1.0",
    .summary =
        "TIPC service multicast over the operator's bearers; peers up/down from TIPC's topology service",
    .keys = kKeys,
    .key_count = sizeof(kKeys) / sizeof(kKeys[0]),
    .validate = validate,
    .create = guarded_create<create>,
};

}  // namespace

CTSYNC_PLUGIN(kDescriptor)
