// SPDX-License-Identifier: GPL-2.0-or-later
#include "tcp_transport.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <deque>
#include <new>
#include <random>

namespace transport_tcp {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using ctsync::sdk::LinkState;
using Frame = std::shared_ptr<const std::vector<std::byte>>;

namespace {

// One write hands the kernel up to this much, so that a long queue does not hold one huge gather list.
constexpr std::size_t kMaxFramesPerWrite = 64;
constexpr std::size_t kMaxBytesPerWrite = 1u << 20;
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);
// Lines that anyone able to reach the port can trigger are limited to one per interval.
constexpr auto kNoisyLogInterval = std::chrono::seconds(1);

std::string describe(const boost::system::error_code& ec) {
    std::string message = ec.message();
    if (!message.empty()) {
        message[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(message[0])));
    }
    return message;
}

// A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; peers are matched on the plain IPv4 form.
asio::ip::address normalize(const asio::ip::address& address) {
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    }
    return address;
}

bool set_int_option(tcp::socket& socket, int level, int name, int value, const char* what,
                    std::string& error) {
    if (::setsockopt(socket.native_handle(), level, name, &value, sizeof(value)) != 0) {
        error = fmt::format("setsockopt {}: {}", what, std::strerror(errno));
        return false;
    }
    return true;
}

// Both directions get keepalive and the user timeout: the receiving side never writes, so keepalive is the
// only way it notices a peer that vanished without a FIN (power loss, cable, firewall state dropped).
bool tune(tcp::socket& socket, const TcpOptions& options, std::string& error) {
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    if (ec) {
        error = "setsockopt TCP_NODELAY: " + ec.message();
        return false;
    }
    socket.set_option(asio::socket_base::keep_alive(true), ec);
    if (ec) {
        error = "setsockopt SO_KEEPALIVE: " + ec.message();
        return false;
    }
    return set_int_option(socket, IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(options.keepalive_idle.count()),
                          "TCP_KEEPIDLE", error) &&
           set_int_option(socket, IPPROTO_TCP, TCP_KEEPINTVL,
                          static_cast<int>(options.keepalive_interval.count()), "TCP_KEEPINTVL", error) &&
           set_int_option(socket, IPPROTO_TCP, TCP_KEEPCNT, options.keepalive_count, "TCP_KEEPCNT", error) &&
           set_int_option(socket, IPPROTO_TCP, TCP_USER_TIMEOUT,
                          static_cast<int>(options.user_timeout.count()), "TCP_USER_TIMEOUT", error);
}

// At most one line per interval; the next line reports how many were held back.
class LogLimiter {
  public:
    bool allow(std::uint64_t& suppressed) {
        auto now = Clock::now();
        if (logged_ && now - last_ < kNoisyLogInterval) {
            ++suppressed_;
            return false;
        }
        logged_ = true;
        last_ = now;
        suppressed = suppressed_;
        suppressed_ = 0;
        return true;
    }

  private:
    bool logged_ = false;
    Clock::time_point last_{};
    std::uint64_t suppressed_ = 0;
};

}  // namespace

std::optional<Endpoint> parse_endpoint(std::string_view text, std::string& error) {
    const std::string shown(text);
    if (text.empty()) {
        error = "is empty: expected address:port, such as 192.0.2.1:3782 or [fd00::1]:3782";
        return std::nullopt;
    }
    std::string host;
    std::string_view port;
    if (text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) {
            error = fmt::format("'{}' opens '[' without ']': expected [address]:port, such as [fd00::1]:3782",
                                shown);
            return std::nullopt;
        }
        if (close + 1 >= text.size() || text[close + 1] != ':') {
            error = fmt::format(
                "'{}' has no ':port' after ']': expected [address]:port, such as [fd00::1]:3782", shown);
            return std::nullopt;
        }
        host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            error = fmt::format("'{}' has no port: expected address:port, such as 192.0.2.1:3782", shown);
            return std::nullopt;
        }
        host = std::string(text.substr(0, colon));
        if (host.find(':') != std::string::npos) {
            error = fmt::format("'{}': an IPv6 address must be in brackets, as in [fd00::1]:3782", shown);
            return std::nullopt;
        }
        port = text.substr(colon + 1);
    }
    unsigned long port_number = 0;
    bool port_ok = !port.empty() && port.size() <= 5 &&
                   std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (port_ok) {
        port_number = std::stoul(std::string(port));
        port_ok = port_number >= 1 && port_number <= 65535;
    }
    if (!port_ok) {
        error = fmt::format("'{}': port '{}' is not a number in [1, 65535]", shown, port);
        return std::nullopt;
    }
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec || host.empty()) {
        error = fmt::format("'{}': '{}' is not an IPv4 or IPv6 address (host names are not resolved)", shown,
                            host);
        return std::nullopt;
    }
    return Endpoint(address, static_cast<unsigned short>(port_number));
}

