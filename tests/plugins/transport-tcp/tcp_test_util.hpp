// SPDX-License-Identifier: GPL-2.0-or-later
// Helpers for the transport-tcp tests: a network namespace the test thread enters for the duration of a
// test, nodes (a transport with a recording sink, a recording logger and real counters) sharing one
// io_context, bounded waits that run the loop, and raw sockets that play a misbehaving peer.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctsync/sdk/testing/mocks.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tcp_transport.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"

namespace transport_tcp::test {

using namespace std::chrono_literals;
using ctsync::sdk::LinkState;
using Bytes = std::vector<std::byte>;

constexpr std::uint16_t kPort = 3782;

inline std::string loopback(int host) {
    return "127.0.0." + std::to_string(host);
}

inline Endpoint endpoint(const std::string& address, std::uint16_t port = kPort) {
    return Endpoint(boost::asio::ip::make_address(address), port);
}

// Node `self` listens on 127.0.0.<self>:3782, connects from 127.0.0.<self> (the loopback route would
// otherwise pick 127.0.0.1 as source for every node) to each of `peers`. Short backoff keeps tests quick.
inline TcpOptions loopback_options(int self, const std::vector<int>& peers) {
    TcpOptions options;
    options.listen = endpoint(loopback(self));
    options.bind_address = boost::asio::ip::make_address(loopback(self));
    for (int peer : peers) {
        options.peers.push_back(endpoint(loopback(peer)));
    }
    options.reconnect_min = 20ms;
    options.reconnect_max = 200ms;
    options.connect_timeout = 500ms;
    return options;
}

// Runs the loop until `condition` holds or `timeout` passes; returns the last result.
template <class Condition>
bool run_until(boost::asio::io_context& io, Condition condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        if (io.stopped()) {
            io.restart();
        }
        io.run_for(5ms);
    }
    return true;
}

// Runs the loop for a fixed time: for observing what happens (or does not) within a window.
inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds duration) {
    const auto deadline = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < deadline) {
        if (io.stopped()) {
            io.restart();
        }
        io.run_for(5ms);
    }
}

// Datagram `index` of node `sender`: the first byte names the sender, the rest is a pattern of both.
inline Bytes datagram(int sender, std::size_t index, std::size_t size) {
    Bytes out(size);
    out[0] = static_cast<std::byte>(sender);
    for (std::size_t k = 1; k < size; ++k) {
        out[k] = static_cast<std::byte>((index * 131 + k * 7 + static_cast<std::size_t>(sender)) & 0xff);
    }
    return out;
}

inline Bytes frame(std::uint32_t length_field, const Bytes& body = {}) {
    Bytes out(4 + body.size());
    out[0] = static_cast<std::byte>(length_field >> 24);
    out[1] = static_cast<std::byte>(length_field >> 16);
    out[2] = static_cast<std::byte>(length_field >> 8);
    out[3] = static_cast<std::byte>(length_field);
    if (!body.empty()) {
        std::memcpy(out.data() + 4, body.data(), body.size());
    }
    return out;
}

inline Bytes bytes_of(const std::string& text) {
    Bytes out(text.size());
    std::memcpy(out.data(), text.data(), text.size());
    return out;
}

class RecordingSink : public ctsync::sdk::TransportSink {
  public:
    void on_datagram(std::span<const std::byte> data) noexcept override {
        datagrams.emplace_back(data.begin(), data.end());
    }
    void on_link_state(LinkState state, const std::string& detail) noexcept override {
        links.emplace_back(state, detail);
    }
    // The datagrams whose first byte names `sender`, in arrival order.
    std::vector<Bytes> from(int sender) const {
        std::vector<Bytes> out;
        for (const auto& d : datagrams) {
            if (!d.empty() && d[0] == static_cast<std::byte>(sender)) {
                out.push_back(d);
            }
        }
        return out;
    }

    std::vector<Bytes> datagrams;
    std::vector<std::pair<LinkState, std::string>> links;
};

// One transport with everything it reports recorded.
struct Node {
    Node(boost::asio::io_context& io, TcpOptions options) {
        ON_CALL(logger, log(::testing::_, ::testing::_))
            .WillByDefault(
                [this](ctsync::sdk::LogLevel, std::string_view line) { lines.emplace_back(line); });
        ctsync::sdk::PluginContext context{io.get_executor(), &logger, &metrics, 1, "transport-tcp"};
        transport = std::make_unique<TcpTransport>(context, std::move(options));
    }
    ~Node() {
        if (transport) {
            transport->stop();
        }
    }

    bool start(std::string& error) { return transport->start(sink, error); }
    void start() {
        std::string error;
        ASSERT_TRUE(start(error)) << error;
    }
    bool send(const Bytes& d) { return transport->send(std::span<const std::byte>(d.data(), d.size())); }
    std::int64_t counter(const std::string& name) const { return metrics.counter_value(name); }
    std::int64_t gauge(const std::string& name) { return metrics.gauge(name, "").value(); }
    std::size_t connected() const { return transport->peers_connected(); }
    bool logged(const std::string& needle) const {
        for (const auto& line : lines) {
            if (line.find(needle) != std::string::npos) {
                return true;
            }
        }
        return false;
    }
    std::string log_text() const {
        std::string out;
        for (const auto& line : lines) {
            out += line + "\n";
        }
        return out;
    }

