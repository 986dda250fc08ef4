// SPDX-License-Identifier: GPL-2.0-or-later
// The real ctsyncd running: start-up, control through the real ctsyncctl, lock file, shutdown.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "core/cache/flow_json.hpp"
#include "core/control/client.hpp"
#include "core/daemon/huge_pages.hpp"
#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/flows.hpp"

namespace ctsync::test {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Starts ctsyncd on `config` and waits (bounded) until its control socket answers.
// GLIBC_TUNABLES of a running process, from /proc/<pid>/environ ("" when absent).
std::string tunables_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    std::stringstream all;
    all << in.rdbuf();
    std::string entry;
    std::stringstream entries(all.str());
    while (std::getline(entries, entry, '\0')) {
        if (entry.rfind("GLIBC_TUNABLES=", 0) == 0) {
            return entry.substr(15);
        }
    }
    return "";
}

TEST(HugePages, TheTunableIsAddedUnlessTheOperatorNamedIt) {
    EXPECT_EQ(core::tunables_with_huge_pages(nullptr), "glibc.malloc.hugetlb=1");
    EXPECT_EQ(core::tunables_with_huge_pages(""), "glibc.malloc.hugetlb=1");
    EXPECT_EQ(core::tunables_with_huge_pages("glibc.malloc.arena_max=2"),
              "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1");
    EXPECT_EQ(core::tunables_with_huge_pages("glibc.malloc.hugetlb=0"), std::nullopt);
    EXPECT_EQ(core::tunables_with_huge_pages("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2"),
              std::nullopt);
}

// ADR-040: the daemon runs with huge pages for its heap (it executed itself again, same pid), and an
// operator's own choice stays as it was.
TEST(CtsyncdRun, RunsWithHugePagesForItsHeapUnlessTheOperatorChose) {
    for (const auto& [given, expected] : std::vector<std::pair<std::string, std::string>>{
             {"", "glibc.malloc.hugetlb=1"}, {"glibc.malloc.hugetlb=0", "glibc.malloc.hugetlb=0"}}) {
        TempDir dir;
        auto file = write_config(dir.path(), instance_config(dir.path(), 12));
        Process daemon({kCtsyncd, "-C", file.string()}, {{"GLIBC_TUNABLES", given}});
        ASSERT_TRUE(
            wait_until([&] { return !ctl_json(file, "status").is_null() || !daemon.running(); }, 10s));
        auto status = ctl_json(file, "status");
        ASSERT_FALSE(status.is_null()) << daemon.err();
        EXPECT_EQ(status["pid"], daemon.pid()) << "the exec keeps the pid a supervisor knows";
        EXPECT_EQ(tunables_of(daemon.pid()), expected);
        EXPECT_EQ(daemon.terminate(10s).value_or(-1), 0) << daemon.err();
    }
}

