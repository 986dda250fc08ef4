// SPDX-License-Identifier: GPL-2.0-or-later
// Replication between real ctsyncd processes in network namespaces: a primary and two backups on a sync
// switch (two bridges: two links), the primary's kernel table filled with 100k NATed entries by ctnetlink
// while everything runs; afterwards both backups' external caches must equal the primary's kernel table
// exactly (every identity, every field but the timer). Over transport-mcast and transport-tcp; with 5 % and
// 20 % random loss on the sync link (nftables numgen); with a backup killed by SIGKILL in the middle of the
// load and restarted; with the primary link silenced during the load. The lab: replication_lab.hpp.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "core/wire/seal.hpp"
#include "tests/core/replication/replication_lab.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
const std::string kLabPeer = CTSYNC_LAB_PEER;
namespace wire = core::wire;
constexpr int kFlows = 100000;

class ReplicationTransports : public ::testing::TestWithParam<Kind> {};

TEST_P(ReplicationTransports, ThreeNodesHoldThePrimaryTableExactly) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    ReplicationLab lab(GetParam(), 1, kFlows);
    lab.start_all();
    lab.load();
    lab.expect_converged(90s);
    EXPECT_EQ(lab.backup(1).stat("replication.rx_dropped_bad_tag"), 0);
    EXPECT_EQ(lab.backup(1).stat("replication.rx_malformed"), 0);
}

INSTANTIATE_TEST_SUITE_P(Kinds, ReplicationTransports, ::testing::Values(Kind::kMcast, Kind::kTcp),
                         [](const ::testing::TestParamInfo<Kind>& p) { return to_string(p.param); });

class ReplicationLoss : public ::testing::TestWithParam<int> {};

TEST_P(ReplicationLoss, ConvergesExactlyAndCountsRetransmissions) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    ReplicationLab lab(Kind::kMcast, 1);
    lab.add_loss(GetParam());
    lab.start_all();
    lab.load();
    lab.expect_converged(120s);
    EXPECT_GT(lab.primary().stat("replication.retransmits"), 0);
    EXPECT_GT(lab.backup(1).stat("replication.nacks_sent") + lab.backup(2).stat("replication.nacks_sent"), 0);
}

INSTANTIATE_TEST_SUITE_P(Percent, ReplicationLoss, ::testing::Values(5, 20),
                         [](const ::testing::TestParamInfo<int>& p) {
                             return fmt::format("loss_{}pct", p.param);
                         });

TEST(Replication, BackupKilledMidLoadRecoversByBulkWithProgress) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    // A bulk rate that makes the restarted backup's bulk last seconds (the table is 100k): the sender
    // reports progress once a second, so a bulk shorter than that has none to report.
    ReplicationLab lab(Kind::kMcast, 1, kFlows, 20000);
    lab.start_all();
    Process inject(lab.primary().ns->exec({kCtInject, "--count", std::to_string(kFlows), "--nat"}));
    ASSERT_TRUE(lab.wait_external(1, 5001, 30s));  // the load is under way
    ASSERT_EQ(::kill(lab.backup(1).daemon->pid(), SIGKILL), 0);
    lab.backup(1).daemon->wait(5s);
    ASSERT_TRUE(inject.wait(60s).has_value());
    // The other backup holding the whole load means the primary's cache does (after an overrun's resync).
    ASSERT_TRUE(lab.wait_external(2, kFlows, 60s));
    lab.backup(1).start();
    lab.expect_converged(120s);
    auto r = lab.backup(1).status()["replication"];
    ASSERT_EQ(r["peers"].size(), 2u) << r.dump();
    EXPECT_TRUE(r["complete"].get<bool>()) << r.dump();
    // The restarted backup received the whole table by bulk and said how far it was on the way.
    EXPECT_GE(lab.backup(1).stat("replication.bulks_completed"), 1);
    EXPECT_GE(lab.primary().stat("replication.bulks_served"), 1);
    const auto log = read_file(lab.backup(1).config.parent_path() / "rb1.log");
    EXPECT_NE(log.find("event=bulk_progress node=1"), std::string::npos);
    EXPECT_NE(log.find("event=bulk_complete node=1"), std::string::npos);
}

