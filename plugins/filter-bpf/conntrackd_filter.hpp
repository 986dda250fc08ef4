// SPDX-License-Identifier: GPL-2.0-or-later
// conntrackd's `Filter { Protocol / Address / State }` section as one filter-bpf expression with the same
// meaning (conntrack-tools src/filter.c): Protocol Accept/Ignore lists layer-4 protocols; Address matches
// the original source or the reply source (the two real ends of the connection) against addresses and
// networks; State lists TCP states and leaves other protocols alone. The sections are and-ed. One difference
// remains: a TCP event without the state (a mark-only update) passes conntrackd's State filter, while
// filter-bpf judges the state the entry holds (ADR-042).
#pragma once

#include <string>
#include <string_view>

namespace filter_bpf {

// Finds the Filter section in a conntrackd.conf text and translates it. False with `error` ("line 12: ...")
// when the section is missing or holds something conntrackd would refuse or this translation cannot mean
// the same way.
bool conntrackd_filter_expression(std::string_view conf, std::string& expression, std::string& error);

}  // namespace filter_bpf
