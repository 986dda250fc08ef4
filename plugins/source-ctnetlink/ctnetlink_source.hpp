// SPDX-License-Identifier: GPL-2.0-or-later
// source-ctnetlink: the kernel's conntrack table through ctnetlink (libmnl + libnetfilter_conntrack).
//
// Three netlink sockets, each with one job, so that none waits behind another:
//   events — subscribed to conntrack and expectation events before the first dump, read on the executor;
//   dump   — full dumps (flows, then expectations), read on the executor interleaved with events;
//   writers — batched creates/updates/deletes, synchronous (warm standby, commit, import); one socket, plus
//             one per extra thread of a parallel write, each opened once and kept.
// The kernel echoes every write as an event on the event socket. Those echoes are dropped in the kernel by
// a classic BPF prologue on the event socket (matching the writers' port ids) and the source reports each
// write that succeeded to the sink itself, from the op it sent (ADR-038): a backup's warm writes no longer
// cost it a second event stream of the same size.
#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <ctsync/sdk/sdk.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "flow_codec.hpp"

struct mnl_socket;
struct nlmsghdr;

namespace ctnetlink {

struct SourceOptions {
    std::size_t event_buffer_bytes = 64u << 20;
    std::size_t event_buffer_max_bytes = 256u << 20;
    bool reliable_events = false;
    bool expectations = true;
    std::size_t write_batch_bytes = 128u << 10;
    // Flow writes of one call are spread over this many sockets, one thread each, for the duration of the
    // call (the kernel inserts in the sender's context); 1 writes on the event loop's thread only.
    std::size_t write_threads = 2;  // 1..kMaxWriteThreads
    std::chrono::milliseconds dump_retry{1000};
    // nf_conntrack_events must be 1: in the kernel's default mode (2) entries created while nobody listened
    // never emit events. "set" writes 1 (logged), "check" refuses to start, "ignore" only warns.
    std::string events_sysctl = "set";
    std::string sysctl_path = "/proc/sys/net/netfilter/nf_conntrack_events";
    // Periodic full dump (mark and sweep); 0 disables. Repairs entries that emit no events.
    std::chrono::seconds resync_interval{300};
    // After the event queue ran empty, the socket leaves the reactor this long so that events gather and one
    // wake-up reads many (0: wait on the socket again at once).
    std::chrono::microseconds event_batch{2000};
};

inline constexpr std::size_t kMaxWriteThreads = 16;

struct FlowKeyHash {
    std::uint64_t seed = 0;
    std::size_t operator()(const ctsync::sdk::FlowKey& key) const noexcept {
        return ctsync::sdk::hash_flow_key(key, seed);
    }
};

// Owns one libmnl socket.
class NetlinkSocket {
  public:
    // Opens a NETLINK_NETFILTER socket bound to `groups` (legacy group bitmask); nullptr and `error` on
    // failure.
    static std::unique_ptr<NetlinkSocket> open(unsigned groups, std::string& error);
    ~NetlinkSocket();
    NetlinkSocket(const NetlinkSocket&) = delete;
    NetlinkSocket& operator=(const NetlinkSocket&) = delete;

    int fd() const;
    unsigned portid() const;
    mnl_socket* get() const { return socket_; }
    // SO_RCVBUFFORCE (root) falling back to SO_RCVBUF; returns the size the kernel reports afterwards.
    std::size_t set_receive_buffer(std::size_t bytes);
    // Netlink refuses a sendmsg() larger than the send buffer (EMSGSIZE): writers size it for their batches.
    void set_send_buffer(std::size_t bytes);

  private:
    explicit NetlinkSocket(mnl_socket* socket) : socket_(socket) {}
    mnl_socket* socket_;
};

class CtnetlinkSource final : public ctsync::sdk::Source {
  public:
    CtnetlinkSource(const ctsync::sdk::PluginContext& context, SourceOptions options);
    ~CtnetlinkSource() override;

    void stop() noexcept override;
    bool start(ctsync::sdk::FlowSink& sink, std::string& error) noexcept override;
    void request_dump() noexcept override;
    ctsync::sdk::WriteReport write(std::span<const ctsync::sdk::WriteOp> ops) noexcept override;
    ctsync::sdk::WriteReport flush() noexcept override;
    bool concurrent_writes() const noexcept override { return true; }
    bool attach_event_filter(std::span<const ctsync::sdk::BpfInstruction> program,
                             std::string& error) noexcept override;

    // Event handling entry points, public for the tests: one netlink message as received.
    int on_event_message(const nlmsghdr* nlh) noexcept;
    int on_dump_message(const nlmsghdr* nlh) noexcept;

  private:
    enum class DumpPhase { kIdle, kFlows, kExpectations };

