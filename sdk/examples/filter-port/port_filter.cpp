// SPDX-License-Identifier: GPL-2.0-or-later
#include "port_filter.hpp"

#include <map>
#include <string>

namespace filter_port {
namespace {

using namespace ctsync::sdk;

const ConfigKey kKeys[] = {
    {.name = "ports",
     .type = KeyType::kList,
     .required = true,
     .description = "Destination ports (1-65535) whose flows are not replicated."},
    {.name = "protocols",
     .type = KeyType::kStringList,
     .default_json = R"(["tcp", "udp"])",
     .description = "Protocols the ports apply to: tcp, udp, sctp, udplite, dccp."},
    {.name = "log_drops",
     .type = KeyType::kBool,
     .default_json = "false",
     .description = "Log every dropped flow at debug level."},
};

const std::map<std::string, std::uint8_t> kProtocols = {{"tcp", l4::kTcp},
                                                        {"udp", l4::kUdp},
                                                        {"sctp", l4::kSctp},
                                                        {"udplite", l4::kUdplite},
                                                        {"dccp", l4::kDccp}};

}  // namespace

std::span<const ConfigKey> keys() {
    return kKeys;
}

void validate(const PluginConfig& config, ConfigErrors& errors) noexcept {
    const auto& ports = config.raw("ports");
    if (ports.empty()) {
        errors.push_back({".ports", "must list at least one port"});
    }
    for (std::size_t i = 0; i < ports.size(); ++i) {
        const auto& port = ports[i];
        if (!port.is_number_integer() || port.get<std::int64_t>() < 1 || port.get<std::int64_t>() > 65535) {
            errors.push_back({".ports[" + std::to_string(i) + "]",
                              "expected a port number 1-65535, found " + port.dump()});
        }
    }
    auto protocols = config.get_string_list("protocols");
    for (std::size_t i = 0; i < protocols.size(); ++i) {
        if (kProtocols.count(protocols[i]) == 0) {
            errors.push_back({".protocols[" + std::to_string(i) + "]",
                              "'" + protocols[i] + "' is not one of tcp, udp, sctp, udplite, dccp"});
        }
    }
}

PortFilter::PortFilter(const PluginContext& context, const PluginConfig& config)
    : log_drops_(config.get_bool("log_drops")),
      logger_(*context.logger),
      dropped_(context.metrics->counter("dropped", "flows not replicated because of their port")),
      accepted_(context.metrics->counter("accepted", "flows passed on")) {
    for (const auto& port : config.raw("ports")) {
        ports_.set(port.get<std::uint16_t>());
    }
    for (const auto& name : config.get_string_list("protocols")) {
        protocols_.set(kProtocols.at(name));
    }
    logger_.info("event=filter_ready ports=" + std::to_string(ports_.count()) +
                 " protocols=" + std::to_string(protocols_.count()));
}

Verdict PortFilter::evaluate(const FlowState& flow) const noexcept {
    if (protocols_.test(flow.original.protocol) && ports_.test(flow.original.dst_port)) {
        dropped_.add();
        if (log_drops_ && logger_.enabled(LogLevel::kDebug)) {
            logger_.debug("event=flow_dropped dport=" + std::to_string(flow.original.dst_port));
        }
        return Verdict::kDrop;
    }
    accepted_.add();
    return Verdict::kAccept;
}

std::unique_ptr<Plugin> create(const PluginContext& context, const PluginConfig& config) {
    return std::make_unique<PortFilter>(context, config);
}

}  // namespace filter_port
