// SPDX-License-Identifier: GPL-2.0-or-later
// The warm standby's writer (issue 16): with a source that allows it (Source::concurrent_writes, ABI 1.2)
// batches are written by the standby's own thread, so the event loop runs on while the kernel is written;
// a promotion's take_pending() waits for the batch in flight; a source without it is written on the loop.
#include "core/failover/warm_standby.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <ctsync/sdk/testing/mocks.hpp>
#include <thread>

#include "core/daemon/tables.hpp"
#include "tests/support/flows.hpp"

namespace ctsync::core {
namespace {

using namespace std::chrono_literals;
using ::testing::_;
using ::testing::NiceMock;
using Clock = std::chrono::steady_clock;

class NullLogger final : public sdk::Logger {
  public:
    void log(sdk::LogLevel, std::string_view) noexcept override {}
    bool enabled(sdk::LogLevel) const noexcept override { return false; }
};

// A source whose writes take `delay` and record the thread they ran on.
struct SlowSource {
    NiceMock<testkit::MockSource> mock;
    std::atomic<int> writes{0};
    std::atomic<int> finished{0};
    std::atomic<std::size_t> entries{0};
    std::thread::id writer_thread;
    explicit SlowSource(std::chrono::milliseconds delay) {
        ON_CALL(mock, write(_)).WillByDefault([this, delay](std::span<const sdk::WriteOp> ops) {
            writer_thread = std::this_thread::get_id();
            ++writes;
            std::this_thread::sleep_for(delay);
            entries += ops.size();
            ++finished;
            sdk::WriteReport r;
            r.applied = ops.size();
            return r;
        });
    }
};

std::uint64_t value(const MetricsRegistry& metrics, const std::string& name) {
    for (const auto& s : metrics.snapshot()) {
        if (s.name == name) {
            return static_cast<std::uint64_t>(s.value);
        }
    }
    return 0;
}

// The standby over a source whose writes take `delay`; `off_loop` as the daemon sets it for a source with
// concurrent writes.
struct Rig {
    boost::asio::io_context io;
    MetricsRegistry metrics;
    NullLogger log;
    SlowSource source;
    Tables tables;
    bool off_loop;  // set on the tables before the standby reads it
    WarmStandby standby;
    Rig(std::chrono::milliseconds delay, bool writes_off_loop)
        : source(delay),
          tables(metrics, log, &source.mock, {}),
          off_loop((tables.set_writes_off_loop(writes_off_loop), writes_off_loop)),
          standby(io.get_executor(), tables, 100, metrics, log) {
        tables.external().set_observer(&standby);
    }
    ~Rig() {
        tables.external().set_observer(nullptr);
        standby.stop();
    }
    // `n` peer flows arrive in the external cache.
    void receive(std::uint32_t n) {
        for (std::uint32_t i = 0; i < n; ++i) {
            tables.external().upsert(test::nated_tcp_flow(i), 1, 7);
        }
    }
};

TEST(WarmStandby, ConcurrentSourceIsWrittenByItsOwnThreadWhileTheLoopRuns) {
    Rig rig(300ms, /*off_loop=*/true);
    auto& io = rig.io;
    auto& metrics = rig.metrics;
    auto& source = rig.source;
    auto& standby = rig.standby;
    ASSERT_TRUE(standby.threaded());
    standby.set_active(true);
    rig.receive(250);
    // While the first batch is being written (300 ms), timers on the loop keep firing.
    const auto start = Clock::now();
    int ticks_during_write = 0;
    boost::asio::steady_timer timer(io);
    std::function<void()> tick = [&] {
        timer.expires_after(10ms);
        timer.async_wait([&](const boost::system::error_code& ec) {
            if (ec) {
                return;
            }
            if (source.writes == 1 && source.finished == 0) {
                ++ticks_during_write;
            }
            if (Clock::now() - start < 3s && !(standby.caught_up() && source.finished == 3)) {
                tick();
            }
        });
    };
    tick();
    io.run_for(4s);
    EXPECT_GE(ticks_during_write, 10) << "the loop stalled while the kernel was written";
    EXPECT_NE(source.writer_thread, std::this_thread::get_id());
    EXPECT_EQ(source.writes, 3);  // 100 + 100 + 50, one batch in flight at a time
    EXPECT_EQ(source.entries, 250u);
    EXPECT_TRUE(standby.caught_up());
    EXPECT_EQ(value(metrics, "failover.standby_written"), 250u);
    EXPECT_EQ(value(metrics, "failover.standby_batches"), 3u);
}

TEST(WarmStandby, TakePendingWaitsForTheBatchInFlight) {
    Rig rig(300ms, /*off_loop=*/true);
    auto& io = rig.io;
    auto& source = rig.source;
    auto& standby = rig.standby;
    standby.set_active(true);
    rig.receive(150);
    io.run_for(50ms);  // the first 100 are handed over and being written
    for (int i = 0; i < 100 && source.writes == 0; ++i) {
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(source.writes, 1);
    ASSERT_EQ(source.finished, 0);
    EXPECT_FALSE(standby.caught_up());
    WarmStandby::Pending pending = standby.take_pending();
    // The batch in flight is in the kernel when take_pending returns: the promotion's commit cannot race it.
    EXPECT_EQ(source.finished, 1);
    EXPECT_EQ(pending.upserts.size(), 50u);
    standby.set_active(false);
    io.run_for(100ms);
    EXPECT_EQ(source.writes, 1);  // nothing more written once primary
}

TEST(WarmStandby, SourceWithoutConcurrentWritesIsWrittenOnTheLoop) {
    Rig rig(1ms, /*off_loop=*/false);
    auto& io = rig.io;
    auto& source = rig.source;
    auto& standby = rig.standby;
    EXPECT_FALSE(standby.threaded());
    standby.set_active(true);
    rig.receive(120);
    for (int i = 0; i < 50 && !standby.caught_up(); ++i) {
        io.run_for(10ms);
    }
    EXPECT_EQ(source.writer_thread, std::this_thread::get_id());
    EXPECT_EQ(source.entries, 120u);
    EXPECT_TRUE(standby.caught_up());
}

}  // namespace
}  // namespace ctsync::core