    void wait_events();
    void read_events();
    // Makes sure exactly one reader chain runs: cancels a pending wait and posts a read, unless one is
    // posted.
    void kick_events();
    void handle_overrun();
    void start_dump_phase(DumpPhase phase);
    void wait_dump();
    void read_dump();
    void finish_dump(bool complete, const std::string& reason);
    bool open_writer(std::string& error);
    // A write socket as open_writer configures it.
    static std::unique_ptr<NetlinkSocket> open_write_socket(const SourceOptions& options, std::string& error);
    // Records `socket`'s port id in `slot` (0: writer_, 1..: the parallel pool) and attaches the event
    // filter again with the new set. Any thread that writes.
    void register_writer(std::size_t slot, const NetlinkSocket* socket);
    // The event socket's program: drop what our writers caused, then the integrator's program (if any).
    // Caller holds own_mutex_.
    bool attach_combined_filter(std::string& error);
    // Executor: reports the writes that succeeded to the sink (the echoes the kernel filter dropped).
    void deliver_own_writes();
    bool is_own_event(const nlmsghdr* nlh) const;
    // write() without the reporting of own writes: fills `applied` with what the kernel took (op index, how).
    ctsync::sdk::WriteReport write_ops(std::span<const ctsync::sdk::WriteOp> ops,
                                       std::vector<std::pair<std::size_t, Purpose>>& applied);
    // Queues the echoes of `applied` for the executor (deliver_own_writes) and retires `ticket`.
    void queue_own_writes(std::span<const ctsync::sdk::WriteOp> ops,
                          const std::vector<std::pair<std::size_t, Purpose>>& applied,
                          std::uint64_t ticket) noexcept;
    void reopen_if_broken(bool broken);
    bool ensure_events_enabled(std::string& error);
    void schedule_resync();
    void open_writer_or_log();

    ctsync::sdk::PluginContext context_;
    SourceOptions options_;
    ctsync::sdk::Logger& log_;
    ctsync::sdk::FlowSink* sink_ = nullptr;

    std::unique_ptr<NetlinkSocket> events_;
    std::unique_ptr<NetlinkSocket> dump_;
    std::unique_ptr<NetlinkSocket> writer_;
    std::vector<std::unique_ptr<NetlinkSocket>> pool_;  // parallel writes; the writing thread only
    std::unique_ptr<boost::asio::posix::stream_descriptor> events_wait_;
    std::unique_ptr<boost::asio::posix::stream_descriptor> dump_wait_;
    boost::asio::steady_timer dump_retry_;
    boost::asio::steady_timer resync_timer_;
    boost::asio::steady_timer batch_timer_;
    std::vector<char> buffer_;       // dumps (the executor thread)
    std::vector<char> event_slots_;  // events: one slot per datagram of a recvmmsg() (the executor thread)
    std::vector<iovec> event_iov_;
    std::vector<mmsghdr> event_msgs_;
    // write() and flush() touch only writer_, write_buffer_, write_ack_buffer_, write_seq_ and atomic
    // counters: they may run on a host thread while the executor reads events (concurrent_writes()).
    std::vector<char> write_buffer_;
    std::vector<char> write_ack_buffer_;

    // Own writes (ADR-038). A write() takes a ticket, and queues what succeeded under own_mutex_ with its
    // ticket; the executor reports them. A DESTROY the kernel sends while a write is undelivered is kept
    // with the newest ticket at the time: an echo of a write with a ticket up to it is not reported (the
    // entry may be gone; reporting it would leave the cache holding what the kernel lacks).
    struct OwnWrite {
        ctsync::sdk::EventKind kind = ctsync::sdk::EventKind::kNew;
        std::optional<ctsync::sdk::FlowState> flow;
        std::optional<ctsync::sdk::Expectation> expectation;
        std::uint64_t ticket = 0;
    };
    std::array<std::atomic<std::uint32_t>, kMaxWriteThreads + 1> own_portids_{};
    std::mutex own_mutex_;
    std::vector<OwnWrite> own_writes_;             // under own_mutex_
    std::set<std::uint64_t> undelivered_tickets_;  // under own_mutex_
    std::vector<std::uint64_t> done_tickets_;      // under own_mutex_: writes whose echoes are queued
    std::vector<ctsync::sdk::BpfInstruction> user_program_;  // under own_mutex_
    std::atomic<std::uint64_t> last_ticket_{0};
    std::atomic<bool> writes_undelivered_{false};
    std::unordered_map<ctsync::sdk::FlowKey, std::uint64_t, FlowKeyHash>
        destroyed_during_writes_;  // executor
    bool deliver_posted_ = false;  // under own_mutex_

    DumpPhase dump_phase_ = DumpPhase::kIdle;
    std::uint32_t dump_seq_ = 0;
    std::uint64_t generation_ = 0;
    bool dump_pending_ = false;
    // Losses seen, not yet covered by a dump that started after the event queue was drained (see
    // handle_overrun). The reader starts that dump when recv() next finds the queue empty.
    bool resync_after_drain_ = false;
    bool dump_malformed_ = false;
    std::size_t event_buffer_bytes_ = 0;      // as the kernel reports it (it doubles what is asked)
    std::size_t event_buffer_requested_ = 0;  // what we asked for; grows on overrun up to the maximum
    std::uint32_t write_seq_ = 0;
    bool stopped_ = false;
    bool read_posted_ = false;
    bool kick_pending_ =
        false;  // kick_events() came while a batch gathered  // a read_events() is queued on the executor

    ctsync::sdk::Counter& events_new_;
    ctsync::sdk::Counter& events_update_;
    ctsync::sdk::Counter& events_destroy_;
    ctsync::sdk::Counter& expectation_events_;
    ctsync::sdk::Counter& overruns_;
    ctsync::sdk::Counter& malformed_;
    ctsync::sdk::Counter& dumps_;
    ctsync::sdk::Counter& dumps_failed_;
    ctsync::sdk::Counter& dump_entries_;
    ctsync::sdk::Counter& writes_applied_;
    ctsync::sdk::Counter& writes_failed_;
    ctsync::sdk::Counter& write_batches_;
    ctsync::sdk::Gauge& receive_buffer_;
    ctsync::sdk::Counter& own_reported_;
    ctsync::sdk::Counter& own_withheld_;
    ctsync::sdk::Counter& own_events_read_;
};

}  // namespace ctnetlink
