// SPDX-License-Identifier: GPL-2.0-or-later
// A replication lab of real ctsyncd processes in network namespaces: a primary and two backups whose sync
// interfaces sit on one or two bridges of a "switch" namespace, over transport-mcast, transport-tcp or
// transport-tipc (the latter only where the kernel has TIPC: inside the test VM, tests/vm), and the checker
// every replication test ends with: each backup's external cache equals the primary's kernel table exactly
// (every identity, every field but the timer). Used by replication_netns_test.cpp on the host and by
// replication_tipc_vm_test.cpp inside the VM.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/identities.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {

inline const std::string kCtInject = CTSYNC_CT_INJECT;

inline void must(const std::vector<std::string>& argv) {
    auto r = run(argv, std::chrono::seconds(30));
    if (r.exit_code != 0) {
        std::string line;
        for (const auto& a : argv) {
            line += (line.empty() ? "" : " ") + a;
        }
        throw std::runtime_error("command failed: " + line + ": " + r.err + r.out);
    }
}

// Flows keyed by "src sport", without what differs between nodes by design (the timer: weak policy).
inline std::map<std::string, nlohmann::json> comparable(const nlohmann::json& dump) {
    std::map<std::string, nlohmann::json> out;
    for (auto f : dump["flows"]) {
        f.erase("timeout");
        out[flow_identity(f)] = f;
    }
    return out;
}

