// SPDX-License-Identifier: GPL-2.0-or-later
#include "tipc_transport.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/sock_diag.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

namespace tipc {
namespace {

namespace asio = boost::asio;
using ctsync::sdk::LinkState;
using ctsync::sdk::PeerState;

constexpr int kReadsPerWakeup = 64;  // then other handlers run before we read on
// Room for TIPC_ERRINFO and TIPC_DESTNAME. A returned datagram's TIPC_RETDATA (up to 1 KiB of it) does not
// fit and is cut (MSG_CTRUNC): only the error and the length are used.
constexpr std::size_t kControlBytes = 256;
// Tags of our two subscriptions, echoed in every event (tipc_subscr.usr_handle).
constexpr char kPortsHandle[sizeof(tipc_subscr::usr_handle)] = {'c', 't', 's', 'y', 'n', 'c', '-', 'p'};
constexpr char kMarkerHandle[sizeof(tipc_subscr::usr_handle)] = {'c', 't', 's', 'y', 'n', 'c', '-', 'm'};
constexpr const char* kNetnsPath = "/proc/thread-self/ns/net";

// Closes a descriptor unless released: sockets under construction.
class Fd {
  public:
    explicit Fd(int fd = -1) : fd_(fd) {}
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

const char* errno_name(int code) {
    const char* name = ::strerrorname_np(code);
    return name != nullptr ? name : "unknown";
}

std::string socket_error(int code) {
    if (code == EAFNOSUPPORT) {
        return "this kernel has no TIPC (socket: EAFNOSUPPORT); load the tipc module";
    }
    return fmt::format("cannot open a TIPC socket: {} (socket: {})", std::strerror(code), errno_name(code));
}

const char* tipc_error_name(std::uint32_t code) {
    switch (code) {
        case TIPC_ERR_NO_NAME:
            return "no_name";
        case TIPC_ERR_NO_PORT:
            return "no_port";
        case TIPC_ERR_NO_NODE:
            return "no_node";
        case TIPC_ERR_OVERLOAD:
            return "overload";
        case TIPC_CONN_SHUTDOWN:
            return "shutdown";
        default:
            return "other";
    }
}

sockaddr_tipc service_address(std::uint32_t type, std::uint32_t instance, Scope scope) {
    sockaddr_tipc address{};
    address.family = AF_TIPC;
    address.addrtype = TIPC_SERVICE_ADDR;
    address.scope = scope == Scope::kNode ? TIPC_NODE_SCOPE : TIPC_CLUSTER_SCOPE;
    address.addr.name.name.type = type;
    address.addr.name.name.instance = instance;
    address.addr.name.domain = 0;  // look up anywhere (the topology server is this node's own)
    return address;
}

bool get_port(int fd, bool peer, PortId& out) {
    sockaddr_tipc address{};
    socklen_t length = sizeof(address);
    auto* raw = reinterpret_cast<sockaddr*>(&address);
    if ((peer ? ::getpeername(fd, raw, &length) : ::getsockname(fd, raw, &length)) != 0) {
        return false;
    }
    out = {address.addr.id.node, address.addr.id.ref};
    return true;
}

// Whether the topology socket is (still) connected; the reason when not.
bool topology_connected(int fd, std::string& why) {
    PortId server;
    if (get_port(fd, true, server)) {
        return true;
    }
    int code = 0;
    socklen_t length = sizeof(code);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 && code != 0) {
        why = std::strerror(code);
    } else {
        why = "not connected";
    }
    return false;
}

bool same_netns(int fd) {
    struct stat home {};
    struct stat here {};
    return ::fstat(fd, &home) == 0 && ::stat(kNetnsPath, &here) == 0 && home.st_dev == here.st_dev &&
           home.st_ino == here.st_ino;
}

std::string list_nodes(const std::vector<std::uint32_t>& nodes) {
    std::string out;
    for (auto node : nodes) {
        out += (out.empty() ? "" : ", ") + std::to_string(node);
    }
    return out;
}

}  // namespace

const char* to_string(Scope scope) {
    return scope == Scope::kNode ? "node" : "cluster";
}

const char* to_string(Importance importance) {
    switch (importance) {
        case Importance::kLow:
            return "low";
        case Importance::kMedium:
            return "medium";
        case Importance::kHigh:
            return "high";
        case Importance::kCritical:
            return "critical";
    }
    return "high";
}

bool parse_scope(const std::string& text, Scope& out) {
    if (text == "cluster") {
        out = Scope::kCluster;
    } else if (text == "node") {
        out = Scope::kNode;
    } else {
        return false;
    }
    return true;
}

bool parse_importance(const std::string& text, Importance& out) {
    for (auto candidate : {Importance::kLow, Importance::kMedium, Importance::kHigh, Importance::kCritical}) {
        if (text == to_string(candidate)) {
            out = candidate;
            return true;
        }
    }
    return false;
}

std::size_t max_receive_buffer(Importance importance) {
    // net/tipc/socket.c rcvbuf_limit(): sk_rcvbuf << importance, returned as a 32-bit unsigned int, where
    // sk_rcvbuf is twice the request (and the request is capped at INT_MAX / 2). Staying below 2^32:
    // 2 * request < 2^(32 - importance).
    const auto shift = static_cast<unsigned>(importance);
    const std::size_t limit = (std::size_t{1} << (31 - shift)) - 1;
    return std::min<std::size_t>(limit, INT_MAX / 2);
}

bool probe_kernel(std::string& error) {
    const int fd = ::socket(AF_TIPC, SOCK_RDM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        ::close(fd);
        return true;
    }
    error = socket_error(errno);
    return false;
}

TipcTransport::TipcTransport(const ctsync::sdk::PluginContext& context, TransportOptions options)
    : context_(context),
      options_(std::move(options)),
      log_(*context.logger),
      socket_(context.executor),
      topology_(context.executor),
      topology_deadline_(context.executor),
      reconnect_timer_(context.executor),
      backoff_(options_.topology_retry_min),
      table_(context.node_id),
      receive_buffer_(kMaxUserMessage + 1),
      datagrams_sent_(context.metrics->counter(
          "datagrams_sent",
          "datagrams multicast to the service (one per send, whatever the number of peers)")),
      bytes_sent_(context.metrics->counter("bytes_sent", "datagram bytes multicast to the service")),
      datagrams_received_(context.metrics->counter("datagrams_received", "datagrams passed to the core")),
      bytes_received_(context.metrics->counter("bytes_received", "datagram bytes passed to the core")),
      tx_dropped_(context.metrics->counter(
          "tx_dropped", "datagrams refused by send(): queue full, larger than the maximum, not started")),
      tx_oversize_(context.metrics->counter("tx_oversize", "of tx_dropped: larger than max_datagram_size()")),
      tx_queued_(context.metrics->counter("tx_queued",
                                          "datagrams that waited in the send queue (TIPC link congested)")),
      tx_errors_(
          context.metrics->counter("tx_errors", "datagrams the kernel refused to send (sendto errors)")),
      tx_returned_(context.metrics->counter(
          "tx_returned", "datagrams TIPC returned undelivered (a receive queue was full, a socket closed)")),
      rx_own_(context.metrics->counter(
          "rx_own", "datagrams dropped: this socket's own, delivered back by the multicast")),
      rx_foreign_(context.metrics->counter("rx_foreign",
                                           "datagrams dropped: from another TIPC node under scope node")),
      rx_truncated_(
          context.metrics->counter("rx_truncated", "datagrams dropped: larger than the read buffer")),
      rx_errors_(context.metrics->counter("rx_errors", "failed reads of the datagram socket")),
      rx_overflows_(context.metrics->counter(
          "rx_overflows", "datagrams the kernel refused at this socket: its receive queue was full")),
      peer_changes_(context.metrics->counter("peer_changes", "peer up and down reports to the core")),
      topology_reconnects_(context.metrics->counter(
          "topology_reconnects",
          "connections to the topology server after the first (each relists the peers)")),
      topology_ignored_(context.metrics->counter(
          "topology_ignored",
          "publications ignored: an instance range, this node's id on another socket, another TIPC node "
          "under scope node")),
      peers_up_gauge_(context.metrics->gauge("peers_up", "peer nodes publishing the service")),
      queue_gauge_(context.metrics->gauge("send_queue", "datagrams waiting in the send queue")),
      link_up_gauge_(context.metrics->gauge("link_up", "1 while at least one peer is up, else 0")),
      send_buffer_gauge_(
          context.metrics->gauge("send_buffer_bytes", "send socket buffer as the kernel granted it")),
      receive_buffer_gauge_(
          context.metrics->gauge("receive_buffer_bytes", "receive socket buffer as the kernel granted it")),
      queue_(
          socket_, options_.send_queue_datagrams, [this](auto datagram) { return send_now(datagram); },
          tx_queued_, queue_gauge_) {
    std::random_device device;
    random_.seed(device());
}

TipcTransport::~TipcTransport() {
    stop();
}

void TipcTransport::stop() noexcept {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    const bool was_started = started_;
    queue_.stop();
    close_all();
    if (was_started) {
        try {
            log_.info(fmt::format("event=transport_stopped service={} instance={} peers_up={}",
                                  options_.service_type, context_.node_id, table_.peers_up()));
        } catch (...) {
        }
    }
}

void TipcTransport::close_all() noexcept {
    boost::system::error_code ignored;
    socket_.close(ignored);
    topology_.close(ignored);
    topology_deadline_.cancel();
    reconnect_timer_.cancel();
    ++topology_generation_;
    topology_state_ = TopologyState::kClosed;
    if (home_netns_ >= 0) {
        ::close(home_netns_);
        home_netns_ = -1;
    }
}

int TipcTransport::topology_fd() noexcept {
    return topology_.is_open() ? topology_.native_handle() : -1;
}

bool TipcTransport::set_buffer(int fd, bool send_side, std::size_t bytes, std::size_t& granted,
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
            error = fmt::format("setsockopt({}, {}) on the TIPC socket: {}", forced_name, value,
                                std::strerror(errno));
            return false;
        }
        if (::setsockopt(fd, SOL_SOCKET, capped, &value, sizeof(value)) != 0) {
            error = fmt::format("setsockopt({}, {}) on the TIPC socket: {}", capped_name, value,
                                std::strerror(errno));
            return false;
        }
    }
    int actual = 0;
    socklen_t length = sizeof(actual);
    if (::getsockopt(fd, SOL_SOCKET, capped, &actual, &length) != 0) {
        error = fmt::format("getsockopt({}) on the TIPC socket: {}", capped_name, std::strerror(errno));
        return false;
    }
    granted = static_cast<std::size_t>(actual);
    // The kernel doubles what it is asked for (bookkeeping overhead); less than that means it was capped.
    if (granted < 2 * static_cast<std::size_t>(value)) {
        log_.warn(
            fmt::format("event=buffer_capped socket={} requested={} granted={} "
                        "hint=\"raise net.core.{}_max or give ctsyncd CAP_NET_ADMIN\"",
                        role, value, granted, send_side ? "wmem" : "rmem"));
    }
    return true;
}

