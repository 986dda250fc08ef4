// SPDX-License-Identifier: GPL-2.0-or-later
// lab-peer: the endpoints of lab traffic, run inside test namespaces.
//   lab-peer tcp-server PORT [--stop-file FILE]
//                                   accept forever; "220 ready" banner; answers PASV with 227 (FTP-like),
//                                   PORT with 200, anything else is echoed; the client's end of file closes
//                                   the connection, except after "HALFCLOSE N": then "seq K" every N ms
//                                   until FILE exists (at most 300 s), then the close (a half-closed
//                                   connection: the client's direction is shut, the server's still sends)
//   lab-peer tcp-close HOST PORT --close-when FILE --until FILE [--halfclose-ms N] [--max-ms M]
//                                   one connection to tcp-server: "hello" echoed, (with --halfclose-ms:
//                                   "HALFCLOSE N"), then, once --close-when exists, shutdown(SHUT_WR) (the
//                                   FIN) and reads to the server's end of file: "seq K" lines checked in
//                                   order, gaps measured. Gives up 5 s after --until exists or after M ms
//                                   (default 180000). One JSON line; exit 0 on a clean end of file with
//                                   nothing lost and no error
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
//   lab-peer tcp-stream HOST PORT --interval-ms N --until FILE [--max-ms M] [--stall-ms S]
//                                   one connection to tcp-server (banner skipped): "seq K" every N ms, echoes
//                                   read and checked in order; TCP_INFO sampled every interval; stops sending
//                                   when FILE exists (or after M ms), then waits up to 5 s for the echoes
//                                   still due; an error on reset, end of file, or no echo for S ms (default
//                                   20000) while one is due; a full send buffer holds a line back to the
//                                   next interval ("sends_deferred"). One JSON line on stdout; exit 0 when
//                                   no error and nothing lost. A gap of 200 ms or more between echoes is
//                                   reported on stderr when it ends ({"event":"resumed",...}), for scripts
//                                   that wait.
//   lab-peer sctp-server PORT       tcp-server over SCTP (a one-to-one SOCK_STREAM socket, IPv4 and IPv6)
//   lab-peer sctp-stream HOST PORT --interval-ms N --until FILE [--max-ms M] [--stall-ms S]
//                                   tcp-stream over one SCTP association to sctp-server; "max_rto_ms" is the
//                                   primary path's RTO (SCTP_STATUS), "retrans" stays 0
//   lab-peer udp-stream-server PORT echo each datagram prefixed with the source it came from ("from A:P ")
//   lab-peer udp-stream HOST PORT --interval-ms N --until FILE [--max-ms M]
//                                   "seq K" every N ms to udp-stream-server; counts the echoes and records
//                                   every distinct source the server saw (a new one: the NAT mapping
//                                   changed); waits 1 s for late echoes after stopping; one JSON line
// Every wait is bounded; the test kills servers by PID.
#include <arpa/inet.h>
#include <linux/sctp.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
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

bool file_exists(const std::string& path) {
    return !path.empty() && ::access(path.c_str(), F_OK) == 0;
}

void serve(int fd, const std::string& stop_file) {
    send_all(fd, "220 ready\r\n");
    std::string line;
    int halfclose_ms = 0;
    while (read_line(fd, line, 600000)) {
        if (line.rfind("HALFCLOSE ", 0) == 0) {
            halfclose_ms = std::clamp(std::atoi(line.c_str() + 10), 1, 60000);
            send_all(fd, "ok halfclose\r\n");
        } else if (line.rfind("PASV", 0) == 0) {
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
    // The client's end of file (or a timeout): after HALFCLOSE the server's direction goes on.
    if (halfclose_ms > 0) {
        const auto start = std::chrono::steady_clock::now();
        for (long k = 0;
             !file_exists(stop_file) && std::chrono::steady_clock::now() - start < std::chrono::seconds(300);
             ++k) {
            send_all(fd, "seq " + std::to_string(k) + "\n");
            std::this_thread::sleep_for(std::chrono::milliseconds(halfclose_ms));
        }
    }
    close(fd);
}

// `protocol`: IPPROTO_TCP, or IPPROTO_SCTP for a one-to-one SCTP socket (SOCK_STREAM: one association per
// accepted socket, the same byte-stream calls).
int tcp_server(const char* port, const std::string& stop_file, int protocol) {
    addrinfo* ai = resolve("::", port, SOCK_STREAM, true);
    if (ai == nullptr) {
        return fail("resolve");
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, protocol);
    if (fd < 0) {
        return fail("socket");
    }
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
            std::thread(serve, c, stop_file).detach();
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

std::string format_source(const sockaddr_storage& from) {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (from.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(from);
        port = ntohs(a.sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
            inet_ntop(AF_INET, &a.sin6_addr.s6_addr[12], host, sizeof(host));
        } else {
            inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof(host));
        }
    } else if (from.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(from);
        port = ntohs(a.sin_port);
        inet_ntop(AF_INET, &a.sin_addr, host, sizeof(host));
    }
    return std::string(host) + ":" + std::to_string(port);
}

// Echoes every datagram; with `tell_source`, prefixed with the source it came from ("from A:P "), so that the
// client sees which NAT binding the server saw (udp-stream-server).
int udp_echo(const char* port, bool tell_source) {
    addrinfo* ai = resolve("::", port, SOCK_DGRAM, true);
    if (ai == nullptr) {
        return fail("resolve");
    }
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
        if (n <= 0) {
            continue;
        }
        std::string reply(buffer, static_cast<std::size_t>(n));
        if (tell_source) {
            reply = "from " + format_source(from) + " " + reply;
        }
        sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
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

// A DNS-like burst: `count` one-shot queries, each from a fresh socket bound to its own source port (30000 +
// i: a new flow each, never a reused ephemeral port that would fold two queries into one entry), each
// waiting up to 1 s for its answer. Prints {"proto":"udp-burst","sent":N,"answered":M}; exit 0 when all
// were answered.
int udp_burst(const char* host, const char* port, int count) {
    addrinfo* ai = resolve(host, port, SOCK_DGRAM, false);
    if (ai == nullptr) {
        return fail("resolve");
    }
    int answered = 0;
    int sent = 0;
    for (int i = 0; i < count; ++i) {
        const int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
        if (fd < 0) {
            return fail("socket");
        }
        sockaddr_storage local{};
        local.ss_family = static_cast<sa_family_t>(ai->ai_family);
        const auto source_port = htons(static_cast<std::uint16_t>(30000 + i % 30000));
        if (ai->ai_family == AF_INET6) {
            reinterpret_cast<sockaddr_in6&>(local).sin6_port = source_port;
        } else {
            reinterpret_cast<sockaddr_in&>(local).sin_port = source_port;
        }
        const int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, reinterpret_cast<const sockaddr*>(&local),
                 ai->ai_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in)) != 0) {
            close(fd);
            return fail("bind");
        }
        const std::string query = "query " + std::to_string(i);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            send(fd, query.data(), query.size(), 0) == static_cast<ssize_t>(query.size())) {
            ++sent;
            pollfd p{fd, POLLIN, 0};
            char buffer[64];
            if (poll(&p, 1, 1000) > 0 &&
                recv(fd, buffer, sizeof(buffer), 0) == static_cast<ssize_t>(query.size())) {
                ++answered;
            }
        }
        close(fd);
    }
    std::printf("{\"proto\":\"udp-burst\",\"sent\":%d,\"answered\":%d}\n", sent, answered);
    return answered == count ? 0 : 1;
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

// ---- streams: a long-lived connection (or UDP session) through the firewall pair, measured ----

using Clock = std::chrono::steady_clock;

std::int64_t epoch_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

std::string json_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
            out += buf;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

struct StreamOptions {
    int interval_ms = 20;
    std::string until;
    std::int64_t max_ms = 0;  // 0: no limit but the file
    std::int64_t stall_ms = 20000;
};

// Parses "--interval-ms N --until FILE [--max-ms M] [--stall-ms S]" from argv[first..].
bool parse_stream_options(int argc, char** argv, int first, StreamOptions& o, bool allow_stall) {
    for (int i = first; i < argc; i += 2) {
        if (i + 1 >= argc) {
            std::fprintf(stderr, "lab-peer: %s needs a value\n", argv[i]);
            return false;
        }
        const std::string key = argv[i];
        if (key == "--interval-ms") {
            o.interval_ms = std::atoi(argv[i + 1]);
        } else if (key == "--until") {
            o.until = argv[i + 1];
        } else if (key == "--max-ms") {
            o.max_ms = std::atoll(argv[i + 1]);
        } else if (key == "--stall-ms" && allow_stall) {
            o.stall_ms = std::atoll(argv[i + 1]);
        } else {
            std::fprintf(stderr, "lab-peer: unknown option %s\n", argv[i]);
            return false;
        }
    }
    if (o.interval_ms < 1 || o.interval_ms > 60000 || o.stall_ms < 100) {
        std::fprintf(stderr, "lab-peer: --interval-ms must be 1..60000 and --stall-ms at least 100\n");
        return false;
    }
    if (o.until.empty() && o.max_ms <= 0) {
        std::fprintf(stderr, "lab-peer: a stream needs --until FILE or --max-ms M\n");
        return false;
    }
    return true;
}

// Gaps between consecutive echo arrivals.
struct GapMeter {
    Clock::time_point start = Clock::now();
    std::int64_t start_epoch = epoch_ms();
    bool any = false;
    Clock::time_point last{};
    std::int64_t last_epoch = 0;
    std::int64_t max_gap = 0;
    std::int64_t gap_at = 0;        // ms from the start to the beginning of the largest gap
    std::int64_t gap_at_epoch = 0;  // the same, wall clock (ms since 1970), to compare with a script's clock

    void arrival() {
        const auto now = Clock::now();
        const auto now_epoch = epoch_ms();
        if (any) {
            const auto gap = ms_between(last, now);
            if (gap > max_gap) {
                max_gap = gap;
                gap_at = ms_between(start, last);
                gap_at_epoch = last_epoch;
            }
            if (gap >= 200) {
                std::fprintf(stderr, "{\"event\":\"resumed\",\"gap_ms\":%lld,\"at_epoch_ms\":%lld}\n",
                             static_cast<long long>(gap), static_cast<long long>(now_epoch));
                std::fflush(stderr);
            }
        }
        any = true;
        last = now;
        last_epoch = now_epoch;
    }
    // The stream ended with echoes still due: the time from the last echo (or the start) to the moment
    // sending stopped is a gap too, the one that never closed.
    void unfinished(Clock::time_point stopped) {
        const auto from = any ? last : start;
        const auto gap = ms_between(from, stopped);
        if (gap > max_gap) {
            max_gap = gap;
            gap_at = ms_between(start, from);
            gap_at_epoch = any ? last_epoch : start_epoch;
        }
    }
    std::string json() const {
        char buf[256];
        std::snprintf(
            buf, sizeof(buf),
            "\"max_gap_ms\":%lld,\"gap_at_ms\":%lld,\"gap_at_epoch_ms\":%lld,\"start_epoch_ms\":%lld,"
            "\"last_echo_epoch_ms\":%lld",
            static_cast<long long>(max_gap), static_cast<long long>(gap_at),
            static_cast<long long>(gap_at_epoch), static_cast<long long>(start_epoch),
            static_cast<long long>(last_epoch));
        return buf;
    }
};

int tcp_stream(const char* host, const char* port, const StreamOptions& o, int protocol) {
    const bool sctp = protocol == IPPROTO_SCTP;
    std::int64_t sent = 0;
    std::int64_t echoed = 0;
    std::int64_t max_rto_ms = 0;
    std::int64_t retrans = 0;
    std::int64_t sends_deferred = 0;  // lines held back for an interval by a full send buffer
    std::string error;
    GapMeter gaps;
    auto report = [&] {
        std::printf(
            "{\"proto\":\"%s\",\"sent\":%lld,\"echoed\":%lld,\"lost\":%lld,%s,\"max_rto_ms\":%lld,"
            "\"retrans\":%lld,\"sends_deferred\":%lld,\"error\":\"%s\"}\n",
            sctp ? "sctp" : "tcp", static_cast<long long>(sent), static_cast<long long>(echoed),
            static_cast<long long>(sent - echoed), gaps.json().c_str(), static_cast<long long>(max_rto_ms),
            static_cast<long long>(retrans), static_cast<long long>(sends_deferred),
            json_escape(error).c_str());
        std::fflush(stdout);
        return error.empty() && sent == echoed ? 0 : 1;
    };

    addrinfo* ai = resolve(host, port, SOCK_STREAM, false);
    if (ai == nullptr) {
        error = "cannot resolve host";
        return report();
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, protocol);
    if (fd < 0) {
        error = std::string("socket: ") + std::strerror(errno);
        return report();
    }
    int one = 1;
    if (sctp) {
        setsockopt(fd, IPPROTO_SCTP, SCTP_NODELAY, &one, sizeof(one));
    } else {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        error = std::string("connect: ") + std::strerror(errno);
        return report();
    }
    pollfd cp{fd, POLLOUT, 0};
    int soerr = 0;
    socklen_t soerr_len = sizeof(soerr);
    if (poll(&cp, 1, 5000) <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &soerr_len) != 0 ||
        soerr != 0) {
        error = std::string("connect: ") + (soerr != 0 ? std::strerror(soerr) : "timed out after 5 s");
        return report();
    }

    std::string inbuf;
    bool banner = false;
    bool stopping = false;
    auto next_send = Clock::now();
    Clock::time_point stop_at{};
    auto last_progress = Clock::now();  // the last echo, or the moment an echo became due
    auto sample_info = [&] {
        if (sctp) {  // the primary path's retransmission timeout (ms); SCTP has no retransmission total
            sctp_status status{};
            socklen_t len = sizeof(status);
            if (getsockopt(fd, IPPROTO_SCTP, SCTP_STATUS, &status, &len) == 0) {
                max_rto_ms = std::max<std::int64_t>(max_rto_ms, status.sstat_primary.spinfo_rto);
            }
            return;
        }
        tcp_info info{};
        socklen_t len = sizeof(info);
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0) {
            max_rto_ms = std::max<std::int64_t>(max_rto_ms, info.tcpi_rto / 1000);
            retrans = std::max<std::int64_t>(retrans, info.tcpi_total_retrans);
        }
    };
    while (true) {
        const auto now = Clock::now();
        if (!stopping &&
            (file_exists(o.until) || (o.max_ms > 0 && ms_between(gaps.start, now) >= o.max_ms))) {
            stopping = true;
            stop_at = now;
        }
        if (stopping && (echoed == sent || ms_between(stop_at, now) >= 5000)) {
            break;
        }
        if (echoed < sent && ms_between(last_progress, now) >= o.stall_ms) {
            error = "no echo for " + std::to_string(o.stall_ms) + " ms";
            break;
        }
        if (!stopping && banner && now >= next_send) {
            if (echoed == sent) {
                last_progress = now;  // an echo is due from now on
            }
            const std::string line = "seq " + std::to_string(sent) + "\n";
            // Lines are tiny; TCP's send buffer holds many seconds of them while the path is down. SCTP's
            // fills sooner (each line is a chunk of its own): a full buffer holds the line back until the
            // next interval, as a blocking writer would wait; the stall check above ends a path that never
            // comes back.
            const ssize_t n = send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                ++sends_deferred;
            } else if (n != static_cast<ssize_t>(line.size())) {
                error = n < 0 ? std::string("send: ") + std::strerror(errno) : "send: short write";
                break;
            } else {
                ++sent;
                sample_info();
            }
            next_send += std::chrono::milliseconds(o.interval_ms);
            if (next_send < now) {
                next_send = now + std::chrono::milliseconds(o.interval_ms);
            }
        }
        int wait_ms = static_cast<int>(std::max<std::int64_t>(0, ms_between(Clock::now(), next_send)));
        if (stopping || !banner) {
            wait_ms = 20;
        }
        pollfd p{fd, POLLIN, 0};
        const int r = poll(&p, 1, std::min(wait_ms, 20));
        if (r < 0 && errno != EINTR) {
            error = std::string("poll: ") + std::strerror(errno);
            break;
        }
        if (r <= 0) {
            if (!banner && ms_between(gaps.start, Clock::now()) >= 5000) {
                error = "no banner within 5 s";
                break;
            }
            continue;
        }
        char buffer[4096];
        const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
        if (n == 0) {
            error = "connection closed by the peer (EOF)";
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            error = errno == ECONNRESET ? "connection reset" : std::string("recv: ") + std::strerror(errno);
            break;
        }
        inbuf.append(buffer, static_cast<std::size_t>(n));
        for (auto nl = inbuf.find('\n'); nl != std::string::npos; nl = inbuf.find('\n')) {
            std::string line = inbuf.substr(0, nl);
            inbuf.erase(0, nl + 1);
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            if (!banner) {
                banner = true;  // "220 ready"
                next_send = Clock::now();
                continue;
            }
            const std::string want = "seq " + std::to_string(echoed);
            if (line != want) {
                error = "echo out of order: got '" + line + "', expected '" + want + "'";
                break;
            }
            ++echoed;
            last_progress = Clock::now();
            gaps.arrival();
        }
        if (!error.empty()) {
            break;
        }
    }
    sample_info();
    close(fd);
    if (echoed < sent) {
        gaps.unfinished(stopping ? stop_at : Clock::now());
    }
    return report();
}

