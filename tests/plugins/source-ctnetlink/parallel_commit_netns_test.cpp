// SPDX-License-Identifier: GPL-2.0-or-later
// A large commit is spread over several writer sockets (write_threads): every entry must arrive exactly
// once, and a second commit of the same table (every create meets an existing entry) must turn into updates
// with no failure.
#include <gtest/gtest.h>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
const std::string kCtInject = CTSYNC_CT_INJECT;

TEST(SourceCtnetlinkParallelCommit, EveryEntryOnceThenUpdates) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    TempDir dir;
    NetNs pri("pcpri"), bak("pcbak");
    ASSERT_EQ(run(pri.exec({kCtInject, "--count", "12000", "--nat"})).exit_code, 0);
    auto config = instance_config(dir.path(), 1);
    config["daemon"]["lock_file"] = (dir / "p.lock").string();
    config["daemon"]["control_socket"] = (dir / "p.sock").string();
    // Batches of 1 MiB: above the default netlink send buffer, so the writer must size its sockets.
    config["source"] = {
        {"plugin", "source-ctnetlink"},
        {"config", {{"expectations", false}, {"write_threads", 3}, {"write_batch_bytes", 1048576}}}};
    auto file_p = write_config(dir.path(), config, "p.json");
    config["daemon"]["lock_file"] = (dir / "b.lock").string();
    config["daemon"]["control_socket"] = (dir / "b.sock").string();
    auto file_b = write_config(dir.path(), config, "b.json");
    Process daemon_p(pri.exec({kCtsyncd, "-C", file_p.string()}));
    Process daemon_b(bak.exec({kCtsyncd, "-C", file_b.string()}));
    ASSERT_TRUE(wait_until(
        [&] {
            auto s = ctl_json(file_p, "status");
            return !s.is_null() && s["tables"]["internal_flows"] == 12000 &&
                   !ctl_json(file_b, "status").is_null();
        },
        30s, 100ms));
    write_file(dir / "flows.json", ctl_json(file_p, "dump", {}, 60000).dump());
    ASSERT_EQ(run({kCtsyncctl, "-C", file_b.string(), "import", (dir / "flows.json").string()}).exit_code, 0);
    for (int round = 0; round < 2; ++round) {
        auto commit = run({kCtsyncctl, "-C", file_b.string(), "--timeout", "60000", "commit", "--json"}, 90s);
        ASSERT_EQ(commit.exit_code, 0) << commit.out << commit.err;
        auto report = nlohmann::json::parse(commit.out);
        EXPECT_EQ(report["applied"], 12000) << "round " << round;
        EXPECT_EQ(report["failed"], 0) << report.dump(1);
        EXPECT_EQ(run(bak.exec({"conntrack", "-C"})).out, "12000\n") << "round " << round;
    }
    // The second round went through updates: the backup's ctsyncd saw them as events.
    std::int64_t updates = 0;
    for (const auto& m : ctl_json(file_b, "stats")) {
        if (m["name"] == "source-ctnetlink.write_batches") {
            updates = m["value"];
        }
    }
    EXPECT_GE(updates, 4);  // several batches per round, from several sockets
}

}  // namespace
}  // namespace ctsync::test
