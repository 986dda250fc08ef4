// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/service_notify.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

namespace ctsync::core {

ServiceNotifier::ServiceNotifier(boost::asio::any_io_executor executor, MetricsRegistry& metrics,
                                 spdlog::logger& log, std::function<bool()> ready,
                                 std::function<std::string()> status)
    : poll_timer_(executor),
      watchdog_timer_(executor),
      log_(log),
      ready_(std::move(ready)),
      status_(std::move(status)),
      ready_gauge_(metrics.gauge("daemon.ready",
                                 "1 once the daemon told systemd READY=1 (table dumped; a "
                                 "backup's peers' tables received and written)")),
      wait_ms_(metrics.gauge("daemon.ready_wait_ms", "milliseconds from start-up to READY=1")),
      watchdog_usec_(metrics.gauge("daemon.watchdog_usec", "systemd's WatchdogSec in microseconds, 0: none")),
      keepalives_(metrics.counter("daemon.watchdog_keepalives", "WATCHDOG=1 sent from the event loop")) {}

ServiceNotifier::~ServiceNotifier() {
    poll_timer_.cancel();
    watchdog_timer_.cancel();
}

void ServiceNotifier::send(const std::string& message) {
    if (int rc = ::sd_notify(0, message.c_str()); rc < 0) {
        log_.warn("event=sd_notify_failed message=\"{}\" errno={}", message.substr(0, message.find('\n')),
                  -rc);
    }
}

void ServiceNotifier::start() {
    started_ = std::chrono::steady_clock::now();
    std::uint64_t usec = 0;
    // Not unsetting the environment: WATCHDOG_PID must stay for a daemon that re-reads it (none today).
    if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        watchdog_interval_ = std::chrono::microseconds(usec);
        watchdog_usec_.set(static_cast<std::int64_t>(usec));
        log_.info("event=watchdog_enabled watchdog_usec={} keepalive_every_ms={}", usec, usec / 2000);
        keep_alive();
    }
    poll();
}

void ServiceNotifier::stop() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    poll_timer_.cancel();
    watchdog_timer_.cancel();
    send("STOPPING=1\nSTATUS=stopping");
}

void ServiceNotifier::poll() {
    if (stopped_) {
        return;
    }
    std::string status = status_();
    if (!ready_sent_ && ready_()) {
        ready_sent_ = true;
        ready_gauge_.set(1);
        auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                            started_);
        wait_ms_.set(waited.count());
        send("READY=1\nSTATUS=" + status);
        last_status_ = status;
        log_.info("event=ready waited_ms={} status=\"{}\"", waited.count(), status);
    } else if (status != last_status_) {
        send("STATUS=" + status);
        last_status_ = status;
    }
    poll_timer_.expires_after(ready_sent_ ? kStatusInterval : kPollInterval);
    poll_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) {
            poll();
        }
    });
}

// Half the interval, as sd_watchdog_enabled(3) advises; the timer runs on the event loop, so a loop stuck in
// a handler sends nothing and systemd kills and restarts the daemon after WatchdogSec.
void ServiceNotifier::keep_alive() {
    if (stopped_) {
        return;
    }
    send("WATCHDOG=1");
    keepalives_.add();
    watchdog_timer_.expires_after(watchdog_interval_ / 2);
    watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) {
            keep_alive();
        }
    });
}

}  // namespace ctsync::core
