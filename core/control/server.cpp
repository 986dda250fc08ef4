// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/control/server.hpp"

#include <malloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <istream>

#include "core/control/protocol.hpp"

namespace ctsync::core::control {
namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

class Server::Session : public std::enable_shared_from_this<Session> {
  public:
    Session(Server& server, stream::socket socket)
        : server_(server),
          socket_(std::move(socket)),
          timer_(socket_.get_executor()),
          buffer_(server.max_request_bytes_ + 1) {}

    void start() { read(); }

  private:
    void read() {
        arm_timer();
        asio::async_read_until(socket_, buffer_, '\n',
                               [self = shared_from_this()](auto ec, std::size_t n) { self->on_read(ec, n); });
    }

    void arm_timer() {
        timer_.expires_after(server_.idle_timeout_);
        timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            if (auto self = weak.lock(); self && !ec) {
                boost::system::error_code ignored;
                self->socket_.close(ignored);
            }
        });
    }

    void on_read(const boost::system::error_code& ec, std::size_t n) {
        timer_.cancel();
        if (ec == asio::error::not_found) {
            // No newline within the size limit: answer once and hang up, the stream cannot be resynchronised.
            server_.bad_requests_.add();
            write(
                encode_error("request longer than " + std::to_string(server_.max_request_bytes_) + " bytes"),
                /*close=*/true);
            return;
        }
        if (ec) {
            return;  // peer closed or idle timeout
        }
        std::string line(asio::buffers_begin(buffer_.data()), asio::buffers_begin(buffer_.data()) + n - 1);
        buffer_.consume(n);
        // The next request is read once this one is answered: a session's requests stay in order.
        server_.dispatch_async(std::move(line), [self = shared_from_this()](std::string reply) {
            self->write(std::move(reply), false);
        });
    }

    void write(std::string reply, bool close) {
        auto data = std::make_shared<std::string>(std::move(reply));
        asio::async_write(socket_, asio::buffer(*data),
                          [self = shared_from_this(), data, close](auto ec, auto) {
                              if (ec || close) {
                                  boost::system::error_code ignored;
                                  self->socket_.close(ignored);
                                  return;
                              }
                              self->read();
                          });
    }

    Server& server_;
    stream::socket socket_;
    asio::steady_timer timer_;
    asio::streambuf buffer_;
};

Server::Server(asio::io_context& io, MetricsRegistry& metrics)
    : io_(io),
      acceptor_(io),
      requests_(metrics.counter("control.requests", "control requests answered")),
      bad_requests_(metrics.counter("control.bad_requests", "malformed control requests refused")),
      failed_requests_(metrics.counter("control.failed_requests", "control requests whose command failed")),
      connections_(metrics.counter("control.connections", "control connections accepted")),
      off_loop_(metrics.counter(
          "control.requests_off_loop",
          "control requests whose heavy part ran off the event loop (dump, import, commit)")) {}

Server::~Server() {
    close();
    worker_.join();
}

void Server::add(const std::string& command, Handler handler) {
    handlers_[command] = std::move(handler);
}

void Server::add_staged(const std::string& command, StagedHandler handler) {
    staged_[command] = std::move(handler);
}

std::string Server::listen(const std::filesystem::path& path) {
    std::error_code fs_ec;
    if (path.has_parent_path()) {
        std::filesystem::create_directories(path.parent_path(), fs_ec);
    }
    // Replace only a dead socket: never another kind of file, never a socket someone still serves (two
    // instances whose configs share a control_socket but not a lock file).
    auto status = std::filesystem::symlink_status(path, fs_ec);
    if (!fs_ec && status.type() != std::filesystem::file_type::not_found) {
        if (status.type() != std::filesystem::file_type::socket) {
            return "control socket path '" + path.string() +
                   "' exists and is not a socket; refusing to replace it";
        }
        stream::socket probe(io_);
        boost::system::error_code probe_ec;
        probe.connect(stream::endpoint(path.string()), probe_ec);
        if (!probe_ec) {
            return "control socket '" + path.string() +
                   "' is served by another process; give each instance its own .daemon.control_socket";
        }
        std::filesystem::remove(path, fs_ec);
    }
    boost::system::error_code ec;
    acceptor_.open(stream(), ec);
    if (!ec) {
        // Only root and the socket's group may talk to the daemon; umask would otherwise decide.
        mode_t old = ::umask(0117);
        acceptor_.bind(stream::endpoint(path.string()), ec);
        ::umask(old);
    }
    if (!ec) {
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        return "cannot listen on control socket '" + path.string() + "': " + ec.message();
    }
    path_ = path;
    accept();
    return {};
}

