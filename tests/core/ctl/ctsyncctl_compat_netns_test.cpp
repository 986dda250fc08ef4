// SPDX-License-Identifier: GPL-2.0-or-later
// The real ctsyncctl's conntrackd-style flags against a real ctsyncd that reads a real kernel table (a
// network namespace, source-ctnetlink): -i and -s see the kernel's flows, -R dumps the table again, -c writes
// the external cache into the kernel, -F empties the kernel table, -t makes the node a backup again; and
// contrib/keepalived/primary-backup.sh driving the same node through keepalived's three transitions.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

RunResult ctl(const std::filesystem::path& config, std::vector<std::string> args) {
    args.insert(args.begin(), {kCtsyncctl, "-C", config.string()});
    return run(args, 30s);
}

std::string kernel_table(const NetNs& ns) {
    return run(ns.exec({"bash", "-c", "conntrack -L 2>/dev/null"}), 30s).out;
}

const std::string kNotifyScript = std::string(CTSYNC_SOURCE_DIR) + "/contrib/keepalived/primary-backup.sh";

bool synced(const std::filesystem::path& config) {
    auto s = ctl_json(config, "status");
    return !s.is_null() && s["tables"]["internal_synced"].get<bool>() && !s["tables"]["dumping"].get<bool>();
}

// A daemon config reading the kernel of `ns`, with a loopback transport (so that roles and bulk transfers
// exist) and cold standby, as conntrackd: the external cache reaches the kernel only when -c says so.
std::filesystem::path kernel_config(const TempDir& dir) {
    auto config = instance_config(dir.path(), 1);
    config["source"] = {{"plugin", "source-ctnetlink"}, {"config", nlohmann::json::object()}};
    config["transports"] = {{{"plugin", "transport-fixture"}, {"name", "link-a"}}};
    config["failover"] = {{"standby", "cold"}};
    add_sync_key(config, dir.path());
    return write_config(dir.path(), config);
}

