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

sdk::FlowState make_flow(std::uint32_t i) {
    sdk::FlowState f;
    f.original.family = f.reply.family = sdk::Family::kIpv4;
    f.original.protocol = f.reply.protocol = sdk::l4::kTcp;
    f.original.src.bytes = {192, 0, 2, static_cast<std::uint8_t>(1 + i % 200)};
    f.original.dst.bytes = {203, 0, 113, 10};
    f.original.src_port = static_cast<std::uint16_t>(1024 + i / 200);
    f.original.dst_port = 80;
    f.reply.src = f.original.dst;
    f.reply.dst = f.original.src;
    f.reply.src_port = 80;
    f.reply.dst_port = f.original.src_port;
    return f;
}

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

TEST(WarmStandby, ConcurrentSourceIsWrittenByItsOwnThreadWhileTheLoopRuns) {
    boost::asio::io_context io;
    MetricsRegistry metrics;
    NullLogger log;
    SlowSource source(300ms);
    Tables tables(metrics, log, &source.mock, {});
    tables.set_writes_off_loop(true);
    WarmStandby standby(io.get_executor(), tables, 100, metrics, log);
    tables.external().set_observer(&standby);
    ASSERT_TRUE(standby.threaded());
    standby.set_active(true);
    for (std::uint32_t i = 0; i < 250; ++i) {
        tables.external().upsert(make_flow(i), 1, 7);
    }
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
    tables.external().set_observer(nullptr);
    standby.stop();
}

TEST(WarmStandby, TakePendingWaitsForTheBatchInFlight) {
    boost::asio::io_context io;
    MetricsRegistry metrics;
    NullLogger log;
    SlowSource source(300ms);
    Tables tables(metrics, log, &source.mock, {});
    tables.set_writes_off_loop(true);
    WarmStandby standby(io.get_executor(), tables, 100, metrics, log);
    tables.external().set_observer(&standby);
    standby.set_active(true);
    for (std::uint32_t i = 0; i < 150; ++i) {
        tables.external().upsert(make_flow(i), 1, 7);
    }
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
    tables.external().set_observer(nullptr);
    standby.stop();
}

TEST(WarmStandby, SourceWithoutConcurrentWritesIsWrittenOnTheLoop) {
    boost::asio::io_context io;
    MetricsRegistry metrics;
    NullLogger log;
    SlowSource source(1ms);
    Tables tables(metrics, log, &source.mock, {});
    WarmStandby standby(io.get_executor(), tables, 100, metrics, log);
    tables.external().set_observer(&standby);
    EXPECT_FALSE(standby.threaded());
    standby.set_active(true);
    for (std::uint32_t i = 0; i < 120; ++i) {
        tables.external().upsert(make_flow(i), 1, 7);
    }
    for (int i = 0; i < 50 && !standby.caught_up(); ++i) {
        io.run_for(10ms);
    }
    EXPECT_EQ(source.writer_thread, std::this_thread::get_id());
    EXPECT_EQ(source.entries, 120u);
    EXPECT_TRUE(standby.caught_up());
    tables.external().set_observer(nullptr);
}

}  // namespace
}  // namespace ctsync::core
