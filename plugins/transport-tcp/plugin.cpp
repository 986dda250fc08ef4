// SPDX-License-Identifier: GPL-2.0-or-later
// The descriptor of transport-tcp: its keys, the address checks and the factory.
#include <fmt/format.h>

#include <ctsync/sdk/sdk.hpp>
#include <stdexcept>

#include "tcp_transport.hpp"

namespace {
using namespace ctsync::sdk;
using transport_tcp::Endpoint;

const ConfigKey kKeys[] = {
    {.name = "listen",
     .type = KeyType::kString,
     .required = true,
     .description = "Address and port this node accepts its peers' connections on: \"192.0.2.1:3782\" or "
                    "\"[fd00::1]:3782\"."},
    {.name = "peers",
     .type = KeyType::kStringList,
     .required = true,
     .description = "Every other node as \"address:port\" (its listen key): this node connects to each, and "
                    "accepts connections only from these addresses."},
    {.name = "bind_address",
     .type = KeyType::kAddress,
     .description = "Source address of outgoing connections (routed setups); unset: chosen by the kernel "
                    "from the route. Peers accept only addresses in their own peers list."},
    {.name = "max_datagram_bytes",
     .type = KeyType::kInteger,
     .default_json = "65000",
     .description =
         "Largest datagram send() accepts; a received frame longer than this closes the connection.",
     .min = 512,
     .max = 16777216},
    {.name = "send_queue_bytes",
     .type = KeyType::kInteger,
     .default_json = "16777216",
     .description = "Per peer, bytes queued for writing (frame headers included); datagrams beyond it are "
                    "dropped for that peer and counted in tx_dropped.",
     .min = 65536,
     .max = 1073741824},
    {.name = "reconnect_min_ms",
     .type = KeyType::kInteger,
     .default_json = "100",
     .description = "First wait before reconnecting to a peer; it doubles with each failure.",
     .min = 10,
     .max = 60000},
    {.name = "reconnect_max_ms",
     .type = KeyType::kInteger,
     .default_json = "5000",
     .description = "Longest wait between connection attempts; a connection that lasts this long resets the "
                    "wait to reconnect_min_ms.",
     .min = 10,
     .max = 600000},
    {.name = "connect_timeout_ms",
     .type = KeyType::kInteger,
     .default_json = "2000",
     .description = "A connection attempt unanswered for this long fails (and is retried).",
     .min = 100,
     .max = 60000},
    {.name = "user_timeout_ms",
     .type = KeyType::kInteger,
     .default_json = "3000",
     .description =
         "TCP_USER_TIMEOUT: data or keepalives unacknowledged for this long end the connection, so "
         "a dead peer is noticed.",
     .min = 500,
     .max = 600000},
    {.name = "keepalive_idle_s",
     .type = KeyType::kInteger,
     .default_json = "1",
     .description = "TCP_KEEPIDLE: idle seconds before the first keepalive probe.",
     .min = 1,
     .max = 3600},
    {.name = "keepalive_interval_s",
     .type = KeyType::kInteger,
     .default_json = "1",
     .description = "TCP_KEEPINTVL: seconds between keepalive probes.",
     .min = 1,
     .max = 3600},
    {.name = "keepalive_count",
     .type = KeyType::kInteger,
     .default_json = "3",
     .description = "TCP_KEEPCNT: unanswered probes that end the connection (user_timeout_ms ends it first "
                    "when shorter).",
     .min = 1,
     .max = 127},
};

void validate(const PluginConfig& config, ConfigErrors& errors) noexcept {
    try {
        std::string error;
        auto listen = transport_tcp::parse_endpoint(config.get_string("listen"), error);
        if (!listen) {
            errors.push_back({".listen", error});
        } else if (listen->address().is_multicast()) {
            errors.push_back(
                {".listen", fmt::format("'{}' is a multicast address", config.get_string("listen"))});
        }
        std::optional<boost::asio::ip::address> bind;
        if (config.has("bind_address")) {
            bind = boost::asio::ip::make_address(config.get_string("bind_address"));
        }
        const auto peers = config.get_string_list("peers");
        if (peers.empty()) {
            errors.push_back(
                {".peers", "must name at least one peer (\"address:port\" of another node's listen)"});
        }
        std::vector<std::optional<Endpoint>> parsed;
        for (std::size_t i = 0; i < peers.size(); ++i) {
            const std::string path = fmt::format(".peers[{}]", i);
            auto peer = transport_tcp::parse_endpoint(peers[i], error);
            parsed.push_back(peer);
            if (!peer) {
                errors.push_back({path, error});
                continue;
            }
            const auto& address = peer->address();
            if (address.is_unspecified() || address.is_multicast()) {
                errors.push_back({path, fmt::format("'{}' is not a peer's address ({})", peers[i],
                                                    address.is_multicast() ? "multicast" : "unspecified")});
                continue;
            }
            if (listen && *peer == *listen) {
                errors.push_back({path, fmt::format("'{}' is this node's own listen address", peers[i])});
                continue;
            }
            for (std::size_t j = 0; j < i; ++j) {
                if (parsed[j] && *parsed[j] == *peer) {
                    errors.push_back(
                        {path, fmt::format("'{}' is listed twice (also .peers[{}])", peers[i], j)});
                    break;
                }
            }
            if (bind && bind->is_v4() != address.is_v4()) {
                errors.push_back(
                    {".bind_address", fmt::format("'{}' is {} but .peers[{}] '{}' is {}", bind->to_string(),
                                                  bind->is_v4() ? "IPv4" : "IPv6", i, peers[i],
                                                  address.is_v4() ? "IPv4" : "IPv6")});
            }
        }
        if (config.get_int("reconnect_max_ms") < config.get_int("reconnect_min_ms")) {
            errors.push_back({".reconnect_max_ms", fmt::format("must be at least .reconnect_min_ms ({})",
                                                               config.get_int("reconnect_min_ms"))});
        }
        const auto frame =
            config.get_int("max_datagram_bytes") + std::int64_t{transport_tcp::kFrameHeaderBytes};
        if (config.get_int("send_queue_bytes") < frame) {
            errors.push_back(
                {".send_queue_bytes",
                 fmt::format("must hold one datagram of .max_datagram_bytes plus its {}-byte header "
                             "({} bytes)",
                             transport_tcp::kFrameHeaderBytes, frame)});
        }
    } catch (const std::exception& e) {
        errors.push_back({"", fmt::format("cannot be checked: {}", e.what())});
    }
}

Endpoint endpoint_or_throw(const std::string& key, const std::string& text) {
    std::string error;
    auto endpoint = transport_tcp::parse_endpoint(text, error);
    if (!endpoint) {
        throw std::invalid_argument(key + ": " + error);
    }
    return *endpoint;
}

std::unique_ptr<Plugin> create(const PluginContext& context, const PluginConfig& config) {
    transport_tcp::TcpOptions options;
    options.listen = endpoint_or_throw("listen", config.get_string("listen"));
    for (const auto& peer : config.get_string_list("peers")) {
        options.peers.push_back(endpoint_or_throw("peers", peer));
    }
    if (config.has("bind_address")) {
        options.bind_address = boost::asio::ip::make_address(config.get_string("bind_address"));
    }
    options.max_datagram_bytes = static_cast<std::size_t>(config.get_int("max_datagram_bytes"));
    options.send_queue_bytes = static_cast<std::size_t>(config.get_int("send_queue_bytes"));
    options.reconnect_min = std::chrono::milliseconds(config.get_int("reconnect_min_ms"));
    options.reconnect_max = std::chrono::milliseconds(config.get_int("reconnect_max_ms"));
    options.connect_timeout = std::chrono::milliseconds(config.get_int("connect_timeout_ms"));
    options.user_timeout = std::chrono::milliseconds(config.get_int("user_timeout_ms"));
    options.keepalive_idle = std::chrono::seconds(config.get_int("keepalive_idle_s"));
    options.keepalive_interval = std::chrono::seconds(config.get_int("keepalive_interval_s"));
    options.keepalive_count = static_cast<int>(config.get_int("keepalive_count"));
    return std::make_unique<transport_tcp::TcpTransport>(context, std::move(options));
}

const PluginDescriptor kDescriptor{
    .category = Category::kTransport,
    .name = "transport-tcp",
    .version = "0.1.0",
    .summary = "datagrams over TCP to configured peers (routed sync links): framing, reconnect with backoff",
    .keys = kKeys,
    .key_count = sizeof(kKeys) / sizeof(kKeys[0]),
    .validate = validate,
    .create = guarded_create<create>,
};

}  // namespace

CTSYNC_PLUGIN(kDescriptor)
