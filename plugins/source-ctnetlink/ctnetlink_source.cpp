// SPDX-License-Identifier: GPL-2.0-or-later
#include "ctnetlink_source.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/filter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_compat.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>
#include <utility>

#include "flow_codec.hpp"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace ctnetlink {
namespace {

using ctsync::sdk::EventKind;
namespace asio = boost::asio;

constexpr std::size_t kReceiveBufferBytes = 64 * 1024;  // larger than any netlink dump datagram
constexpr std::size_t kMaxMessageBytes = 2048;          // room kept free for one more message in a batch
constexpr int kReadsPerWakeup = 64;
constexpr std::size_t kEventSlotBytes = 8192;  // one event datagram: a few hundred bytes, labels included
constexpr std::size_t kMaxReportedErrors = 16;
constexpr std::size_t kRequestBytes = 512;             // a dump or flush request: header only
constexpr std::size_t kParallelWriteThreshold = 4096;  // fewer flows are not worth a thread

static_assert(sizeof(ctsync::sdk::BpfInstruction) == sizeof(sock_filter));

std::uint16_t message_type(std::uint8_t subsystem, std::uint8_t type) {
    return static_cast<std::uint16_t>((subsystem << 8) | type);
}

nlmsghdr* put_request(char* buffer, std::uint16_t type, std::uint16_t flags, std::uint32_t seq,
                      std::uint8_t family) {
    nlmsghdr* nlh = mnl_nlmsg_put_header(buffer);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = flags;
    nlh->nlmsg_seq = seq;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = family;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = 0;
    return nlh;
}

int event_trampoline(const nlmsghdr* nlh, void* data) {
    return static_cast<CtnetlinkSource*>(data)->on_event_message(nlh);
}
int dump_trampoline(const nlmsghdr* nlh, void* data) {
    return static_cast<CtnetlinkSource*>(data)->on_dump_message(nlh);
}

std::uint8_t family_of(const ctsync::sdk::WriteOp& op) {
    const auto& tuple = op.flow != nullptr ? op.flow->original : op.expectation->master;
    return static_cast<std::uint8_t>(tuple.family);
}

}  // namespace

// --- NetlinkSocket
// -------------------------------------------------------------------------------------------

std::unique_ptr<NetlinkSocket> NetlinkSocket::open(unsigned groups, std::string& error) {
    mnl_socket* socket = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (socket == nullptr) {
        error = fmt::format("cannot open a ctnetlink socket: {}", std::strerror(errno));
        return nullptr;
    }
    if (mnl_socket_bind(socket, groups, MNL_SOCKET_AUTOPID) < 0) {
        error =
            fmt::format("cannot bind the ctnetlink socket (groups {:#x}): {}", groups, std::strerror(errno));
        mnl_socket_close(socket);
        return nullptr;
    }
    return std::unique_ptr<NetlinkSocket>(new NetlinkSocket(socket));
}

NetlinkSocket::~NetlinkSocket() {
    mnl_socket_close(socket_);
}
int NetlinkSocket::fd() const {
    return mnl_socket_get_fd(socket_);
}
unsigned NetlinkSocket::portid() const {
    return mnl_socket_get_portid(socket_);
}

void NetlinkSocket::set_send_buffer(std::size_t bytes) {
    int value = static_cast<int>(std::min<std::size_t>(bytes, 1u << 30));
    if (setsockopt(fd(), SOL_SOCKET, SO_SNDBUFFORCE, &value, sizeof(value)) != 0) {
        setsockopt(fd(), SOL_SOCKET, SO_SNDBUF, &value, sizeof(value));
    }
}

std::size_t NetlinkSocket::set_receive_buffer(std::size_t bytes) {
    int value = static_cast<int>(std::min<std::size_t>(bytes, 1u << 30));
    // FORCE ignores rmem_max (root only); fall back to the capped option otherwise.
    if (setsockopt(fd(), SOL_SOCKET, SO_RCVBUFFORCE, &value, sizeof(value)) != 0) {
        setsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &value, sizeof(value));
    }
    int actual = 0;
    socklen_t length = sizeof(actual);
    getsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &actual, &length);
    return static_cast<std::size_t>(actual);
}

// --- CtnetlinkSource
// -----------------------------------------------------------------------------------------

CtnetlinkSource::CtnetlinkSource(const ctsync::sdk::PluginContext& context, SourceOptions options)
    : context_(context),
      options_(options),
      log_(*context.logger),
      dump_retry_(context.executor),
      resync_timer_(context.executor),
      batch_timer_(context.executor),
      buffer_(kReceiveBufferBytes),
      write_buffer_(options.write_batch_bytes + kMaxMessageBytes),
      write_ack_buffer_(kReceiveBufferBytes),
      events_new_(context.metrics->counter("events_new", "NEW events read from the kernel")),
      events_update_(context.metrics->counter("events_update", "UPDATE events read from the kernel")),
      events_destroy_(context.metrics->counter("events_destroy", "DESTROY events read from the kernel")),
      expectation_events_(context.metrics->counter("expectation_events", "expectation events read")),
      overruns_(context.metrics->counter("event_overruns",
                                         "event socket overruns (ENOBUFS): events lost, resynced")),
      malformed_(context.metrics->counter("malformed_messages", "netlink messages that could not be parsed")),
      dumps_(context.metrics->counter("dumps", "full table dumps started")),
      dumps_failed_(context.metrics->counter("dumps_failed", "dumps that ended early (retried)")),
      dump_entries_(context.metrics->counter("dump_entries", "entries read by dumps")),
      writes_applied_(context.metrics->counter("writes_applied", "entries written into the kernel")),
      writes_failed_(context.metrics->counter("writes_failed", "entries the kernel refused")),
      write_batches_(context.metrics->counter("write_batches", "netlink batches sent")),
      receive_buffer_(context.metrics->gauge("event_buffer_bytes", "event socket receive buffer")),
      own_reported_(context.metrics->counter(
          "own_writes_reported",
          "entries this source wrote, reported to the cache in place of the kernel's echo")),
      own_withheld_(context.metrics->counter(
          "own_writes_withheld",
          "entries this source wrote, not reported: the kernel destroyed one like it while the write ran")),
      own_events_read_(context.metrics->counter(
          "own_events_read",
          "echoes of this source's writes that reached the process (skipped): the kernel "
          "filter was not in place")) {
    destroyed_during_writes_ = decltype(destroyed_during_writes_)(16, FlowKeyHash{std::random_device{}()});
    static_assert(std::tuple_size_v<decltype(own_portids_)> == kMaxWriteThreads + 1);
}

CtnetlinkSource::~CtnetlinkSource() {
    stop();
}

void CtnetlinkSource::stop() noexcept {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    boost::system::error_code ignored;
    dump_retry_.cancel();
    resync_timer_.cancel();
    batch_timer_.cancel();
    // The descriptors wrap sockets libmnl owns: release, never close, them.
    if (events_wait_) {
        events_wait_->cancel(ignored);
        events_wait_->release();
    }
    if (dump_wait_) {
        dump_wait_->cancel(ignored);
        dump_wait_->release();
    }
}

bool CtnetlinkSource::start(ctsync::sdk::FlowSink& sink, std::string& error) noexcept {
    try {
        sink_ = &sink;
        if (!ensure_events_enabled(error)) {
            return false;
        }
        unsigned groups =
            NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE | NF_NETLINK_CONNTRACK_DESTROY;
        if (options_.expectations) {
            groups |= NF_NETLINK_CONNTRACK_EXP_NEW | NF_NETLINK_CONNTRACK_EXP_DESTROY;
        }
        // Subscribe before the first dump, so that nothing changing during the dump is missed.
        events_ = NetlinkSocket::open(groups, error);
        if (!events_) {
            return false;
        }
        event_buffer_requested_ = options_.event_buffer_bytes;
        event_buffer_bytes_ = events_->set_receive_buffer(event_buffer_requested_);
        receive_buffer_.set(static_cast<std::int64_t>(event_buffer_bytes_));
        if (options_.reliable_events) {
            // The kernel then retries event delivery instead of dropping (DESTROY events are held back until
            // delivered), and never reports ENOBUFS: loss is avoided rather than repaired.
            int one = 1;
            if (setsockopt(events_->fd(), SOL_NETLINK, NETLINK_BROADCAST_ERROR, &one, sizeof(one)) != 0 ||
                setsockopt(events_->fd(), SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) != 0) {
                error = fmt::format("cannot enable reliable events: {}", std::strerror(errno));
                return false;
            }
        }
        events_wait_ = std::make_unique<asio::posix::stream_descriptor>(context_.executor, events_->fd());
        dump_ = NetlinkSocket::open(0, error);
        if (!dump_ || !open_writer(error)) {
            return false;
        }
        dump_wait_ = std::make_unique<asio::posix::stream_descriptor>(context_.executor, dump_->fd());
        log_.info(fmt::format("event=source_started event_buffer_bytes={} reliable_events={} expectations={}",
                              event_buffer_bytes_, options_.reliable_events, options_.expectations));
        wait_events();
        request_dump();
        schedule_resync();
        return true;
    } catch (const std::exception& e) {
        error = e.what();
        return false;
    }
}

bool CtnetlinkSource::ensure_events_enabled(std::string& error) {
    std::ifstream in(options_.sysctl_path);
    int value = -1;
    if (!(in >> value)) {
        error = fmt::format("cannot read {}: is nf_conntrack available in this network namespace?",
                            options_.sysctl_path);
        return false;
    }
    if (value == 1) {
        return true;
    }
    const std::string consequence =
        value == 0 ? "the kernel sends no conntrack events at all"
                   : "entries created while no process listened never emit events (their updates and deletes "
                     "would be missed)";
    if (options_.events_sysctl == "check") {
        error = fmt::format(
            "{} is {}: {}; set it to 1 (sysctl -w net.netfilter.nf_conntrack_events=1) or use "
            "events_sysctl \"set\"",
            options_.sysctl_path, value, consequence);
        return false;
    }
    if (options_.events_sysctl == "ignore") {
        log_.warn(
            fmt::format("event=events_sysctl value={} consequence=\"{}\" action=none", value, consequence));
        return true;
    }
    std::ofstream out(options_.sysctl_path);
    out << "1\n";
    out.close();
    if (!out) {
        error = fmt::format("cannot set {} to 1: {}", options_.sysctl_path, std::strerror(errno));
        return false;
    }
    log_.warn(
        fmt::format("event=events_sysctl_set path={} old={} new=1 reason=\"{}\" note=\"entries that "
                    "already exist emit no events; the periodic resync (resync_interval_s={}) repairs them\"",
                    options_.sysctl_path, value, consequence, options_.resync_interval.count()));
    return true;
}

void CtnetlinkSource::schedule_resync() {
    if (options_.resync_interval.count() == 0 || stopped_) {
        return;
    }
    resync_timer_.expires_after(options_.resync_interval);
    resync_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !stopped_) {
            request_dump();
            schedule_resync();
        }
    });
}

std::unique_ptr<NetlinkSocket> CtnetlinkSource::open_write_socket(const SourceOptions& options,
                                                                  std::string& error) {
    auto socket = NetlinkSocket::open(0, error);
    if (!socket) {
        return nullptr;
    }
    int one = 1;
    // Errors then carry only the header of the refused message, not the whole message.
    setsockopt(socket->fd(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    socket->set_receive_buffer(4u << 20);
    socket->set_send_buffer(options.write_batch_bytes + 64 * 1024);
    timeval timeout{5, 0};
    setsockopt(socket->fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    return socket;
}

bool CtnetlinkSource::open_writer(std::string& error) {
    writer_ = open_write_socket(options_, error);
    register_writer(0, writer_.get());
    return writer_ != nullptr;
}

void CtnetlinkSource::register_writer(std::size_t slot, const NetlinkSocket* socket) {
    own_portids_[slot].store(socket != nullptr ? socket->portid() : 0);
    std::lock_guard lock(own_mutex_);
    std::string error;
    if (events_ && !attach_combined_filter(error)) {
        // Still correct: the echoes then reach the process and are skipped there (own_events_read).
        log_.warn(fmt::format("event=own_write_filter_failed reason=\"{}\" action=skip_in_process", error));
    }
}

bool CtnetlinkSource::attach_combined_filter(std::string& error) {
    std::vector<std::uint32_t> portids;
    for (const auto& p : own_portids_) {
        if (const std::uint32_t v = p.load(); v != 0) {
            portids.push_back(v);
        }
    }
    // ld nlmsg_pid; jeq each writer's port id -> ret 0; otherwise the integrator's program (A reset to 0,
    // as a program expects at its start) or accept. Absolute loads read big-endian: compare with ntohl().
    std::vector<sock_filter> code;
    code.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(nlmsghdr, nlmsg_pid)));
    const std::size_t n = portids.size();
    for (std::size_t i = 0; i < n; ++i) {
        code.push_back(
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ntohl(portids[i]), static_cast<std::uint8_t>(n - i), 0));
    }
    code.push_back(BPF_STMT(BPF_JMP | BPF_JA, 1));
    code.push_back(BPF_STMT(BPF_RET | BPF_K, 0));
    if (user_program_.empty()) {
        code.push_back(BPF_STMT(BPF_RET | BPF_K, 0xffffffff));
    } else {
        code.push_back(BPF_STMT(BPF_LD | BPF_IMM, 0));
        const std::size_t at = code.size();
        code.resize(at + user_program_.size());
        std::memcpy(code.data() + at, user_program_.data(), user_program_.size() * sizeof(sock_filter));
    }
    if (code.size() > BPF_MAXINSNS) {
        error = fmt::format(
            "the event filter has {} instructions with the {} that drop this source's own writes; the kernel "
            "takes at most {}",
            code.size(), code.size() - user_program_.size(), BPF_MAXINSNS);
        return false;
    }
    sock_fprog fprog{static_cast<unsigned short>(code.size()), code.data()};
    if (setsockopt(events_->fd(), SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) != 0) {
        error = fmt::format("the kernel refused the event filter: {}", std::strerror(errno));
        return false;
    }
    return true;
}

bool CtnetlinkSource::is_own_event(const nlmsghdr* nlh) const {
    const std::uint32_t pid = nlh->nlmsg_pid;
    if (pid == 0) {
        return false;  // the kernel's own (traffic, timeouts)
    }
    for (const auto& p : own_portids_) {
        if (p.load(std::memory_order_relaxed) == pid) {
            return true;
        }
    }
    return false;
}

void CtnetlinkSource::deliver_own_writes() {
    std::vector<OwnWrite> batch;
    std::optional<std::uint64_t> oldest;
    {
        std::lock_guard lock(own_mutex_);
        batch.swap(own_writes_);
        for (const auto ticket : done_tickets_) {
            undelivered_tickets_.erase(ticket);
        }
        done_tickets_.clear();
        deliver_posted_ = false;
        if (!undelivered_tickets_.empty()) {
            oldest = *undelivered_tickets_.begin();
        }
        writes_undelivered_.store(oldest.has_value());
    }
    if (!stopped_ && sink_ != nullptr) {
        std::uint64_t reported = 0;
        for (const auto& own : batch) {
            if (own.flow) {
                if (!destroyed_during_writes_.empty()) {
                    auto it = destroyed_during_writes_.find(own.flow->key());
                    if (it != destroyed_during_writes_.end() && it->second >= own.ticket) {
                        own_withheld_.add();
                        continue;
                    }
                }
                sink_->on_flow(own.kind, *own.flow);
            } else {
                sink_->on_expectation(own.kind, *own.expectation);
            }
            ++reported;
        }
        own_reported_.add(reported);
    }
    if (!oldest) {
        destroyed_during_writes_.clear();
    } else {
        std::erase_if(destroyed_during_writes_, [&](const auto& entry) { return entry.second < *oldest; });
    }
}

void CtnetlinkSource::wait_events() {
    if (stopped_ || !events_wait_) {
        return;
    }
    events_wait_->async_wait(asio::posix::stream_descriptor::wait_read,
                             [this](const boost::system::error_code& ec) {
                                 if (!ec && !stopped_) {
                                     read_events();
                                 }
                             });
}

