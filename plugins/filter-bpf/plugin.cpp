// SPDX-License-Identifier: GPL-2.0-or-later
// The descriptor of filter-bpf: its keys, the expression check and the factory.
#include <ctsync/sdk/sdk.hpp>

#include "filter_bpf.hpp"

namespace {

const ctsync::sdk::PluginDescriptor kDescriptor{
    .category = ctsync::sdk::Category::kFilter,
    .name = "filter-bpf",
    .version = "1.0.0",
    .summary =
        "one filter expression; the kernel drops what it can decide (classic BPF), the process the rest",
    .keys = filter_bpf::keys().data(),
    .key_count = static_cast<std::uint32_t>(filter_bpf::keys().size()),
    .validate = filter_bpf::validate,
    .create = ctsync::sdk::guarded_create<filter_bpf::create>,
};

}  // namespace

CTSYNC_PLUGIN(kDescriptor)
