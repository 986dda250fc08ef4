// SPDX-License-Identifier: GPL-2.0-or-later
// Fault injection on the replication lab (replication_lab.hpp: three real ctsyncd in namespaces, the
// primary's kernel table written by ct-inject while everything runs). Each test ends with exact
// convergence: both backups' external caches equal the primary's kernel table, entry by entry.
//   - the sync link flapping (silence and carrier loss, short and longer than the peer timeout) during a
//     load of creates and then of deletes;
//   - the primary's daemon killed by SIGKILL at a random point of a load and started again (a new epoch:
//     the backups must drop what the old one sent and the new one no longer has);
//   - a backup's daemon killed by SIGKILL at a random point of a load, started again, and killed once more
//     at a random point of the bulk transfer it asked for (it starts empty each time and must end whole).
#include <gtest/gtest.h>
#include <signal.h>

#include <random>
#include <thread>

#include "tests/core/replication/replication_lab.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;

// The switch drops everything between the nodes (every port keeps its carrier), or lets it pass again.
void silence(const NetNs& sw, bool on) {
    if (on) {
        must(sw.exec(
            {"nft",
             "add table bridge ctsync_flap; add chain bridge ctsync_flap fw { type filter hook forward "
             "priority 0; }; add rule bridge ctsync_flap fw drop"}));
    } else {
        must(sw.exec({"nft", "delete table bridge ctsync_flap"}));
    }
}

// One backup's switch port loses its carrier, or gets it back.
void carrier(const NetNs& sw, int node, bool up) {
    must(sw.exec({"ip", "link", "set", fmt::format("s0n{}", node), up ? "up" : "down"}));
}

// Runs the outages one after the other while `load` runs (bounded by their sum).
void flap(const NetNs& sw, const std::vector<std::pair<std::chrono::milliseconds, bool>>& outages) {
    for (const auto& [length, carrier_loss] : outages) {
        if (carrier_loss) {
            carrier(sw, 2, false);
        } else {
            silence(sw, true);
        }
        std::this_thread::sleep_for(length);
        if (carrier_loss) {
            carrier(sw, 2, true);
        } else {
            silence(sw, false);
        }
        std::this_thread::sleep_for(300ms);
    }
}

TEST(Faults, SyncLinkFlappingDuringCreatesAndDeletesLosesNothing) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    constexpr int kCreated = 100000;
    constexpr int kDeleted = 30000;
    ReplicationLab lab(Kind::kMcast, 1, kCreated - kDeleted);
    lab.start_all();
    // Short outages (repaired by NACK), one longer than the peer timeout (1.5 s: the peers are gone, then
    // back), and carrier loss on one backup's port.
    const std::vector<std::pair<std::chrono::milliseconds, bool>> outages = {
        {300ms, false}, {2000ms, false}, {150ms, false}, {800ms, true}, {400ms, false}};
    {
        Process creates(lab.primary().ns->exec(
            {kCtInject, "--count", std::to_string(kCreated), "--nat", "--rate", "20000"}));
        flap(lab.sw(), outages);
        ASSERT_TRUE(creates.wait(60s).has_value());
    }
    {
        Process deletes(lab.primary().ns->exec(
            {kCtInject, "--count", std::to_string(kDeleted), "--delete", "--nat", "--rate", "10000"}));
        flap(lab.sw(), outages);
        ASSERT_TRUE(deletes.wait(60s).has_value());
    }
    lab.expect_converged(120s);
    // The outages were felt and repaired: retransmissions, and bulks for what the resend queue no longer
    // held or for the peers that were gone.
    EXPECT_GT(lab.primary().stat("replication.retransmits") + lab.primary().stat("replication.bulks_served"),
              0);
    EXPECT_EQ(lab.backup(1).stat("replication.rx_malformed"), 0);
}