std::string format_endpoint(const Endpoint& endpoint) {
    if (endpoint.address().is_v6()) {
        return fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port());
    }
    return fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

namespace detail {

struct Counters {
    explicit Counters(ctsync::sdk::Metrics& m)
        : datagrams_sent(m.counter("datagrams_sent", "datagrams written to peers (one per peer)")),
          bytes_sent(m.counter("bytes_sent", "datagram bytes written to peers, without frame headers")),
          datagrams_received(m.counter("datagrams_received", "datagrams received from peers")),
          bytes_received(m.counter("bytes_received", "datagram bytes received, without frame headers")),
          tx_dropped(m.counter("tx_dropped",
                               "datagrams dropped for a peer: its send queue was full, or the "
                               "datagram was empty or too large")),
          tx_dropped_disconnected(m.counter(
              "tx_dropped_disconnected", "datagrams dropped for a peer without an established connection")),
          rx_bad_frames(m.counter("rx_bad_frames",
                                  "frames with length 0 or above max_datagram_bytes (the "
                                  "connection was closed)")),
          rejected_connections(
              m.counter("rejected_connections", "incoming connections from addresses not in peers, closed")),
          connects(m.counter("connects", "outgoing connections established")),
          disconnects(m.counter("disconnects", "established outgoing connections lost")),
          connect_failures(m.counter("connect_failures", "outgoing connection attempts that failed")),
          peers_connected(m.gauge("peers_connected", "peers with an established outgoing connection")) {}

    ctsync::sdk::Counter& datagrams_sent;
    ctsync::sdk::Counter& bytes_sent;
    ctsync::sdk::Counter& datagrams_received;
    ctsync::sdk::Counter& bytes_received;
    ctsync::sdk::Counter& tx_dropped;
    ctsync::sdk::Counter& tx_dropped_disconnected;
    ctsync::sdk::Counter& rx_bad_frames;
    ctsync::sdk::Counter& rejected_connections;
    ctsync::sdk::Counter& connects;
    ctsync::sdk::Counter& disconnects;
    ctsync::sdk::Counter& connect_failures;
    ctsync::sdk::Gauge& peers_connected;
};

class OutboundPeer;
class InboundConnection;

// The shared state of one transport instance. Owned by TcpTransport and by pending accept handlers; the
// peer and connection objects point back to it and check their own `stopped_` flag before doing so,
// which Link::stop() sets before the Link can go away.
class Link : public std::enable_shared_from_this<Link> {
  public:
    Link(const ctsync::sdk::PluginContext& context, TcpOptions options);

    bool start(ctsync::sdk::TransportSink& sink, std::string& error);
    void stop();
    bool send(std::span<const std::byte> datagram);
    std::size_t peers_connected() const { return connected_; }

    const TcpOptions& options() const { return options_; }
    const asio::any_io_executor& executor() const { return executor_; }
    ctsync::sdk::Logger& log() { return log_; }
    Counters& counters() { return counters_; }

    // From OutboundPeer: an outgoing connection was established / lost. May call into the sink.
    void peer_up(const OutboundPeer& peer);
    void peer_down(const OutboundPeer& peer, const std::string& reason);
    // From InboundConnection: a complete datagram. Calls into the sink.
    void deliver(std::span<const std::byte> datagram);
    void forget(const InboundConnection* connection);
    // A reconnect wait for the current backoff ceiling: random in [max(min, ceiling/2), ceiling].
    std::chrono::milliseconds jittered(std::chrono::milliseconds ceiling);

  private:
    void accept_next();
    void on_accept(const boost::system::error_code& ec, tcp::socket socket);

