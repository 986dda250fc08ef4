// SPDX-License-Identifier: GPL-2.0-or-later
// What the ha-keepalived tests share: an event loop with the SDK's mocks around one adapter, a FIFO writer
// that opens its end the way keepalived does, and bounded waits.
#pragma once

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctsync/sdk/testing/mocks.hpp>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "keepalived_adapter.hpp"
#include "tests/support/process.hpp"

namespace ha_keepalived::test {

using ctsync::sdk::LogLevel;
using ctsync::sdk::Role;
using namespace std::chrono_literals;

// keepalived's end of the FIFO: opened read-write and non-blocking (so it never waits for a reader), as
// keepalived's fifo_open() does.
class FifoWriter {
  public:
    explicit FifoWriter(const std::filesystem::path& path) {
        fd_ = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd_ < 0) {
            throw std::runtime_error("cannot open " + path.string() + ": " + std::strerror(errno));
        }
    }
    FifoWriter(const FifoWriter&) = delete;
    FifoWriter& operator=(const FifoWriter&) = delete;
    ~FifoWriter() { close(); }

    void write(const std::string& bytes) {
        std::size_t done = 0;
        while (done < bytes.size()) {
            const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
            if (n < 0) {
                throw std::runtime_error(std::string("write to the FIFO: ") + std::strerror(errno));
            }
            done += static_cast<std::size_t>(n);
        }
    }
    void close() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

  private:
    int fd_ = -1;
};

struct LogLine {
    LogLevel level;
    std::string text;
};

// One adapter on its own io_context, with a recording logger, sink and metrics.
class Harness {
    // First, so that it goes last: the adapter writes its track file when it is destroyed.
    ctsync::test::TempDir dir_{"ctsync-ha"};

  public:
    Harness() {
        ON_CALL(logger, enabled(::testing::_)).WillByDefault(::testing::Return(true));
        ON_CALL(logger, log(::testing::_, ::testing::_))
            .WillByDefault([this](LogLevel level, std::string_view text) {
                logs.push_back({level, std::string(text)});
            });
        ON_CALL(sink, on_role(::testing::_, ::testing::_))
            .WillByDefault([this](Role role, const std::string& why) { roles.emplace_back(role, why); });
        options.fifo = (dir_ / "notify.fifo").string();
        options.instances = {"VI_1"};
        options.reopen_interval = 50ms;
    }

    std::filesystem::path path(const std::string& name) const { return dir_ / name; }
    std::filesystem::path fifo() const { return options.fifo; }

    ctsync::sdk::PluginContext context() {
        return ctsync::sdk::PluginContext{io.get_executor(), &logger, &metrics, 1, "ha"};
    }

    KeepalivedAdapter& make() {
        adapter = std::make_unique<KeepalivedAdapter>(context(), options);
        return *adapter;
    }
    // Creates the adapter and starts it; fails the test when start() refuses.
    KeepalivedAdapter& start() {
        make();
        std::string error;
        const bool started = adapter->start(sink, error);
        EXPECT_TRUE(started) << error;
        EXPECT_TRUE(error.empty()) << error;
        return *adapter;
    }
    std::string start_error() {
        make();
        std::string error;
        EXPECT_FALSE(adapter->start(sink, error));
        return error;
    }

    // Runs the loop until `condition` holds or `timeout` passed; returns the condition.
    template <class Condition>
    bool run_until(Condition condition, std::chrono::milliseconds timeout = 5s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!condition()) {
            if (std::chrono::steady_clock::now() >= deadline) {
                return false;
            }
            io.restart();
            io.run_for(5ms);
        }
        return true;
    }
    // Runs the loop for `duration`; returns how many handlers ran.
    std::size_t run_counting(std::chrono::milliseconds duration) {
        io.restart();
        return io.run_for(duration);
    }
    void run_for(std::chrono::milliseconds duration) {
        const auto deadline = std::chrono::steady_clock::now() + duration;
        while (std::chrono::steady_clock::now() < deadline) {
            io.restart();
            io.run_for(5ms);
        }
    }

    std::int64_t counter(const std::string& name) const { return metrics.counter_value(name); }
    std::int64_t gauge(const std::string& name) { return metrics.gauge(name, "").value(); }
    bool logged(LogLevel level, const std::string& part) const {
        for (const auto& line : logs) {
            if (line.level == level && line.text.find(part) != std::string::npos) {
                return true;
            }
        }
        return false;
    }
    std::string all_logs() const {
        std::string out;
        for (const auto& line : logs) {
            out += line.text + "\n";
        }
        return out;
    }
    std::vector<Role> role_sequence() const {
        std::vector<Role> out;
        for (const auto& [role, why] : roles) {
            out.push_back(role);
        }
        return out;
    }

    boost::asio::io_context io;
    ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
    ctsync::testkit::FakeMetrics metrics;
    ::testing::NiceMock<ctsync::testkit::MockRoleSink> sink;
    std::vector<LogLine> logs;
    std::vector<std::pair<Role, std::string>> roles;
    AdapterOptions options;
    std::unique_ptr<KeepalivedAdapter> adapter;
};

inline std::string file_text(const std::filesystem::path& path) {
    return ctsync::test::read_file(path);
}

inline mode_t file_mode(const std::filesystem::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        return 0;
    }
    return st.st_mode & 07777;
}

}  // namespace ha_keepalived::test
