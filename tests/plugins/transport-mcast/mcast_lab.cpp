// SPDX-License-Identifier: GPL-2.0-or-later
#include "mcast_lab.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "tests/support/process.hpp"

namespace mcast::test {

using ::testing::_;

namespace {

std::runtime_error system_error(const std::string& what) {
    return std::runtime_error(what + ": " + std::strerror(errno));
}

void run_checked(std::vector<std::string> argv) {
    auto result = ctsync::test::run(argv, std::chrono::seconds(10));
    if (result.exit_code != 0) {
        std::string command;
        for (const auto& a : argv) {
            command += a + " ";
        }
        throw std::runtime_error(command + "failed: " + result.err);
    }
}

}  // namespace

EnterNetns::EnterNetns(const NetNs& ns) {
    home_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home_ < 0) {
        throw system_error("cannot open this thread's network namespace");
    }
    const std::string path = "/run/netns/" + ns.name();
    int target = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0 || ::setns(target, CLONE_NEWNET) != 0) {
        auto error = system_error("cannot enter " + path);
        if (target >= 0) {
            ::close(target);
        }
        ::close(home_);
        throw error;
    }
    ::close(target);
}

EnterNetns::~EnterNetns() {
    if (::setns(home_, CLONE_NEWNET) != 0) {
        std::perror("cannot return to the test's network namespace");
        std::abort();
    }
    ::close(home_);
}

void ip(const NetNs& ns, std::vector<std::string> args) {
    std::vector<std::string> argv = {"ip", "-n", ns.name()};
    argv.insert(argv.end(), args.begin(), args.end());
    run_checked(std::move(argv));
}

void tc(const NetNs& ns, std::vector<std::string> args) {
    std::vector<std::string> argv = {"tc", "-n", ns.name()};
    argv.insert(argv.end(), args.begin(), args.end());
    run_checked(std::move(argv));
}

void no_dad(const NetNs& ns) {
    EnterNetns inside(ns);  // /proc/sys/net shows the namespace of the thread that opens it
    for (const char* scope : {"all", "default"}) {
        ctsync::test::write_file(std::string("/proc/sys/net/ipv6/conf/") + scope + "/accept_dad", "0\n");
    }
}

void veth(const NetNs& a, const std::string& a_name, const std::string& a_address, const NetNs& b,
          const std::string& b_name, const std::string& b_address) {
    ip(a, {"link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", b.name()});
    if (!a_address.empty()) {
        ip(a, {"addr", "add", a_address, "dev", a_name});
    }
    if (!b_address.empty()) {
        ip(b, {"addr", "add", b_address, "dev", b_name});
    }
    ip(a, {"link", "set", a_name, "up"});
    ip(b, {"link", "set", b_name, "up"});
}

bool wait_link_local(const NetNs& ns, const std::string& ifname) {
    return ctsync::test::wait_until(
        [&] {
            auto shown = ctsync::test::run(
                {"ip", "-n", ns.name(), "-6", "addr", "show", "dev", ifname, "scope", "link"},
                std::chrono::seconds(10));
            return shown.exit_code == 0 && shown.out.find("fe80") != std::string::npos;
        },
        std::chrono::seconds(5), std::chrono::milliseconds(50));
}

Node::Node(boost::asio::io_context& io, std::string name) : io_(io), name_(std::move(name)) {
    ON_CALL(logger_, log(_, _)).WillByDefault([this](ctsync::sdk::LogLevel, std::string_view line) {
        log_lines.emplace_back(line);
    });
    ON_CALL(sink_, on_datagram(_)).WillByDefault([this](std::span<const std::byte> data) {
        datagrams.emplace_back(reinterpret_cast<const char*>(data.data()), data.size());
    });
    ON_CALL(sink_, on_link_state(_, _))
        .WillByDefault(
            [this](ctsync::sdk::LinkState state, const std::string& d) { links.emplace_back(state, d); });
}

Node::~Node() {
    if (transport_) {
        transport_->stop();
    }
}

bool Node::start(const NetNs& ns, TransportOptions options, std::string& error) {
    EnterNetns inside(ns);
    ctsync::sdk::PluginContext context{io_.get_executor(), &logger_, &metrics_, 1, name_};
    transport_ = std::make_unique<McastTransport>(context, std::move(options));
    return transport_->start(sink_, error);
}

bool Node::send(const std::string& payload) {
    return transport_->send(std::as_bytes(std::span<const char>(payload.data(), payload.size())));
}

bool Node::logged(const std::string& fragment) const {
    for (const auto& line : log_lines) {
        if (line.find(fragment) != std::string::npos) {
            return true;
        }
    }
    return false;
}

bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds timeout) {
    auto guard = boost::asio::make_work_guard(io);  // run_for() then waits instead of returning at once
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        if (io.stopped()) {
            io.restart();
        }
        io.run_for(std::chrono::milliseconds(10));
    }
    return true;
}

void run_for(boost::asio::io_context& io, std::chrono::milliseconds duration) {
    auto guard = boost::asio::make_work_guard(io);
    if (io.stopped()) {
        io.restart();
    }
    io.run_for(duration);
}

PlainSocket::PlainSocket(const NetNs& ns, int family, const std::string& ifname) : family_(family) {
    EnterNetns inside(ns);
    fd_ = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd_ < 0) {
        throw system_error("socket");
    }
    ifindex_ = static_cast<int>(if_nametoindex(ifname.c_str()));
    if (ifindex_ == 0 || ::setsockopt(fd_, SOL_SOCKET, SO_BINDTODEVICE, ifname.c_str(),
                                      static_cast<socklen_t>(ifname.size())) != 0) {
        ::close(fd_);
        throw system_error("cannot bind a plain socket to " + ifname);
    }
}

PlainSocket::~PlainSocket() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void PlainSocket::send_to_group(const std::string& group, std::uint16_t port, const std::string& payload,
                                bool loop) {
    const int on = loop ? 1 : 0;
    const int one = 1;
    sockaddr_storage to{};
    socklen_t length = 0;
    int rc = 0;
    if (family_ == AF_INET) {
        ip_mreqn via{};
        via.imr_ifindex = ifindex_;
        rc |= ::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_IF, &via, sizeof(via));
        rc |= ::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_LOOP, &on, sizeof(on));
        rc |= ::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_TTL, &one, sizeof(one));
        auto* sin = reinterpret_cast<sockaddr_in*>(&to);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        inet_pton(AF_INET, group.c_str(), &sin->sin_addr);
        length = sizeof(sockaddr_in);
    } else {
        rc |= ::setsockopt(fd_, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex_, sizeof(ifindex_));
        rc |= ::setsockopt(fd_, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &on, sizeof(on));
        rc |= ::setsockopt(fd_, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &one, sizeof(one));
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&to);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_scope_id = static_cast<std::uint32_t>(ifindex_);
        inet_pton(AF_INET6, group.c_str(), &sin6->sin6_addr);
        length = sizeof(sockaddr_in6);
    }
    if (rc != 0) {
        throw system_error("setsockopt on a plain socket");
    }
    if (::sendto(fd_, payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&to), length) <
        0) {
        throw system_error("sendto from a plain socket");
    }
}

void PlainSocket::listen(const std::string& group, std::uint16_t port) {
    const int one = 1;
    int rc = 0;
    if (family_ == AF_INET) {
        sockaddr_in at{};
        at.sin_family = AF_INET;
        at.sin_port = htons(port);
        inet_pton(AF_INET, group.c_str(), &at.sin_addr);
        rc |= ::bind(fd_, reinterpret_cast<const sockaddr*>(&at), sizeof(at));
        ip_mreqn join{};
        join.imr_multiaddr = at.sin_addr;
        join.imr_ifindex = ifindex_;
        rc |= ::setsockopt(fd_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &join, sizeof(join));
        rc |= ::setsockopt(fd_, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one));
    } else {
        sockaddr_in6 at{};
        at.sin6_family = AF_INET6;
        at.sin6_port = htons(port);
        at.sin6_scope_id = static_cast<std::uint32_t>(ifindex_);
        inet_pton(AF_INET6, group.c_str(), &at.sin6_addr);
        rc |= ::bind(fd_, reinterpret_cast<const sockaddr*>(&at), sizeof(at));
        ipv6_mreq join{};
        join.ipv6mr_multiaddr = at.sin6_addr;
        join.ipv6mr_interface = static_cast<unsigned>(ifindex_);
        rc |= ::setsockopt(fd_, IPPROTO_IPV6, IPV6_JOIN_GROUP, &join, sizeof(join));
        rc |= ::setsockopt(fd_, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof(one));
    }
    if (rc != 0) {
        throw system_error("cannot listen on a plain socket");
    }
}

std::optional<PlainSocket::Received> PlainSocket::receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
        return std::nullopt;
    }
    char buffer[65536];
    alignas(cmsghdr) char control[256];
    iovec io{buffer, sizeof(buffer)};
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(fd_, &message, MSG_DONTWAIT);
    if (n < 0) {
        return std::nullopt;
    }
    Received received;
    received.payload.assign(buffer, static_cast<std::size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
        if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
            (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
            int value = 0;
            std::memcpy(&value, CMSG_DATA(c), sizeof(value));
            received.hop_limit = value;
        }
    }
    return received;
}

}  // namespace mcast::test
