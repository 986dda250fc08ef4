// SPDX-License-Identifier: GPL-2.0-or-later
// tipc-probe: measurements for the transport-tipc design decision (service multicast plus topology service,
// "A", against TIPC communication groups, "B"). One process, one thread per TIPC node: each thread enters its
// network namespace with setns(CLONE_NEWNET) (per thread) before it opens its sockets, so one sender and two
// receivers on three TIPC nodes share one CLOCK_MONOTONIC and one address space for the results.
//
//   tipc-probe --mode A|B --test throughput|latency|leave|cut|slow|semantics
//              --sender-ns NS --receiver-ns NS2,NS3 [--switch-ns NSW --cut-port IF]
//              [--count N] [--size BYTES] [--rate PER_S] [--duration-ms MS] [--pause-ms MS]
//              [--importance low|medium|high|critical] [--rcvbuf BYTES] [--type T] [--timeout-s S] [--label
//              L]
//
// A: every node's SOCK_RDM socket is bound to {type, node}; the sender sends with sendto() to the service
//    range {type, 0, ~0} and learns membership from a topology-service subscription (TIPC_SUB_PORTS) — what
//    plugins/transport-tipc does (importance high, 4 MiB receive buffer, TIPC_DEST_DROPPABLE 0 by default).
// B: every node's SOCK_RDM socket joins the group {type, node} (TIPC_GROUP_JOIN, TIPC_GROUP_MEMBER_EVTS);
//    the sender sends group broadcasts (send() without an address) and learns membership from the member
//    events on the same socket (empty messages, MSG_OOB; MSG_EOR for a member that left).
//
// Tests (receiver 1 is the first --receiver-ns, the one that is closed, cut off or slowed):
//   throughput  --count datagrams of --size bytes, as fast as a non-blocking sender can (EAGAIN: poll
//   POLLOUT);
//               time until both receivers hold all; losses, duplicates, reordering (sequence numbers).
//   latency     --rate datagrams/s for --duration-ms; one-way latency (CLOCK_MONOTONIC stamp in the payload).
//   leave       receiver 1 closes its socket; time until the sender learns (topology or member event).
//   cut         receiver 1's port on the switch (--cut-port in --switch-ns) goes down (rtnetlink); time until
//               the sender learns; then the port comes back and the time to see the member again.
//   slow        like throughput, but receiver 1 stops reading for --pause-ms after its first datagram: the
//               sender's EAGAINs and stalls, datagrams returned to it, losses, and what the other receiver
//               got meanwhile.
//   semantics   100 datagrams with sendto(service range {type,0,~0}), then 100 with send() without address:
//               what arrives where (and what the sender's own socket receives).
//
// Output: one line "RESULT mode=M test=T key=value ..." on standard output; diagnostics on standard error.
// Exit codes: 0 measured (the line may still say status=incomplete), 2 usage, 3 no TIPC in this kernel,
// 4 setup failed (namespaces, sockets, membership not seen in time), 5 watchdog (the run overran its bound).
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/tipc.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

constexpr std::uint32_t kSenderInstance = 1;
constexpr std::size_t kMaxDatagram = TIPC_MAX_USER_MSG_SIZE;
constexpr int kExitUsage = 2;
constexpr int kExitNoTipc = 3;
constexpr int kExitSetup = 4;
constexpr int kExitWatchdog = 5;

enum class Mode { kService, kGroup };
enum class Test { kThroughput, kLatency, kLeave, kCut, kSlow, kSemantics };

std::int64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}
double ms(std::int64_t ns) {
    return static_cast<double>(ns) / 1e6;
}
void sleep_ms(int n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(n));
}
std::string errstr(int e) {
    return std::string(std::strerror(e));
}
// The errno's name (EAGAIN, ...): one word, for the RESULT line.
std::string errname(int e) {
    const char* n = ::strerrorname_np(e);
    return n != nullptr ? n : std::to_string(e);
}

struct Options {
    Mode mode = Mode::kService;
    Test test = Test::kThroughput;
    std::string sender_ns;
    std::vector<std::string> receiver_ns;
    std::string switch_ns;
    std::string cut_port;
    std::uint32_t count = 20000;
    std::uint32_t size = 1400;
    std::uint32_t rate = 1000;
    std::uint32_t duration_ms = 2000;
    std::uint32_t pause_ms = 1000;
    std::uint32_t importance = TIPC_HIGH_IMPORTANCE;
    std::uint32_t rcvbuf = 4194304;  // 0: the kernel's default
    std::uint32_t type = 0;          // 0: derived from the PID
    std::uint32_t timeout_s = 60;
    std::string label;
};

// The payload's first 16 bytes: a run marker, the sequence number and the sender's CLOCK_MONOTONIC stamp.
struct Header {
    std::uint32_t magic;
    std::uint32_t seq;
    std::int64_t stamp_ns;
};
static_assert(sizeof(Header) == 16);

// What one recvmsg() gave.
struct Rx {
    enum Kind { kNone, kData, kMemberUp, kMemberDown, kReturned, kOther } kind = kNone;
    std::size_t len = 0;
    std::uint32_t member = 0;    // B: the member instance of an event
    std::uint32_t err_code = 0;  // a returned datagram's TIPC error code
    bool have_header = false;
    Header header{};
    std::uint32_t src_node = 0;
    std::uint32_t src_port = 0;
};

// Reads one message without blocking; false when there is none (or on error: *error is set then).
bool receive_one(int fd, std::vector<char>& buf, Rx& rx, int* error) {
    rx = Rx{};
    sockaddr_tipc addrs[2]{};
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) char control[4096];
    msghdr m{};
    m.msg_name = addrs;
    m.msg_namelen = sizeof(addrs);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof(control);
    const ssize_t n = ::recvmsg(fd, &m, MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            *error = errno;
        return false;
    }
    rx.len = static_cast<std::size_t>(n);
    rx.src_node = addrs[0].addr.id.node;
    rx.src_port = addrs[0].addr.id.ref;
    if ((m.msg_flags & MSG_OOB) != 0) {
        rx.kind = (m.msg_flags & MSG_EOR) != 0 ? Rx::kMemberDown : Rx::kMemberUp;
        rx.member = addrs[1].addr.name.name.instance;
        return true;
    }
    bool returned = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_TIPC)
            continue;
        if (c->cmsg_type == TIPC_ERRINFO && c->cmsg_len >= CMSG_LEN(8)) {
            std::uint32_t info[2];
            std::memcpy(info, CMSG_DATA(c), sizeof(info));
            rx.err_code = info[0];
            returned = true;
        } else if (c->cmsg_type == TIPC_RETDATA && c->cmsg_len >= CMSG_LEN(sizeof(Header))) {
            std::memcpy(&rx.header, CMSG_DATA(c), sizeof(Header));
            rx.have_header = true;
        }
    }
    if (returned) {
        rx.kind = Rx::kReturned;
        return true;
    }
    if (rx.len >= sizeof(Header)) {
        std::memcpy(&rx.header, buf.data(), sizeof(Header));
        rx.have_header = true;
        rx.kind = Rx::kData;
    } else {
        rx.kind = Rx::kOther;
    }
    return true;
}

std::string ns_path(const std::string& name) {
    return name.front() == '/' ? name : "/run/netns/" + name;
}

// Enters a network namespace (this thread only).
bool enter_ns(const std::string& name, std::string& err) {
    const std::string path = ns_path(name);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = "cannot open network namespace " + path + ": " + errstr(errno);
        return false;
    }
    const int rc = ::setns(fd, CLONE_NEWNET);
    const int e = errno;
    ::close(fd);
    if (rc != 0) {
        err = "setns(" + path + ", CLONE_NEWNET): " + errstr(e);
        return false;
    }
    return true;
}

std::string tipc_socket_error(const char* what, int e) {
    if (e == EAFNOSUPPORT)
        return std::string("no TIPC in this kernel (") + what + ": EAFNOSUPPORT); load the tipc module";
    return std::string(what) + ": " + errstr(e);
}

// The data socket of one node: bound to {type, instance} (A) or joined to the group {type, instance} (B).
int open_data_socket(const Options& o, std::uint32_t instance, std::string& err) {
    const int fd = ::socket(AF_TIPC, SOCK_RDM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = tipc_socket_error("socket(AF_TIPC, SOCK_RDM)", errno);
        return -1;
    }
    auto fail = [&](const std::string& what) {
        err = what + ": " + errstr(errno);
        ::close(fd);
        return -1;
    };
    if (::setsockopt(fd, SOL_TIPC, TIPC_IMPORTANCE, &o.importance, sizeof(o.importance)) != 0)
        return fail("setsockopt(TIPC_IMPORTANCE)");
    if (o.mode == Mode::kService) {
        const std::uint32_t returnable = 0;
        if (::setsockopt(fd, SOL_TIPC, TIPC_DEST_DROPPABLE, &returnable, sizeof(returnable)) != 0)
            return fail("setsockopt(TIPC_DEST_DROPPABLE, 0)");
        if (o.rcvbuf != 0) {
            const int bytes = static_cast<int>(o.rcvbuf);
            if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0 &&
                ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) != 0)
                return fail("setsockopt(SO_RCVBUF)");
            if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) != 0 &&
                ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) != 0)
                return fail("setsockopt(SO_SNDBUF)");
        }
        sockaddr_tipc a{};
        a.family = AF_TIPC;
        a.addrtype = TIPC_SERVICE_ADDR;
        a.scope = TIPC_CLUSTER_SCOPE;
        a.addr.name.name.type = o.type;
        a.addr.name.name.instance = instance;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
            return fail("bind({" + std::to_string(o.type) + ", " + std::to_string(instance) + "})");
    } else {
        tipc_group_req req{};
        req.type = o.type;
        req.instance = instance;
        req.scope = TIPC_CLUSTER_SCOPE;
        req.flags = TIPC_GROUP_MEMBER_EVTS;
        if (::setsockopt(fd, SOL_TIPC, TIPC_GROUP_JOIN, &req, sizeof(req)) != 0)
            return fail("setsockopt(TIPC_GROUP_JOIN {" + std::to_string(o.type) + ", " +
                        std::to_string(instance) + "})");
    }
    return fd;
}

