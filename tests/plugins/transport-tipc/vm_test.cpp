// SPDX-License-Identifier: GPL-2.0-or-later
// transport-tipc's VM tests from the host (label vm): scripts/vm/vm-run.sh boots Debian's stock kernel (which
// has TIPC; this host's has not) and runs ctsync_transport_tipc_vm_tests there. Passes when every test inside
// passed; fails, never skips, when the VM cannot boot or runs too long. The timings the tests measured
// inside (peer down after a stop, after a cut link; the reconnect) are repeated in this test's output.
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>
#include <string>

#include "tests/support/process.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;

TEST(TransportTipcVm, EveryTestPassesInsideTheVm) {
    auto r = run({CTSYNC_VM_RUN, "--timeout", "780", "--", CTSYNC_TRANSPORT_TIPC_VM_INSIDE}, 840s);
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("measured: ", 0) == 0 || line.rfind("accepted ", 0) == 0 ||
            line.find("tests ran") != std::string::npos) {
            std::cout << line << "\n";
        }
    }
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("[  PASSED  ]"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("[  FAILED  ]"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("[  SKIPPED ]"), std::string::npos) << "nothing may be skipped inside the VM\n"
                                                             << r.out;
}

}  // namespace
}  // namespace ctsync::test
