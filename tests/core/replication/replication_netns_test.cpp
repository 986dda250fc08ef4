// SPDX-License-Identifier: GPL-2.0-or-later
// Replication between real ctsyncd processes in network namespaces: a primary and two backups on a sync
// switch (two bridges: two links), the primary's kernel table filled with 100k NATed entries by ctnetlink
// while everything runs; afterwards both backups' external caches must equal the primary's kernel table
// exactly (every identity, every field but the timer). Over transport-mcast and transport-tcp; with 5 % and
// 20 % random loss on the sync link (nftables numgen); with a backup killed by SIGKILL in the middle of the
// load and restarted; with the primary link silenced during the load.
#include <gtest/gtest.h>
#include <signal.h>

#include <set>
#include <thread>

#include "core/wire/seal.hpp"
#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/identities.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
const std::string kCtInject = CTSYNC_CT_INJECT;
const std::string kLabPeer = CTSYNC_LAB_PEER;
namespace wire = core::wire;
constexpr int kFlows = 100000;

void must(const std::vector<std::string>& argv) {
    auto r = run(argv, 30s);
    if (r.exit_code != 0) {
        throw std::runtime_error("command failed: " + r.err);
    }
}

// Flows keyed by "src sport", without what differs between nodes by design (the timer: weak policy).
std::map<std::string, nlohmann::json> comparable(const nlohmann::json& dump) {
    std::map<std::string, nlohmann::json> out;
    for (auto f : dump["flows"]) {
        f.erase("timeout");
        out[flow_identity(f)] = f;
    }
    return out;
}

nlohmann::json dump_cache(const std::filesystem::path& config, bool external) {
    std::vector<std::string> argv = {kCtsyncctl, "-C",   config.string(), "--timeout",
                                     "120000",   "dump", "--json"};
    if (external) {
        argv.push_back("--external");
    }
    auto r = run(argv, 130s);
    return r.exit_code == 0 ? nlohmann::json::parse(r.out, nullptr, false) : nlohmann::json();
}

struct Node {
    std::unique_ptr<NetNs> ns;
    std::filesystem::path config;
    std::unique_ptr<Process> daemon;
    void start() { daemon = std::make_unique<Process>(ns->exec({kCtsyncd, "-C", config.string()})); }
    nlohmann::json status() const { return ctl_json(config, "status", {}, 10000); }
    std::int64_t stat(const std::string& name) const { return metric(ctl_json(config, "stats"), name); }
};

enum class Kind { kMcast, kTcp };

