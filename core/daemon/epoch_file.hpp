// SPDX-License-Identifier: GPL-2.0-or-later
// This node's replication epoch for this run. Peers drop whatever an older epoch of a node sends, so each
// run's epoch must be higher than every earlier run's — also when the wall clock stepped back in between
// (an NTP correction, a wrong RTC at boot). The epoch is the wall clock in microseconds, or one more than
// the epoch the state file holds when the clock is not past it; it is written back (a new file renamed
// over the old, synced) before the node sends anything.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace ctsync::core {

struct EpochChoice {
    std::uint64_t epoch = 0;
    std::uint64_t previous = 0;  // what the file held (0: none)
    std::string warning;         // why the file could not be read or written (the epoch is still usable)
};

EpochChoice next_epoch(const std::filesystem::path& file, std::uint64_t now_us);

// The wall clock in microseconds since 1970.
std::uint64_t wall_clock_us();

}  // namespace ctsync::core
