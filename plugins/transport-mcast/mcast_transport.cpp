// SPDX-License-Identifier: GPL-2.0-or-later
#include "mcast_transport.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

namespace mcast {
namespace {

namespace asio = boost::asio;
using ctsync::sdk::LinkState;

constexpr int kReadsPerWakeup = 64;  // then other handlers run before we read on
constexpr std::size_t kRouteEventBufferBytes = 1u << 20;
constexpr std::size_t kRouteReadBytes = 64 * 1024;
constexpr std::size_t kControlBytes = 256;  // room for one IP_PKTINFO or IPV6_PKTINFO message

// Closes a descriptor unless released: sockets under construction.
class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }

  private:
    int fd_;
};

const char* family_name(int family) {
    return family == AF_INET6 ? "IPv6" : "IPv4";
}

std::string endpoint(const Group& group, std::uint16_t port) {
    return group.address.family == AF_INET6 ? fmt::format("[{}]:{}", group.text, port)
                                            : fmt::format("{}:{}", group.text, port);
}

int route_trampoline(const nlmsghdr* nlh, void* data) {
    static_cast<McastTransport*>(data)->on_route_message(nlh);
    return MNL_CB_OK;
}

}  // namespace

bool parse_group(const std::string& text, Group& out, std::string& error) {
    Group group;
    group.text = text;
    const char* hint =
        "use an IPv4 group in 224.0.0.0/4 (239.0.0.0/8 is for local use) or an IPv6 group in ff00::/8 "
        "(ff02::/16 and ff12::/16 are link-local)";
    if (inet_pton(AF_INET, text.c_str(), group.address.bytes.data()) == 1) {
        group.address.family = AF_INET;
        if ((group.address.bytes[0] & 0xf0) != 0xe0) {
            error = fmt::format("'{}' is not a multicast address: {}", text, hint);
            return false;
        }
    } else if (inet_pton(AF_INET6, text.c_str(), group.address.bytes.data()) == 1) {
        group.address.family = AF_INET6;
        if (group.address.bytes[0] != 0xff) {
            error = fmt::format("'{}' is not a multicast address: {}", text, hint);
            return false;
        }
        const unsigned scope = group.address.bytes[1] & 0x0f;
        if (scope == 0x1) {
            error = fmt::format(
                "'{}' has interface-local scope: its datagrams never leave this node; use a link-scope group "
                "(ff02::/16 or ff12::/16) or a wider one",
                text);
            return false;
        }
        if (scope == 0x0 || scope == 0xf) {
            error = fmt::format("'{}' has a reserved multicast scope ({:x}): {}", text, scope, hint);
            return false;
        }
        group.link_scope = scope == 0x2;
    } else {
        error = fmt::format("'{}' is not an IPv4 or IPv6 address", text);
        return false;
    }
    out = std::move(group);
    return true;
}

bool valid_interface_name(const std::string& name, std::string& error) {
    if (name.empty()) {
        error = "must not be empty";
        return false;
    }
    if (name.size() >= IFNAMSIZ) {
        error = fmt::format("'{}' has {} characters; Linux interface names have at most {}", name,
                            name.size(), IFNAMSIZ - 1);
        return false;
    }
    if (name == "." || name == "..") {
        error = fmt::format("'{}' is not an interface name", name);
        return false;
    }
    for (char c : name) {
        if (c == '/' || c == ':' || c == '\0' || std::isspace(static_cast<unsigned char>(c)) != 0) {
            error = fmt::format("'{}' is not an interface name: no '/', ':' or white space allowed", name);
            return false;
        }
    }
    return true;
}