TEST(Replication, BackupRejoiningAfterThePrimaryDiedTakesItsTableFromTheOtherBackup) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    ReplicationLab lab(Kind::kMcast, 1);
    lab.start_all();
    lab.load();
    lab.expect_converged(90s);
    // The primary's daemon dies (its kernel keeps the table), then a backup restarts: nobody but the other
    // backup has the table now (the SNE paper's scenario B).
    ASSERT_EQ(::kill(lab.primary().daemon->pid(), SIGKILL), 0);
    lab.primary().daemon->wait(5s);
    ASSERT_EQ(::kill(lab.backup(1).daemon->pid(), SIGKILL), 0);
    lab.backup(1).daemon->wait(5s);
    lab.backup(1).start();
    const auto kernel = kernel_identities(*lab.primary().ns);
    ASSERT_TRUE(wait_until(
        [&] {
            auto s = lab.backup(1).status();
            return !s.is_null() && s["tables"]["external_flows"] == kernel.size() &&
                   s["replication"]["complete"].get<bool>();
        },
        60s, 200ms))
        << lab.backup(1).status().dump();
    const auto relayed = comparable(dump_cache(lab.backup(1).config, true));
    const auto held = comparable(dump_cache(lab.backup(2).config, true));
    EXPECT_EQ(relayed.size(), kernel.size());
    EXPECT_TRUE(relayed == held) << "the relayed table differs from the one the other backup holds";
    for (const auto& identity : kernel) {
        ASSERT_EQ(relayed.count(identity), 1u) << identity;
    }
    EXPECT_EQ(lab.backup(1).stat("replication.relays_completed"), 1);
    const auto log = read_file(lab.backup(1).config.parent_path() / "rb1.log");
    EXPECT_NE(log.find("event=relay_complete origin=1 from=3"), std::string::npos);
}

TEST(Replication, SilencedPrimaryLinkFailsOverAndLosesNothing) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    ReplicationLab lab(Kind::kMcast, 2);
    lab.start_all();
    Process inject(lab.primary().ns->exec({kCtInject, "--count", std::to_string(kFlows), "--nat"}));
    ASSERT_TRUE(lab.wait_external(1, 5001, 30s));  // the load is under way
    // Silence, not carrier loss: the switch drops everything on the first link; every port keeps its carrier.
    must(lab.sw().exec({"nft",
                        "add table bridge ctsync_cut; add chain bridge ctsync_cut cutfw { type filter hook "
                        "forward priority 0; }; add rule bridge ctsync_cut cutfw iifname \"s0n*\" drop"}));
    const auto cut = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until([&] { return lab.primary().stat("replication.link_failovers") >= 1; }, 10s, 20ms));
    const auto moved_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - cut).count();
    ASSERT_TRUE(inject.wait(60s).has_value());
    lab.expect_converged(120s);
    // Within the configured silence (600 ms) plus the ALIVE period and the polling above.
    EXPECT_LE(moved_ms, 600 + 100 + 400) << "link failover took " << moved_ms << " ms";
    auto links = lab.primary().status()["replication"]["links"];
    EXPECT_FALSE(links[0]["active"].get<bool>()) << links.dump();
    EXPECT_TRUE(links[1]["active"].get<bool>()) << links.dump();
    std::cerr << "link failover after " << moved_ms << " ms of silence\n";
}

