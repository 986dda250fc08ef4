// SPDX-License-Identifier: GPL-2.0-or-later
// Helpers for datagram transports (transport-mcast and transport-tipc use them): a throttle for log lines
// and the bounded send queue in front of a non-blocking datagram socket. Header-only: compiled into the
// plugin that uses them, so they add nothing to the plugin ABI.
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "ctsync/sdk/abi.hpp"
#include "ctsync/sdk/host.hpp"

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

// At most one log line per second per kind; the next one allowed says how many were left out
// (`suppressed={}` with take_suppressed()).
struct LogThrottle {
    std::chrono::steady_clock::time_point last{};
    std::uint64_t suppressed = 0;

    bool allow() {
        const auto now = std::chrono::steady_clock::now();
        if (last != std::chrono::steady_clock::time_point{} && now - last < std::chrono::seconds(1)) {
            ++suppressed;
            return false;
        }
        last = now;
        return true;
    }
    std::uint64_t take_suppressed() { return std::exchange(suppressed, 0); }
};

// What one attempt to hand a datagram to the kernel gave.
enum class SendResult {
    kSent,
    kWouldBlock,  // EAGAIN: the socket buffer (or, for TIPC, the link) is full; try again when writable
    kFailed,      // any other error: the datagram is lost (the sender counts and logs it)
};

// A bounded FIFO in front of a non-blocking datagram socket. submit() sends at once while nothing waits;
// after EAGAIN datagrams wait, in order, and are sent when the kernel reports the socket writable (the
// descriptor is edge-triggered: the wait is armed only after EAGAIN), at most kSendsPerWakeup per turn of
// the event loop so that receiving is not starved. The owner supplies the send (its socket, its
// destination, its counters); the queue keeps `queued` (datagrams that had to wait) and `depth` (a gauge
// of the queue's length). Single-threaded, on the socket's executor. Destroying the queue (or stop())
// makes every pending completion a no-op.
class DatagramSendQueue {
  public:
    using SendNow = std::function<SendResult(std::span<const std::byte>)>;
    enum class Outcome { kSent, kQueued, kFailed, kFull };
    static constexpr int kSendsPerWakeup = 256;

    DatagramSendQueue(boost::asio::posix::stream_descriptor& socket, std::size_t capacity, SendNow send_now,
                      Counter& queued, Gauge& depth)
        : socket_(socket),
          capacity_(capacity),
          send_now_(std::move(send_now)),
          queued_(queued),
          depth_(depth) {}
    DatagramSendQueue(const DatagramSendQueue&) = delete;
    DatagramSendQueue& operator=(const DatagramSendQueue&) = delete;

    // Sends now (kSent, or kFailed: the send refused it) or queues it behind waiting datagrams (kQueued);
    // kFull when `capacity` datagrams wait already. Throws only std::bad_alloc (the datagram is then lost).
    Outcome submit(std::span<const std::byte> datagram) {
        if (queue_.empty()) {
            switch (send_now_(datagram)) {
                case SendResult::kSent:
                    return Outcome::kSent;
                case SendResult::kFailed:
                    return Outcome::kFailed;
                case SendResult::kWouldBlock:
                    break;
            }
        }
        if (queue_.size() >= capacity_) {
            return Outcome::kFull;
        }
        queue_.emplace_back(datagram.begin(), datagram.end());
        queued_.add();
        depth_.set(static_cast<std::int64_t>(queue_.size()));
        wait_writable();
        return Outcome::kQueued;
    }

    // Drops what waits and sends nothing more (the owner is stopping).
    void stop() noexcept {
        stopped_ = true;
        queue_.clear();
        depth_.set(0);
    }

    std::size_t size() const noexcept { return queue_.size(); }

  private:
    void wait_writable() {
        if (write_wait_armed_ || stopped_) {
            return;
        }
        write_wait_armed_ = true;
        std::weak_ptr<int> alive = alive_;
        socket_.async_wait(boost::asio::posix::stream_descriptor::wait_write,
                           [this, alive](const boost::system::error_code& ec) {
                               if (alive.expired()) {
                                   return;
                               }
                               write_wait_armed_ = false;
                               if (!ec && !stopped_) {
                                   flush();
                               }
                           });
    }

    void flush() {
        for (int i = 0; i < kSendsPerWakeup && !queue_.empty(); ++i) {
            if (send_now_(queue_.front()) == SendResult::kWouldBlock) {
                depth_.set(static_cast<std::int64_t>(queue_.size()));
                wait_writable();
                return;
            }
            queue_.pop_front();  // sent, or refused by the kernel (the send counted it)
        }
        depth_.set(static_cast<std::int64_t>(queue_.size()));
        if (!queue_.empty()) {
            // Still writable: go on after other handlers had their turn.
            std::weak_ptr<int> alive = alive_;
            boost::asio::post(socket_.get_executor(), [this, alive] {
                if (!alive.expired() && !stopped_) {
                    flush();
                }
            });
        }
    }

    boost::asio::posix::stream_descriptor& socket_;
    std::size_t capacity_;
    SendNow send_now_;
    Counter& queued_;
    Gauge& depth_;
    std::deque<std::vector<std::byte>> queue_;
    bool write_wait_armed_ = false;
    bool stopped_ = false;
    // Completions hold a weak reference: one that runs after the queue is gone does nothing.
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk
