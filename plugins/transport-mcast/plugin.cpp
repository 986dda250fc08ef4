// SPDX-License-Identifier: GPL-2.0-or-later
// The descriptor of transport-mcast: its keys and factory.
#include <sys/socket.h>

#include <ctsync/sdk/sdk.hpp>
#include <string>

#include "mcast_transport.hpp"

namespace {
using namespace ctsync::sdk;

const ConfigKey kKeys[] = {
    {.name = "interface",
     .type = KeyType::kString,
     .required = true,
     .description =
         "The sync interface: both sockets are bound to it (SO_BINDTODEVICE), the group is joined on "
         "it only, and its carrier is the link state."},
    {.name = "group",
     .type = KeyType::kAddress,
     .required = true,
     .description =
         "Multicast group: IPv4 (224.0.0.0/4) or IPv6 (ff00::/8, link scope or wider); its family is "
         "the link's."},
    {.name = "port",
     .type = KeyType::kInteger,
     .default_json = "3781",
     .description = "UDP destination port; the receive socket is bound to the group address and this port.",
     .min = 1,
     .max = 65535},
    {.name = "send_buffer_bytes",
     .type = KeyType::kInteger,
     .default_json = "4194304",
     .description = "Send socket buffer (SO_SNDBUFFORCE, else SO_SNDBUF capped by net.core.wmem_max); the "
                    "kernel's grant is logged and in a gauge.",
     .min = 16384,
     .max = 1073741824},
    {.name = "receive_buffer_bytes",
     .type = KeyType::kInteger,
     .default_json = "4194304",
     .description = "Receive socket buffer (SO_RCVBUFFORCE, else SO_RCVBUF capped by net.core.rmem_max); the "
                    "kernel's grant is logged and in a gauge.",
     .min = 16384,
     .max = 1073741824},
    {.name = "max_datagram_bytes",
     .type = KeyType::kInteger,
     .default_json = "0",
     .description =
         "Largest datagram send() accepts. 0: the interface MTU minus IP and UDP headers (28 bytes "
         "for IPv4, 48 for IPv6); otherwise at least 512 and at most that.",
     .min = 0,
     .max = static_cast<double>(mcast::kMaxIpv6Payload)},
    {.name = "send_queue_datagrams",
     .type = KeyType::kInteger,
     .default_json = "4096",
     .description = "Datagrams held while the send socket buffer is full; send() refuses more (tx_dropped).",
     .min = 1,
     .max = 1048576},
};

void validate(const PluginConfig& config, ConfigErrors& errors) noexcept {
    try {
        std::string why;
        if (!mcast::valid_interface_name(config.get_string("interface"), why)) {
            errors.push_back({".interface", why});
        }
        mcast::Group group;
        const bool group_ok = mcast::parse_group(config.get_string("group"), group, why);
        if (!group_ok) {
            errors.push_back({".group", why});
        }
        const auto max_datagram = config.get_int("max_datagram_bytes");
        if (max_datagram != 0 && max_datagram < static_cast<std::int64_t>(mcast::kMinConfiguredDatagram)) {
            errors.push_back(
                {".max_datagram_bytes", std::to_string(max_datagram) +
                                            " is too small: 0 (derive from the MTU) or at least " +
                                            std::to_string(mcast::kMinConfiguredDatagram)});
        } else if (group_ok && group.address.family == AF_INET &&
                   max_datagram > static_cast<std::int64_t>(mcast::kMaxIpv4Payload)) {
            errors.push_back({".max_datagram_bytes", std::to_string(max_datagram) +
                                                         " is more than a UDP datagram over IPv4 holds (" +
                                                         std::to_string(mcast::kMaxIpv4Payload) + ")"});
        }
    } catch (const std::exception& e) {
        errors.push_back({"", e.what()});
    }
}

std::unique_ptr<Plugin> create(const PluginContext& context, const PluginConfig& config) {
    mcast::TransportOptions options;
    options.interface = config.get_string("interface");
    options.group = config.get_string("group");
    options.port = static_cast<std::uint16_t>(config.get_int("port"));
    options.send_buffer_bytes = static_cast<std::size_t>(config.get_int("send_buffer_bytes"));
    options.receive_buffer_bytes = static_cast<std::size_t>(config.get_int("receive_buffer_bytes"));
    options.max_datagram_bytes = static_cast<std::size_t>(config.get_int("max_datagram_bytes"));
    options.send_queue_datagrams = static_cast<std::size_t>(config.get_int("send_queue_datagrams"));
    return std::make_unique<mcast::McastTransport>(context, options);
}

const PluginDescriptor kDescriptor{
    .category = Category::kTransport,
    .name = "transport-mcast",
    .version = "0.1.0",
    .summary = "UDP multicast (IPv4/IPv6) on one interface, bound strictly to it and its group; TTL 1",
    .keys = kKeys,
    .key_count = sizeof(kKeys) / sizeof(kKeys[0]),
    .validate = validate,
    .create = guarded_create<create>,
};

}  // namespace

CTSYNC_PLUGIN(kDescriptor)