McastTransport::McastTransport(const ctsync::sdk::PluginContext& context, TransportOptions options)
    : context_(context),
      options_(std::move(options)),
      log_(*context.logger),
      send_socket_(context.executor),
      receive_socket_(context.executor),
      receive_buffer_(std::max<std::size_t>(options_.receive_limit_bytes, 1)),
      route_buffer_(kRouteReadBytes),
      datagrams_sent_(context.metrics->counter("datagrams_sent", "datagrams sent to the group")),
      bytes_sent_(context.metrics->counter("bytes_sent", "UDP payload bytes sent to the group")),
      datagrams_received_(context.metrics->counter("datagrams_received", "datagrams passed to the core")),
      bytes_received_(context.metrics->counter("bytes_received", "UDP payload bytes passed to the core")),
      tx_dropped_(context.metrics->counter(
          "tx_dropped", "datagrams refused by send(): queue full, larger than the maximum, not started")),
      tx_oversize_(context.metrics->counter("tx_oversize", "of tx_dropped: larger than max_datagram_size()")),
      tx_queued_(context.metrics->counter("tx_queued",
                                          "datagrams that waited in the send queue (socket buffer full)")),
      tx_errors_(
          context.metrics->counter("tx_errors", "datagrams the kernel refused to send (sendto errors)")),
      rx_foreign_(context.metrics->counter(
          "rx_foreign", "datagrams dropped: arrived on another interface or for another destination")),
      rx_own_(
          context.metrics->counter("rx_own", "datagrams dropped: sent from this interface's own address")),
      rx_truncated_(
          context.metrics->counter("rx_truncated", "datagrams dropped: larger than the read buffer")),
      rx_errors_(context.metrics->counter("rx_errors", "failed reads of the receive socket")),
      link_changes_(context.metrics->counter("link_changes", "link state changes reported to the core")),
      link_monitor_overruns_(context.metrics->counter(
          "link_monitor_overruns", "rtnetlink notifications lost (ENOBUFS); the link state was re-read")),
      send_buffer_gauge_(
          context.metrics->gauge("send_buffer_bytes", "send socket buffer as the kernel granted it")),
      receive_buffer_gauge_(
          context.metrics->gauge("receive_buffer_bytes", "receive socket buffer as the kernel granted it")),
      queue_gauge_(context.metrics->gauge("send_queue_datagrams", "datagrams waiting in the send queue")),
      max_datagram_gauge_(context.metrics->gauge("max_datagram_bytes", "largest datagram send() accepts")),
      link_up_gauge_(context.metrics->gauge("link_up", "1 while the interface is up with carrier, else 0")),
      queue_(
          send_socket_, options_.send_queue_datagrams, [this](auto datagram) { return send_now(datagram); },
          tx_queued_, queue_gauge_) {}

McastTransport::~McastTransport() {
    stop();
}

void McastTransport::stop() noexcept {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    queue_.stop();
    close_sockets();
}

void McastTransport::close_sockets() noexcept {
    boost::system::error_code ignored;
    send_socket_.close(ignored);
    receive_socket_.close(ignored);
    if (route_wait_) {
        // The descriptor wraps a socket libmnl owns: release, never close, it.
        route_wait_->cancel(ignored);
        route_wait_->release();
        route_wait_.reset();
    }
    route_.reset();
}

std::size_t McastTransport::header_bytes() const {
    return family_ == AF_INET6 ? kIpv6HeaderBytes : kIpv4HeaderBytes;
}

bool McastTransport::set_option(int fd, int level, int name, const void* value, std::size_t length,
                                const char* option, const char* socket_role, std::string& error) {
    if (::setsockopt(fd, level, name, value, static_cast<socklen_t>(length)) == 0) {
        return true;
    }
    error = fmt::format("setsockopt({}) on the {} socket for interface {}: {}", option, socket_role,
                        interface_name_, std::strerror(errno));
    return false;
}

bool McastTransport::set_buffer(int fd, bool send_side, std::size_t bytes, std::size_t& granted,
                                std::string& error) {
    const char* role = send_side ? "send" : "receive";
    const int value = static_cast<int>(std::min<std::size_t>(bytes, INT_MAX / 2));
    const int forced = send_side ? SO_SNDBUFFORCE : SO_RCVBUFFORCE;
    const int capped = send_side ? SO_SNDBUF : SO_RCVBUF;
    const char* forced_name = send_side ? "SO_SNDBUFFORCE" : "SO_RCVBUFFORCE";
    const char* capped_name = send_side ? "SO_SNDBUF" : "SO_RCVBUF";
    if (::setsockopt(fd, SOL_SOCKET, forced, &value, sizeof(value)) != 0) {
        // Without CAP_NET_ADMIN the kernel refuses FORCE; the plain option is capped by net.core.*mem_max.
        if (errno != EPERM) {
            error = fmt::format("setsockopt({}, {}) on the {} socket for interface {}: {}", forced_name,
                                value, role, interface_name_, std::strerror(errno));
            return false;
        }
        if (!set_option(fd, SOL_SOCKET, capped, &value, sizeof(value), capped_name, role, error)) {
            return false;
        }
    }
    int actual = 0;
    socklen_t length = sizeof(actual);
    if (::getsockopt(fd, SOL_SOCKET, capped, &actual, &length) != 0) {
        error = fmt::format("getsockopt({}) on the {} socket for interface {}: {}", capped_name, role,
                            interface_name_, std::strerror(errno));
        return false;
    }
    granted = static_cast<std::size_t>(actual);
    // The kernel doubles what it is asked for (bookkeeping overhead); less than that means it was capped.
    if (granted < 2 * static_cast<std::size_t>(value)) {
        log_.warn(
            fmt::format("event=buffer_capped interface={} socket={} requested={} granted={} "
                        "hint=\"raise net.core.{}_max or give ctsyncd CAP_NET_ADMIN\"",
                        interface_name_, role, value, granted, send_side ? "wmem" : "rmem"));
    }
    return true;
}