bool TipcTransport::open_datagram_socket(std::string& error) {
    Fd fd(::socket(AF_TIPC, SOCK_RDM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        error = socket_error(errno);
        return false;
    }
    const auto importance = static_cast<std::uint32_t>(options_.importance);
    // Undeliverable datagrams (a peer's receive queue full, its socket gone) are to come back with an error
    // instead of vanishing (the default for SOCK_RDM): a loss the sender counts (Linux 6.1 returns a
    // refused multicast too, measured in delivery_vm_test.cpp); the receiver counts it as well.
    const std::uint32_t returnable = 0;
    if (::setsockopt(fd.get(), SOL_TIPC, TIPC_IMPORTANCE, &importance, sizeof(importance)) != 0) {
        error = fmt::format("setsockopt(TIPC_IMPORTANCE, {}) on the TIPC socket: {}",
                            to_string(options_.importance), std::strerror(errno));
        return false;
    }
    if (::setsockopt(fd.get(), SOL_TIPC, TIPC_DEST_DROPPABLE, &returnable, sizeof(returnable)) != 0) {
        error =
            fmt::format("setsockopt(TIPC_DEST_DROPPABLE, 0) on the TIPC socket: {}", std::strerror(errno));
        return false;
    }
    socket_.assign(fd.release());
    return true;
}

int TipcTransport::open_topology_socket(std::string& error) {
    // A socket belongs to the network namespace of the thread that creates it. A reconnect runs on the
    // executor, which is in the transport's namespace in ctsyncd; should it not be (one event loop driving
    // transports of several namespaces, as the tests do), enter that namespace for the socket() call only.
    if (home_netns_ < 0 || same_netns(home_netns_)) {
        const int fd = ::socket(AF_TIPC, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            error = socket_error(errno);
        }
        return fd;
    }
    Fd here(::open(kNetnsPath, O_RDONLY | O_CLOEXEC));
    if (here.get() < 0 || ::setns(home_netns_, CLONE_NEWNET) != 0) {
        error = fmt::format("cannot enter the transport's network namespace: {}", std::strerror(errno));
        return -1;
    }
    const int fd = ::socket(AF_TIPC, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int code = errno;
    if (::setns(here.get(), CLONE_NEWNET) != 0) {
        // The event loop's thread would go on in a foreign namespace: nothing sane remains.
        log_.log(ctsync::sdk::LogLevel::kCritical,
                 fmt::format("event=netns_return_failed reason=\"{}\"", std::strerror(errno)));
        std::abort();
    }
    if (fd < 0) {
        error = socket_error(code);
    }
    return fd;
}

bool TipcTransport::subscribe(int fd, std::string& error) {
    // Every port publishing any instance of the service, for as long as the connection lasts...
    tipc_subscr ports{};
    ports.seq = {options_.service_type, 0, ~0u};
    ports.timeout = static_cast<__u32>(TIPC_WAIT_FOREVER);
    ports.filter = TIPC_SUB_PORTS;
    std::memcpy(ports.usr_handle, kPortsHandle, sizeof(ports.usr_handle));
    // ...then our own instance. The server answers subscriptions in order and lists what exists at once,
    // and our socket is bound already: the marker's first event says that the listing above is complete.
    tipc_subscr marker{};
    marker.seq = {options_.service_type, context_.node_id, context_.node_id};
    marker.timeout = static_cast<__u32>(TIPC_WAIT_FOREVER);
    marker.filter = TIPC_SUB_SERVICE;
    std::memcpy(marker.usr_handle, kMarkerHandle, sizeof(marker.usr_handle));
    for (const auto* s : {&ports, &marker}) {
        ssize_t n;
        do {
            n = ::send(fd, s, sizeof(*s), MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n != static_cast<ssize_t>(sizeof(*s))) {
            error = fmt::format("cannot subscribe to service {} at the TIPC topology server: {}",
                                options_.service_type, n < 0 ? std::strerror(errno) : "short write");
            return false;
        }
    }
    return true;
}

bool TipcTransport::start(ctsync::sdk::TransportSink& sink, std::string& error) noexcept {
    try {
        if (started_ || stopped_) {
            error = stopped_ ? "transport-tipc: start after stop" : "transport-tipc: already started";
            return false;
        }
        // The key table refuses these already; the checks keep a direct caller honest.
        if (options_.service_type < kFirstUserServiceType) {
            error = fmt::format("service_type {} is reserved by TIPC (0 to {} are)", options_.service_type,
                                kFirstUserServiceType - 1);
            return false;
        }
        if (options_.max_datagram_bytes < kMinConfiguredDatagram ||
            options_.max_datagram_bytes > kMaxUserMessage) {
            error = fmt::format("max_datagram_bytes {} is outside [{}, {}]", options_.max_datagram_bytes,
                                kMinConfiguredDatagram, kMaxUserMessage);
            return false;
        }
        if (options_.receive_buffer_bytes > max_receive_buffer(options_.importance)) {
            error = fmt::format("receive_buffer_bytes {} is too large for importance {} (at most {})",
                                options_.receive_buffer_bytes, to_string(options_.importance),
                                max_receive_buffer(options_.importance));
            return false;
        }
        auto fail = [&](std::string message) {
            error = std::move(message);
            close_all();
            return false;
        };
        home_netns_ = ::open(kNetnsPath, O_RDONLY | O_CLOEXEC);  // -1 without /proc: reconnect where we are

        std::size_t granted_send = 0;
        std::size_t granted_receive = 0;
        if (!open_datagram_socket(error) ||
            !set_buffer(socket_.native_handle(), true, options_.send_buffer_bytes, granted_send, error) ||
            !set_buffer(socket_.native_handle(), false, options_.receive_buffer_bytes, granted_receive,
                        error)) {
            return fail(error);
        }
        const auto bound = service_address(options_.service_type, context_.node_id, options_.scope);
        if (::bind(socket_.native_handle(), reinterpret_cast<const sockaddr*>(&bound), sizeof(bound)) != 0) {
            return fail(fmt::format("cannot bind the TIPC service {{{}, {}}} (scope {}): {}",
                                    options_.service_type, context_.node_id, to_string(options_.scope),
                                    std::strerror(errno)));
        }
        if (!get_port(socket_.native_handle(), false, own_port_)) {
            return fail(fmt::format("getsockname on the TIPC socket: {}", std::strerror(errno)));
        }
        destination_ = {};
        destination_.family = AF_TIPC;
        destination_.addrtype = TIPC_SERVICE_RANGE;
        destination_.scope = TIPC_CLUSTER_SCOPE;
        destination_.addr.nameseq = {options_.service_type, 0, ~0u};

        // The topology server is in the kernel, on this node: it answers at once, so start() may wait for
        // it (bounded) and refuse when it cannot be reached.
        std::string why;
        Fd top(open_topology_socket(why));
        if (top.get() < 0) {
            return fail(why);
        }
        const auto server = service_address(TIPC_TOP_SRV, TIPC_TOP_SRV, Scope::kNode);
        if (::connect(top.get(), reinterpret_cast<const sockaddr*>(&server), sizeof(server)) != 0) {
            if (errno != EINPROGRESS) {
                return fail(fmt::format("cannot reach the TIPC topology server: {}", std::strerror(errno)));
            }
            pollfd p{top.get(), POLLOUT, 0};
            int ready;
            do {
                ready = ::poll(&p, 1, static_cast<int>(options_.topology_timeout.count()));
            } while (ready < 0 && errno == EINTR);
            if (ready == 0) {
                return fail(fmt::format("cannot reach the TIPC topology server: no answer within {} ms",
                                        options_.topology_timeout.count()));
            }
        }
        if (!topology_connected(top.get(), why)) {
            return fail(fmt::format("cannot reach the TIPC topology server: {}", why));
        }
        if (!subscribe(top.get(), why)) {
            return fail(why);
        }
        topology_.assign(top.release());
        table_.begin_rebuild();
        topology_state_ = TopologyState::kListing;
        ++topology_generation_;
        arm_topology_deadline("the listing of the service's publications");

        sink_ = &sink;
        started_ = true;
        send_buffer_gauge_.set(static_cast<std::int64_t>(granted_send));
        receive_buffer_gauge_.set(static_cast<std::int64_t>(granted_receive));
        log_.info(fmt::format(
            "event=transport_started service={} instance={} scope={} importance={} port={} "
            "max_datagram_bytes={} send_buffer_bytes={} receive_buffer_bytes={} send_queue_datagrams={}",
            options_.service_type, context_.node_id, to_string(options_.scope),
            to_string(options_.importance), format_port(own_port_), options_.max_datagram_bytes, granted_send,
            granted_receive, options_.send_queue_datagrams));

        // The first reads run from the executor once start() has returned; reading before waiting also
        // picks up what arrived before the descriptors were registered (edge-triggered).
        std::weak_ptr<int> alive = alive_;
        asio::post(context_.executor, [this, alive] {
            if (alive.expired() || stopped_) {
                return;
            }
            read_topology();
            if (alive.expired() || stopped_) {
                return;
            }
            read_datagrams();
        });
        return true;
    } catch (const std::exception& e) {
        error = fmt::format("transport-tipc: {}", e.what());
        close_all();
        return false;
    }
}

bool TipcTransport::on_own_node(std::uint32_t node) {
    if (node == own_port_.node) {
        return true;
    }
    // Our node's address may have changed since start() (TIPC assigns one when the first bearer comes up
    // without a configured identity): ask again.
    PortId now;
    if (socket_.is_open() && get_port(socket_.native_handle(), false, now)) {
        own_port_ = now;
    }
    return node == own_port_.node;
}

bool TipcTransport::is_own_port(PortId port) {
    return port.ref == own_port_.ref && on_own_node(port.node);
}

// --- sending ----------------------------------------------------------------------------------------------

bool TipcTransport::send(std::span<const std::byte> datagram) noexcept {
    try {
        if (!started_ || stopped_) {
            tx_dropped_.add();
            return false;
        }
        if (datagram.size() > options_.max_datagram_bytes) {
            tx_dropped_.add();
            tx_oversize_.add();
            if (tx_drop_log_.allow()) {
                log_.warn(fmt::format(
                    "event=datagram_refused reason=oversize service={} bytes={} max_datagram_bytes={} "
                    "suppressed={}",
                    options_.service_type, datagram.size(), options_.max_datagram_bytes,
                    tx_drop_log_.take_suppressed()));
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
                "event=datagram_refused reason=send_queue_full service={} send_queue_datagrams={} "
                "suppressed={}",
                options_.service_type, queue_.size(), tx_drop_log_.take_suppressed()));
        }
        return false;
    } catch (...) {
        // Only allocation can throw here: the datagram is lost, and said so.
        tx_dropped_.add();
        return false;
    }
}

TipcTransport::SendResult TipcTransport::send_now(std::span<const std::byte> datagram) noexcept {
    ssize_t n;
    do {
        n = ::sendto(socket_.native_handle(), datagram.data(), datagram.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                     reinterpret_cast<const sockaddr*>(&destination_), sizeof(destination_));
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        datagrams_sent_.add();
        bytes_sent_.add(static_cast<std::uint64_t>(n));
        return SendResult::kSent;
    }
    // TIPC accepts a datagram even when it fills a link's backlog, then refuses the next ones with EAGAIN
    // until the link has room again and wakes the socket (EPOLLOUT).
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return SendResult::kWouldBlock;
    }
    const int code = errno;
    tx_errors_.add();
    if (tx_error_log_.allow()) {
        try {
            log_.warn(fmt::format("event=send_failed service={} bytes={} reason=\"{}\" suppressed={}",
                                  options_.service_type, datagram.size(), std::strerror(code),
                                  tx_error_log_.take_suppressed()));
        } catch (...) {
        }
    }
    return SendResult::kFailed;
}

// --- receiving --------------------------------------------------------------------------------------------

void TipcTransport::wait_receive() {
    if (stopped_) {
        return;
    }
    std::weak_ptr<int> alive = alive_;
    socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                       [this, alive](const boost::system::error_code& ec) {
                           if (!alive.expired() && !ec && !stopped_) {
                               read_datagrams();
                           }
                       });
}

