// SPDX-License-Identifier: GPL-2.0-or-later
// systemd's service protocol (sd_notify): READY=1 once the node is of use — the kernel table dumped and, on a
// backup, its peers' tables received and written (RoleMachine::ready) — STATUS= while it waits, WATCHDOG=1
// keep-alives from the event loop itself (so a stuck loop stops them and systemd restarts the daemon), and
// STOPPING=1 on shutdown. Every call is a no-op without NOTIFY_SOCKET. docs/OPERATIONS.md.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <string>

#include "core/metrics/registry.hpp"

namespace spdlog {
class logger;
}

namespace ctsync::core {

class ServiceNotifier {
  public:
    // `ready` says whether READY=1 may go out; `status` is the STATUS= text meanwhile and after.
    ServiceNotifier(boost::asio::any_io_executor executor, MetricsRegistry& metrics, spdlog::logger& log,
                    std::function<bool()> ready, std::function<std::string()> status);
    ~ServiceNotifier();
    ServiceNotifier(const ServiceNotifier&) = delete;
    ServiceNotifier& operator=(const ServiceNotifier&) = delete;

    // Starts the readiness checks and, when systemd asked for one (WATCHDOG_USEC), the keep-alives.
    void start();
    // STOPPING=1; cancels the timers.
    void stop();

    // Readiness is polled this often until READY=1 went out, then the status every status_interval.
    static constexpr std::chrono::milliseconds kPollInterval{100};
    static constexpr std::chrono::milliseconds kStatusInterval{5000};

  private:
    void poll();
    void keep_alive();
    void send(const std::string& message);

    boost::asio::steady_timer poll_timer_;
    boost::asio::steady_timer watchdog_timer_;
    spdlog::logger& log_;
    std::function<bool()> ready_;
    std::function<std::string()> status_;
    std::string last_status_;
    std::chrono::microseconds watchdog_interval_{0};
    bool ready_sent_ = false;
    bool stopped_ = false;
    std::chrono::steady_clock::time_point started_;
    sdk::Gauge& ready_gauge_;
    sdk::Gauge& wait_ms_;
    sdk::Gauge& watchdog_usec_;
    sdk::Counter& keepalives_;
};

}  // namespace ctsync::core