TEST(CtsyncdRun, ServesControlAndShutsDownCleanlyOnSigterm) {
    TempDir dir;
    auto config = instance_config(dir.path(), 11);
    config["filters"] = {{{"plugin", "filter-fixture"}, {"name", "ports"}, {"config", {{"label", "x"}}}}};
    config["transports"] = {{{"plugin", "transport-fixture"}, {"name", "link-a"}},
                            {{"plugin", "transport-fixture"}, {"name", "link-b"}}};
    add_sync_key(config, dir.path());
    auto file = write_config(dir.path(), config);
    auto daemon = start_daemon(file);

    auto status = ctl_json(file, "status");
    ASSERT_FALSE(status.is_null());
    EXPECT_EQ(status["node_id"], 11);
    EXPECT_EQ(status["node_name"], "fw11");
    EXPECT_EQ(status["pid"], daemon->pid());
    EXPECT_EQ(status["role"], "BACKUP");  // replication.initial_role's default, with transports configured
    EXPECT_EQ(status["replication"]["links"].size(), 2u);
    EXPECT_EQ(status["plugins"], 3);
    EXPECT_EQ(status["control_socket"], (dir / "ctsyncd.sock").string());
    EXPECT_EQ(status["config_file"], file.string());
    EXPECT_EQ(read_file(dir / "ctsyncd.lock"), std::to_string(daemon->pid()) + "\n");

    auto plugins = ctl_json(file, "plugins");
    ASSERT_EQ(plugins.size(), 3u);
    EXPECT_EQ(plugins[0]["instance"], "ports");
    EXPECT_EQ(plugins[0]["plugin"], "filter-fixture");
    EXPECT_EQ(plugins[0]["category"], "filter");
    EXPECT_EQ(plugins[0]["version"], "1.2.3");
    EXPECT_EQ(plugins[1]["instance"], "link-a");
    EXPECT_EQ(plugins[2]["instance"], "link-b");
    EXPECT_EQ(plugins[2]["slot"], ".transports[1]");

    auto stats = ctl_json(file, "stats");
    ASSERT_TRUE(stats.is_array());
    bool found = false;
    for (const auto& m : stats) {
        found = found || m["name"] == "ports.evaluated";  // the plugin's own metric, scoped to its instance
    }
    EXPECT_TRUE(found) << stats.dump();

    auto human = run({kCtsyncctl, "-C", file.string(), "status"});
    EXPECT_EQ(human.exit_code, 0);
    EXPECT_THAT(human.out, HasSubstr("node:            fw11 (id 11)"));
    auto version = run({kCtsyncctl, "-C", file.string(), "version"});
    EXPECT_THAT(version.out, HasSubstr("plugin ABI 1.3"));

    auto code = daemon->terminate(10s);
    ASSERT_TRUE(code.has_value()) << "ctsyncd died from a signal instead of exiting";
    EXPECT_EQ(*code, 0) << daemon->err();
    EXPECT_THAT(daemon->err(), HasSubstr("event=shutdown signal=SIGTERM"));
    EXPECT_THAT(daemon->err(), HasSubstr("event=stopped"));
    EXPECT_FALSE(std::filesystem::exists(dir / "ctsyncd.sock"));
}

// A whole table dumped must not hold the event loop (replication, events and every other request wait on
// it): `status` is answered throughout a dump of 100k flows, quickly, not once the dump is done.
TEST(CtsyncdRun, AWholeTableDumpDoesNotHoldTheEventLoop) {
    TempDir dir;
    auto file = write_config(dir.path(), instance_config(dir.path(), 12));
    auto daemon = start_daemon(file);
    const auto socket = dir / "ctsyncd.sock";
    constexpr std::uint32_t kFlows = 100000;
    nlohmann::json flows = nlohmann::json::array();
    for (std::uint32_t i = 0; i < kFlows; ++i) {
        flows.push_back(core::to_json(nated_tcp_flow(i)));
    }
    auto imported = core::control::call(socket, {"import", {{"flows", std::move(flows)}}}, 120s);
    ASSERT_TRUE(imported.ok) << imported.error;
    ASSERT_EQ(imported.result["external_flows"], kFlows);

    std::atomic<bool> dump_done = false;
    const auto started = std::chrono::steady_clock::now();
    auto dump = std::async(std::launch::async, [&] {
        auto reply = core::control::call(socket, {"dump", {{"cache", "external"}}}, 120s);
        dump_done = true;
        return reply;
    });
    int answered_during_dump = 0;
    std::chrono::duration<double, std::milli> slowest{0};
    for (int i = 0; i < 6000 && !dump_done; ++i) {
        const auto asked = std::chrono::steady_clock::now();
        auto status = core::control::call(socket, {"status", {}}, 120s);
        ASSERT_TRUE(status.ok) << status.error;
        if (!dump_done) {
            ++answered_during_dump;
            slowest = std::max(
                slowest, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - asked));
        }
        std::this_thread::sleep_for(10ms);
    }
    auto reply = dump.get();
    const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - started;
    ASSERT_TRUE(reply.ok) << reply.error;
    EXPECT_EQ(reply.result["flows"].size(), kFlows);
    // The loop held for the whole dump answers one status at its end (and that one as slowly as the dump).
    EXPECT_GE(answered_during_dump, 5) << "dump took " << took.count() << " ms";
    EXPECT_LT(slowest.count(), took.count() / 4) << "dump took " << took.count() << " ms";
    auto stats = ctl_json(file, "stats");
    EXPECT_EQ(metric(stats, "control.requests_off_loop"), 2);  // the import and the dump
}