void Server::close() {
    if (acceptor_.is_open()) {
        boost::system::error_code ec;
        acceptor_.close(ec);
        std::error_code fs_ec;
        std::filesystem::remove(path_, fs_ec);
    }
}

void Server::accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, stream::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
            return;
        }
        if (!ec) {
            connections_.add();
            std::make_shared<Session>(*this, std::move(socket))->start();
        }
        accept();
    });
}

Server::Parsed Server::parse(const std::string& line) const {
    Parsed parsed;
    parsed.request = parse_request(line, parsed.error, max_request_bytes_);
    return parsed;
}

std::string Server::unknown_command(const std::string& command) const {
    std::vector<std::string> names;
    for (const auto& [name, handler] : handlers_) {
        names.push_back(name);
    }
    for (const auto& [name, handler] : staged_) {
        names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    std::string known;
    for (const auto& name : names) {
        known += (known.empty() ? "" : ", ") + name;
    }
    return encode_error("unknown command '" + command + "' (known: " + known + ")");
}

std::string Server::finish(Outcome outcome) {
    try {
        nlohmann::json result = outcome.on_loop ? outcome.on_loop() : std::move(outcome.result);
        requests_.add();
        return encode_ok(result);
    } catch (const std::exception& e) {
        failed_requests_.add();
        return encode_error(e.what());
    }
}

std::optional<std::string> Server::refusal(const Parsed& parsed) {
    if (!parsed.request) {
        bad_requests_.add();
        return encode_error(parsed.error);
    }
    if (handlers_.count(parsed.request->command) == 0 && staged_.count(parsed.request->command) == 0) {
        bad_requests_.add();
        return unknown_command(parsed.request->command);
    }
    return std::nullopt;
}

std::string Server::run(const Handler& handler, const nlohmann::json& args) {
    try {
        nlohmann::json result = handler(args);
        requests_.add();
        return encode_ok(result);
    } catch (const std::exception& e) {
        failed_requests_.add();
        return encode_error(e.what());
    }
}

std::string Server::dispatch(const std::string& line) {
    auto parsed = parse(line);
    if (auto refused = refusal(parsed)) {
        return *refused;
    }
    const auto& request = *parsed.request;
    if (auto it = handlers_.find(request.command); it != handlers_.end()) {
        return run(it->second, request.args);
    }
    Outcome outcome;
    try {
        outcome = staged_.at(request.command)(request.args)();
    } catch (const std::exception& e) {
        failed_requests_.add();
        return encode_error(e.what());
    }
    return finish(std::move(outcome));
}

void Server::dispatch_async(std::string line, Reply reply) {
    if (line.size() <= kParseOnLoopBytes) {
        handle(parse(line), std::move(reply));
        return;
    }
    asio::post(worker_, [this, line = std::move(line), reply = std::move(reply)]() mutable {
        auto parsed = parse(line);
        line = std::string();
        asio::post(io_, [this, parsed = std::move(parsed), reply = std::move(reply)]() mutable {
            handle(std::move(parsed), std::move(reply));
        });
    });
}

void Server::handle(Parsed parsed, Reply reply) {
    if (auto refused = refusal(parsed)) {
        reply(std::move(*refused));
        return;
    }
    auto& request = *parsed.request;
    if (auto it = handlers_.find(request.command); it != handlers_.end()) {
        reply(run(it->second, request.args));
        return;
    }
    Work work;
    try {
        work = staged_.at(request.command)(std::move(request.args));
    } catch (const std::exception& e) {
        failed_requests_.add();
        reply(encode_error(e.what()));
        return;
    }
    off_loop_.add();
    asio::post(worker_, [this, work = std::move(work), reply = std::move(reply)]() mutable {
        std::optional<Outcome> outcome;
        std::string out;  // the reply, when it is complete here (encoded here too: a whole table is large)
        try {
            outcome = work();
            if (!outcome->on_loop) {
                out = encode_ok(outcome->result);
                requests_.add();
                outcome.reset();
            }
        } catch (const std::exception& e) {
            failed_requests_.add();
            out = encode_error(e.what());
            outcome.reset();
        }
        work = Work();  // what it captured (a snapshot) goes here, not on the loop
        // A whole table's snapshot and JSON were just freed: give the pages back, or a dump of 50k flows
        // leaves the daemon about 450 MB resident for good (glibc keeps freed heap; measured in the soak).
        ::malloc_trim(0);
        asio::post(io_, [this, outcome = std::move(outcome), out = std::move(out),
                         reply = std::move(reply)]() mutable {
            reply(outcome ? finish(std::move(*outcome)) : std::move(out));
        });
    });
}

}  // namespace ctsync::core::control
