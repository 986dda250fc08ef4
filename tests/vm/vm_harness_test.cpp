// SPDX-License-Identifier: GPL-2.0-or-later
// The VM harness from the host (label vm): scripts/vm/vm-run.sh boots Debian's stock kernel under qemu (TCG),
// gives back the command's output and exit code, stops a VM that runs too long, and the checks the TIPC and
// SCTP tests rely on pass inside it (harness_inside_test.cpp). Each test boots one VM: about 10 s.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/process.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
const std::string kVmRun = CTSYNC_VM_RUN;

TEST(VmHarness, GivesBackTheCommandsOutputAndExitCode) {
    auto r =
        run({kVmRun, "--timeout", "240", "--", "sh", "-c", "uname -r; echo marker-$((6*7)); exit 7"}, 300s);
    EXPECT_EQ(r.exit_code, 7) << r.err;
    EXPECT_NE(r.out.find("marker-42"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("-amd64"), std::string::npos) << r.out;
}

TEST(VmHarness, StopsAVmThatRunsPastItsTimeout) {
    const auto started = std::chrono::steady_clock::now();
    auto r = run({kVmRun, "--timeout", "20", "--", "sleep", "600"}, 120s);
    EXPECT_EQ(r.exit_code, 124) << r.err;
    EXPECT_NE(r.err.find("ran past 20 s"), std::string::npos) << r.err;
    EXPECT_LT(std::chrono::steady_clock::now() - started, 60s);
}

TEST(VmHarness, InsideTheVmTipcSctpConntrackAndTheBuildTreeWork) {
    auto r = run({kVmRun, "--timeout", "400", "--", CTSYNC_VM_HARNESS_INSIDE}, 450s);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("[  PASSED  ] 4 tests"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace ctsync::test