// A: the topology-service subscription to {type, 0, ~0}, one event per binding.
int open_topology(std::uint32_t type, std::string& err) {
    const int fd = ::socket(AF_TIPC, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = tipc_socket_error("socket(AF_TIPC, SOCK_SEQPACKET)", errno);
        return -1;
    }
    sockaddr_tipc top{};
    top.family = AF_TIPC;
    top.addrtype = TIPC_SERVICE_ADDR;
    top.addr.name.name.type = TIPC_TOP_SRV;
    top.addr.name.name.instance = TIPC_TOP_SRV;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&top), sizeof(top)) != 0) {
        err = "connect(topology server): " + errstr(errno);
        ::close(fd);
        return -1;
    }
    tipc_subscr sub{};
    sub.seq = {type, 0, ~0u};
    sub.timeout = TIPC_WAIT_FOREVER;
    sub.filter = TIPC_SUB_PORTS;
    if (::send(fd, &sub, sizeof(sub), 0) != static_cast<ssize_t>(sizeof(sub))) {
        err = "send(topology subscription): " + errstr(errno);
        ::close(fd);
        return -1;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

// Sets a link up or down in a namespace with rtnetlink (from a short-lived thread: setns is per thread).
// *t0 is taken just before the request leaves.
bool set_link(const std::string& ns, const std::string& ifname, bool up, std::int64_t* t0, std::string& err) {
    bool ok = false;
    std::thread worker([&] {
        if (!enter_ns(ns, err))
            return;
        const unsigned index = ::if_nametoindex(ifname.c_str());
        if (index == 0) {
            err = "no interface " + ifname + " in " + ns;
            return;
        }
        const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0) {
            err = "socket(NETLINK_ROUTE): " + errstr(errno);
            return;
        }
        struct {
            nlmsghdr nh;
            ifinfomsg ifi;
        } req{};
        req.nh.nlmsg_len = sizeof(req);
        req.nh.nlmsg_type = RTM_NEWLINK;
        req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        req.nh.nlmsg_seq = 1;
        req.ifi.ifi_family = AF_UNSPEC;
        req.ifi.ifi_index = static_cast<int>(index);
        req.ifi.ifi_change = IFF_UP;
        req.ifi.ifi_flags = up ? IFF_UP : 0;
        *t0 = now_ns();
        if (::send(fd, &req, sizeof(req), 0) != static_cast<ssize_t>(sizeof(req))) {
            err = "send(RTM_NEWLINK): " + errstr(errno);
            ::close(fd);
            return;
        }
        alignas(nlmsghdr) char reply[4096];
        const ssize_t n = ::recv(fd, reply, sizeof(reply), 0);
        ::close(fd);
        if (n < static_cast<ssize_t>(sizeof(nlmsghdr) + sizeof(nlmsgerr))) {
            err = "no rtnetlink acknowledgement";
            return;
        }
        nlmsghdr h{};
        std::memcpy(&h, reply, sizeof(h));
        nlmsgerr e{};
        std::memcpy(&e, reply + sizeof(nlmsghdr), sizeof(e));
        if (h.nlmsg_type == NLMSG_ERROR && e.error != 0) {
            err = "RTM_NEWLINK " + ifname + (up ? " up" : " down") + ": " + errstr(-e.error);
            return;
        }
        ok = true;
    });
    worker.join();
    return ok;
}

struct Receiver {
    int index = 0;
    std::uint32_t instance = 0;
    std::string ns;
    int fd = -1;
    std::string error;
    std::atomic<bool> ready{false};
    std::atomic<std::uint32_t> unique{0};
    std::atomic<std::int64_t> done_ns{0};
    std::atomic<std::int64_t> close_ns{0};  // leave test: just before close()
    // Written by the receiver thread only, read after it has been joined.
    std::vector<std::uint8_t> seen;
    std::vector<std::int64_t> rx_time;
    std::vector<std::int64_t> latencies;
    std::uint64_t received = 0, duplicates = 0, reordered = 0, foreign = 0;
    std::int64_t max_seq = -1;
    std::int64_t pause_start = 0, pause_end = 0;
    int rcvbuf_granted = 0;
};

struct Shared {
    Options opt;
    std::atomic<bool> stop{false};
    std::atomic<bool> close_first{false};  // leave test: receiver 1 closes its socket
    std::int64_t deadline = 0;
};