int udp_stream(const char* host, const char* port, const StreamOptions& o) {
    std::int64_t sent = 0;
    std::int64_t echoed = 0;
    std::int64_t send_errors = 0;
    std::set<std::int64_t> seen;
    std::vector<std::string> mappings;  // in the order they first appeared
    std::string error;
    GapMeter gaps;
    auto report = [&] {
        std::string list;
        for (const auto& m : mappings) {
            list += (list.empty() ? "\"" : ",\"") + json_escape(m) + "\"";
        }
        std::printf(
            "{\"proto\":\"udp\",\"sent\":%lld,\"echoed\":%lld,\"lost\":%lld,%s,\"mappings\":[%s],"
            "\"send_errors\":%lld,\"error\":\"%s\"}\n",
            static_cast<long long>(sent), static_cast<long long>(echoed),
            static_cast<long long>(sent - echoed), gaps.json().c_str(), list.c_str(),
            static_cast<long long>(send_errors), json_escape(error).c_str());
        std::fflush(stdout);
        return error.empty() && sent == echoed && mappings.size() == 1 ? 0 : 1;
    };
    addrinfo* ai = resolve(host, port, SOCK_DGRAM, false);
    if (ai == nullptr) {
        error = "cannot resolve host";
        return report();
    }
    int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        error = std::string("connect: ") + std::strerror(errno);
        return report();
    }
    bool stopping = false;
    Clock::time_point stop_at{};
    auto next_send = Clock::now();
    while (true) {
        const auto now = Clock::now();
        if (!stopping &&
            (file_exists(o.until) || (o.max_ms > 0 && ms_between(gaps.start, now) >= o.max_ms))) {
            stopping = true;
            stop_at = now;
        }
        if (stopping && (echoed == sent || ms_between(stop_at, now) >= 1000)) {
            break;
        }
        if (!stopping && now >= next_send) {
            const std::string payload = "seq " + std::to_string(sent);
            // ICMP errors (no route, port unreachable) surface here; the session goes on, as a real one
            // would.
            if (send(fd, payload.data(), payload.size(), MSG_DONTWAIT) < 0) {
                ++send_errors;
            }
            ++sent;
            next_send += std::chrono::milliseconds(o.interval_ms);
            if (next_send < now) {
                next_send = now + std::chrono::milliseconds(o.interval_ms);
            }
        }
        const int wait_ms =
            stopping ? 20 : static_cast<int>(std::max<std::int64_t>(0, ms_between(Clock::now(), next_send)));
        pollfd p{fd, POLLIN, 0};
        const int r = poll(&p, 1, std::min(wait_ms, 20));
        if (r <= 0) {
            continue;
        }
        char buffer[2048];
        const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
        if (n <= 0) {
            continue;  // a queued ICMP error, or nothing
        }
        // "from A:P seq K"
        const std::string reply(buffer, static_cast<std::size_t>(n));
        const auto seq = reply.rfind(" seq ");
        if (reply.rfind("from ", 0) != 0 || seq == std::string::npos || seq < 5) {
            continue;
        }
        const std::string source = reply.substr(5, seq - 5);
        const std::int64_t k = std::atoll(reply.c_str() + seq + 5);
        if (std::find(mappings.begin(), mappings.end(), source) == mappings.end()) {
            mappings.push_back(source);
        }
        if (k >= 0 && k < sent && seen.insert(k).second) {
            ++echoed;
            gaps.arrival();
        }
    }
    close(fd);
    if (gaps.any ? ms_between(gaps.last, stop_at) > 2 * o.interval_ms + 100 : sent > 0) {
        gaps.unfinished(stop_at);  // nothing came back in the end: the session did not recover
    }
    return report();
}

