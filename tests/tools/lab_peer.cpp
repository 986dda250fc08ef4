// SPDX-License-Identifier: GPL-2.0-or-later
// lab-peer: the endpoints of lab traffic, run inside test namespaces.
//   lab-peer tcp-server PORT        accept forever; "220 ready" banner; answers PASV with 227 (FTP-like),
//                                   PORT with 200, anything else is echoed
//   lab-peer tcp-client HOST PORT [--send LINE]... [--hold-ms N] [--repeat N]
//                                   connect, send each line and wait for its answer, keep the connection open
//                                   for N ms, exit 0 when every answer came; --repeat: that many connections,
//                                   one after the other (short flows for benchmarks)
//   lab-peer udp-server PORT        echo datagrams forever
//   lab-peer udp-client HOST PORT   send one datagram, exit 0 when it is echoed (2 s)
//   lab-peer mcast-capture GROUP PORT IFACE FILE [--type N]
//                                   join an IPv4 group on IFACE, write the first datagram whose byte 5 is N
//                                   (a ctsync datagram type; any when absent) to FILE (10 s)
//   lab-peer mcast-send GROUP PORT IFACE FILE
//                                   send FILE's bytes as one datagram to the group, TTL 1, out of IFACE
// Every wait is bounded; the test kills servers by PID.
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

int fail(const std::string& what) {
    std::fprintf(stderr, "lab-peer: %s: %s\n", what.c_str(), std::strerror(errno));
    return 1;
}

addrinfo* resolve(const char* host, const char* port, int type, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = type;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    addrinfo* result = nullptr;
    if (getaddrinfo(host, port, &hints, &result) != 0) {
        return nullptr;
    }
    return result;
}

bool read_line(int fd, std::string& line, int timeout_ms) {
    line.clear();
    char c;
    while (true) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) {
            return false;
        }
        ssize_t n = recv(fd, &c, 1, 0);
        if (n <= 0) {
            return false;
        }
        if (c == '\n') {
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            return true;
        }
        line.push_back(c);
    }
}

void send_all(int fd, const std::string& s) {
    std::size_t sent = 0;
    while (sent < s.size()) {
        ssize_t n = send(fd, s.data() + sent, s.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            return;
        }
        sent += static_cast<std::size_t>(n);
    }
}

void serve(int fd) {
    send_all(fd, "220 ready\r\n");
    std::string line;
    while (read_line(fd, line, 600000)) {
        if (line.rfind("PASV", 0) == 0) {
            // The address of this server as the client reached it, port 10000 (39*256+16).
            sockaddr_in self{};
            socklen_t len = sizeof(self);
            getsockname(fd, reinterpret_cast<sockaddr*>(&self), &len);
            unsigned char* a = reinterpret_cast<unsigned char*>(&self.sin_addr);
            char reply[128];
            std::snprintf(reply, sizeof(reply), "227 Entering Passive Mode (%u,%u,%u,%u,39,16)\r\n", a[0],
                          a[1], a[2], a[3]);
            send_all(fd, reply);
        } else if (line.rfind("PORT", 0) == 0) {
            send_all(fd, "200 PORT command successful\r\n");
        } else {
            send_all(fd, line + "\r\n");
        }
    }
    close(fd);
}

int tcp_server(const char* port) {
    addrinfo* ai = resolve("::", port, SOCK_STREAM, true);
    if (ai == nullptr) {
        return fail("resolve");
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    int one = 1;
    int zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));  // v4 and v6 on one socket
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        return fail("bind/listen");
    }
    std::printf("listening\n");
    std::fflush(stdout);
    while (true) {
        int c = accept(fd, nullptr, nullptr);
        if (c >= 0) {
            std::thread(serve, c).detach();
        }
    }
}

int tcp_client(const char* host, const char* port, const std::vector<std::string>& lines, int hold_ms) {
    static addrinfo* ai = resolve(host, port, SOCK_STREAM, false);  // once: --repeat reuses it
    if (ai == nullptr) {
        return fail("resolve");
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        return fail("connect");
    }
    std::string answer;
    if (!read_line(fd, answer, 5000)) {
        return fail("banner");
    }
    for (const auto& line : lines) {
        send_all(fd, line + "\r\n");
        if (!read_line(fd, answer, 5000)) {
            return fail("answer to " + line);
        }
        if (std::getenv("LAB_PEER_QUIET") == nullptr) {
            std::printf("%s\n", answer.c_str());
        }
    }
    std::fflush(stdout);
    if (hold_ms > 0) {
        usleep(static_cast<useconds_t>(hold_ms) * 1000);
    }
    close(fd);
    return 0;
}

int udp_server(const char* port) {
    addrinfo* ai = resolve("::", port, SOCK_DGRAM, true);
    int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
    int zero = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        return fail("bind");
    }
    std::printf("listening\n");
    std::fflush(stdout);
    char buffer[2048];
    while (true) {
        sockaddr_storage from{};
        socklen_t len = sizeof(from);
        ssize_t n = recvfrom(fd, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n > 0) {
            sendto(fd, buffer, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
        }
    }
}

