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
    auto table = ctl_json(file_p, "dump", {}, 60000);
    ASSERT_FALSE(table.is_null());
    write_file(dir / "flows.json", table.dump());
    ASSERT_EQ(run({kCtsyncctl, "-C", file_b.string(), "import", (dir / "flows.json").string()}).exit_code, 0);
    auto commit = [&] {
        auto r = run({kCtsyncctl, "-C", file_b.string(), "--timeout", "60000", "commit", "--json"}, 90s);
        EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
        return nlohmann::json::parse(r.out, nullptr, false);
    };
    // Round 1: every entry is created, once.
    auto first = commit();
    EXPECT_EQ(first["applied"], 12000);
    EXPECT_EQ(first["failed"], 0) << first.dump(1);
    EXPECT_EQ(run(bak.exec({"conntrack", "-C"})).out, "12000\n");
    // Round 2: the same flows with another mark. Every create meets an existing entry (EEXIST) and must
    // become an update, or the kernel keeps mark 0.
    for (auto& f : table["flows"]) {
        f["mark"] = 7;
    }
    write_file(dir / "marked.json", table.dump());
    ASSERT_EQ(run({kCtsyncctl, "-C", file_b.string(), "import", "--replace", (dir / "marked.json").string()})
                  .exit_code,
              0);
    auto second = commit();
    EXPECT_EQ(second["applied"], 12000);
    EXPECT_EQ(second["failed"], 0) << second.dump(1);
    EXPECT_EQ(run(bak.exec({"conntrack", "-C"})).out, "12000\n");
    auto marked = run(bak.exec({"bash", "-c", "conntrack -L -m 7 2>/dev/null | wc -l"})).out;
    EXPECT_EQ(marked, "12000\n");
}

}  // namespace
}  // namespace ctsync::test
