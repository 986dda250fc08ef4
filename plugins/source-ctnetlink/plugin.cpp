// SPDX-License-Identifier: GPL-2.0-or-later
// The descriptor of source-ctnetlink: its keys and factory.
#include <ctsync/sdk/sdk.hpp>

#include "ctnetlink_source.hpp"

namespace {
using namespace ctsync::sdk;

const ConfigKey kKeys[] = {
    {.name = "event_buffer_bytes",
     .type = KeyType::kInteger,
     .default_json = "67108864",
     .description = "Initial receive buffer of the event socket (a limit, not an allocation; the kernel "
                    "doubles it): 64 MiB hold a burst of about 200k events without an overrun and its "
                    "repair by a full dump.",
     .min = 65536,
     .max = 1073741824},
    {.name = "event_buffer_max_bytes",
     .type = KeyType::kInteger,
     .default_json = "268435456",
     .description = "The buffer doubles on each overrun (ENOBUFS) up to this size.",
     .min = 65536,
     .max = 1073741824},
    {.name = "reliable_events",
     .type = KeyType::kBool,
     .default_json = "false",
     .description = "NETLINK_BROADCAST_ERROR + NETLINK_NO_ENOBUFS: the kernel holds back rather than drops "
                    "events (can slow the data path under load)."},
    {.name = "expectations",
     .type = KeyType::kBool,
     .default_json = "true",
     .description = "Read and write helper expectations too."},
    {.name = "write_batch_bytes",
     .type = KeyType::kInteger,
     .default_json = "131072",
     .description = "Size of one netlink batch when writing entries.",
     .min = 16384,
     .max = 4194304},
    {.name = "events_sysctl",
     .type = KeyType::kEnum,
     .default_json = "\"set\"",
     .description = "nf_conntrack_events must be 1 (in mode 2 entries created while nobody listened emit no "
                    "events): set it, check (refuse to start), or ignore.",
     .choices = "set|check|ignore"},
    {.name = "resync_interval_s",
     .type = KeyType::kInteger,
     .default_json = "300",
     .description =
         "Full dump with mark and sweep every so often (0: never); repairs entries that emit no events.",
     .min = 0,
     .max = 86400},
    {.name = "event_batch_us",
     .type = KeyType::kInteger,
     .default_json = "2000",
     .description =
         "Once the event queue is empty, let events gather this long before reading again, so that "
         "one wake-up reads many (0: at once). Delays an event by at most this much.",
     .min = 0,
     .max = 100000},
    {.name = "write_threads",
     .type = KeyType::kInteger,
     .default_json = "2",
     .description = "Threads (one netlink socket each) that share a large write such as a commit; the kernel "
                    "inserts in the sender's context, so this uses more cores.",
     .min = 1,
     .max = 16},
    {.name = "dump_retry_ms",
     .type = KeyType::kInteger,
     .default_json = "1000",
     .description = "Wait before retrying a dump that ended early.",
     .min = 10,
     .max = 600000},
};

void validate(const PluginConfig& config, ConfigErrors& errors) noexcept {
    if (config.get_int("event_buffer_max_bytes") < config.get_int("event_buffer_bytes")) {
        errors.push_back({".event_buffer_max_bytes", "must be at least .event_buffer_bytes"});
    }
}

std::unique_ptr<Plugin> create(const PluginContext& context, const PluginConfig& config) {
    ctnetlink::SourceOptions options;
    options.event_buffer_bytes = static_cast<std::size_t>(config.get_int("event_buffer_bytes"));
    options.event_buffer_max_bytes = static_cast<std::size_t>(config.get_int("event_buffer_max_bytes"));
    options.reliable_events = config.get_bool("reliable_events");
    options.expectations = config.get_bool("expectations");
    options.write_batch_bytes = static_cast<std::size_t>(config.get_int("write_batch_bytes"));
    options.dump_retry = std::chrono::milliseconds(config.get_int("dump_retry_ms"));
    options.write_threads = static_cast<std::size_t>(config.get_int("write_threads"));
    options.events_sysctl = config.get_string("events_sysctl");
    options.resync_interval = std::chrono::seconds(config.get_int("resync_interval_s"));
    options.event_batch = std::chrono::microseconds(config.get_int("event_batch_us"));
    return std::make_unique<ctnetlink::CtnetlinkSource>(context, options);
}

const PluginDescriptor kDescriptor{
    .category = Category::kSource,
    .name = "source-ctnetlink",
    .version = "0.1.0",
    .summary = "the kernel's conntrack table through ctnetlink: dump, events, batched writes",
    .keys = kKeys,
    .key_count = sizeof(kKeys) / sizeof(kKeys[0]),
    .validate = validate,
    .create = guarded_create<create>,
};

}  // namespace

CTSYNC_PLUGIN(kDescriptor)