void receiver_main(Shared& s, Receiver& r) {
    const Options& o = s.opt;
    if (!enter_ns(r.ns, r.error))
        return;
    r.fd = open_data_socket(o, r.instance, r.error);
    if (r.fd < 0)
        return;
    socklen_t len = sizeof(r.rcvbuf_granted);
    ::getsockopt(r.fd, SOL_SOCKET, SO_RCVBUF, &r.rcvbuf_granted, &len);
    r.seen.assign(o.count, 0);
    r.rx_time.assign(o.count, 0);
    std::vector<char> buf(kMaxDatagram + 1);
    const bool need_sender = o.mode == Mode::kGroup;  // B: the sender must be a joined member for us
    bool sender_seen = !need_sender;
    if (sender_seen)
        r.ready = true;
    bool paused = false;
    bool closed = false;
    while (!s.stop.load()) {
        if (now_ns() > s.deadline)
            break;
        if (r.index == 0 && s.close_first.load() && !closed) {
            r.close_ns = now_ns();
            ::close(r.fd);
            r.fd = -1;
            closed = true;
        }
        if (closed) {
            sleep_ms(5);
            continue;
        }
        if (o.test == Test::kSlow && r.index == 0 && !paused && r.received > 0) {
            paused = true;
            r.pause_start = now_ns();
            sleep_ms(static_cast<int>(o.pause_ms));
            r.pause_end = now_ns();
        }
        pollfd p{r.fd, POLLIN, 0};
        ::poll(&p, 1, 20);
        Rx rx;
        int e = 0;
        for (int batch = 0; batch < 256 && receive_one(r.fd, buf, rx, &e); ++batch) {
            const std::int64_t t = now_ns();
            if (rx.kind == Rx::kMemberUp && rx.member == kSenderInstance && !sender_seen) {
                sender_seen = true;
                r.ready = true;
            }
            if (rx.kind != Rx::kData)
                continue;
            if (rx.header.magic != o.type || rx.header.seq >= o.count) {
                ++r.foreign;
                continue;
            }
            ++r.received;
            const std::uint32_t q = rx.header.seq;
            if (r.seen[q] != 0) {
                ++r.duplicates;
                continue;
            }
            r.seen[q] = 1;
            r.rx_time[q] = t;
            if (static_cast<std::int64_t>(q) < r.max_seq)
                ++r.reordered;
            r.max_seq = std::max<std::int64_t>(r.max_seq, q);
            if (o.test == Test::kLatency)
                r.latencies.push_back(t - rx.header.stamp_ns);
            if (r.unique.fetch_add(1) + 1 == o.count)
                r.done_ns = t;
            if (o.test == Test::kSlow && r.index == 0 && !paused)
                break;  // start the pause at once
        }
        if (e != 0) {
            r.error = "recvmsg: " + errstr(e);
            break;
        }
    }
    if (r.fd >= 0)
        ::close(r.fd);
    r.fd = -1;
}

struct SenderStats {
    std::uint64_t sent = 0, eagain = 0, send_errors = 0, returned = 0, rx_own = 0, events_up = 0,
                  events_down = 0;
    std::uint64_t returned_overload = 0;  // of returned: TIPC_ERR_OVERLOAD (a receive queue over its limit)
    int last_send_errno = 0;
    std::int64_t max_stall = 0, total_stall = 0;
    std::vector<std::int64_t> send_time;
    std::set<std::uint32_t> returned_seqs;
    std::set<std::uint32_t> members;  // instances the sender sees, itself excluded
    std::uint32_t own_node = 0, own_port = 0;
};

// The sender's view: its data socket (A: own copies, returned datagrams; B: those and member events) and,
// for A, the topology subscription. Calls on_event(instance, up, time) for each membership change.
class SenderSide {
  public:
    explicit SenderSide(SenderStats& st) : st_(st), buf_(kMaxDatagram + 1) {}
    int data = -1;
    int topo = -1;
    std::string error;
    std::int64_t last_down_ns[8]{};
    std::int64_t last_up_ns[8]{};

    void drain_data() {
        Rx rx;
        int e = 0;
        for (int batch = 0; batch < 256 && receive_one(data, buf_, rx, &e); ++batch) {
            switch (rx.kind) {
                case Rx::kMemberUp:
                    event(rx.member, true);
                    break;
                case Rx::kMemberDown:
                    event(rx.member, false);
                    break;
                case Rx::kReturned:
                    ++st_.returned;
                    if (rx.err_code == TIPC_ERR_OVERLOAD)
                        ++st_.returned_overload;
                    if (rx.have_header)
                        st_.returned_seqs.insert(rx.header.seq);
                    break;
                case Rx::kData:
                    ++st_.rx_own;
                    break;
                default:
                    break;
            }
        }
        if (e != 0 && error.empty())
            error = "recvmsg on the sender: " + errstr(e);
    }
    void drain_topology() {
        if (topo < 0)
            return;
        tipc_event ev{};
        for (;;) {
            const ssize_t n = ::recv(topo, &ev, sizeof(ev), MSG_DONTWAIT);
            if (n != static_cast<ssize_t>(sizeof(ev))) {
                if (n == 0 && error.empty())
                    error = "the topology server closed the subscription";
                return;
            }
            if (ev.event == TIPC_PUBLISHED)
                event(ev.found_lower, true);
            if (ev.event == TIPC_WITHDRAWN)
                event(ev.found_lower, false);
        }
    }
    // Waits for readiness or events at most timeout_ms, then drains everything.
    short wait(short data_events, int timeout_ms) {
        pollfd p[2] = {{data, static_cast<short>(data_events | POLLIN), 0}, {topo, POLLIN, 0}};
        ::poll(p, topo >= 0 ? 2 : 1, timeout_ms);
        drain_data();
        drain_topology();
        return p[0].revents;
    }
    bool has(std::uint32_t instance) const { return st_.members.count(instance) != 0; }

  private:
    void event(std::uint32_t instance, bool up) {
        if (instance == kSenderInstance)
            return;
        const std::int64_t t = now_ns();
        if (up) {
            ++st_.events_up;
            st_.members.insert(instance);
            if (instance < 8)
                last_up_ns[instance] = t;
        } else {
            ++st_.events_down;
            st_.members.erase(instance);
            if (instance < 8)
                last_down_ns[instance] = t;
        }
    }
    SenderStats& st_;
    std::vector<char> buf_;
};

std::string percentile_us(std::vector<std::int64_t> v, double q) {
    if (v.empty())
        return "NA";
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    char out[32];
    std::snprintf(out, sizeof(out), "%.1f", static_cast<double>(v[std::min(i, v.size() - 1)]) / 1e3);
    return out;
}