TEST(CtsyncdRun, SecondInstanceOnTheSameLockFileRefusesToStart) {
    TempDir dir;
    auto file = write_config(dir.path(), instance_config(dir.path(), 1));
    auto first = start_daemon(file);
    auto second = run({kCtsyncd, "-C", file.string()}, 10s);
    EXPECT_EQ(second.exit_code, 1);
    EXPECT_THAT(second.err,
                HasSubstr("lock file '" + (dir / "ctsyncd.lock").string() +
                          "' is held by another ctsyncd (pid " + std::to_string(first->pid()) + ")"));
    // The first one is untouched and still answers.
    EXPECT_EQ(ctl_json(file, "status")["pid"], first->pid());
}

TEST(CtsyncdRun, StaleSocketAndLockFromAKilledDaemonDoNotBlockARestart) {
    TempDir dir;
    auto file = write_config(dir.path(), instance_config(dir.path(), 1));
    {
        auto daemon = start_daemon(file);
        ::kill(daemon->pid(), SIGKILL);
        daemon->wait(5s);
    }
    ASSERT_TRUE(std::filesystem::exists(dir / "ctsyncd.sock"));
    auto daemon = start_daemon(file);
    EXPECT_EQ(ctl_json(file, "status")["pid"], daemon->pid());
}

TEST(CtsyncdRun, PluginFactoryRefusalStopsStartUp) {
    TempDir dir;
    auto config = instance_config(dir.path(), 1);
    config["daemon"]["plugin_dirs"] = {(kFixtures / "faults").string()};
    config["filters"] = {{{"plugin", "filter-throws"}}};
    auto file = write_config(dir.path(), config);
    auto result = run({kCtsyncd, "-C", file.string()}, 10s);
    EXPECT_EQ(result.exit_code, 3) << "a factory's refusal is a plugin refusal";
    EXPECT_THAT(result.err,
                HasSubstr(".filters[0]: plugin 'filter-throws' (instance 'filter-throws') refused to "
                          "start: cannot open /dev/fixture: No such device"));
}

TEST(CtsyncdRun, TwoProtoHandlersForOneProtocolStopStartUp) {
    TempDir dir;
    auto config = instance_config(dir.path(), 1);
    config["protos"] = {{{"plugin", "proto-fixture"}, {"config", {{"protocols", {6, 17}}}}},
                        {{"plugin", "proto-fixture-b"}, {"config", {{"protocols", {132, 17}}}}}};
    auto file = write_config(dir.path(), config);
    auto result = run({kCtsyncd, "-C", file.string()}, 10s);
    EXPECT_EQ(result.exit_code, 2) << "two handlers for one protocol is a configuration error";
    EXPECT_THAT(result.err,
                HasSubstr(".protos[1]: plugin 'proto-fixture-b' (instance 'proto-fixture-b') claims "
                          "layer-4 protocol 17, already served by instance 'proto-fixture'"));
}

TEST(CtsyncdRun, SharedControlSocketIsRefusedAndTheOwnerKeepsIt) {
    TempDir dir;
    auto first_config = instance_config(dir.path(), 1);
    auto first_file = write_config(dir.path(), first_config, "a.json");
    auto first = start_daemon(first_file);
    auto second_config = first_config;
    second_config["node"]["id"] = 2;
    second_config["daemon"]["lock_file"] = (dir / "other.lock").string();
    auto second_file = write_config(dir.path(), second_config, "b.json");
    auto second = run({kCtsyncd, "-C", second_file.string()}, 10s);
    EXPECT_EQ(second.exit_code, 1);
    EXPECT_THAT(second.err, HasSubstr("control socket '" + (dir / "ctsyncd.sock").string() +
                                      "' is served by another process"));
    EXPECT_EQ(ctl_json(first_file, "status")["node_id"], 1);
}