bool McastTransport::start(ctsync::sdk::TransportSink& sink, std::string& error) noexcept {
    try {
        if (started_ || stopped_) {
            error = started_ ? "transport-mcast: already started" : "transport-mcast: start after stop";
            return false;
        }
        std::string why;
        if (!valid_interface_name(options_.interface, why)) {
            error = "interface: " + why;
            return false;
        }
        if (!parse_group(options_.group, group_, why)) {
            error = "group: " + why;
            return false;
        }
        family_ = group_.address.family;
        interface_name_ = options_.interface;
        auto fail = [&](std::string message) {
            error = std::move(message);
            close_sockets();
            return false;
        };

        // Subscribe before reading the state, so that no change in between is missed.
        route_ = RouteNetlink::open(family_, kRouteEventBufferBytes, why);
        if (!route_) {
            return fail(fmt::format("cannot watch interface {}: {}", interface_name_, why));
        }
        LinkInfo link;
        if (!route_->query_link_by_name(options_.interface, link, why)) {
            if (route_->last_error() == ENODEV) {
                return fail(fmt::format("interface '{}' does not exist in this network namespace",
                                        options_.interface));
            }
            return fail(fmt::format("cannot read interface '{}': {}", options_.interface, why));
        }
        ifindex_ = link.ifindex;
        interface_name_ = link.name.empty() ? options_.interface : link.name;
        mtu_ = link.mtu;
        const std::size_t carried = mtu_ > header_bytes() ? mtu_ - header_bytes() : 0;
        if (options_.max_datagram_bytes > 0) {
            if (options_.max_datagram_bytes > carried) {
                return fail(
                    fmt::format("max_datagram_bytes {} is more than interface {} carries: "
                                "MTU {} minus {} bytes of {} and UDP headers leaves {}",
                                options_.max_datagram_bytes, interface_name_, mtu_, header_bytes(),
                                family_name(family_), carried));
            }
            max_datagram_ = options_.max_datagram_bytes;
        } else {
            max_datagram_ = carried;
        }
        if (max_datagram_ == 0) {
            return fail(fmt::format("interface {} has MTU {}: too small for {} and UDP headers",
                                    interface_name_, mtu_, family_name(family_)));
        }
        if (!route_->query_addresses(ifindex_, family_, own_addresses_, why)) {
            return fail(fmt::format("cannot read the addresses of interface {}: {}", interface_name_, why));
        }

        std::memset(&destination_, 0, sizeof(destination_));
        if (family_ == AF_INET) {
            auto* to = reinterpret_cast<sockaddr_in*>(&destination_);
            to->sin_family = AF_INET;
            to->sin_port = htons(options_.port);
            std::memcpy(&to->sin_addr, group_.address.bytes.data(), 4);
            destination_length_ = sizeof(sockaddr_in);
        } else {
            auto* to = reinterpret_cast<sockaddr_in6*>(&destination_);
            to->sin6_family = AF_INET6;
            to->sin6_port = htons(options_.port);
            std::memcpy(&to->sin6_addr, group_.address.bytes.data(), 16);
            to->sin6_scope_id = group_.link_scope ? static_cast<std::uint32_t>(ifindex_) : 0;
            destination_length_ = sizeof(sockaddr_in6);
        }

        std::size_t granted_send = 0;
        std::size_t granted_receive = 0;
        if (!open_send_socket(error) || !set_buffer(send_socket_.native_handle(), true,
                                                    options_.send_buffer_bytes, granted_send, error)) {
            close_sockets();
            return false;
        }
        if (!open_receive_socket(error) ||
            !set_buffer(receive_socket_.native_handle(), false, options_.receive_buffer_bytes,
                        granted_receive, error)) {
            close_sockets();
            return false;
        }
        route_wait_ =
            std::make_unique<asio::posix::stream_descriptor>(context_.executor, route_->events_fd());

        sink_ = &sink;
        started_ = true;
        link_up_ = link_is_up(link);
        link_detail_ = link_up_ ? fmt::format("carrier up on {}", interface_name_) : down_reason(link, false);
        send_buffer_gauge_.set(static_cast<std::int64_t>(granted_send));
        receive_buffer_gauge_.set(static_cast<std::int64_t>(granted_receive));
        max_datagram_gauge_.set(static_cast<std::int64_t>(max_datagram_));
        link_up_gauge_.set(link_up_ ? 1 : 0);
        log_.info(fmt::format(
            "event=transport_started interface={} ifindex={} group={} port={} family={} mtu={} "
            "max_datagram_bytes={} send_buffer_bytes={} receive_buffer_bytes={} send_queue_datagrams={} "
            "own_addresses={} link={} detail=\"{}\"",
            interface_name_, ifindex_, group_.text, options_.port, family_name(family_), mtu_, max_datagram_,
            granted_send, granted_receive, options_.send_queue_datagrams, own_addresses_.size(),
            link_up_ ? "up" : "down", link_detail_));

        // The first report, and the first reads, run from the executor once start() has returned. Reading
        // before waiting also picks up what arrived before the descriptors were registered (edge-triggered).
        std::weak_ptr<int> alive = alive_;
        asio::post(context_.executor, [this, alive] {
            if (alive.expired() || stopped_) {
                return;
            }
            sink_->on_link_state(link_up_ ? LinkState::kUp : LinkState::kDown, link_detail_);
            if (alive.expired() || stopped_) {
                return;
            }
            read_route();
            if (alive.expired() || stopped_) {
                return;
            }
            read_datagrams();
        });
        return true;
    } catch (const std::exception& e) {
        error = fmt::format("transport-mcast on {}: {}", options_.interface, e.what());
        close_sockets();
        return false;
    }
}