    asio::any_io_executor executor_;
    TcpOptions options_;
    ctsync::sdk::Logger& log_;
    Counters counters_;
    ctsync::sdk::TransportSink* sink_ = nullptr;
    tcp::acceptor acceptor_;
    asio::steady_timer accept_retry_;
    std::vector<std::shared_ptr<OutboundPeer>> peers_;
    std::vector<std::shared_ptr<InboundConnection>> inbound_;
    std::size_t connected_ = 0;
    bool started_ = false;
    bool stopped_ = false;
    std::minstd_rand random_;
    LogLimiter rejected_log_;
    LogLimiter refused_log_;
};

// This node's connection to one peer: connects, reconnects with backoff, writes the peer's send queue.
class OutboundPeer : public std::enable_shared_from_this<OutboundPeer> {
  public:
    enum class Enqueued { kQueued, kQueueFull, kDisconnected };

    OutboundPeer(Link& link, Endpoint remote)
        : link_(&link),
          remote_(remote),
          name_(format_endpoint(remote)),
          socket_(link.executor()),
          timer_(link.executor()),
          backoff_(link.options().reconnect_min) {}

    const std::string& name() const { return name_; }
    const Endpoint& remote() const { return remote_; }

    void start() { connect(); }

    void stop() {
        if (stopped_) {
            return;
        }
        stopped_ = true;
        ++attempt_;
        boost::system::error_code ignored;
        timer_.cancel();
        socket_.close(ignored);
        queue_.clear();
        queued_bytes_ = 0;
        connected_ = false;
    }

    Enqueued enqueue(const Frame& frame) {
        if (!connected_) {
            return Enqueued::kDisconnected;
        }
        const auto& options = link_->options();
        if (queued_bytes_ + frame->size() > options.send_queue_bytes) {
            if (dropping_ == 0) {
                link_->log().warn(fmt::format(
                    "event=send_queue_full peer={} queued_bytes={} send_queue_bytes={} action=drop", name_,
                    queued_bytes_, options.send_queue_bytes));
            }
            ++dropping_;
            return Enqueued::kQueueFull;
        }
        if (dropping_ != 0) {
            link_->log().info(fmt::format("event=send_queue_recovered peer={} dropped={}", name_, dropping_));
            dropping_ = 0;
        }
        queue_.push_back(frame);
        queued_bytes_ += frame->size();
        write_next();
        return Enqueued::kQueued;
    }

  private:
    void connect() {
        const auto attempt = ++attempt_;
        const auto& options = link_->options();
        boost::system::error_code ec;
        socket_.close(ec);
        socket_.open(remote_.protocol(), ec);
        if (ec) {
            connect_failed(fmt::format("cannot open a socket: {}", describe(ec)));
            return;
        }
        std::string error;
        if (!tune(socket_, options, error)) {
            connect_failed(error);
            return;
        }
        if (options.bind_address) {
            socket_.bind(Endpoint(*options.bind_address, 0), ec);
            if (ec) {
                connect_failed(
                    fmt::format("cannot bind {}: {}", options.bind_address->to_string(), describe(ec)));
                return;
            }
        }
        connecting_ = true;
        timed_out_ = false;
        auto self = shared_from_this();
        socket_.async_connect(
            remote_, [self, attempt](const boost::system::error_code& e) { self->on_connect(e, attempt); });
        timer_.expires_after(options.connect_timeout);
        timer_.async_wait([self, attempt](const boost::system::error_code& e) {
            if (e || self->stopped_ || attempt != self->attempt_ || !self->connecting_) {
                return;
            }
            // Closing aborts the pending connect; its handler reports the timeout.
            self->timed_out_ = true;
            boost::system::error_code ignored;
            self->socket_.close(ignored);
        });
    }

    void on_connect(const boost::system::error_code& ec, std::uint64_t attempt) {
        if (stopped_ || attempt != attempt_) {
            return;
        }
        connecting_ = false;
        timer_.cancel();
        if (ec) {
            connect_failed(timed_out_ ? fmt::format("connect timeout after {} ms",
                                                    link_->options().connect_timeout.count())
                                      : describe(ec));
            return;
        }
        connected_ = true;
        connected_at_ = Clock::now();
        boost::system::error_code local_ec;
        auto local = socket_.local_endpoint(local_ec);
        link_->counters().connects.add();
        link_->log().info(fmt::format("event=peer_connected peer={} local={} failed_attempts={}", name_,
                                      local_ec ? std::string("?") : format_endpoint(local), failures_));
        failures_ = 0;
        link_->peer_up(*this);  // may reach the sink, which may stop us
        if (stopped_ || attempt != attempt_) {
            return;
        }
        watch_for_close(attempt);
        write_next();
    }

    // The peer never writes on this connection: a read completes only on close, error or a peer that
    // does not speak this protocol.
    void watch_for_close(std::uint64_t attempt) {
        auto self = shared_from_this();
        socket_.async_read_some(
            asio::buffer(scratch_), [self, attempt](const boost::system::error_code& ec, std::size_t n) {
                if (self->stopped_ || attempt != self->attempt_) {
                    return;
                }
                if (ec == asio::error::eof) {
                    self->disconnect("closed by peer");
                } else if (ec) {
                    self->disconnect(describe(ec));
                } else {
                    self->disconnect(
                        fmt::format("sent {} unexpected bytes on this node's sending connection", n));
                }
            });
    }

    void write_next() {
        if (!connected_ || writing_ || queue_.empty()) {
            return;
        }
        std::vector<Frame> frames;
        std::vector<asio::const_buffer> buffers;
        std::size_t bytes = 0;
        while (!queue_.empty() && frames.size() < kMaxFramesPerWrite &&
               (frames.empty() || bytes + queue_.front()->size() <= kMaxBytesPerWrite)) {
            bytes += queue_.front()->size();
            buffers.emplace_back(queue_.front()->data(), queue_.front()->size());
            frames.push_back(std::move(queue_.front()));
            queue_.pop_front();
        }
        const std::size_t count = frames.size();
        in_flight_ = count;
        writing_ = true;
        const auto attempt = attempt_;
        auto self = shared_from_this();
        try {
            // The handler owns the frames, so the buffers stay valid even if the queue is cleared meanwhile.
            asio::async_write(socket_, buffers,
                              [self, attempt, frames = std::move(frames)](const boost::system::error_code& ec,
                                                                          std::size_t) {
                                  self->on_written(ec, attempt, frames);
                              });
        } catch (const std::exception& e) {
            // No memory for the operation: these frames are lost, the next datagram tries again.
            writing_ = false;
            in_flight_ = 0;
            queued_bytes_ -= bytes;
            link_->counters().tx_dropped.add(count);
            link_->log().error(
                fmt::format("event=write_failed peer={} frames={} reason=\"{}\"", name_, count, e.what()));
        }
    }

    void on_written(const boost::system::error_code& ec, std::uint64_t attempt,
                    const std::vector<Frame>& frames) {
        if (stopped_ || attempt != attempt_) {
            return;
        }
        writing_ = false;
        in_flight_ = 0;
        for (const auto& frame : frames) {
            queued_bytes_ -= frame->size();
        }
        if (ec) {
            // Not one of these frames counts as sent: the peer may lack all of them.
            link_->counters().tx_dropped_disconnected.add(frames.size());
            disconnect(describe(ec));
            return;
        }
        auto& counters = link_->counters();
        for (const auto& frame : frames) {
            counters.datagrams_sent.add();
            counters.bytes_sent.add(frame->size() - kFrameHeaderBytes);
        }
        write_next();
    }

    void connect_failed(const std::string& reason) {
        connecting_ = false;
        boost::system::error_code ignored;
        socket_.close(ignored);
        ++failures_;
        link_->counters().connect_failures.add();
        auto wait = next_wait();
        // Logarithmic volume while a peer stays away: the 1st, 2nd, 4th, 8th... failure at warn.
        bool loud = (failures_ & (failures_ - 1)) == 0;
        link_->log().log(
            loud ? ctsync::sdk::LogLevel::kWarn : ctsync::sdk::LogLevel::kDebug,
            fmt::format("event=connect_failed peer={} reason=\"{}\" failed_attempts={} retry_ms={}", name_,
                        reason, failures_, wait.count()));
        schedule_connect(wait);
    }

    void disconnect(const std::string& reason) {
        const bool was_connected = connected_;
        connected_ = false;
        connecting_ = false;
        writing_ = false;
        ++attempt_;  // every handler of this connection is now stale
        boost::system::error_code ignored;
        socket_.close(ignored);
        timer_.cancel();
        const std::size_t dropped = queue_.size() + in_flight_;
        auto& counters = link_->counters();
        // Frames being written count here too: their handler is stale now and will not count them.
        counters.tx_dropped_disconnected.add(dropped);
        queue_.clear();
        queued_bytes_ = 0;
        in_flight_ = 0;
        dropping_ = 0;
        if (!was_connected) {
            return;
        }
        const auto uptime =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - connected_at_);
        // Only a connection that lasted resets the backoff: a peer that accepts and closes at once (it does
        // not list this node, say) is retried ever more slowly instead of ten times a second.
        if (uptime >= link_->options().reconnect_max) {
            backoff_ = link_->options().reconnect_min;
        }
        auto wait = next_wait();
        counters.disconnects.add();
        link_->log().warn(
            fmt::format("event=peer_disconnected peer={} reason=\"{}\" uptime_ms={} dropped={} retry_ms={}",
                        name_, reason, uptime.count(), dropped, wait.count()));
        const auto attempt = attempt_;
        link_->peer_down(*this, reason);  // may reach the sink, which may stop us
        if (stopped_ || attempt != attempt_) {
            return;
        }
        schedule_connect(wait);
    }

    std::chrono::milliseconds next_wait() {
        auto wait = link_->jittered(backoff_);
        backoff_ = std::min(backoff_ * 2, link_->options().reconnect_max);
        return wait;
    }

    void schedule_connect(std::chrono::milliseconds wait) {
        const auto attempt = attempt_;
        auto self = shared_from_this();
        timer_.expires_after(wait);
        timer_.async_wait([self, attempt](const boost::system::error_code& ec) {
            if (ec || self->stopped_ || attempt != self->attempt_) {
                return;
            }
            self->connect();
        });
    }

    Link* link_;
    Endpoint remote_;
    std::string name_;
    tcp::socket socket_;
    asio::steady_timer timer_;  // connect timeout, then reconnect wait
    std::deque<Frame> queue_;
    std::size_t queued_bytes_ = 0;  // queue_ plus frames being written
    std::size_t in_flight_ = 0;
    std::uint64_t attempt_ = 0;   // bumped for each connection attempt and on close: stale handlers see it
    std::uint64_t failures_ = 0;  // consecutive failed attempts
    std::uint64_t dropping_ = 0;  // consecutive queue-full drops
    std::chrono::milliseconds backoff_;
    Clock::time_point connected_at_{};
    bool connecting_ = false;
    bool connected_ = false;
    bool writing_ = false;
    bool timed_out_ = false;
    bool stopped_ = false;
    std::array<std::byte, 256> scratch_{};
};

// A peer's connection to this node: reads frames (header, then body) and delivers them.
class InboundConnection : public std::enable_shared_from_this<InboundConnection> {
  public:
    InboundConnection(Link& link, tcp::socket socket, std::string peer, Endpoint remote)
        : link_(&link),
          socket_(std::move(socket)),
          peer_(std::move(peer)),
          remote_(remote),
          remote_name_(format_endpoint(remote)) {}

    const Endpoint& remote() const { return remote_; }
    const std::string& peer() const { return peer_; }

    void start() { read_header(); }

    // Closes without telling the link (the link is dropping it).
    void stop() {
        stopped_ = true;
        boost::system::error_code ignored;
        socket_.close(ignored);
    }

  private:
    void read_header() {
        auto self = shared_from_this();
        asio::async_read(
            socket_, asio::buffer(header_), [self](const boost::system::error_code& ec, std::size_t) {
                if (self->stopped_) {
                    return;
                }
                if (ec) {
                    self->close(ec == asio::error::eof ? "closed by peer" : describe(ec));
                    return;
                }
                const std::uint32_t length = (std::to_integer<std::uint32_t>(self->header_[0]) << 24) |
                                             (std::to_integer<std::uint32_t>(self->header_[1]) << 16) |
                                             (std::to_integer<std::uint32_t>(self->header_[2]) << 8) |
                                             std::to_integer<std::uint32_t>(self->header_[3]);
                self->on_header(length);
            });
    }

