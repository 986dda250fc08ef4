// SPDX-License-Identifier: GPL-2.0-or-later
// ctsyncctl's conntrackd-compatible flags without a daemon: the requests each flag sends, the -s sections in
// conntrackd's layout (tabs and column widths included), and the text of the replies.
#include "core/ctl/conntrackd_compat.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ctsync::core::ctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

std::vector<std::string> commands(const std::vector<control::Request>& requests) {
    std::vector<std::string> out;
    for (const auto& r : requests) {
        out.push_back(r.args.empty() ? r.command : r.command + " " + r.args.dump());
    }
    return out;
}

std::vector<std::string> commands(CompatAction action, const std::string& argument = "") {
    return commands(requests_for(CompatCommand{action, argument}));
}

TEST(ConntrackdCompat, EachFlagSendsItsRequests) {
    using V = std::vector<std::string>;
    for (const std::string arg : {"", "ct", "expect"}) {
        EXPECT_EQ(commands(CompatAction::kCommit, arg), V{R"(role {"role":"primary"})"}) << arg;
        EXPECT_EQ(commands(CompatAction::kFlushKernel, arg), V{R"(flush {"target":"kernel"})"}) << arg;
        EXPECT_EQ(commands(CompatAction::kResync, arg), V{"resync"}) << arg;
    }
    // -f: the internal cache is the kernel's table as read, so flushing it means reading the kernel again.
    EXPECT_EQ(commands(CompatAction::kFlushCaches), (V{"resync", R"(flush {"target":"external"})"}));
    EXPECT_EQ(commands(CompatAction::kFlushCaches, "internal"), V{"resync"});
    EXPECT_EQ(commands(CompatAction::kFlushCaches, "external"), V{R"(flush {"target":"external"})"});
    EXPECT_EQ(commands(CompatAction::kSendBulk), V{"send-bulk"});
    EXPECT_EQ(commands(CompatAction::kRequestBulk), V{"request-bulk"});
    EXPECT_EQ(commands(CompatAction::kLeavePrimary), V{R"(role {"role":"backup"})"});
    EXPECT_EQ(commands(CompatAction::kKill), V{"shutdown"});
    EXPECT_EQ(commands(CompatAction::kStats, "network"), (V{"status", "stats", "plugins"}));
    EXPECT_EQ(commands(CompatAction::kDumpInternal, "expect"), V{R"(dump {"cache":"internal"})"});
    EXPECT_EQ(commands(CompatAction::kDumpExternal), V{R"(dump {"cache":"external"})"});
}

TEST(ConntrackdCompat, FlagNamesAndArgumentsAreConntrackds) {
    EXPECT_EQ(flag_name(CompatAction::kCommit), "-c");
    EXPECT_EQ(flag_name(CompatAction::kFlushCaches), "-f");
    EXPECT_EQ(flag_name(CompatAction::kFlushKernel), "-F");
    EXPECT_EQ(flag_name(CompatAction::kLeavePrimary), "-t");
    EXPECT_EQ(flag_name(CompatAction::kDumpExternal), "-e");
    EXPECT_EQ(flag_choices(CompatAction::kStats),
              (std::vector<std::string>{"network", "cache", "runtime", "link", "rsqueue", "process", "queue",
                                        "ct", "expect"}));
    EXPECT_EQ(flag_choices(CompatAction::kFlushCaches), (std::vector<std::string>{"internal", "external"}));
    EXPECT_EQ(flag_choices(CompatAction::kDumpInternal), (std::vector<std::string>{"ct", "expect"}));
    EXPECT_TRUE(flag_choices(CompatAction::kKill).empty());
}