bool McastTransport::open_send_socket(std::string& error) {
    Fd fd(::socket(family_, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP));
    if (fd.get() < 0) {
        error = fmt::format("cannot open the {} send socket for interface {}: {}", family_name(family_),
                            interface_name_, std::strerror(errno));
        return false;
    }
    const char* role = "send";
    const int one = 1;
    const int zero = 0;
    if (!set_option(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, interface_name_.c_str(), interface_name_.size(),
                    "SO_BINDTODEVICE", role, error)) {
        return false;
    }
    if (family_ == AF_INET) {
        ip_mreqn on{};
        on.imr_ifindex = ifindex_;
        if (!set_option(fd.get(), IPPROTO_IP, IP_MULTICAST_IF, &on, sizeof(on), "IP_MULTICAST_IF", role,
                        error) ||
            !set_option(fd.get(), IPPROTO_IP, IP_MULTICAST_TTL, &one, sizeof(one), "IP_MULTICAST_TTL", role,
                        error) ||
            !set_option(fd.get(), IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof(zero), "IP_MULTICAST_LOOP",
                        role, error)) {
            return false;
        }
    } else {
        const int index = ifindex_;
        if (!set_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one), "IPV6_V6ONLY", role, error) ||
            !set_option(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof(index), "IPV6_MULTICAST_IF",
                        role, error) ||
            !set_option(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &one, sizeof(one), "IPV6_MULTICAST_HOPS",
                        role, error) ||
            !set_option(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &zero, sizeof(zero),
                        "IPV6_MULTICAST_LOOP", role, error)) {
            return false;
        }
    }
    send_socket_.assign(fd.release());
    return true;
}

