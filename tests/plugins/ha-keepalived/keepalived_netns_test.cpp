// SPDX-License-Identifier: GPL-2.0-or-later
// A real keepalived (Debian's, when installed) in a network namespace this test creates, alone on a veth pair
// inside it (192.0.2.0/24), with vrrp_notify_fifo on the adapter's FIFO and a track_file on the adapter's
// track file: it comes up BACKUP, becomes MASTER (about 4 s: nobody else answers), its priority is held at 1
// until the table is complete and follows the track file to 100 after, and when it stops the node is BACKUP;
// and a keepalived killed without a word and started again under the running adapter is followed.
// Needs root and keepalived (both fail the test when missing). Only the keepalived processes this test
// started are signalled, by PID (its VRRP child's from the pid file it was told to write).
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "ha_test_util.hpp"
#include "tests/support/netns.hpp"

namespace ha_keepalived::test {
namespace {

std::optional<std::string> find_keepalived() {
    for (const char* dir : {"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"}) {
        const auto candidate = std::filesystem::path(dir) / "keepalived";
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate.string();
        }
    }
    return std::nullopt;
}

void must_run(const std::vector<std::string>& argv) {
    auto result = ctsync::test::run(argv, std::chrono::seconds(10));
    ASSERT_EQ(result.exit_code, 0) << argv.back() << ": " << result.out << result.err;
}

// Stops keepalived with SIGTERM (so that it takes its VIPs down and ends its VRRP child itself) whatever way
// the test leaves.
struct StopOnExit {
    ctsync::test::Process& process;
    ~StopOnExit() { process.terminate(std::chrono::seconds(5)); }
};

// A namespace with a veth pair (kv0 at 192.0.2.1/24) for keepalived to advertise on, alone.
struct KeepalivedLab {
    ctsync::test::NetNs ns{"ka"};
    KeepalivedLab() {
        must_run({"ip", "-n", ns.name(), "link", "add", "kv0", "type", "veth", "peer", "name", "kv1"});
        must_run({"ip", "-n", ns.name(), "link", "set", "kv0", "up"});
        must_run({"ip", "-n", ns.name(), "link", "set", "kv1", "up"});
        must_run({"ip", "-n", ns.name(), "addr", "add", "192.0.2.1/24", "dev", "kv0"});
    }
    // One VRRP instance VI_1 (state BACKUP, priority 100, 1 s adverts) notifying on the harness's FIFO and
    // tracking its track file with weight 1. `run` names the pid files, so that each start has its own.
    std::unique_ptr<ctsync::test::Process> start(Harness& h, const std::string& keepalived,
                                                 const std::string& run) {
        const auto config = h.path("keepalived.conf");
        ctsync::test::write_file(config,
                                 "global_defs {\n"
                                 "  router_id ctsync_ha_test\n"
                                 "  vrrp_notify_fifo " +
                                     h.fifo().string() +
                                     "\n"
                                     "  vrrp_notify_priority_changes true\n"
                                     "}\n"
                                     "track_file ctsync_ready {\n"
                                     "  file \"" +
                                     h.path("ready").string() +
                                     "\"\n"
                                     "  weight 1\n"
                                     "}\n"
                                     "vrrp_instance VI_1 {\n"
                                     "  state BACKUP\n"
                                     "  interface kv0\n"
                                     "  virtual_router_id 51\n"
                                     "  priority 100\n"
                                     "  advert_int 1\n"
                                     "  virtual_ipaddress {\n"
                                     "    192.0.2.100/24\n"
                                     "  }\n"
                                     "  track_file {\n"
                                     "    ctsync_ready\n"
                                     "  }\n"
                                     "}\n");
        return std::make_unique<ctsync::test::Process>(
            ns.exec({keepalived, "--dont-fork", "--log-console", "--log-detail", "--vrrp", "--use-file",
                     config.string(), "--pid", h.path(run + ".pid").string(), "--vrrp_pid",
                     h.path(run + "-vrrp.pid").string()}));
    }
};

TEST(HaKeepalivedLive, RealKeepalivedDrivesTheRoleAndFollowsTheTrackFile) {
    // scripts/test.sh runs the suite as root after installing keepalived: either missing is a failure.
    ASSERT_TRUE(ctsync::test::can_create_netns()) << "this test needs root (network namespaces)";
    const auto keepalived = find_keepalived();
    ASSERT_TRUE(keepalived) << "keepalived is not installed (scripts/install-deps.sh installs it)";
    Harness h;
    h.options.track_file = h.path("ready").string();
    h.options.reopen_interval = 100ms;
    auto& adapter = h.start();
    ASSERT_EQ(file_text(h.path("ready")), "-253\n");

    KeepalivedLab lab;
    auto keepalived_process = lab.start(h, *keepalived, "first");
    auto& process = *keepalived_process;
    StopOnExit stop_on_exit{process};
    auto diagnostics = [&] { return h.all_logs() + "--- keepalived:\n" + process.out() + process.err(); };

    // BACKUP first, then MASTER once no advertisement came (3 x advert_int + skew).
    ASSERT_TRUE(h.run_until([&] { return adapter.role() == Role::kPrimary; }, 20s)) << diagnostics();
    EXPECT_EQ(h.role_sequence(), (std::vector<Role>{Role::kBackup, Role::kPrimary})) << diagnostics();
    EXPECT_EQ(adapter.states().entities()[0].priority, 1) << diagnostics();  // 100 - 253, clamped to 1
    EXPECT_EQ(h.counter("lines_garbage"), 0);

    // The table is complete: ready_value 0 gives keepalived its configured priority back.
    adapter.update_readiness(ctsync::sdk::SyncReadiness{true, 42});
    EXPECT_EQ(file_text(h.path("ready")), "0\n");
    ASSERT_TRUE(h.run_until([&] { return adapter.states().entities()[0].priority == 100; }, 10s))
        << diagnostics();
    EXPECT_EQ(adapter.role(), Role::kPrimary);

    // keepalived stops: STOP, and this node is no longer primary.
    EXPECT_EQ(process.terminate(std::chrono::seconds(10)), 0) << diagnostics();
    ASSERT_TRUE(h.run_until([&] { return adapter.role() == Role::kBackup; }, 10s)) << diagnostics();
    EXPECT_THAT(h.roles.back().second, ::testing::HasSubstr("INSTANCE \"VI_1\" STOP"));
    ASSERT_TRUE(h.run_until([&] { return h.logged(LogLevel::kInfo, "event=fifo_writer_closed"); }, 5s))
        << diagnostics();
    EXPECT_EQ(h.counter("lines_garbage"), 0);
}

// keepalived dies without a word (SIGKILL to both of its processes, stopped first so that neither can react:
// no STOP line, its child not respawned, no SIGTERM from the parent's death) and is started again under the
// running adapter: the role stays what keepalived last said until the new one speaks, the FIFO is opened
// again, and the new keepalived's BACKUP and then MASTER are followed; its priority comes straight from the
// track file the adapter kept up to date (the table is complete: 100, no hold).
TEST(HaKeepalivedLive, KeepalivedKilledAndStartedAgainIsFollowed) {
    ASSERT_TRUE(ctsync::test::can_create_netns()) << "this test needs root (network namespaces)";
    const auto keepalived = find_keepalived();
    ASSERT_TRUE(keepalived) << "keepalived is not installed (scripts/install-deps.sh installs it)";
    Harness h;
    h.options.track_file = h.path("ready").string();
    h.options.reopen_interval = 100ms;
    auto& adapter = h.start();
    adapter.update_readiness(ctsync::sdk::SyncReadiness{true, 0});
    ASSERT_EQ(file_text(h.path("ready")), "0\n");

    KeepalivedLab lab;
    auto first = lab.start(h, *keepalived, "first");
    StopOnExit stop_first{*first};
    auto diagnostics = [&] { return h.all_logs() + "--- keepalived:\n" + first->out() + first->err(); };
    ASSERT_TRUE(h.run_until([&] { return adapter.role() == Role::kPrimary; }, 20s)) << diagnostics();
    EXPECT_EQ(adapter.states().entities()[0].priority, 100) << diagnostics();

    // Its VRRP child (the writer of the notifications) by the PID keepalived wrote, then the parent.
    pid_t child = 0;
    ASSERT_TRUE(h.run_until(
        [&] {
            child = static_cast<pid_t>(std::atoi(file_text(h.path("first-vrrp.pid")).c_str()));
            return child > 0;
        },
        5s));
    ASSERT_EQ(::kill(first->pid(), SIGSTOP), 0);
    ASSERT_EQ(::kill(child, SIGSTOP), 0);
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    ASSERT_EQ(::kill(first->pid(), SIGKILL), 0);
    first->wait(5s);
    ASSERT_TRUE(first->signalled());
    ASSERT_TRUE(h.run_until([&] { return h.logged(LogLevel::kInfo, "event=fifo_writer_closed"); }, 10s))
        << diagnostics();
    h.run_for(500ms);
    EXPECT_EQ(adapter.role(), Role::kPrimary) << "no STOP was written: the role stays";
    const std::size_t before_restart = h.roles.size();

    auto second = lab.start(h, *keepalived, "second");
    StopOnExit stop_second{*second};
    auto diagnostics2 = [&] {
        return diagnostics() + "--- second keepalived:\n" + second->out() + second->err();
    };
    ASSERT_TRUE(h.run_until(
        [&] { return h.roles.size() >= before_restart + 2 && adapter.role() == Role::kPrimary; }, 20s))
        << diagnostics2();
    const std::vector<Role> sequence = h.role_sequence();
    const std::vector<Role> after(sequence.begin() + static_cast<std::ptrdiff_t>(before_restart),
                                  sequence.end());
    EXPECT_EQ(after, (std::vector<Role>{Role::kBackup, Role::kPrimary})) << diagnostics2();
    EXPECT_EQ(adapter.states().entities()[0].priority, 100) << diagnostics2();
    EXPECT_GE(h.counter("fifo_reopens"), 1);
    EXPECT_EQ(h.counter("lines_garbage"), 0);
    EXPECT_EQ(second->terminate(std::chrono::seconds(10)), 0) << diagnostics2();
}

}  // namespace
}  // namespace ha_keepalived::test
