// SPDX-License-Identifier: GPL-2.0-or-later
// The notify FIFO's line parser on its own: every state keepalived 2.x writes, instance and group lines,
// the quoting, tolerated spacing, the checkers' lines, and garbage with the reason it is refused.
#include "notify_line.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ha_keepalived::test {
namespace {

struct GoodCase {
    std::string line;
    EntityType type;
    std::string name;
    NotifyState state;
    int priority;
};

TEST(NotifyLine, ParsesEveryStateKeepalivedWrites) {
    const std::vector<GoodCase> cases = {
        {R"(INSTANCE "VI_1" MASTER 100)", EntityType::kInstance, "VI_1", NotifyState::kMaster, 100},
        {R"(INSTANCE "VI_1" BACKUP 100)", EntityType::kInstance, "VI_1", NotifyState::kBackup, 100},
        {R"(INSTANCE "VI_1" FAULT 0)", EntityType::kInstance, "VI_1", NotifyState::kFault, 0},
        {R"(INSTANCE "VI_1" STOP 100)", EntityType::kInstance, "VI_1", NotifyState::kStop, 100},
        {R"(INSTANCE "VI_1" DELETED 100)", EntityType::kInstance, "VI_1", NotifyState::kDeleted, 100},
        {R"(INSTANCE "VI_1" MASTER_RX_LOWER_PRI 150)", EntityType::kInstance, "VI_1",
         NotifyState::kMasterRxLowerPri, 150},
        {R"(INSTANCE "VI_1" MASTER_PRIORITY 1)", EntityType::kInstance, "VI_1", NotifyState::kMasterPriority,
         1},
        {R"(INSTANCE "VI_1" BACKUP_PRIORITY 254)", EntityType::kInstance, "VI_1",
         NotifyState::kBackupPriority, 254},
        {R"(INSTANCE "VI_1" MASTER 255)", EntityType::kInstance, "VI_1", NotifyState::kMaster, 255},
        {R"(GROUP "G1" MASTER 0)", EntityType::kGroup, "G1", NotifyState::kMaster, 0},
        {R"(GROUP "G1" BACKUP 0)", EntityType::kGroup, "G1", NotifyState::kBackup, 0},
        {R"(GROUP "G1" FAULT 0)", EntityType::kGroup, "G1", NotifyState::kFault, 0},
        {R"(GROUP "G1" STOP 0)", EntityType::kGroup, "G1", NotifyState::kStop, 0},
    };
    for (const auto& c : cases) {
        const ParsedLine parsed = parse_notify_line(c.line);
        ASSERT_EQ(parsed.kind, LineKind::kVrrp) << c.line << ": " << parsed.error;
        EXPECT_EQ(parsed.notice.type, c.type) << c.line;
        EXPECT_EQ(parsed.notice.name, c.name) << c.line;
        EXPECT_EQ(parsed.notice.state, c.state) << c.line;
        EXPECT_EQ(parsed.notice.priority, c.priority) << c.line;
        // The spelling round-trips.
        EXPECT_EQ(std::string(to_string(parsed.notice.type)) + " \"" + c.name + "\" " +
                      to_string(parsed.notice.state) + " " + std::to_string(c.priority),
                  c.line);
    }
}

TEST(NotifyLine, PriorityEventsAreTold) {
    EXPECT_TRUE(is_priority_event(NotifyState::kMasterRxLowerPri));
    EXPECT_TRUE(is_priority_event(NotifyState::kMasterPriority));
    EXPECT_TRUE(is_priority_event(NotifyState::kBackupPriority));
    for (auto state : {NotifyState::kMaster, NotifyState::kBackup, NotifyState::kFault, NotifyState::kStop,
                       NotifyState::kDeleted}) {
        EXPECT_FALSE(is_priority_event(state)) << to_string(state);
    }
}

TEST(NotifyLine, QuotingKeepsWhateverIsBetweenTheOuterQuotes) {
    auto name_of = [](const std::string& line) {
        const ParsedLine parsed = parse_notify_line(line);
        EXPECT_EQ(parsed.kind, LineKind::kVrrp) << line << ": " << parsed.error;
        return parsed.notice.name;
    };
    EXPECT_EQ(name_of(R"(INSTANCE "vi with spaces" MASTER 100)"), "vi with spaces");
    EXPECT_EQ(name_of(R"(INSTANCE "a"b" MASTER 100)"), "a\"b");  // keepalived does not escape
    EXPECT_EQ(name_of(R"(INSTANCE "MASTER" BACKUP 100)"), "MASTER");
    EXPECT_EQ(name_of("INSTANCE \"v\xc3\xa9\" MASTER 100"), "v\xc3\xa9");  // UTF-8 is not binary
}

TEST(NotifyLine, ExtraWhiteSpaceIsTolerated) {
    for (const std::string line : {"INSTANCE  \"VI_1\"   MASTER    100", "  INSTANCE \"VI_1\" MASTER 100  ",
                                   "INSTANCE\t\"VI_1\"\tMASTER\t100", "INSTANCE \"VI_1\" MASTER 100\r",
                                   "INSTANCE \"VI_1\" MASTER 100 \r"}) {
        const ParsedLine parsed = parse_notify_line(line);
        ASSERT_EQ(parsed.kind, LineKind::kVrrp) << line << ": " << parsed.error;
        EXPECT_EQ(parsed.notice.name, "VI_1");
        EXPECT_EQ(parsed.notice.state, NotifyState::kMaster);
        EXPECT_EQ(parsed.notice.priority, 100);
    }
}

TEST(NotifyLine, CheckerLinesAreRecognisedAsNotOurs) {
    EXPECT_EQ(parse_notify_line("VS [192.0.2.15]:tcp:80 UP").kind, LineKind::kLvs);
    EXPECT_EQ(parse_notify_line("RS [192.0.2.4]:tcp:80 [192.0.2.15]:tcp:80 DOWN").kind, LineKind::kLvs);
}

TEST(NotifyLine, GarbageIsRefusedWithTheReason) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "empty line"},
        {"   ", "empty line"},
        {"hello world", "unknown type 'hello': expected INSTANCE or GROUP (or VS/RS from the checkers)"},
        {R"(instance "VI_1" MASTER 100)",
         "unknown type 'instance': expected INSTANCE or GROUP (or VS/RS from the checkers)"},
        {"INSTANCE VI_1 MASTER 100", "no quoted name after INSTANCE"},
        {"GROUP", "no quoted name after GROUP"},
        {R"(INSTANCE "VI_1 MASTER 100)", "the name has no closing quote"},
        {R"(INSTANCE "" MASTER 100)", "empty name"},
        {R"(INSTANCE "VI_1"MASTER 100)", "no space after the name's closing quote"},
        {R"(INSTANCE "VI_1")", "no state and priority after the name"},
        {R"(INSTANCE "VI_1" MASTER)", "no priority after the state"},
        {R"(INSTANCE "VI_1" MASTER 100 extra)", "unexpected text after the priority: 'extra'"},
        {R"(INSTANCE "VI_1" master 100)",
         "unknown state 'master': expected MASTER, BACKUP, FAULT, STOP, DELETED, MASTER_RX_LOWER_PRI, "
         "MASTER_PRIORITY or BACKUP_PRIORITY"},
        {R"(INSTANCE "VI_1" {UNKNOWN} 100)",
         "unknown state '{UNKNOWN}': expected MASTER, BACKUP, FAULT, STOP, DELETED, MASTER_RX_LOWER_PRI, "
         "MASTER_PRIORITY or BACKUP_PRIORITY"},
        {R"(INSTANCE "VI_1" MASTER 256)", "priority '256' is not a number in 0..255"},
        {R"(INSTANCE "VI_1" MASTER -1)", "priority '-1' is not a number in 0..255"},
        {R"(INSTANCE "VI_1" MASTER 0100)", "priority '0100' is not a number in 0..255"},
        {R"(INSTANCE "VI_1" MASTER 1e2)", "priority '1e2' is not a number in 0..255"},
        {std::string("INSTANCE \"VI_1\" MASTER 100\0", 27), "control byte 0x00 at offset 26"},
        {std::string("\x01\x02\xff binary", 10), "control byte 0x01 at offset 0"},
        {"INSTANCE \"VI\x1b[31m\" MASTER 100", "control byte 0x1b at offset 12"},
        {"INSTANCE \"VI_1\"\rMASTER 100", "control byte 0x0d at offset 15"},
        {"INSTANCE \"VI_1\" MASTER 100\x7f", "control byte 0x7f at offset 26"},
        // Found by the keepalived_fifo fuzzer: a long priority overflowed an int while it was read (UBSan).
        {R"(INSTANCE "VI_2" STOP 08888888888888888888888888888888888)",
         "priority '08888888888888888888888888888888...' is not a number in 0..255"},
        // Found by the keepalived_fifo fuzzer: a tab was accepted as part of the name.
        {"INSTANCE \"V\t_1\" BACKUP_PRIORITY 50", "tab inside the quoted name at offset 11"},
        {"INSTANCE\t\"\tVI_1\"\tMASTER\t100", "tab inside the quoted name at offset 10"},
    };
    for (const auto& [line, reason] : cases) {
        const ParsedLine parsed = parse_notify_line(line);
        EXPECT_EQ(parsed.kind, LineKind::kGarbage) << escape_for_log(line);
        EXPECT_EQ(parsed.error, reason) << escape_for_log(line);
    }
}

TEST(NotifyLine, LinesLongerThanTheLimitAreGarbage) {
    const std::string longest = "INSTANCE \"" + std::string(kMaxLineBytes - 22, 'n') + "\" MASTER 100";
    ASSERT_EQ(longest.size(), kMaxLineBytes);
    EXPECT_EQ(parse_notify_line(longest).kind, LineKind::kVrrp);
    const ParsedLine parsed = parse_notify_line(longest + " ");
    EXPECT_EQ(parsed.kind, LineKind::kGarbage);
    EXPECT_EQ(parsed.error, "longer than 4096 bytes (4097 bytes)");
}

TEST(NotifyLine, EscapingForTheLogShowsBytesAndCuts) {
    EXPECT_EQ(escape_for_log("INSTANCE \"VI_1\" MASTER 100"), "INSTANCE \\\"VI_1\\\" MASTER 100");
    EXPECT_EQ(escape_for_log(std::string("a\0b\\\xff", 5)), "a\\x00b\\\\\\xff");
    EXPECT_EQ(escape_for_log(std::string(200, 'x'), 10), "xxxxxxxxxx...");
    EXPECT_EQ(escape_for_log("tab\there"), "tab\\x09here");
}

}  // namespace
}  // namespace ha_keepalived::test