// A primary with a source and two links: sync-eth2 (multicast, active) and sync-eth3 (TCP, standby).
StatsInput replicating_node() {
    StatsInput in;
    in.status = Json::parse(R"({
        "pid": 4536, "uptime_s": 93780, "role": "PRIMARY",
        "tables": {"internal_flows": 14, "internal_expectations": 1, "external_flows": 3,
                   "external_expectations": 2},
        "replication": {
            "resend_queue": {"datagrams": 2, "bytes": 300, "oldest": 7},
            "links": [{"name": "sync-eth2", "carrier": true, "active": true, "silent_ms": 3},
                      {"name": "sync-eth3", "carrier": false, "active": false, "silent_ms": 9000}]}})");
    in.plugins = Json::parse(R"([
        {"instance": "ct", "plugin": "source-ctnetlink", "category": "source"},
        {"instance": "sync-eth2", "plugin": "transport-mcast", "category": "transport"},
        {"instance": "sync-eth3", "plugin": "transport-tcp", "category": "transport"}])");
    std::vector<std::pair<std::string, std::int64_t>> metrics = {
        {"sync-eth2.bytes_sent", 1000},
        {"sync-eth2.bytes_received", 2000},
        {"sync-eth2.datagrams_sent", 10},
        {"sync-eth2.datagrams_received", 20},
        {"sync-eth2.tx_errors", 1},
        {"sync-eth2.rx_errors", 2},
        {"sync-eth2.send_queue_datagrams", 4},
        {"sync-eth3.bytes_sent", 5},
        {"sync-eth3.bytes_received", 6},
        {"sync-eth3.datagrams_sent", 7},
        {"sync-eth3.datagrams_received", 8},
        {"replication.rx_malformed", 1},
        {"replication.rx_dropped_bad_magic", 2},
        {"replication.rx_dropped_truncated", 3},
        {"replication.rx_dropped_bad_tag", 50},  // forged: not malformed
        {"replication.nacks_sent", 9},
        {"internal.events", 100},
        {"internal.dumped", 14},
        {"internal.filtered", 2},
        {"commit.runs", 1},
        {"ct.events_new", 40},
        {"ct.events_update", 50},
        {"ct.events_destroy", 26},
        {"ct.event_overruns", 1},
        {"ct.dumps", 2},
        {"ct.event_buffer_bytes", 212992},
        {"control.requests", 12},
        {"control.bad_requests", 1},
        {"control.failed_requests", 0},
    };
    in.stats = Json::array();
    for (const auto& [name, value] : metrics) {
        in.stats.push_back({{"name", name}, {"kind", "counter"}, {"help", "h"}, {"value", value}});
    }
    return in;
}

std::string stats_text(const std::string& section, const StatsInput& in) {
    std::string error;
    auto text = format_stats(section, in, error);
    EXPECT_TRUE(text.has_value()) << error;
    return text.value_or("");
}

TEST(ConntrackdCompat, DefaultStatsHaveConntrackdsSectionsAndColumns) {
    const std::string expected =
        "cache internal:\n"
        "current active connections:\t          14\n"
        "\n"
        "cache external:\n"
        "current active connections:\t           3\n"
        "\n"
        "multicast traffic (active link=sync-eth2):\n"
        "                1000 Bytes sent                 2000 Bytes recv\n"
        "                  10 Pckts sent                   20 Pckts recv\n"
        "                   1 Error send                    2 Error recv\n"
        "\n"
        "message tracking:\n"
        "                   6 Malformed msgs\n"
        "\n";
    EXPECT_EQ(stats_text("", replicating_node()), expected);
    EXPECT_EQ(stats_text("ct", replicating_node()), expected);
}

TEST(ConntrackdCompat, ExpectStatsCountExpectations) {
    auto text = stats_text("expect", replicating_node());
    EXPECT_THAT(text, HasSubstr("cache internal:\ncurrent active connections:\t           1\n"));
    EXPECT_THAT(text, HasSubstr("cache external:\ncurrent active connections:\t           2\n"));
}

TEST(ConntrackdCompat, WithoutReplicationOnlyTheCachesArePrintedAndReplicationSectionsFail) {
    StatsInput in;
    in.status = Json::parse(R"({"pid": 7, "uptime_s": 59, "role": "INIT", "replication": null,
        "tables": {"internal_flows": 0, "internal_expectations": 0, "external_flows": 5,
                   "external_expectations": 0}})");
    in.stats = Json::array();
    in.plugins = Json::array();
    EXPECT_EQ(stats_text("", in),
              "cache internal:\ncurrent active connections:\t           0\n\n"
              "cache external:\ncurrent active connections:\t           5\n\n");
    for (const std::string section : {"network", "link", "rsqueue", "queue"}) {
        std::string error;
        EXPECT_FALSE(format_stats(section, in, error).has_value()) << section;
        EXPECT_EQ(error,
                  "replication is not configured (no transports in the config): -s " + section + " shows it");
    }
    // Nothing is invented: the runtime section has no netlink part without a source, and no metric lines
    // without metrics.
    EXPECT_EQ(stats_text("runtime", in), "daemon uptime: 0 min\n\nruntime stats:\n\n");
    EXPECT_EQ(stats_text("process", in), "ctsyncd runs no child processes (daemon PID=7)\n");
}