void TipcTransport::read_datagrams() {
    std::weak_ptr<int> alive = alive_;
    const int fd = socket_.native_handle();
    for (int i = 0; i < kReadsPerWakeup; ++i) {
        sockaddr_tipc from[2]{};  // the sender's port (a group member's name would follow: not used)
        iovec io{receive_buffer_.data(), receive_buffer_.size()};
        alignas(cmsghdr) char control[kControlBytes];
        msghdr message{};
        message.msg_name = from;
        message.msg_namelen = sizeof(from);
        message.msg_iov = &io;
        message.msg_iovlen = 1;
        message.msg_control = control;
        message.msg_controllen = sizeof(control);
        const ssize_t n = ::recvmsg(fd, &message, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                count_overflows();
                wait_receive();
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            // Transient on a datagram socket (no connection to lose): count and read on.
            rx_errors_.add();
            if (rx_error_log_.allow()) {
                log_.warn(fmt::format("event=receive_failed service={} reason=\"{}\" suppressed={}",
                                      options_.service_type, std::strerror(errno),
                                      rx_error_log_.take_suppressed()));
            }
            continue;
        }
        const PortId source{from[0].addr.id.node, from[0].addr.id.ref};
        bool returned = false;
        for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
            if (c->cmsg_level == SOL_TIPC && c->cmsg_type == TIPC_ERRINFO && c->cmsg_len >= CMSG_LEN(8)) {
                std::uint32_t info[2];
                std::memcpy(info, CMSG_DATA(c), sizeof(info));
                on_returned(info[0], info[1], source);
                returned = true;
                break;
            }
        }
        if (!returned && n > 0) {
            const char* refused = nullptr;
            if ((message.msg_flags & MSG_TRUNC) != 0) {
                rx_truncated_.add();
                refused = "truncated";
            } else if (is_own_port(source)) {
                rx_own_.add();  // the multicast reaches every socket in the range, ours too: expected
            } else if (options_.scope == Scope::kNode && !on_own_node(source.node)) {
                rx_foreign_.add();
                refused = "foreign_node";
            } else {
                datagrams_received_.add();
                bytes_received_.add(static_cast<std::uint64_t>(n));
                sink_->on_datagram(
                    std::span<const std::byte>(receive_buffer_.data(), static_cast<std::size_t>(n)));
                if (alive.expired() || stopped_) {
                    return;  // the sink stopped (or destroyed) the transport
                }
            }
            if (refused != nullptr && rx_refused_log_.allow()) {
                log_.warn(fmt::format(
                    "event=datagram_refused reason={} service={} source={} bytes={} suppressed={}", refused,
                    options_.service_type, format_port(source), n, rx_refused_log_.take_suppressed()));
            }
        }
    }
    // More may be queued: let other handlers run first.
    asio::post(context_.executor, [this, alive] {
        if (!alive.expired() && !stopped_) {
            read_datagrams();
        }
    });
}