struct Line {
    std::string text;
    template <typename T>
    void add(const char* key, T value) {
        text += ' ';
        text += key;
        text += '=';
        if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, const char*>) {
            text += value;
        } else if constexpr (std::is_floating_point_v<T>) {
            char out[48];
            std::snprintf(out, sizeof(out), "%.2f", value);
            text += out;
        } else {
            text += std::to_string(value);
        }
    }
};

// Sends one datagram: A to the service range, B as a group broadcast (no address). Returns 0 or errno.
int send_datagram(const Options& o, int fd, const char* data, std::size_t len, bool range) {
    ssize_t n;
    if (range) {
        sockaddr_tipc to{};
        to.family = AF_TIPC;
        to.addrtype = TIPC_SERVICE_RANGE;
        to.scope = TIPC_CLUSTER_SCOPE;
        to.addr.nameseq = {o.type, 0, ~0u};
        n = ::sendto(fd, data, len, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    } else {
        n = ::send(fd, data, len, MSG_DONTWAIT);
    }
    if (n == static_cast<ssize_t>(len))
        return 0;
    return n < 0 ? errno : EIO;
}

// Sends seq with retries on EAGAIN (poll POLLOUT, bounded by the deadline); 0, or the errno that stopped it.
int send_blocking(Shared& s, SenderSide& side, SenderStats& st, std::vector<char>& buf, std::uint32_t seq,
                  bool range) {
    const Options& o = s.opt;
    Header h{o.type, seq, now_ns()};
    std::memcpy(buf.data(), &h, sizeof(h));
    std::int64_t stall_start = 0;
    for (;;) {
        const int e = send_datagram(o, side.data, buf.data(), o.size, range);
        if (e == 0) {
            if (stall_start != 0) {
                const std::int64_t stall = now_ns() - stall_start;
                st.total_stall += stall;
                st.max_stall = std::max(st.max_stall, stall);
            }
            ++st.sent;
            if (seq < st.send_time.size())
                st.send_time[seq] = now_ns();
            return 0;
        }
        if (e != EAGAIN && e != EWOULDBLOCK) {
            ++st.send_errors;
            st.last_send_errno = e;
            return e;
        }
        ++st.eagain;
        if (stall_start == 0)
            stall_start = now_ns();
        if (now_ns() > s.deadline)
            return ETIMEDOUT;
        side.wait(POLLOUT, 50);
    }
}

std::uint32_t latency_count(const Options& o) {
    return static_cast<std::uint32_t>(
        std::min<std::uint64_t>(o.count, static_cast<std::uint64_t>(o.rate) * o.duration_ms / 1000));
}

const char* mode_name(Mode m) {
    return m == Mode::kService ? "A" : "B";
}
const char* test_name(Test t) {
    switch (t) {
        case Test::kThroughput:
            return "throughput";
        case Test::kLatency:
            return "latency";
        case Test::kLeave:
            return "leave";
        case Test::kCut:
            return "cut";
        case Test::kSlow:
            return "slow";
        case Test::kSemantics:
            return "semantics";
    }
    return "?";
}

// Waits until both receivers hold every datagram, or nothing new arrived for quiet_ms, or the deadline.
bool wait_delivery(Shared& s, SenderSide& side, Receiver* rs, std::uint32_t want, int quiet_ms) {
    std::uint32_t last = 0;
    std::int64_t last_change = now_ns();
    for (;;) {
        const std::uint32_t got = rs[0].unique.load() + rs[1].unique.load();
        if (got >= 2 * want)
            return true;
        if (got != last) {
            last = got;
            last_change = now_ns();
        }
        if (now_ns() - last_change > static_cast<std::int64_t>(quiet_ms) * 1000000 || now_ns() > s.deadline)
            return false;
        side.wait(0, 5);
    }
}

int run(Shared& s) {
    Options& o = s.opt;
    Receiver rs[2];
    for (int i = 0; i < 2; ++i) {
        rs[i].index = i;
        rs[i].instance = static_cast<std::uint32_t>(2 + i);
        rs[i].ns = o.receiver_ns[static_cast<std::size_t>(i)];
    }
    SenderStats st;
    st.send_time.assign(o.count, 0);
    SenderSide side(st);
    Line out;
    out.text = std::string("RESULT mode=") + mode_name(o.mode) + " test=" + test_name(o.test);
    if (!o.label.empty())
        out.add("variant", o.label);
    out.add("size", o.size);
    int exit_code = 0;
    std::string status = "ok";
    std::string setup_error;

    std::thread receivers[2] = {std::thread(receiver_main, std::ref(s), std::ref(rs[0])),
                                std::thread(receiver_main, std::ref(s), std::ref(rs[1]))};
    std::thread sender([&] {
        if (!enter_ns(o.sender_ns, setup_error))
            return;
        side.data = open_data_socket(o, kSenderInstance, setup_error);
        if (side.data < 0)
            return;
        if (o.mode == Mode::kService) {
            side.topo = open_topology(o.type, setup_error);
            if (side.topo < 0)
                return;
        }
        sockaddr_tipc self{};
        socklen_t sl = sizeof(self);
        ::getsockname(side.data, reinterpret_cast<sockaddr*>(&self), &sl);
        st.own_node = self.addr.id.node;
        st.own_port = self.addr.id.ref;
        // Setup: both receivers' sockets exist (B: and see us), and we see both of them.
        const std::int64_t setup_start = now_ns();
        const std::int64_t setup_end = setup_start + 15LL * 1000000000;
        while (!(rs[0].ready && rs[1].ready && side.has(2) && side.has(3))) {
            if (!rs[0].error.empty() || !rs[1].error.empty() || now_ns() > setup_end) {
                setup_error = !rs[0].error.empty() ? "receiver 1: " + rs[0].error
                              : !rs[1].error.empty()
                                  ? "receiver 2: " + rs[1].error
                                  : "the members did not see each other within 15 s (sender sees " +
                                        std::to_string(st.members.size()) + ", receivers ready " +
                                        std::to_string(int(rs[0].ready) + int(rs[1].ready)) + ")";
                return;
            }
            side.wait(0, 10);
        }
        out.add("setup_ms", ms(now_ns() - setup_start));
        std::vector<char> buf(std::max<std::size_t>(o.size, sizeof(Header)), 'x');
        switch (o.test) {
            case Test::kThroughput:
            case Test::kSlow: {
                const std::int64_t t0 = now_ns();
                std::uint32_t seq = 0;
                for (; seq < o.count; ++seq) {
                    if (send_blocking(s, side, st, buf, seq, o.mode == Mode::kService) != 0)
                        break;
                    if ((seq & 63) == 63)
                        side.wait(0, 0);
                }
                const std::int64_t t_sent = now_ns();
                const bool all = wait_delivery(s, side, rs, o.count, 5000);
                const std::int64_t done = std::max(rs[0].done_ns.load(), rs[1].done_ns.load());
                side.wait(0, 50);  // the last of the sender's own copies (A), for rx_own
                if (!all)
                    status = "incomplete";
                out.add("count", o.count);
                out.add("send_ms", ms(t_sent - t0));
                if (all) {
                    const double secs = static_cast<double>(done - t0) / 1e9;
                    out.add("elapsed_ms", ms(done - t0));
                    out.add("dgrams_per_s", static_cast<double>(o.count) / secs);
                    out.add("mb_per_s", static_cast<double>(o.count) * o.size / secs / 1e6);
                } else {
                    out.add("elapsed_ms", "NA");
                }
                break;
            }
            case Test::kLatency: {
                const std::uint32_t n = latency_count(o);
                const std::int64_t interval = 1000000000LL / o.rate;
                std::int64_t next = now_ns() + interval;
                for (std::uint32_t seq = 0; seq < n; ++seq) {
                    timespec ts{static_cast<time_t>(next / 1000000000), static_cast<long>(next % 1000000000)};
                    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
                    }
                    if (send_blocking(s, side, st, buf, seq, o.mode == Mode::kService) != 0)
                        break;
                    side.wait(0, 0);
                    next += interval;
                }
                if (!wait_delivery(s, side, rs, n, 3000))
                    status = "incomplete";
                out.add("count", n);
                out.add("rate", o.rate);
                break;
            }
            case Test::kLeave: {
                sleep_ms(200);
                s.close_first = true;
                const std::int64_t end = now_ns() + 20LL * 1000000000;
                while (side.has(2) && now_ns() < end && now_ns() < s.deadline)
                    side.wait(0, 5);
                while (rs[0].close_ns.load() == 0 && now_ns() < end)
                    sleep_ms(1);
                if (side.has(2) || rs[0].close_ns.load() == 0) {
                    status = "incomplete";
                    out.add("detect_ms", "NA");
                } else {
                    out.add("detect_ms", ms(side.last_down_ns[2] - rs[0].close_ns.load()));
                }
                out.add("other_lost", side.has(3) ? 0 : 1);
                break;
            }
            case Test::kCut: {
                sleep_ms(200);
                std::int64_t t_cut = 0, t_heal = 0;
                std::string err;
                if (!set_link(o.switch_ns, o.cut_port, false, &t_cut, err)) {
                    setup_error = err;
                    return;
                }
                const std::int64_t end = now_ns() + 20LL * 1000000000;
                while (side.has(2) && now_ns() < end && now_ns() < s.deadline)
                    side.wait(0, 5);
                if (side.has(2)) {
                    status = "incomplete";
                    out.add("detect_ms", "NA");
                } else {
                    out.add("detect_ms", ms(side.last_down_ns[2] - t_cut));
                }
                out.add("other_lost", side.has(3) ? 0 : 1);
                if (!set_link(o.switch_ns, o.cut_port, true, &t_heal, err)) {
                    setup_error = "cannot heal the cut: " + err;
                    return;
                }
                const std::int64_t end2 = now_ns() + 30LL * 1000000000;
                while (!side.has(2) && now_ns() < end2)
                    side.wait(0, 10);
                if (side.has(2)) {
                    out.add("rejoin_ms", ms(side.last_up_ns[2] - t_heal));
                } else {
                    out.add("rejoin_ms", "NA");
                }
                break;
            }
            case Test::kSemantics: {
                // 100 to the service range, then 100 without an address; what each receiver got of each.
                const std::uint32_t k = std::min<std::uint32_t>(100, o.count / 2);
                int e_range = 0, e_plain = 0;
                for (std::uint32_t i = 0; i < k && e_range == 0; ++i)
                    e_range = send_blocking(s, side, st, buf, i, true);
                sleep_ms(300);
                side.wait(0, 0);
                const std::uint64_t own_after_range = st.rx_own;
                for (std::uint32_t i = k; i < 2 * k && e_plain == 0; ++i)
                    e_plain = send_blocking(s, side, st, buf, i, false);
                sleep_ms(500);
                side.wait(0, 0);
                auto got = [&](int r, std::uint32_t from, std::uint32_t to) {
                    std::uint32_t c = 0;
                    for (std::uint32_t i = from; i < to; ++i)
                        c += rs[r].seen[i] != 0 ? 1 : 0;  // racy read: after 500 ms
                    return c;
                };
                out.add("range_errno", e_range == 0 ? std::string("0") : errname(e_range));
                out.add("range_r1", got(0, 0, k));
                out.add("range_r2", got(1, 0, k));
                out.add("range_own", own_after_range);
                out.add("noaddr_errno", e_plain == 0 ? std::string("0") : errname(e_plain));
                out.add("noaddr_r1", got(0, k, 2 * k));
                out.add("noaddr_r2", got(1, k, 2 * k));
                out.add("noaddr_own", st.rx_own - own_after_range);
                out.add("each", k);
                break;
            }
        }
    });
    sender.join();
    s.stop = true;
    for (auto& t : receivers)
        t.join();
    if (side.data >= 0)
        ::close(side.data);
    if (side.topo >= 0)
        ::close(side.topo);
    if (!setup_error.empty()) {
        std::fprintf(stderr, "tipc-probe: %s\n", setup_error.c_str());
        return setup_error.find("no TIPC in this kernel") != std::string::npos ? kExitNoTipc : kExitSetup;
    }
    for (auto& r : rs) {
        if (!r.error.empty()) {
            std::fprintf(stderr, "tipc-probe: receiver %d: %s\n", r.index + 1, r.error.c_str());
            status = "receiver_error";
        }
    }
    if (o.test == Test::kThroughput || o.test == Test::kSlow || o.test == Test::kLatency) {
        const std::uint32_t want = o.test == Test::kLatency ? latency_count(o) : o.count;
        for (auto& r : rs) {
            const std::string p = "r" + std::to_string(r.index + 1) + "_";
            std::uint32_t lost = 0;
            for (std::uint32_t i = 0; i < want; ++i)
                lost += i >= r.seen.size() || r.seen[i] == 0 ? 1 : 0;
            out.add((p + "lost").c_str(), lost);
            out.add((p + "dup").c_str(), r.duplicates);
            out.add((p + "reordered").c_str(), r.reordered);
        }
        out.add("eagain", st.eagain);
        out.add("max_stall_ms", ms(st.max_stall));
        out.add("total_stall_ms", ms(st.total_stall));
        out.add("send_errors", st.send_errors);
        if (st.send_errors != 0)
            out.add("send_errno", errname(st.last_send_errno));
        out.add("returned", st.returned);
        out.add("returned_overload", st.returned_overload);
        out.add("rx_own", st.rx_own);
        out.add("r1_rcvbuf", rs[0].rcvbuf_granted);
    }
    if (o.test == Test::kLatency) {
        std::vector<std::int64_t> all;
        for (auto& r : rs)
            all.insert(all.end(), r.latencies.begin(), r.latencies.end());
        out.add("p50_us", percentile_us(all, 0.50));
        out.add("p99_us", percentile_us(all, 0.99));
        out.add("max_us", percentile_us(all, 1.0));
    }
    if (o.test == Test::kSlow) {
        const std::int64_t a = rs[0].pause_start, b = rs[0].pause_end;
        std::uint32_t other = 0, sent = 0;
        for (std::uint32_t i = 0; i < o.count && i < rs[1].rx_time.size(); ++i) {
            if (rs[1].rx_time[i] >= a && rs[1].rx_time[i] <= b)
                ++other;
            if (st.send_time[i] >= a && st.send_time[i] <= b)
                ++sent;
        }
        out.add("pause_ms", ms(b - a));
        out.add("sent_during_pause", sent);
        out.add("r2_rx_during_pause", other);
        out.add("returned_unique", st.returned_seqs.size());
    }
    out.add("status", status);
    std::printf("%s\n", out.text.c_str());
    std::fflush(stdout);
    return exit_code;
}

