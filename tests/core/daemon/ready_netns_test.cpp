// SPDX-License-Identifier: GPL-2.0-or-later
// READY=1 (systemd's Type=notify) means the node is of use: on a primary once the kernel's table is dumped
// into the internal cache, on a backup once its peers' tables are in its external cache and written into its
// kernel (warm standby). Real kernels in namespaces, a socket playing NOTIFY_SOCKET; the STATUS= sent with
// READY=1 says what the daemon held at that moment.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/notify_socket.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
const std::string kCtInject = CTSYNC_CT_INJECT;
constexpr int kFlows = 30000;

void must(const std::vector<std::string>& argv) {
    auto r = run(argv, 60s);
    if (r.exit_code != 0) {
        throw std::runtime_error("command failed: " + r.err + r.out);
    }
}

class ReadyLab : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!can_create_netns()) {
            GTEST_FAIL() << "needs root: network namespaces";
        }
        a_ = std::make_unique<NetNs>("ya");
        b_ = std::make_unique<NetNs>("yb");
        must({"ip", "link", "add", "sync0", "netns", a_->name(), "type", "veth", "peer", "sync0", "netns",
              b_->name()});
        int i = 0;
        for (auto* ns : {a_.get(), b_.get()}) {
            must(ns->exec({"ip", "addr", "add", fmt::format("198.51.100.{}/24", i + 1), "dev", "sync0"}));
            must(ns->exec({"ip", "link", "set", "sync0", "up"}));
            const std::string tag = i == 0 ? "a" : "b";
            auto config = instance_config(dir_.path(), i + 1);
            config["daemon"]["lock_file"] = (dir_ / (tag + ".lock")).string();
            config["daemon"]["control_socket"] = (dir_ / (tag + ".sock")).string();
            config["daemon"]["log"] = {{"level", "info"}};
            config["source"] = {{"plugin", "source-ctnetlink"}, {"config", {{"expectations", false}}}};
            config["transports"] = {{{"plugin", "transport-tcp"},
                                     {"config",
                                      {{"listen", fmt::format("198.51.100.{}:3782", i + 1)},
                                       {"peers", {fmt::format("198.51.100.{}:3782", 2 - i)}}}}}};
            config["replication"] = {{"initial_role", i == 0 ? "primary" : "backup"},
                                     {"alive_interval_ms", 100},
                                     {"peer_timeout_ms", 1500}};
            add_sync_key(config, dir_.path());
            configs_[i] = write_config(dir_.path(), config, tag + ".json");
            ++i;
        }
    }

    std::unique_ptr<Process> start(int i, NotifySocket& notify) {
        NetNs& ns = i == 0 ? *a_ : *b_;
        return std::make_unique<Process>(
            ns.exec({kCtsyncd, "-C", configs_[i].string()}),
            std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify.path()}});
    }

    TempDir dir_;
    std::unique_ptr<NetNs> a_;
    std::unique_ptr<NetNs> b_;
    std::filesystem::path configs_[2];
};

TEST_F(ReadyLab, PrimaryIsReadyOnceTheKernelTableIsDumpedAndABackupOnceItHoldsAndWroteThePrimarysTable) {
    must(a_->exec({kCtInject, "--count", std::to_string(kFlows), "--first", "0", "--nat"}));
    NotifySocket notify_a(dir_ / "a.notify");
    auto primary = start(0, notify_a);
    ASSERT_TRUE(notify_a.collect(30s, [](const auto& m) { return m.has("READY=1"); })) << primary->err();
    EXPECT_THAT(notify_a.messages().back().value("STATUS"),
                HasSubstr(fmt::format("PRIMARY: {} flows in the internal cache", kFlows)));

    NotifySocket notify_b(dir_ / "b.notify");
    auto backup = start(1, notify_b);
    ASSERT_TRUE(notify_b.collect(60s, [](const auto& m) { return m.has("READY=1"); })) << backup->err();
    // Written into the backup's own kernel (warm standby) before READY=1: counted right after it.
    auto count = run(b_->exec({"conntrack", "-C"}), 10s);
    EXPECT_EQ(std::atoi(count.out.c_str()), kFlows) << count.err;
    // And held as the primary's table.
    const auto& ready = notify_b.messages().back();
    EXPECT_THAT(ready.value("STATUS"),
                HasSubstr(fmt::format("in the internal cache, {} in the external cache", kFlows)));
    // Before READY=1 the backup said what it waited for.
    bool waited = false;
    for (const auto& m : notify_b.messages()) {
        waited = waited || m.value("STATUS").find("receiving the peers' tables") != std::string::npos ||
                 m.value("STATUS").find("dumping the kernel's table") != std::string::npos;
    }
    EXPECT_TRUE(waited);
    EXPECT_EQ(backup->terminate(), 0);
    EXPECT_EQ(primary->terminate(), 0);
}

}  // namespace
}  // namespace ctsync::test