void CtnetlinkSource::read_events() {
    // One recvmmsg() takes up to kReadsPerWakeup event datagrams (one event each): one system call where
    // recv() needed one per event.
    if (event_slots_.empty()) {
        event_slots_.resize(static_cast<std::size_t>(kReadsPerWakeup) * kEventSlotBytes);
        event_iov_.resize(kReadsPerWakeup);
        event_msgs_.resize(kReadsPerWakeup);
    }
    for (int i = 0; i < 2 && !stopped_; ++i) {
        for (int k = 0; k < kReadsPerWakeup; ++k) {
            event_iov_[k] = {event_slots_.data() + static_cast<std::size_t>(k) * kEventSlotBytes,
                             kEventSlotBytes};
            event_msgs_[k] = {};
            event_msgs_[k].msg_hdr.msg_iov = &event_iov_[k];
            event_msgs_[k].msg_hdr.msg_iovlen = 1;
        }
        const int n = ::recvmmsg(events_->fd(), event_msgs_.data(), kReadsPerWakeup, MSG_DONTWAIT, nullptr);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                // The queue is empty: the kernel has cleared the socket's congestion and reports any further
                // loss again, so a dump started now covers everything lost so far.
                if (resync_after_drain_ && dump_phase_ == DumpPhase::kIdle) {
                    resync_after_drain_ = false;
                    request_dump();
                }
                if (options_.event_batch.count() == 0 || !events_wait_) {
                    wait_events();
                    return;
                }
                // Let events gather before the next read. The socket leaves the reactor meanwhile:
                // registered, every arriving event would wake the loop, and a wake-up costs more than reading
                // an event.
                events_wait_->release();
                events_wait_.reset();
                batch_timer_.expires_after(options_.event_batch);
                batch_timer_.async_wait([this](const boost::system::error_code& ec) {
                    if (ec || stopped_ || !events_) {
                        return;
                    }
                    events_wait_ =
                        std::make_unique<asio::posix::stream_descriptor>(context_.executor, events_->fd());
                    if (std::exchange(kick_pending_, false)) {
                        read_events();  // someone needs a read even if nothing arrives (see kick_events)
                    } else {
                        wait_events();  // ready at once if events gathered; otherwise sleeps until one comes
                    }
                });
                return;
            }
            if (errno == ENOBUFS) {
                handle_overrun();
                continue;
            }
            if (errno == EINTR) {
                continue;
            }
            log_.error(fmt::format("event=event_read_failed reason=\"{}\"", std::strerror(errno)));
            wait_events();
            return;
        }
        for (int k = 0; k < n && !stopped_; ++k) {
            const auto& m = event_msgs_[k];
            if ((m.msg_hdr.msg_flags & MSG_TRUNC) != 0) {
                // Larger than any event the kernel sends: an event lost, repaired by a dump.
                malformed_.add();
                sink_->on_loss(ctsync::sdk::LossReason::kMalformed, 1);
                resync_after_drain_ = true;
                continue;
            }
            if (const std::string bad = check_message_lengths(event_iov_[k].iov_base, m.msg_len);
                !bad.empty()) {
                malformed_.add();
                log_.warn(fmt::format("event=event_buffer_malformed reason=\"{}\" action=resync", bad));
                sink_->on_loss(ctsync::sdk::LossReason::kMalformed, 1);
                resync_after_drain_ = true;
                continue;
            }
            if (mnl_cb_run(event_iov_[k].iov_base, m.msg_len, 0, 0, event_trampoline, this) == MNL_CB_ERROR) {
                malformed_.add();
            }
        }
        if (n == kReadsPerWakeup) {
            break;  // more may be queued: the others' turn first (below)
        }
        // Fewer: the queue ran empty, and the next call says EAGAIN and starts the batch wait.
    }
    // More may be queued: let other handlers (the dump, the control socket) run first.
    read_posted_ = true;
    asio::post(context_.executor, [this] {
        read_posted_ = false;
        if (!stopped_) {
            read_events();
        }
    });
}

void CtnetlinkSource::kick_events() {
    if (stopped_ || read_posted_) {
        return;
    }
    if (!events_wait_) {
        kick_pending_ = true;  // gathering a batch: the batch timer reads when it fires
        return;
    }
    boost::system::error_code ignored;
    events_wait_->cancel(ignored);  // the pending wait's handler sees operation_aborted and ends its chain
    read_posted_ = true;
    asio::post(context_.executor, [this] {
        read_posted_ = false;
        if (!stopped_) {
            read_events();
        }
    });
}

void CtnetlinkSource::handle_overrun() {
    // The kernel dropped events because the socket buffer was full. Grow it (up to the configured ceiling)
    // and repair by a full dump with mark and sweep: the cache ends equal to the kernel, deletes included.
    overruns_.add();
    std::size_t before = event_buffer_bytes_;
    if (event_buffer_requested_ < options_.event_buffer_max_bytes) {
        event_buffer_requested_ = std::min(options_.event_buffer_max_bytes, event_buffer_requested_ * 2);
        event_buffer_bytes_ = events_->set_receive_buffer(event_buffer_requested_);
        receive_buffer_.set(static_cast<std::int64_t>(event_buffer_bytes_));
    }
    log_.warn(
        fmt::format("event=event_overrun action=resync_after_drain event_buffer_bytes={} previous={} max={}",
                    event_buffer_bytes_, before, options_.event_buffer_max_bytes));
    sink_->on_loss(ctsync::sdk::LossReason::kOverrun, 1);
    // ENOBUFS is reported once: the kernel then marks the socket congested and drops further events
    // silently until the receive queue has been emptied (NETLINK_S_CONGESTED). A dump started right now could
    // pass a bucket before such a silently lost entry is inserted there; so drain first, then dump.
    resync_after_drain_ = true;
}

int CtnetlinkSource::on_event_message(const nlmsghdr* nlh) noexcept {
    if (is_own_event(nlh)) {
        own_events_read_.add();  // reported from the write itself (deliver_own_writes)
        return MNL_CB_OK;
    }
    const std::uint8_t subsystem = static_cast<std::uint8_t>(nlh->nlmsg_type >> 8);
    const std::uint8_t type = static_cast<std::uint8_t>(nlh->nlmsg_type & 0xff);
    if (subsystem == NFNL_SUBSYS_CTNETLINK) {
        ConntrackPtr ct = new_conntrack();
        ctsync::sdk::FlowState flow;
        if (!ct || nfct_nlmsg_parse(nlh, ct.get()) < 0 || !decode_flow(*ct, flow)) {
            // An event we cannot read is an event lost: repair by a dump.
            malformed_.add();
            sink_->on_loss(ctsync::sdk::LossReason::kMalformed, 1);
            resync_after_drain_ = true;
            return MNL_CB_OK;
        }
        EventKind kind;
        if (type == IPCTNL_MSG_CT_DELETE) {
            kind = EventKind::kDestroy;
            events_destroy_.add();
            if (writes_undelivered_.load()) {
                try {
                    destroyed_during_writes_[flow.key()] = last_ticket_.load();
                } catch (const std::bad_alloc&) {
                    // Without the record an echo could claim an entry the kernel lost: repair by a dump.
                    sink_->on_loss(ctsync::sdk::LossReason::kMalformed, 1);
                    resync_after_drain_ = true;
                }
            }
        } else if (nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) {
            kind = EventKind::kNew;
            events_new_.add();
        } else {
            kind = EventKind::kUpdate;
            events_update_.add();
        }
        sink_->on_flow(kind, flow);
    } else if (subsystem == NFNL_SUBSYS_CTNETLINK_EXP && options_.expectations) {
        ExpectPtr exp = new_expect();
        ctsync::sdk::Expectation expectation;
        if (!exp || nfexp_nlmsg_parse(nlh, exp.get()) < 0 || !decode_expectation(*exp, expectation)) {
            malformed_.add();
            sink_->on_loss(ctsync::sdk::LossReason::kMalformed, 1);
            resync_after_drain_ = true;
            return MNL_CB_OK;
        }
        expectation_events_.add();
        sink_->on_expectation(type == IPCTNL_MSG_EXP_DELETE ? EventKind::kDestroy : EventKind::kNew,
                              expectation);
    }
    return MNL_CB_OK;
}

