// SPDX-License-Identifier: GPL-2.0-or-later
// The adapter over a real FIFO in a temporary directory, driven by an io_context: lines written by a writer
// (keepalived's way of opening: read-write, non-blocking; or a separate process) become roles; a writer that
// closes and a new one (keepalived restarting) are followed; a FIFO recreated at the path is switched to;
// garbage is counted and logged; a path that is not a FIFO is refused at start.
#include <sys/stat.h>

#include <filesystem>

#include "ha_test_util.hpp"

namespace ha_keepalived::test {
namespace {

using ::testing::HasSubstr;

TEST(HaKeepalivedFifo, LinesBecomeRolesInOrder) {
    Harness h;
    auto& adapter = h.start();
    EXPECT_TRUE(adapter.fifo_is_open());
    struct stat st {};
    ASSERT_EQ(::lstat(h.fifo().c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(h.gauge("fifo_open"), 1);
    EXPECT_EQ(h.gauge("role"), 0);

    FifoWriter keepalived(h.fifo());
    keepalived.write("INSTANCE \"VI_1\" BACKUP 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 1; }));
    EXPECT_EQ(h.roles[0].first, Role::kBackup);
    EXPECT_EQ(h.roles[0].second, "keepalived: INSTANCE \"VI_1\" BACKUP 100 (instance VI_1 BACKUP)");

    keepalived.write(
        "INSTANCE \"VI_1\" MASTER 100\nINSTANCE \"VI_1\" FAULT 0\nINSTANCE \"VI_1\" BACKUP 100\n"
        "INSTANCE \"VI_1\" MASTER 100\nINSTANCE \"VI_1\" STOP 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 6; })) << h.all_logs();
    EXPECT_EQ(h.role_sequence(), (std::vector<Role>{Role::kBackup, Role::kPrimary, Role::kFault,
                                                    Role::kBackup, Role::kPrimary, Role::kBackup}));
    EXPECT_EQ(adapter.role(), Role::kBackup);
    EXPECT_EQ(h.gauge("role"), static_cast<std::int64_t>(Role::kBackup));
    EXPECT_EQ(h.counter("lines_read"), 6);
    EXPECT_EQ(h.counter("role_changes"), 6);
    EXPECT_EQ(h.counter("lines_garbage"), 0);
    EXPECT_EQ(h.counter("lines_ignored"), 0);
    EXPECT_TRUE(h.logged(LogLevel::kInfo,
                         "event=role_change from=backup to=primary line=2 "
                         "cause=\"INSTANCE \\\"VI_1\\\" MASTER 100\""))
        << h.all_logs();
    EXPECT_TRUE(
        h.logged(LogLevel::kInfo, "event=vrrp_state instance=\"VI_1\" state=FAULT priority=0 line=3"));

    // The same state again, and a priority change within it: no new role.
    keepalived.write("INSTANCE \"VI_1\" BACKUP 100\nINSTANCE \"VI_1\" BACKUP_PRIORITY 90\n");
    ASSERT_TRUE(h.run_until([&] { return h.counter("lines_read") == 8; }));
    EXPECT_EQ(h.roles.size(), 6u);
    EXPECT_EQ(adapter.states().entities()[0].priority, 90);
}

TEST(HaKeepalivedFifo, AWriterProcessIsRead) {
    Harness h;
    h.start();
    // A separate process, opening the FIFO write-only (it blocks until a reader is there: we are).
    ctsync::test::Process writer(
        {"sh", "-c", "printf 'INSTANCE \"VI_1\" MASTER 100\\n' > \"$0\"", h.fifo().string()});
    ASSERT_TRUE(h.run_until([&] { return !h.roles.empty(); }, 10s)) << h.all_logs();
    EXPECT_EQ(h.roles[0].first, Role::kPrimary);
    EXPECT_EQ(writer.wait(5s), 0);
    // The writer is gone: end-of-file, logged, and the FIFO opened again.
    ASSERT_TRUE(h.run_until([&] { return h.counter("fifo_reopens") == 1; })) << h.all_logs();
    EXPECT_TRUE(h.logged(LogLevel::kInfo, "event=fifo_writer_closed"));
}

// keepalived restarting: its end closes (after the STOP lines), a new keepalived opens it and writes again.
TEST(HaKeepalivedFifo, KeepalivedRestartIsFollowed) {
    Harness h;
    auto& adapter = h.start();
    {
        FifoWriter first(h.fifo());
        first.write(
            "INSTANCE \"VI_1\" BACKUP 100\nINSTANCE \"VI_1\" MASTER 100\nINSTANCE \"VI_1\" STOP 100\n");
        ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 3; }));
    }
    ASSERT_TRUE(h.run_until([&] { return h.logged(LogLevel::kInfo, "event=fifo_writer_closed"); }));
    EXPECT_EQ(h.gauge("fifo_open"), 0);
    EXPECT_FALSE(adapter.fifo_is_open());
    ASSERT_TRUE(h.run_until([&] { return h.counter("fifo_reopens") == 1; }));
    EXPECT_TRUE(adapter.fifo_is_open());
    EXPECT_EQ(h.gauge("fifo_open"), 1);
    EXPECT_TRUE(h.logged(LogLevel::kInfo, "event=fifo_reopened"));

    FifoWriter second(h.fifo());
    second.write("INSTANCE \"VI_1\" BACKUP 100\nINSTANCE \"VI_1\" MASTER 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 4; })) << h.all_logs();
    // STOP made it BACKUP; the new keepalived's BACKUP is no change, its MASTER is.
    EXPECT_EQ(h.role_sequence(),
              (std::vector<Role>{Role::kBackup, Role::kPrimary, Role::kBackup, Role::kPrimary}));
    EXPECT_EQ(h.counter("lines_read"), 5);
    EXPECT_EQ(h.counter("lines_garbage"), 0);
}

// The new keepalived may open the FIFO before the adapter noticed the old one left (or while the adapter
// has it closed): what it writes waits in the pipe, since keepalived holds it open read-write.
TEST(HaKeepalivedFifo, LinesWrittenWhileTheFifoIsBeingReopenedAreNotLost) {
    Harness h;
    h.options.reopen_interval = 300ms;
    h.start();
    auto first = std::make_unique<FifoWriter>(h.fifo());
    first->write("INSTANCE \"VI_1\" MASTER 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 1; }));
    first->close();
    ASSERT_TRUE(h.run_until([&] { return h.logged(LogLevel::kInfo, "event=fifo_writer_closed"); }));
    // The adapter has the FIFO closed for 300 ms now.
    FifoWriter second(h.fifo());
    second.write("INSTANCE \"VI_1\" STOP 100\nINSTANCE \"VI_1\" BACKUP 100\nINSTANCE \"VI_1\" MASTER 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.counter("lines_read") == 4; }, 5s)) << h.all_logs();
    EXPECT_EQ(h.role_sequence(), (std::vector<Role>{Role::kPrimary, Role::kBackup, Role::kPrimary}));
}

// keepalived recreates a FIFO it made itself on reload and restart: another FIFO at the same path.
TEST(HaKeepalivedFifo, AFifoRecreatedAtThePathIsSwitchedTo) {
    Harness h;
    h.start();
    FifoWriter old_writer(h.fifo());
    old_writer.write("INSTANCE \"VI_1\" MASTER 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 1; }));
    // The old writer keeps its end open (no end-of-file), one more line waits in the old FIFO.
    old_writer.write("INSTANCE \"VI_1\" FAULT 0\n");
    ASSERT_EQ(::unlink(h.fifo().c_str()), 0);
    ASSERT_EQ(::mkfifo(h.fifo().c_str(), 0600), 0);
    FifoWriter new_writer(h.fifo());
    new_writer.write("INSTANCE \"VI_1\" BACKUP 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 3; })) << h.all_logs();
    EXPECT_EQ(h.role_sequence(), (std::vector<Role>{Role::kPrimary, Role::kFault, Role::kBackup}));
    EXPECT_EQ(h.counter("fifo_reopens"), 1);
    EXPECT_TRUE(h.logged(LogLevel::kInfo, "event=fifo_replaced"));
}

TEST(HaKeepalivedFifo, GarbageIsCountedLoggedAndSurvived) {
    Harness h;
    auto& adapter = h.start();
    FifoWriter keepalived(h.fifo());
    keepalived.write("hello\n");
    keepalived.write(std::string("\x00\x01\xfe binary\n", 11));
    keepalived.write("INSTANCE \"VI_1\" SLEEPING 100\n");
    keepalived.write(std::string(5000, 'A') + "\n");
    keepalived.write("\n");
    keepalived.write("INSTANCE \"VI_1\"   MASTER   100  \n");  // extra spaces are fine
    ASSERT_TRUE(h.run_until([&] { return h.counter("lines_read") == 6; })) << h.all_logs();
    EXPECT_EQ(h.counter("lines_garbage"), 5);
    EXPECT_EQ(adapter.role(), Role::kPrimary);
    EXPECT_TRUE(h.logged(LogLevel::kWarn, "event=garbage_line fifo=\"" + h.fifo().string() +
                                              "\" line=1 reason=\"unknown type 'hello': expected INSTANCE or "
                                              "GROUP (or VS/RS from the checkers)\" text=\"hello\""))
        << h.all_logs();
    EXPECT_TRUE(h.logged(LogLevel::kWarn,
                         "line=2 reason=\"control byte 0x00 at offset 0\" "
                         "text=\"\\x00\\x01\\xfe binary\""))
        << h.all_logs();
    EXPECT_TRUE(h.logged(LogLevel::kWarn, "line=3 reason=\"unknown state 'SLEEPING'"));
    EXPECT_TRUE(
        h.logged(LogLevel::kWarn, "line=4 reason=\"longer than 4096 bytes (5000 bytes)\" text=\"AAAA"));
    EXPECT_TRUE(h.logged(LogLevel::kWarn, "line=5 reason=\"empty line\""));
}

TEST(HaKeepalivedFifo, AnOverlongLineSpreadOverManyWritesIsOneGarbageLine) {
    Harness h;
    auto& adapter = h.start();
    FifoWriter keepalived(h.fifo());
    for (int i = 0; i < 5; ++i) {
        keepalived.write(std::string(3000, 'x'));
        h.run_for(20ms);  // separate reads
    }
    keepalived.write("tail\nINSTANCE \"VI_1\" MASTER 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.counter("lines_read") == 2; })) << h.all_logs();
    EXPECT_EQ(h.counter("lines_garbage"), 1);
    EXPECT_TRUE(h.logged(LogLevel::kWarn, "line=1 reason=\"longer than 4096 bytes (15004 bytes)\""));
    EXPECT_EQ(adapter.role(), Role::kPrimary);
}

TEST(HaKeepalivedFifo, ALineCutOffByTheWriterIsGarbage) {
    Harness h;
    h.start();
    {
        FifoWriter keepalived(h.fifo());
        keepalived.write("INSTANCE \"VI_1\" MASTER 100\nINSTANCE \"VI_1\" BAC");
    }
    ASSERT_TRUE(h.run_until([&] { return h.counter("lines_garbage") == 1; })) << h.all_logs();
    EXPECT_EQ(h.role_sequence(), std::vector<Role>{Role::kPrimary});
    EXPECT_TRUE(h.logged(LogLevel::kWarn,
                         "line=2 reason=\"cut off: the writer closed the FIFO after 19 bytes "
                         "without a newline\" text=\"INSTANCE \\\"VI_1\\\" BAC\""))
        << h.all_logs();
}

TEST(HaKeepalivedFifo, AFloodOfGarbageIsLoggedWithinALimit) {
    Harness h;
    h.start();
    FifoWriter keepalived(h.fifo());
    std::string flood;
    for (int i = 0; i < 100; ++i) {
        flood += "junk\n";
    }
    keepalived.write(flood);
    ASSERT_TRUE(h.run_until([&] { return h.counter("lines_garbage") == 100; }));
    std::size_t warned = 0;
    for (const auto& line : h.logs) {
        warned += line.text.find("event=garbage_line") != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(warned, 10u);
}

TEST(HaKeepalivedFifo, OtherInstancesGroupsAndCheckerLinesAreIgnored) {
    Harness h;
    h.start();
    FifoWriter keepalived(h.fifo());
    keepalived.write(
        "INSTANCE \"VI_2\" MASTER 100\nGROUP \"VI_1\" MASTER 0\n"
        "VS [192.0.2.15]:tcp:80 UP\nRS [192.0.2.4]:tcp:80 [192.0.2.15]:tcp:80 DOWN\n");
    ASSERT_TRUE(h.run_until([&] { return h.counter("lines_read") == 4; }));
    EXPECT_EQ(h.counter("lines_ignored"), 4);
    EXPECT_EQ(h.counter("lines_garbage"), 0);
    EXPECT_TRUE(h.roles.empty());
    EXPECT_TRUE(
        h.logged(LogLevel::kDebug, "event=line_ignored line=1 reason=\"instance 'VI_2' is not configured\""));
    EXPECT_TRUE(h.logged(LogLevel::kDebug, "event=line_ignored line=3 reason=\"a checker (LVS) line\""));
}

TEST(HaKeepalivedFifo, SeveralInstancesMustAllBeMaster) {
    Harness h;
    h.options.instances = {"VI_LAN", "VI_WAN"};
    auto& adapter = h.start();
    FifoWriter keepalived(h.fifo());
    keepalived.write("INSTANCE \"VI_LAN\" MASTER 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 1; }));
    EXPECT_EQ(h.roles[0].first, Role::kBackup);  // VI_WAN has not said MASTER
    EXPECT_TRUE(h.logged(LogLevel::kWarn, "event=vrrp_split"));
    keepalived.write("INSTANCE \"VI_WAN\" MASTER 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 2; }));
    EXPECT_EQ(h.roles[1].first, Role::kPrimary);
    EXPECT_EQ(h.roles[1].second,
              "keepalived: INSTANCE \"VI_WAN\" MASTER 100 (instance VI_LAN MASTER, instance VI_WAN MASTER)");
    keepalived.write("INSTANCE \"VI_WAN\" FAULT 0\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 3; }));
    EXPECT_EQ(h.roles[2].first, Role::kFault);
    keepalived.write("INSTANCE \"VI_WAN\" BACKUP 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 4; }));
    EXPECT_EQ(adapter.role(), Role::kBackup);
}

TEST(HaKeepalivedFifo, SyncGroupLinesMakeTheRole) {
    Harness h;
    h.options.instances = {};
    h.options.groups = {"G1"};
    h.start();
    FifoWriter keepalived(h.fifo());
    // What keepalived 2.2 writes for a sync group G1 with member VI_1 going master.
    keepalived.write(
        "GROUP \"G1\" BACKUP 0\nINSTANCE \"VI_1\" BACKUP 100\nINSTANCE \"VI_1\" MASTER 100\n"
        "GROUP \"G1\" MASTER 0\n");
    ASSERT_TRUE(h.run_until([&] { return h.counter("lines_read") == 4; }));
    EXPECT_EQ(h.role_sequence(), (std::vector<Role>{Role::kBackup, Role::kPrimary}));
    EXPECT_EQ(h.counter("lines_ignored"), 2);
    keepalived.write("GROUP \"G1\" STOP 0\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 3; }));
    EXPECT_EQ(h.roles[2].first, Role::kBackup);
}

TEST(HaKeepalivedFifo, PriorityEventsFillAnUnknownStateAndRevealALostLine) {
    Harness h;
    h.start();
    FifoWriter keepalived(h.fifo());
    // ctsyncd started while keepalived was already master: the first line it sees is a priority event.
    keepalived.write("INSTANCE \"VI_1\" MASTER_PRIORITY 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 1; }));
    EXPECT_EQ(h.roles[0].first, Role::kPrimary);
    EXPECT_TRUE(h.logged(LogLevel::kInfo,
                         "event=vrrp_state_inferred instance=\"VI_1\" previous=unknown "
                         "state=MASTER from=MASTER_PRIORITY"));
    keepalived.write("INSTANCE \"VI_1\" BACKUP_PRIORITY 90\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 2; }));
    EXPECT_EQ(h.roles[1].first, Role::kBackup);
    EXPECT_TRUE(h.logged(LogLevel::kWarn, "previous=MASTER state=BACKUP from=BACKUP_PRIORITY"));
}

TEST(HaKeepalivedFifo, DeletedInstanceIsNotPrimaryAndWarns) {
    Harness h;
    h.start();
    FifoWriter keepalived(h.fifo());
    keepalived.write("INSTANCE \"VI_1\" MASTER 100\nINSTANCE \"VI_1\" DELETED 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 2; }));
    EXPECT_EQ(h.roles[1].first, Role::kBackup);
    EXPECT_TRUE(h.logged(LogLevel::kWarn, "event=vrrp_deleted instance=\"VI_1\""));
}

TEST(HaKeepalivedFifo, ARegularFileAtTheFifoPathIsRefused) {
    Harness h;
    ctsync::test::write_file(h.fifo(), "not a fifo\n");
    EXPECT_EQ(h.start_error(),
              "fifo: " + h.fifo().string() +
                  " is a regular file, not a FIFO: refusing to read it (remove it, or point fifo "
                  "at another path)");
    EXPECT_EQ(ctsync::test::read_file(h.fifo()), "not a fifo\n");  // left alone
}

TEST(HaKeepalivedFifo, ADirectoryOrASymbolicLinkAtTheFifoPathIsRefused) {
    Harness h;
    std::filesystem::create_directory(h.fifo());
    EXPECT_EQ(h.start_error(),
              "fifo: " + h.fifo().string() +
                  " is a directory, not a FIFO: refusing to read it (remove it, or point fifo at "
                  "another path)");
    std::filesystem::remove(h.fifo());
    ASSERT_EQ(::mkfifo(h.path("real.fifo").c_str(), 0600), 0);
    std::filesystem::create_symlink(h.path("real.fifo"), h.fifo());
    EXPECT_THAT(h.start_error(),
                HasSubstr("is a symbolic link; keepalived opens its notify FIFO without following "
                          "links (O_NOFOLLOW)"));
}

TEST(HaKeepalivedFifo, AFifoInAMissingDirectoryCannotBeCreated) {
    Harness h;
    h.options.fifo = h.path("no/such/dir/notify.fifo").string();
    EXPECT_EQ(h.start_error(), "fifo: cannot create the FIFO " + h.options.fifo +
                                   ": No such file or directory (its directory does not exist)");
}

TEST(HaKeepalivedFifo, WithoutCreateFifoAMissingFifoIsWaitedFor) {
    Harness h;
    h.options.create_fifo = false;
    auto& adapter = h.start();
    EXPECT_FALSE(adapter.fifo_is_open());
    EXPECT_EQ(h.gauge("fifo_open"), 0);
    EXPECT_TRUE(h.logged(LogLevel::kWarn, "event=fifo_missing"));
    h.run_for(200ms);
    EXPECT_FALSE(std::filesystem::exists(h.fifo()));  // not created
    // keepalived starts and creates it (0644, as keepalived's mkfifo does).
    ASSERT_EQ(::mkfifo(h.fifo().c_str(), 0644), 0);
    ASSERT_EQ(::chmod(h.fifo().c_str(), 0644), 0);
    ASSERT_TRUE(h.run_until([&] { return adapter.fifo_is_open(); })) << h.all_logs();
    EXPECT_EQ(h.counter("fifo_reopens"), 0);  // the first open
    FifoWriter keepalived(h.fifo());
    keepalived.write("INSTANCE \"VI_1\" MASTER 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 1; }));
    EXPECT_EQ(file_mode(h.fifo()), 0644u);  // an existing FIFO is used as it is
}

TEST(HaKeepalivedFifo, WithoutCreateFifoAMissingDirectoryIsAStartError) {
    Harness h;
    h.options.create_fifo = false;
    h.options.fifo = h.path("typo/notify.fifo").string();
    EXPECT_EQ(h.start_error(), "fifo: the directory " + h.path("typo").string() +
                                   " does not exist, so keepalived cannot create " + h.options.fifo +
                                   " there");
}

// Why no dummy writer is needed: a FIFO without a writer does not wake the loop, neither before the first
// writer nor after one came and went (the adapter then opens it again). Only the path check (every
// reopen_ms, 50 ms here) runs.
TEST(HaKeepalivedFifo, AnIdleFifoDoesNotWakeTheLoop) {
    Harness h;
    h.start();
    EXPECT_LE(h.run_counting(500ms), 15u);
    {
        FifoWriter keepalived(h.fifo());
        keepalived.write("INSTANCE \"VI_1\" MASTER 100\n");
        ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 1; }));
    }
    ASSERT_TRUE(h.run_until([&] { return h.counter("fifo_reopens") == 1; }));
    EXPECT_LE(h.run_counting(500ms), 15u);
    EXPECT_EQ(h.counter("fifo_reopens"), 1);
}

// keepalived unlinks a FIFO it created when it exits; with create_fifo the adapter makes a new one.
TEST(HaKeepalivedFifo, AFifoRemovedWithItsWriterIsCreatedAgain) {
    Harness h;
    h.start();
    {
        FifoWriter keepalived(h.fifo());
        keepalived.write("INSTANCE \"VI_1\" MASTER 100\n");
        ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 1; }));
        ASSERT_EQ(::unlink(h.fifo().c_str()), 0);
    }
    ASSERT_TRUE(h.run_until([&] { return h.counter("fifo_reopens") == 1; })) << h.all_logs();
    EXPECT_TRUE(h.logged(LogLevel::kInfo, "event=fifo_created"));
    FifoWriter restarted(h.fifo());
    restarted.write("INSTANCE \"VI_1\" BACKUP 100\n");
    ASSERT_TRUE(h.run_until([&] { return h.roles.size() == 2; }));
}

TEST(HaKeepalivedFifo, StopIsIdempotentAndEndsReading) {
    Harness h;
    auto& adapter = h.start();
    FifoWriter keepalived(h.fifo());
    adapter.stop();
    adapter.stop();
    EXPECT_FALSE(adapter.fifo_is_open());
    keepalived.write("INSTANCE \"VI_1\" MASTER 100\n");
    h.run_for(150ms);
    EXPECT_TRUE(h.roles.empty());
    EXPECT_EQ(h.counter("lines_read"), 0);
    std::string error;
    EXPECT_FALSE(adapter.start(h.sink, error));
    EXPECT_EQ(error, "ha-keepalived: start() after stop()");
}

// The core may stop the adapter from inside on_role: the rest of the buffer is not processed.
TEST(HaKeepalivedFifo, ASinkThatStopsTheAdapterIsSafe) {
    Harness h;
    auto& adapter = h.start();
    ON_CALL(h.sink, on_role(::testing::_, ::testing::_)).WillByDefault([&](Role role, const std::string&) {
        h.roles.emplace_back(role, "");
        adapter.stop();
    });
    FifoWriter keepalived(h.fifo());
    keepalived.write("INSTANCE \"VI_1\" MASTER 100\nINSTANCE \"VI_1\" BACKUP 100\n");
    ASSERT_TRUE(h.run_until([&] { return !h.roles.empty(); }));
    h.run_for(150ms);
    EXPECT_EQ(h.roles.size(), 1u);
    EXPECT_EQ(h.counter("lines_read"), 1);
}

// Destroying the adapter from inside on_role (a host that drops its HA plugin there) does not touch freed
// memory (run under a sanitizer to see it).
TEST(HaKeepalivedFifo, ASinkThatDestroysTheAdapterIsSafe) {
    Harness h;
    h.start();
    ON_CALL(h.sink, on_role(::testing::_, ::testing::_)).WillByDefault([&](Role role, const std::string&) {
        h.roles.emplace_back(role, "");
        h.adapter.reset();
    });
    FifoWriter keepalived(h.fifo());
    keepalived.write("INSTANCE \"VI_1\" MASTER 100\nINSTANCE \"VI_1\" BACKUP 100\n");
    ASSERT_TRUE(h.run_until([&] { return !h.roles.empty(); }));
    h.run_for(150ms);
    EXPECT_EQ(h.roles.size(), 1u);
    EXPECT_FALSE(h.adapter);
}

}  // namespace
}  // namespace ha_keepalived::test
