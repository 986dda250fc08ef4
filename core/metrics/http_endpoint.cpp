// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/metrics/http_endpoint.hpp"

#include <fmt/format.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <memory>

#include "core/metrics/prometheus.hpp"

namespace ctsync::core {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::optional<tcp::endpoint> parse_listen_address(const std::string& text, std::string& error) {
    std::string host;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            error = fmt::format("'{}' is not [IPV6]:PORT", text);
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos || text.find(':') != colon) {
            error =
                fmt::format("'{}' is not ADDRESS:PORT (an IPv6 address goes in brackets: [::1]:9469)", text);
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) {
        error = fmt::format("'{}' is not an IP address", host);
        return std::nullopt;
    }
    unsigned value = 0;
    auto [end, parse_ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || parse_ec != std::errc() || end != port.data() + port.size() || value < 1 ||
        value > 65535) {
        error = fmt::format("port '{}' is not in [1, 65535]", port);
        return std::nullopt;
    }
    return tcp::endpoint(address, static_cast<unsigned short>(value));
}

class MetricsEndpoint::Session : public std::enable_shared_from_this<Session> {
  public:
    Session(MetricsEndpoint& owner, tcp::socket socket)
        : owner_(owner),
          open_(owner.open_sessions_),
          socket_(std::move(socket)),
          timer_(socket_.get_executor()),
          buffer_(kMaxRequestBytes) {
        ++*open_;
    }
    ~Session() { --*open_; }

    // The endpoint closes: every pending operation ends with operation_aborted.
    void abort() {
        boost::system::error_code ignored;
        socket_.close(ignored);
        timer_.cancel();
    }

    void start() {
        timer_.expires_after(owner_.idle_timeout_);
        timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (auto self = weak.lock(); self && !ec) {
                boost::system::error_code ignored;
                self->socket_.close(ignored);
            }
        });
        asio::async_read_until(socket_, buffer_, "\r\n\r\n",
                               [self = shared_from_this()](auto ec, std::size_t n) { self->on_read(ec, n); });
    }

  private:
    void on_read(const boost::system::error_code& ec, std::size_t n) {
        if (ec == asio::error::not_found) {
            owner_.bad_requests_.add();
            write(
                "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: "
                "close\r\n\r\n");
            return;
        }
        if (ec) {
            timer_.cancel();
            return;  // peer closed, idle timeout or the endpoint closed
        }
        std::string head(asio::buffers_begin(buffer_.data()), asio::buffers_begin(buffer_.data()) + n);
        write(owner_.respond(head));
    }

    void write(std::string response) {
        auto data = std::make_shared<std::string>(std::move(response));
        asio::async_write(socket_, asio::buffer(*data), [self = shared_from_this(), data](auto, auto) {
            boost::system::error_code ignored;
            self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
            self->socket_.close(ignored);
            self->timer_.cancel();
        });
    }

    MetricsEndpoint& owner_;
    std::shared_ptr<std::size_t> open_;  // outlives the endpoint if a handler still holds this session
    tcp::socket socket_;
    asio::steady_timer timer_;
    asio::streambuf buffer_;
};

MetricsEndpoint::MetricsEndpoint(asio::io_context& io, MetricsRegistry& metrics, Render render)
    : io_(io),
      acceptor_(io),
      render_(std::move(render)),
      requests_(
          metrics.counter("metrics.http_requests", "metrics endpoint requests answered with the metrics")),
      bad_requests_(metrics.counter("metrics.http_bad_requests",
                                    "metrics endpoint requests refused (malformed, not GET, unknown path)")),
      rejected_(metrics.counter("metrics.http_rejected_connections",
                                "metrics endpoint connections closed at once: too many open")) {}

MetricsEndpoint::~MetricsEndpoint() {
    close();
}

std::string MetricsEndpoint::listen(const tcp::endpoint& endpoint) {
    boost::system::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) {
        acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    }
    if (!ec && endpoint.address().is_v6()) {
        acceptor_.set_option(asio::ip::v6_only(true), ec);
    }
    if (!ec) {
        acceptor_.bind(endpoint, ec);
    }
    if (!ec) {
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        const std::string address = endpoint.address().is_v6() ? "[" + endpoint.address().to_string() + "]"
                                                               : endpoint.address().to_string();
        return fmt::format("cannot listen for metrics on {}:{}: {}", address, endpoint.port(), ec.message());
    }
    accept();
    return {};
}

void MetricsEndpoint::close() {
    if (acceptor_.is_open()) {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
    }
    for (auto& weak : sessions_) {
        if (auto session = weak.lock()) {
            session->abort();
        }
    }
    sessions_.clear();
}

tcp::endpoint MetricsEndpoint::local_endpoint() const {
    boost::system::error_code ec;
    return acceptor_.local_endpoint(ec);
}

void MetricsEndpoint::accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
            return;
        }
        if (!ec) {
            std::erase_if(sessions_, [](const std::weak_ptr<Session>& s) { return s.expired(); });
            if (*open_sessions_ >= kMaxConnections) {
                rejected_.add();
                boost::system::error_code ignored;
                socket.close(ignored);
            } else {
                auto session = std::make_shared<Session>(*this, std::move(socket));
                sessions_.push_back(session);
                session->start();
            }
        }
        accept();
    });
}

std::string MetricsEndpoint::respond(const std::string& head) {
    auto reply = [](const char* status, const std::string& type, const std::string& body, bool head_only) {
        return fmt::format(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", status,
            type, body.size(), head_only ? std::string() : body);
    };
    auto line_end = head.find("\r\n");
    std::string line = head.substr(0, line_end);
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    if (sp2 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
        bad_requests_.add();
        return reply("400 Bad Request", "text/plain", "malformed request line\n", false);
    }
    std::string method = line.substr(0, sp1);
    std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (auto query = target.find('?'); query != std::string::npos) {
        target.resize(query);
    }
    if (method != "GET" && method != "HEAD") {
        bad_requests_.add();
        return reply("405 Method Not Allowed", "text/plain", "only GET and HEAD\n", false);
    }
    if (target != "/metrics") {
        bad_requests_.add();
        return reply("404 Not Found", "text/plain", "the metrics are at /metrics\n", method == "HEAD");
    }
    requests_.add();
    return reply("200 OK", kPrometheusContentType, render_(), method == "HEAD");
}

}  // namespace ctsync::core