    void on_header(std::uint32_t length) {
        const std::size_t max = link_->options().max_datagram_bytes;
        if (length == 0 || length > max) {
            // Whatever follows cannot be framed any more: resynchronising on a byte stream would mean
            // guessing, so the connection goes and the peer reconnects with a clean stream.
            link_->counters().rx_bad_frames.add();
            link_->log().warn(fmt::format(
                "event=bad_frame peer={} remote={} length={} max_datagram_bytes={} datagrams={} action=close",
                peer_, remote_name_, length, max, datagrams_));
            close(fmt::format("bad frame length {}", length));
            return;
        }
        if (body_.size() < length) {
            try {
                body_.resize(length);
            } catch (const std::bad_alloc&) {
                // A handler must not throw into the host's event loop.
                close(fmt::format("no memory for a frame of {} bytes", length));
                return;
            }
        }
        length_ = length;
        auto self = shared_from_this();
        asio::async_read(
            socket_, asio::buffer(body_.data(), length_),
            [self](const boost::system::error_code& ec, std::size_t) {
                if (self->stopped_) {
                    return;
                }
                if (ec) {
                    self->close(ec == asio::error::eof ? "closed by peer inside a frame" : describe(ec));
                    return;
                }
                ++self->datagrams_;
                self->link_->deliver(std::span<const std::byte>(self->body_.data(), self->length_));
                if (!self->stopped_) {
                    self->read_header();
                }
            });
    }

    void close(const std::string& reason) {
        stop();
        link_->log().info(fmt::format("event=peer_stream_closed peer={} remote={} reason=\"{}\" datagrams={}",
                                      peer_, remote_name_, reason, datagrams_));
        link_->forget(this);
    }

    Link* link_;
    tcp::socket socket_;
    std::string peer_;
    Endpoint remote_;
    std::string remote_name_;
    std::array<std::byte, kFrameHeaderBytes> header_{};
    std::vector<std::byte> body_;  // grows to the largest datagram seen, never shrinks
    std::size_t length_ = 0;
    std::uint64_t datagrams_ = 0;
    bool stopped_ = false;
};

Link::Link(const ctsync::sdk::PluginContext& context, TcpOptions options)
    : executor_(context.executor),
      options_(std::move(options)),
      log_(*context.logger),
      counters_(*context.metrics),
      acceptor_(context.executor),
      accept_retry_(context.executor) {
    std::random_device device;
    random_.seed(device());
    for (const auto& peer : options_.peers) {
        peers_.push_back(std::make_shared<OutboundPeer>(*this, peer));
    }
}

bool Link::start(ctsync::sdk::TransportSink& sink, std::string& error) {
    if (stopped_) {
        error = "the transport was stopped";
        return false;
    }
    if (started_) {
        error = "the transport is already started";
        return false;
    }
    const std::string listen = format_endpoint(options_.listen);
    boost::system::error_code ec;
    auto fail = [&](const std::string& message) {
        error = message;
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        return false;
    };
    acceptor_.open(options_.listen.protocol(), ec);
    if (ec) {
        return fail(fmt::format("listen {}: cannot open a socket: {}", listen, describe(ec)));
    }
    // A restarted node must get its port back while old connections sit in TIME_WAIT.
    acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (ec) {
        return fail(fmt::format("listen {}: setsockopt SO_REUSEADDR: {}", listen, describe(ec)));
    }
    acceptor_.bind(options_.listen, ec);
    if (ec) {
        return fail(fmt::format("listen {}: cannot bind: {}", listen, describe(ec)));
    }
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        return fail(fmt::format("listen {}: cannot listen: {}", listen, describe(ec)));
    }
    if (options_.bind_address) {
        // Checked now, so that an address missing on this host stops the start instead of failing every
        // connection attempt quietly.
        tcp::socket probe(executor_);
        Endpoint local(*options_.bind_address, 0);
        probe.open(local.protocol(), ec);
        if (!ec) {
            probe.bind(local, ec);
        }
        if (ec) {
            return fail(fmt::format("bind_address {}: cannot bind: {}", options_.bind_address->to_string(),
                                    describe(ec)));
        }
    }
    sink_ = &sink;
    started_ = true;
    std::string peer_list;
    for (const auto& peer : peers_) {
        peer_list += (peer_list.empty() ? "" : ",") + peer->name();
    }
    log_.info(fmt::format(
        "event=transport_started listen={} peers={} bind_address={} max_datagram_bytes={} "
        "send_queue_bytes={}",
        listen, peer_list, options_.bind_address ? options_.bind_address->to_string() : std::string("auto"),
        options_.max_datagram_bytes, options_.send_queue_bytes));
    accept_next();
    for (const auto& peer : peers_) {
        peer->start();
    }
    return true;
}

