// SPDX-License-Identifier: GPL-2.0-or-later
// A socket playing systemd's NOTIFY_SOCKET: a bound AF_UNIX datagram socket that collects what a daemon
// sends with sd_notify(3), each message with the time it arrived.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace ctsync::test {

class NotifySocket {
  public:
    using Clock = std::chrono::steady_clock;
    struct Message {
        Clock::time_point at;
        std::string text;  // "READY=1\nSTATUS=...", "WATCHDOG=1", ...
        bool has(const std::string& assignment) const {
            std::size_t start = 0;
            while (start <= text.size()) {
                std::size_t end = text.find('\n', start);
                if (text.compare(start, end == std::string::npos ? std::string::npos : end - start,
                                 assignment) == 0) {
                    return true;
                }
                if (end == std::string::npos) {
                    return false;
                }
                start = end + 1;
            }
            return false;
        }
        // The value of KEY= in the message, empty when absent.
        std::string value(const std::string& key) const {
            std::size_t start = 0;
            while (start < text.size()) {
                std::size_t end = text.find('\n', start);
                std::string line =
                    text.substr(start, end == std::string::npos ? std::string::npos : end - start);
                if (line.rfind(key + "=", 0) == 0) {
                    return line.substr(key.size() + 1);
                }
                if (end == std::string::npos) {
                    break;
                }
                start = end + 1;
            }
            return {};
        }
    };

    explicit NotifySocket(std::filesystem::path path) : path_(std::move(path)) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (fd_ < 0 || path_.string().size() >= sizeof(addr.sun_path)) {
            throw std::runtime_error("notify socket: cannot create " + path_.string());
        }
        std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
            throw std::runtime_error("notify socket: bind " + path_.string() + ": " + std::strerror(errno));
        }
    }
    ~NotifySocket() {
        ::close(fd_);
        std::error_code ec;
        std::filesystem::remove(path_, ec);
    }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // Receives for `duration` (bounded), appending to messages(); stops early once `until` holds for a
    // message. Returns whether `until` was met.
    template <class Until>
    bool collect(std::chrono::milliseconds duration, Until until) {
        const auto deadline = Clock::now() + duration;
        while (true) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) {
                return false;
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
                continue;
            }
            char buffer[4096];
            ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
            if (n <= 0) {
                continue;
            }
            messages_.push_back({Clock::now(), std::string(buffer, static_cast<std::size_t>(n))});
            if (until(messages_.back())) {
                return true;
            }
        }
    }
    void collect(std::chrono::milliseconds duration) {
        collect(duration, [](const Message&) { return false; });
    }

    const std::vector<Message>& messages() const { return messages_; }

  private:
    std::filesystem::path path_;
    int fd_ = -1;
    std::vector<Message> messages_;
};

}  // namespace ctsync::test
