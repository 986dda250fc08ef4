// SPDX-License-Identifier: GPL-2.0-or-later
// The metrics endpoint: a minimal HTTP/1.1 responder on the event loop that answers `GET /metrics` with the
// Prometheus text format (config `.daemon.metrics.listen`, docs/METRICS.md). One request per connection,
// requests larger than 8 KiB or slower than the idle timeout are refused, at most 16 connections at once.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/metrics/registry.hpp"

namespace ctsync::core {

// Parses "ADDRESS:PORT" or "[IPV6]:PORT" (port 1-65535). Returns nullopt with `error` naming the problem.
std::optional<boost::asio::ip::tcp::endpoint> parse_listen_address(const std::string& text,
                                                                   std::string& error);

class MetricsEndpoint {
  public:
    using Render = std::function<std::string()>;
    MetricsEndpoint(boost::asio::io_context& io, MetricsRegistry& metrics, Render render);
    ~MetricsEndpoint();
    MetricsEndpoint(const MetricsEndpoint&) = delete;
    MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

    // Returns an error message, empty on success.
    std::string listen(const boost::asio::ip::tcp::endpoint& endpoint);
    void close();
    // The bound address (port 0 in listen() picks one).
    boost::asio::ip::tcp::endpoint local_endpoint() const;

    void set_idle_timeout(std::chrono::milliseconds timeout) { idle_timeout_ = timeout; }

    static constexpr std::size_t kMaxRequestBytes = 8192;
    static constexpr std::size_t kMaxConnections = 16;

  private:
    class Session;
    void accept();
    // The whole response for one request head (status line to body).
    std::string respond(const std::string& head);

    boost::asio::io_context& io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    Render render_;
    std::chrono::milliseconds idle_timeout_{5000};
    std::shared_ptr<std::size_t> open_sessions_ = std::make_shared<std::size_t>(0);
    std::vector<std::weak_ptr<Session>> sessions_;
    sdk::Counter& requests_;
    sdk::Counter& bad_requests_;
    sdk::Counter& rejected_;
};

}  // namespace ctsync::core