class ReplicationLab {
  public:
    ReplicationLab(Kind kind, int links) : sw_("rsw") {
        for (int l = 0; l < links; ++l) {
            must(sw_.exec(
                {"ip", "link", "add", fmt::format("br{}", l), "type", "bridge", "mcast_snooping", "0"}));
            must(sw_.exec({"ip", "link", "set", fmt::format("br{}", l), "up"}));
        }
        const char* names[] = {"rp", "rb1", "rb2"};
        for (int i = 0; i < 3; ++i) {
            Node node;
            node.ns = std::make_unique<NetNs>(names[i]);
            for (int l = 0; l < links; ++l) {
                const std::string port = fmt::format("s{}n{}", l, i + 1);
                const std::string dev = fmt::format("sync{}", l);
                must({"ip", "link", "add", dev, "netns", node.ns->name(), "type", "veth", "peer", port,
                      "netns", sw_.name()});
                must(sw_.exec({"ip", "link", "set", port, "master", fmt::format("br{}", l), "up"}));
                must(node.ns->exec({"ip", "addr", "add", address(l, i) + "/24", "dev", dev}));
                must(node.ns->exec({"ip", "link", "set", dev, "up"}));
            }
            auto config = instance_config(dir_.path(), i + 1);
            const std::string tag = names[i];
            config["daemon"]["lock_file"] = (dir_ / (tag + ".lock")).string();
            config["daemon"]["control_socket"] = (dir_ / (tag + ".sock")).string();
            config["daemon"]["log"] = {{"level", "info"}, {"file", (dir_ / (tag + ".log")).string()}};
            config["source"] = {{"plugin", "source-ctnetlink"},
                                {"config", {{"expectations", false}, {"event_buffer_max_bytes", 268435456}}}};
            nlohmann::json transports = nlohmann::json::array();
            for (int l = 0; l < links; ++l) {
                nlohmann::json t;
                if (kind == Kind::kMcast) {
                    t = {{"plugin", "transport-mcast"},
                         {"name", fmt::format("link{}", l)},
                         {"config", {{"interface", fmt::format("sync{}", l)}, {"group", "239.255.0.1"}}}};
                } else {
                    nlohmann::json peers = nlohmann::json::array();
                    for (int p = 0; p < 3; ++p) {
                        if (p != i) {
                            peers.push_back(address(l, p) + ":3782");
                        }
                    }
                    t = {{"plugin", "transport-tcp"},
                         {"name", fmt::format("link{}", l)},
                         {"config", {{"listen", address(l, i) + ":3782"}, {"peers", peers}}}};
                }
                transports.push_back(t);
            }
            config["transports"] = transports;
            config["replication"] = {{"initial_role", i == 0 ? "primary" : "backup"},
                                     {"alive_interval_ms", 100},
                                     {"peer_timeout_ms", 1500},
                                     {"link_silence_ms", 600},
                                     {"bulk_rate", 50000}};
            add_sync_key(config, dir_.path());
            node.config = write_config(dir_.path(), config, tag + ".json");
            nodes_.push_back(std::move(node));
        }
    }
    ~ReplicationLab() {
        if (::testing::Test::HasFailure()) {
            for (const char* tag : {"rp", "rb1", "rb2"}) {
                auto log = read_file(dir_ / (std::string(tag) + ".log"));
                std::cerr << "---- " << tag << " log (tail) ----\n"
                          << log.substr(log.size() > 6000 ? log.size() - 6000 : 0) << "\n";
            }
        }
    }
    static std::string address(int link, int node) {
        return fmt::format("{}.{}", link == 0 ? "198.51.100" : "203.0.113", node + 1);
    }
    // Waits (bounded) until a backup's external cache holds at least `flows` flows.
    bool wait_external(int b, int flows, std::chrono::milliseconds limit) {
        return wait_until(
            [&] {
                auto s = backup(b).status();
                return !s.is_null() && s["tables"]["external_flows"].get<int>() >= flows;
            },
            limit, 20ms);
    }
    // A namespace on the first link's switch that is no node: it sees the group's traffic and can send to it.
    NetNs& add_attacker() {
        attacker_ = std::make_unique<NetNs>("ratk");
        must({"ip", "link", "add", "atk0", "netns", attacker_->name(), "type", "veth", "peer", "s0n9",
              "netns", sw_.name()});
        must(sw_.exec({"ip", "link", "set", "s0n9", "master", "br0", "up"}));
        must(attacker_->exec({"ip", "addr", "add", "198.51.100.9/24", "dev", "atk0"}));
        must(attacker_->exec({"ip", "link", "set", "atk0", "up"}));
        return *attacker_;
    }
    const std::filesystem::path& dir() const { return dir_.path(); }
    Node& primary() { return nodes_[0]; }
    Node& backup(int i) { return nodes_[i]; }
    const NetNs& sw() const { return sw_; }
    void start_all() {
        for (auto& n : nodes_) {
            n.start();
        }
        ASSERT_TRUE(wait_until(
            [&] {
                for (auto& n : nodes_) {
                    if (n.status().is_null()) {
                        return false;
                    }
                }
                return true;
            },
            20s, 100ms));
    }
    // Random loss on every node's input from the sync links, as the issue asks: nftables numgen.
    void add_loss(int percent) {
        for (auto& n : nodes_) {
            must(n.ns->exec(
                {"nft", fmt::format("add table inet ctsync_loss; add chain inet ctsync_loss in {{ type "
                                    "filter hook input priority 0; }}; add rule inet ctsync_loss in "
                                    "iifname \"sync*\" numgen random mod 100 < {} drop",
                                    percent)}));
        }
    }
    // Waits until both backups hold exactly the primary's kernel table; reports what differs otherwise.
    void expect_converged(std::chrono::seconds limit) {
        const auto kernel = kernel_identities(*primary().ns);
        ASSERT_GE(kernel.size(), static_cast<std::size_t>(kFlows));
        for (int b : {1, 2}) {
            ASSERT_TRUE(wait_until(
                [&] {
                    auto s = backup(b).status();
                    return !s.is_null() && s["tables"]["external_flows"] == kernel.size();
                },
                limit, 200ms))
                << "backup " << b << ": " << backup(b).status().dump()
                << "\nprimary: " << primary().status().dump() << "\nkernel: " << kernel.size();
        }
        const auto table = comparable(dump_cache(primary().config, false));
        ASSERT_EQ(table.size(), kernel.size());
        for (const auto& [identity, flow] : table) {
            ASSERT_EQ(kernel.count(identity), 1u) << identity;
        }
        for (int b : {1, 2}) {
            const auto external = comparable(dump_cache(backup(b).config, true));
            ASSERT_EQ(external.size(), kernel.size()) << "backup " << b;
            std::size_t differ = 0;
            for (const auto& [identity, flow] : table) {
                auto it = external.find(identity);
                if (it == external.end() || it->second != flow) {
                    if (++differ <= 3) {
                        ADD_FAILURE() << "backup " << b << " differs on " << identity << ": "
                                      << (it == external.end() ? std::string("missing") : it->second.dump())
                                      << " vs " << flow.dump();
                    }
                }
            }
            EXPECT_EQ(differ, 0u) << "backup " << b;
        }
    }