void Link::stop() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
    for (const auto& peer : peers_) {
        peer->stop();
    }
    for (const auto& connection : inbound_) {
        connection->stop();
    }
    inbound_.clear();
    connected_ = 0;
    counters_.peers_connected.set(0);
    if (started_) {
        log_.info("event=transport_stopped");
    }
}

bool Link::send(std::span<const std::byte> datagram) {
    if (!started_ || stopped_ || datagram.empty() || datagram.size() > options_.max_datagram_bytes) {
        counters_.tx_dropped.add(peers_.size());
        std::uint64_t suppressed = 0;
        if (refused_log_.allow(suppressed)) {
            log_.warn(
                fmt::format("event=datagram_refused size={} max_datagram_bytes={} running={} suppressed={}",
                            datagram.size(), options_.max_datagram_bytes, started_ && !stopped_, suppressed));
        }
        return false;
    }
    const auto length = static_cast<std::uint32_t>(datagram.size());
    auto frame = std::make_shared<std::vector<std::byte>>(kFrameHeaderBytes + datagram.size());
    (*frame)[0] = static_cast<std::byte>(length >> 24);
    (*frame)[1] = static_cast<std::byte>(length >> 16);
    (*frame)[2] = static_cast<std::byte>(length >> 8);
    (*frame)[3] = static_cast<std::byte>(length);
    std::memcpy(frame->data() + kFrameHeaderBytes, datagram.data(), datagram.size());
    const Frame shared = std::move(frame);  // one copy, shared by every peer's queue
    bool queued_everywhere = true;
    for (const auto& peer : peers_) {
        switch (peer->enqueue(shared)) {
            case OutboundPeer::Enqueued::kQueued:
                break;
            case OutboundPeer::Enqueued::kQueueFull:
                counters_.tx_dropped.add();
                queued_everywhere = false;
                break;
            case OutboundPeer::Enqueued::kDisconnected:
                counters_.tx_dropped_disconnected.add();
                queued_everywhere = false;
                break;
        }
    }
    return queued_everywhere;
}

void Link::peer_up(const OutboundPeer& peer) {
    ++connected_;
    counters_.peers_connected.set(static_cast<std::int64_t>(connected_));
    if (connected_ == 1) {
        const std::string detail = fmt::format("peer {} connected", peer.name());
        log_.info(fmt::format("event=link_up detail=\"{}\"", detail));
        sink_->on_link_state(LinkState::kUp, detail);
    }
}

void Link::peer_down(const OutboundPeer& peer, const std::string& reason) {
    if (connected_ > 0) {
        --connected_;
    }
    counters_.peers_connected.set(static_cast<std::int64_t>(connected_));
    if (connected_ == 0) {
        const std::string detail = fmt::format("peer {} {}", peer.name(), reason);
        log_.warn(fmt::format("event=link_down detail=\"{}\"", detail));
        sink_->on_link_state(LinkState::kDown, detail);
    }
}

void Link::deliver(std::span<const std::byte> datagram) {
    counters_.datagrams_received.add();
    counters_.bytes_received.add(datagram.size());
    sink_->on_datagram(datagram);
}

void Link::forget(const InboundConnection* connection) {
    auto it = std::find_if(inbound_.begin(), inbound_.end(),
                           [connection](const auto& c) { return c.get() == connection; });
    if (it != inbound_.end()) {
        inbound_.erase(it);
    }
}

std::chrono::milliseconds Link::jittered(std::chrono::milliseconds ceiling) {
    const auto low = std::max(options_.reconnect_min, ceiling / 2);
    if (ceiling <= low) {
        return ceiling;
    }
    std::uniform_int_distribution<std::int64_t> pick(low.count(), ceiling.count());
    return std::chrono::milliseconds(pick(random_));
}

void Link::accept_next() {
    if (stopped_) {
        return;
    }
    auto self = shared_from_this();
    acceptor_.async_accept([self](const boost::system::error_code& ec, tcp::socket socket) {
        self->on_accept(ec, std::move(socket));
    });
}