TEST(Faults, PrimaryKilledAtARandomPointOfALoadAndRestartedLeavesNoStaleEntry) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    constexpr int kFlows = 60000;
    const unsigned seed = std::random_device{}();
    SCOPED_TRACE(fmt::format("seed {}", seed));
    std::mt19937 rng(seed);
    const int kill_at = std::uniform_int_distribution<int>(2000, 40000)(rng);
    ReplicationLab lab(Kind::kMcast, 1, kFlows);
    lab.start_all();
    // Entries the backups hold from the first run that the kernel no longer has when the daemon comes back:
    // the backups must drop them (the new epoch's table replaces the old one).
    must(lab.primary().ns->exec({kCtInject, "--count", "5000", "--first", "200000", "--nat"}));
    ASSERT_TRUE(lab.wait_external(1, 5000, 30s));
    Process creates(
        lab.primary().ns->exec({kCtInject, "--count", std::to_string(kFlows), "--nat", "--rate", "20000"}));
    ASSERT_TRUE(lab.wait_external(1, 5000 + kill_at, 30s));
    ASSERT_EQ(::kill(lab.primary().daemon->pid(), SIGKILL), 0);
    lab.primary().daemon->wait(5s);
    must(lab.primary().ns->exec({kCtInject, "--count", "5000", "--first", "200000", "--delete", "--nat"}));
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 1500)(rng)));
    lab.primary().start();
    ASSERT_TRUE(creates.wait(60s).has_value());
    lab.expect_converged(120s);
    const auto log = read_file(lab.log_file(1));
    EXPECT_NE(log.find("event=bulk_complete node=1"), std::string::npos);
    std::cerr << "primary killed after " << kill_at << " entries of the load (seed " << seed << ")\n";
}

TEST(Faults, BackupKilledDuringALoadAndAgainDuringItsBulkEndsWhole) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    constexpr int kFlows = 80000;
    const unsigned seed = std::random_device{}();
    SCOPED_TRACE(fmt::format("seed {}", seed));
    std::mt19937 rng(seed);
    const int kill_at = std::uniform_int_distribution<int>(2000, 50000)(rng);
    const auto down_for = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 2000)(rng));
    const auto bulk_kill_after = std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 400)(rng));
    ReplicationLab lab(Kind::kMcast, 1, kFlows);
    lab.start_all();
    Process creates(
        lab.primary().ns->exec({kCtInject, "--count", std::to_string(kFlows), "--nat", "--rate", "20000"}));
    ASSERT_TRUE(lab.wait_external(1, kill_at, 30s));
    ASSERT_EQ(::kill(lab.backup(1).daemon->pid(), SIGKILL), 0);
    lab.backup(1).daemon->wait(5s);
    ASSERT_TRUE(lab.backup(1).daemon->signalled());
    std::this_thread::sleep_for(down_for);
    const auto bulks_before = lab.primary().stat("replication.bulks_served");
    lab.backup(1).start();
    // Killed again while its bulk transfer is under way (the load has gone on meanwhile, so there is a
    // table to send): the primary must not be left sending into the void, and the next start asks again.
    ASSERT_TRUE(wait_until([&] { return !lab.backup(1).status().is_null(); }, 30s, 20ms));
    std::this_thread::sleep_for(bulk_kill_after);
    ASSERT_EQ(::kill(lab.backup(1).daemon->pid(), SIGKILL), 0);
    lab.backup(1).daemon->wait(5s);
    ASSERT_TRUE(lab.backup(1).daemon->signalled());
    lab.backup(1).start();
    ASSERT_TRUE(creates.wait(60s).has_value());
    lab.expect_converged(120s);
    // The last start was served a whole table; the other backup never stopped and lost nothing either.
    EXPECT_GT(lab.primary().stat("replication.bulks_served"), bulks_before);
    EXPECT_EQ(lab.backup(2).stat("replication.rx_malformed"), 0);
    std::cerr << "backup killed after " << kill_at << " entries, down " << down_for.count()
              << " ms, killed again " << bulk_kill_after.count() << " ms into its restart (seed " << seed
              << ")\n";
}

}  // namespace
}  // namespace ctsync::test
