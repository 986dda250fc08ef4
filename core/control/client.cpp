// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/control/client.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ctsync::core::control {
namespace {

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

Reply failure(std::string message) {
    Reply reply;
    reply.error = std::move(message);
    reply.transport_error = true;
    return reply;
}

}  // namespace

Reply call(const std::filesystem::path& socket, const Request& request, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket.string().size() >= sizeof(address.sun_path)) {
        return failure(fmt::format("control socket path '{}' is longer than {} bytes", socket.string(),
                                   sizeof(address.sun_path) - 1));
    }
    std::memcpy(address.sun_path, socket.c_str(), socket.string().size());
    Fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
    if (fd.fd < 0) {
        return failure(fmt::format("socket(): {}", std::strerror(errno)));
    }
    if (::connect(fd.fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 &&
        errno != EINPROGRESS) {
        return failure(fmt::format("cannot reach ctsyncd at '{}': {} (is it running with this config?)",
                                   socket.string(), std::strerror(errno)));
    }
    std::string out = encode_request(request);
    std::size_t sent = 0;
    while (sent < out.size()) {
        pollfd p{fd.fd, POLLOUT, 0};
        int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready <= 0) {
            return failure(
                fmt::format("timed out after {} ms sending to '{}'", timeout.count(), socket.string()));
        }
        ssize_t n = ::send(fd.fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return failure(fmt::format("send to '{}': {}", socket.string(), std::strerror(errno)));
        }
        sent += n > 0 ? static_cast<std::size_t>(n) : 0;
    }
    std::string in;
    char buffer[65536];
    // Replies (a full dump) may be far larger than requests; bound them generously but still bound them.
    constexpr std::size_t kMaxReply = 512u * 1024 * 1024;
    std::size_t newline = std::string::npos;
    while (newline == std::string::npos) {
        pollfd p{fd.fd, POLLIN, 0};
        int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready <= 0) {
            return failure(fmt::format("timed out after {} ms waiting for ctsyncd at '{}'", timeout.count(),
                                       socket.string()));
        }
        ssize_t n = ::recv(fd.fd, buffer, sizeof(buffer), 0);
        if (n == 0) {
            return failure(
                fmt::format("ctsyncd at '{}' closed the connection without a reply", socket.string()));
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            return failure(fmt::format("recv from '{}': {}", socket.string(), std::strerror(errno)));
        }
        const std::size_t searched = in.size();
        in.append(buffer, static_cast<std::size_t>(n));
        newline = in.find('\n', searched);  // only the new bytes: replies can be hundreds of MiB
        if (in.size() > kMaxReply) {
            return failure("reply larger than 512 MiB");
        }
    }
    in.resize(newline);
    nlohmann::json document = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded() || !document.is_object() || !document.contains("ok") ||
        !document["ok"].is_boolean()) {
        return failure("unreadable reply from ctsyncd");
    }
    Reply reply;
    reply.ok = document["ok"].get<bool>();
    if (reply.ok) {
        reply.result = document.value("result", nlohmann::json());
    } else {
        reply.error = document.value("error", std::string("unspecified error"));
    }
    return reply;
}

}  // namespace ctsync::core::control