void TipcTransport::count_overflows() {
    // TIPC refuses a datagram that would take a socket's receive queue over its limit (TIPC_ERR_OVERLOAD).
    // It returns it to its sender (tx_returned there); the socket's drop count (SO_MEMINFO) is where the
    // same loss shows on the receiving side, where the buffer is to be raised.
    std::uint32_t info[SK_MEMINFO_VARS] = {};
    socklen_t length = sizeof(info);
    if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_MEMINFO, info, &length) != 0 ||
        length < (SK_MEMINFO_DROPS + 1) * sizeof(std::uint32_t)) {
        return;
    }
    const std::uint32_t drops = info[SK_MEMINFO_DROPS];
    const std::uint32_t fresh = drops - kernel_drops_;  // modulo 2^32, like the kernel's counter
    kernel_drops_ = drops;
    if (fresh == 0) {
        return;
    }
    rx_overflows_.add(fresh);
    if (rx_overflow_log_.allow()) {
        try {
            log_.warn(fmt::format(
                "event=receive_queue_overflow service={} dropped={} total={} receive_buffer_bytes={} "
                "suppressed={} hint=\"the kernel refused datagrams for this node: raise "
                "receive_buffer_bytes\"",
                options_.service_type, fresh, rx_overflows_.value(), options_.receive_buffer_bytes,
                rx_overflow_log_.take_suppressed()));
        } catch (...) {
        }
    }
}

