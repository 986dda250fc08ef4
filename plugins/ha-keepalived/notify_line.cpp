// SPDX-License-Identifier: GPL-2.0-or-later
#include "notify_line.hpp"

#include <fmt/format.h>

#include <array>
#include <utility>
#include <vector>

namespace ha_keepalived {
namespace {

bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (is_blank(text.front()) || text.front() == '\r')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (is_blank(text.back()) || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    return text;
}

std::vector<std::string_view> split_blanks(std::string_view text) {
    std::vector<std::string_view> tokens;
    std::size_t at = 0;
    while (at < text.size()) {
        while (at < text.size() && is_blank(text[at])) {
            ++at;
        }
        const std::size_t start = at;
        while (at < text.size() && !is_blank(text[at])) {
            ++at;
        }
        if (at > start) {
            tokens.push_back(text.substr(start, at - start));
        }
    }
    return tokens;
}

constexpr std::array<std::pair<std::string_view, NotifyState>, 8> kStates{{
    {"MASTER", NotifyState::kMaster},
    {"BACKUP", NotifyState::kBackup},
    {"FAULT", NotifyState::kFault},
    {"STOP", NotifyState::kStop},
    {"DELETED", NotifyState::kDeleted},
    {"MASTER_RX_LOWER_PRI", NotifyState::kMasterRxLowerPri},
    {"MASTER_PRIORITY", NotifyState::kMasterPriority},
    {"BACKUP_PRIORITY", NotifyState::kBackupPriority},
}};

ParsedLine garbage(std::string error) {
    ParsedLine out;
    out.kind = LineKind::kGarbage;
    out.error = std::move(error);
    return out;
}

}  // namespace

const char* to_string(EntityType type) noexcept {
    return type == EntityType::kGroup ? "GROUP" : "INSTANCE";
}

const char* to_string(NotifyState state) noexcept {
    switch (state) {
        case NotifyState::kMaster:
            return "MASTER";
        case NotifyState::kBackup:
            return "BACKUP";
        case NotifyState::kFault:
            return "FAULT";
        case NotifyState::kStop:
            return "STOP";
        case NotifyState::kDeleted:
            return "DELETED";
        case NotifyState::kMasterRxLowerPri:
            return "MASTER_RX_LOWER_PRI";
        case NotifyState::kMasterPriority:
            return "MASTER_PRIORITY";
        case NotifyState::kBackupPriority:
            return "BACKUP_PRIORITY";
    }
    return "UNKNOWN";
}

ParsedLine parse_notify_line(std::string_view line) {
    if (line.size() > kMaxLineBytes) {
        return garbage(fmt::format("longer than {} bytes ({} bytes)", kMaxLineBytes, line.size()));
    }
    // Checked before anything else so that a binary line is reported as such, not as an unknown type.
    for (std::size_t i = 0; i < line.size(); ++i) {
        const auto byte = static_cast<unsigned char>(line[i]);
        const bool trailing_cr = byte == '\r' && i + 1 == line.size();
        if ((byte < 0x20 && byte != '\t' && !trailing_cr) || byte == 0x7f) {
            return garbage(fmt::format("control byte 0x{:02x} at offset {}", byte, i));
        }
    }
    const std::string_view text = trim(line);
    if (text.empty()) {
        return garbage("empty line");
    }
    std::size_t type_end = 0;
    while (type_end < text.size() && !is_blank(text[type_end])) {
        ++type_end;
    }
    const std::string_view type = text.substr(0, type_end);
    ParsedLine out;
    if (type == "VS" || type == "RS") {
        out.kind = LineKind::kLvs;
        return out;
    }
    if (type == "INSTANCE") {
        out.notice.type = EntityType::kInstance;
    } else if (type == "GROUP") {
        out.notice.type = EntityType::kGroup;
    } else {
        return garbage(
            fmt::format("unknown type '{}': expected INSTANCE or GROUP (or VS/RS from the checkers)",
                        escape_for_log(type, 32)));
    }
    std::string_view rest = text.substr(type_end);
    while (!rest.empty() && is_blank(rest.front())) {
        rest.remove_prefix(1);
    }
    if (rest.empty() || rest.front() != '"') {
        return garbage(fmt::format("no quoted name after {}", type));
    }
    // keepalived quotes the name without escaping: the state and the priority never contain a quote, so
    // the last quote on the line closes the name.
    const std::size_t close = rest.rfind('"');
    if (close == 0) {
        return garbage("the name has no closing quote");
    }
    const std::string_view name = rest.substr(1, close - 1);
    if (name.empty()) {
        return garbage("empty name");
    }
    // A tab passed the control-byte check above because it separates fields; keepalived's configuration
    // splits words at white space, so an instance or group name never holds one.
    if (const std::size_t tab = name.find('\t'); tab != std::string_view::npos) {
        return garbage(
            fmt::format("tab inside the quoted name at offset {}", (name.data() - line.data()) + tab));
    }
    const std::string_view tail = rest.substr(close + 1);
    if (!tail.empty() && !is_blank(tail.front())) {
        return garbage("no space after the name's closing quote");
    }
    const auto fields = split_blanks(tail);
    if (fields.empty()) {
        return garbage("no state and priority after the name");
    }
    if (fields.size() == 1) {
        return garbage("no priority after the state");
    }
    if (fields.size() > 2) {
        return garbage(
            fmt::format("unexpected text after the priority: '{}'", escape_for_log(fields[2], 32)));
    }
    bool known_state = false;
    for (const auto& [spelling, state] : kStates) {
        if (fields[0] == spelling) {
            out.notice.state = state;
            known_state = true;
            break;
        }
    }
    if (!known_state) {
        return garbage(fmt::format(
            "unknown state '{}': expected MASTER, BACKUP, FAULT, STOP, DELETED, MASTER_RX_LOWER_PRI, "
            "MASTER_PRIORITY or BACKUP_PRIORITY",
            escape_for_log(fields[0], 32)));
    }
    const std::string_view priority = fields[1];
    int value = 0;
    bool priority_ok = !priority.empty() && priority.size() <= 3;
    for (std::size_t i = 0; priority_ok && i < priority.size(); ++i) {  // at most 3 digits: no overflow
        const char c = priority[i];
        if (c < '0' || c > '9') {
            priority_ok = false;
            break;
        }
        value = value * 10 + (c - '0');
    }
    if (!priority_ok || value > 255) {
        return garbage(fmt::format("priority '{}' is not a number in 0..255", escape_for_log(priority, 32)));
    }
    out.kind = LineKind::kVrrp;
    out.notice.name = std::string(name);
    out.notice.priority = value;
    return out;
}

std::string escape_for_log(std::string_view bytes, std::size_t max_bytes) {
    std::string out;
    const std::size_t shown = bytes.size() < max_bytes ? bytes.size() : max_bytes;
    out.reserve(shown + 8);
    for (std::size_t i = 0; i < shown; ++i) {
        const auto byte = static_cast<unsigned char>(bytes[i]);
        if (byte == '"' || byte == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(byte));
        } else if (byte >= 0x20 && byte < 0x7f) {
            out.push_back(static_cast<char>(byte));
        } else {
            out += fmt::format("\\x{:02x}", byte);
        }
    }
    if (shown < bytes.size()) {
        out += "...";
    }
    return out;
}

}  // namespace ha_keepalived
