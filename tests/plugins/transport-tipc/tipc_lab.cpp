// SPDX-License-Identifier: GPL-2.0-or-later
#include "tipc_lab.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>

#include "tests/support/process.hpp"

namespace tipc::test {

using ::testing::_;

namespace {

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

void ip(const NetNs& ns, std::vector<std::string> args) {
    std::vector<std::string> argv = {"ip", "-n", ns.name()};
    argv.insert(argv.end(), args.begin(), args.end());
    run_checked(std::move(argv));
}

int next_lab() {
    static int labs = 0;
    return ++labs;
}

}  // namespace

void require_tipc() {
    const int fd = ::socket(AF_TIPC, SOCK_RDM, 0);
    if (fd < 0) {
        FAIL() << "no TIPC in this kernel (" << std::strerror(errno)
               << "): this binary runs inside the test VM (scripts/vm/vm-run.sh)";
    }
    ::close(fd);
}

EnterNetns::EnterNetns(const NetNs& ns) {
    home_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home_ < 0) {
        throw std::runtime_error(std::string("cannot open this thread's network namespace: ") +
                                 std::strerror(errno));
    }
    const std::string path = "/run/netns/" + ns.name();
    const int target = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0 || ::setns(target, CLONE_NEWNET) != 0) {
        const std::string why = std::strerror(errno);
        if (target >= 0) {
            ::close(target);
        }
        ::close(home_);
        throw std::runtime_error("cannot enter " + path + ": " + why);
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

TipcLab::TipcLab(std::size_t nodes) {
    const int lab = next_lab();
    switch_ = std::make_unique<NetNs>("tsw" + std::to_string(lab));
    ip(*switch_, {"link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0"});
    ip(*switch_, {"link", "set", "br0", "up"});
    for (std::size_t i = 0; i < nodes; ++i) {
        nodes_.push_back(std::make_unique<NetNs>("tn" + std::to_string(lab) + "-" + std::to_string(i)));
        const NetNs& node = *nodes_.back();
        const std::string port = "p" + std::to_string(i);
        ip(*switch_, {"link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", node.name()});
        ip(*switch_, {"link", "set", port, "master", "br0"});
        ip(*switch_, {"link", "set", port, "up"});
        ip(node, {"link", "set", "eth0", "up"});
        // The identity before the bearer: TIPC derives the node's 32-bit address from it.
        run_checked(node.exec(
            {"tipc", "node", "set", "identity", "l" + std::to_string(lab) + "n" + std::to_string(i)}));
        run_checked(node.exec({"tipc", "bearer", "enable", "media", "eth", "dev", "eth0"}));
    }
}

std::string TipcLab::links(std::size_t i) const {
    return ctsync::test::run(ns(i).exec({"tipc", "link", "list"}), std::chrono::seconds(10)).out;
}

bool TipcLab::wait_links(std::chrono::milliseconds limit, std::string& why) const {
    const bool up = ctsync::test::wait_until(
        [&] {
            for (std::size_t i = 0; i < size(); ++i) {
                const std::string out = links(i);
                std::size_t ups = 0;
                for (auto at = out.find(": up"); at != std::string::npos; at = out.find(": up", at + 1)) {
                    ++ups;
                }
                if (ups < size()) {  // the broadcast link and one link per other node
                    why = "node " + std::to_string(i) + ":\n" + out;
                    return false;
                }
            }
            return true;
        },
        limit, std::chrono::milliseconds(100));
    return up;
}

void TipcLab::cut(std::size_t i) {
    ip(*switch_, {"link", "set", "p" + std::to_string(i), "down"});
}

void TipcLab::restore(std::size_t i) {
    ip(*switch_, {"link", "set", "p" + std::to_string(i), "up"});
}

void TipcLab::block_ingress(std::size_t i) {
    run_checked(ns(i).exec({"nft", "add", "table", "netdev", "ctsync_block"}));
    run_checked(ns(i).exec({"nft", "add", "chain", "netdev", "ctsync_block", "in",
                            "{ type filter hook ingress device eth0 priority 0 ; policy drop ; }"}));
}

void TipcLab::unblock_ingress(std::size_t i) {
    run_checked(ns(i).exec({"nft", "delete", "table", "netdev", "ctsync_block"}));
}

Node::Node(boost::asio::io_context& io, std::uint32_t node_id, std::string name)
    : io_(io), id_(node_id), name_(name.empty() ? "tipc" + std::to_string(node_id) : std::move(name)) {
    ON_CALL(logger_, log(_, _)).WillByDefault([this](ctsync::sdk::LogLevel, std::string_view line) {
        log_lines.emplace_back(line);
    });
    ON_CALL(sink_, on_datagram(_)).WillByDefault([this](std::span<const std::byte> data) {
        datagrams.emplace_back(reinterpret_cast<const char*>(data.data()), data.size());
    });
    ON_CALL(sink_, on_link_state(_, _))
        .WillByDefault([this](ctsync::sdk::LinkState state, const std::string& detail) {
            links.push_back({state, detail, Clock::now()});
        });
    ON_CALL(sink_, on_peer_state(_, _, _))
        .WillByDefault([this](std::uint32_t node, ctsync::sdk::PeerState state, const std::string& detail) {
            peers.push_back({node, state, detail, Clock::now()});
        });
}

Node::~Node() {
    if (transport_) {
        transport_->stop();
    }
}

bool Node::start(const NetNs& ns, TransportOptions options, std::string& error) {
    EnterNetns inside(ns);
    ctsync::sdk::PluginContext context{io_.get_executor(), &logger_, &metrics_, id_, name_};
    transport_ = std::make_unique<TipcTransport>(context, std::move(options));
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

std::vector<Node::PeerReport> Node::reports(std::uint32_t node) const {
    std::vector<PeerReport> out;
    for (const auto& report : peers) {
        if (report.node == node) {
            out.push_back(report);
        }
    }
    return out;
}

std::size_t Node::reports(std::uint32_t node, ctsync::sdk::PeerState state) const {
    std::size_t n = 0;
    for (const auto& report : peers) {
        n += report.node == node && report.state == state ? 1 : 0;
    }
    return n;
}

bool Node::sees_up(std::uint32_t node) const {
    auto all = reports(node);
    return !all.empty() && all.back().state == ctsync::sdk::PeerState::kUp;
}

bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds timeout) {
    auto guard = boost::asio::make_work_guard(io);  // run_for() then waits instead of returning at once
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
        if (Clock::now() >= deadline) {
            return false;
        }
        if (io.stopped()) {
            io.restart();
        }
        io.run_for(std::chrono::milliseconds(5));
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

double ms_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
}

void print_measured(const std::string& what, double ms) {
    const long rounded = static_cast<long>(ms + 0.5);
    std::cout << "measured: " << what << " " << rounded << " ms" << std::endl;
    std::string key = what;
    for (char& c : key) {
        c = c == ' ' ? '_' : c;
    }
    ::testing::Test::RecordProperty(key, std::to_string(rounded));
}

void TipcVmTest::SetUp() {
    require_tipc();
}

void TipcVmTest::start_cluster(std::size_t n, const TransportOptions& options) {
    start_cluster(std::vector<TransportOptions>(n, options));
}

void TipcVmTest::start_cluster(const std::vector<TransportOptions>& per_node) {
    const std::size_t n = per_node.size();
    lab_ = std::make_unique<TipcLab>(n);
    std::string why;
    ASSERT_TRUE(lab_->wait_links(std::chrono::seconds(30), why)) << "TIPC links did not come up: " << why;
    for (std::size_t i = 0; i < n; ++i) {
        nodes_.push_back(std::make_unique<Node>(io_, static_cast<std::uint32_t>(i + 1)));
        std::string error;
        ASSERT_TRUE(nodes_.back()->start(lab_->ns(i), per_node[i], error)) << error;
    }
    std::vector<std::uint32_t> all;
    for (std::size_t i = 0; i < n; ++i) {
        all.push_back(static_cast<std::uint32_t>(i + 1));
    }
    const auto started = Clock::now();
    ASSERT_TRUE(run_until(
        io_,
        [&] {
            for (std::size_t i = 0; i < n; ++i) {
                std::vector<std::uint32_t> others;
                for (auto id : all) {
                    if (id != i + 1) {
                        others.push_back(id);
                    }
                }
                if (!sees_exactly(i, others) || !nodes_[i]->link_up()) {
                    return false;
                }
            }
            return true;
        },
        std::chrono::seconds(20)))
        << "not every node reports every other up";
    print_measured("cluster of " + std::to_string(n) + " up after start", ms_between(started, Clock::now()));
}

bool TipcVmTest::sees_exactly(std::size_t index, const std::vector<std::uint32_t>& ids) const {
    const Node& n = *nodes_.at(index);
    for (auto id : ids) {
        if (!n.sees_up(id)) {
            return false;
        }
    }
    return n.transport_peers_up() == ids.size();
}

}  // namespace tipc::test
