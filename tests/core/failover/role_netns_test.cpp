// SPDX-License-Identifier: GPL-2.0-or-later
// The role state machine with real ctsyncd processes and real kernels: two nodes in namespaces joined by a
// sync veth, the primary's kernel filled with NATed entries by ctnetlink.
//   - warm standby: the backup's own kernel holds the primary's table before any role change (and, as the
//     control, a cold standby's does not);
//   - promotion: commit, flush of the stale entries the old primary never had, start sending, resync — in
//     that order, timed, and the demoted old primary then receives the new primary's table;
//   - a node that never held a primary's table flushes nothing when promoted (a ctsyncd restarted on a
//     working primary must not empty its kernel).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <thread>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/identities.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
const std::string kCtInject = CTSYNC_CT_INJECT;
constexpr int kFlows = 20000;

void must(const std::vector<std::string>& argv) {
    auto r = run(argv, 60s);
    if (r.exit_code != 0) {
        throw std::runtime_error("command failed: " + r.err + r.out);
    }
}

struct Node {
    std::unique_ptr<NetNs> ns;
    std::filesystem::path config;
    std::filesystem::path log;
    std::unique_ptr<Process> daemon;
    void start() { daemon = std::make_unique<Process>(ns->exec({kCtsyncd, "-C", config.string()})); }
    nlohmann::json status() const { return ctl_json(config, "status", {}, 10000); }
    std::int64_t stat(const std::string& name) const { return metric(ctl_json(config, "stats"), name); }
    nlohmann::json role(const std::string& role) const {
        auto r = run({kCtsyncctl, "-C", config.string(), "--timeout", "60000", "role", role, "--json"}, 70s);
        return r.exit_code == 0 ? nlohmann::json::parse(r.out, nullptr, false) : nlohmann::json();
    }
    void inject(int count, int first) const {
        must(ns->exec(
            {kCtInject, "--count", std::to_string(count), "--first", std::to_string(first), "--nat"}));
    }
};

class RoleLab {
  public:
    // `standby`: "warm" or "cold"; `nodes`: 1 (alone) or 2.
    RoleLab(const std::string& standby, int nodes) {
        const char* names[] = {"ra", "rb"};
        for (int i = 0; i < nodes; ++i) {
            Node node;
            node.ns = std::make_unique<NetNs>(names[i]);
            nodes_.push_back(std::move(node));
        }
        if (nodes == 2) {
            must({"ip", "link", "add", "sync0", "netns", nodes_[0].ns->name(), "type", "veth", "peer",
                  "sync0", "netns", nodes_[1].ns->name()});
        } else {
            must(nodes_[0].ns->exec({"ip", "link", "add", "sync0", "type", "veth", "peer", "dangling"}));
        }
        for (int i = 0; i < nodes; ++i) {
            auto& n = nodes_[i];
            must(n.ns->exec({"ip", "addr", "add", fmt::format("198.51.100.{}/24", i + 1), "dev", "sync0"}));
            must(n.ns->exec({"ip", "link", "set", "sync0", "up"}));
            auto config = instance_config(dir_.path(), i + 1);
            const std::string tag = names[i];
            config["daemon"]["lock_file"] = (dir_ / (tag + ".lock")).string();
            config["daemon"]["control_socket"] = (dir_ / (tag + ".sock")).string();
            n.log = dir_ / (tag + ".log");
            config["daemon"]["log"] = {{"level", "info"}, {"file", n.log.string()}};
            config["source"] = {{"plugin", "source-ctnetlink"}, {"config", {{"expectations", false}}}};
            config["transports"] = {{{"plugin", "transport-tcp"},
                                     {"config",
                                      {{"listen", fmt::format("198.51.100.{}:3782", i + 1)},
                                       {"peers", {fmt::format("198.51.100.{}:3782", 2 - i)}}}}}};
            config["replication"] = {{"initial_role", i == 0 ? "primary" : "backup"},
                                     {"alive_interval_ms", 100},
                                     {"peer_timeout_ms", 1500}};
            config["failover"] = {{"standby", standby}};
            add_sync_key(config, dir_.path());
            n.config = write_config(dir_.path(), config, tag + ".json");
        }
    }
    ~RoleLab() {
        if (::testing::Test::HasFailure()) {
            for (auto& n : nodes_) {
                auto log = read_file(n.log);
                std::cerr << "---- " << n.log << " (tail) ----\n"
                          << log.substr(log.size() > 5000 ? log.size() - 5000 : 0) << "\n";
            }
        }
    }
    Node& node(int i) { return nodes_[i]; }
    void start_all() {
        for (auto& n : nodes_) {
            n.start();
        }
        for (auto& n : nodes_) {
            ASSERT_TRUE(wait_until([&] { return !n.status().is_null(); }, 20s, 100ms));
        }
    }
    bool wait_external(int i, std::size_t flows) {
        return wait_until(
            [&] {
                auto s = node(i).status();
                return !s.is_null() && s["tables"]["external_flows"].get<std::size_t>() >= flows;
            },
            60s, 50ms);
    }