  private:
    TempDir dir_;
    NetNs sw_;
    std::vector<Node> nodes_;
    std::unique_ptr<NetNs> attacker_;
};

void load(ReplicationLab& lab) {
    ASSERT_EQ(
        run(lab.primary().ns->exec({kCtInject, "--count", std::to_string(kFlows), "--nat"}), 60s).exit_code,
        0);
}

class ReplicationTransports : public ::testing::TestWithParam<Kind> {};

TEST_P(ReplicationTransports, ThreeNodesHoldThePrimaryTableExactly) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    ReplicationLab lab(GetParam(), 1);
    lab.start_all();
    load(lab);
    lab.expect_converged(90s);
    EXPECT_EQ(lab.backup(1).stat("replication.rx_dropped_bad_tag"), 0);
    EXPECT_EQ(lab.backup(1).stat("replication.rx_malformed"), 0);
}

INSTANTIATE_TEST_SUITE_P(Kinds, ReplicationTransports, ::testing::Values(Kind::kMcast, Kind::kTcp),
                         [](const ::testing::TestParamInfo<Kind>& p) {
                             return p.param == Kind::kMcast ? std::string("mcast") : std::string("tcp");
                         });

class ReplicationLoss : public ::testing::TestWithParam<int> {};

TEST_P(ReplicationLoss, ConvergesExactlyAndCountsRetransmissions) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    ReplicationLab lab(Kind::kMcast, 1);
    lab.add_loss(GetParam());
    lab.start_all();
    load(lab);
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
    ReplicationLab lab(Kind::kMcast, 1);
    lab.start_all();
    Process inject(lab.primary().ns->exec({kCtInject, "--count", std::to_string(kFlows), "--nat"}));
    ASSERT_TRUE(lab.wait_external(1, 5001, 30s));  // the load is under way
    ASSERT_EQ(::kill(lab.backup(1).daemon->pid(), SIGKILL), 0);
    lab.backup(1).daemon->wait(5s);
    ASSERT_TRUE(inject.wait(60s).has_value());
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
    load(lab);
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
