// SPDX-License-Identifier: GPL-2.0-or-later
// The failover lab with an SCTP association (scripts/lab/failover-lab.sh --sctp), inside the test VM: the
// host's kernel has SCTP conntrack but no SCTP sockets, Debian's stock kernel in the VM has both. One
// association (SOCK_STREAM, one line every 20 ms, echoed) from the client through the keepalived pair to the
// server, NATed like the TCP stream; both firewalls drop a packet that would start an entry with any chunk
// but INIT, and invalid ones, so after the cut only what fw2 got replicated lets the association through.
//   - with ctsync (proto-sctp: state and both verification tags; source-ctnetlink: the NAT ports): the
//     association survives the hard failover, nothing lost, no error;
//   - without state replication: it breaks, and fw2's policy is what dropped its packets.
// Runs only inside the VM: the host test failover_lab_sctp_vm (label vm) boots it.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lab/lab_run.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;

class FailoverLabSctp : public LabTest {
  protected:
    void SetUp() override {
        const int fd = ::socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
        ASSERT_GE(fd, 0) << "no SCTP sockets in this kernel: this test runs inside the VM (tests/vm, "
                            "failover_lab_sctp_vm)";
        ::close(fd);
        LabTest::SetUp();
    }
};

// The burst of one-shot UDP queries is left out (--udp-burst 0): the host's lab tests cover it.
TEST_F(FailoverLabSctp, AssociationSurvivesTheFailover) {
    last_ = run_lab({"--sctp", "--udp-burst", "0"}, 240s);
    ASSERT_FALSE(last_.run.timed_out);
    EXPECT_EQ(last_.field("sctp", "verdict"), "SURVIVED") << last_.field("sctp", "error");
    EXPECT_EQ(last_.field("sctp", "lost"), "0");
    EXPECT_EQ(last_.field("sctp", "error"), "");
    EXPECT_GT(last_.number("sctp", "sent"), 0);
    EXPECT_EQ(last_.field("tcp", "verdict"), "SURVIVED");  // the lab's other streams, in the same run
    EXPECT_EQ(last_.field("tcp6", "verdict"), "SURVIVED");
    EXPECT_EQ(last_.field("udp", "verdict"), "SURVIVED");
    EXPECT_GT(last_.number("failover", "takeover_ms"), 0);
    EXPECT_EQ(last_.run.exit_code, 0);
}

TEST_F(FailoverLabSctp, WithoutStateReplicationTheAssociationBreaks) {
    last_ = run_lab({"--sctp", "--udp-burst", "0", "--sync", "none"}, 240s);
    ASSERT_FALSE(last_.run.timed_out);
    EXPECT_EQ(last_.field("sctp", "verdict"), "BROKEN");
    EXPECT_EQ(last_.field("tcp", "verdict"), "BROKEN");
    // fw2 knew nothing of the association: its DATA chunks are invalid there, a HEARTBEAT would be a new
    // entry that does not start with INIT; the policy dropped them.
    EXPECT_GT(last_.number("sctp", "fw2_invalid") + last_.number("sctp", "fw2_non_init_new"), 0);
    EXPECT_GT(last_.number("failover", "takeover_ms"), 0);
    EXPECT_EQ(last_.run.exit_code, 1);
}

}  // namespace
}  // namespace ctsync::test
