// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/control/server.hpp"

#include <sys/stat.h>

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
        write(server_.dispatch(line), /*close=*/false);
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
      connections_(metrics.counter("control.connections", "control connections accepted")) {}

Server::~Server() {
    close();
}

void Server::add(const std::string& command, Handler handler) {
    handlers_[command] = std::move(handler);
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

std::string Server::dispatch(const std::string& line) {
    std::string error;
    auto request = parse_request(line, error, max_request_bytes_);
    if (!request) {
        bad_requests_.add();
        return encode_error(error);
    }
    auto it = handlers_.find(request->command);
    if (it == handlers_.end()) {
        bad_requests_.add();
        std::string known;
        for (const auto& [name, handler] : handlers_) {
            known += (known.empty() ? "" : ", ") + name;
        }
        return encode_error("unknown command '" + request->command + "' (known: " + known + ")");
    }
    try {
        nlohmann::json result = it->second(request->args);
        requests_.add();
        return encode_ok(result);
    } catch (const std::exception& e) {
        failed_requests_.add();
        return encode_error(e.what());
    }
}

}  // namespace ctsync::core::control
