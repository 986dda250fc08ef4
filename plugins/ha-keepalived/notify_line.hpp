// SPDX-License-Identifier: GPL-2.0-or-later
// One line of keepalived's notify FIFO, parsed without side effects.
//
// keepalived (vrrp_notify.c, 2.x) writes one line per event with `"%s \"%s\" %s %d\n"`:
//   INSTANCE "VI_1" MASTER 100        an instance's state, with its effective priority
//   GROUP "G1" BACKUP 0               a sync group's state (the priority is always 0)
// States: MASTER, BACKUP, FAULT, STOP (keepalived stopping), DELETED (instance removed by a reload, with
// notify_deleted); events that are not transitions: MASTER_RX_LOWER_PRI (a master heard a lower-priority
// master), MASTER_PRIORITY and BACKUP_PRIORITY (the effective priority changed, with
// notify_priority_changes; BACKUP_PRIORITY is sent in every state but MASTER). The global notify_fifo also
// carries the LVS checkers' lines ("VS [192.0.2.1]:tcp:80 UP", "RS ... UP"), which are recognised and
// ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ha_keepalived {

// Longest line accepted, without its newline. keepalived's lines are a few dozen bytes.
inline constexpr std::size_t kMaxLineBytes = 4096;

enum class EntityType : std::uint8_t { kInstance, kGroup };

enum class NotifyState : std::uint8_t {
    kMaster,
    kBackup,
    kFault,
    kStop,
    kDeleted,
    kMasterRxLowerPri,
    kMasterPriority,
    kBackupPriority,
};

// "INSTANCE" / "GROUP", and the state as keepalived spells it.
const char* to_string(EntityType type) noexcept;
const char* to_string(NotifyState state) noexcept;

// MASTER_RX_LOWER_PRI, MASTER_PRIORITY, BACKUP_PRIORITY: events about the priority, not transitions.
constexpr bool is_priority_event(NotifyState state) noexcept {
    return state == NotifyState::kMasterRxLowerPri || state == NotifyState::kMasterPriority ||
           state == NotifyState::kBackupPriority;
}

struct VrrpNotice {
    EntityType type = EntityType::kInstance;
    std::string name;  // without the quotes
    NotifyState state = NotifyState::kBackup;
    int priority = 0;  // 0..255
};

enum class LineKind : std::uint8_t {
    kVrrp,     // an INSTANCE or GROUP line: `notice` is set
    kLvs,      // a VS or RS line of keepalived's checkers: not ours, ignored
    kGarbage,  // anything else: `error` says why
};

struct ParsedLine {
    LineKind kind = LineKind::kGarbage;
    VrrpNotice notice;
    std::string error;
};

// Parses one line, given without its terminating newline. Fields may be separated by several spaces or
// tabs; white space (and a carriage return) before and after the line is tolerated. The name is
// everything between the first and the last double quote. Keywords are upper case, as keepalived writes
// them. Control bytes anywhere, a line longer than kMaxLineBytes, an unknown type or state and a priority
// outside 0..255 make it garbage. May throw std::bad_alloc only.
ParsedLine parse_notify_line(std::string_view line);

// `bytes` for a log line: printable ASCII as is, '"' and '\' escaped with '\', every other byte as \xHH;
// cut to `max_bytes` input bytes with "..." appended.
std::string escape_for_log(std::string_view bytes, std::size_t max_bytes = 120);

}  // namespace ha_keepalived