bool McastTransport::open_receive_socket(std::string& error) {
    Fd fd(::socket(family_, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP));
    if (fd.get() < 0) {
        error = fmt::format("cannot open the {} receive socket for interface {}: {}", family_name(family_),
                            interface_name_, std::strerror(errno));
        return false;
    }
    const char* role = "receive";
    const int one = 1;
    const int zero = 0;
    if (!set_option(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, interface_name_.c_str(), interface_name_.size(),
                    "SO_BINDTODEVICE", role, error)) {
        return false;
    }
    // Without this a socket receives a group's datagrams whenever any socket of the host joined the group,
    // whatever this one joined (IP(V6)_MULTICAST_ALL is on by default).
    if (family_ == AF_INET) {
        if (!set_option(fd.get(), IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero), "IP_MULTICAST_ALL", role,
                        error) ||
            !set_option(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof(one), "IP_PKTINFO", role, error)) {
            return false;
        }
        sockaddr_in at{};
        at.sin_family = AF_INET;
        at.sin_port = htons(options_.port);
        std::memcpy(&at.sin_addr, group_.address.bytes.data(), 4);
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at), sizeof(at)) != 0) {
            error = fmt::format(
                "cannot bind the receive socket to {} on interface {}: {} "
                "(another ctsyncd or conntrackd on this interface, group and port?)",
                endpoint(group_, options_.port), interface_name_, std::strerror(errno));
            return false;
        }
        ip_mreqn join{};
        std::memcpy(&join.imr_multiaddr, group_.address.bytes.data(), 4);
        join.imr_ifindex = ifindex_;
        if (!set_option(fd.get(), IPPROTO_IP, IP_ADD_MEMBERSHIP, &join, sizeof(join), "IP_ADD_MEMBERSHIP",
                        role, error)) {
            return false;
        }
    } else {
        if (!set_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one), "IPV6_V6ONLY", role, error) ||
            !set_option(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_ALL, &zero, sizeof(zero), "IPV6_MULTICAST_ALL",
                        role, error) ||
            !set_option(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one), "IPV6_RECVPKTINFO", role,
                        error)) {
            return false;
        }
        sockaddr_in6 at{};
        at.sin6_family = AF_INET6;
        at.sin6_port = htons(options_.port);
        std::memcpy(&at.sin6_addr, group_.address.bytes.data(), 16);
        at.sin6_scope_id = group_.link_scope ? static_cast<std::uint32_t>(ifindex_) : 0;
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at), sizeof(at)) != 0) {
            error = fmt::format(
                "cannot bind the receive socket to {} on interface {}: {} "
                "(another ctsyncd or conntrackd on this interface, group and port?)",
                endpoint(group_, options_.port), interface_name_, std::strerror(errno));
            return false;
        }
        ipv6_mreq join{};
        std::memcpy(&join.ipv6mr_multiaddr, group_.address.bytes.data(), 16);
        join.ipv6mr_interface = static_cast<unsigned>(ifindex_);
        if (!set_option(fd.get(), IPPROTO_IPV6, IPV6_JOIN_GROUP, &join, sizeof(join), "IPV6_JOIN_GROUP", role,
                        error)) {
            return false;
        }
    }
    receive_socket_.assign(fd.release());
    return true;
}

// --- sending ----------------------------------------------------------------------------------------------

bool McastTransport::send(std::span<const std::byte> datagram) noexcept {
    try {
        if (!started_ || stopped_) {
            tx_dropped_.add();
            return false;
        }
        if (datagram.size() > max_datagram_) {
            tx_dropped_.add();
            tx_oversize_.add();
            if (tx_drop_log_.allow()) {
                log_.warn(fmt::format(
                    "event=datagram_refused reason=oversize interface={} bytes={} max_datagram_bytes={} "
                    "suppressed={}",
                    interface_name_, datagram.size(), max_datagram_, tx_drop_log_.take_suppressed()));
            }
            return false;
        }
        // Order is kept: while datagrams wait, a new one waits behind them.
        switch (queue_.submit(datagram)) {
            case ctsync::sdk::DatagramSendQueue::Outcome::kSent:
            case ctsync::sdk::DatagramSendQueue::Outcome::kQueued:
                return true;
            case ctsync::sdk::DatagramSendQueue::Outcome::kFailed:
                return false;
            case ctsync::sdk::DatagramSendQueue::Outcome::kFull:
                break;
        }
        tx_dropped_.add();
        if (tx_drop_log_.allow()) {
            log_.warn(fmt::format(
                "event=datagram_refused reason=send_queue_full interface={} send_queue_datagrams={} "
                "suppressed={}",
                interface_name_, queue_.size(), tx_drop_log_.take_suppressed()));
        }
        return false;
    } catch (...) {
        // Only allocation can throw here: the datagram is lost, and said so.
        tx_dropped_.add();
        return false;
    }
}