// Imports one connection the kernel does not have (a kernel flow with source port 2222) into the external
// cache.
void import_unknown_flow(const std::filesystem::path& config, const TempDir& dir) {
    auto flow = ctl_json(config, "dump")["flows"][0];
    flow["original"]["sport"] = 2222;
    flow["reply"]["dport"] = 2222;
    write_file(dir / "table.json", nlohmann::json{{"flows", {flow}}}.dump());
    auto r = ctl(config, {"import", (dir / "table.json").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(CtsyncctlCompatKernel, FlagsReadAndWriteTheKernelTable) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    TempDir dir;
    NetNs ns("ctlflags");
    auto file = kernel_config(dir);
    // As on a firewall set up per source-ctnetlink's README: with the kernel's default (2), entries created
    // while nobody listens never report their destruction, and -F below could not empty the internal cache
    // (unless a listener in another namespace happened to exist: the test passed only on a busy machine).
    ASSERT_EQ(run(ns.exec({"sysctl", "-qw", "net.netfilter.nf_conntrack_events=1"})).exit_code, 0);
    for (int port : {80, 443}) {
        auto r = run(ns.exec({"conntrack", "-I", "-p", "tcp", "-s", "192.0.2.1", "-d", "198.51.100.1",
                              "--sport", std::to_string(40000 + port), "--dport", std::to_string(port),
                              "--state", "ESTABLISHED", "-t", "300"}));
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    Process daemon(ns.exec({kCtsyncd, "-C", file.string()}));
    ASSERT_TRUE(wait_until([&] { return synced(file); }, 10s)) << daemon.err();

    auto internal = ctl(file, {"-i"});
    EXPECT_EQ(internal.exit_code, 0) << internal.err;
    EXPECT_THAT(internal.out, HasSubstr("sport=40080 dport=80"));
    EXPECT_THAT(internal.out, HasSubstr("sport=40443 dport=443"));
    EXPECT_THAT(internal.out, HasSubstr("2 flows in the internal cache\n"));
    auto stats = ctl(file, {"-s"});
    EXPECT_EQ(stats.exit_code, 0) << stats.err;
    EXPECT_THAT(stats.out, HasSubstr("cache internal:\ncurrent active connections:\t           2\n"));

    // -R: one more dump of the kernel table, counted by the source and shown by -s runtime.
    auto dumps = [&] { return metric(ctl_json(file, "stats"), "source-ctnetlink.dumps"); };
    const auto dumps_before = dumps();
    auto resync = ctl(file, {"-R"});
    EXPECT_EQ(resync.exit_code, 0) << resync.err;
    ASSERT_TRUE(wait_until([&] { return dumps() == dumps_before + 1 && synced(file); }, 10s));
    auto runtime = ctl(file, {"-s", "runtime"});
    EXPECT_THAT(runtime.out,
                HasSubstr(fmt::format("\tresync with kernel table:\t{:>12}\n", dumps_before + 1)));

    // A connection this kernel does not have, in the external cache: -c writes it into the kernel.
    import_unknown_flow(file, dir);
    EXPECT_THAT(ctl(file, {"-e"}).out, HasSubstr("sport=2222"));
    EXPECT_THAT(kernel_table(ns), Not(HasSubstr("sport=2222")));
    auto takeover = ctl(file, {"-c", "--json"});
    ASSERT_EQ(takeover.exit_code, 0) << takeover.err;
    auto reply = nlohmann::json::parse(takeover.out, nullptr, false);
    EXPECT_EQ(reply["role"], "PRIMARY") << takeover.out;
    EXPECT_GE(reply.value("committed", 0), 1) << takeover.out;
    EXPECT_EQ(reply.value("failed", -1), 0) << takeover.out;
    EXPECT_THAT(kernel_table(ns), HasSubstr("sport=2222"));

    // -F: the kernel table is emptied; the internal cache follows through the kernel's events.
    auto flush = ctl(file, {"-F"});
    EXPECT_EQ(flush.exit_code, 0) << flush.err;
    EXPECT_EQ(flush.out, "flushed the kernel conntrack table\n");
    EXPECT_THAT(kernel_table(ns), Not(HasSubstr("dport=")));
    EXPECT_TRUE(wait_until(
        [&] {
            return ctl(file, {"-s"})
                       .out.find("cache internal:\ncurrent active connections:\t           0\n") !=
                   std::string::npos;
        },
        10s));

    auto backup = ctl(file, {"-t"});
    EXPECT_EQ(backup.exit_code, 0) << backup.err;
    EXPECT_EQ(ctl_json(file, "status")["role"], "BACKUP");
    EXPECT_EQ(daemon.terminate(10s).value_or(-1), 0) << daemon.err();
}

TEST(CtsyncctlCompatKernel, PrimaryBackupScriptFollowsKeepalivedsTransitions) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    TempDir dir;
    NetNs ns("ctlnotify");
    auto file = kernel_config(dir);
    auto inserted =
        run(ns.exec({"conntrack", "-I", "-p", "tcp", "-s", "192.0.2.1", "-d", "198.51.100.1", "--sport",
                     "40080", "--dport", "80", "--state", "ESTABLISHED", "-t", "300"}));
    ASSERT_EQ(inserted.exit_code, 0) << inserted.err;
    Process daemon(ns.exec({kCtsyncd, "-C", file.string()}));
    ASSERT_TRUE(wait_until([&] { return synced(file); }, 10s)) << daemon.err();
    import_unknown_flow(file, dir);

    // logger(1) replaced by one that appends its arguments to a file.
    std::filesystem::create_directories(dir / "bin");
    write_file(dir / "bin" / "logger", "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$NOTIFY_LOG\"\n");
    std::filesystem::permissions(dir / "bin" / "logger", std::filesystem::perms::owner_all);
    const std::map<std::string, std::string> env = {
        {"PATH", (dir / "bin").string() + ":" + std::getenv("PATH")},
        {"CTSYNCCTL", kCtsyncctl},
        {"CTSYNC_CONFIG", file.string()},
        {"NOTIFY_LOG", (dir / "notify.log").string()}};
    auto notify = [&](const std::string& state) {
        std::filesystem::remove(dir / "notify.log");
        auto r = run({"sh", kNotifyScript, state}, 60s, env);
        r.out += std::filesystem::exists(dir / "notify.log") ? read_file(dir / "notify.log") : std::string();
        return r;
    };

    auto primary = notify("primary");
    EXPECT_EQ(primary.exit_code, 0) << primary.out << primary.err;
    for (const std::string step : {"commit the external cache (ctsyncctl -c): done",
                                   "flush the external cache (ctsyncctl -f external): done",
                                   "resync the internal cache with the kernel (ctsyncctl -R): done",
                                   "send a bulk update to the peers (ctsyncctl -B): done"}) {
        EXPECT_THAT(primary.out, HasSubstr("-t ctsync-notify -p daemon.notice -- primary: " + step));
    }
    EXPECT_THAT(primary.out, HasSubstr("-p daemon.info -- primary: this node is PRIMARY (was BACKUP)"));
    EXPECT_EQ(ctl_json(file, "status")["role"], "PRIMARY");
    EXPECT_THAT(kernel_table(ns), HasSubstr("sport=2222"));

    auto backup = notify("backup");
    EXPECT_EQ(backup.exit_code, 0) << backup.out << backup.err;
    EXPECT_THAT(backup.out, HasSubstr("backup: check that ctsyncd answers (ctsyncctl -s): done"));
    EXPECT_THAT(backup.out,
                Not(HasSubstr("current active connections")));  // the check's output is not logged
    EXPECT_THAT(backup.out, HasSubstr("backup: stop being primary (ctsyncctl -t): done"));
    EXPECT_THAT(backup.out, HasSubstr("backup: request a resync from the other node (ctsyncctl -n): done"));
    EXPECT_EQ(ctl_json(file, "status")["role"], "BACKUP");

    auto fault = notify("fault");
    EXPECT_EQ(fault.exit_code, 0) << fault.out << fault.err;
    EXPECT_THAT(fault.out, HasSubstr("fault: stop being primary (ctsyncctl -t): done"));

    auto bogus = notify("master");
    EXPECT_EQ(bogus.exit_code, 2);
    EXPECT_THAT(bogus.out, HasSubstr("-p daemon.err -- ERROR: unknown state transition 'master'"));
    EXPECT_THAT(bogus.err, HasSubstr("primary|backup|fault"));

    // ctsyncd gone: the backup transition's -s check fails, and says so.
    ASSERT_EQ(daemon.terminate(10s).value_or(-1), 0) << daemon.err();
    auto orphan = notify("backup");
    EXPECT_EQ(orphan.exit_code, 1);
    EXPECT_THAT(orphan.out,
                HasSubstr("ERROR: backup: check that ctsyncd answers (ctsyncctl -s) failed with exit "
                          "status 1"));
    EXPECT_THAT(orphan.out, HasSubstr("-p daemon.err -- backup: ctsyncctl: cannot reach ctsyncd at"));
    EXPECT_THAT(orphan.out, HasSubstr("ctsyncd does not answer on the socket of " + file.string()));
    EXPECT_THAT(orphan.out, Not(HasSubstr("ctsyncctl -t")));
}

}  // namespace
}  // namespace ctsync::test