// ---- a closing connection: the client's FIN, then the server's direction to its end of file ----

struct CloseOptions {
    std::string close_when;
    std::string until;
    int halfclose_ms = 0;
    std::int64_t max_ms = 180000;
};

int tcp_close(const char* host, const char* port, const CloseOptions& o) {
    std::string error;
    std::int64_t lines = 0;
    std::int64_t lost = 0;
    std::int64_t next_seq = 0;
    std::int64_t fin_epoch = 0;
    std::int64_t eof_epoch = 0;
    GapMeter gaps;
    auto report = [&] {
        std::printf(
            "{\"proto\":\"tcp-close\",\"halfclose\":%s,\"lines\":%lld,\"lost\":%lld,%s,\"fin_epoch_ms\":%lld,"
            "\"eof_epoch_ms\":%lld,\"error\":\"%s\"}\n",
            o.halfclose_ms > 0 ? "true" : "false", static_cast<long long>(lines),
            static_cast<long long>(lost), gaps.json().c_str(), static_cast<long long>(fin_epoch),
            static_cast<long long>(eof_epoch), json_escape(error).c_str());
        std::fflush(stdout);
        return error.empty() && eof_epoch > 0 && lost == 0 ? 0 : 1;
    };
    addrinfo* ai = resolve(host, port, SOCK_STREAM, false);
    if (ai == nullptr) {
        error = "cannot resolve host";
        return report();
    }
    const int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        error = std::string("connect: ") + std::strerror(errno);
        return report();
    }
    std::string answer;
    if (!read_line(fd, answer, 5000)) {
        error = "no banner";
        return report();
    }
    send_all(fd, "hello\r\n");
    if (!read_line(fd, answer, 5000) || answer != "hello") {
        error = "no echo of hello";
        return report();
    }
    if (o.halfclose_ms > 0) {
        send_all(fd, "HALFCLOSE " + std::to_string(o.halfclose_ms) + "\r\n");
        if (!read_line(fd, answer, 5000) || answer != "ok halfclose") {
            error = "the server did not accept HALFCLOSE";
            return report();
        }
    }
    const auto start = Clock::now();
    auto expired = [&] { return ms_between(start, Clock::now()) >= o.max_ms; };
    while (!file_exists(o.close_when) && !file_exists(o.until) && !expired()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!file_exists(o.close_when)) {
        error = "never told to close";
        return report();
    }
    shutdown(fd, SHUT_WR);
    fin_epoch = epoch_ms();
    std::string inbuf;
    Clock::time_point stop_at{};
    while (true) {
        const auto now = Clock::now();
        if (stop_at == Clock::time_point{} && file_exists(o.until)) {
            stop_at = now;
        }
        if ((stop_at != Clock::time_point{} && ms_between(stop_at, now) >= 5000) || expired()) {
            error = "no end of file from the server";
            break;
        }
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0) {
            continue;
        }
        char buffer[2048];
        const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
        if (n == 0) {
            eof_epoch = epoch_ms();
            break;
        }
        if (n < 0) {
            error = std::string("recv: ") + std::strerror(errno);
            break;
        }
        inbuf.append(buffer, static_cast<std::size_t>(n));
        for (auto eol = inbuf.find('\n'); eol != std::string::npos; eol = inbuf.find('\n')) {
            const std::string line = inbuf.substr(0, eol);
            inbuf.erase(0, eol + 1);
            if (line.rfind("seq ", 0) != 0) {
                error = "unexpected line: " + line;
                break;
            }
            const std::int64_t k = std::atoll(line.c_str() + 4);
            if (k != next_seq) {
                lost += std::max<std::int64_t>(0, k - next_seq);
            }
            next_seq = k + 1;
            ++lines;
            gaps.arrival();
        }
        if (!error.empty()) {
            break;
        }
    }
    close(fd);
    return report();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr,
                     "usage: lab-peer tcp-server|sctp-server|udp-server|udp-stream-server PORT | "
                     "tcp-client|udp-client|tcp-stream|sctp-stream|udp-stream|tcp-close HOST PORT ... | "
                     "udp-burst HOST "
                     "PORT COUNT\n");
        return 2;
    }
    std::string mode = argv[1];
    if (mode == "tcp-server") {
        std::string stop_file;
        if (argc == 5 && std::strcmp(argv[3], "--stop-file") == 0) {
            stop_file = argv[4];
        } else if (argc != 3) {
            std::fprintf(stderr, "lab-peer: tcp-server PORT [--stop-file FILE]\n");
            return 2;
        }
        return tcp_server(argv[2], stop_file, IPPROTO_TCP);
    }
    if (mode == "sctp-server") {
        return tcp_server(argv[2], "", IPPROTO_SCTP);
    }
    if (mode == "udp-server") {
        return udp_echo(argv[2], false);
    }
    if (mode == "udp-stream-server") {
        return udp_echo(argv[2], true);
    }
    if (argc < 4) {
        std::fprintf(stderr, "lab-peer: %s needs HOST PORT\n", mode.c_str());
        return 2;
    }
    if (mode == "udp-client") {
        return udp_client(argv[2], argv[3]);
    }
    if (mode == "udp-burst") {
        const int count = argc >= 5 ? std::atoi(argv[4]) : 0;
        if (count <= 0 || count > 100000) {
            std::fprintf(stderr, "lab-peer: udp-burst HOST PORT COUNT (1-100000)\n");
            return 2;
        }
        return udp_burst(argv[2], argv[3], count);
    }
    if (mode == "tcp-stream" || mode == "sctp-stream" || mode == "udp-stream") {
        StreamOptions options;
        if (!parse_stream_options(argc, argv, 4, options, mode != "udp-stream")) {
            return 2;
        }
        if (mode == "udp-stream") {
            return udp_stream(argv[2], argv[3], options);
        }
        return tcp_stream(argv[2], argv[3], options, mode == "tcp-stream" ? IPPROTO_TCP : IPPROTO_SCTP);
    }
    if (mode == "tcp-close") {
        CloseOptions options;
        for (int i = 4; i < argc; i += 2) {
            const std::string key = argv[i];
            const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
            if (value == nullptr) {
                std::fprintf(stderr, "lab-peer: %s needs a value\n", key.c_str());
                return 2;
            }
            if (key == "--close-when") {
                options.close_when = value;
            } else if (key == "--until") {
                options.until = value;
            } else if (key == "--halfclose-ms") {
                options.halfclose_ms = std::atoi(value);
            } else if (key == "--max-ms") {
                options.max_ms = std::atoll(value);
            } else {
                std::fprintf(stderr, "lab-peer: unknown option %s\n", key.c_str());
                return 2;
            }
        }
        if (options.close_when.empty() || options.until.empty() || options.halfclose_ms < 0 ||
            options.halfclose_ms > 60000 || options.max_ms <= 0) {
            std::fprintf(stderr,
                         "lab-peer: tcp-close HOST PORT --close-when FILE --until FILE "
                         "[--halfclose-ms 1-60000] [--max-ms M]\n");
            return 2;
        }
        return tcp_close(argv[2], argv[3], options);
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