void CtnetlinkSource::request_dump() noexcept {
    if (stopped_ || sink_ == nullptr) {
        return;
    }
    if (dump_phase_ != DumpPhase::kIdle) {
        dump_pending_ = true;  // one more after this one: it may have missed what the overrun lost
        return;
    }
    ++generation_;
    dump_malformed_ = false;
    dumps_.add();
    sink_->on_dump_begin(generation_);
    start_dump_phase(DumpPhase::kFlows);
}

void CtnetlinkSource::start_dump_phase(DumpPhase phase) {
    dump_phase_ = phase;
    if (!dump_) {
        finish_dump(false, "no dump socket");
        return;
    }
    dump_seq_ = ++write_seq_;
    char request[kRequestBytes];
    const bool flows = phase == DumpPhase::kFlows;
    nlmsghdr* nlh = put_request(request,
                                flows ? message_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET)
                                      : message_type(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET),
                                NLM_F_REQUEST | NLM_F_DUMP, dump_seq_, AF_UNSPEC);
    if (mnl_socket_sendto(dump_->get(), nlh, nlh->nlmsg_len) < 0) {
        finish_dump(false, fmt::format("dump request failed: {}", std::strerror(errno)));
        return;
    }
    wait_dump();
}

void CtnetlinkSource::wait_dump() {
    if (stopped_ || !dump_wait_) {
        return;
    }
    dump_wait_->async_wait(asio::posix::stream_descriptor::wait_read,
                           [this](const boost::system::error_code& ec) {
                               if (!ec && !stopped_) {
                                   read_dump();
                               }
                           });
}

void CtnetlinkSource::read_dump() {
    for (int i = 0; i < kReadsPerWakeup / 4 && !stopped_; ++i) {
        ssize_t n = ::recv(dump_->fd(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait_dump();
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            finish_dump(false, fmt::format("dump read failed: {}", std::strerror(errno)));
            return;
        }
        if (const std::string bad = check_message_lengths(buffer_.data(), static_cast<std::size_t>(n));
            !bad.empty()) {
            finish_dump(false, fmt::format("the dump's answer is malformed: {}", bad));
            return;
        }
        int rc = mnl_cb_run(buffer_.data(), static_cast<std::size_t>(n), dump_seq_, dump_->portid(),
                            dump_trampoline, this);
        if (rc == MNL_CB_ERROR) {
            finish_dump(false, fmt::format("dump ended with an error: {}", std::strerror(errno)));
            return;
        }
        if (rc == MNL_CB_STOP) {
            if (dump_phase_ == DumpPhase::kFlows && options_.expectations) {
                start_dump_phase(DumpPhase::kExpectations);
            } else if (dump_malformed_) {
                finish_dump(false, "the dump held entries that could not be read");
            } else {
                finish_dump(true, {});
            }
            return;
        }
    }
    asio::post(context_.executor, [this] {
        if (!stopped_) {
            read_dump();
        }
    });
}

int CtnetlinkSource::on_dump_message(const nlmsghdr* nlh) noexcept {
    dump_entries_.add();
    auto unreadable = [this] {
        malformed_.add();
        dump_malformed_ = true;  // this dump cannot sweep: an entry it could not read would be swept
        return MNL_CB_OK;
    };
    if (dump_phase_ == DumpPhase::kFlows) {
        ConntrackPtr ct = new_conntrack();
        ctsync::sdk::FlowState flow;
        if (!ct || nfct_nlmsg_parse(nlh, ct.get()) < 0 || !decode_flow(*ct, flow)) {
            return unreadable();
        }
        sink_->on_flow(EventKind::kDump, flow);
    } else {
        ExpectPtr exp = new_expect();
        ctsync::sdk::Expectation expectation;
        if (!exp || nfexp_nlmsg_parse(nlh, exp.get()) < 0 || !decode_expectation(*exp, expectation)) {
            return unreadable();
        }
        sink_->on_expectation(EventKind::kDump, expectation);
    }
    return MNL_CB_OK;
}

void CtnetlinkSource::finish_dump(bool complete, const std::string& reason) {
    dump_phase_ = DumpPhase::kIdle;
    sink_->on_dump_end(generation_, complete);
    if (complete) {
        if (dump_pending_) {
            dump_pending_ = false;
            request_dump();
        } else if (resync_after_drain_) {
            kick_events();
        }
        return;
    }
    // Whatever the kernel still queues for the failed dump would confuse the next one: start afresh.
    dumps_failed_.add();
    log_.warn(fmt::format("event=dump_failed generation={} reason=\"{}\" retry_ms={}", generation_, reason,
                          options_.dump_retry.count()));
    if (dump_wait_) {
        boost::system::error_code ignored;
        dump_wait_->cancel(ignored);
        dump_wait_->release();
    }
    std::string error;
    dump_ = NetlinkSocket::open(0, error);
    if (dump_) {
        dump_wait_ = std::make_unique<asio::posix::stream_descriptor>(context_.executor, dump_->fd());
    } else {
        dump_wait_.reset();
        log_.error(fmt::format("event=dump_socket_failed reason=\"{}\" action=retry", error));
    }
    dump_pending_ = false;
    dump_retry_.expires_after(options_.dump_retry);
    dump_retry_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !stopped_) {
            request_dump();
        }
    });
}