TEST(ConntrackdCompat, MissingNumbersDropTheirLinesNotTheSection) {
    auto in = replicating_node();
    in.status["tables"].erase("external_flows");
    in.stats = Json::array();  // no metrics at all
    EXPECT_EQ(stats_text("", in),
              "cache internal:\ncurrent active connections:\t          14\n\n"
              "cache external:\n\n"
              "multicast traffic (active link=sync-eth2):\n\n");
}

TEST(ConntrackdCompat, CacheStatsUseTheExtendedLayout) {
    const std::string expected =
        "cache:internal\tactive objects:\t\t          14\n"
        "\texpectations:\t\t\t           1\n"
        "\tkernel events applied:\t\t         100\n"
        "\tentries read by dumps:\t\t          14\n"
        "\tflows filtered out:\t\t           2\n"
        "\n"
        "cache:external\tactive objects:\t\t           3\n"
        "\texpectations:\t\t\t           2\n"
        "\tcommits:\t\t\t           1\n"
        "\n";
    EXPECT_EQ(stats_text("cache", replicating_node()), expected);
}

TEST(ConntrackdCompat, RuntimeStatsShowUptimeAndTheSourcesCounters) {
    const std::string expected =
        "daemon uptime: 1 day 2 h 3 min\n"
        "\n"
        "netlink stats:\n"
        "\tevents received:\t                 116\n"
        "\tevents filtered:\t                   2\n"
        "\tnetlink overrun:\t\t           1\n"
        "\tresync with kernel table:\t           2\n"
        "\tcurrent buffer size (in bytes):\t      212992\n"
        "\n"
        "runtime stats:\n"
        "\tcontrol requests answered:\t          12\n"
        "\tcontrol requests refused:\t           1\n"
        "\tcontrol requests failed:\t           0\n"
        "\n";
    EXPECT_EQ(stats_text("runtime", replicating_node()), expected);
}

TEST(ConntrackdCompat, NetworkStatsSumMalformedButNotForged) {
    auto text = stats_text("network", replicating_node());
    EXPECT_THAT(text,
                HasSubstr("network statistics:\n\trecv:\n\t\tMalformed messages:\t                   6\n"));
    EXPECT_THAT(text, HasSubstr("\t\tMalformed payload:\t                   1\n"));
    EXPECT_THAT(text, HasSubstr("\t\tTruncated message:\t                   3\n"));
    EXPECT_THAT(text, HasSubstr("\t\tBad tag (forged):\t                  50\n"));
    EXPECT_THAT(
        text, HasSubstr("sequence tracking statistics:\n\trecv:\n\t\tNACKs sent:\t\t                   9\n"));
    EXPECT_THAT(text, Not(HasSubstr("Wrong protocol version")));  // no such metric given
    EXPECT_THAT(text, HasSubstr("multicast traffic (active link=sync-eth2):\n"));
    EXPECT_THAT(text, Not(HasSubstr("sync-eth3")));
}

TEST(ConntrackdCompat, LinkStatsListEveryLinkWithCarrierAndRole) {
    const std::string expected =
        "multicast traffic link=sync-eth2 status=RUNNING role=ACTIVE:\n"
        "                1000 Bytes sent                 2000 Bytes recv\n"
        "                  10 Pckts sent                   20 Pckts recv\n"
        "                   1 Error send                    2 Error recv\n"
        "\n"
        "TCP traffic link=sync-eth3 status=NO-CARRIER role=BACKUP:\n"
        "                   5 Bytes sent                    6 Bytes recv\n"
        "                   7 Pckts sent                    8 Pckts recv\n"
        "\n";
    EXPECT_EQ(stats_text("link", replicating_node()), expected);
}

TEST(ConntrackdCompat, QueueStats) {
    EXPECT_EQ(stats_text("rsqueue", replicating_node()),
              "resent queue (len=2)\nbytes held:\t\t\t         300\noldest sequence:\t\t           7\n");
    EXPECT_EQ(stats_text("queue", replicating_node()),
              "queue resend:\ncurrent elements:\t\t           2\ncurrent bytes:\t\t\t         300\n\n"
              "queue sync-eth2:\ncurrent elements:\t\t           4\n\n");
    auto idle = replicating_node();
    idle.status["replication"]["resend_queue"] = {{"datagrams", 0}, {"bytes", 0}, {"oldest", 9}};
    EXPECT_EQ(stats_text("rsqueue", idle), "resent queue (len=0)\nbytes held:\t\t\t           0\n");
}

TEST(ConntrackdCompat, UnknownSectionIsAnError) {
    std::string error;
    EXPECT_FALSE(format_stats("multicast", replicating_node(), error).has_value());
    EXPECT_EQ(error, "unknown -s section 'multicast'");
}