TEST(CtsyncdRun, SighupReopensTheLogFile) {
    TempDir dir;
    auto config = instance_config(dir.path(), 1);
    config["daemon"]["log"]["file"] = (dir / "ctsyncd.log").string();
    auto file = write_config(dir.path(), config);
    auto daemon = start_daemon(file);
    std::filesystem::rename(dir / "ctsyncd.log", dir / "ctsyncd.log.1");  // what logrotate does
    ASSERT_EQ(::kill(daemon->pid(), SIGHUP), 0);
    EXPECT_TRUE(wait_until(
        [&] { return read_file(dir / "ctsyncd.log").find("event=log_reopened") != std::string::npos; }, 5s));
    EXPECT_TRUE(daemon->running());
    EXPECT_THAT(read_file(dir / "ctsyncd.log.1"), HasSubstr("event=started"));
    EXPECT_EQ(daemon->terminate(10s).value_or(-1), 0);
    EXPECT_THAT(read_file(dir / "ctsyncd.log"), HasSubstr("event=stopped"));
}

TEST(CtsyncdRun, DaemonModeDetachesAndReportsStartUp) {
    TempDir dir;
    auto config = instance_config(dir.path(), 5);
    config["daemon"]["log"]["file"] = (dir / "ctsyncd.log").string();
    auto file = write_config(dir.path(), config);
    auto launched = run({kCtsyncd, "-C", file.string(), "-d"}, 10s);
    ASSERT_EQ(launched.exit_code, 0) << launched.err;
    auto status = ctl_json(file, "status");
    ASSERT_FALSE(status.is_null());
    pid_t pid = status["pid"].get<pid_t>();
    EXPECT_EQ(read_file(dir / "ctsyncd.lock"), std::to_string(pid) + "\n");
    // End it by the pid it reported (it is our grandchild, so poll for its disappearance).
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    EXPECT_TRUE(wait_until([&] { return ::kill(pid, 0) != 0; }, 10s));
    EXPECT_THAT(read_file(dir / "ctsyncd.log"), HasSubstr("event=stopped"));

    // And a daemon that cannot start makes -d fail: the lock is taken by a foreground instance.
    auto holder = start_daemon(file);
    auto refused = run({kCtsyncd, "-C", file.string(), "-d"}, 10s);
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_THAT(refused.err, HasSubstr("daemon did not start: error: lock file"));
}

TEST(CtsyncdRun, DaemonModeWithoutLogFileIsAConfigError) {
    TempDir dir;
    auto file = write_config(dir.path(), instance_config(dir.path(), 5));
    auto result = run({kCtsyncd, "-C", file.string(), "-d"}, 10s);
    EXPECT_EQ(result.exit_code, 2);
    EXPECT_THAT(result.err, HasSubstr(".daemon.log.file: required with --daemon"));
}

TEST(Ctsyncctl, ReportsUnreachableDaemonAndBadConfig) {
    TempDir dir;
    auto file = write_config(dir.path(), instance_config(dir.path(), 1));
    auto result = run({kCtsyncctl, "-C", file.string(), "status"});
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_THAT(result.err, HasSubstr("cannot reach ctsyncd at '" + (dir / "ctsyncd.sock").string() + "'"));
    write_file(dir / "broken.json", "{");
    auto broken = run({kCtsyncctl, "-C", (dir / "broken.json").string(), "status"});
    EXPECT_EQ(broken.exit_code, 1);
    EXPECT_THAT(broken.err, HasSubstr("is not a JSON object"));
    auto usage = run({kCtsyncctl, "-C", file.string()});
    EXPECT_EQ(usage.exit_code, 2);
}

}  // namespace
}  // namespace ctsync::test