namespace {

// The outcome of sending one list of writes on one socket. Filled by one thread; merged afterwards.
struct PassResult {
    std::vector<ctsync::sdk::WriteError> errors;
    std::uint64_t failed = 0;
    std::uint64_t batches = 0;
    std::vector<std::pair<std::size_t, Purpose>> retry;    // creates that met an existing entry
    std::vector<std::pair<std::size_t, Purpose>> applied;  // the table is as asked (reported as echoes)
    bool socket_broken = false;
};

// Sends `pass` (op index, purpose) in batches on `socket`; the last message of each batch asks for an
// acknowledgement, so that every error before it has arrived when it does. Thread-safe as long as each
// caller has its own socket and buffers.
void send_pass(std::span<const ctsync::sdk::WriteOp> ops,
               std::span<const std::pair<std::size_t, Purpose>> pass, NetlinkSocket& socket,
               std::size_t batch_bytes, std::vector<char>& out_buffer, std::vector<char>& in_buffer,
               std::uint32_t& seq, PassResult& result) {
    auto fail = [&](std::size_t index, int error, const std::string& what) {
        ++result.failed;
        if (result.errors.size() < kMaxReportedErrors) {
            result.errors.push_back({index, error, what});
        }
    };
    std::size_t pos = 0;
    while (pos < pass.size()) {
        if (result.socket_broken) {
            for (; pos < pass.size(); ++pos) {
                fail(pass[pos].first, EIO, "no writer socket");
            }
            break;
        }
        char* buffer = out_buffer.data();
        std::size_t used = 0;
        const std::uint32_t first_seq = seq + 1;
        std::vector<std::size_t> in_batch;  // pass positions, by seq - first_seq; SIZE_MAX: not sent
        nlmsghdr* last = nullptr;
        while (pos < pass.size() && batch_bytes - used >= kMaxMessageBytes) {
            const auto [index, purpose] = pass[pos];
            const auto& op = ops[index];
            ++pos;
            const std::uint32_t this_seq = ++seq;
            nlmsghdr* nlh = nullptr;
            if (op.flow != nullptr) {
                ConntrackPtr ct = encode_flow(*op.flow, purpose);
                if (!ct) {
                    fail(index, ENOMEM, "cannot allocate a conntrack object");
                    in_batch.push_back(SIZE_MAX);
                    continue;
                }
                std::uint16_t flags = NLM_F_REQUEST;
                if (purpose == Purpose::kCreate) {
                    flags |= NLM_F_CREATE | NLM_F_EXCL;
                }
                nlh = put_request(
                    buffer + used,
                    message_type(NFNL_SUBSYS_CTNETLINK,
                                 purpose == Purpose::kDelete ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW),
                    flags, this_seq, family_of(op));
                nfct_nlmsg_build(nlh, ct.get());
                append_flow_attributes(nlh, *op.flow, purpose);
            } else {
                ExpectPtr exp = encode_expectation(*op.expectation);
                if (!exp) {
                    fail(index, ENOMEM, "cannot allocate an expectation object");
                    in_batch.push_back(SIZE_MAX);
                    continue;
                }
                const bool del = purpose == Purpose::kDelete;
                nlh = put_request(
                    buffer + used,
                    message_type(NFNL_SUBSYS_CTNETLINK_EXP, del ? IPCTNL_MSG_EXP_DELETE : IPCTNL_MSG_EXP_NEW),
                    del ? NLM_F_REQUEST : NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, this_seq, family_of(op));
                nfexp_nlmsg_build(nlh, exp.get());
                if (!del) {
                    append_expectation_attributes(nlh, *op.expectation);
                }
            }
            used += NLMSG_ALIGN(nlh->nlmsg_len);
            last = nlh;
            in_batch.push_back(pos - 1);
        }
        if (last == nullptr) {
            continue;
        }
        last->nlmsg_flags |= NLM_F_ACK;
        const std::uint32_t last_seq = last->nlmsg_seq;
        ++result.batches;
        std::vector<bool> answered(in_batch.size(), false);
        std::vector<bool> refused(in_batch.size(), false);  // failed, or to be retried as an update
        auto fail_unanswered = [&](int error, const std::string& why) {
            for (std::size_t k = 0; k < in_batch.size(); ++k) {
                if (in_batch[k] != SIZE_MAX && !answered[k]) {
                    fail(pass[in_batch[k]].first, error, why);
                }
            }
        };
        if (mnl_socket_sendto(socket.get(), buffer, used) < 0) {
            fail_unanswered(errno, fmt::format("sendmsg: {}", std::strerror(errno)));
            continue;
        }
        bool done = false;
        while (!done) {
            ssize_t n = mnl_socket_recvfrom(socket.get(), in_buffer.data(), in_buffer.size());
            if (n < 0) {
                const int err = errno;
                fail_unanswered(err, fmt::format("no answer from the kernel: {}", std::strerror(err)));
                result.socket_broken = true;  // a late answer would be mistaken for the next batch's
                break;
            }
            if (const std::string bad = check_message_lengths(in_buffer.data(), static_cast<std::size_t>(n));
                !bad.empty()) {
                fail_unanswered(EPROTO, fmt::format("malformed answer from the kernel: {}", bad));
                result.socket_broken = true;
                break;
            }
            int remaining = static_cast<int>(n);
            for (auto* nlh = reinterpret_cast<const nlmsghdr*>(in_buffer.data());
                 mnl_nlmsg_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
                if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq < first_seq ||
                    nlh->nlmsg_seq > last_seq) {
                    continue;
                }
                const std::size_t k = nlh->nlmsg_seq - first_seq;
                const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
                if (k < answered.size()) {
                    answered[k] = true;
                }
                if (err->error != 0 && k < in_batch.size() && in_batch[k] != SIZE_MAX) {
                    const int code = -err->error;
                    const auto [index, purpose] = pass[in_batch[k]];
                    const bool is_flow = ops[index].flow != nullptr;
                    if (code == EEXIST && is_flow && purpose == Purpose::kCreate) {
                        result.retry.emplace_back(index, Purpose::kUpdate);
                        refused[k] = true;
                    } else if ((code == ENOENT && purpose == Purpose::kDelete) ||
                               (code == EEXIST && !is_flow)) {
                        // Already gone / already expected: the table is as asked.
                    } else {
                        refused[k] = true;
                        fail(index, code,
                             fmt::format("{} {}: {}", purpose == Purpose::kDelete ? "delete" : "create",
                                         is_flow ? "flow" : "expectation", std::strerror(code)));
                    }
                }
                if (nlh->nlmsg_seq == last_seq) {
                    done = true;
                }
            }
        }
        if (done) {
            // The last message's answer came after every error before it: the others were applied.
            for (std::size_t k = 0; k < in_batch.size(); ++k) {
                if (in_batch[k] != SIZE_MAX && !refused[k]) {
                    result.applied.push_back(pass[in_batch[k]]);
                }
            }
        }
    }
}

}  // namespace

