// SPDX-License-Identifier: GPL-2.0-or-later
// The track file keepalived reads: the hold value from start until the table is complete, the ready value
// after, written only on change and by rename (no temporary file left behind), the weighted value and its
// rate limit, the hold value again at stop, and a failed write counted, logged and retried.
#include <algorithm>
#include <filesystem>

#include "ha_test_util.hpp"

namespace ha_keepalived::test {
namespace {

using ctsync::sdk::SyncReadiness;

std::vector<std::string> directory_entries(const std::filesystem::path& dir) {
    std::vector<std::string> out;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        out.push_back(entry.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

TEST(HaKeepalivedTrackFile, StartHoldsThenReadyOnlyOnChange) {
    Harness h;
    h.options.track_file = h.path("ready").string();
    auto& adapter = h.start();
    EXPECT_EQ(file_text(h.path("ready")), "-253\n");
    EXPECT_EQ(file_mode(h.path("ready")), 0644u);
    EXPECT_EQ(h.counter("track_writes"), 1);
    EXPECT_EQ(h.gauge("track_value"), -253);

    adapter.update_readiness(SyncReadiness{false, 10});
    EXPECT_EQ(h.counter("track_writes"), 1);  // still held: no write
    adapter.update_readiness(SyncReadiness{true, 20});
    EXPECT_EQ(file_text(h.path("ready")), "0\n");
    EXPECT_EQ(h.counter("track_writes"), 2);
    EXPECT_EQ(h.gauge("track_value"), 0);
    adapter.update_readiness(SyncReadiness{true, 30});
    adapter.update_readiness(SyncReadiness{true, 40});
    EXPECT_EQ(h.counter("track_writes"), 2);  // the value did not change
    EXPECT_TRUE(h.logged(LogLevel::kInfo, "event=track_file_written track_file=\"" +
                                              h.path("ready").string() + "\" value=0 state=ready"));
    // The table went incomplete again (a resync): held again, at once.
    adapter.update_readiness(SyncReadiness{false, 40});
    EXPECT_EQ(file_text(h.path("ready")), "-253\n");
    EXPECT_EQ(h.counter("track_writes"), 3);
    // Only the FIFO and the track file: the temporary file was renamed over it.
    EXPECT_EQ(directory_entries(h.path("")), (std::vector<std::string>{"notify.fifo", "ready"}));
}

TEST(HaKeepalivedTrackFile, StopWritesTheHoldValue) {
    Harness h;
    h.options.track_file = h.path("ready").string();
    auto& adapter = h.start();
    adapter.update_readiness(SyncReadiness{true, 1});
    ASSERT_EQ(file_text(h.path("ready")), "0\n");
    adapter.stop();
    EXPECT_EQ(file_text(h.path("ready")), "-253\n");
    EXPECT_TRUE(h.logged(LogLevel::kInfo, "state=hold reason=\"ctsyncd stops"));
    const auto writes = h.counter("track_writes");
    adapter.stop();
    EXPECT_EQ(h.counter("track_writes"), writes);
}

TEST(HaKeepalivedTrackFile, ConfiguredValuesAreWritten) {
    Harness h;
    h.options.track_file = h.path("ready").string();
    h.options.hold_value = 1;  // for a keepalived track_file with weight 0: non-zero is a fault
    h.options.ready_value = 0;
    auto& adapter = h.start();
    EXPECT_EQ(file_text(h.path("ready")), "1\n");
    adapter.update_readiness(SyncReadiness{true, 1});
    EXPECT_EQ(file_text(h.path("ready")), "0\n");
}

TEST(HaKeepalivedTrackFile, ReadinessBeforeStartIsWrittenAtStart) {
    Harness h;
    h.options.track_file = h.path("ready").string();
    auto& adapter = h.make();
    adapter.update_readiness(SyncReadiness{true, 5});
    EXPECT_FALSE(std::filesystem::exists(h.path("ready")));
    std::string error;
    ASSERT_TRUE(adapter.start(h.sink, error)) << error;
    EXPECT_EQ(file_text(h.path("ready")), "0\n");
}

TEST(HaKeepalivedTrackFile, WeightedBySequenceAndRateLimited) {
    Harness h;
    h.options.track_file = h.path("ready").string();
    h.options.weight_by_sequence = true;
    h.options.ready_value = 10;
    h.options.sequence_bonus_max = 50;
    auto& adapter = h.start();
    EXPECT_EQ(file_text(h.path("ready")), "-253\n");
    adapter.update_readiness(SyncReadiness{true, 1234});  // hold -> ready: at once
    EXPECT_EQ(file_text(h.path("ready")), std::to_string(10 + 1234 % 51) + "\n");
    EXPECT_EQ(h.counter("track_writes"), 2);

    // The sequence moves on: the bonus follows at most once a second, with the latest sequence.
    adapter.update_readiness(SyncReadiness{true, 1240});
    adapter.update_readiness(SyncReadiness{true, 1241});
    EXPECT_EQ(file_text(h.path("ready")), std::to_string(10 + 1234 % 51) + "\n");
    EXPECT_EQ(h.counter("track_writes"), 2);
    ASSERT_TRUE(h.run_until([&] { return h.counter("track_writes") == 3; }, 3s));
    EXPECT_EQ(file_text(h.path("ready")), std::to_string(10 + 1241 % 51) + "\n");

    // This node becomes primary: the maximum bonus.
    FifoWriter keepalived(h.fifo());
    keepalived.write("INSTANCE \"VI_1\" MASTER 100\n");
    ASSERT_TRUE(h.run_until([&] { return file_text(h.path("ready")) == "60\n"; }, 3s)) << h.all_logs();
    // Readiness lost: the hold is written at once, whatever the rate limit.
    adapter.update_readiness(SyncReadiness{false, 1300});
    EXPECT_EQ(file_text(h.path("ready")), "-253\n");
}

TEST(HaKeepalivedTrackFile, AFailedWriteIsCountedLoggedAndRetried) {
    Harness h;
    h.options.track_file = h.path("ready").string();
    auto& adapter = h.start();
    // A directory where the temporary file goes makes the next write fail.
    const auto temporary = h.path(".ready.ctsync-tmp");
    std::filesystem::create_directory(temporary);
    adapter.update_readiness(SyncReadiness{true, 1});
    EXPECT_EQ(h.counter("track_write_errors"), 1);
    EXPECT_EQ(file_text(h.path("ready")), "-253\n");  // keepalived keeps the previous value
    EXPECT_TRUE(h.logged(LogLevel::kError, "event=track_file_write_failed track_file=\"" +
                                               h.path("ready").string() +
                                               "\" value=0 reason=\"cannot create " + temporary.string() +
                                               ": Is a directory\""))
        << h.all_logs();
    h.run_for(1100ms);
    EXPECT_GE(h.counter("track_write_errors"), 2);  // retried
    std::filesystem::remove(temporary);
    ASSERT_TRUE(h.run_until([&] { return file_text(h.path("ready")) == "0\n"; }, 3s));
    EXPECT_TRUE(h.logged(LogLevel::kInfo, "event=track_file_recovered"));
    std::size_t errors_logged = 0;
    for (const auto& line : h.logs) {
        errors_logged += line.text.find("event=track_file_write_failed") != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(errors_logged, 1u);  // once per failure streak
}

TEST(HaKeepalivedTrackFile, AnUnwritableTrackFileIsAStartError) {
    Harness h;
    h.options.track_file = h.path("missing/ready").string();
    EXPECT_EQ(h.start_error(), "track_file: cannot create " + h.path("missing/.ready.ctsync-tmp").string() +
                                   ": No such file or directory (the directory does not exist)");
    EXPECT_FALSE(h.adapter->fifo_is_open());
}

TEST(HaKeepalivedTrackFile, WithoutTrackFileReadinessWritesNothing) {
    Harness h;
    auto& adapter = h.start();
    adapter.update_readiness(SyncReadiness{true, 1});
    adapter.stop();
    EXPECT_EQ(h.counter("track_writes"), 0);
    EXPECT_EQ(directory_entries(h.path("")), std::vector<std::string>{"notify.fifo"});
}

}  // namespace
}  // namespace ha_keepalived::test