    ::testing::NiceMock<ctsync::testkit::MockLogger> logger;
    ctsync::testkit::FakeMetrics metrics;
    RecordingSink sink;
    std::vector<std::string> lines;
    std::unique_ptr<TcpTransport> transport;  // last: destroyed before what it reports to
};

// A plain non-blocking TCP socket playing a peer that does not follow the protocol.
class RawSocket {
  public:
    RawSocket() = default;
    explicit RawSocket(int fd) : fd_(fd) {}
    RawSocket(RawSocket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    RawSocket& operator=(RawSocket&& other) noexcept {
        std::swap(fd_, other.fd_);
        return *this;
    }
    ~RawSocket() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }

    // Connects from `local` to `remote`:`port` (IPv4). Loopback connects complete in the kernel's
    // backlog, before the transport accepts. Returns an invalid socket on failure.
    static RawSocket connect(const std::string& local, const std::string& remote,
                             std::uint16_t port = kPort) {
        RawSocket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in from{};
        from.sin_family = AF_INET;
        ::inet_pton(AF_INET, local.c_str(), &from.sin_addr);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(port);
        ::inet_pton(AF_INET, remote.c_str(), &to.sin_addr);
        if (::bind(s.fd_, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0 ||
            ::connect(s.fd_, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
            return RawSocket();
        }
        s.make_nonblocking();
        return s;
    }

    // A listening socket on `address`:`port` that accepts only when asked.
    static RawSocket listen(const std::string& address, std::uint16_t port = kPort) {
        RawSocket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        int one = 1;
        ::setsockopt(s.fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        sockaddr_in at{};
        at.sin_family = AF_INET;
        at.sin_port = htons(port);
        ::inet_pton(AF_INET, address.c_str(), &at.sin_addr);
        if (::bind(s.fd_, reinterpret_cast<sockaddr*>(&at), sizeof(at)) != 0 || ::listen(s.fd_, 16) != 0) {
            return RawSocket();
        }
        s.make_nonblocking();
        return s;
    }

    // A pending connection, or an invalid socket when none is queued.
    RawSocket accept() {
        RawSocket s(::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC));
        if (s.valid()) {
            s.make_nonblocking();
        }
        return s;
    }

    bool valid() const { return fd_ >= 0; }

    // Writes everything (small amounts: the socket buffer takes them at once).
    bool write(const Bytes& data) {
        std::size_t done = 0;
        while (done < data.size()) {
            ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
            if (n <= 0) {
                return false;
            }
            done += static_cast<std::size_t>(n);
        }
        return true;
    }

    // Whether the other side closed (EOF or reset). Consumes what was sent to us, if anything.
    bool closed_by_peer() {
        std::byte buffer[4096];
        while (true) {
            ssize_t n = ::recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
            if (n == 0) {
                return true;
            }
            if (n < 0) {
                return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
            }
        }
    }

    // Appends whatever is readable now to `out`; false once the other side closed.
    bool read_available(Bytes& out) {
        std::byte buffer[65536];
        while (true) {
            ssize_t n = ::recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
            if (n == 0) {
                return false;
            }
            if (n < 0) {
                return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
            }
            out.insert(out.end(), buffer, buffer + n);
        }
    }

  private:
    void make_nonblocking() { ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK); }

    int fd_ = -1;
};

// Each test runs with the test thread inside a fresh network namespace (created with loopback up, deleted
// afterwards): every socket the test opens lives there, nothing reaches the host's network.
class TransportTcpNetns : public ::testing::Test {
  protected:
    void SetUp() override {
        // The suite runs as root (scripts/test.sh): a missing privilege is a failure, not a skip.
        ASSERT_TRUE(ctsync::test::can_create_netns()) << "this test needs root (network namespaces)";
        ns_ = std::make_unique<ctsync::test::NetNs>("tcp");
        original_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        ASSERT_GE(original_, 0) << std::strerror(errno);
        int target = ::open(("/run/netns/" + ns_->name()).c_str(), O_RDONLY | O_CLOEXEC);
        ASSERT_GE(target, 0) << std::strerror(errno);
        int entered = ::setns(target, CLONE_NEWNET);
        ::close(target);
        ASSERT_EQ(entered, 0) << std::strerror(errno);
        entered_ = true;
    }

    void TearDown() override {
        if (entered_) {
            EXPECT_EQ(::setns(original_, CLONE_NEWNET), 0) << std::strerror(errno);
        }
        if (original_ >= 0) {
            ::close(original_);
        }
        ns_.reset();
    }

    // Runs a command inside the test's namespace; fails the test when it does not exit 0.
    void in_netns(const std::vector<std::string>& argv) {
        auto result = ctsync::test::run(ns_->exec(argv), 10s);
        ASSERT_EQ(result.exit_code, 0) << "command failed: " << result.err << result.out;
    }

    boost::asio::io_context io_;

  private:
    std::unique_ptr<ctsync::test::NetNs> ns_;
    int original_ = -1;
    bool entered_ = false;
};

}  // namespace transport_tcp::test
