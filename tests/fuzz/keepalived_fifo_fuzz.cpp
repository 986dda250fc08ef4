// SPDX-License-Identifier: GPL-2.0-or-later
// keepalived's notify FIFO as ha-keepalived reads it: the input is split into lines at '\n' as the adapter
// splits what it reads; each line is parsed and, when it is a VRRP line, applied to the states of two
// configured instances and a sync group, whose role must stay one of INIT, PRIMARY, BACKUP and FAULT.
// Properties: a VRRP line has a priority in 0..255 and a name without control bytes; garbage has a reason;
// the log escape never grows past 4 bytes per input byte plus "...".
#include <cstdint>
#include <string_view>

#include "keepalived_adapter.hpp"
#include "notify_line.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ha_keepalived;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto text = ctsync::fuzz::as_text(data, size);
    VrrpStates states({"VI_1", "VI_2"}, {"G1"});
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        const auto line = text.substr(start, end - start);
        const ParsedLine parsed = parse_notify_line(line);
        switch (parsed.kind) {
            case LineKind::kVrrp: {
                CTSYNC_FUZZ_CHECK(parsed.notice.priority >= 0 && parsed.notice.priority <= 255);
                for (const char c : parsed.notice.name) {
                    CTSYNC_FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
                }
                const auto outcome = states.apply(parsed.notice);
                CTSYNC_FUZZ_CHECK(!outcome.changed || outcome.configured);
                const auto role = states.role();
                CTSYNC_FUZZ_CHECK(role == ctsync::sdk::Role::kInit || role == ctsync::sdk::Role::kPrimary ||
                                  role == ctsync::sdk::Role::kBackup || role == ctsync::sdk::Role::kFault);
                (void)states.describe();
                (void)states.split();
                break;
            }
            case LineKind::kLvs:
                break;
            case LineKind::kGarbage:
                CTSYNC_FUZZ_CHECK(!parsed.error.empty());
                break;
        }
        const std::string escaped = escape_for_log(line);
        CTSYNC_FUZZ_CHECK(escaped.size() <= 4 * 120 + 3);
        start = end + 1;
    }
    return 0;
}