void TipcTransport::on_returned(std::uint32_t error_code, std::uint32_t bytes, PortId by) {
    tx_returned_.add();
    if (tx_returned_log_.allow()) {
        log_.warn(fmt::format(
            "event=datagram_returned service={} error={} returned_bytes={} by={} suppressed={} "
            "hint=\"{}\"",
            options_.service_type, tipc_error_name(error_code), bytes, format_port(by),
            tx_returned_log_.take_suppressed(),
            error_code == TIPC_ERR_OVERLOAD ? "a peer reads too slowly: raise receive_buffer_bytes there"
                                            : "the receiving socket went away"));
    }
}

// --- the topology service ---------------------------------------------------------------------------------

void TipcTransport::wait_topology() {
    if (stopped_ || !topology_.is_open()) {
        return;
    }
    std::weak_ptr<int> alive = alive_;
    const auto generation = topology_generation_;
    topology_.async_wait(asio::posix::stream_descriptor::wait_read,
                         [this, alive, generation](const boost::system::error_code& ec) {
                             if (!alive.expired() && !ec && !stopped_ && generation == topology_generation_) {
                                 read_topology();
                             }
                         });
}

void TipcTransport::read_topology() {
    std::weak_ptr<int> alive = alive_;
    const auto generation = topology_generation_;
    for (int i = 0; i < kReadsPerWakeup; ++i) {
        if (!topology_.is_open()) {
            return;
        }
        tipc_event event{};
        const ssize_t n = ::recv(topology_.native_handle(), &event, sizeof(event), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                // A connection shut down on our side reads as "nothing yet" rather than as an end: ask.
                std::string why;
                if (!topology_connected(topology_.native_handle(), why)) {
                    topology_failed(why);
                    return;
                }
                wait_topology();
                return;
            }
            topology_failed(std::strerror(errno));
            return;
        }
        if (n == 0) {
            topology_failed("the topology server closed the connection");
            return;
        }
        if (n != static_cast<ssize_t>(sizeof(event))) {
            topology_failed(fmt::format("an event of {} bytes, expected {}", n, sizeof(event)));
            return;
        }
        on_topology_event(event);
        if (alive.expired() || stopped_ || generation != topology_generation_) {
            return;
        }
    }
    asio::post(context_.executor, [this, alive, generation] {
        if (!alive.expired() && !stopped_ && generation == topology_generation_) {
            read_topology();
        }
    });
}