[[noreturn]] void usage(const char* why) {
    if (why != nullptr)
        std::fprintf(stderr, "tipc-probe: %s\n", why);
    std::fprintf(
        stderr,
        "usage: tipc-probe --mode A|B --test throughput|latency|leave|cut|slow|semantics\n"
        "         --sender-ns NS --receiver-ns NS1,NS2 [--switch-ns NS --cut-port IF]\n"
        "         [--count N] [--size BYTES] [--rate PER_S] [--duration-ms MS] [--pause-ms MS]\n"
        "         [--importance low|medium|high|critical] [--rcvbuf BYTES] [--type T] [--timeout-s S]\n"
        "         [--label TEXT]\n");
    std::exit(kExitUsage);
}

std::uint32_t number(const char* name, const char* text, std::uint32_t lo, std::uint32_t hi) {
    char* end = nullptr;
    errno = 0;
    const unsigned long v = std::strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) {
        const std::string why = std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " +
                                std::to_string(hi) + "], not '" + text + "'";
        usage(why.c_str());
    }
    return static_cast<std::uint32_t>(v);
}

Options parse(int argc, char** argv) {
    Options o;
    bool have_mode = false, have_test = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help")
            usage(nullptr);
        if (i + 1 >= argc)
            usage(("missing value for " + a).c_str());
        const char* v = argv[++i];
        const std::string value = v;
        if (a == "--mode") {
            if (value == "A")
                o.mode = Mode::kService;
            else if (value == "B")
                o.mode = Mode::kGroup;
            else
                usage("--mode is A or B");
            have_mode = true;
        } else if (a == "--test") {
            if (value == "throughput")
                o.test = Test::kThroughput;
            else if (value == "latency")
                o.test = Test::kLatency;
            else if (value == "leave")
                o.test = Test::kLeave;
            else if (value == "cut")
                o.test = Test::kCut;
            else if (value == "slow")
                o.test = Test::kSlow;
            else if (value == "semantics")
                o.test = Test::kSemantics;
            else
                usage("unknown --test");
            have_test = true;
        } else if (a == "--sender-ns") {
            o.sender_ns = value;
        } else if (a == "--receiver-ns") {
            o.receiver_ns.clear();
            std::size_t start = 0;
            for (;;) {
                const std::size_t comma = value.find(',', start);
                o.receiver_ns.push_back(value.substr(start, comma - start));
                if (comma == std::string::npos)
                    break;
                start = comma + 1;
            }
        } else if (a == "--switch-ns") {
            o.switch_ns = value;
        } else if (a == "--cut-port") {
            o.cut_port = value;
        } else if (a == "--count") {
            o.count = number("--count", v, 1, 10000000);
        } else if (a == "--size") {
            o.size = number("--size", v, sizeof(Header), TIPC_MAX_USER_MSG_SIZE);
        } else if (a == "--rate") {
            o.rate = number("--rate", v, 1, 1000000);
        } else if (a == "--duration-ms") {
            o.duration_ms = number("--duration-ms", v, 1, 600000);
        } else if (a == "--pause-ms") {
            o.pause_ms = number("--pause-ms", v, 1, 60000);
        } else if (a == "--importance") {
            if (value == "low")
                o.importance = TIPC_LOW_IMPORTANCE;
            else if (value == "medium")
                o.importance = TIPC_MEDIUM_IMPORTANCE;
            else if (value == "high")
                o.importance = TIPC_HIGH_IMPORTANCE;
            else if (value == "critical")
                o.importance = TIPC_CRITICAL_IMPORTANCE;
            else
                usage("--importance is low, medium, high or critical");
        } else if (a == "--rcvbuf") {
            o.rcvbuf = number("--rcvbuf", v, 0, 536870911);
        } else if (a == "--type") {
            o.type = number("--type", v, TIPC_RESERVED_TYPES, 0xffffffffu);
        } else if (a == "--timeout-s") {
            o.timeout_s = number("--timeout-s", v, 1, 3600);
        } else if (a == "--label") {
            o.label = value;
        } else {
            usage(("unknown argument " + a).c_str());
        }
    }
    if (!have_mode || !have_test)
        usage("--mode and --test are required");
    if (o.sender_ns.empty() || o.receiver_ns.size() != 2 || o.receiver_ns[0].empty() ||
        o.receiver_ns[1].empty())
        usage("--sender-ns and two --receiver-ns (comma-separated) are required");
    if (o.test == Test::kCut && (o.switch_ns.empty() || o.cut_port.empty()))
        usage("--test cut needs --switch-ns and --cut-port");
    if (o.test == Test::kSemantics && o.count < 200)
        o.count = 200;
    if (o.type == 0)
        o.type = 20000 + static_cast<std::uint32_t>(::getpid()) % 40000;
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    Shared s;
    s.opt = parse(argc, argv);
    // The clear refusal first: a kernel without TIPC answers socket(AF_TIPC) with EAFNOSUPPORT.
    const int probe = ::socket(AF_TIPC, SOCK_RDM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        const int e = errno;
        std::fprintf(stderr, "tipc-probe: %s\n", tipc_socket_error("socket(AF_TIPC, SOCK_RDM)", e).c_str());
        return e == EAFNOSUPPORT ? kExitNoTipc : kExitSetup;
    }
    ::close(probe);
    for (const auto& ns : {s.opt.sender_ns, s.opt.receiver_ns[0], s.opt.receiver_ns[1]}) {
        if (::access(ns_path(ns).c_str(), R_OK) != 0) {
            std::fprintf(stderr, "tipc-probe: cannot open network namespace %s: %s\n", ns_path(ns).c_str(),
                         std::strerror(errno));
            return kExitSetup;
        }
    }
    s.deadline = now_ns() + static_cast<std::int64_t>(s.opt.timeout_s) * 1000000000;
    // Every loop checks the deadline; the watchdog is the bound should the kernel block a call anyway.
    std::thread([timeout = s.opt.timeout_s] {
        std::this_thread::sleep_for(std::chrono::seconds(timeout + 15));
        std::fprintf(stderr, "tipc-probe: watchdog: the run overran %u s; giving up\n", timeout + 15);
        std::_Exit(kExitWatchdog);
    }).detach();
    return run(s);
}