TEST(Replication, ForgedReplayedTruncatedGarbledDatagramsChangeNothing) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    ReplicationLab lab(Kind::kMcast, 1);
    NetNs& attacker = lab.add_attacker();
    lab.start_all();
    ASSERT_EQ(run(lab.primary().ns->exec({kCtInject, "--count", "1000", "--nat"}), 30s).exit_code, 0);
    for (int b : {1, 2}) {
        ASSERT_TRUE(lab.wait_external(b, 1000, 30s));
    }
    // The attacker records one of the primary's data datagrams off the wire.
    const auto genuine_file = lab.dir() / "genuine.bin";
    Process capture(attacker.exec(
        {kLabPeer, "mcast-capture", "239.255.0.1", "3781", "atk0", genuine_file.string(), "--type", "1"}));
    ASSERT_TRUE(wait_until([&] { return capture.running(); }, 5s, 10ms));
    std::this_thread::sleep_for(300ms);  // (the join must precede the datagram; nothing else to wait on)
    ASSERT_EQ(
        run(lab.primary().ns->exec({kCtInject, "--count", "10", "--first", "5000", "--nat"}), 30s).exit_code,
        0);
    ASSERT_EQ(capture.wait(15s), std::optional<int>(0)) << capture.err();
    const std::string genuine = read_file(genuine_file);
    ASSERT_GT(genuine.size(), wire::kHeaderSize + wire::kTagBytes);
    for (int b : {1, 2}) {
        ASSERT_TRUE(lab.wait_external(b, 1010, 30s));
    }

    // A flow record sealed with a key the cluster does not have, claiming to come from the primary.
    sdk::FlowState forged_flow;
    forged_flow.original.family = forged_flow.reply.family = sdk::Family::kIpv4;
    forged_flow.original.protocol = forged_flow.reply.protocol = sdk::l4::kTcp;
    forged_flow.original.src.bytes = {203, 0, 113, 77};
    forged_flow.original.dst.bytes = {203, 0, 113, 78};
    forged_flow.original.src_port = 4444;
    forged_flow.original.dst_port = 22;
    forged_flow.reply = forged_flow.original;
    std::swap(forged_flow.reply.src, forged_flow.reply.dst);
    std::swap(forged_flow.reply.src_port, forged_flow.reply.dst_port);
    std::vector<std::byte> payload;
    wire::Writer w(payload);
    w.u64(1u << 30);
    wire::encode_record(w, wire::FlowFull{4242, forged_flow});
    std::array<std::uint8_t, wire::kKeyBytes> wrong_key{};
    wrong_key.fill(0x42);
    wire::Header h;
    h.node_id = 1;
    h.epoch = std::numeric_limits<std::uint64_t>::max() / 2;
    h.packet = 1;
    const auto forged = wire::Keyring({{1, wrong_key}}, 1, false).seal(h, payload);
    std::string garbled = genuine;
    garbled[wire::kHeaderSize + 9] ^= 0x20;
    const std::pair<std::string, std::string> attacks[] = {
        {"forged", std::string(reinterpret_cast<const char*>(forged.data()), forged.size())},
        {"replayed", genuine},
        {"truncated", genuine.substr(0, genuine.size() - 5)},
        {"garbled", garbled},
    };
    auto counters = [&](int b) {
        auto stats = ctl_json(lab.backup(b).config, "stats");
        return std::array<std::int64_t, 3>{metric(stats, "replication.rx_dropped_bad_tag"),
                                           metric(stats, "replication.rx_replayed"),
                                           metric(stats, "replication.rx_dropped_bad_length")};
    };
    std::map<int, std::array<std::int64_t, 3>> before;
    std::map<int, std::size_t> flows_before;
    for (int b : {1, 2}) {
        before[b] = counters(b);
        flows_before[b] = lab.backup(b).status()["tables"]["external_flows"].get<std::size_t>();
    }
    for (const auto& [name, bytes] : attacks) {
        const auto file = lab.dir() / (name + ".bin");
        write_file(file, bytes);
        ASSERT_EQ(run(attacker.exec({kLabPeer, "mcast-send", "239.255.0.1", "3781", "atk0", file.string()}))
                      .exit_code,
                  0)
            << name;
    }
    for (int b : {1, 2}) {
        // Why each was dropped: forged and garbled fail authentication, the replay is a known packet number,
        // the truncated one no longer matches its length field.
        ASSERT_TRUE(wait_until(
            [&] {
                auto now = counters(b);
                return now[0] - before[b][0] >= 2 && now[1] - before[b][1] >= 1 && now[2] - before[b][2] >= 1;
            },
            10s, 100ms))
            << "backup " << b << ": " << ctl_json(lab.backup(b).config, "stats").dump();
        EXPECT_EQ(lab.backup(b).status()["tables"]["external_flows"].get<std::size_t>(), flows_before[b]);
        const auto external = comparable(dump_cache(lab.backup(b).config, true));
        EXPECT_EQ(external.count("203.0.113.77 4444"), 0u) << "backup " << b << " took the forged flow";
    }
}

}  // namespace
}  // namespace ctsync::test