void TipcTransport::on_topology_event(const tipc_event& event) {
    if (std::memcmp(event.s.usr_handle, kMarkerHandle, sizeof(kMarkerHandle)) == 0) {
        if (topology_state_ == TopologyState::kListing && event.event == TIPC_PUBLISHED) {
            on_listing_complete();
        }
        return;  // later events of the marker (our own instance) say nothing about peers
    }
    if (std::memcmp(event.s.usr_handle, kPortsHandle, sizeof(kPortsHandle)) != 0 ||
        (event.event != TIPC_PUBLISHED && event.event != TIPC_WITHDRAWN)) {
        return;  // not ours, or a subscription timeout (ours never time out)
    }
    const bool published = event.event == TIPC_PUBLISHED;
    const PortId port{event.port.node, event.port.ref};
    const std::uint32_t node = event.found_lower;
    const char* ignored = nullptr;
    if (event.found_lower != event.found_upper) {
        ignored = "instance_range";  // ctsync binds one instance, its node id: not a ctsync node
    } else if (options_.scope == Scope::kNode && !on_own_node(port.node)) {
        ignored = "other_tipc_node";
    } else if (node == context_.node_id) {
        if (is_own_port(port)) {
            return;  // our own publication
        }
        ignored = "own_node_id";
    }
    if (ignored != nullptr) {
        if (!published) {
            return;  // its withdrawal: counted and logged when it was published
        }
        topology_ignored_.add();
        if (topology_ignored_log_.allow()) {
            const bool conflict = std::strcmp(ignored, "own_node_id") == 0;
            const std::string line = fmt::format(
                "event={} reason={} service={} lower={} upper={} port={} suppressed={}{}",
                conflict ? "node_id_conflict" : "publication_ignored", ignored, options_.service_type,
                event.found_lower, event.found_upper, format_port(port),
                topology_ignored_log_.take_suppressed(),
                conflict ? " hint=\"another socket publishes this node's id: a second ctsyncd with the same "
                           "node.id?\""
                         : "");
            if (conflict) {
                log_.error(line);
            } else {
                log_.warn(line);
            }
        }
        return;
    }
    if (published) {
        auto transition = table_.publish(node, port);
        if (table_.tipc_nodes(node) > 1 && topology_ignored_log_.allow()) {
            log_.error(fmt::format(
                "event=node_id_conflict reason=two_tipc_nodes service={} node={} port={} suppressed={} "
                "hint=\"two machines use node.id {}\"",
                options_.service_type, node, format_port(port), topology_ignored_log_.take_suppressed(),
                node));
        }
        if (transition) {
            report_peer(*transition, peer_detail(*transition, false));
        }
    } else if (auto transition = table_.withdraw(node, port)) {
        report_peer(*transition, peer_detail(*transition, false));
    }
}

