// SPDX-License-Identifier: GPL-2.0-or-later
// The daemon's control socket: accepts connections on the event loop and dispatches requests to handlers.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/control/protocol.hpp"
#include "core/metrics/registry.hpp"

namespace ctsync::core::control {

// A handler returns the result, or throws std::runtime_error/std::invalid_argument whose message becomes
// the error reply. Handlers run on the event loop.
using Handler = std::function<nlohmann::json(const nlohmann::json& args)>;

// A command whose heavy part must not stall the event loop (a whole table dumped, imported or committed):
// the handler runs on the loop and takes what the work needs (a snapshot: the work never touches what the
// loop owns); the work runs on the server's worker thread and returns the result, or a last step to run on
// the loop (applying what the work prepared), which returns it. Errors as for Handler, at every stage. One
// worker: such requests run one at a time, in the order they came.
struct Outcome {
    nlohmann::json result;
    std::function<nlohmann::json()> on_loop;  // when set: run on the loop, its value is the result
};
using Work = std::function<Outcome()>;
using StagedHandler = std::function<Work(nlohmann::json args)>;

// Request lines longer than this are parsed on the worker thread too (an import carries a whole table).
inline constexpr std::size_t kParseOnLoopBytes = 64 * 1024;

class Server {
  public:
    Server(boost::asio::io_context& io, MetricsRegistry& metrics);
    ~Server();

    void add(const std::string& command, Handler handler);
    void add_staged(const std::string& command, StagedHandler handler);
    // Binds `path` (mode 0660, parent directories created). A leftover socket nobody serves (a daemon that
    // was killed) is replaced; a socket that still answers, or a file that is not a socket, is an error.
    // Returns an error message, empty on success.
    std::string listen(const std::filesystem::path& path);
    void close();

    // Largest request line accepted (default kMaxLineBytes); set before listen().
    void set_max_request_bytes(std::size_t bytes) { max_request_bytes_ = bytes; }
    // Idle connections are closed after this long without a complete request.
    void set_idle_timeout(std::chrono::milliseconds timeout) { idle_timeout_ = timeout; }

    // The reply line to one request line (without its newline), every stage run here, on the caller's
    // thread: never throws but std::bad_alloc. Public for the control fuzzer (tests/fuzz/control_fuzz.cpp).
    std::string dispatch(const std::string& line);

  private:
    class Session;
    using Reply = std::function<void(std::string)>;
    struct Parsed {
        std::optional<Request> request;
        std::string error;
    };
    void accept();
    Parsed parse(const std::string& line) const;
    // What a session does with a request line: `reply` is called on the loop, once.
    void dispatch_async(std::string line, Reply reply);
    void handle(Parsed parsed, Reply reply);
    std::string unknown_command(const std::string& command) const;
    // The error reply for a request that does not parse or names no command (counted), or nothing.
    std::optional<std::string> refusal(const Parsed& parsed);
    std::string run(const Handler& handler, const nlohmann::json& args);
    std::string finish(Outcome outcome);

    boost::asio::io_context& io_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    std::filesystem::path path_;
    std::map<std::string, Handler> handlers_;
    std::map<std::string, StagedHandler> staged_;
    std::chrono::milliseconds idle_timeout_{10000};
    std::size_t max_request_bytes_ = kMaxLineBytes;
    sdk::Counter& requests_;
    sdk::Counter& bad_requests_;
    sdk::Counter& failed_requests_;
    sdk::Counter& connections_;
    sdk::Counter& off_loop_;
    // Last: joined first on destruction, before what the work may refer to goes.
    boost::asio::thread_pool worker_{1};
};

}  // namespace ctsync::core::control
