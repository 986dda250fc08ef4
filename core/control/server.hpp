// SPDX-License-Identifier: GPL-2.0-or-later
// The daemon's control socket: accepts connections on the event loop and dispatches requests to handlers.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/control/protocol.hpp"
#include "core/metrics/registry.hpp"

namespace ctsync::core::control {

// A handler returns the result, or throws std::runtime_error/std::invalid_argument whose message becomes
// the error reply. Handlers run on the event loop.
using Handler = std::function<nlohmann::json(const nlohmann::json& args)>;

class Server {
  public:
    Server(boost::asio::io_context& io, MetricsRegistry& metrics);
    ~Server();

    void add(const std::string& command, Handler handler);
    // Binds `path` (mode 0660, parent directories created). A leftover socket nobody serves (a daemon that
    // was killed) is replaced; a socket that still answers, or a file that is not a socket, is an error.
    // Returns an error message, empty on success.
    std::string listen(const std::filesystem::path& path);
    void close();

    // Largest request line accepted (default kMaxLineBytes); set before listen().
    void set_max_request_bytes(std::size_t bytes) { max_request_bytes_ = bytes; }
    // Idle connections are closed after this long without a complete request.
    void set_idle_timeout(std::chrono::milliseconds timeout) { idle_timeout_ = timeout; }

    // The reply line to one request line (without its newline), as a session sends it: never throws but
    // std::bad_alloc. Public for the control fuzzer (tests/fuzz/control_fuzz.cpp).
    std::string dispatch(const std::string& line);

  private:
    class Session;
    void accept();

    boost::asio::io_context& io_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    std::filesystem::path path_;
    std::map<std::string, Handler> handlers_;
    std::chrono::milliseconds idle_timeout_{10000};
    std::size_t max_request_bytes_ = kMaxLineBytes;
    sdk::Counter& requests_;
    sdk::Counter& bad_requests_;
    sdk::Counter& failed_requests_;
    sdk::Counter& connections_;
};

}  // namespace ctsync::core::control
