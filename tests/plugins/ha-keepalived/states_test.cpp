// SPDX-License-Identifier: GPL-2.0-or-later
// The role the configured instances and groups make together, and the value the track file gets, as pure
// functions (the FIFO and file tests drive the same code through the adapter).
#include <gtest/gtest.h>

#include "keepalived_adapter.hpp"

namespace ha_keepalived::test {
namespace {

using ctsync::sdk::Role;
using ctsync::sdk::SyncReadiness;

VrrpNotice notice(EntityType type, const std::string& name, NotifyState state, int priority = 100) {
    return VrrpNotice{type, name, state, priority};
}
VrrpNotice instance(const std::string& name, NotifyState state, int priority = 100) {
    return notice(EntityType::kInstance, name, state, priority);
}

TEST(VrrpStates, EachStateMapsToARole) {
    const std::vector<std::pair<NotifyState, Role>> table = {
        {NotifyState::kMaster, Role::kPrimary},
        {NotifyState::kBackup, Role::kBackup},
        {NotifyState::kFault, Role::kFault},
        {NotifyState::kStop, Role::kBackup},
        {NotifyState::kDeleted, Role::kBackup},
        {NotifyState::kMasterPriority, Role::kPrimary},
        {NotifyState::kMasterRxLowerPri, Role::kPrimary},
        {NotifyState::kBackupPriority, Role::kBackup},
    };
    for (const auto& [state, role] : table) {
        VrrpStates states({"VI_1"}, {});
        EXPECT_EQ(states.role(), Role::kInit);
        const auto outcome = states.apply(instance("VI_1", state));
        EXPECT_TRUE(outcome.configured);
        EXPECT_TRUE(outcome.changed);
        EXPECT_EQ(states.role(), role) << to_string(state);
    }
}

TEST(VrrpStates, PrimaryNeedsEveryInstanceAndGroupMaster) {
    VrrpStates states({"VI_1", "VI_2"}, {"G1"});
    states.apply(instance("VI_1", NotifyState::kMaster));
    EXPECT_EQ(states.role(), Role::kBackup);  // the others said nothing yet
    EXPECT_TRUE(states.split());
    states.apply(instance("VI_2", NotifyState::kMaster));
    EXPECT_EQ(states.role(), Role::kBackup);
    states.apply(notice(EntityType::kGroup, "G1", NotifyState::kMaster, 0));
    EXPECT_EQ(states.role(), Role::kPrimary);
    EXPECT_FALSE(states.split());
    states.apply(instance("VI_2", NotifyState::kBackup));
    EXPECT_EQ(states.role(), Role::kBackup);
    EXPECT_TRUE(states.split());
    states.apply(instance("VI_2", NotifyState::kFault));
    EXPECT_EQ(states.role(), Role::kFault);  // any FAULT wins
    EXPECT_FALSE(states.split());
    states.apply(instance("VI_1", NotifyState::kStop));
    EXPECT_EQ(states.role(), Role::kFault);
    states.apply(instance("VI_2", NotifyState::kStop));
    EXPECT_EQ(states.role(), Role::kBackup);
    EXPECT_EQ(states.describe(), "instance VI_1 STOP, instance VI_2 STOP, group G1 MASTER");
}

TEST(VrrpStates, NamesAreMatchedByTypeAndExactly) {
    VrrpStates states({"VI_1"}, {"G1"});
    EXPECT_FALSE(states.apply(instance("VI_2", NotifyState::kMaster)).configured);
    EXPECT_FALSE(states.apply(instance("vi_1", NotifyState::kMaster)).configured);
    EXPECT_FALSE(states.apply(instance("G1", NotifyState::kMaster)).configured);  // an instance called G1
    EXPECT_FALSE(states.apply(notice(EntityType::kGroup, "VI_1", NotifyState::kMaster)).configured);
    EXPECT_EQ(states.role(), Role::kInit);
    EXPECT_EQ(states.describe(), "instance VI_1 (no line yet), group G1 (no line yet)");
}

TEST(VrrpStates, PriorityEventsImplyAStateAndTellAContradiction) {
    VrrpStates states({"VI_1"}, {});
    auto outcome = states.apply(instance("VI_1", NotifyState::kMasterPriority, 120));
    EXPECT_TRUE(outcome.inferred);
    EXPECT_FALSE(outcome.contradicted);  // nothing was known
    EXPECT_EQ(states.role(), Role::kPrimary);
    EXPECT_EQ(states.entities()[0].priority, 120);

    outcome = states.apply(instance("VI_1", NotifyState::kMasterRxLowerPri, 120));
    EXPECT_FALSE(outcome.changed);
    EXPECT_FALSE(outcome.inferred);

    outcome = states.apply(instance("VI_1", NotifyState::kBackupPriority, 90));
    EXPECT_TRUE(outcome.contradicted);  // keepalived never sends it in MASTER: a line was lost
    EXPECT_EQ(states.role(), Role::kBackup);

    states.apply(instance("VI_1", NotifyState::kFault, 0));
    outcome = states.apply(instance("VI_1", NotifyState::kBackupPriority, 50));
    EXPECT_FALSE(outcome.changed);  // BACKUP_PRIORITY means "not MASTER": FAULT stays
    EXPECT_EQ(states.role(), Role::kFault);
    EXPECT_EQ(states.entities()[0].priority, 50);

    outcome = states.apply(instance("VI_1", NotifyState::kMasterPriority, 100));
    EXPECT_TRUE(outcome.contradicted);
    EXPECT_EQ(states.role(), Role::kPrimary);
}

TEST(TrackValue, HoldUntilCompleteThenReady) {
    AdapterOptions options;
    EXPECT_EQ(track_value(options, SyncReadiness{false, 0}, Role::kInit), -253);
    EXPECT_EQ(track_value(options, SyncReadiness{false, 999}, Role::kPrimary), -253);
    EXPECT_EQ(track_value(options, SyncReadiness{true, 0}, Role::kBackup), 0);
    EXPECT_EQ(track_value(options, SyncReadiness{true, 12345}, Role::kPrimary), 0);
    options.hold_value = 1;  // keepalived weight 0: any non-zero value is a fault
    options.ready_value = 0;
    EXPECT_EQ(track_value(options, SyncReadiness{false, 0}, Role::kBackup), 1);
}

TEST(TrackValue, WeightedBySequenceWithinItsBound) {
    AdapterOptions options;
    options.weight_by_sequence = true;
    options.ready_value = 10;
    options.sequence_bonus_max = 50;
    EXPECT_EQ(track_value(options, SyncReadiness{false, 1234}, Role::kBackup), -253);
    EXPECT_EQ(track_value(options, SyncReadiness{true, 0}, Role::kBackup), 10);
    EXPECT_EQ(track_value(options, SyncReadiness{true, 1234}, Role::kBackup), 10 + 1234 % 51);
    EXPECT_EQ(track_value(options, SyncReadiness{true, 50}, Role::kBackup), 60);
    EXPECT_EQ(track_value(options, SyncReadiness{true, 51}, Role::kBackup), 10);  // wraps
    EXPECT_EQ(track_value(options, SyncReadiness{true, UINT64_MAX}, Role::kBackup),
              10 + static_cast<int>(UINT64_MAX % 51));
    EXPECT_EQ(track_value(options, SyncReadiness{true, 7}, Role::kPrimary), 60);  // the primary: the maximum
    // Two backups that differ by less than the bound, not across a wrap: the newer one gets more.
    EXPECT_GT(track_value(options, SyncReadiness{true, 1030}, Role::kBackup),
              track_value(options, SyncReadiness{true, 1021}, Role::kBackup));
    for (std::uint64_t s = 0; s < 1000; ++s) {
        const int value = track_value(options, SyncReadiness{true, s}, Role::kBackup);
        EXPECT_GE(value, 10);
        EXPECT_LE(value, 60);
    }
}

TEST(ValidateOptions, CrossKeyChecks) {
    auto errors_of = [](const AdapterOptions& options) {
        ctsync::sdk::ConfigErrors errors;
        validate_options(options, errors);
        std::vector<std::string> out;
        for (const auto& e : errors) {
            out.push_back(e.path + ": " + e.message);
        }
        return out;
    };
    AdapterOptions good;
    good.fifo = "/run/ctsync/keepalived.fifo";
    good.instances = {"VI_1"};
    EXPECT_TRUE(errors_of(good).empty());

    AdapterOptions none = good;
    none.instances.clear();
    EXPECT_EQ(errors_of(none),
              std::vector<std::string>{
                  ".instances: no instance and no group: name at least one keepalived "
                  "vrrp_instance here or one vrrp_sync_group in groups; the role comes from their "
                  "states"});
    AdapterOptions names = good;
    names.instances = {"VI_1", "", "VI_1", "bad\"name"};
    names.groups = {"G1", "G\n1"};
    EXPECT_EQ(
        errors_of(names),
        (std::vector<std::string>{".instances[1]: must not be empty", ".instances[2]: 'VI_1' is listed twice",
                                  ".instances[3]: 'bad\\\"name' cannot be a keepalived name: no control "
                                  "characters or double quotes",
                                  ".groups[1]: 'G\\x0a1' cannot be a keepalived name: no control characters "
                                  "or double quotes"}));
    AdapterOptions paths = good;
    paths.track_file = paths.fifo;
    EXPECT_EQ(errors_of(paths), std::vector<std::string>{".track_file: is the same path as fifo"});
    paths.fifo = "/run/ctsync/";
    paths.track_file = "/run/ctsync/ready/";
    EXPECT_EQ(errors_of(paths),
              (std::vector<std::string>{".fifo: '/run/ctsync/' names a directory, not a file",
                                        ".track_file: '/run/ctsync/ready/' names a directory, "
                                        "not a file"}));
    AdapterOptions values = good;
    values.hold_value = 0;
    EXPECT_EQ(errors_of(values),
              std::vector<std::string>{
                  ".hold_value: equals ready_value (0): holding would not change the priority"});
    AdapterOptions weighted = good;
    weighted.weight_by_sequence = true;
    weighted.ready_value = 210;
    EXPECT_EQ(
        errors_of(weighted),
        (std::vector<std::string>{".weight_by_sequence: needs track_file: the bonus is written there",
                                  ".sequence_bonus_max: ready_value + sequence_bonus_max is 260: keepalived "
                                  "adds a track file's value to the priority only within [-253, 253]"}));
}

}  // namespace
}  // namespace ha_keepalived::test