McastTransport::SendResult McastTransport::send_now(std::span<const std::byte> datagram) noexcept {
    ssize_t n;
    do {
        n = ::sendto(send_socket_.native_handle(), datagram.data(), datagram.size(),
                     MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&destination_),
                     destination_length_);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        datagrams_sent_.add();
        bytes_sent_.add(static_cast<std::uint64_t>(n));
        return SendResult::kSent;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return SendResult::kWouldBlock;
    }
    const int code = errno;
    tx_errors_.add();
    if (tx_error_log_.allow()) {
        log_.warn(fmt::format("event=send_failed interface={} group={} bytes={} reason=\"{}\" suppressed={}",
                              interface_name_, endpoint(group_, options_.port), datagram.size(),
                              std::strerror(code), tx_error_log_.take_suppressed()));
    }
    return SendResult::kFailed;
}

// --- receiving --------------------------------------------------------------------------------------------

void McastTransport::wait_receive() {
    if (stopped_) {
        return;
    }
    std::weak_ptr<int> alive = alive_;
    receive_socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                               [this, alive](const boost::system::error_code& ec) {
                                   if (!alive.expired() && !ec && !stopped_) {
                                       read_datagrams();
                                   }
                               });
}

void McastTransport::read_datagrams() {
    std::weak_ptr<int> alive = alive_;
    const int fd = receive_socket_.native_handle();
    for (int i = 0; i < kReadsPerWakeup; ++i) {
        sockaddr_storage from{};
        iovec io{receive_buffer_.data(), receive_buffer_.size()};
        alignas(cmsghdr) char control[kControlBytes];
        msghdr message{};
        message.msg_name = &from;
        message.msg_namelen = sizeof(from);
        message.msg_iov = &io;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(fd, &message, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait_receive();
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            // Transient on a UDP socket (a pending error is cleared when reported): count and read on.
            rx_errors_.add();
            if (rx_error_log_.allow()) {
                log_.warn(fmt::format("event=receive_failed interface={} reason=\"{}\" suppressed={}",
                                      interface_name_, std::strerror(errno),
                                      rx_error_log_.take_suppressed()));
            }
            continue;
        }
        Arrival arrival;
        arrival.truncated = (message.msg_flags & MSG_TRUNC) != 0;
        if (from.ss_family == AF_INET) {
            const auto* source = reinterpret_cast<const sockaddr_in*>(&from);
            arrival.source.family = AF_INET;
            std::memcpy(arrival.source.bytes.data(), &source->sin_addr, 4);
        } else if (from.ss_family == AF_INET6) {
            const auto* source = reinterpret_cast<const sockaddr_in6*>(&from);
            arrival.source.family = AF_INET6;
            std::memcpy(arrival.source.bytes.data(), &source->sin6_addr, 16);
        }
        // A cut-off control message leaves the arrival unverified: refused as foreign.
        if ((message.msg_flags & MSG_CTRUNC) == 0) {
            for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
                if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
                    c->cmsg_len >= CMSG_LEN(sizeof(in_pktinfo))) {
                    in_pktinfo info;
                    std::memcpy(&info, CMSG_DATA(c), sizeof(info));
                    arrival.has_pktinfo = true;
                    arrival.ifindex = info.ipi_ifindex;
                    arrival.destination.family = AF_INET;
                    std::memcpy(arrival.destination.bytes.data(), &info.ipi_addr, 4);
                } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
                           c->cmsg_len >= CMSG_LEN(sizeof(in6_pktinfo))) {
                    in6_pktinfo info;
                    std::memcpy(&info, CMSG_DATA(c), sizeof(info));
                    arrival.has_pktinfo = true;
                    arrival.ifindex = static_cast<int>(info.ipi6_ifindex);
                    arrival.destination.family = AF_INET6;
                    std::memcpy(arrival.destination.bytes.data(), &info.ipi6_addr, 16);
                }
            }
        }
        const std::size_t length = std::min(static_cast<std::size_t>(n), receive_buffer_.size());
        on_arrival(std::span<const std::byte>(receive_buffer_.data(), length), arrival);
        if (alive.expired() || stopped_) {
            return;  // the sink stopped (or destroyed) the transport
        }
    }
    // More may be queued: let other handlers run first.
    asio::post(context_.executor, [this, alive] {
        if (!alive.expired() && !stopped_) {
            read_datagrams();
        }
    });
}