void Link::on_accept(const boost::system::error_code& ec, tcp::socket socket) {
    if (stopped_) {
        return;
    }
    if (ec) {
        if (ec == asio::error::operation_aborted) {
            return;
        }
        // Out of descriptors, say: back off a little instead of spinning on the error.
        log_.warn(fmt::format("event=accept_failed listen={} reason=\"{}\" retry_ms={}",
                              format_endpoint(options_.listen), describe(ec), kAcceptRetry.count()));
        auto self = shared_from_this();
        accept_retry_.expires_after(kAcceptRetry);
        accept_retry_.async_wait([self](const boost::system::error_code& e) {
            if (!e) {
                self->accept_next();
            }
        });
        return;
    }
    boost::system::error_code remote_ec;
    const Endpoint remote = socket.remote_endpoint(remote_ec);
    if (remote_ec) {  // reset before we got to it
        accept_next();
        return;
    }
    const auto address = normalize(remote.address());
    const OutboundPeer* match = nullptr;
    std::size_t peers_at_address = 0;
    for (const auto& peer : peers_) {
        if (normalize(peer->remote().address()) == address) {
            match = match ? match : peer.get();
            ++peers_at_address;
        }
    }
    boost::system::error_code ignored;
    if (match == nullptr) {
        counters_.rejected_connections.add();
        socket.close(ignored);
        std::uint64_t suppressed = 0;
        if (rejected_log_.allow(suppressed)) {
            log_.warn(
                fmt::format("event=connection_rejected remote={} reason=\"address not in peers\" "
                            "suppressed={}",
                            format_endpoint(remote), suppressed));
        }
        accept_next();
        return;
    }
    std::string error;
    if (!tune(socket, options_, error)) {
        log_.warn(fmt::format("event=peer_stream_refused peer={} remote={} reason=\"{}\"", match->name(),
                              format_endpoint(remote), error));
        socket.close(ignored);
        accept_next();
        return;
    }
    // A peer that reconnects has given up its previous connection, which may still look alive here (it
    // crashed without a FIN): keep as many connections per address as peers live there, newest first.
    std::size_t existing = 0;
    for (const auto& connection : inbound_) {
        existing += normalize(connection->remote().address()) == address ? 1 : 0;
    }
    while (existing >= peers_at_address) {
        auto oldest = std::find_if(inbound_.begin(), inbound_.end(), [&](const auto& c) {
            return normalize(c->remote().address()) == address;
        });
        log_.info(fmt::format("event=peer_stream_replaced peer={} old_remote={} new_remote={}",
                              (*oldest)->peer(), format_endpoint((*oldest)->remote()),
                              format_endpoint(remote)));
        (*oldest)->stop();
        inbound_.erase(oldest);
        --existing;
    }
    auto connection = std::make_shared<InboundConnection>(*this, std::move(socket), match->name(), remote);
    inbound_.push_back(connection);
    log_.info(
        fmt::format("event=peer_stream_accepted peer={} remote={}", match->name(), format_endpoint(remote)));
    connection->start();
    accept_next();
}

}  // namespace detail

TcpTransport::TcpTransport(const ctsync::sdk::PluginContext& context, TcpOptions options)
    : link_(std::make_shared<detail::Link>(context, std::move(options))) {}

TcpTransport::~TcpTransport() {
    stop();
}

void TcpTransport::stop() noexcept {
    try {
        link_->stop();
    } catch (...) {
        // Only a failed allocation in a log line can land here; the sockets are closed by then.
    }
}

bool TcpTransport::start(ctsync::sdk::TransportSink& sink, std::string& error) noexcept {
    try {
        return link_->start(sink, error);
    } catch (const std::exception& e) {
        error = e.what();
        stop();
        return false;
    }
}

bool TcpTransport::send(std::span<const std::byte> datagram) noexcept {
    try {
        return link_->send(datagram);
    } catch (...) {
        // Out of memory for the frame: a local drop like any other.
        link_->counters().tx_dropped.add();
        return false;
    }
}

std::size_t TcpTransport::max_datagram_size() const noexcept {
    return link_->options().max_datagram_bytes;
}

std::size_t TcpTransport::peers_connected() const noexcept {
    return link_->peers_connected();
}

}  // namespace transport_tcp
