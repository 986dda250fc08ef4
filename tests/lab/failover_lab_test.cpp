// SPDX-License-Identifier: GPL-2.0-or-later
// The failover lab (scripts/lab/failover-lab.sh) end to end: a NATed TCP connection and a UDP session from a
// client through a keepalived firewall pair to a server, every port of the master cut while they run. The
// script builds the lab in namespaces of its own (prefix "ctsync-t<pid>-lab-", which scripts/lab-cleanup.sh
// knows), measures, and prints "RESULT <what> key=value ..." lines; this test runs it and checks them.
//   - ctsync with the ha-keepalived plugin (notify FIFO + track file): TCP and UDP survive the failover and
//     the failback, nothing lost, the gap within VRRP takeover + one TCP retransmission interval, no RST;
//   - no state replication at all: TCP breaks (the lab can fail);
//   - keepalived's notify scripts calling contrib/keepalived/primary-backup.sh instead of the plugin;
//   - 200000 NATed entries in the master's kernel: all in the new master's kernel before the VIPs move.
// Needs root (namespaces), keepalived, nft and conntrack; fails without them, as the other lab tests do.
#include "tests/lab/lab_run.hpp"

namespace ctsync::test {
namespace {

// TCP connections in closing states through the failover (the lab's header): each ends as it would have
// without one. Half-closed (CLOSE_WAIT): the server's direction streams on, nothing lost, a clean EOF.
// FIN_WAIT: the client's retransmitted FIN, answered through fw2, closes it (conntrack names the state
// LAST_ACK once it has seen that retransmission, which may come before the cut). TIME_WAIT: the server's
// LAST-ACK socket retransmits its FIN and the client's answer passes fw2.
void expect_closing_states_as_without_failover(const LabRun& lab) {
    EXPECT_EQ(lab.field("tcp_half_closed", "verdict"), "SURVIVED") << lab.field("tcp_half_closed", "error");
    EXPECT_EQ(lab.field("tcp_half_closed", "fw1"), "CLOSE_WAIT");
    EXPECT_EQ(lab.field("tcp_half_closed", "lost"), "0");
    EXPECT_EQ(lab.field("tcp_fin_wait", "verdict"), "CLOSED") << lab.field("tcp_fin_wait", "error");
    const std::string fin_wait_fw1 = lab.field("tcp_fin_wait", "fw1");
    EXPECT_TRUE(fin_wait_fw1 == "FIN_WAIT" || fin_wait_fw1 == "LAST_ACK") << fin_wait_fw1;
    EXPECT_EQ(lab.field("tcp_time_wait", "verdict"), "CLOSED");
    EXPECT_EQ(lab.field("tcp_time_wait", "fw1"), "TIME_WAIT");
    EXPECT_EQ(lab.field("tcp_time_wait", "server_last_ack_before"), "1");
}

// The lab's bound for the gap: VRRP takeover + the largest TCP retransmission timeout + 250 ms.
void expect_survived(const LabRun& lab) {
    EXPECT_EQ(lab.field("tcp", "verdict"), "SURVIVED");
    EXPECT_EQ(lab.field("tcp", "lost"), "0");
    EXPECT_EQ(lab.field("tcp", "error"), "");
    EXPECT_EQ(lab.field("tcp", "within_bound"), "yes")
        << "gap " << lab.field("tcp", "gap_ms") << " ms, bound " << lab.field("tcp", "bound_ms") << " ms";
    EXPECT_EQ(lab.field("udp", "verdict"), "SURVIVED");
    EXPECT_EQ(lab.field("udp", "mappings"), "1") << lab.field("udp", "seen");
    EXPECT_EQ(lab.field("tcp6", "verdict"), "SURVIVED");  // the same stream over IPv6, NAT66 on the pair
    EXPECT_EQ(lab.field("tcp6", "lost"), "0");
    EXPECT_EQ(lab.field("tcp6", "error"), "");
    expect_closing_states_as_without_failover(lab);
    EXPECT_EQ(lab.field("rst", "rst"), "0");
    EXPECT_GT(lab.number("failover", "takeover_ms"), 0);
    // The DNS-like burst before the failover (proto-udp's default: only assured UDP flows are sent): every
    // query answered, none of their flows on fw2, each counted as held back on fw1.
    EXPECT_EQ(lab.field("udp_burst", "verdict"), "NOT_SENT");
    EXPECT_EQ(lab.field("udp_burst", "answered"), lab.field("udp_burst", "sent"));
    EXPECT_GE(lab.number("udp_burst", "fw1_flows"), 200);
    EXPECT_GE(lab.number("udp_burst", "held_back"), 200);
    EXPECT_EQ(lab.field("udp_burst", "fw2_external"), "0");
}

using FailoverLab = LabTest;

TEST_F(FailoverLab, FifoPluginSurvivesFailoverAndFailback) {
    last_ = run_lab({"--failback"});
    ASSERT_FALSE(last_.run.timed_out);
    expect_survived(last_);
    EXPECT_GT(last_.number("failback", "takeover_ms"), 0);
    // fw1 (254) must not take the VIPs back from fw2 (253) before its own table is complete.
    EXPECT_EQ(last_.field("failback", "fw1_complete"), "true");
    // Invalid drops on fw1 after it came back: its own entry of the stream, stale since the failover (TCP
    // window tracking), was kept instead of being replaced by the one fw2 replicated.
    EXPECT_EQ(last_.field("failback", "fw1_invalid_drops"), "0");
    EXPECT_EQ(last_.run.exit_code, 0);
}

TEST_F(FailoverLab, WithoutStateReplicationTheStreamBreaks) {
    last_ = run_lab({"--sync", "none"});
    ASSERT_FALSE(last_.run.timed_out);
    EXPECT_EQ(last_.field("tcp", "verdict"), "BROKEN");
    EXPECT_EQ(last_.field("udp", "verdict"), "BROKEN");  // fully-random SNAT: another source port
    EXPECT_EQ(last_.field("tcp6", "verdict"), "BROKEN");
    // The closing connections the run with ctsync closes: fw2 has no entry and drops what would close them.
    EXPECT_EQ(last_.field("tcp_half_closed", "verdict"), "BROKEN");
    EXPECT_EQ(last_.field("tcp_half_closed", "fw2_at_vip"), "none");
    EXPECT_EQ(last_.field("tcp_fin_wait", "verdict"), "BROKEN");
    EXPECT_EQ(last_.field("tcp_time_wait", "verdict"), "BROKEN");
    EXPECT_EQ(last_.field("tcp_time_wait", "server_last_ack_before"), "1");
    EXPECT_GT(last_.number("failover", "takeover_ms"), 0);
    EXPECT_EQ(last_.run.exit_code, 1);
}

// keepalived's notify_master/backup/fault run contrib/keepalived/primary-backup.sh, written the way
// conntrackd's is, with ctsyncctl's conntrackd-compatible flags: the same lab, failover and failback.
TEST_F(FailoverLab, NotifyScriptsSurviveFailoverAndFailback) {
    last_ = run_lab({"--ha", "script", "--failback"});
    ASSERT_FALSE(last_.run.timed_out);
    expect_survived(last_);
    EXPECT_GT(last_.number("failback", "takeover_ms"), 0);
    EXPECT_EQ(last_.field("failback", "fw1_invalid_drops"), "0");
    EXPECT_EQ(last_.run.exit_code, 0);
}

TEST_F(FailoverLab, TwoHundredThousandEntriesAreInTheKernelBeforeTheVipsMove) {
    last_ = run_lab({"--entries", "200000"});
    ASSERT_FALSE(last_.run.timed_out);
    EXPECT_EQ(last_.field("entries", "committed_before_vip"), "yes")
        << "present " << last_.field("entries", "present") << " of " << last_.field("entries", "primary");
    EXPECT_EQ(last_.field("entries", "injected_present"), "200000");
    EXPECT_EQ(last_.field("rst", "rst"), "0");
    EXPECT_EQ(last_.field("tcp", "verdict"), "SURVIVED");
    EXPECT_EQ(last_.field("tcp", "lost"), "0");
    EXPECT_EQ(last_.field("tcp6", "verdict"), "SURVIVED");
    expect_closing_states_as_without_failover(last_);
    // The failover's own promotion: one. A start-up one (fw2 won the first election before fw1 was ready)
    // is counted apart in promotions_before_cut.
    EXPECT_EQ(last_.field("promotion", "promotions_at_failover"), "1");
    EXPECT_EQ(last_.field("promotion", "failover.promote_failed"), "0");
    EXPECT_EQ(last_.run.exit_code, 0);
}

// The control for the one above: with a cold standby (conntrackd's way) the table reaches fw2's kernel only
// when the promotion commits it, after keepalived took the VIPs — the measurement can tell the difference.
TEST_F(FailoverLab, ColdStandbyCommitsOnlyAfterTheVipsMoved) {
    last_ = run_lab({"--entries", "200000", "--standby", "cold"});
    ASSERT_FALSE(last_.run.timed_out);
    EXPECT_EQ(last_.field("entries", "committed_before_vip"), "no");
    EXPECT_GE(last_.number("promotion", "failover.promote_committed"), 200000);
}

}  // namespace
}  // namespace ctsync::test