int udp_client(const char* host, const char* port) {
    addrinfo* ai = resolve(host, port, SOCK_DGRAM, false);
    if (ai == nullptr) {
        return fail("resolve");
    }
    int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 || send(fd, "ping", 4, 0) != 4) {
        return fail("send");
    }
    pollfd p{fd, POLLIN, 0};
    char buffer[16];
    if (poll(&p, 1, 2000) <= 0 || recv(fd, buffer, sizeof(buffer), 0) != 4) {
        return fail("no echo");
    }
    return 0;
}

int mcast_socket(const char* iface, in_addr& local) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ip_mreqn mreq{};
    mreq.imr_ifindex = static_cast<int>(if_nametoindex(iface));
    if (fd < 0 || mreq.imr_ifindex == 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface, static_cast<socklen_t>(std::strlen(iface)));
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq));
    int ttl = 1;
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
    local.s_addr = htonl(INADDR_ANY);
    return fd;
}

int mcast_capture(const char* group, const char* port, const char* iface, const char* file, int type) {
    in_addr any{};
    int fd = mcast_socket(iface, any);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::atoi(port)));
    inet_pton(AF_INET, group, &addr.sin_addr);
    ip_mreqn mreq{};
    mreq.imr_multiaddr = addr.sin_addr;
    mreq.imr_ifindex = static_cast<int>(if_nametoindex(iface));
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0) {
        return fail("join");
    }
    unsigned char buffer[65536];
    for (int i = 0; i < 10000; ++i) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) {
            return fail("nothing received");
        }
        ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
        if (n > 5 && (type < 0 || buffer[5] == type)) {
            FILE* out = std::fopen(file, "wb");
            if (out == nullptr ||
                std::fwrite(buffer, 1, static_cast<std::size_t>(n), out) != static_cast<std::size_t>(n)) {
                return fail("write");
            }
            std::fclose(out);
            return 0;
        }
    }
    return fail("no datagram of that type");
}

int mcast_send(const char* group, const char* port, const char* iface, const char* file) {
    in_addr any{};
    int fd = mcast_socket(iface, any);
    FILE* in = std::fopen(file, "rb");
    if (fd < 0 || in == nullptr) {
        return fail("open");
    }
    unsigned char buffer[65536];
    std::size_t n = std::fread(buffer, 1, sizeof(buffer), in);
    std::fclose(in);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::atoi(port)));
    inet_pton(AF_INET, group, &addr.sin_addr);
    if (sendto(fd, buffer, n, 0, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
        static_cast<ssize_t>(n)) {
        return fail("send");
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr,
                     "usage: lab-peer tcp-server|udp-server PORT | tcp-client|udp-client HOST PORT ...\n");
        return 2;
    }
    std::string mode = argv[1];
    if (mode == "tcp-server") {
        return tcp_server(argv[2]);
    }
    if (mode == "udp-server") {
        return udp_server(argv[2]);
    }
    if (argc < 4) {
        std::fprintf(stderr, "lab-peer: %s needs HOST PORT\n", mode.c_str());
        return 2;
    }
    if (mode == "udp-client") {
        return udp_client(argv[2], argv[3]);
    }
    if (mode == "mcast-capture" && argc >= 6) {
        const int type = argc >= 8 && std::strcmp(argv[6], "--type") == 0 ? std::atoi(argv[7]) : -1;
        return mcast_capture(argv[2], argv[3], argv[4], argv[5], type);
    }
    if (mode == "mcast-send" && argc >= 6) {
        return mcast_send(argv[2], argv[3], argv[4], argv[5]);
    }
    if (mode == "tcp-client") {
        std::vector<std::string> lines;
        int hold_ms = 0;
        int repeat = 1;
        for (int i = 4; i + 1 < argc; i += 2) {
            if (std::strcmp(argv[i], "--send") == 0) {
                lines.emplace_back(argv[i + 1]);
            } else if (std::strcmp(argv[i], "--hold-ms") == 0) {
                hold_ms = std::atoi(argv[i + 1]);
            } else if (std::strcmp(argv[i], "--repeat") == 0) {
                repeat = std::atoi(argv[i + 1]);
            } else {
                std::fprintf(stderr, "lab-peer: unknown option %s\n", argv[i]);
                return 2;
            }
        }
        for (int n = 0; n < repeat; ++n) {
            if (int rc = tcp_client(argv[2], argv[3], lines, hold_ms); rc != 0) {
                std::fprintf(stderr, "lab-peer: connection %d of %d failed\n", n + 1, repeat);
                return rc;
            }
        }
        return 0;
    }
    std::fprintf(stderr, "lab-peer: unknown mode %s\n", mode.c_str());
    return 2;
}