  private:
    TempDir dir_;
    std::vector<Node> nodes_;
};

std::size_t count_in(const std::set<std::string>& kernel, int first, int count) {
    std::size_t n = 0;
    for (int i = first; i < first + count; ++i) {
        n += kernel.count(fmt::format("192.0.2.{} {}", 1 + i / 60000, 1024 + i % 60000));
    }
    return n;
}

TEST(Failover, WarmStandbyBackupKernelHoldsThePrimaryTable) {
    ASSERT_TRUE(can_create_netns());
    RoleLab lab("warm", 2);
    lab.start_all();
    lab.node(0).inject(kFlows, 0);
    ASSERT_TRUE(lab.wait_external(1, kFlows));
    // The backup's own kernel: every entry of the primary, written as it arrived.
    ASSERT_TRUE(wait_until([&] { return count_in(kernel_identities(*lab.node(1).ns), 0, kFlows) == kFlows; },
                           60s, 500ms))
        << count_in(kernel_identities(*lab.node(1).ns), 0, kFlows);
    EXPECT_GE(lab.node(1).stat("failover.standby_written"), kFlows);
    EXPECT_EQ(lab.node(1).stat("failover.standby_failed"), 0);
    EXPECT_TRUE(wait_until([&] { return lab.node(1).status()["failover"]["ready"] == true; }, 10s, 100ms));
    // A deletion on the primary reaches the backup's kernel too.
    must(lab.node(0).ns->exec({kCtInject, "--count", "100", "--first", "0", "--delete"}));
    EXPECT_TRUE(
        wait_until([&] { return count_in(kernel_identities(*lab.node(1).ns), 0, 100) == 0; }, 20s, 200ms));
}

TEST(Failover, ColdStandbyBackupKernelStaysEmptyUntilPromoted) {
    ASSERT_TRUE(can_create_netns());
    RoleLab lab("cold", 2);
    lab.start_all();
    lab.node(0).inject(kFlows, 0);
    ASSERT_TRUE(lab.wait_external(1, kFlows));
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(count_in(kernel_identities(*lab.node(1).ns), 0, kFlows), 0u);
    auto reply = lab.node(1).role("primary");
    ASSERT_FALSE(reply.is_null());
    ASSERT_EQ(reply["steps"][0]["step"], "commit");
    EXPECT_EQ(reply["steps"][0]["flows"], kFlows);
    EXPECT_EQ(reply["steps"][0]["failed"], 0);
    EXPECT_EQ(count_in(kernel_identities(*lab.node(1).ns), 0, kFlows), static_cast<std::size_t>(kFlows));
}