void TipcTransport::on_listing_complete() {
    std::weak_ptr<int> alive = alive_;
    topology_deadline_.cancel();
    topology_state_ = TopologyState::kLive;
    const bool first = !link_reported_;
    if (!first) {
        topology_reconnects_.add();
        log_.info(fmt::format("event=topology_reconnected service={} failed_attempts={} peers_up={}",
                              options_.service_type, failed_attempts_, table_.peers_up()));
    }
    backoff_ = options_.topology_retry_min;
    failed_attempts_ = 0;
    for (const auto& transition : table_.finish_rebuild()) {
        report_peer(transition, peer_detail(transition, !first));
        if (alive.expired() || stopped_) {
            return;
        }
    }
    if (first) {
        link_reported_ = true;
        const auto nodes = table_.nodes_up();
        report_link(!nodes.empty(),
                    nodes.empty()
                        ? fmt::format("tipc: no peer publishes service {} yet", options_.service_type)
                        : fmt::format("tipc: {} peer(s) publish service {}: node(s) {}", nodes.size(),
                                      options_.service_type, list_nodes(nodes)));
    }
}

std::string TipcTransport::peer_detail(const PeerTransition& t, bool relisted) const {
    if (relisted) {
        return t.up ? fmt::format(
                          "tipc: node {} publishes service {} (port {}), found when the topology server "
                          "listed the service again",
                          t.node, options_.service_type, format_port(t.port))
                    : fmt::format(
                          "tipc: node {} no longer publishes service {}, found when the topology server "
                          "listed the service again",
                          t.node, options_.service_type);
    }
    return t.up ? fmt::format("tipc: node {} published service {} (port {})", t.node, options_.service_type,
                              format_port(t.port))
                : fmt::format(
                      "tipc: node {} withdrew service {} (port {}): its socket closed or TIPC lost the link "
                      "to its node",
                      t.node, options_.service_type, format_port(t.port));
}

void TipcTransport::report_peer(const PeerTransition& t, const std::string& detail) {
    std::weak_ptr<int> alive = alive_;
    peer_changes_.add();
    peers_up_gauge_.set(static_cast<std::int64_t>(table_.peers_up()));
    const std::string line = fmt::format("event={} node={} service={} port={} peers_up={} detail=\"{}\"",
                                         t.up ? "peer_up" : "peer_down", t.node, options_.service_type,
                                         format_port(t.port), table_.peers_up(), detail);
    if (t.up) {
        log_.info(line);
    } else {
        log_.warn(line);
    }
    sink_->on_peer_state(t.node, t.up ? PeerState::kUp : PeerState::kDown, detail);
    if (alive.expired() || stopped_ || !link_reported_) {
        return;  // the first listing reports the link once it is complete
    }
    const bool up = table_.peers_up() > 0;
    if (up != link_up_) {
        std::string_view why = detail;
        if (why.starts_with("tipc: ")) {
            why.remove_prefix(6);
        }
        report_link(up, up ? detail : fmt::format("tipc: no peer left ({})", why));
    }
}