TEST(ConntrackdCompat, UptimeLikeConntrackd) {
    EXPECT_EQ(format_uptime(0), "0 min");
    EXPECT_EQ(format_uptime(59), "0 min");
    EXPECT_EQ(format_uptime(3599), "59 min");
    EXPECT_EQ(format_uptime(3600), "1 h 0 min");
    EXPECT_EQ(format_uptime(86400), "1 day 0 min");
    EXPECT_EQ(format_uptime(2 * 86400 + 3 * 3600 + 4 * 60), "2 days 3 h 4 min");
}

TEST(ConntrackdCompat, TakeoverReplyPrintsEachStepAndASummary) {
    control::Request request{"role", {{"role", "primary"}}};
    auto reply = Json::parse(R"({"role": "PRIMARY", "from": "BACKUP", "committed": 14, "failed": 0,
        "flushed": 2, "total_ms": 31.25,
        "steps": [{"step": "commit", "ms": 20.5, "applied": 14},
                  {"step": "flush", "ms": 3.126, "skipped": "no entries to flush"},
                  {"step": "send", "ms": 0.004, "replication": true}]})");
    EXPECT_EQ(describe_reply(request, reply),
              "  commit: 20.50 ms applied=14\n"
              "  flush: 3.13 ms skipped=\"no entries to flush\"\n"
              "  send: 0.00 ms replication=true\n"
              "this node is PRIMARY (was BACKUP): 14 committed, 0 failed, 2 flushed, 31.25 ms\n");
    EXPECT_FALSE(reply_reports_failure(request, reply));
    reply["failed"] = 3;
    EXPECT_TRUE(reply_reports_failure(request, reply));
    // An older daemon's reply: no steps, lower case.
    EXPECT_EQ(describe_reply(request, Json{{"role", "primary"}}), "this node is PRIMARY\n");
}

TEST(ConntrackdCompat, OtherRepliesSayWhatHappened) {
    EXPECT_EQ(describe_reply({"role", {{"role", "backup"}}}, Json{{"role", "BACKUP"}, {"from", "PRIMARY"}}),
              "this node is BACKUP (was PRIMARY): it no longer sends its table\n");
    EXPECT_EQ(
        describe_reply({"flush", {{"target", "external"}}}, Json{{"target", "external"}, {"removed", 3}}),
        "flushed the external cache: 3 entries removed\n");
    EXPECT_EQ(describe_reply({"flush", {{"target", "kernel"}}}, Json{{"target", "kernel"}}),
              "flushed the kernel conntrack table\n");
    EXPECT_EQ(describe_reply({"resync", Json::object()}, Json{{"dump_requested", true}}),
              "internal cache: a dump of the kernel table was requested (mark and sweep)\n");
    EXPECT_EQ(describe_reply({"send-bulk", Json::object()}, Json{{"queued", true}}),
              "bulk transfer of this node's table queued for every peer\n");
    EXPECT_EQ(describe_reply({"request-bulk", Json::object()}, Json{{"requested", true}}),
              "bulk transfer requested from every live peer\n");
    EXPECT_EQ(describe_reply({"shutdown", Json::object()}, Json{{"stopping", true}}),
              "ctsyncd is stopping\n");
    EXPECT_FALSE(reply_reports_failure({"flush", {{"target", "kernel"}}}, Json{{"failed", 1}}));
}

TEST(ConntrackdCompat, DumpPrintsConntrackLines) {
    auto reply = Json::parse(R"({"cache": "external", "expectations": [], "flows": [
        {"original": {"family": "ipv4", "protocol": 17, "src": "192.0.2.24", "dst": "198.51.100.24",
                      "sport": 7, "dport": 8},
         "reply": {"family": "ipv4", "protocol": 17, "src": "198.51.100.24", "dst": "192.0.2.24",
                   "sport": 8, "dport": 7},
         "timeout": 29, "mark": 7, "zone": {"id": 5, "directions": "both"}}]})");
    EXPECT_EQ(format_dump(reply, false),
              "udp     17 29 src=192.0.2.24 dst=198.51.100.24 sport=7 dport=8 src=198.51.100.24 "
              "dst=192.0.2.24 sport=8 dport=7 [UNREPLIED] mark=7 zone=5\n"
              "1 flow in the external cache\n");
    EXPECT_EQ(format_dump(reply, true), "0 expectations in the external cache\n");
}

}  // namespace
}  // namespace ctsync::core::ctl
