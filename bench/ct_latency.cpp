// SPDX-License-Identifier: GPL-2.0-or-later
// ct-latency: replication latency, from a conntrack entry created in one network namespace (the primary's
// kernel) to the conntrack NEW event for the same original tuple in another (a backup that writes what it
// receives into its kernel: warm standby). Two threads, each setns()'d into its namespace (CLONE_NEWNET is
// per thread): a listener on the NEW event group in the backup's namespace, started first, and a writer that
// creates entries one at a time at a paced rate in the primary's namespace, each acknowledged before the
// next. Both stamp CLOCK_MONOTONIC (one clock for every namespace): before the create request, on the receive
// that brought the event. Like ct-inject, independent of ctsync's own code.
//
//   ct-latency --from NS --to NS [--count N] [--rate PER_S] [--first K] [--wait-ms MS] [--timeout S]
//
// NS: a name under /run/netns (ip netns) or a path to a namespace file. Entry i (from K): TCP ESTABLISHED
// 203.0.113.200:(1024 + i % 60000) -> 198.51.100.20:(443 + i / 60000), no NAT, timeout 300 s (apart from
// ct-inject's entries). Defaults: 2000 entries at 500/s, wait up to 5000 ms after the last one for the
// stragglers, 60 s in all at most (then it reports what it has). Prints one line of key=value pairs:
//   ct-latency: sent= errors= received= lost= overruns= min_us= p50_us= p90_us= p99_us= max_us= mean_us=
//   rate=
// received counts distinct entries seen on the other side; lost = sent - received; overruns counts ENOBUFS on
// the listener (events the kernel dropped: their entries count as lost, not as late). Exit codes: 0 measured,
// 1 nothing arrived or a netlink error, 2 usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <poll.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr long kPortsPerHost = 60000;
constexpr long kMaxCount = kPortsPerHost * 10;

struct Options {
    std::string from;
    std::string to;
    long count = 2000;
    double rate = 500;
    long first = 0;
    long wait_ms = 5000;
    long timeout_s = 60;
};

std::int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::uint32_t v4(int a, int b, int c, int d) {
    return htonl(static_cast<std::uint32_t>((a << 24) | (b << 16) | (c << 8) | d));
}
const std::uint32_t kSrc = v4(203, 0, 113, 200);
const std::uint32_t kDst = v4(198, 51, 100, 20);

std::uint16_t sport(long i) {
    return static_cast<std::uint16_t>(1024 + i % kPortsPerHost);
}
std::uint16_t dport(long i) {
    return static_cast<std::uint16_t>(443 + i / kPortsPerHost);
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "ct-latency: %s\nusage: ct-latency --from NS --to NS [--count N] [--rate PER_S] [--first K] "
                 "[--wait-ms MS] [--timeout S]\n  NS: a name in /run/netns or a namespace path; creates N "
                 "entries in --from, times their NEW events in --to\n",
                 why);
    std::exit(2);
}

std::string ns_path(const std::string& ns) {
    return ns.find('/') == std::string::npos ? "/run/netns/" + ns : ns;
}

// Moves the calling thread into a network namespace; a message on failure.
bool enter(const std::string& ns, std::string& error) {
    const std::string path = ns_path(ns);
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = "cannot open " + path + ": " + std::strerror(errno);
        return false;
    }
    const int r = setns(fd, CLONE_NEWNET);
    const int saved = errno;
    close(fd);
    if (r != 0) {
        error = "setns " + path + ": " + std::strerror(saved);
        return false;
    }
    return true;
}

struct Shared {
    Options o;
    std::vector<std::int64_t> created;  // written by the writer only
    std::vector<std::int64_t> arrived;  // written by the listener only; 0 = not yet
    std::atomic<long> received{0};
    std::atomic<long> overruns{0};
    std::atomic<long> errors{0};
    std::atomic<long> sent{0};
    std::atomic<bool> listener_ready{false};
    std::atomic<bool> stop_listener{false};
    std::atomic<bool> stop_writer{false};
    std::string listener_error;  // set before listener_ready/exit
    std::string writer_error;
};

void listen(Shared& s) {
    std::string error;
    if (!enter(s.o.to, error)) {
        s.listener_error = error;
        s.listener_ready = true;
        return;
    }
    mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
    if (nl == nullptr || mnl_socket_bind(nl, NF_NETLINK_CONNTRACK_NEW, MNL_SOCKET_AUTOPID) < 0) {
        s.listener_error = std::string("netlink event socket: ") + std::strerror(errno);
        if (nl != nullptr) {
            mnl_socket_close(nl);
        }
        s.listener_ready = true;
        return;
    }
    const int fd = mnl_socket_get_fd(nl);
    int bytes = 64 << 20;  // the backup also writes whatever else it receives: room for bursts
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
    }
    s.listener_ready = true;
    std::vector<char> buffer(1 << 20);
    nf_conntrack* ct = nfct_new();
    while (!s.stop_listener) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0) {
            continue;
        }
        const ssize_t n = recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
        const std::int64_t t = now_ns();
        if (n < 0) {
            if (errno == ENOBUFS) {
                ++s.overruns;
            }
            continue;
        }
        int remaining = static_cast<int>(n);
        for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer.data()); mnl_nlmsg_ok(nlh, remaining);
             nlh = mnl_nlmsg_next(nlh, &remaining)) {
            if ((nlh->nlmsg_type & 0xff) != IPCTNL_MSG_CT_NEW ||
                (nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) {
                continue;
            }
            if (nfct_nlmsg_parse(nlh, ct) < 0) {
                continue;
            }
            if (nfct_get_attr_u8(ct, ATTR_L3PROTO) != AF_INET ||
                nfct_get_attr_u8(ct, ATTR_L4PROTO) != IPPROTO_TCP ||
                nfct_get_attr_u32(ct, ATTR_IPV4_SRC) != kSrc ||
                nfct_get_attr_u32(ct, ATTR_IPV4_DST) != kDst) {
                continue;
            }
            const long sp = ntohs(nfct_get_attr_u16(ct, ATTR_PORT_SRC));
            const long dp = ntohs(nfct_get_attr_u16(ct, ATTR_PORT_DST));
            const long i = (dp - 443) * kPortsPerHost + (sp - 1024);
            const long slot = i - s.o.first;
            if (sp < 1024 || dp < 443 || slot < 0 || slot >= s.o.count) {
                continue;
            }
            if (s.arrived[static_cast<std::size_t>(slot)] == 0) {
                s.arrived[static_cast<std::size_t>(slot)] = t;
                ++s.received;
            }
        }
    }
    nfct_destroy(ct);
    mnl_socket_close(nl);
}

void write_entries(Shared& s) {
    std::string error;
    if (!enter(s.o.from, error)) {
        s.writer_error = error;
        return;
    }
    mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
    if (nl == nullptr || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        s.writer_error = std::string("netlink socket: ") + std::strerror(errno);
        if (nl != nullptr) {
            mnl_socket_close(nl);
        }
        return;
    }
    const int fd = mnl_socket_get_fd(nl);
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    timeval tv{2, 0};  // an acknowledgement never takes this long; bounded anyway
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
    std::vector<char> reply(MNL_SOCKET_BUFFER_SIZE);
    const std::int64_t start = now_ns();
    const double period_ns = 1e9 / s.o.rate;
    for (long k = 0; k < s.o.count && !s.stop_writer; ++k) {
        const std::int64_t due =
            start + static_cast<std::int64_t>(std::llround(period_ns * static_cast<double>(k)));
        timespec ts{static_cast<time_t>(due / 1000000000), static_cast<long>(due % 1000000000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        }
        const long i = s.o.first + k;
        nf_conntrack* ct = nfct_new();
        nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
        nfct_set_attr_u8(ct, ATTR_L4PROTO, IPPROTO_TCP);
        nfct_set_attr_u32(ct, ATTR_IPV4_SRC, kSrc);
        nfct_set_attr_u32(ct, ATTR_IPV4_DST, kDst);
        nfct_set_attr_u16(ct, ATTR_PORT_SRC, htons(sport(i)));
        nfct_set_attr_u16(ct, ATTR_PORT_DST, htons(dport(i)));
        nfct_setobjopt(ct, NFCT_SOPT_SETUP_REPLY);
        nfct_set_attr_u8(ct, ATTR_TCP_STATE, 3);  // ESTABLISHED
        nfct_set_attr_u32(ct, ATTR_TIMEOUT, 300);
        nfct_set_attr_u32(ct, ATTR_STATUS, IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED);
        nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
        nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
        nlh->nlmsg_seq = static_cast<std::uint32_t>(k + 1);
        auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
        nfg->nfgen_family = AF_INET;
        nfg->version = NFNETLINK_V0;
        nfg->res_id = 0;
        nfct_nlmsg_build(nlh, ct);
        nfct_destroy(ct);
        s.created[static_cast<std::size_t>(k)] = now_ns();
        if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
            s.writer_error = std::string("sendmsg: ") + std::strerror(errno);
            break;
        }
        ++s.sent;
        const ssize_t n = mnl_socket_recvfrom(nl, reply.data(), reply.size());
        if (n < 0) {
            s.writer_error = std::string("no acknowledgement: ") + std::strerror(errno);
            break;
        }
        const auto* r = reinterpret_cast<const nlmsghdr*>(reply.data());
        if (r->nlmsg_type == NLMSG_ERROR) {
            const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(r));
            if (err->error != 0) {
                ++s.errors;
                s.created[static_cast<std::size_t>(k)] = 0;  // not created (EEXIST: a leftover): not timed
                if (s.errors == 1) {
                    std::fprintf(stderr, "ct-latency: create failed: %s (further failures only counted)\n",
                                 std::strerror(-err->error));
                }
            }
        }
    }
    mnl_socket_close(nl);
}

double percentile(const std::vector<double>& sorted, double p) {
    // nearest rank
    const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
    return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace

int main(int argc, char** argv) {
    Shared s;
    Options& o = s.o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage((a + " needs a value").c_str());
            }
            return argv[++i];
        };
        auto number = [&](double lo, double hi) {
            const std::string v = value();
            char* end = nullptr;
            const double d = std::strtod(v.c_str(), &end);
            if (v.empty() || *end != '\0' || !(d >= lo && d <= hi)) {
                usage((a + " must be a number in [" + std::to_string(static_cast<long>(lo)) + ", " +
                       std::to_string(static_cast<long>(hi)) + "], not '" + v + "'")
                          .c_str());
            }
            return d;
        };
        if (a == "--from") {
            o.from = value();
        } else if (a == "--to") {
            o.to = value();
        } else if (a == "--count") {
            o.count = static_cast<long>(number(1, static_cast<double>(kMaxCount)));
        } else if (a == "--rate") {
            o.rate = number(1, 1000000);
        } else if (a == "--first") {
            o.first = static_cast<long>(number(0, static_cast<double>(kMaxCount)));
        } else if (a == "--wait-ms") {
            o.wait_ms = static_cast<long>(number(0, 600000));
        } else if (a == "--timeout") {
            o.timeout_s = static_cast<long>(number(1, 3600));
        } else if (a == "-h" || a == "--help") {
            usage("measures replication latency between two network namespaces");
        } else {
            usage(("unknown argument '" + a + "'").c_str());
        }
    }
    if (o.from.empty() || o.to.empty()) {
        usage("--from and --to are required");
    }
    if (o.first + o.count > kMaxCount) {
        usage("--first + --count must not exceed 600000");
    }
    s.created.assign(static_cast<std::size_t>(o.count), 0);
    s.arrived.assign(static_cast<std::size_t>(o.count), 0);
    const std::int64_t deadline = now_ns() + static_cast<std::int64_t>(o.timeout_s) * 1000000000;

    std::thread listener([&] { listen(s); });
    while (!s.listener_ready) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!s.listener_error.empty()) {
        listener.join();
        std::fprintf(stderr, "ct-latency: listener in %s: %s\n", o.to.c_str(), s.listener_error.c_str());
        return 1;
    }
    std::atomic<bool> writer_done{false};
    std::thread writer([&] {
        write_entries(s);
        writer_done = true;
    });
    bool timed_out = false;
    while (!writer_done) {
        if (now_ns() >= deadline) {
            s.stop_writer = true;
            timed_out = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    writer.join();
    // Stragglers: until everything created arrived, wait_ms passed, or the overall deadline.
    const std::int64_t wait_end = std::min(deadline, now_ns() + o.wait_ms * 1000000);
    const long expected = s.sent - s.errors;
    while (s.received < expected && now_ns() < wait_end) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (now_ns() >= deadline && s.received < expected) {
        timed_out = true;
    }
    s.stop_listener = true;
    listener.join();
    if (!s.writer_error.empty()) {
        std::fprintf(stderr, "ct-latency: writer in %s: %s\n", o.from.c_str(), s.writer_error.c_str());
    }
    if (timed_out) {
        std::fprintf(stderr, "ct-latency: stopped at --timeout %ld s; reporting what was measured\n",
                     o.timeout_s);
    }

    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(o.count));
    long received = 0;
    for (std::size_t k = 0; k < s.created.size(); ++k) {
        if (s.created[k] != 0 && s.arrived[k] != 0) {
            ++received;
            us.push_back(static_cast<double>(s.arrived[k] - s.created[k]) / 1000.0);
        }
    }
    std::sort(us.begin(), us.end());
    const long created = s.sent - s.errors;
    std::printf("ct-latency: sent=%ld errors=%ld received=%ld lost=%ld overruns=%ld", s.sent.load(),
                s.errors.load(), received, created - received, s.overruns.load());
    if (us.empty()) {
        std::printf(" min_us=- p50_us=- p90_us=- p99_us=- max_us=- mean_us=- rate=%.0f\n", o.rate);
        if (created == 0) {
            std::fprintf(stderr, "ct-latency: no entry could be created in %s\n", o.from.c_str());
        } else {
            std::fprintf(stderr, "ct-latency: no event for the entries created in %s arrived in %s\n",
                         o.from.c_str(), o.to.c_str());
        }
        return 1;
    }
    double sum = 0;
    for (double v : us) {
        sum += v;
    }
    std::printf(" min_us=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f mean_us=%.0f rate=%.0f\n",
                us.front(), percentile(us, 50), percentile(us, 90), percentile(us, 99), us.back(),
                sum / static_cast<double>(us.size()), o.rate);
    return s.writer_error.empty() ? 0 : 1;
}
