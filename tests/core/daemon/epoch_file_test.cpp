// SPDX-License-Identifier: GPL-2.0-or-later
// The epoch file (issue 14): each run's epoch is above every earlier run's, also when the clock stepped
// back in between; a damaged or unwritable file is reported and never stops the daemon.
#include "core/daemon/epoch_file.hpp"

#include <gtest/gtest.h>

#include "tests/support/process.hpp"

namespace ctsync::core {
namespace {

namespace fs = std::filesystem;

TEST(EpochFile, EachRunIsAboveTheLastEvenWhenTheClockSteppedBack) {
    test::TempDir dir;
    const fs::path file = dir.path() / "state" / "ctsyncd.epoch";  // the directory is created
    auto first = next_epoch(file, 1'000'000);
    EXPECT_EQ(first.epoch, 1'000'000u);
    EXPECT_EQ(first.previous, 0u);
    EXPECT_TRUE(first.warning.empty()) << first.warning;
    EXPECT_EQ(test::read_file(file), "1000000\n");
    // The clock moved on: the clock wins.
    auto second = next_epoch(file, 2'000'000);
    EXPECT_EQ(second.epoch, 2'000'000u);
    EXPECT_EQ(second.previous, 1'000'000u);
    // The clock stepped back an hour: one more than the last run's.
    auto third = next_epoch(file, 1'500'000);
    EXPECT_EQ(third.epoch, 2'000'001u);
    auto fourth = next_epoch(file, 5);
    EXPECT_EQ(fourth.epoch, 2'000'002u);
    EXPECT_EQ(test::read_file(file), "2000002\n");
    EXPECT_FALSE(fs::exists(file.string() + ".new"));
}

TEST(EpochFile, ADamagedFileIsReportedAndRewritten) {
    test::TempDir dir;
    const fs::path file = dir.path() / "ctsyncd.epoch";
    test::write_file(file, "not a number\n");
    auto e = next_epoch(file, 42);
    EXPECT_EQ(e.epoch, 42u);
    EXPECT_NE(e.warning.find("does not hold an epoch"), std::string::npos) << e.warning;
    EXPECT_EQ(test::read_file(file), "42\n");
}

TEST(EpochFile, AnUnwritableDirectoryIsReportedAndTheEpochStillRises) {
    // A path below a regular file: not writable even for root (the tests run as root).
    test::TempDir dir;
    test::write_file(dir.path() / "plain", "x");
    const fs::path file = dir.path() / "plain" / "ctsyncd.epoch";  // a file is no directory
    auto e = next_epoch(file, 77);
    EXPECT_EQ(e.epoch, 77u);
    EXPECT_NE(e.warning.find("cannot create"), std::string::npos) << e.warning;
}

}  // namespace
}  // namespace ctsync::core