ctsync::sdk::WriteReport CtnetlinkSource::write(std::span<const ctsync::sdk::WriteOp> ops) noexcept {
    ctsync::sdk::WriteReport report;
    // Before anything is sent: a DESTROY the kernel sends from now on is matched against these writes.
    const bool report_own = sink_ != nullptr;
    std::uint64_t ticket = 0;
    if (report_own) {
        std::lock_guard lock(own_mutex_);
        ticket = ++last_ticket_;
        undelivered_tickets_.insert(ticket);
        writes_undelivered_.store(true);
    }
    std::vector<std::pair<std::size_t, Purpose>> applied;
    report = write_ops(ops, applied);
    if (report_own) {
        queue_own_writes(ops, applied, ticket);
    }
    return report;
}

void CtnetlinkSource::queue_own_writes(std::span<const ctsync::sdk::WriteOp> ops,
                                       const std::vector<std::pair<std::size_t, Purpose>>& applied,
                                       std::uint64_t ticket) noexcept {
    std::lock_guard lock(own_mutex_);
    try {
        own_writes_.reserve(own_writes_.size() + applied.size());
        for (const auto& [index, purpose] : applied) {
            const auto& op = ops[index];
            OwnWrite own;
            own.ticket = ticket;
            if (op.flow != nullptr) {
                own.kind = purpose == Purpose::kDelete   ? EventKind::kDestroy
                           : purpose == Purpose::kCreate ? EventKind::kNew
                                                         : EventKind::kUpdate;
                own.flow = *op.flow;
            } else {
                own.kind = purpose == Purpose::kDelete ? EventKind::kDestroy : EventKind::kNew;
                own.expectation = *op.expectation;
            }
            own_writes_.push_back(std::move(own));
        }
    } catch (const std::exception&) {
        // The cache then lacks some of what was written: a dump repairs it (the executor starts it).
        asio::post(context_.executor, [this] {
            if (!stopped_ && sink_ != nullptr) {
                sink_->on_loss(ctsync::sdk::LossReason::kMalformed, 1);
                resync_after_drain_ = true;
                kick_events();
            }
        });
    }
    done_tickets_.push_back(ticket);
    if (!std::exchange(deliver_posted_, true)) {
        asio::post(context_.executor, [this] { deliver_own_writes(); });
    }
}

ctsync::sdk::WriteReport CtnetlinkSource::write_ops(std::span<const ctsync::sdk::WriteOp> ops,
                                                    std::vector<std::pair<std::size_t, Purpose>>& applied) {
    ctsync::sdk::WriteReport report;
    try {
        std::string error;
        if (!writer_ && !open_writer(error)) {
            report.failed = ops.size();
            report.errors.push_back({0, EIO, error});
            writes_failed_.add(ops.size());
            return report;
        }
        auto merge = [&](PassResult& r) {
            applied.insert(applied.end(), r.applied.begin(), r.applied.end());
            report.failed += r.failed;
            for (auto& e : r.errors) {
                if (report.errors.size() < kMaxReportedErrors) {
                    report.errors.push_back(std::move(e));
                }
            }
            write_batches_.add(r.batches);
        };
        // Flows (creates and deletes) may go in parallel: they do not depend on each other. Expectations go
        // after every flow (their masters must exist), then the updates for creates that met an entry.
        std::vector<std::pair<std::size_t, Purpose>> flows;
        std::vector<std::pair<std::size_t, Purpose>> expectations;
        for (std::size_t i = 0; i < ops.size(); ++i) {
            if ((ops[i].flow == nullptr) == (ops[i].expectation == nullptr)) {
                ++report.failed;
                report.errors.push_back(
                    {i, EINVAL, "write op must carry exactly one of flow or expectation"});
                continue;
            }
            const Purpose purpose =
                ops[i].kind == ctsync::sdk::WriteOp::Kind::kDelete ? Purpose::kDelete : Purpose::kCreate;
            (ops[i].flow != nullptr ? flows : expectations).emplace_back(i, purpose);
        }
        std::vector<std::pair<std::size_t, Purpose>> retry;
        const std::size_t threads =
            flows.size() >= kParallelWriteThreshold ? std::min(options_.write_threads, flows.size()) : 1;
        if (threads <= 1) {
            PassResult r;
            send_pass(ops, flows, *writer_, options_.write_batch_bytes, write_buffer_, write_ack_buffer_,
                      write_seq_, r);
            retry.insert(retry.end(), r.retry.begin(), r.retry.end());
            merge(r);
            reopen_if_broken(r.socket_broken);
        } else {
            // The kernel inserts in the sender's context, with per-bucket locks: one socket per thread
            // spreads the inserts over the cores. Each thread has its own socket (kept for the next call,
            // so that the event filter knows its port id before it writes) and buffers.
            std::vector<PassResult> results(threads);
            std::vector<std::string> socket_errors(threads);
            if (pool_.size() < threads) {
                pool_.resize(threads);
            }
            for (std::size_t t = 0; t < threads; ++t) {
                if (!pool_[t]) {
                    pool_[t] = open_write_socket(options_, socket_errors[t]);
                    register_writer(1 + t, pool_[t].get());
                }
            }
            std::vector<std::thread> workers;
            const std::size_t chunk = (flows.size() + threads - 1) / threads;
            for (std::size_t t = 0; t < threads; ++t) {
                const std::size_t from = std::min(flows.size(), t * chunk);
                const std::size_t to = std::min(flows.size(), from + chunk);
                workers.emplace_back([&, t, from, to] {
                    auto& r = results[t];
                    std::span<const std::pair<std::size_t, Purpose>> part(flows.data() + from, to - from);
                    NetlinkSocket* socket = pool_[t].get();
                    if (socket == nullptr) {
                        for (const auto& [index, purpose] : part) {
                            ++r.failed;
                            if (r.errors.size() < kMaxReportedErrors) {
                                r.errors.push_back({index, EIO, socket_errors[t]});
                            }
                        }
                        return;
                    }
                    std::vector<char> out(options_.write_batch_bytes + kMaxMessageBytes);
                    std::vector<char> in(kReceiveBufferBytes);
                    std::uint32_t seq = 0;
                    send_pass(ops, part, *socket, options_.write_batch_bytes, out, in, seq, r);
                });
            }
            for (auto& w : workers) {
                w.join();
            }
            for (std::size_t t = 0; t < threads; ++t) {
                auto& r = results[t];
                retry.insert(retry.end(), r.retry.begin(), r.retry.end());
                merge(r);
                if (r.socket_broken) {  // a late answer would be mistaken for the next call's: open afresh
                    pool_[t].reset();
                    register_writer(1 + t, nullptr);
                }
            }
        }
        for (auto* pass : {&expectations, &retry}) {
            if (pass->empty() || !writer_) {
                continue;
            }
            PassResult r;
            send_pass(ops, *pass, *writer_, options_.write_batch_bytes, write_buffer_, write_ack_buffer_,
                      write_seq_, r);
            if (pass == &expectations) {
                retry.insert(retry.end(), r.retry.begin(), r.retry.end());
            }
            merge(r);
            reopen_if_broken(r.socket_broken);
        }
        report.applied = ops.size() - report.failed;
        writes_applied_.add(report.applied);
        writes_failed_.add(report.failed);
    } catch (const std::exception& e) {
        report.failed = ops.size();
        report.applied = 0;
        report.errors.push_back({0, ENOMEM, e.what()});
        writes_failed_.add(ops.size());
    }
    return report;
}