void McastTransport::on_arrival(std::span<const std::byte> data, const Arrival& arrival) noexcept {
    if (sink_ == nullptr || stopped_) {
        return;
    }
    const char* refused = nullptr;
    if (arrival.truncated) {
        rx_truncated_.add();
        refused = "truncated";
    } else if (!arrival.has_pktinfo || arrival.ifindex != ifindex_ || arrival.destination != group_.address) {
        // The socket is bound to the interface and the group, so the kernel should never let this through;
        // checked anyway, since accepting sync packets from any interface is how conntrackd was fooled.
        rx_foreign_.add();
        refused = "foreign";
    } else if (std::find(own_addresses_.begin(), own_addresses_.end(), arrival.source) !=
               own_addresses_.end()) {
        // Our own datagram came back (a reflecting switch, a looping bridge) or someone uses our address.
        rx_own_.add();
        refused = "own_source";
    }
    if (refused != nullptr) {
        if (rx_refused_log_.allow()) {
            try {
                log_.warn(fmt::format(
                    "event=datagram_refused reason={} interface={} ifindex={} arrived_ifindex={} "
                    "destination={} source={} bytes={} suppressed={}",
                    refused, interface_name_, ifindex_, arrival.ifindex, arrival.destination.to_string(),
                    arrival.source.to_string(), data.size(), rx_refused_log_.take_suppressed()));
            } catch (...) {
            }
        }
        return;
    }
    datagrams_received_.add();
    bytes_received_.add(data.size());
    sink_->on_datagram(data);
}

// --- the link ---------------------------------------------------------------------------------------------

void McastTransport::wait_route() {
    if (stopped_ || !route_wait_) {
        return;
    }
    std::weak_ptr<int> alive = alive_;
    route_wait_->async_wait(asio::posix::stream_descriptor::wait_read,
                            [this, alive](const boost::system::error_code& ec) {
                                if (!alive.expired() && !ec && !stopped_) {
                                    read_route();
                                }
                            });
}

void McastTransport::read_route() {
    std::weak_ptr<int> alive = alive_;
    for (int i = 0; i < kReadsPerWakeup; ++i) {
        if (!route_) {
            return;
        }
        ssize_t n =
            ::recv(route_->events_fd(), route_buffer_.data(), route_buffer_.size(), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait_route();
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno == ENOBUFS) {
                // Notifications were lost: whatever they said, the kernel's current state says it too.
                link_monitor_overruns_.add();
                log_.warn(
                    fmt::format("event=link_monitor_overrun interface={} action=reread", interface_name_));
                refresh_link();
                refresh_addresses();
                if (alive.expired() || stopped_) {
                    return;
                }
                continue;
            }
            log_.error(fmt::format("event=link_monitor_failed interface={} reason=\"{}\"", interface_name_,
                                   std::strerror(errno)));
            wait_route();
            return;
        }
        if (static_cast<std::size_t>(n) > route_buffer_.size()) {
            // A notification too large to read whole: re-read the state instead.
            refresh_link();
            refresh_addresses();
        } else {
            mnl_cb_run(route_buffer_.data(), static_cast<std::size_t>(n), 0, 0, route_trampoline, this);
        }
        if (alive.expired() || stopped_) {
            return;
        }
    }
    asio::post(context_.executor, [this, alive] {
        if (!alive.expired() && !stopped_) {
            read_route();
        }
    });
}

