// SPDX-License-Identifier: GPL-2.0-or-later
// The descriptor: the one symbol this library exports.
#include <ctsync/sdk/sdk.hpp>

#include "port_filter.hpp"

namespace {

const ctsync::sdk::PluginDescriptor kDescriptor{
    .category = ctsync::sdk::Category::kFilter,
    .name = "filter-port",
    .version = "1.0.0",
    .summary = "drops flows whose destination port is in a list (SDK example)",
    .keys = filter_port::keys().data(),
    .key_count = static_cast<std::uint32_t>(filter_port::keys().size()),
    .validate = filter_port::validate,
    .create = ctsync::sdk::guarded_create<filter_port::create>,
};

}  // namespace

CTSYNC_PLUGIN(kDescriptor)