void TipcTransport::report_link(bool up, const std::string& detail) {
    link_up_ = up;
    link_up_gauge_.set(up ? 1 : 0);
    const std::string line =
        fmt::format("event=link_state service={} state={} peers_up={} detail=\"{}\"", options_.service_type,
                    up ? "up" : "down", table_.peers_up(), detail);
    if (up) {
        log_.info(line);
    } else {
        log_.warn(line);
    }
    sink_->on_link_state(up ? LinkState::kUp : LinkState::kDown, detail);
}

void TipcTransport::arm_topology_deadline(const char* waiting_for) {
    std::weak_ptr<int> alive = alive_;
    const auto generation = topology_generation_;
    topology_deadline_.expires_after(options_.topology_timeout);
    topology_deadline_.async_wait(
        [this, alive, generation, waiting_for](const boost::system::error_code& ec) {
            if (alive.expired() || ec || stopped_ || generation != topology_generation_) {
                return;
            }
            const std::string reason =
                fmt::format("no answer within {} ms to {}", options_.topology_timeout.count(), waiting_for);
            if (topology_state_ == TopologyState::kConnecting) {
                topology_attempt_failed(reason);
            } else {
                topology_failed(reason);
            }
        });
}

void TipcTransport::topology_failed(const std::string& reason) {
    if (stopped_) {
        return;
    }
    boost::system::error_code ignored;
    topology_.close(ignored);
    topology_deadline_.cancel();
    ++topology_generation_;
    const bool was_listing = topology_state_ == TopologyState::kListing;
    topology_state_ = TopologyState::kClosed;
    // TIPC's own link supervision goes on without our subscription, and the datagram socket is unaffected:
    // keep the peers as last reported rather than report every one down for a fault of the local
    // connection; the new listing corrects whatever changed meanwhile.
    try {
        log_.error(
            fmt::format("event=topology_lost service={} reason=\"{}\" during={} peers_up={} "
                        "action=\"keeping the last known peers, reconnecting\"",
                        options_.service_type, reason, was_listing ? "listing" : "live", table_.peers_up()));
    } catch (...) {
    }
    schedule_reconnect();
}

void TipcTransport::schedule_reconnect() {
    const auto ceiling = backoff_;
    const auto low = std::max(options_.topology_retry_min, ceiling / 2);
    std::uniform_int_distribution<std::int64_t> pick(std::min(low, ceiling).count(), ceiling.count());
    const std::chrono::milliseconds wait(pick(random_));
    backoff_ = std::min(backoff_ * 2, options_.topology_retry_max);
    std::weak_ptr<int> alive = alive_;
    reconnect_timer_.expires_after(wait);
    reconnect_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
        if (!alive.expired() && !ec && !stopped_) {
            connect_topology();
        }
    });
}

void TipcTransport::connect_topology() {
    std::string why;
    Fd fd(open_topology_socket(why));
    if (fd.get() < 0) {
        topology_attempt_failed(why);
        return;
    }
    const auto server = service_address(TIPC_TOP_SRV, TIPC_TOP_SRV, Scope::kNode);
    const bool now = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&server), sizeof(server)) == 0;
    if (!now && errno != EINPROGRESS) {
        topology_attempt_failed(std::strerror(errno));
        return;
    }
    boost::system::error_code ec;
    topology_.assign(fd.release(), ec);
    if (ec) {
        topology_attempt_failed(ec.message());
        return;
    }
    ++topology_generation_;
    topology_state_ = TopologyState::kConnecting;
    const auto generation = topology_generation_;
    if (now) {
        on_topology_writable();
        return;
    }
    arm_topology_deadline("the connection request");
    std::weak_ptr<int> alive = alive_;
    // TIPC reports a connecting socket writable once established, and hung up when refused.
    topology_.async_wait(asio::posix::stream_descriptor::wait_write,
                         [this, alive, generation](const boost::system::error_code& e) {
                             if (!alive.expired() && !e && !stopped_ && generation == topology_generation_) {
                                 on_topology_writable();
                             }
                         });
}

void TipcTransport::on_topology_writable() {
    std::string why;
    if (!topology_connected(topology_.native_handle(), why) || !subscribe(topology_.native_handle(), why)) {
        topology_attempt_failed(why);
        return;
    }
    topology_deadline_.cancel();
    ++topology_generation_;  // the listing's own: a late completion of the connect deadline does nothing
    table_.begin_rebuild();
    topology_state_ = TopologyState::kListing;
    arm_topology_deadline("the listing of the service's publications");
    read_topology();
}

void TipcTransport::topology_attempt_failed(const std::string& reason) {
    boost::system::error_code ignored;
    topology_.close(ignored);
    topology_deadline_.cancel();
    ++topology_generation_;
    topology_state_ = TopologyState::kClosed;
    ++failed_attempts_;
    const bool loud = (failed_attempts_ & (failed_attempts_ - 1)) == 0;  // 1st, 2nd, 4th, 8th...
    try {
        const std::string line = fmt::format(
            "event=topology_connect_failed service={} reason=\"{}\" failed_attempts={} retry_ms_max={}",
            options_.service_type, reason, failed_attempts_, backoff_.count());
        if (loud) {
            log_.warn(line);
        } else {
            log_.debug(line);
        }
    } catch (...) {
    }
    schedule_reconnect();
}

}  // namespace tipc
