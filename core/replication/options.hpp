// SPDX-License-Identifier: GPL-2.0-or-later
// The replication engine's settings, read from the config's "replication" section (docs/CONFIG.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace ctsync::core {

struct EngineOptions {
    enum class Mode { kReliable, kAlarm, kBestEffort };
    enum class Policy { kStrong, kWeak, kDelayed };
    enum class LinkMode { kFailover, kParallel };

    Mode mode = Mode::kReliable;
    Policy policy = Policy::kWeak;
    std::chrono::milliseconds flush_interval{10};   // changes wait this long to coalesce and share datagrams
    std::chrono::milliseconds delay{2000};          // delayed policy: flows ending inside it are never sent
    std::size_t resend_queue_bytes = 64u << 20;     // per node; overflow costs the lagging peer a bulk
    std::uint32_t bulk_rate = 100000;               // entries per second
    std::chrono::milliseconds alive_interval{200};  // ALIVE on every link
    std::chrono::milliseconds peer_timeout{3000};   // silent this long: the peer is gone
    std::chrono::milliseconds ack_interval{20};     // at most one ACK per peer this often while data flows
    std::chrono::milliseconds nack_retry{100};      // a still-missing range is NACKed again after this
    std::chrono::milliseconds bulk_request_retry{1000};
    std::chrono::seconds alarm_interval{30};  // alarm mode: full refresh this often
    LinkMode link_mode = LinkMode::kFailover;
    std::chrono::milliseconds link_silence{1000};  // failover: a link that heard nothing this long is dead
    std::size_t reorder_datagrams = 65536;         // out-of-order datagrams held per sender
    bool sending = false;                          // send this node's table (the primary does)
    // This run's epoch (peers drop what an older epoch of a node sends); 0: the wall clock in µs at start.
    // The daemon passes one later than every earlier run's (core/daemon/epoch_file.hpp).
    std::uint64_t epoch = 0;
};

}  // namespace ctsync::core