void McastTransport::on_route_message(const nlmsghdr* nlh) noexcept {
    if (stopped_ || link_removed_) {
        return;
    }
    try {
        switch (nlh->nlmsg_type) {
            case RTM_NEWLINK: {
                LinkInfo link;
                if (parse_link(nlh, link) && link.ifindex == ifindex_ && link.family == AF_UNSPEC) {
                    apply_link(link);
                }
                break;
            }
            case RTM_DELLINK: {
                LinkInfo link;
                // A bridge reports a port leaving it as an AF_BRIDGE DELLINK; only AF_UNSPEC is the device.
                if (parse_link(nlh, link) && link.ifindex == ifindex_ && link.family == AF_UNSPEC) {
                    link_removed_ = true;
                    log_.error(
                        fmt::format("event=interface_removed interface={} ifindex={} "
                                    "consequence=\"no sync traffic on this link\" "
                                    "action=\"restart ctsyncd once the interface exists again\"",
                                    interface_name_, ifindex_));
                    report_link(false, fmt::format("{} was removed", interface_name_));
                }
                break;
            }
            case RTM_NEWADDR:
            case RTM_DELADDR: {
                int index = 0;
                IpAddress address;
                if (parse_address(nlh, index, address) && index == ifindex_ && address.family == family_) {
                    refresh_addresses();
                }
                break;
            }
            default:
                break;
        }
    } catch (...) {
        // Formatting a log line is all that can throw here; the state is already updated.
    }
}

void McastTransport::refresh_link() {
    if (!route_ || link_removed_) {
        return;
    }
    LinkInfo link;
    std::string why;
    if (route_->query_link(ifindex_, link, why)) {
        apply_link(link);
        return;
    }
    if (route_->last_error() == ENODEV) {
        link_removed_ = true;
        log_.error(fmt::format("event=interface_removed interface={} ifindex={}", interface_name_, ifindex_));
        report_link(false, fmt::format("{} was removed", interface_name_));
        return;
    }
    log_.warn(fmt::format("event=link_read_failed interface={} reason=\"{}\"", interface_name_, why));
}

void McastTransport::refresh_addresses() {
    if (!route_) {
        return;
    }
    std::vector<IpAddress> addresses;
    std::string why;
    if (!route_->query_addresses(ifindex_, family_, addresses, why)) {
        log_.warn(fmt::format("event=address_read_failed interface={} reason=\"{}\" action=keep_previous",
                              interface_name_, why));
        return;
    }
    if (addresses != own_addresses_) {
        log_.debug(
            fmt::format("event=own_addresses interface={} count={}", interface_name_, addresses.size()));
        own_addresses_ = std::move(addresses);
    }
}

void McastTransport::apply_link(const LinkInfo& link) {
    if (!link.name.empty() && link.name != interface_name_) {
        // The binding is by index, so traffic is unaffected; the logs follow the new name.
        log_.info(fmt::format("event=interface_renamed ifindex={} from={} to={}", ifindex_, interface_name_,
                              link.name));
        interface_name_ = link.name;
    }
    if (link.mtu != 0 && link.mtu != mtu_) {
        update_max_datagram(link.mtu);
    }
    const bool up = link_is_up(link);
    if (up != link_up_) {
        report_link(up,
                    up ? fmt::format("carrier restored on {}", interface_name_) : down_reason(link, true));
    }
}

void McastTransport::update_max_datagram(std::uint32_t mtu) {
    const std::uint32_t previous_mtu = mtu_;
    mtu_ = mtu;
    const std::size_t carried = mtu > header_bytes() ? mtu - header_bytes() : 0;
    std::size_t next = carried;
    if (options_.max_datagram_bytes > 0) {
        next = std::min(options_.max_datagram_bytes, carried);
        if (options_.max_datagram_bytes > carried) {
            log_.warn(fmt::format(
                "event=mtu_below_max_datagram interface={} mtu={} carried={} max_datagram_bytes={} "
                "action=\"send() accepts at most {} bytes until the MTU is raised again\"",
                interface_name_, mtu, carried, options_.max_datagram_bytes, next));
        }
    }
    log_.info(
        fmt::format("event=mtu_changed interface={} mtu={} previous_mtu={} max_datagram_bytes={} previous={}",
                    interface_name_, mtu, previous_mtu, next, max_datagram_));
    max_datagram_ = next;
    max_datagram_gauge_.set(static_cast<std::int64_t>(max_datagram_));
}

void McastTransport::report_link(bool up, const std::string& detail) {
    link_up_ = up;
    link_detail_ = detail;
    link_up_gauge_.set(up ? 1 : 0);
    link_changes_.add();
    const std::string line = fmt::format("event=link_state interface={} state={} detail=\"{}\"",
                                         interface_name_, up ? "up" : "down", detail);
    if (up) {
        log_.info(line);
    } else {
        log_.warn(line);
    }
    if (sink_ != nullptr) {
        sink_->on_link_state(up ? LinkState::kUp : LinkState::kDown, detail);
    }
}

}  // namespace mcast
