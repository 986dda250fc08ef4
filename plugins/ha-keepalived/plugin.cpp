// SPDX-License-Identifier: GPL-2.0-or-later
// The descriptor of ha-keepalived: its keys and factory.
#include <chrono>
#include <ctsync/sdk/sdk.hpp>
#include <string>

#include "keepalived_adapter.hpp"

namespace {
using namespace ctsync::sdk;

const ConfigKey kKeys[] = {
    {.name = "fifo",
     .type = KeyType::kPath,
     .required = true,
     .description = "keepalived's notify FIFO: the path given to vrrp_notify_fifo (or notify_fifo) in its "
                    "global_defs; only read here."},
    {.name = "instances",
     .type = KeyType::kStringList,
     .default_json = "[]",
     .description =
         "Names of the vrrp_instance blocks that make the role; the node is primary only while every "
         "listed instance and group is MASTER."},
    {.name = "groups",
     .type = KeyType::kStringList,
     .default_json = "[]",
     .description = "Names of the vrrp_sync_group blocks that make the role; list the group, not its member "
                    "instances, when the instances are in a sync group."},
    {.name = "create_fifo",
     .type = KeyType::kBool,
     .default_json = "true",
     .description =
         "Create the FIFO (mode 0600) when it does not exist, so that it outlives keepalived restarts; "
         "a path that exists but is not a FIFO is refused either way."},
    {.name = "reopen_ms",
     .type = KeyType::kInteger,
     .default_json = "500",
     .description =
         "After keepalived closed the FIFO (restart, reload), open it again after this long; also how "
         "often the path is checked for a replaced or missing FIFO.",
     .min = 50,
     .max = 60000},
    {.name = "track_file",
     .type = KeyType::kPath,
     .description =
         "File named by a keepalived track_file block (weight 1): the priority offset this node asks "
         "for; unset: no feedback to keepalived."},
    {.name = "hold_value",
     .type = KeyType::kInteger,
     .default_json = "-253",
     .description =
         "Written to track_file while this node's table is incomplete, and when ctsyncd stops: with "
         "weight 1, -253 lowers any priority to 1, so the node wins only when it is alone.",
     .min = -254,
     .max = 254},
    {.name = "ready_value",
     .type = KeyType::kInteger,
     .default_json = "0",
     .description = "Written to track_file once the table is complete (bulk transfer done): with weight 1, 0 "
                    "leaves the configured priority.",
     .min = -254,
     .max = 254},
    {.name = "weight_by_sequence",
     .type = KeyType::kBool,
     .default_json = "false",
     .description =
         "Add a bonus to ready_value: on a backup the last sequence received modulo "
         "(sequence_bonus_max + 1), on the primary sequence_bonus_max, so that the most up-to-date "
         "backup tends to win the election."},
    {.name = "sequence_bonus_max",
     .type = KeyType::kInteger,
     .default_json = "50",
     .description =
         "Largest bonus weight_by_sequence adds; a backup's bonus wraps from it to 0 as the sequence "
         "grows, so a larger bound makes a wrong pick rarer.",
     .min = 1,
     .max = 253},
};

ha_keepalived::AdapterOptions options_from(const PluginConfig& config) {
    ha_keepalived::AdapterOptions options;
    options.fifo = config.get_string("fifo");
    options.instances = config.get_string_list("instances");
    options.groups = config.get_string_list("groups");
    options.create_fifo = config.get_bool("create_fifo");
    options.reopen_interval = std::chrono::milliseconds(config.get_int("reopen_ms"));
    if (config.has("track_file")) {
        options.track_file = config.get_string("track_file");
    }
    options.hold_value = static_cast<int>(config.get_int("hold_value"));
    options.ready_value = static_cast<int>(config.get_int("ready_value"));
    options.weight_by_sequence = config.get_bool("weight_by_sequence");
    options.sequence_bonus_max = static_cast<int>(config.get_int("sequence_bonus_max"));
    return options;
}

void validate(const PluginConfig& config, ConfigErrors& errors) noexcept {
    try {
        ha_keepalived::validate_options(options_from(config), errors);
    } catch (const std::exception& e) {
        errors.push_back({"", e.what()});
    }
}

std::unique_ptr<Plugin> create(const PluginContext& context, const PluginConfig& config) {
    return std::make_unique<ha_keepalived::KeepalivedAdapter>(context, options_from(config));
}

const PluginDescriptor kDescriptor{
    .category = Category::kHa,
    .name = "ha-keepalived",
    .version = "0.1.0",
    .summary =
        "The role from keepalived's notify FIFO; priority held through a track file until the table is "
        "complete",
    .keys = kKeys,
    .key_count = sizeof(kKeys) / sizeof(kKeys[0]),
    .validate = validate,
    .create = guarded_create<create>,
};

}  // namespace

CTSYNC_PLUGIN(kDescriptor)