inline nlohmann::json dump_cache(const std::filesystem::path& config, bool external) {
    std::vector<std::string> argv = {kCtsyncctl, "-C",   config.string(), "--timeout",
                                     "120000",   "dump", "--json"};
    if (external) {
        argv.push_back("--external");
    }
    auto r = run(argv, std::chrono::seconds(130));
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

enum class Kind { kMcast, kTcp, kTipc };

inline std::string to_string(Kind kind) {
    return kind == Kind::kMcast ? "mcast" : kind == Kind::kTcp ? "tcp" : "tipc";
}

class ReplicationLab {
  public:
    // Three nodes (ids 1, 2, 3; node 1 starts as primary) with `links` sync links each. TIPC: one
    // transport-tipc slot whatever `links` says (TIPC itself runs its links over every bearer), each node a
    // TIPC node named after its namespace with a bearer on every sync interface. `flows`: what load()
    // injects and expect_converged() asks for at least.
    // bulk_rate: the nodes' replication.bulk_rate (entries per second of a bulk transfer).
    ReplicationLab(Kind kind, int links, int flows = 100000, int bulk_rate = 50000)
        : kind_(kind), flows_(flows), sw_("rsw") {
        for (int l = 0; l < links; ++l) {
            must(sw_.exec(
                {"ip", "link", "add", fmt::format("br{}", l), "type", "bridge", "mcast_snooping", "0"}));
            must(sw_.exec({"ip", "link", "set", fmt::format("br{}", l), "up"}));
        }
        for (int i = 0; i < 3; ++i) {
            Node node;
            node.ns = std::make_unique<NetNs>(kTags[i]);
            for (int l = 0; l < links; ++l) {
                const std::string port = fmt::format("s{}n{}", l, i + 1);
                const std::string dev = fmt::format("sync{}", l);
                must({"ip", "link", "add", dev, "netns", node.ns->name(), "type", "veth", "peer", port,
                      "netns", sw_.name()});
                must(sw_.exec({"ip", "link", "set", port, "master", fmt::format("br{}", l), "up"}));
                must(node.ns->exec({"ip", "addr", "add", address(l, i) + "/24", "dev", dev}));
                must(node.ns->exec({"ip", "link", "set", dev, "up"}));
            }
            if (kind == Kind::kTipc) {
                must(node.ns->exec({"tipc", "node", "set", "identity", kTags[i]}));
                for (int l = 0; l < links; ++l) {
                    must(node.ns->exec(
                        {"tipc", "bearer", "enable", "media", "eth", "dev", fmt::format("sync{}", l)}));
                }
            }
            auto config = instance_config(dir_.path(), i + 1);
            const std::string tag = kTags[i];
            config["daemon"]["lock_file"] = (dir_ / (tag + ".lock")).string();
            config["daemon"]["control_socket"] = (dir_ / (tag + ".sock")).string();
            config["daemon"]["log"] = {{"level", "info"}, {"file", (dir_ / (tag + ".log")).string()}};
            config["source"] = {{"plugin", "source-ctnetlink"},
                                {"config", {{"expectations", false}, {"event_buffer_max_bytes", 268435456}}}};
            nlohmann::json transports = nlohmann::json::array();
            for (int l = 0; l < (kind == Kind::kTipc ? 1 : links); ++l) {
                nlohmann::json t;
                if (kind == Kind::kMcast) {
                    t = {{"plugin", "transport-mcast"},
                         {"name", fmt::format("link{}", l)},
                         {"config", {{"interface", fmt::format("sync{}", l)}, {"group", "239.255.0.1"}}}};
                } else if (kind == Kind::kTcp) {
                    nlohmann::json peers = nlohmann::json::array();
                    for (int p = 0; p < 3; ++p) {
                        if (p != i) {
                            peers.push_back(address(l, p) + ":3782");
                        }
                    }
                    t = {{"plugin", "transport-tcp"},
                         {"name", fmt::format("link{}", l)},
                         {"config", {{"listen", address(l, i) + ":3782"}, {"peers", peers}}}};
                } else {
                    t = {
                        {"plugin", "transport-tipc"}, {"name", "tipc"}, {"config", nlohmann::json::object()}};
                }
                transports.push_back(t);
            }
            config["transports"] = transports;
            config["replication"] = {{"initial_role", i == 0 ? "primary" : "backup"},
                                     {"alive_interval_ms", 100},
                                     {"peer_timeout_ms", 1500},
                                     {"link_silence_ms", 600},
                                     {"bulk_rate", bulk_rate}};
            add_sync_key(config, dir_.path());
            node.config = write_config(dir_.path(), config, tag + ".json");
            nodes_.push_back(std::move(node));
        }
    }
    ReplicationLab(const ReplicationLab&) = delete;
    ReplicationLab& operator=(const ReplicationLab&) = delete;
    ~ReplicationLab() {
        if (::testing::Test::HasFailure()) {
            for (const char* tag : kTags) {
                auto log = read_file(dir_ / (std::string(tag) + ".log"));
                std::cerr << "---- " << tag << " log (tail) ----\n"
                          << log.substr(log.size() > 6000 ? log.size() - 6000 : 0) << "\n";
            }
        }
    }
    static std::string address(int link, int node) {
        return fmt::format("{}.{}", link == 0 ? "198.51.100" : "203.0.113", node + 1);
    }
    static constexpr const char* kTags[] = {"rp", "rb1", "rb2"};
    std::filesystem::path log_file(int node) const { return dir_ / (std::string(kTags[node]) + ".log"); }
    Kind kind() const { return kind_; }
    int flows() const { return flows_; }
    // Waits (bounded) until a backup's external cache holds at least `flows` flows.
    bool wait_external(int b, int flows, std::chrono::milliseconds limit) {
        return wait_until(
            [&] {
                auto s = backup(b).status();
                return !s.is_null() && s["tables"]["external_flows"].get<int>() >= flows;
            },
            limit, std::chrono::milliseconds(20));
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
    // TIPC: waits (bounded) until every node has a link up to both others (about 1 s after the bearers).
    bool wait_tipc_links(std::chrono::milliseconds limit) {
        return wait_until(
            [&] {
                for (auto& n : nodes_) {
                    auto r = run(n.ns->exec({"tipc", "link", "list"}), std::chrono::seconds(10));
                    std::size_t up = 0;
                    for (std::size_t at = r.out.find(": up"); at != std::string::npos;
                         at = r.out.find(": up", at + 1)) {
                        ++up;
                    }
                    if (r.exit_code != 0 || up < 2) {  // the broadcast link is listed too, without ": up"
                        return false;
                    }
                }
                return true;
            },
            limit, std::chrono::milliseconds(100));
    }
    void start_all() {
        if (kind_ == Kind::kTipc) {
            ASSERT_TRUE(wait_tipc_links(std::chrono::seconds(30)))
                << run(primary().ns->exec({"tipc", "link", "list"})).out;
        }
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
            std::chrono::seconds(60), std::chrono::milliseconds(100)));
    }
    // Injects flows() NATed entries into the primary's kernel table (ct-inject, by ctnetlink).
    void load() {
        ASSERT_EQ(run(primary().ns->exec({kCtInject, "--count", std::to_string(flows_), "--nat"}),
                      std::chrono::seconds(120))
                      .exit_code,
                  0);
    }
    // Random loss on every node's input from the sync links (nftables numgen): the inet input hook for the IP
    // transports, the netdev ingress hook for TIPC (not IP: its own ethertype).
    void add_loss(int percent) {
        for (auto& n : nodes_) {
            if (kind_ == Kind::kTipc) {
                must(n.ns->exec(
                    {"nft",
                     fmt::format("add table netdev ctsync_loss; add chain netdev ctsync_loss in {{ type "
                                 "filter hook ingress device \"sync0\" priority 0; }}; add rule netdev "
                                 "ctsync_loss in ether type 0x88ca numgen random mod 100 < {} drop",
                                 percent)}));
            } else {
                must(n.ns->exec(
                    {"nft", fmt::format("add table inet ctsync_loss; add chain inet ctsync_loss in {{ type "
                                        "filter hook input priority 0; }}; add rule inet ctsync_loss in "
                                        "iifname \"sync*\" numgen random mod 100 < {} drop",
                                        percent)}));
            }
        }
    }
    // Waits until both backups hold exactly the primary's kernel table; reports what differs otherwise.
    void expect_converged(std::chrono::seconds limit) {
        const auto kernel = kernel_identities(*primary().ns);
        ASSERT_GE(kernel.size(), static_cast<std::size_t>(flows_));
        for (int b : {1, 2}) {
            ASSERT_TRUE(wait_until(
                [&] {
                    auto s = backup(b).status();
                    return !s.is_null() && s["tables"]["external_flows"] == kernel.size();
                },
                limit, std::chrono::milliseconds(200)))
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
            // The gauge says what the cache holds (it was once set only by import and flush).
            EXPECT_EQ(backup(b).stat("external.flows"), static_cast<std::int64_t>(kernel.size()))
                << "backup " << b;
        }
    }

  private:
    Kind kind_;
    int flows_;
    TempDir dir_;
    NetNs sw_;
    std::vector<Node> nodes_;
    std::unique_ptr<NetNs> attacker_;
};

}  // namespace ctsync::test
