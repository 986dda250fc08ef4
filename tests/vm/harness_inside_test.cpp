// SPDX-License-Identifier: GPL-2.0-or-later
// Runs inside the test VM (scripts/vm/vm-run.sh; ctest's vm.harness): what the VM must give the TIPC and
// SCTP tests. Debian's stock kernel, TIPC and SCTP sockets, the kernel's conntrack table through ctnetlink,
// namespaces and iproute2's tipc, the build tree's plugins at their host paths. On the host kernel most of
// these fail by design: this binary is not registered with ctest on its own.
#include <gtest/gtest.h>
#include <linux/tipc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;

TEST(VmHarnessInside, RunsInsideTheVmOnDebiansStockKernel) {
    ASSERT_NE(getenv("CTSYNC_VM_INSIDE"), nullptr) << "run through scripts/vm/vm-run.sh";
    utsname u{};
    ASSERT_EQ(uname(&u), 0);
    EXPECT_TRUE(std::string(u.release).ends_with("-amd64")) << u.release;
}

TEST(VmHarnessInside, TipcAndSctpSocketsExist) {
    const int tipc = socket(AF_TIPC, SOCK_RDM, 0);
    EXPECT_GE(tipc, 0) << "socket(AF_TIPC): " << std::strerror(errno);
    close(tipc);
    for (int type : {SOCK_STREAM, SOCK_SEQPACKET}) {
        const int sctp = socket(AF_INET, type, IPPROTO_SCTP);
        EXPECT_GE(sctp, 0) << "socket(IPPROTO_SCTP): " << std::strerror(errno);
        close(sctp);
    }
}

TEST(VmHarnessInside, NamespacesGetTheirOwnTipcNodeAndConntrackTable) {
    NetNs a("vma"), b("vmb");
    ASSERT_EQ(run(a.exec({"ip", "link", "add", "t0", "type", "veth", "peer", "t1", "netns", b.name()}), 10s)
                  .exit_code,
              0);
    for (auto* ns : {&a, &b}) {
        ASSERT_EQ(run(ns->exec({"ip", "link", "set", ns == &a ? "t0" : "t1", "up"}), 10s).exit_code, 0);
        ASSERT_EQ(run(ns->exec({"tipc", "node", "set", "identity", ns->name()}), 10s).exit_code, 0);
        ASSERT_EQ(
            run(ns->exec({"tipc", "bearer", "enable", "media", "eth", "dev", ns == &a ? "t0" : "t1"}), 10s)
                .exit_code,
            0);
    }
    // TIPC's link supervision brings the link up by itself (LAB-FACTS: about a second).
    EXPECT_TRUE(wait_until(
        [&] {
            auto r = run(a.exec({"tipc", "link", "list"}), 10s);
            std::size_t ups = 0;
            for (auto at = r.out.find(": up"); at != std::string::npos; at = r.out.find(": up", at + 1)) {
                ++ups;
            }
            return r.exit_code == 0 && ups >= 2;  // the broadcast link and the link to the other node
        },
        20s, 200ms));
    // A conntrack entry written through ctnetlink lands in that namespace's table only.
    ASSERT_EQ(run(a.exec({"conntrack", "-I", "-p", "tcp", "-s", "192.0.2.1", "-d", "198.51.100.1", "--sport",
                          "1000", "--dport", "80", "--state", "ESTABLISHED", "-t", "60", "-u", "ASSURED"}),
                  10s)
                  .exit_code,
              0);
    EXPECT_NE(run(a.exec({"conntrack", "-L"}), 10s).out.find("192.0.2.1"), std::string::npos);
    EXPECT_EQ(run(b.exec({"conntrack", "-L"}), 10s).out.find("192.0.2.1"), std::string::npos);
}

TEST(VmHarnessInside, BuildTreeIsThereAtItsHostPath) {
    EXPECT_TRUE(std::filesystem::exists(CTSYNC_CTSYNCD));
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(CTSYNC_BINARY_DIR) / "lib/ctsync/plugins"));
    auto r = run({CTSYNC_CTSYNCD, "--list-plugins"}, 60s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("transport-mcast"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace ctsync::test