TEST(Failover, PromotionCommitsFlushesStaleSendsAndResyncsInOrder) {
    ASSERT_TRUE(can_create_netns());
    RoleLab lab("warm", 2);
    // Stale entries in the backup's kernel from an earlier life: the primary never had them.
    lab.node(1).inject(500, 100000);
    lab.start_all();
    lab.node(0).inject(kFlows, 0);
    ASSERT_TRUE(lab.wait_external(1, kFlows));
    ASSERT_TRUE(wait_until([&] { return lab.node(1).status()["failover"]["ready"] == true; }, 30s, 100ms));
    // Recorded by the role machine's 100 ms tick (and again when the promotion starts).
    ASSERT_TRUE(
        wait_until([&] { return lab.node(1).status()["failover"]["primary_table_seen"] == true; }, 5s, 50ms));

    auto reply = lab.node(1).role("primary");
    ASSERT_FALSE(reply.is_null());
    EXPECT_EQ(reply["role"], "PRIMARY");
    std::vector<std::string> order;
    for (const auto& s : reply["steps"]) {
        order.push_back(s["step"]);
        EXPECT_GE(s["ms"].get<double>(), 0.0);
    }
    EXPECT_EQ(order, (std::vector<std::string>{"commit", "flush", "send", "resync"}));
    EXPECT_EQ(reply["steps"][0]["failed"], 0);
    EXPECT_EQ(reply["steps"][1]["deleted"], 500) << reply.dump();
    EXPECT_EQ(lab.node(1).stat("failover.promote_flushed"), 500);
    EXPECT_GE(lab.node(1).stat("failover.promote_total_us"), 0);
    EXPECT_EQ(lab.node(1).status()["role"], "PRIMARY");

    const auto kernel = kernel_identities(*lab.node(1).ns);
    EXPECT_EQ(count_in(kernel, 0, kFlows), static_cast<std::size_t>(kFlows));
    EXPECT_EQ(count_in(kernel, 100000, 500), 0u);

    // The old primary steps down and receives the new primary's table.
    auto down = lab.node(0).role("backup");
    ASSERT_FALSE(down.is_null());
    EXPECT_EQ(down["role"], "BACKUP");
    EXPECT_TRUE(lab.wait_external(0, kFlows)) << lab.node(0).status().dump();
}

// What keepalived's priority hold is told. A backup holding the primary's table must stay ready when the
// primary dies (its peer times out just before VRRP's master-down timer: lowering its priority then delays
// the takeover); a backup that has not completed its table since it became backup is held.
TEST(Failover, CompleteBackupStaysReadyWhenThePrimaryDiesAndARestartedOneIsHeldUntilComplete) {
    ASSERT_TRUE(can_create_netns());
    RoleLab lab("warm", 2);
    lab.start_all();
    lab.node(0).inject(kFlows, 0);
    ASSERT_TRUE(lab.wait_external(1, kFlows));
    ASSERT_TRUE(wait_until([&] { return lab.node(1).status()["failover"]["ready"] == true; }, 30s, 100ms));
    ::kill(lab.node(0).daemon->pid(), SIGKILL);
    // peer_timeout_ms is 1500: watch well past it.
    const auto until = std::chrono::steady_clock::now() + 3s;
    int samples = 0;
    while (std::chrono::steady_clock::now() < until) {
        auto s = lab.node(1).status();
        ASSERT_FALSE(s.is_null());
        ASSERT_EQ(s["failover"]["ready"], true) << "after " << samples << " samples: " << s.dump();
        ++samples;
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(lab.node(1).status()["replication"]["peers"][0]["live"], false);
    EXPECT_EQ(lab.node(1).stat("failover.ready"), 1);

    // The backup restarts while the primary is back: held until the primary's table is in its kernel.
    lab.node(0).start();
    ASSERT_TRUE(wait_until([&] { return !lab.node(0).status().is_null(); }, 20s, 100ms));
    lab.node(1).daemon->terminate();
    lab.node(1).start();
    bool held = false;
    ASSERT_TRUE(wait_until(
        [&] {
            auto s = lab.node(1).status();
            if (s.is_null()) {
                return false;
            }
            held = held || s["failover"]["ready"] == false;
            return s["failover"]["ready"] == true;
        },
        60s, 20ms));
    EXPECT_TRUE(held);
    EXPECT_GE(lab.node(1).status()["tables"]["external_flows"].get<std::size_t>(),
              static_cast<std::size_t>(kFlows));
}

TEST(Failover, PromotionWithoutAPrimaryTableFlushesNothing) {
    ASSERT_TRUE(can_create_netns());
    RoleLab lab("warm", 1);
    lab.node(0).inject(300, 0);
    // Alone and a backup: its kernel entries are its own; nobody's table says they are stale.
    auto config = nlohmann::json::parse(read_file(lab.node(0).config));
    config["replication"]["initial_role"] = "backup";
    write_file(lab.node(0).config, config.dump(2));
    lab.start_all();
    ASSERT_TRUE(
        wait_until([&] { return lab.node(0).status()["failover"]["stale_candidates"] >= 300; }, 10s, 100ms));
    auto reply = lab.node(0).role("primary");
    ASSERT_FALSE(reply.is_null());
    EXPECT_TRUE(reply["steps"][1].contains("skipped")) << reply.dump();
    EXPECT_EQ(count_in(kernel_identities(*lab.node(0).ns), 0, 300), 300u);
}

}  // namespace
}  // namespace ctsync::test