void CtnetlinkSource::reopen_if_broken(bool broken) {
    if (broken) {
        writer_.reset();
        open_writer_or_log();
    }
}

void CtnetlinkSource::open_writer_or_log() {
    std::string error;
    if (!open_writer(error)) {
        log_.error(fmt::format("event=writer_socket_failed reason=\"{}\"", error));
    }
}

ctsync::sdk::WriteReport CtnetlinkSource::flush() noexcept {
    ctsync::sdk::WriteReport report;
    std::string error;
    if (!writer_ && !open_writer(error)) {
        report.failed = 1;
        report.errors.push_back({0, EIO, error});
        return report;
    }
    // A delete without a tuple flushes the whole table (every family); expectations first, then flows.
    const std::uint16_t types[] = {message_type(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_DELETE),
                                   message_type(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE)};
    for (std::size_t i = 0; i < 2; ++i) {
        char request[kRequestBytes];
        const std::uint32_t seq = ++write_seq_;
        nlmsghdr* nlh = put_request(request, types[i], NLM_F_REQUEST | NLM_F_ACK, seq, AF_UNSPEC);
        int code = 0;
        if (mnl_socket_sendto(writer_->get(), nlh, nlh->nlmsg_len) < 0) {
            code = errno;
        } else {
            ssize_t n =
                mnl_socket_recvfrom(writer_->get(), write_ack_buffer_.data(), write_ack_buffer_.size());
            if (n < 0) {
                code = errno;
            } else if (!check_message_lengths(write_ack_buffer_.data(), static_cast<std::size_t>(n))
                            .empty()) {
                code = EPROTO;  // malformed answer: the write's outcome is unknown
            } else if (mnl_cb_run(write_ack_buffer_.data(), static_cast<std::size_t>(n), seq,
                                  writer_->portid(), nullptr, nullptr) == MNL_CB_ERROR) {
                code = errno;
            }
        }
        if (code != 0) {
            ++report.failed;
            report.errors.push_back(
                {i, code,
                 fmt::format("flush {}: {}", i == 0 ? "expectations" : "flows", std::strerror(code))});
        } else {
            ++report.applied;
        }
    }
    if (report.applied != 0 && sink_ != nullptr) {
        // The kernel's DESTROY events of a flush carry our port id: the prologue drops them (ADR-038).
        // A dump (mark and sweep) tells the cache what is left, which is faster than one report per entry.
        asio::post(context_.executor, [this] { request_dump(); });
    }
    return report;
}

bool CtnetlinkSource::attach_event_filter(std::span<const ctsync::sdk::BpfInstruction> program,
                                          std::string& error) noexcept {
    if (!events_) {
        error = "the source is not started";
        return false;
    }
    if (program.empty() || program.size() > BPF_MAXINSNS) {
        error = fmt::format("a classic BPF program has 1 to {} instructions, found {}", BPF_MAXINSNS,
                            program.size());
        return false;
    }
    try {
        std::lock_guard lock(own_mutex_);
        std::vector<ctsync::sdk::BpfInstruction> previous = std::move(user_program_);
        user_program_.assign(program.begin(), program.end());
        if (!attach_combined_filter(error)) {
            user_program_ = std::move(previous);  // the kernel keeps the program it had
            return false;
        }
    } catch (const std::exception& e) {
        error = e.what();
        return false;
    }
    log_.info(fmt::format("event=event_filter_attached instructions={}", program.size()));
    return true;
}

}  // namespace ctnetlink
